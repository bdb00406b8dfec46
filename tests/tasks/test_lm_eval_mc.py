"""lm-eval's log-likelihood multiple-choice tasks end to end through `evalfleet eval --job`
on the fixture rows (default few-shot counts: HellaSwag 10, WinoGrande 5, the rest 0): the
simulator makes the gold choice's prompt the likeliest (or a wrong one), and the metrics
come out under lm-eval's names. That the pairs are lm-eval's own is proven against lm-eval
in tests/references/test_lm_eval_loglikelihood.py; here the task's pairs key the oracle.
"""

from __future__ import annotations

import json

import pytest

from evalfleet.tasks.catalog import resolve_task_name
from evalfleet.tasks.registry import create_task
from evalfleet.testing import run_simulator
from tests import datafixtures as fx
from tests.tasks.test_catalog_oracle import run_job, write_job

TASKS = {  # bare name (as the launcher resolves it on completions): eval rows, metrics
    "arc_challenge": (fx.ARC, ("acc_norm", "acc")),
    "arc_easy": (fx.ARC_EASY, ("acc_norm", "acc")),
    "hellaswag": (fx.HELLASWAG, ("acc_norm", "acc")),
    "piqa": (fx.PIQA, ("acc_norm", "acc")),
    "winogrande": (fx.WINOGRANDE, ("acc",)),
    "openbookqa": (fx.OPENBOOKQA, ("acc_norm", "acc")),
}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_gold_likeliest_scores_one_and_a_wrong_choice_zero(task, pinned_to_fixtures, cli, tmp_path):
    rows, metrics = TASKS[task]
    qualified = resolve_task_name(task, "completions").name
    assert qualified == f"lm-evaluation-harness.{task}"
    local = create_task(task, endpoint_type="completions")
    samples = list(local.samples(None))
    assert len(samples) == len(rows)
    for right, expected in ((True, 1.0), (False, 0.0)):
        answers = {}
        for sample in samples:
            pairs = local.pairs(sample)
            pick = sample.target if right else (sample.target + 1) % len(pairs)
            context, continuation = pairs[pick]
            answers[context + continuation] = {"token_logprob": 0.0}
        with run_simulator(answers=answers) as sim:
            job = write_job(tmp_path / f"{task}-{right}", sim.base_url, task, "completions")
            results = run_job(cli, job)
            sent = sim.stats()["requests"]
        assert results["headline_metric"] == metrics[0]
        assert sorted(results["metrics"]) == sorted(metrics)
        for metric in metrics:
            assert results["metrics"][metric]["value"] == expected, (task, metric)
            assert results["metrics"][metric]["n"] == len(rows)
        assert sent == sum(len(local.pairs(s)) for s in samples)
    lines = (job.parent / "samples.jsonl").read_text().splitlines()
    assert all(json.loads(line)["error"] is None for line in lines)


def test_num_fewshot_is_a_task_option_with_the_launchers_defaults():
    from evalfleet.tasks.catalog import task_options

    defaults = {
        task: {o.name: o.default for o in task_options(f"lm-evaluation-harness.{task}")}
        for task in TASKS
    }
    assert defaults == {
        "arc_challenge": {"num_fewshot": 0}, "arc_easy": {"num_fewshot": 0},
        "hellaswag": {"num_fewshot": 10}, "piqa": {"num_fewshot": 0},
        "winogrande": {"num_fewshot": 5}, "openbookqa": {"num_fewshot": 0},
    }  # fmt: skip
    assert create_task("hellaswag", endpoint_type="completions").num_fewshot == 10
    three = create_task("arc_easy", endpoint_type="completions", options={"num_fewshot": 3})
    assert three.num_fewshot == 3


def test_winogrande_partial_scoring_pairs(pinned_to_fixtures):
    """The option goes into the context, the rest of the sentence is the continuation."""
    task = create_task("winogrande", endpoint_type="completions", options={"num_fewshot": 0})
    first = next(iter(task.samples(None)))
    assert task.pairs(first) == [
        ("The trophy didn't fit in the suitcase because the trophy", " was too big."),
        ("The trophy didn't fit in the suitcase because the suitcase", " was too big."),
    ]
