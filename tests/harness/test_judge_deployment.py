"""`judge_deployment`: an LLM judge evalfleet deploys beside the model, handed to every
task that asks a judge and names none, and torn down with the model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from evalfleet.config.loader import load_config
from evalfleet.executors.local.server import port_in_use
from evalfleet.planner import plan_invocation, with_derived_defaults
from tests.executors.local.test_local_server import free_port

SIM = f"{sys.executable} -m evalfleet.testing.endpoint --port {{port}}"


def _config(write_yaml, model_port: int, judge_port: int, tasks: str) -> Path:
    return write_yaml(
        f"""\
deployment:
  type: generic
  command: "{SIM}"
  port: {model_port}
  served_model_name: sim-model
judge_deployment:
  type: generic
  command: "{SIM} --model gpt-4 --default-answer '[[6]]'"
  port: {judge_port}
  served_model_name: gpt-4
execution: {{type: local, output_dir: results, endpoint_readiness_timeout: 60}}
evaluation:
  tasks:
{tasks}
"""
    )


def test_the_deployed_judge_scores_mtbench_and_goes_down_with_the_model(
    cli, write_yaml, harness_env
):
    harness_env("nvidia-mtbench-evaluator")
    model_port, judge_port = free_port(), free_port()
    config = _config(
        write_yaml, model_port, judge_port, "    - {name: mtbench, params: {limit_samples: 2}}"
    )
    result = cli("run", "--config", str(config))
    assert result.code == 0, result.out + result.err
    assert "judge server ready after" in result.err
    invocation_id = result.out.strip().splitlines()[-1]
    results = json.loads((Path("results") / invocation_id / "mtbench" / "results.json").read_text())
    assert 6.0 in {metric["value"] for metric in results["metrics"].values()}
    assert results["counts"]["judge_requests"] > 0  # every judge call went through the proxy
    job = json.loads((Path("results") / invocation_id / "mtbench" / "job.json").read_text())
    judge = job["harness"]["run_config"]["config"]["params"]["extra"]["judge"]
    assert judge == {"url": f"http://127.0.0.1:{judge_port}/v1", "model_id": "gpt-4"}
    assert not port_in_use(model_port) and not port_in_use(judge_port)
    logs = cli("logs", invocation_id).out
    assert "[judge server] READY" in logs


def test_builtin_judged_tasks_get_the_deployed_judge_unless_they_name_one(write_yaml):
    config = _config(
        write_yaml, 8000, 8001,
        "    - {name: simple_evals.AIME_2025}\n"
        "    - name: simple_evals.math_test_500\n"
        "      params: {judge: {url: 'http://elsewhere:9/v1', model_id: other}}\n"
        "    - {name: mtbench.mtbench}\n"
        "    - {name: mmath.mmath_en}",
    )  # fmt: skip
    jobs = plan_invocation(with_derived_defaults(load_config(str(config)).model)).jobs
    aime, math, mtbench, mmath = (job.spec for job in jobs)
    assert aime["params"]["judge"]["url"] == "http://127.0.0.1:8001/v1"
    assert aime["params"]["judge"]["model_id"] == "gpt-4"
    assert math["params"]["judge"]["url"] == "http://elsewhere:9/v1"  # the task's own wins
    assert mtbench["harness"]["run_config"]["config"]["params"]["extra"]["judge"]["url"] == (
        "http://127.0.0.1:8001/v1"
    )
    assert "judge" not in json.dumps(mmath["harness"]["run_config"])  # asks no judge


def test_a_judge_on_the_models_port_is_refused(cli, write_yaml):
    config = _config(write_yaml, 8000, 8000, "    - {name: mtbench}")
    result = cli("run", "--config", str(config), "--dry-run")
    assert result.code == 2
    assert "judge_deployment.port: 8000 is deployment.port too" in result.err


def test_a_judge_command_with_stray_braces_names_the_judge(cli, write_yaml):
    config = write_yaml(
        "target: {api_endpoint: {url: 'http://127.0.0.1:9/v1', model_id: m}}\n"
        "judge_deployment: {type: generic, command: 'serve {0}', port: 8001}\n"
        "evaluation: {tasks: [{name: mtbench}]}\n"
    )
    result = cli("run", "--config", str(config), "--dry-run")
    assert result.code == 2
    assert result.err.startswith("error: judge_deployment.command: cannot fill in {port}")
