"""Every key NeMo Evaluator Launcher's schema accepts (outside deployment and Slurm
execution) is accepted; keys its models forbid stay errors of one line; keys it accepts
and a run here does not use are said once each."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from evalfleet.config import load_config
from evalfleet.exceptions import ConfigError
from evalfleet.planner import plan_invocation, plan_warnings

LAUNCHER_KEYS = """\
execution:
  type: local
  output_dir: OUT
  extra_docker_args: "--shm-size 1g"
  mode: sequential
  endpoint_readiness_timeout: 600
  mounts: {deployment: {}, evaluation: {/data: /data}, mount_home: false}
  auto_export: {destinations: [local]}
  env_vars:
    deployment: {VLLM_LOGGING_LEVEL: INFO}
    evaluation: {HF_HOME: /data/hf}
    export: {MLFLOW_TRACKING_URI: "lit:http://x"}
deployment: {type: none}
target:
  api_endpoint: {url: "http://127.0.0.1:9/v1", model_id: m, api_key_name: MY_KEY}
env_vars: {HF_TOKEN: "host:HF_TOKEN"}
auxiliary_deployments: {}
export:
  mlflow:
    tracking_uri: http://mlflow:5000
    experiment_name: e
    log_logs: true
    only_required: false
    run_name: my-run
    skip_existing: true
    log_config_params: true
    exclude_patterns: ["*.sqlite"]
    copy_artifacts: true
    description: d
    tags: {a: b}
    extra_metadata: {k: v}
    log_metrics: [score]
  wandb:
    entity: me
    project: p
    log_mode: multi_task
    name: n
    job_type: evaluation
    copy_logs: true
    only_required: true
  local: {output_dir: /tmp/x, format: csv, output_filename: results.csv, copy_logs: true}
  gsheets: {spreadsheet_name: Results, service_account_file: sa.json}
evaluation:
  pre_cmd: "export A=1"
  post_cmd: "echo done"
  env_vars: {HF_TOKEN: "host:HF_TOKEN"}
  nemo_evaluator_config:
    config:
      params:
        request_timeout: 600
        extra: {tokenizer: meta-llama/Llama-3.1-8B-Instruct, tokenizer_backend: huggingface}
    target:
      api_endpoint:
        adapter_config: {use_reasoning: false, use_system_prompt: true,
                         custom_system_prompt: Think., use_caching: true}
  tasks:
    - name: gsm8k
      container: nvcr.io/nvidia/eval-factory/lm-evaluation-harness:25.08
      dataset_dir: /data/gsm8k
      dataset_mount_path: /datasets
      pre_cmd: "pip list"
      post_cmd: ""
      env_vars: {HF_TOKEN: "lit:x"}
