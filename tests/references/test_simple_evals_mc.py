"""simple_evals.mmlu, .mmlu_pro, .gpqa_diamond and .mgsm against nvidia-simple-evals 26.3's
own code: the reference runs from the command NeMo Evaluator renders for the task
(`drivers/simple_evals_mc.py`), against an endpoint that records every request body and
replays the committed corpora; evalfleet builds its bodies and verdicts from the same rows.

No real MMLU, MMLU-Pro, GPQA or MGSM rows are on this machine: the rows are generated here
in each dataset's exact schema (all 57 MMLU subjects, 3-10 MMLU-Pro options, GPQA's CSV
with cells pandas reads as missing, every MGSM language), with non-ASCII text, LaTeX,
braces, quotes and newlines. The reference reads them through `datasets` (GPQA's CSV
through its own CSV builder, as the hub's file is read); evalfleet through its own readers
from the real file formats (parquet, CSV, TSV).
"""

# ruff: noqa: RUF001

from __future__ import annotations

import csv
import io
import json
import math
import random
import re
from pathlib import Path
from typing import Any

import pytest

from evalfleet.contract.spec import effective_params
from evalfleet.datasets.readers import read_rows
from evalfleet.datasets.sources import MGSM_LANGUAGES, MMLU_SUBJECTS, SOURCES
from evalfleet.engine.interceptors import build_interceptors
from evalfleet.engine.runner import build_body
from evalfleet.tasks.registry import create_task
from tests.datafixtures import parquet_bytes
from tests.references.harness import run_reference

CORPORA = Path(__file__).parent / "corpora"
LETTERS = json.loads((CORPORA / "simple_evals_letters.json").read_text(encoding="utf-8"))
NUMBERS = json.loads((CORPORA / "simple_evals_mgsm.json").read_text(encoding="utf-8"))
MARKER = re.compile(r"\[#(\d+)\]")

TEXTS = [
    "Which statement about entropy is true?",
    "¿Cuál de las siguientes afirmaciones es correcta?",
    "Что из перечисленного верно для энтропии?",
    "量子力学において正しいのはどれか？",
    "电子的电荷是多少？",
    "Welche Aussage über Zellen stimmt?",
    "Ποια είναι η σωστή απάντηση;",
    "সঠিক উত্তর কোনটি?",
    "Compute $\\frac{1}{2} + x^{2}$ where {x} = 3; which is larger, 2^{10} or 10^3?",
    "A \"quoted\" claim, a 'single' one,\ta tab and a comma, here.",
    "First line.\nSecond line.\n\n  Indented third line.",
    "  Leading and trailing spaces.  ",
    "ما هي قيمة π تقريبًا؟ 🧪",
    "Which of these is a prime number: 91, 97, or 51?",
]
OPTIONS = [
    "Entropy always decreases",
    "Энтропия растёт",
    "电子",
    "1/2",
    "$\\sqrt{2}$",
    "{placeholder}",
    "None of the above",
    "Both A and B",
    "  spaced  ",
    "λ = h/p",
    "42",
    "Ja, immer",
    "العدد ٣",
    "কোনোটিই নয়",
    "x^{2} + 1",
    "'single' and \"double\"",
]


def rows_mmlu(n: int) -> list[dict[str, Any]]:
    rng = random.Random(1)
    rows = []
    for i in range(n):
        gold = LETTERS[i % len(LETTERS)]["gold"]
        rows.append({
            "question": f"{TEXTS[i % len(TEXTS)]} [#{i}]",
            "subject": MMLU_SUBJECTS[i % len(MMLU_SUBJECTS)],
            "choices": rng.sample(OPTIONS, 4),
            "answer": "ABCD".index(gold) if gold in "ABCD" else i % 4,
        })  # fmt: skip
    return rows


CATEGORIES = ["math", "physics", "law", "chemistry", "economics", "other", "history",
              "psychology", "business", "biology", "philosophy", "health", "engineering",
              "computer science"]  # fmt: skip


