"""IFEval end to end through `evalfleet eval --job`: the endpoint simulator answers every
one of the 541 prompts with a response that follows all its instructions (score 1.0 on
each, except the few prompts that contradict themselves), then with responses that break
one instruction each (score 0.0)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from evalfleet.testing import run_simulator

from .compose import INFEASIBLE, compose
from .responses import build


def run_ifeval(base_url: str, out: Path, *extra: str) -> tuple[dict, dict[int, float]]:
    out.mkdir(exist_ok=True)
    job = out / "job.json"
    spec = {
        "invocation_id": "feedbeef",
        "job_id": "feedbeef.0",
        "task": "ifeval",
        "endpoint": {"url": f"{base_url}/v1/chat/completions", "model_id": "sim-model"},
        "params": {"parallelism": 32},
        "output_dir": str(out),
    }
    job.write_text(json.dumps(spec))
    done = subprocess.run(
        [sys.executable, "-m", "evalfleet", "eval", "--job", str(job), "-q", *extra],
        capture_output=True, text=True, timeout=300, env=dict(os.environ),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    return results, {int(r["id"]): r["score"] for r in records}


def test_following_answers_score_one_and_breaking_answers_zero(prompts, tmp_path):
    right = {p.prompt: compose(p) for p in prompts}
    with run_simulator(answers=right) as sim:
        results, scores = run_ifeval(sim.base_url, tmp_path / "right")
        requests = sim.stats()["requests"]
    assert requests == 541
    assert results["headline_metric"] == "prompt_level_strict_acc"
    assert results["params"]["max_new_tokens"] == 1280 and results["params"]["temperature"] == 1e-07
    assert {key for key, score in scores.items() if score != 1.0} == set(INFEASIBLE)
    metrics = results["metrics"]
    feasible = 541 - len(INFEASIBLE)
    assert metrics["prompt_level_strict_acc"]["value"] == feasible / 541
    assert metrics["prompt_level_strict_acc"]["n"] == 541
    # Each contradictory prompt breaks exactly one of its instructions.
    assert metrics["inst_level_strict_acc"]["value"] == (834 - len(INFEASIBLE)) / 834
    assert metrics["inst_level_strict_acc"]["n"] == 834
    assert metrics["prompt_level_loose_acc"]["value"] >= metrics["prompt_level_strict_acc"]["value"]
    assert metrics["prompt_level_strict_acc"]["stderr"] > 0

    rescored, _ = run_ifeval("http://127.0.0.1:9", tmp_path / "right", "--rescore")
    assert rescored["metrics"] == metrics  # from the response cache alone, not one request

    wrong = {p.prompt: build(p, 0, follow=False) for p in prompts}
    with run_simulator(answers=wrong) as sim:
        results, scores = run_ifeval(sim.base_url, tmp_path / "wrong")
    assert set(scores.values()) == {0.0}
    assert results["metrics"]["prompt_level_strict_acc"]["value"] == 0.0
    assert results["metrics"]["inst_level_strict_acc"]["value"] < 0.5
