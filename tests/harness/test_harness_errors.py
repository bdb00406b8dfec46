"""What goes wrong with a task run by its framework package is one line that names the
task and the cause, kept as the job's failure reason (status, logs/failure.txt)."""

from __future__ import annotations

import json
from pathlib import Path

from evalfleet.testing import run_simulator


def _failed_detail(cli, write_yaml, url: str, task_yaml: str) -> tuple[str, Path]:
    config = write_yaml(
        f"""\
target: {{api_endpoint: {{url: "{url}/v1/chat/completions", model_id: sim-model}}}}
execution: {{type: local, output_dir: results}}
evaluation:
  tasks:
{task_yaml}
"""
    )
    result = cli("run", "--config", str(config))
    assert result.code != 0
    invocation_id = result.out.strip().splitlines()[-1]
    rows = json.loads(cli("status", invocation_id, "--json").out)
    assert [row["state"] for row in rows] == ["FAILED"]
    job_dir = Path("results") / invocation_id / rows[0]["task"]
    return rows[0]["detail"], job_dir


def test_an_unknown_task_of_a_known_harness_is_a_config_error(cli, write_yaml):
    config = write_yaml(
        "target: {api_endpoint: {url: 'http://127.0.0.1:9/v1', model_id: m}}\n"
        "evaluation: {tasks: [{name: mmath.mmath_xx}]}\n"
    )
    result = cli("run", "--config", str(config), "--dry-run")
    assert result.code == 2
    assert result.err.count("\n") == 1
    assert "mmath.mmath_xx" in result.err and "did you mean" in result.err


def test_a_package_version_that_does_not_exist_fails_the_job_in_one_line(cli, write_yaml):
    with run_simulator() as sim:
        detail, job_dir = _failed_detail(
            cli, write_yaml, sim.base_url,
            "    - {name: mmath.mmath_en, package_version: '0.0.1', params: {limit_samples: 1}}",
        )  # fmt: skip
        assert sim.stats()["requests"] == 0
    assert "\n" not in detail
    assert detail.startswith("mmath.mmath_en: ") and "nvidia-mmath" in detail
    assert (job_dir / "logs" / "failure.txt").read_text().strip() == detail


def test_a_harness_that_exits_non_zero_fails_the_job_with_its_own_words(
    cli, write_yaml, harness_env
):
    harness_env("nvidia-mmath")
    with run_simulator() as sim:
        detail, job_dir = _failed_detail(
            cli, write_yaml, sim.base_url,
            "    - name: mmath.mmath_en\n"
            "      params: {limit_samples: 1}\n"
            "      nemo_evaluator_config: {config: {params: {extra: {language: xx}}}}",
        )  # fmt: skip
    assert detail.startswith("mmath.mmath_en: the harness exited with code ")
    assert "xx" in detail and "harness.log" in detail
    assert (job_dir / "logs" / "failure.txt").read_text().strip() == detail


def test_builtin_engine_for_a_package_only_task_is_refused(cli, write_yaml):
    config = write_yaml(
        "target: {api_endpoint: {url: 'http://127.0.0.1:9/v1', model_id: m}}\n"
        "evaluation: {tasks: [{name: mmath.mmath_en, engine: builtin}]}\n"
    )
    result = cli("run", "--config", str(config), "--dry-run")
    assert result.code == 2 and "mmath.mmath_en" in result.err and "built-in" in result.err


def test_offline_without_the_environment_says_how_to_get_it(cli, write_yaml, monkeypatch, tmp_path):
    monkeypatch.setenv("EVALFLEET_CACHE_DIR", str(tmp_path / "empty-cache"))
    with run_simulator() as sim:
        config = write_yaml(
            f"""\
target: {{api_endpoint: {{url: "{sim.base_url}/v1/chat/completions", model_id: sim-model}}}}
execution: {{type: local, output_dir: results}}
evaluation: {{tasks: [{{name: mmath.mmath_en, params: {{limit_samples: 1}}}}]}}
"""
        )
        result = cli("--offline", "run", "--config", str(config))
        assert sim.stats()["requests"] == 0
    assert result.code != 0
    invocation_id = result.out.strip().splitlines()[-1]
    (row,) = json.loads(cli("status", invocation_id, "--json").out)
    assert row["state"] == "FAILED"
    assert row["detail"].startswith(
        "mmath.mmath_en: the nvidia-mmath 26.3 environment is not built"
    )
    assert "evalfleet data pull mmath.mmath_en" in row["detail"]
    assert not (tmp_path / "empty-cache" / "harness").exists()


def test_data_pull_builds_a_harness_tasks_environment(cli, harness_env):
    venv = harness_env("nvidia-mmath")
    result = cli("data", "pull", "mmath_en")
    assert result.code == 0, result.err
    assert result.out.strip() == f"mmath.mmath_en: nvidia-mmath 26.3 environment ready: {venv}"
