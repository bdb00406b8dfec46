"""SlurmExecutor: the --dry-run plan (no cluster needed)."""

from __future__ import annotations

import json

import pytest

from evalfleet.exceptions import ConfigError
from evalfleet.executors import get_executor
from evalfleet.executors.slurm.bootstrap import wheel_plan
from evalfleet.executors.slurm.executor import SlurmExecutor
from evalfleet.executors.slurm.render import launcher_differences, render_scripts

from .configs import GENERIC_PER_TASK, JUDGE, NO_DEPLOYMENT, VLLM


def test_get_executor_returns_the_slurm_executor() -> None:
    assert isinstance(get_executor("slurm"), SlurmExecutor)


def test_plan_local_submission(plan_config) -> None:
    inv = plan_config(NO_DEPLOYMENT)
    plan = SlurmExecutor().plan(inv)
    (script,) = render_scripts(inv)
    assert plan == {
        "executor": "slurm",
        "invocation_id": "0123abcd",
        "output_dir": "/lustre/evals/0123abcd",
        "submit": {"host": "localhost", "command": ["sh", "-c"]},
        "scripts": [
            {
                "name": "evalfleet-0123abcd.sbatch",
                "path": "/lustre/evals/0123abcd/evalfleet-0123abcd.sbatch",
                "job_ids": ["0123abcd.0", "0123abcd.1"],
                "command": [
                    "sh",
                    "-c",
                    "cd /lustre/evals/0123abcd && sbatch --parsable "
                    "/lustre/evals/0123abcd/evalfleet-0123abcd.sbatch",
                ],
                "text": script.text,
            }
        ],
        "launcher_differences": launcher_differences(inv.config),
        "evalfleet_wheel": wheel_plan(inv),  # copied next to the script (test_bootstrap.py)
    }
    json.dumps(plan)  # JSON-able, as --dry-run --json prints it


def test_plan_remote_submission_goes_through_ssh(plan_config) -> None:
    plan = SlurmExecutor().plan(plan_config(VLLM))
    assert plan["submit"]["host"] == "login.example.com"
    ssh = plan["submit"]["command"]
    assert ssh[0] == "ssh" and ssh[-3:] == ["-T", "alice@login.example.com", "--"]
    assert "BatchMode=yes" in ssh and "ControlMaster=auto" in ssh
    assert plan["scripts"][0]["command"] == [
        *ssh, "cd /lustre/evals/0123abcd && sbatch --parsable /lustre/evals/0123abcd/evalfleet-0123abcd.sbatch",
    ]  # fmt: skip


def test_plan_remote_path_is_quoted_for_the_remote_shell(plan_config) -> None:
    inv = plan_config(VLLM, output_dir="/lustre/my evals")
    (script,) = SlurmExecutor().plan(inv)["scripts"]
    assert script["path"] == "/lustre/my evals/0123abcd/evalfleet-0123abcd.sbatch"
    assert script["command"][-1] == (
        "cd '/lustre/my evals/0123abcd' && sbatch --parsable "
        "'/lustre/my evals/0123abcd/evalfleet-0123abcd.sbatch'"
    )


def test_plan_without_username_uses_the_bare_host(plan_config) -> None:
    plan = SlurmExecutor().plan(plan_config(VLLM, "execution.username=null"))
    assert plan["submit"]["command"][-3:] == ["-T", "login.example.com", "--"]


def test_plan_job_per_task_lists_every_script(plan_config) -> None:
    plan = SlurmExecutor().plan(plan_config(GENERIC_PER_TASK))
    assert [(s["name"], s["job_ids"]) for s in plan["scripts"]] == [
        ("evalfleet-0123abcd-gsm8k.sbatch", ["0123abcd.0"]),
        ("evalfleet-0123abcd-hellaswag.sbatch", ["0123abcd.1"]),
    ]
    assert plan["scripts"][1]["command"] == [
        "sh", "-c",
        "cd /lustre/evals/0123abcd && sbatch --parsable /lustre/evals/0123abcd/evalfleet-0123abcd-hellaswag.sbatch",
    ]  # fmt: skip


def test_a_host_that_looks_like_an_option_is_refused(plan_config) -> None:
    inv = plan_config(VLLM, "execution.hostname='-oProxyCommand=x'")
    with pytest.raises(ConfigError, match=r"execution\.hostname"):
        SlurmExecutor().plan(inv)


def test_dry_run_shows_the_judge_server(cli, tmp_path) -> None:
    config = tmp_path / "judge.yaml"
    config.write_text(JUDGE)
    result = cli(
        "run", "--config", str(config), "-o", "execution.output_dir=/lustre/evals", "--dry-run"
    )
    assert result.code == 0, result.err
    assert "# Judge server (vllm), each srun leading its own process group." in result.out
    assert "vllm serve /checkpoint --tensor-parallel-size=4" in result.out
    assert "/lustre/models/llama-3.3-70b-instruct:/checkpoint:ro" in result.out
    assert "# differs from NeMo Evaluator Launcher: judge_deployment: " in result.out
    assert "evalfleet_wait_for_judge_server || exit 1" in result.out
