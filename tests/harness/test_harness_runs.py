"""Framework packages run by their launcher names through `evalfleet run`, end to end and
offline, against the endpoint simulator; each compared with the same package run by
nemo-evaluator itself (as the launcher's containers run it) against the same simulator.

The simulator answers every prompt with one fixed text (`default_answer`), so both runs
get the same answers and any difference in the metrics is a difference in how the
harness was run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalfleet.testing import run_simulator
from tests.harness.conftest import metric_values, nemo_evaluator_run

# The first MMATH (English) problem is AIME 2024's #0, answer 204: one of three right.
MMATH_ANSWER = "Let me think. The answer is \\boxed{204}."


def _config(write_yaml, url: str, tasks: str, **extra: str) -> Path:
    text = f"""\
target: {{api_endpoint: {{url: "{url}/v1/chat/completions", model_id: sim-model}}}}
execution: {{type: local, output_dir: results}}
evaluation:
  tasks:
{tasks}
"""
    return write_yaml(text)


def _results(invocation_id: str, task_dir: str) -> dict:
    return json.loads((Path("results") / invocation_id / task_dir / "results.json").read_text())


def _run_ok(cli, config: Path) -> str:
    result = cli("run", "--config", str(config))
    assert result.code == 0, result.out + result.err
    return result.out.strip().splitlines()[-1]


def test_mmath_by_its_launcher_name_equals_nemo_evaluators_run(
    cli, write_yaml, harness_env, tmp_path
):
    venv = harness_env("nvidia-mmath")
    with run_simulator(default_answer=MMATH_ANSWER) as sim:
        config = _config(
            write_yaml,
            sim.base_url,
            "    - name: mmath_en\n"
            "      params: {limit_samples: 3}\n"
            "      nemo_evaluator_config: {config: {params: {parallelism: 2, extra: {n_samples: 2}}}}",
        )
        invocation_id = _run_ok(cli, config)
        ours_requests = sim.stats()["requests"]
        sim.reset_stats()
        theirs = nemo_evaluator_run(
            venv, "mmath.mmath_en", f"{sim.base_url}/v1/chat/completions", tmp_path / "nel",
            {"config.params.limit_samples": 3, "config.params.parallelism": 2,
             "config.params.extra.n_samples": 2},
        )  # fmt: skip
        assert sim.stats()["requests"] == ours_requests == 3  # one request (n: 2) per problem
    results = _results(invocation_id, "mmath_en")
    assert results["task"] == "mmath.mmath_en"
    assert results["harness"]["package"] == "nvidia-mmath"
    assert results["harness"]["results"] == theirs
    values = metric_values(results)
    assert values == {
        name: metric["value"]
        for name, metric in _flatten(theirs).items()  # the harness's own numbers
    }
    assert values[results["headline_metric"]] == pytest.approx(1 / 3)
    assert results["counts"]["responses"] == 3 and results["counts"]["errors"] == 0
    lines = (
        (Path("results") / invocation_id / "mmath_en" / "samples.jsonl").read_text().splitlines()
    )
    assert len(lines) == 3
    rows = json.loads(cli("status", invocation_id, "--json").out)
    assert rows[0]["state"] == "SUCCESS"
    assert rows[0]["detail"].startswith(results["headline_metric"])
    # The harness's own output is part of the job's log.
    logs = cli("logs", invocation_id).out
    assert "[mmath_en]" in logs and "harness | " in logs and "mmath --model-url" in logs
    # Exported like any task: its headline under the launcher's metric name.
    exported = cli("export", invocation_id, "--dest", "local", "--output-dir", "exported")
    assert exported.code == 0, exported.err
    (row,) = json.loads(Path("exported/summary.json").read_text())["rows"]
    assert (row["task"], row["headline_metric"]) == ("mmath_en", results["headline_metric"])
    assert row["value"] == pytest.approx(1 / 3)


def test_bfcl_tool_calls_go_through_the_proxy_unchanged(cli, write_yaml, harness_env, tmp_path):
    venv = harness_env("nvidia-bfcl")
    with run_simulator() as sim:
        config = _config(
            write_yaml,
            sim.base_url,
            "    - name: bfcl.bfclv3_ast\n      params: {limit_samples: 4, parallelism: 2}",
        )
        invocation_id = _run_ok(cli, config)
        theirs = nemo_evaluator_run(
            venv, "bfcl.bfclv3_ast", f"{sim.base_url}/v1/chat/completions", tmp_path / "nel",
            {"config.params.limit_samples": 4, "config.params.parallelism": 2},
        )  # fmt: skip
    results = _results(invocation_id, "bfcl.bfclv3_ast")
    assert results["harness"]["results"] == theirs
    assert metric_values(results) == {k: m["value"] for k, m in _flatten(theirs).items()}
    # The requests carried the task's tools (native function calling) to the endpoint.
    logged = [
        json.loads(line)
        for line in (Path("results") / invocation_id / "bfcl.bfclv3_ast" / "samples.jsonl")
        .read_text()
        .splitlines()
    ]
    assert logged and all("tools" in entry["request"] for entry in logged)


def test_mtbench_with_the_simulator_as_its_judge(cli, write_yaml, harness_env, tmp_path):
    venv = harness_env("nvidia-mtbench-evaluator")
    # mtbench's output.py reads result.json, which it writes only for its default judge
    # model name (gpt-4): the judge simulator serves that name.
    with run_simulator() as model, run_simulator(model="gpt-4", default_answer="[[7]]") as judge:
        judge_url = f"{judge.base_url}/v1"
        config = _config(
            write_yaml,
            model.base_url,
            "    - name: mtbench.mtbench\n"
            "      params: {limit_samples: 2}\n"
            f"      nemo_evaluator_config: {{config: {{params: {{extra: {{judge: {{url: '{judge_url}'}}}}}}}}}}",
        )
        invocation_id = _run_ok(cli, config)
        ours_judged = judge.stats()["requests"]
        theirs = nemo_evaluator_run(
            venv, "mtbench.mtbench", f"{model.base_url}/v1/chat/completions", tmp_path / "nel",
            {"config.params.limit_samples": 2, "config.params.extra.judge.url": judge_url},
        )  # fmt: skip
    results = _results(invocation_id, "mtbench.mtbench")
    assert results["harness"]["results"] == theirs
    values = metric_values(results)
    assert values == {k: m["value"] for k, m in _flatten(theirs).items()}
    assert 7.0 in values.values()
    # Every judge call went through the proxy: counted there, and the judge saw them.
    assert results["counts"]["judge_requests"] == ours_judged > 0


def _flatten(results: dict) -> dict:
    from evalfleet.harness.run import launcher_metrics

    return launcher_metrics(results)


def test_tooltalk_conversations_with_28_tools_equal_nemo_evaluators_run(
    cli, write_yaml, harness_env, tmp_path
):
    venv = harness_env("nvidia-tooltalk")
    with run_simulator() as sim:
        config = _config(
            write_yaml, sim.base_url, "    - name: tooltalk\n      params: {limit_samples: 2}"
        )
        invocation_id = _run_ok(cli, config)
        ours = sim.stats()["requests"]
        sim.reset_stats()
        theirs = nemo_evaluator_run(
            venv, "tooltalk.tooltalk", f"{sim.base_url}/v1/chat/completions", tmp_path / "nel",
            {"config.params.limit_samples": 2},
        )  # fmt: skip
        assert sim.stats()["requests"] == ours > 0
    results = _results(invocation_id, "tooltalk")
    assert results["task"] == "tooltalk.tooltalk"
    assert results["harness"]["results"] == theirs
    assert metric_values(results) == {k: m["value"] for k, m in _flatten(theirs).items()}
    assert {"tooltalk_success_rate", "tooltalk_precision"} <= set(results["metrics"])