def rows_mmlu_pro(n: int) -> list[dict[str, Any]]:
    rng = random.Random(2)
    rows = []
    for i in range(n):
        width = 10 if i % 3 == 0 else rng.randint(3, 9)
        gold = LETTERS[i % len(LETTERS)]["gold"]
        index = "ABCDEFGHIJ".index(gold) if gold in "ABCDEFGHIJ"[:width] else i % width
        rows.append({
            "question_id": 70 + i, "question": f"{TEXTS[i % len(TEXTS)]} [#{i}]",
            "options": [f"{OPTIONS[(i + k) % len(OPTIONS)]} ({k})" for k in range(width)],
            "answer": "ABCDEFGHIJ"[index], "answer_index": index, "cot_content": "",
            "category": CATEGORIES[i % len(CATEGORIES)], "src": f"ori_mmlu-{i % 5}",
        })  # fmt: skip
    return rows


GPQA_COLUMNS = [
    "Pre-Revision Question", "Pre-Revision Correct Answer", "Question", "Correct Answer",
    "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3", "Explanation",
    "Subdomain", "Writer's Difficulty Estimate", "Record ID", "High-level domain",
    "Self-reported question-writing time (minutes)",
]  # fmt: skip
MISSING = ["N/A", "NA", "null", "", "None", "nan", "#N/A"]  # pandas reads these as missing


def rows_gpqa(n: int) -> list[dict[str, Any]]:
    rng = random.Random(3)
    rows = []
    for i in range(n):
        answers = rng.sample(OPTIONS, 4)
        if i % 9 == 4:
            answers[1 + i % 3] = MISSING[i % len(MISSING)]
        if i == 13:
            answers[0] = "None"
        rows.append({
            "Pre-Revision Question": "old", "Pre-Revision Correct Answer": answers[0],
            "Question": f"{TEXTS[i % len(TEXTS)]} [#{i}]\n", "Correct Answer": answers[0],
            "Incorrect Answer 1": answers[1], "Incorrect Answer 2": answers[2],
            "Incorrect Answer 3": answers[3], "Explanation": "Because, \"obviously\".",
            "Subdomain": "Physics (general)", "Writer's Difficulty Estimate": "Hard graduate",
            "Record ID": f"rec{i:03d}", "High-level domain": ["Physics", "Chemistry", "Biology"][i % 3],
            "Self-reported question-writing time (minutes)": "" if i % 4 == 0 else str(10 + i),
        })  # fmt: skip
    return rows


def rows_mgsm() -> dict[str, list[dict[str, Any]]]:
    """Per language: the corpus entries of that language, as juletxara/mgsm rows."""
    by_language: dict[str, list[dict[str, Any]]] = {lang: [] for lang in MGSM_LANGUAGES}
    for i, entry in enumerate(NUMBERS):
        question = f"{TEXTS[i % len(TEXTS)].replace(chr(10), ' ').replace(chr(9), ' ')} [#{i}]"
        by_language[entry["language"]].append(
            {"question": question, "answer": None, "answer_number": entry["target"],
             "equation_solution": None}
        )  # fmt: skip
    return by_language


def _csv(rows: list[dict[str, Any]]) -> str:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=GPQA_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def _tsv(rows: list[dict[str, Any]]) -> bytes:
    lines = []
    for k, row in enumerate(rows):
        number = row["answer_number"]
        shown = f"{number:,}" if k % 2 and number >= 1000 else str(number)  # the TSVs' "1,000"
        lines.append(f"{row['question']}\t{shown}\n")
    return "".join(lines).encode()