"""

# A built-in task takes no image: the same config without it plans.
WITHOUT_CONTAINER = (
    "\n".join(line for line in LAUNCHER_KEYS.splitlines() if "container:" not in line) + "\n"
)


def _load(write_yaml, tmp_path, text: str = LAUNCHER_KEYS, *overrides: str):
    return load_config(write_yaml(text.replace("OUT", str(tmp_path))), overrides=list(overrides))


def test_every_launcher_key_is_accepted(write_yaml, tmp_path):
    config = _load(write_yaml, tmp_path).model
    task = config.evaluation.tasks[0]
    assert task.image == "nvcr.io/nvidia/eval-factory/lm-evaluation-harness:25.08"
    assert config.export.mlflow.copy_logs is True  # log_logs is the older name
    assert config.export.local.format == "csv"
    assert config.execution.env_vars.deployment == {"VLLM_LOGGING_LEVEL": "INFO"}


def test_container_on_a_builtin_task_is_refused_like_image(write_yaml, tmp_path):
    with pytest.raises(ConfigError, match=r"evaluation.tasks\[0\].image: .*runs built in"):
        plan_invocation(_load(write_yaml, tmp_path).model, "abcd0003")


def test_lepton_tasks_api_tokens_name_the_jobs_secret(write_yaml, tmp_path):
    config = load_config(
        write_yaml(
            "execution:\n  type: lepton\n  output_dir: /shared/out\n"
            "  lepton_platform:\n    tasks:\n      api_tokens:\n"
            "        - value_from: {token_name_ref: MY_TOKEN}\n"
            "deployment: {type: none}\n"
            "target: {api_endpoint: {url: 'http://x/v1', model_id: m}}\n"
            "evaluation: {tasks: [{name: gsm8k}]}\n"
        )
    ).model
    assert config.execution.lepton_platform.tasks.api_key_secret == "MY_TOKEN"


def test_auxiliary_judge_is_the_judge_deployment(write_yaml, tmp_path):
    config = load_config(
        write_yaml(
            f"execution: {{type: local, output_dir: {tmp_path}}}\n"
            "deployment: {type: vllm, checkpoint_path: null, hf_model_handle: org/model}\n"
            "auxiliary_deployments:\n"
            "  judge: {type: vllm, checkpoint_path: null, hf_model_handle: org/judge,\n"
            "          served_model_name: judge-model, port: 8001}\n"
            "  reranker: {type: none}\n"
            "evaluation: {tasks: [{name: gsm8k}]}\n"
        )
    ).model
    assert config.judge_deployment.hf_model_handle == "org/judge"
    assert config.judge_deployment.port == 8001


def test_an_auxiliary_other_than_a_judge_is_refused_in_one_line(write_yaml, tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(
            write_yaml(
                f"execution: {{type: local, output_dir: {tmp_path}}}\n"
                "target: {api_endpoint: {url: 'http://x/v1', model_id: m}}\n"
                "auxiliary_deployments: {reranker: {type: nim, image: x}}\n"
                "evaluation: {tasks: [{name: gsm8k}]}\n"
            )
        )
    (line,) = info.value.problems
    assert "auxiliary_deployments.reranker: evalfleet deploys only a judge" in line


@pytest.mark.parametrize(
    ("yaml_key", "expected"),
    [
        ("    - name: gsm8k\n      bogus: 1\n", "evaluation.tasks[0].bogus"),
        ("    - name: gsm8k\n  bogus: 1\n", "evaluation.bogus"),
    ],
)
def test_keys_the_launcher_forbids_stay_one_line_errors(write_yaml, tmp_path, yaml_key, expected):
    text = (
        f"execution: {{type: local, output_dir: {tmp_path}}}\n"
        "target: {api_endpoint: {url: 'http://x/v1', model_id: m}}\n"
        "evaluation:\n  tasks:\n" + yaml_key
    )
    with pytest.raises(ConfigError) as info:
        load_config(write_yaml(text))
    (line,) = info.value.problems
    assert line.startswith(expected) and "\n" not in line


def test_a_mount_key_the_launcher_forbids_is_an_error(write_yaml, tmp_path):
    text = LAUNCHER_KEYS.replace("mount_home: false", "mount_home: false, bogus: 1")
    with pytest.raises(ConfigError, match=r"execution.mounts.bogus"):
        _load(write_yaml, tmp_path, text)


def test_gsheets_as_a_destination_is_refused_in_one_line(write_yaml, tmp_path):
    text = LAUNCHER_KEYS.replace("destinations: [local]", "destinations: [gsheets]")
    with pytest.raises(ConfigError) as info:
        _load(write_yaml, tmp_path, text)
    (line,) = info.value.problems
    assert "execution.auto_export.destinations" in line and "Google Sheets" in line


def test_ignored_keys_warn_once_each(write_yaml, tmp_path):
    config = _load(write_yaml, tmp_path, WITHOUT_CONTAINER).model
    lines = plan_warnings(config)
    keys = [line.split(": ")[1] for line in lines]
    assert sorted(keys) == sorted(
        [
            "evaluation.tasks[0].dataset_mount_path",
            "export.gsheets",
            "export.mlflow.log_config_params",
            "export.wandb.log_mode",
            "execution.env_vars.export",
            "execution.mounts.evaluation",
            "execution.mounts.mount_home",
            "evaluation.nemo_evaluator_config.config.params.extra.tokenizer",
            "evaluation.nemo_evaluator_config.config.params.extra.tokenizer_backend",
        ]
    )
    assert all(line.startswith("warning: ") and "\n" not in line for line in lines)


def test_the_cli_prints_each_warning_once(write_yaml, tmp_path, monkeypatch):
    from evalfleet.cli.main import cli

    path = write_yaml(WITHOUT_CONTAINER.replace("OUT", str(tmp_path)))
    monkeypatch.setenv("HF_TOKEN", "hf_dummy")
    result = CliRunner().invoke(
        cli,
        ["run", "--config", str(path), "--dry-run", "--plan-out", str(tmp_path / "plan.json")],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    tokenizer = [line for line in result.stderr.splitlines() if "extra.tokenizer:" in line]
    assert len(tokenizer) == 1
    assert result.stderr.count("export.gsheets: ignored") == 1
