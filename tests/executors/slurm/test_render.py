"""Rendering batch scripts: golden files (the spec), the #SBATCH header, refusals."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from evalfleet.exceptions import ConfigError
from evalfleet.executors.slurm.render import SbatchScript, render_scripts, sbatch_extra_flags

from .configs import GENERIC_PER_TASK, JUDGE, LLAMACPP, NO_DEPLOYMENT, VLLM


@pytest.fixture
def fixed_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty PATH: no `llama-server`, so llama.cpp is served by llama-cpp-python."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


CASES = {
    "vllm": (VLLM, ()),
    "generic": (GENERIC_PER_TASK, ()),
    "none": (NO_DEPLOYMENT, ()),
    "llamacpp": (LLAMACPP, ()),
    "judge": (JUDGE, ()),
}


def _render(plan_config, case: str) -> list[SbatchScript]:
    text, overrides = CASES[case]
    return render_scripts(plan_config(text, *overrides))


@pytest.mark.usefixtures("fixed_path")
@pytest.mark.parametrize("case", sorted(CASES))
def test_scripts_match_golden_files(plan_config, golden, case: str) -> None:
    scripts = _render(plan_config, case)
    for script in scripts:
        suffix = script.name.removeprefix("evalfleet-0123abcd").removesuffix(".sbatch")
        golden(f"{case}{suffix}.sbatch", script.text)


def test_one_script_runs_every_task_by_default(plan_config) -> None:
    (script,) = render_scripts(plan_config(VLLM))
    assert script.name == "evalfleet-0123abcd.sbatch"
    assert script.job_ids == ["0123abcd.0", "0123abcd.1"]
    assert script.text.count("evalfleet_run_task gsm8k ") == 1
    assert script.text.count("evalfleet_run_task ifeval ") == 1
    assert script.text.count("exec setsid srun ") == 1  # one server for both tasks


def test_job_per_task_gives_each_task_its_script_and_server(plan_config) -> None:
    scripts = render_scripts(plan_config(GENERIC_PER_TASK))
    assert [s.name for s in scripts] == [
        "evalfleet-0123abcd-gsm8k.sbatch",
        "evalfleet-0123abcd-hellaswag.sbatch",
    ]
    assert [s.job_ids for s in scripts] == [["0123abcd.0"], ["0123abcd.1"]]
    for script, task in zip(scripts, ("gsm8k", "hellaswag"), strict=True):
        assert f"#SBATCH --job-name=nightly-0123abcd-{task}\n" in script.text
        assert f"server_log=/lustre/evals/0123abcd/{task}/logs/server.log\n" in script.text
        assert script.text.count("cat >") == 1


def test_no_deployment_has_no_server_section(plan_config) -> None:
    (script,) = render_scripts(plan_config(NO_DEPLOYMENT))
    for word in ("srun", "server", "curl"):
        assert word not in script.text


@pytest.mark.usefixtures("fixed_path")
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_script_is_valid_bash(plan_config, case: str) -> None:
    bash = shutil.which("bash", path="/usr/bin:/bin")
    if bash is None:
        pytest.skip("bash is not installed")
    for script in _render(plan_config, case):
        result = subprocess.run(
            [bash, "-n"], input=script.text, capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 0, f"{script.name}:\n{result.stderr}"


def test_llamacpp_server_follows_path(plan_config, tmp_path, monkeypatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "llama-server").write_text("#!/bin/sh\n")
    (bin_dir / "llama-server").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    (script,) = render_scripts(plan_config(LLAMACPP))
    assert "--overlap llama-server --model /lustre/models/gemma-3-270m-it-Q8_0.gguf" in script.text
    assert 'url="http://$head:8000"/health\n' in script.text


# --------------------------------------------------------------------------- judge


def _judge_url(spec: dict) -> str:
    return spec["params"]["judge"]["url"]


def test_the_judge_starts_beside_the_model_where_the_jobs_reach_it(plan_config) -> None:
    inv = plan_config(JUDGE)
    (script,) = render_scripts(inv)
    text = script.text
    assert text.count("exec setsid srun ") == 2  # the model server and the judge, one allocation
    # The jobs reach the judge at the address the script starts it on (the node's loopback).
    assert _judge_url(inv.jobs[0].spec) == "http://127.0.0.1:8001/v1"
    assert 'url="http://$head:8001"/health\n' in text
    assert "--port 8001 --trust-remote-code --served-model-name judge-70b" in text
    assert "judge" not in inv.jobs[1].spec.get("params", {})  # gsm8k asks no judge
    assert "judge_server_log=/lustre/evals/0123abcd/logs/judge_server.log\n" in text
    # Both start before either is awaited (they load at the same time); the tasks come
    # after both are ready; the EXIT trap stops the judge too.
    order = [
        text.index("\nserver_pid=${server_pids[0]}"),
        text.index("\njudge_server_pid=${judge_server_pids[0]}"),
        text.index("\nevalfleet_wait_for_server || exit 1"),
        text.index("\nevalfleet_wait_for_judge_server || exit 1"),
        text.index("\nevalfleet_run_task simple_evals.AIME_2025 "),
    ]
    assert order == sorted(order)
    assert (
        'for pid in "${judge_server_pids[@]}"; do\n    evalfleet_stop "$pid" "the judge server"'
        in text
    )


def test_a_judge_without_a_model_deployment(plan_config) -> None:
    (script,) = render_scripts(
        plan_config(
            NO_DEPLOYMENT,
            "+judge_deployment.type=generic",
            "+judge_deployment.command='judge-server --port {port}'",
            "+judge_deployment.port=8100",
        )
    )
    text = script.text
    assert "\nserver_pid" not in text and "the model server" not in text
    assert text.count("exec setsid srun ") == 1
    assert "mkdir -p /lustre/evals/0123abcd/logs\n" in text
    assert "\nevalfleet_wait_for_judge_server || exit 1\n" in text


def test_job_per_task_gives_each_task_its_judge_beside_its_server(plan_config) -> None:
    scripts = render_scripts(
        plan_config(
            GENERIC_PER_TASK,
            "+judge_deployment.type=generic",
            "+judge_deployment.command='judge-server --port {port}'",
            "+judge_deployment.port=9001",
        )
    )
    for script, task in zip(scripts, ("gsm8k", "hellaswag"), strict=True):
        log = f"judge_server_log=/lustre/evals/0123abcd/{task}/logs/judge_server.log\n"
        assert log in script.text
        assert script.text.count("exec setsid srun ") == 2


def test_a_judges_secret_is_checked_not_written(plan_config) -> None:
    (script,) = render_scripts(
        plan_config(JUDGE, "+judge_deployment.env_vars.HF_TOKEN=hf_judge_secret")
    )
    assert "hf_judge_secret" not in script.text
    assert ': "${HF_TOKEN:?is not set' in script.text
    assert "--container-env=ALL_NODE_IPS,CUDA_VISIBLE_DEVICES,HF_TOKEN,MASTER_IP" in script.text


def test_a_nim_judge_runs_its_image_entrypoint(plan_config) -> None:
    (script,) = render_scripts(
        plan_config(
            JUDGE,
            "judge_deployment.type=nim",
            "+judge_deployment.image=nvcr.io/nim/meta/llama-3.1-70b-instruct:1.8.6",
            "~judge_deployment.checkpoint_path",
            "~judge_deployment.tensor_parallel_size",
            "~judge_deployment.served_model_name",
        )
    )
    judge = script.text.split("# Judge server (nim)")[1]
    assert "--container-image=nvcr.io/nim/meta/llama-3.1-70b-instruct:1.8.6" in judge
    assert "/opt/nvidia/nvidia_entrypoint.sh /opt/nim/start_server.sh" in judge
    assert "export NIM_SERVER_PORT=8001" in judge
    assert 'url="http://$head:8001"/v1/health/ready' in judge


# --------------------------------------------------------------------------- header


def test_header_has_the_launchers_gpu_defaults(plan_config) -> None:
    (script,) = render_scripts(plan_config(NO_DEPLOYMENT))
    header = [line for line in script.text.splitlines() if line.startswith("#SBATCH")]
    assert "#SBATCH --gres=gpu:8" in header  # NEL slurm/default: gres gpu:8, exclusive
    assert header[-1] == "#SBATCH --exclusive"


def test_header_options_only_when_set(plan_config) -> None:
    (script,) = render_scripts(
        plan_config(NO_DEPLOYMENT, "execution.gres=null", "execution.sbatch_extra_flags={}")
    )
    header = [line for line in script.text.splitlines() if line.startswith("#SBATCH")]
    assert header == [
        "#SBATCH --job-name=evalfleet-0123abcd",
        "#SBATCH --account=eval",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --time=02:00:00",
        "#SBATCH --output=/lustre/evals/0123abcd/slurm-%j.out",
        "#SBATCH --signal=B:USR1@60",
    ]


def test_header_comes_before_any_command(plan_config) -> None:
    (script,) = render_scripts(plan_config(VLLM))
    lines = script.text.splitlines()
    assert lines[0] == "#!/bin/bash"
    last_sbatch = max(i for i, line in enumerate(lines) if line.startswith("#SBATCH"))
    assert all(line.startswith("#") for line in lines[: last_sbatch + 1])


def test_percent_in_output_dir_is_literal_for_slurm(plan_config) -> None:
    (script,) = render_scripts(plan_config(NO_DEPLOYMENT, output_dir="/scratch/100%/evals"))
    assert "#SBATCH --output=/scratch/100%%/evals/0123abcd/slurm-%j.out\n" in script.text
    assert "mkdir -p /scratch/100%/evals/0123abcd\n" in script.text


def test_values_are_shell_quoted(plan_config) -> None:
    (script,) = render_scripts(
        plan_config(
            NO_DEPLOYMENT,
            "execution.account='my account; rm -rf /'",
            "+env_vars.QUOTED='$(touch /tmp/x) `id`'",
        )
    )
    assert "#SBATCH --account='my account; rm -rf /'\n" in script.text
    assert "export QUOTED='$(touch /tmp/x) `id`'\n" in script.text


@pytest.mark.parametrize(
    ("flags", "lines"),
    [
        ({"exclusive": True}, ["--exclusive"]),
        ({"exclusive": False, "mail_type": None}, []),
        ({"cpus_per_task": 16}, ["--cpus-per-task=16"]),
        ({"comment": "a b"}, ["--comment='a b'"]),
        ({"constraint": "h100|a100"}, ["--constraint='h100|a100'"]),
        ({"mem": 0, "exclusive": True}, ["--mem=0", "--exclusive"]),
    ],
)
def test_extra_flags(flags, lines) -> None:
    assert sbatch_extra_flags(flags) == lines


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"time": "02:00:00"}, "execution.sbatch_extra_flags.time: set execution.walltime instead"),
        ({"job_name": "x"}, "execution.sbatch_extra_flags.job_name: set execution.job_name_prefix"),
        ({"output": "/tmp/x"}, "execution.sbatch_extra_flags.output: evalfleet writes --output"),
        ({"N": 2}, "execution.sbatch_extra_flags.N: not an sbatch long option name"),
        ({"bad name": True}, "execution.sbatch_extra_flags.bad name: not an sbatch long option"),
        ({"comment": "two\nlines"}, "execution.sbatch_extra_flags.comment: must not contain"),
        ({"comment": "a\\b"}, "execution.sbatch_extra_flags.comment: must not contain"),
    ],
)
def test_extra_flags_refused(flags, message) -> None:
    with pytest.raises(ConfigError) as info:
        sbatch_extra_flags(flags)
    assert info.value.problems[0].startswith(message)


# --------------------------------------------------------------------------- refusals


def test_env_names_a_shell_cannot_export_are_refused(plan_config) -> None:
    with pytest.raises(ConfigError) as info:
        render_scripts(plan_config(NO_DEPLOYMENT, "+execution.env_vars.MY-VAR=on"))
    assert info.value.problems == [
        "execution.env_vars.MY-VAR: not a shell variable name, so a batch script cannot "
        "export it (use letters, digits and '_')"
    ]


NIM = """
execution:
  type: slurm
deployment:
  type: nim
  image: nvcr.io/nim/meta/llama-3.1-8b-instruct:1.8.6
evaluation:
  tasks:
    - name: gsm8k
"""


def test_nim_without_a_proxy_is_reached_directly(plan_config) -> None:
    inv = plan_config(NIM)
    assert inv.jobs[0].spec["endpoint"]["url"] == "http://127.0.0.1:8000/v1/completions"


def test_empty_evalfleet_command_is_refused(plan_config) -> None:
    with pytest.raises(ConfigError, match=r"execution\.evalfleet_command"):
        render_scripts(plan_config(NO_DEPLOYMENT, "execution.evalfleet_command=''"))


def test_template_loads_from_a_zipped_package(tmp_path: Path) -> None:
    """Package data, read through importlib.resources: works from a wheel, not just a checkout."""
    import evalfleet

    package = Path(evalfleet.__file__).parent
    archive = tmp_path / "evalfleet.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in package.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                zf.write(path, Path("evalfleet") / path.relative_to(package))
    code = (
        "import evalfleet\n"
        "from evalfleet.executors.slurm import render\n"
        f"assert evalfleet.__file__.startswith({str(archive)!r}), evalfleet.__file__\n"
        "render._template()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(archive)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