class Setup:
    """One task's generated data: the reference's tables, evalfleet's files, responses."""

    def __init__(self, task: str, tmp: Path) -> None:
        self.task = task
        self.files: dict[str, bytes] = {}
        self.tables: dict[str, Any] = {}
        self.csv_tables: dict[str, Any] = {}
        if task == "simple_evals.mmlu":
            rows = rows_mmlu(80)
            for subject in MMLU_SUBJECTS:
                mine = [r for r in rows if r["subject"] == subject]
                self.tables[f"cais/mmlu:{subject}"] = {"test": mine}
                self.files[f"mmlu-{subject}-test"] = parquet_bytes(mine)
            self.responses = {i: LETTERS[i % len(LETTERS)]["response"] for i in range(len(rows))}
        elif task == "simple_evals.mmlu_pro":
            rows = rows_mmlu_pro(70)
            self.tables["TIGER-Lab/MMLU-Pro"] = {"test": rows}
            self.files["mmlu_pro-test"] = parquet_bytes(rows)
            self.responses = {i: LETTERS[i % len(LETTERS)]["response"] for i in range(len(rows))}
        elif task == "simple_evals.gpqa_diamond":
            rows = rows_gpqa(70)
            text = _csv(rows)
            self.csv_tables["Idavidrein/gpqa:gpqa_diamond"] = {"train": text}
            self.files["gpqa_diamond"] = text.encode()
            self.responses = {i: LETTERS[i % len(LETTERS)]["response"] for i in range(len(rows))}
        else:
            for language, mine in rows_mgsm().items():
                self.tables[f"juletxara/mgsm:{language}"] = {"test": mine}
                self.files[f"mgsm-{language}"] = _tsv(mine)
            self.responses = {i: entry["response"] for i, entry in enumerate(NUMBERS)}
        self.tmp = tmp

    def payload(self, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "type": self.task, "tables": self.tables, "csv_tables": self.csv_tables,
            "responses": [[f"[#{i}]", text] for i, text in self.responses.items()],
            **({"params": params} if params else {}),
        }  # fmt: skip

    def ours(self, monkeypatch: pytest.MonkeyPatch) -> Any:
        """The evalfleet task reading these rows through its own readers."""

        def load_rows(task: str, source_name: str) -> list[dict[str, Any]]:
            assert task == self.task
            path = self.tmp / source_name
            path.write_bytes(self.files[source_name])
            return read_rows(SOURCES[source_name], path)

        module = "mgsm" if self.task == "simple_evals.mgsm" else "simple_evals_mc"
        monkeypatch.setattr(f"evalfleet.tasks.{module}.load_rows", load_rows)
        return create_task(self.task)


TASKS = [
    "simple_evals.mmlu",
    "simple_evals.mmlu_pro",
    "simple_evals.gpqa_diamond",
    "simple_evals.mgsm",
]
_RUNS: dict[tuple[str, str], tuple[Setup, dict[str, Any]]] = {}


