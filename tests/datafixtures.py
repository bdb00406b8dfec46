"""Tiny benchmark files in the real sources' formats, served over HTTP in their URL layout.

Rows are written here (a few per source, never real GPQA items: its authors ask that they
not be published in plain text). `DataMirror` serves them from a local HTTP server at the
same paths as huggingface.co and the simple-evals blob, and points
evalfleet's endpoint overrides and cache directory at it.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import threading
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evalfleet.datasets.sources import MGSM_LANGUAGES, MMLU_SUBJECTS, SOURCES, Source

GSM8K = [
    {"question": "Tom has 3 boxes with 6 apples each. He eats 2 apples. How many are left?",
     "answer": "3 boxes hold 3*6=<<3*6=18>>18 apples.\n18-2=<<18-2=16>>16 are left.\n#### 16"},
    {"question": "A shirt costs $1,200 after a $300 discount. What was the price before?",
     "answer": "1200+300=<<1200+300=1500>>1500\n#### 1,500"},
    {"question": "Mia reads 12 pages a day for 7 days. How many pages does she read?",
     "answer": "12*7=<<12*7=84>>84\n#### 84"},
]  # fmt: skip

GSM8K_TRAIN = [
    {"question": f"Sam has {n} marbles and finds {n + 3} more. How many marbles does he have?",
     "answer": f"{n}+{n + 3}=<<{n}+{n + 3}={2 * n + 3}>>{2 * n + 3}\n#### {2 * n + 3}"}
    for n in range(1, 9)
]  # fmt: skip

MATH_500 = [
    {"problem": "Compute $\\frac{7}{3} \\cdot 2$.", "solution": "...", "answer": "\\frac{14}{3}",
     "subject": "Prealgebra", "level": 1, "unique_id": "test/prealgebra/1.json"},
    {"problem": "Simplify $\\sqrt{18}$.", "solution": "...", "answer": "3\\sqrt{2}",
     "subject": "Algebra", "level": 2, "unique_id": "test/algebra/2.json"},
    {"problem": "Convert $(0,3)$ to polar coordinates.", "solution": "...",
     "answer": "\\left( 3, \\frac{\\pi}{2} \\right)", "subject": "Precalculus", "level": 2,
     "unique_id": "test/precalculus/3.json"},
]  # fmt: skip

AIME_2024 = [
    {"ID": "2024-I-1", "Problem": "Find the remainder when $2^{10}$ is divided by $1000$.",
     "Solution": "...", "Answer": 24},
    {"ID": "2024-II-4", "Problem": "Find $m+n$ where $m/n = 0.75$ in lowest terms.",
     "Solution": "...", "Answer": 7},
]  # fmt: skip

AIME_2025 = [
    {"id": "0", "problem": "Find the sum of all positive divisors of $28$ less than $28$.",
     "answer": "28"},
    {"id": "1", "problem": "How many integers $n$ with $1 \\le n \\le 100$ are divisible by 7?",
     "answer": "14"},
]  # fmt: skip

AIMO_VALIDATION_AIME = [  # simple_evals.AIME_2024 keeps the 2024 problems (by URL)
    {"id": 0, "problem": "Find $3^4$.", "solution": "...", "answer": "81",
     "url": "https://artofproblemsolving.com/wiki/index.php/2024_AIME_I_Problems/Problem_1"},
    {"id": 1, "problem": "Find $2+2$ in an older year.", "solution": "...", "answer": "4",
     "url": "https://artofproblemsolving.com/wiki/index.php/2023_AIME_I_Problems/Problem_1"},
    {"id": 2, "problem": "Find the number of sides of a hexagon.", "solution": "...",
     "answer": "6",
     "url": "https://artofproblemsolving.com/wiki/index.php/2024_AIME_II_Problems/Problem_2"},
]  # fmt: skip

AIME2025_PARTS = {
    "I": [{"question": "Find $17 + 53$.", "answer": "70"}],
    "II": [{"question": "Find the remainder when $2^{10}$ is divided by $100$.", "answer": "24"},
           {"question": "Find $5 \\cdot 7$.", "answer": "35"}],
}  # fmt: skip

MMLU = [
    {"question": "What is 7 * 8?", "subject": "elementary_mathematics",
     "choices": ["54", "56", "58", "64"], "answer": 1},
    {"question": "Which organ pumps blood?", "subject": "anatomy",
     "choices": ["Liver", "Lung", "Heart", "Kidney"], "answer": 2},
    {"question": "Who wrote the Republic?", "subject": "philosophy",
     "choices": ["Plato", "Kant", "Hume", "Locke"], "answer": 0},
]  # fmt: skip

_PRO_CATEGORIES = ("math", "law")
MMLU_PRO_VALIDATION = [
    {"question_id": 1000 + 10 * c + i, "question": f"Shot {i} about {cat}?",
     "options": ["p", "q", "r", "s", "N/A"], "answer": "B", "answer_index": 1,
     "cot_content": f"A: Let's think step by step. Shot {i} reasoning. The answer is (B).",
     "category": cat, "src": "fixture"}
    for c, cat in enumerate(_PRO_CATEGORIES) for i in range(6)
]  # fmt: skip
MMLU_PRO_TEST = [
    {"question_id": 1, "question": "What is 2 + 2?",
     "options": ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"], "answer": "D",
     "answer_index": 3, "cot_content": "", "category": "math", "src": "fixture"},
    {"question_id": 2, "question": "Which court is highest in the US?",
     "options": ["District", "Supreme", "Appeals"], "answer": "B", "answer_index": 1,
     "cot_content": "", "category": "law", "src": "fixture"},
]  # fmt: skip

GPQA = [
    {"Record ID": f"rec{i}", "Question": q, "Correct Answer": right,
     "Incorrect Answer 1": w1, "Incorrect Answer 2": w2, "Incorrect Answer 3": w3,
     "High-level domain": domain}
    for i, (q, right, w1, w2, w3, domain) in enumerate([
        ("Synthetic: which gas is diatomic?", "Nitrogen", "Argon", "Neon", "Helium", "Chemistry"),
        ("Synthetic: unit of force?", "Newton", "Joule", "Watt", "Pascal", "Physics"),
        ("Synthetic: cell powerhouse?", "Mitochondrion", "Ribosome", "Nucleus", "Vacuole",
         "Biology"),
        ("Synthetic: speed of light order?", "3e8 m/s", "3e5 m/s", "3e6 m/s", "3e10 m/s",
         "Physics"),
    ])
]  # fmt: skip

ARC = [
    {"id": "Mercury_1", "question": "Which is a mammal?",
     "choices": {"text": ["Shark", "Whale", "Trout"], "label": ["A", "B", "C"]}, "answerKey": "B"},
    {"id": "NYSEDREGENTS_2", "question": "What melts ice fastest?",
     "choices": {"text": ["Salt", "Sand", "Sawdust", "Shade"], "label": ["1", "2", "3", "4"]},
     "answerKey": "1"},
]  # fmt: skip

HELLASWAG = [  # HF parquet: `label` is a string
    {"ind": 4, "activity_label": "Removing ice from car", "ctx_a": "Then, the man writes over the snow covering the window of a car, and a woman wearing winter clothes smiles.",
     "ctx_b": "then", "ctx": "", "endings": [", the man adds wax to the windshield and cuts it.",
     ", a person board a ski lift, while two men supporting the head of the person wearing winter clothes snow as the we girls sled.",
     ", the man puts on a christmas coat, knitted with netting.",
     ", the man continues removing the snow on his car."], "label": "3",
     "source_id": "activitynet~v_-1IBHYS3L-Y", "split": "val", "split_type": "indomain"},
    {"ind": 9, "activity_label": "Baking cookies", "ctx_a": "A woman mixes flour and sugar in a bowl.",
     "ctx_b": "she", "ctx": "", "endings": [" pours the batter into a tray and bakes it.",
     " throws the bowl out of the window.", " paints the bowl blue [title] then sings.",
     " drives the car to the lake."], "label": "0",
     "source_id": "wikihow~1", "split": "val", "split_type": "indomain"},
]  # fmt: skip

# lm-eval log-likelihood multiple choice (lm_eval_mc.py): every source in its real schema;
# the train splits hold enough rows for the default few-shot counts (HellaSwag draws 11,
# WinoGrande 6).
ARC_EASY = [
    {"id": "Mercury_7", "question": "Which tool measures mass?",
     "choices": {"text": ["Balance", "Ruler", "Thermometer", "Clock"], "label": ["A", "B", "C", "D"]},
     "answerKey": "A"},
    {"id": "MCAS_2000_4_6", "question": "What do plants need to make food?",
     "choices": {"text": ["Sand", "Sunlight", "Snow"], "label": ["1", "2", "3"]}, "answerKey": "2"},
]  # fmt: skip
ARC_CHALLENGE_TRAIN = [
    {"id": f"Mercury_T{i}", "question": f"Challenge shot {i}?",
     "choices": {"text": [f"c{i}a", f"c{i}b", f"c{i}c", f"c{i}d"], "label": ["A", "B", "C", "D"]},
     "answerKey": "ABCD"[i % 4]}
    for i in range(6)
]  # fmt: skip
ARC_EASY_TRAIN = [
    {"id": f"Mercury_E{i}", "question": f"Easy shot {i}?",
     "choices": {"text": [f"e{i}a", f"e{i}b", f"e{i}c"], "label": ["1", "2", "3"]},
     "answerKey": "123"[i % 3]}
    for i in range(6)
]  # fmt: skip
HELLASWAG_TRAIN = [
    {"ind": 100 + i, "activity_label": f"Activity {i}", "ctx_a": f"A person does step {i}.",
     "ctx_b": "then", "ctx": f"A person does step {i}. then",
     "endings": [f"ends {i} one.", f"ends {i} two [title] more.", f"ends {i} three.", f"ends {i} four."],
     "label": str(i % 4), "source_id": f"wikihow~{i}", "split": "train", "split_type": "indomain"}
    for i in range(14)
]  # fmt: skip
PIQA = [  # baber/piqa: `label` is an integer
    {"goal": "How do you open a jar with a stuck lid?",
     "sol1": "Run the lid under hot water, then twist.", "sol2": "Put the jar in the freezer.",
     "label": 0},
    {"goal": "To dry wet shoes quickly,", "sol1": "fill them with dry ice.",
     "sol2": "stuff them with newspaper.", "label": 1},
]  # fmt: skip
PIQA_TRAIN = [
    {"goal": f"Piqa shot {i}", "sol1": f"first way {i}", "sol2": f"second way {i}", "label": i % 2}
    for i in range(6)
]  # fmt: skip
WINOGRANDE = [  # allenai/winogrande winogrande_xl: `answer` is "1" or "2"
    {"sentence": "The trophy didn't fit in the suitcase because the _ was too big.",
     "option1": "trophy", "option2": "suitcase", "answer": "1"},
    {"sentence": "Sarah thanked Maria because _ had helped her move.",
     "option1": "Sarah", "option2": "Maria", "answer": "2"},
]  # fmt: skip
WINOGRANDE_TRAIN = [
    {"sentence": f"Shot {i}: Ann gave Bo a gift because _ was kind.", "option1": "Ann",
     "option2": "Bo", "answer": "12"[i % 2]}
    for i in range(8)
]  # fmt: skip
OPENBOOKQA = [  # allenai/openbookqa main
    {"id": "7-980", "question_stem": "The sun is responsible for",
     "choices": {"text": ["puppies learning new tricks", "plants sprouting, blooming and wilting",
                          "children growing up", "flowers wilting in a vase"],
                 "label": ["A", "B", "C", "D"]}, "answerKey": "B"},
    {"id": "7-584", "question_stem": "When standing miles away from Mount Rushmore",
     "choices": {"text": ["the mountains seem very close", "the mountains are boring",
                          "the mountains look the same as from up close",
                          "the mountains seem smaller than in photographs"],
                 "label": ["A", "B", "C", "D"]}, "answerKey": "D"},
]  # fmt: skip
OPENBOOKQA_TRAIN = [
    {"id": f"train-{i}", "question_stem": f"Book shot {i} is",
     "choices": {"text": [f"o{i}a", f"o{i}b", f"o{i}c", f"o{i}d"], "label": ["A", "B", "C", "D"]},
     "answerKey": "ABCD"[i % 4]}
    for i in range(6)
]  # fmt: skip

MBPP = [
    {"task_id": 10, "text": "Not a test problem.", "code": "def f(): pass",
     "test_list": ["assert False"], "test_setup_code": "", "challenge_test_list": []},
    {"task_id": 11, "text": "Write a function to add two numbers.",
     "code": "def add(a, b):\n    return a + b",
     "test_list": ["assert add(1, 2) == 3", "assert add(0, 0) == 0", "assert add(-1, 1) == 0"],
     "test_setup_code": "", "challenge_test_list": []},
    {"task_id": 12, "text": "Write a function to reverse a list using the helper constant.",
     "code": "def rev(xs):\n    return xs[::STEP]",
     "test_list": ["assert rev([1, 2]) == [2, 1]", "assert rev([]) == []",
                   "assert rev([3]) == [3]"],
     "test_setup_code": "STEP = -1", "challenge_test_list": []},
]  # fmt: skip

MGSM = {
    lang: [
        (f"[{lang}] Ann has 4 pens and buys 5 more. How many pens?", "9"),
        (f"[{lang}] A farm has 1,000 hens and sells 250. How many are left?", "750"),
    ]
    for lang in MGSM_LANGUAGES
}

IFEVAL = [
    {"key": 1, "prompt": "Write a haiku without commas.",
     "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
]  # fmt: skip

ROWS: dict[str, Any] = {
    "ifeval-input": IFEVAL,
    "gsm8k-test": GSM8K,
    "gsm8k-train": GSM8K_TRAIN,
    "math_500-test": MATH_500,
    "aime_2024": AIME_2024,
    "aime_2025": AIME_2025,
    "aimo_validation_aime": AIMO_VALIDATION_AIME,
    **{f"aime2025-{part}": rows for part, rows in AIME2025_PARTS.items()},
    **{
        f"mmlu-{subject}-test": [r for r in MMLU if r["subject"] == subject]
        for subject in MMLU_SUBJECTS
    },
    "mmlu_pro-test": MMLU_PRO_TEST,
    "mmlu_pro-validation": MMLU_PRO_VALIDATION,
    "gpqa_diamond": GPQA,
    "arc_challenge-test": ARC,
    "hellaswag-validation": HELLASWAG,
    "arc_challenge-train": ARC_CHALLENGE_TRAIN,
    "arc_easy-test": ARC_EASY,
    "arc_easy-train": ARC_EASY_TRAIN,
    "hellaswag-train": HELLASWAG_TRAIN,
    "piqa-validation": PIQA,
    "piqa-train": PIQA_TRAIN,
    "winogrande_xl-validation": WINOGRANDE,
    "winogrande_xl-train": WINOGRANDE_TRAIN,
    "openbookqa-test": OPENBOOKQA,
    "openbookqa-train": OPENBOOKQA_TRAIN,
    "mbpp-test": MBPP,
    **{f"mgsm-{lang}": rows for lang, rows in MGSM.items()},
}


def parquet_bytes(rows: list[dict[str, Any]]) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), sink)
    return sink.getvalue()


def jsonl_bytes(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def encode(source: Source) -> bytes:
    """The fixture rows of `source` as its real file format."""
    rows = ROWS[source.name]
    if source.format == "parquet":
        return parquet_bytes(rows)
    if source.format == "jsonl":
        return jsonl_bytes(rows)
    if source.format == "csv":
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        return text.getvalue().encode()
    return "".join(f"{q}\t{a}\n" for q, a in rows).encode()


def pin_fixture_hashes(monkeypatch: pytest.MonkeyPatch, unhashed: Collection[str] = ()) -> None:
    """Sources pinned by sha256 (GPQA, MGSM, HellaSwag, MBPP) accept the fixture bytes
    instead of the real file's (or no hash, for names in `unhashed`, whose bytes a test
    puts itself): what a task test needs; the download tests check real pins hold."""
    for name, source in list(SOURCES.items()):
        if source.sha256 and name in ROWS:
            digest = None if name in unhashed else hashlib.sha256(encode(source)).hexdigest()
            monkeypatch.setitem(SOURCES, name, dataclasses.replace(source, sha256=digest))


def url_path(source: Source) -> str:
    return urlsplit(source.url).path


@dataclass
class DataMirror:
    """A local HTTP server holding fixture files at the real sources' URL paths."""

    base_url: str
    files: dict[str, bytes] = field(default_factory=dict)
    hits: Counter[str] = field(default_factory=Counter)

    def put(self, source: Source, body: bytes | None = None) -> bytes:
        body = encode(source) if body is None else body
        self.files[url_path(source)] = body
        return body

    def put_all(self) -> None:
        for source in SOURCES.values():
            if source.name in ROWS:
                self.put(source)


