"""The ifeval task object: the prompt sent as-is, defaults, the four metrics over repeats."""

from __future__ import annotations

import json

import pytest

from evalfleet.tasks.catalog import runnable
from evalfleet.tasks.ifeval import METRICS, IFEval
from evalfleet.tasks.registry import create_task


def test_the_registry_makes_it_and_the_catalog_shows_it_runnable(prompts):
    task = create_task("lm-evaluation-harness.ifeval")
    assert isinstance(task, IFEval) and task.endpoint_type == "chat"
    assert task.headline_metric == "prompt_level_strict_acc"
    assert task.default_params == {
        "temperature": 1e-07,
        "top_p": 0.9999999,
        "max_new_tokens": 1280,
        "seed": 1234,
    }  # lm-eval's and the launcher's (proven in tests/references/test_lm_eval_generative.py)
    assert runnable("lm-evaluation-harness.ifeval") == "yes"


def test_the_prompt_is_sent_as_is(prompts):
    sample = next(iter(IFEval().samples(1)))
    assert IFEval().request(sample) == {
        "messages": [{"role": "user", "content": prompts[0].prompt}]
    }
    assert sample.id == "1000" and sample.target == list(prompts[0].instruction_ids)
    assert len(list(IFEval().samples(None))) == 541


def test_metrics_over_prompts_instructions_and_repeats(prompts):
    task = IFEval()
    first, second = task.samples(2)
    assert len(first.metadata["instruction_ids"]) == 3
    # first prompt: no commas, 3 highlights, >= 300 words.
    good = "*a* *b* *c* " + "word " * 300
    lazy = "*a* *b* *c* short"  # follows 2 of 3
    with_comma = '"Sure, ' + "word " * 300 + '"'
    scores = [task.score(first, good), task.score(first, lazy), task.score(second, with_comma)]
    assert [s.value for s in scores] == [1.0, 0.0, 0.0]
    assert json.loads(scores[1].extracted) == {
        "strict": [True, True, False],
        "loose": [True, True, False],
    }
    # The engine passes each sample's mean over repeats; verdicts come from score().
    metrics = task.aggregate([(first, 0.5), (second, 0.0)])
    assert set(metrics) == set(METRICS)
    assert metrics["prompt_level_strict_acc"].value == pytest.approx(0.25)
    assert metrics["prompt_level_strict_acc"].n == 2
    # Instructions: the first prompt's 1, 1, 0.5 over its two repeats, then the second's.
    inst = metrics["inst_level_strict_acc"]
    second_verdicts = json.loads(scores[2].extracted)["strict"]
    count = 3 + len(second_verdicts)
    assert inst.n == count == 3 + len(second.metadata["instruction_ids"])
    assert inst.value == pytest.approx((1 + 1 + 0.5 + sum(second_verdicts)) / count)


def test_a_missing_scoring_package_stops_the_run_before_any_request(monkeypatch):
    import importlib.util

    from evalfleet.exceptions import NotAvailableError

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "langdetect" else real(name)
    )
    with pytest.raises(
        NotAvailableError, match=r"needs the langdetect package.*evalfleet\[ifeval\]"
    ):
        IFEval().samples(3)
    assert runnable("lm-evaluation-harness.ifeval") == "needs evalfleet[ifeval]"
