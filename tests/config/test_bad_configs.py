"""Bad input stops the run with exit code 2 and one precise line per problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES

VALID = """\
deployment:
  type: vllm
  checkpoint_path: meta-llama/Llama-3.1-8B-Instruct
  lepton_config:
    resource_shape: gpu.1xh200
    min_replicas: 1
    max_replicas: 3
execution:
  type: lepton
evaluation:
  tasks:
    - name: ifeval
"""

# (name, file text or None for VALID, overrides, text every error line set must contain)
CASES = [
    (
        "typo in key",
        VALID.replace("checkpoint_path", "checkpoint_pth"),
        [],
        "deployment.checkpoint_pth: unknown key; did you mean 'checkpoint_path'?",
    ),
    (
        "typo via override",
        None,
        ["deployment.tensor_paralel_size=2"],
        "deployment.tensor_paralel_size: unknown key; did you mean 'tensor_parallel_size'?",
    ),
    (
        "typo in nested lepton key",
        None,
        ["+deployment.lepton_config.auto_scaler={scale_down:{no_trafic_timeout:5}}"],
        "deployment.lepton_config.auto_scaler.scale_down.no_trafic_timeout: unknown key; "
        "did you mean 'no_traffic_timeout'?",
    ),
    (
        "typo in secret ref",
        None,
        ["+deployment.lepton_config.envs={HF_TOKEN:{value_from:{secret_ref:X}}}"],
        "deployment.lepton_config.envs.HF_TOKEN.value_from.secret_ref: unknown key; "
        "did you mean 'secret_name_ref'?",
    ),
    (
        "unknown top-level section",
        VALID + "evaluaton: {}\n",
        [],
        "evaluaton: unknown key; did you mean 'evaluation'?",
    ),
    (
        "wrong type int",
        None,
        ["execution.evaluation_tasks.timeout=soon"],
        "execution.evaluation_tasks.timeout: input should be a valid integer",
    ),
    (
        "wrong type list",
        None,
        ["evaluation.tasks=ifeval"],
        "evaluation.tasks: input should be a valid list",
    ),
    (
        "wrong type bool",
        None,
        ["+deployment.lepton_config.mounts={enabled:maybe}"],
        "deployment.lepton_config.mounts.enabled: input should be a valid boolean",
    ),
    (
        "min > max replicas",
        None,
        ["deployment.lepton_config.min_replicas=5"],
        "deployment.lepton_config: min_replicas (5) must not exceed max_replicas (3)",
    ),
    (
        "negative replicas",
        None,
        ["deployment.lepton_config.min_replicas=-1"],
        "deployment.lepton_config.min_replicas: input should be greater than or equal to 0",
    ),
    (
        "out of range utilization",
        None,
        ["deployment.gpu_memory_utilization=1.5"],
        "deployment.gpu_memory_utilization: input should be less than or equal to 1",
    ),
    (
        "missing checkpoint",
        VALID.replace("  checkpoint_path: meta-llama/Llama-3.1-8B-Instruct\n", ""),
        [],
        "deployment.checkpoint_path: missing mandatory value",
    ),
    (
        "missing resource shape",
        None,
        ["~deployment.lepton_config.resource_shape"],
        "deployment.lepton_config.resource_shape: required on lepton",
    ),
    ("missing tasks", VALID.split("evaluation:")[0], [], "evaluation: missing mandatory value"),
    (
        "none without url",
        "deployment: {type: none}\nevaluation: {tasks: [{name: gsm8k}]}\n",
        [],
        "target.api_endpoint.url: required when deployment.type is none",
    ),
    (
        "unknown deployment type",
        None,
        ["deployment.type=vlm"],
        "deployment.type: unknown type 'vlm'; did you mean 'vllm'?",
    ),
    (
        "unknown group option",
        None,
        ["execution=lepon"],
        "override 'execution=lepon': execution: option 'lepon' not found (searched ",
    ),
    (
        "unknown task",
        None,
        ["evaluation.tasks=[{name:ifevl}]"],
        "evaluation.tasks[0].name: unknown task 'ifevl'; did you mean 'ifeval'?",
    ),
    (
        "deployment not on lepton",
        None,
        ["deployment=trtllm"],
        "deployment.type: 'trtllm' cannot run on lepton",
    ),
    (
        "literal token",
        None,
        ["deployment.lepton_config.api_tokens=[{value:sk-123}]"],
        "deployment.lepton_config.api_tokens: literal token values are not accepted",
    ),
    (
        "bad walltime",
        None,
        ["execution=slurm", "execution.walltime=2h"],
        "execution.walltime: expected [D-]HH:MM:SS, got '2h'",
    ),
    (
        "key of another executor",
        VALID.replace("type: lepton", "type: lepton\n  evaluation_tasks: {timeout: 60}"),
        ["execution=slurm"],
        "execution.evaluation_tasks: unknown key (not a setting of execution type 'slurm')",
    ),
    ("bad override syntax", None, ["deployment.port=[1,"], "override 'deployment.port=[1,'"),
    ("override without value", None, ["deployment.port"], "override 'deployment.port'"),
    (
        "sweep override",
        None,
        ["deployment.port=1,2"],
        "override 'deployment.port=1,2': sweeps are not supported",
    ),
    (
        "add an existing key",
        None,
        ["+deployment.port=9000"],
        "override '+deployment.port=9000': deployment.port already exists",
    ),
    (
        "delete a missing key",
        None,
        ["~deployment.nothing"],
        "override '~deployment.nothing': no key deployment.nothing to delete",
    ),
    (
        "task-name override for an absent task",
        None,
        ["evaluation.tasks.gsm8k.params.seed=1"],
        "no task named 'gsm8k' in evaluation.tasks",
    ),
    (
        "bad url",
        "deployment: {type: none}\ntarget: {api_endpoint: {url: localhost:8000, "
        "model_id: m}}\nevaluation: {tasks: [{name: gsm8k}]}\n",
        [],
        "target.api_endpoint.url: expected an http:// or https:// URL",
    ),
    (
        "url with a deployment",
        VALID + "target: {api_endpoint: {url: 'http://x/v1'}}\n",
        [],
        "target.api_endpoint.url: must not be set when deployment.type is vllm",
    ),
    (
        "bad env name",
        None,
        ["+deployment.lepton_config.envs={1BAD:x}"],
        "deployment.lepton_config.envs.1BAD",
    ),
    (
        "duplicate tasks",
        None,
        ["evaluation.tasks=[{name:ifeval},{name:ifeval}]"],
        "evaluation.tasks: lm-evaluation-harness.ifeval listed more than once",
    ),
    (
        "unresolvable interpolation",
        VALID.replace(
            "checkpoint_path: meta-llama/Llama-3.1-8B-Instruct",
            "checkpoint_path: ${oc.env:EVALFLEET_TEST_SURELY_UNSET}",
        ),
        [],
        "deployment.checkpoint_path: cannot resolve interpolation",
    ),
    (
        "NEL param not supported",
        None,
        ["+evaluation.nemo_evaluator_config={config:{params:{bogus:1}}}"],
        "evaluation.nemo_evaluator_config.config.params.bogus: not supported",
    ),
    (
        "top level not a mapping",
        "- just\n- a list\n",
        [],
        "expected a mapping of keys at the top, got list",
    ),
    ("YAML syntax error", "deployment:\n  type: [vllm\n", [], "YAML syntax error"),
]


@pytest.mark.parametrize(
    ("name", "text", "overrides", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_config_is_one_precise_line_and_exit_2(
    cli, write_yaml, isolated: Path, name, text, overrides, expected
):
    path = write_yaml(VALID if text is None else text)
    args = ["run", "--config", str(path), "--dry-run"]
    for override in overrides:
        args += ["-o", override]
    result = cli(*args)
    assert result.code == 2, (name, result)
    lines = result.err.strip().splitlines()
    assert lines, name
    assert all(line.startswith("error: ") for line in lines), lines
    assert any(expected in line for line in lines), (expected, lines)
    assert "Traceback" not in result.err
    assert result.out == ""
    # Nothing recorded, nothing written.
    assert not isolated.exists()
    assert not (Path.cwd() / "evalfleet_results").exists()


def test_missing_config_file_names_the_file(cli, tmp_path):
    missing = tmp_path / "nope.yaml"
    result = cli("run", "--config", str(missing), "--dry-run")
    assert result.code == 2
    assert result.err.strip() == f"error: config file not found: {missing}"


def test_missing_config_name_suggests_the_closest(cli):
    result = cli(
        "run", "--config-dir", str(EXAMPLES),
        "--config-name", "lepton_vllm_llama_3_1_8b_instruc", "--dry-run",
    )  # fmt: skip
    assert result.code == 2
    assert "did you mean 'lepton_vllm_llama_3_1_8b_instruct'?" in result.err


def test_yaml_error_names_file_line_and_column(cli, write_yaml):
    path = write_yaml("deployment:\n  type: vllm\n   bad: indent\n")
    result = cli("run", "--config", str(path), "--dry-run")
    assert result.code == 2
    assert result.err.startswith(f"error: {path}:3:")


def test_every_problem_is_reported_at_once(cli, write_yaml):
    path = write_yaml(
        VALID.replace("min_replicas: 1", "min_replicas: many").replace(
            "checkpoint_path", "checkpoint_pth"
        )
    )
    result = cli("run", "--config", str(path), "--dry-run")
    lines = result.err.strip().splitlines()
    assert result.code == 2
    assert any("deployment.lepton_config.min_replicas" in line for line in lines)
    assert any("deployment.checkpoint_pth: unknown key" in line for line in lines)
    # The typo already explains why checkpoint_path is missing: one line per mistake.
    assert not any("deployment.checkpoint_path: missing" in line for line in lines)


def test_installed_command_prints_no_traceback(tmp_path):
    """The console script itself (not only `main()`) turns errors into one line."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("deployment: {type: vllm, checkpoint_path: x, tensor_parallel_size: -2}\n")
    result = subprocess.run(
        [sys.executable, "-m", "evalfleet", "run", "--config", str(bad), "--dry-run"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "deployment.tensor_parallel_size: input should be greater than 0" in result.stderr


def test_a_generic_command_with_stray_braces_is_one_line(cli, write_yaml):
    config = write_yaml(
        "deployment: {type: generic, command: 'serve --port {port} --x {0}', "
        "served_model_name: m, port: 8000}\n"
        "evaluation: {tasks: [{name: gsm8k}]}\n"
    )
    result = cli("run", "--config", str(config), "--dry-run")
    assert result.code == 2
    assert result.err.startswith("error: deployment.command: cannot fill in {port}")
    assert "Traceback" not in result.err and "{{ and }}" in result.err
