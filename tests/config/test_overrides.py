"""Hydra's override grammar on the command line, and how types select config groups."""

from __future__ import annotations

import pytest

from evalfleet.config import load_config
from evalfleet.exceptions import ConfigError

BASE = """\
deployment:
  type: vllm
  checkpoint_path: org/model
execution:
  type: local
evaluation:
  params: {parallelism: 4}
  tasks:
    - name: gsm8k
    - name: lm-evaluation-harness.ifeval
"""


@pytest.fixture
def base(write_yaml):
    return write_yaml(BASE)


def test_change_add_force_add_delete(base):
    config = load_config(
        base,
        overrides=[
            "deployment.port=9001",
            "deployment.served_model_name=served",
            "++evaluation.params.parallelism=64",
            "++evaluation.params.seed=7",
            "~evaluation.params.parallelism",
        ],
    ).model
    assert config.deployment.port == 9001
    assert config.deployment.served_model_name == "served"
    assert config.evaluation.params.parallelism is None
    assert config.evaluation.params.seed == 7


def test_lists_and_dicts(base):
    config = load_config(
        base,
        overrides=[
            "evaluation.tasks=[{name:evalfleet.mbpp},{name:humaneval,params:{n_samples:5}}]",
            "+evaluation.params.stop=['</s>','\\n\\n']",
        ],
    ).model
    assert [t.name for t in config.evaluation.tasks] == ["evalfleet.mbpp", "humaneval"]
    assert config.evaluation.tasks[1].params.n_samples == 5
    assert config.evaluation.params.stop == ["</s>", "\\n\\n"]


def test_list_index_and_task_name_addressing(base):
    config = load_config(
        base,
        overrides=[
            "+evaluation.tasks.0.params.limit_samples=10",
            "+evaluation.tasks.ifeval.params.temperature=0.5",
        ],
    ).model
    assert config.evaluation.tasks[0].params.limit_samples == 10
    assert config.evaluation.tasks[1].params.temperature == 0.5


@pytest.mark.parametrize("switch", ["deployment=sglang", "deployment.type=sglang"])
def test_group_switch_brings_the_new_groups_defaults(base, switch):
    config = load_config(base, overrides=[switch]).model
    assert config.deployment.type == "sglang"
    assert config.deployment.image == "lmsysorg/sglang:latest"
    assert config.deployment.checkpoint_path == "org/model"  # the user's keys carry over


def test_execution_switch_accepts_the_reference_spelling(base):
    config = load_config(base, overrides=["execution=slurm/default"]).model
    assert config.execution.type == "slurm"
    assert config.execution.walltime == "01:00:00"


def test_defaults_list_selects_groups(write_yaml):
    path = write_yaml(
        "defaults:\n  - execution: slurm/default\n  - deployment: vllm\n  - _self_\n"
        "deployment: {checkpoint_path: m}\nexecution: {account: acct}\n"
        "evaluation: {tasks: [{name: gsm8k}]}\n"
    )
    config = load_config(path).model
    assert (config.execution.type, config.deployment.type) == ("slurm", "vllm")
    assert config.execution.account == "acct"


def test_type_key_beats_defaults_list_and_override_beats_both(write_yaml):
    path = write_yaml(
        "defaults:\n  - deployment: sglang\n"
        "deployment: {type: vllm, checkpoint_path: m}\nevaluation: {tasks: [{name: gsm8k}]}\n"
    )
    assert load_config(path).model.deployment.type == "vllm"
    switched = load_config(path, overrides=["deployment=trtllm"]).model
    assert switched.deployment.type == "trtllm"


def test_interpolation_from_environment(base, monkeypatch):
    monkeypatch.setenv("CKPT_FOR_TEST", "/models/x")
    config = load_config(
        base, overrides=["deployment.checkpoint_path=${oc.env:CKPT_FOR_TEST}"]
    ).model
    assert config.deployment.checkpoint_path == "/models/x"


def test_unmentioned_sections_default_to_local_and_none(write_yaml):
    path = write_yaml(
        "target: {api_endpoint: {url: 'http://h:1/v1', model_id: m}}\n"
        "evaluation: {tasks: [{name: gsm8k}]}\n"
    )
    config = load_config(path).model
    assert (config.execution.type, config.deployment.type) == ("local", "none")


def test_defaults_cycle_is_an_error(write_yaml, tmp_path):
    write_yaml("defaults: [b]\n", "a.yaml")
    write_yaml("defaults: [a]\n", "b.yaml")
    with pytest.raises(ConfigError, match="defaults list includes itself"):
        load_config(tmp_path / "a.yaml")


def test_nel_style_params_map_onto_ours(write_yaml):
    from evalfleet.planner import plan_invocation

    path = write_yaml(
        BASE + "  nemo_evaluator_config:\n    config:\n      params:\n"
        "        request_timeout: 120\n        limit_samples: 3\n"
        "        extra: {n_samples: 2, num_fewshot: 3}\n"
    )
    config = load_config(path).model
    invocation = plan_invocation(config, "abcd0123")
    spec = invocation.jobs[0].spec
    # Every parameter the engine uses is in the job file: the task's defaults (lm-eval's
    # gsm8k as the launcher runs it) and the engine's (max_retries) beside the config's.
    assert spec["params"] == {
        "parallelism": 4, "request_timeout": 120, "limit_samples": 3, "n_samples": 2,
        "temperature": 1e-07, "top_p": 0.9999999, "max_new_tokens": 256, "seed": 1234,
        "stop": ["Question:", "</s>", "<|im_end|>"], "max_retries": 8,
    }  # fmt: skip
    # The launcher's extra.num_fewshot is the task's few-shot count.
    assert spec["task_options"] == {"num_fewshot": 3}
    # A global setting skips tasks without few-shot examples (ifeval); a task's own is
    # refused there, naming the key.
    assert "task_options" not in invocation.jobs[1].spec
    own = write_yaml(
        BASE.replace(
            "    - name: lm-evaluation-harness.ifeval\n",
            "    - name: lm-evaluation-harness.ifeval\n"
            "      nemo_evaluator_config: {config: {params: {extra: {num_fewshot: 2}}}}\n",
        ),
        "own.yaml",
    )
    with pytest.raises(
        ConfigError, match=r"tasks\[1\] config.params.extra.num_fewshot: not an option of"
    ):
        plan_invocation(load_config(own).model, "abcd0124")


def test_nel_overrides_map_params_and_adapter_config(write_yaml):
    from evalfleet.planner import plan_invocation

    path = write_yaml(
        BASE + "  overrides:\n"
        "    config.params.temperature: 0.6\n"
        "    target.api_endpoint.adapter_config.use_system_prompt: true\n"
        "    target.api_endpoint.adapter_config.custom_system_prompt: /think\n"
        "    target.api_endpoint.adapter_config.process_reasoning_traces: true\n"
    )
    spec = plan_invocation(load_config(path).model, "abcd0123").jobs[0].spec
    assert spec["params"]["temperature"] == 0.6
    assert spec["interceptors"] == {
        "system_prompt": {"mode": "prepend", "text": "/think"},
        "reasoning": {"start": "<think>", "end": "</think>"},
    }


def test_nel_overrides_outside_params_and_adapter_are_refused(write_yaml):
    from evalfleet.planner import plan_invocation

    path = write_yaml(BASE + "  overrides:\n    harness.limit: 3\n")
    with pytest.raises(ConfigError, match=r"evaluation.overrides.harness: not supported"):
        plan_invocation(load_config(path).model, "abcd0123")
