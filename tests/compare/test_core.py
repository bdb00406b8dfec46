"""compare's pairing on constructed samples.jsonl content: repeats averaged per sample,
errored samples left unpaired, continuous metrics tested by the permutation test, and
per-sample extra metrics compared beside the headline."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from evalfleet.compare._load import Run, TaskRun
from evalfleet.compare.core import compare
from evalfleet.compare.stats import paired_bootstrap_ci95, sign_flip_p

np = pytest.importorskip("numpy")
scipy_stats = pytest.importorskip("scipy.stats")


def task_run(samples: list[dict], metrics: tuple[str, ...] = ("f1",)) -> TaskRun:
    results = {"headline_metric": "f1", "metrics": {name: {"value": 0.0} for name in metrics}}
    return TaskRun("qa", Path("/nonexistent"), results, {}, samples)


def run(invocation_id: str, samples: list[dict], **kw) -> Run:
    return Run(invocation_id, "m-" + invocation_id, 0.0, {"qa": task_run(samples, **kw)}, {})


def test_continuous_scores_with_repeats_and_errors() -> None:
    rng = random.Random(2)
    base_scores = [[rng.random(), rng.random()] for _ in range(40)]
    cand_scores = [[min(1.0, s + 0.1) for s in pair] for pair in base_scores]
    base, cand = [], []
    for i in range(40):
        for repeat in range(2):
            base.append({"id": f"q{i}", "repeat": repeat, "score": base_scores[i][repeat]})
            # q0 errored in the candidate's both repeats: not shared; q1 in one: the other counts
            errored = i == 0 or (i == 1 and repeat == 0)
            cand.append(
                {"id": f"q{i}", "repeat": repeat, "score": None if errored else cand_scores[i][repeat],
                 "error": "timeout" if errored else None}
            )  # fmt: skip
    comparison = compare([run("a", base), run("b", cand)])
    (row,) = comparison["rows"]
    assert (row["kind"], row["test"], row["n_shared"]) == ("continuous", "permutation", 39)
    base_mean = {i: sum(base_scores[i]) / 2 for i in range(1, 40)}
    cand_mean = {i: sum(cand_scores[i]) / 2 for i in range(2, 40)} | {1: cand_scores[1][1]}
    diffs = [cand_mean[i] - base_mean[i] for i in range(1, 40)]
    assert row["difference"] == pytest.approx(sum(diffs) / 39)
    assert row["baseline_value"] == pytest.approx(sum(base_mean.values()) / 39)
    assert row["ci95"] == pytest.approx(list(paired_bootstrap_ci95(diffs)))
    assert row["p_value"] == sign_flip_p(diffs)
    expected = scipy_stats.permutation_test(
        (np.array(list(base_mean.values())), np.array([cand_mean[i] for i in range(1, 40)])),
        lambda b, c, axis: np.mean(c - b, axis=axis), permutation_type="samples",
        vectorized=True, n_resamples=9_999, random_state=np.random.default_rng(1),
    ).pvalue  # fmt: skip
    assert row["p_value"] == pytest.approx(expected, abs=0.01)
    assert row["significant"] is True
    assert (row["right_to_wrong"], row["wrong_to_right"]) == (0, 0)
    assert comparison["flips"] == []


def test_extra_per_sample_metrics_and_unpaired_aggregates() -> None:
    base = [{"id": f"q{i}", "score": float(i % 2), "metrics": {"em": 0.0}} for i in range(20)]
    cand = [{"id": f"q{i}", "score": float(i % 2), "metrics": {"em": float(i < 5)}}
            for i in range(20)]  # fmt: skip
    comparison = compare(
        [run("a", base, metrics=("f1", "em", "f1_history")),
         run("b", cand, metrics=("f1", "em", "f1_history"))]
    )  # fmt: skip
    rows = {row["metric"]: row for row in comparison["rows"]}
    assert rows["f1"]["difference"] == 0.0 and rows["f1"]["p_value"] == 1.0
    assert (rows["em"]["kind"], rows["em"]["wrong_to_right"], rows["em"]["right_to_wrong"]) == (
        "binary", 5, 0,
    )  # fmt: skip
    assert rows["em"]["difference"] == pytest.approx(0.25)
    # Flips are listed for the headline only.
    assert comparison["flips"] == []
    assert comparison["skipped"] == [
        {"task": "qa", "reason": "no per-sample values to pair (results.json only): f1_history"}
    ]
