"""Answers scored on the event loop as they arrive give exactly what scoring them all at
the end gives: the same samples.jsonl lines, the same results."""

from __future__ import annotations

import asyncio
import json

from evalfleet.contract.spec import JobSpec
from evalfleet.engine import results as results_module
from evalfleet.engine import runner
from evalfleet.testing import run_simulator
from tests.engine.conftest import N_SAMPLES, oracle


def test_scoring_on_arrival_equals_scoring_at_the_end(tmp_path, dataset, monkeypatch):
    calls: list[dict] = []
    build = results_module.build_results

    def spy(**kwargs):
        calls.append(kwargs)
        return build(**kwargs)

    monkeypatch.setattr(runner, "build_results", spy)
    with run_simulator(answers=oracle(), latency=0.02, reasoning=True) as sim:
        job = JobSpec.model_validate(
            {
                "invocation_id": "abcd0123",
                "job_id": "abcd0123.0",
                "task": "adds",
                "endpoint": {"url": f"{sim.base_url}/v1/chat/completions", "model_id": "sim-model"},
                "params": {"parallelism": 16, "n_samples": 2},
                "output_dir": str(tmp_path / "out"),
                "dataset": {"path": str(dataset)},
                "scorer": {"name": "numeric"},
                "interceptors": {"reasoning": {"strip": True}},
            }
        )
        results, _ = asyncio.run(runner.evaluate(job))
    (kwargs,) = calls
    assert len(kwargs["scored"]) > N_SAMPLES, "most answers should be scored as they arrive"
    at_the_end, lines = build(**{**kwargs, "scored": None})
    written = (tmp_path / "out" / "samples.jsonl").read_text().splitlines()
    assert lines == written and len(written) == 2 * N_SAMPLES
    assert all(json.loads(line)["reasoning"] for line in written)  # the interceptor ran
    assert {k: v for k, v in at_the_end.items() if k != "versions"} == {
        k: v for k, v in results.items() if k != "versions"
    }
    assert results["metrics"]["accuracy"]["value"] == 0.75