def start_mirror(monkeypatch: Any, cache: Path) -> tuple[DataMirror, ThreadingHTTPServer]:
    """Serve a DataMirror on loopback; evalfleet's host overrides and cache point at it."""
    mirror = DataMirror("")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            # Each host's base is a prefix here (/hf, /blob, /github); below it, the real layout.
            path = urlsplit(self.path).path
            mirror.hits[path] += 1
            body = mirror.files.get(path)
            if body is None:
                self.send_error(404, "Not Found")
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    mirror.base_url = base
    monkeypatch.setenv("EVALFLEET_HF_ENDPOINT", f"{base}/hf")
    monkeypatch.setenv("EVALFLEET_OPENAI_BLOB_ENDPOINT", f"{base}/blob/simple-evals")
    monkeypatch.setenv("EVALFLEET_GITHUB_RAW_ENDPOINT", f"{base}/github")
    monkeypatch.setenv("EVALFLEET_CACHE_DIR", str(cache))
    monkeypatch.setenv("EVALFLEET_OFFLINE", "")  # restored (unset) after the test
    return mirror, server


@pytest.fixture
def data_mirror(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[DataMirror]:
    """Every fixture file served at its source's path; an empty cache in tmp_path."""
    mirror, server = start_mirror(monkeypatch, tmp_path / "cache")
    mirror.put_all()
    try:
        yield mirror
    finally:
        server.shutdown()
        server.server_close()