@pytest.fixture
def reference(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """(setup, the reference's answer) for the task, run once per session."""
    task = request.param
    key = (task, "default")
    if key not in _RUNS:
        setup = Setup(task, tmp_path_factory.mktemp(task.split(".")[1]))
        _RUNS[key] = (setup, run_reference("simple_evals_mc", setup.payload()))
    return _RUNS[key]


def marker(text: str) -> int:
    found = MARKER.search(text)
    assert found, text[-200:]
    return int(found.group(1))


def body_of(task: Any, sample: Any, index: int, **params: Any) -> dict[str, Any]:
    """What the engine sends for `sample` as request number `index` (its first repeat:
    index = position; repeat r: r x samples + position)."""
    effective = effective_params(task.default_params, params)
    return build_body(task, sample, effective, "m", 0, build_interceptors({}), index)


def by_marker(task: Any, limit: int | None = None) -> dict[int, tuple[int, Any]]:
    """marker -> (position in the task's samples, sample)."""
    return {marker(s.messages[-1]["content"]): (p, s) for p, s in enumerate(task.samples(limit))}


@pytest.mark.parametrize("reference", TASKS, indirect=True)
def test_request_bodies_are_the_references(reference, monkeypatch) -> None:
    """Every request body (messages, seed, temperature, top_p, max_tokens, model) is
    byte-identical once JSON-decoded, for every generated row."""
    setup, ref = reference
    task = setup.ours(monkeypatch)
    samples = by_marker(task)
    assert len(ref["requests"]) == len(samples) >= 50
    for body in ref["requests"]:
        position, sample = samples[marker(body["messages"][-1]["content"])]
        ours = body_of(task, sample, position)
        assert ours == body
        assert json.dumps(ours, ensure_ascii=False, sort_keys=True) == json.dumps(
            body, ensure_ascii=False, sort_keys=True
        )


@pytest.mark.parametrize("reference", TASKS, indirect=True)
def test_verdicts_are_the_references(reference, monkeypatch) -> None:
    """The corpus replayed: the same extracted answer, target and score for every reply."""
    setup, ref = reference
    task = setup.ours(monkeypatch)
    samples = by_marker(task)
    assert len(ref["examples"]) == len(samples)
    corpus_size = len(NUMBERS) if setup.task == "simple_evals.mgsm" else len(LETTERS)
    assert len({marker(e["prompt"]) % corpus_size for e in ref["examples"]}) == corpus_size >= 40
    for example in ref["examples"]:
        index = marker(example["prompt"])
        _, sample = samples[index]
        score = task.score(sample, setup.responses[index])
        assert sample.messages[-1]["content"] == example["prompt"]
        assert str(sample.target) == example["correct"], index
        assert str(score.extracted) == example["extracted"], (index, setup.responses[index])
        assert score.value == float(example["score"] == "True" or example["score"] == "1.0"), (
            index, setup.responses[index], example,
        )  # fmt: skip


@pytest.mark.parametrize("reference", TASKS, indirect=True)
def test_metrics_are_the_references(reference, monkeypatch) -> None:
    """`score`, its standard error, every per-category / per-language metric and
    `score_macro`, under the reference's names."""
    setup, ref = reference
    task = setup.ours(monkeypatch)
    samples = by_marker(task)
    per_sample = [(s, task.score(s, setup.responses[i]).value) for i, (_, s) in samples.items()]
    ours = task.aggregate(per_sample)
    expected = {k: v for k, v in ref["metrics"].items() if ":" not in k and k != "task_name"}
    assert set(ours) == set(expected)
    for name, value in expected.items():
        assert math.isclose(ours[name].value, value, abs_tol=1e-12), name
        if f"{name}:stderr" in ref["metrics"]:
            assert math.isclose(ours[name].stderr, ref["metrics"][f"{name}:stderr"], abs_tol=1e-12)


@pytest.mark.parametrize(
    ("task_name", "params", "limit", "repeats"),
    [
        (
            "simple_evals.mmlu",
            {"limit_samples": 7, "extra": {"n_samples": 2, "args": "--seed 7"}},
            7,
            2,
        ),
        ("simple_evals.gpqa_diamond", {"limit_samples": 5}, 5, 1),
        # Every repeat of a GPQA question has its own choice order (the engine asks the
        # task's `for_repeat`): prompts, targets and seeds as the reference draws them.
        ("simple_evals.gpqa_diamond", {"limit_samples": 5, "extra": {"n_samples": 3}}, 5, 3),
        (
            "simple_evals.gpqa_diamond",
            {"limit_samples": 5, "extra": {"n_samples": 2, "args": "--seed 7"}},
            5,
            2,
        ),
        ("simple_evals.mgsm", {"limit_samples": 3}, 3, 1),
    ],
)
def test_limit_and_repeats_take_the_references_examples_and_seeds(
    task_name, params, limit, repeats, monkeypatch, tmp_path
) -> None:
    """`limit_samples` is `--first_n` (the first N, before repeats: MGSM's first Bengali
    problems); repeat r of example i carries the seed of index r * N + i; `params.seed` is
    simple-evals' `--seed`."""
    setup = Setup(task_name, tmp_path)
    ref = run_reference("simple_evals_mc", setup.payload(params))
    task = setup.ours(monkeypatch)
    seed = {"seed": 7} if "--seed" in params.get("extra", {}).get("args", "") else {}
    if seed and hasattr(task, "base_seed"):
        task.base_seed = seed["seed"]  # as the engine does with params.seed
    samples = by_marker(task, limit)
    assert len(samples) == limit and len(ref["requests"]) == limit * repeats
    expected = sorted(
        (marker(b["messages"][-1]["content"]), json.dumps(b, sort_keys=True))
        for b in ref["requests"]
    )

    def variant(sample: Any, index: int, repeat: int) -> Any:
        # As the engine does (runner.unanswered).
        return task.for_repeat(sample, index) if repeat and hasattr(task, "for_repeat") else sample

    ours = sorted(
        (
            key,
            json.dumps(
                body_of(task, variant(sample, r * limit + p, r), r * limit + p, **seed),
                sort_keys=True,
            ),
        )
        for key, (p, sample) in samples.items()
        for r in range(repeats)
    )
    assert ours == expected
    if repeats > 1 and task_name == "simple_evals.gpqa_diamond":
        prompts = {json.loads(body)["messages"][-1]["content"] for _, body in ours}
        assert len(prompts) > limit  # the orders really differ between repeats
    per_sample = [
        (
            s,
            sum(
                task.score(variant(s, r * limit + p, r), setup.responses[i]).value
                for r in range(repeats)
            )
            / repeats,
        )
        for i, (p, s) in samples.items()
    ]
    assert math.isclose(task.aggregate(per_sample)["score"].value, ref["metrics"]["score"])
