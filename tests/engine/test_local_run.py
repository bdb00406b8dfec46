"""`evalfleet run` with execution local and deployment none: the engine, end to end."""

from __future__ import annotations

import json
from pathlib import Path

from evalfleet.testing import run_simulator
from tests.engine.conftest import N_SAMPLES, oracle


def test_run_records_runs_and_reports(cli, write_yaml, dataset):
    with run_simulator(answers=oracle()) as sim:
        config = write_yaml(
            f"""\
target:
  api_endpoint:
    url: {sim.base_url}/v1/chat/completions
    model_id: sim-model
execution: {{type: local, output_dir: results, mode: parallel}}
evaluation:
  params: {{parallelism: 16}}
  tasks:
    - name: adds
      dataset: {{path: {dataset}}}
      scorer: numeric
    - name: adds_strict
      dataset: {{path: {dataset}}}
      scorer: exact_match
      params: {{limit_samples: 10}}
"""
        )
        result = cli("run", "--config", str(config))
        assert result.code == 0, result.err
        invocation_id = result.out.strip().splitlines()[-1]
        assert sim.stats()["requests"] == N_SAMPLES + 10
    rows = json.loads(cli("status", invocation_id, "--json").out)
    assert [(r["task"], r["state"]) for r in rows] == [
        ("adds", "SUCCESS"),
        ("adds_strict", "SUCCESS"),
    ]
    assert rows[0]["detail"].startswith("accuracy 0.7500")
    assert rows[1]["detail"].startswith("accuracy 0.0000")  # "It is 2." is not exactly "2"
    runs = json.loads(cli("ls", "runs", "--json").out)
    assert runs[0]["invocation_id"] == invocation_id and runs[0]["tasks"] == ["adds", "adds_strict"]
    root = Path("results") / invocation_id
    assert (root / "config.yaml").is_file()
    for task in ("adds", "adds_strict"):
        assert json.loads((root / task / "job.json").read_text())["task"] == task
        assert (root / task / "results.json").is_file()


def test_unreachable_endpoint_fails_the_task_and_says_so(cli, write_yaml, dataset):
    config = write_yaml(
        f"""\
target: {{api_endpoint: {{url: "http://127.0.0.1:9/v1", model_id: m}}}}
evaluation:
  params: {{max_retries: 0, limit_samples: 5}}
  tasks: [{{name: adds, dataset: {{path: {dataset}}}, scorer: numeric}}]
"""
    )
    result = cli("run", "--config", str(config))
    assert result.code == 1
    invocation_id = result.out.strip().splitlines()[-1]
    (row,) = json.loads(cli("status", invocation_id, "--json").out)
    assert row["state"] == "FAILED"
    assert row["detail"].startswith(
        "endpoint http://127.0.0.1:9/v1/chat/completions is unreachable"
    )
