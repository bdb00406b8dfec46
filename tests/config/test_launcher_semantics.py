"""A launcher config means here what it means in NeMo Evaluator Launcher.

Each test pins one meaning evalfleet used to drift from silently: adapter_config layers
merging, `use_reasoning`, the system prompt's default strategy (checked against
nemo-evaluator's own interceptor), env var values (`host:`/`lit:`/`runtime:` and the older
bare form), and the local executor handing the tasks their env.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from evalfleet.config import load_config
from evalfleet.config.env import EnvRef, job_env, parse_env, server_env
from evalfleet.engine.interceptors import build_interceptors
from evalfleet.exceptions import ConfigError
from evalfleet.planner import plan_invocation

ENDPOINT = """\
target:
  api_endpoint: {url: "http://127.0.0.1:9/v1", model_id: m, api_key_name: MY_KEY}
execution: {type: local, output_dir: OUT}
"""


def _specs(write_yaml, tmp_path, text: str, *overrides: str) -> list[dict]:
    config = load_config(
        write_yaml(ENDPOINT.replace("OUT", str(tmp_path / "out")) + text),
        overrides=list(overrides),
    ).model
    return [job.spec for job in plan_invocation(config, "abcd0001").jobs]


# --------------------------------------------------------------------------- adapter_config


def test_a_tasks_adapter_config_merges_with_the_global_one(write_yaml, tmp_path):
    """The launcher's own example: mbpp sets only its custom_system_prompt; the global
    use_system_prompt: true still applies, so mbpp runs with *its* prompt (HEAD kept the
    global prompt, dropping the task's)."""
    gsm8k, mbpp = _specs(
        write_yaml,
        tmp_path,
        "evaluation:\n"
        "  overrides:\n"
        "    target.api_endpoint.adapter_config.use_system_prompt: true\n"
        "    target.api_endpoint.adapter_config.custom_system_prompt: Think step by step.\n"
        "  tasks:\n"
        "    - name: gsm8k\n"
        "    - name: evalfleet.mbpp\n"
        "      overrides:\n"
        "        target.api_endpoint.adapter_config.custom_system_prompt: Only the code.\n",
    )
    assert gsm8k["interceptors"]["system_prompt"]["text"] == "Think step by step."
    assert mbpp["interceptors"]["system_prompt"] == {"mode": "prepend", "text": "Only the code."}


def test_a_task_flag_keeps_the_global_system_prompt(write_yaml, tmp_path):
    (spec,) = _specs(
        write_yaml,
        tmp_path,
        "evaluation:\n"
        "  nemo_evaluator_config:\n"
        "    target: {api_endpoint: {adapter_config: {use_system_prompt: true,\n"
        "                                             custom_system_prompt: G}}}\n"
        "  tasks:\n"
        "    - name: gsm8k\n"
        "      nemo_evaluator_config:\n"
        "        target: {api_endpoint: {adapter_config: {process_reasoning_traces: true}}}\n",
    )
    assert spec["interceptors"]["system_prompt"]["text"] == "G"
    assert spec["interceptors"]["reasoning"] == {"start": "<think>", "end": "</think>"}


def test_a_task_can_switch_the_global_system_prompt_off(write_yaml, tmp_path):
    (spec,) = _specs(
        write_yaml,
        tmp_path,
        "evaluation:\n"
        "  overrides:\n"
        "    target.api_endpoint.adapter_config.use_system_prompt: true\n"
        "    target.api_endpoint.adapter_config.custom_system_prompt: G\n"
        "  tasks:\n"
        "    - name: gsm8k\n"
        "      overrides: {target.api_endpoint.adapter_config.use_system_prompt: false}\n",
    )
    assert "system_prompt" not in spec["interceptors"]


# --------------------------------------------------------------------------- use_reasoning


def test_use_reasoning_turns_the_reasoning_interceptor_on(write_yaml, tmp_path):
    on, off = _specs(
        write_yaml,
        tmp_path,
        "evaluation:\n"
        "  tasks:\n"
        "    - name: gsm8k\n"
        "      overrides: {target.api_endpoint.adapter_config.use_reasoning: true}\n"
        "    - name: evalfleet.mbpp\n"
        "      overrides: {target.api_endpoint.adapter_config.use_reasoning: false}\n",
    )
    assert on["interceptors"] == {"reasoning": {"start": "<think>", "end": "</think>"}}
    assert off["interceptors"] == {}
    runtime = build_interceptors(on["interceptors"])
    assert runtime.apply_response("<think>hm</think> 42", None) == ("42", "hm", False)


# --------------------------------------------------------------------------- system prompt

CASES = [
    [{"role": "user", "content": "q"}],
    [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "q"}],
    [
        {"role": "system", "content": "A"},
        {"role": "user", "content": "q"},
        {"role": "system", "content": "B"},
    ],
]


def test_the_system_prompt_follows_nemo_evaluators_interceptor():
    """nemo-evaluator's own system_message interceptor (run in the reference venv) and
    evalfleet's give the same request for each strategy, its default (prepend) included."""
    from tests.references.harness import run_reference

    configs = [
        {"system_message": "NEW"},
        *({"system_message": "NEW", "strategy": s} for s in ("prepend", "append", "replace")),
    ]
    cases = [
        {"config": config, "body": {"messages": messages, "temperature": 0}}
        for config in configs
        for messages in CASES
    ]
    expected = run_reference("system_message", {"cases": cases}, timeout=120)
    for case, reference in zip(cases, expected, strict=True):
        adapter = {"interceptors": [{"name": "system_message", "config": case["config"]}]}
        ours = build_interceptors(adapter).apply_request(json.loads(json.dumps(case["body"])))
        assert ours == reference, case


def test_the_legacy_custom_system_prompt_prepends():
    runtime = build_interceptors({"use_system_prompt": True, "custom_system_prompt": "NEW"})
    body = runtime.apply_request({"messages": list(CASES[1])})
    assert body["messages"][0] == {"role": "system", "content": "NEW\nBe terse."}


# --------------------------------------------------------------------------- env values


@pytest.mark.parametrize(
    ("raw", "legacy", "expected"),
    [
        ("host:HF_TOKEN", "literal", EnvRef("host", "HF_TOKEN")),
        ("lit:HF_TOKEN", "host", EnvRef("literal", "HF_TOKEN")),
        ("runtime:SLURM_JOB_ID", "host", EnvRef("runtime", "SLURM_JOB_ID")),
        ("lit:", "host", EnvRef("literal", "")),
        # Older configs: in evaluation env a bare name was the host variable's name…
        ("MY_HF_TOKEN", "host", EnvRef("host", "MY_HF_TOKEN")),
        ("$MY_HF_TOKEN", "host", EnvRef("host", "MY_HF_TOKEN")),
        ("1", "host", EnvRef("literal", "1")),
        ("/data/hf", "host", EnvRef("literal", "/data/hf")),
        # …while a deployment's values were written into the script as they are.
        ("INFO", "literal", EnvRef("literal", "INFO")),
        ("$HOME", "literal", EnvRef("runtime", "HOME")),
        (True, "host", EnvRef("literal", "true")),
    ],
)
def test_env_values_mean_what_the_launcher_reads(raw, legacy, expected):
    assert parse_env(raw, "env_vars.X", legacy) == expected


def test_a_variable_reference_must_name_a_variable():
    with pytest.raises(ConfigError, match=r"^env_vars.X: host:'not a name' must name a variable"):
        parse_env("host:not a name", "env_vars.X")


def test_env_layers_and_sections(write_yaml, tmp_path):
    config = load_config(
        write_yaml(
            ENDPOINT.replace("OUT", str(tmp_path)) + "env_vars: {A: lit:top, B: lit:top}\n"
            "deployment: {type: none}\n"
            "evaluation:\n"
            "  env_vars: {B: HOST_B, C: lit:eval}\n"
            "  tasks:\n"
            "    - name: gsm8k\n"
            "      env_vars: {C: runtime:JOB_C}\n"
            "      dataset_dir: /data/sets\n"
        ),
        overrides=["execution.env_vars={deployment: {D: x}, evaluation: {E: $HOME}}"],
    ).model
    env = {name: ref for name, (_, ref) in job_env(config, 0).items()}
    assert env == {
        "A": EnvRef("literal", "top"),
        "B": EnvRef("host", "HOST_B"),
        "C": EnvRef("runtime", "JOB_C"),
        "E": EnvRef("runtime", "HOME"),
        "NEMO_EVALUATOR_DATASET_DIR": EnvRef("literal", "/data/sets"),
    }
    assert job_env(config, 0)["B"][0] == "evaluation.env_vars.B"
    assert {name: ref for name, (_, ref) in server_env(config).items()} == {
        "A": EnvRef("literal", "top"),
        "B": EnvRef("literal", "top"),
        "D": EnvRef("literal", "x"),
    }


# --------------------------------------------------------------------------- local executor


def test_the_local_executor_hands_evaluation_and_task_env_to_the_task(
    write_yaml, tmp_path, monkeypatch
):
    """HEAD started `evalfleet eval` with this process's environment only."""
    from evalfleet.executors.local import executor as local

    config = load_config(
        write_yaml(
            ENDPOINT.replace("OUT", str(tmp_path)) + "evaluation:\n"
            "  env_vars: {FROM_EVAL: lit:e, SECRET_TOKEN: host:MY_SECRET}\n"
            "  tasks:\n"
            "    - name: gsm8k\n"
            "      env_vars: {FROM_TASK: t, LATE: runtime:LATE_SOURCE}\n"
        )
    ).model
    inv = plan_invocation(config, "abcd0002")
    monkeypatch.setenv("MY_SECRET", "s3cr3t-value")
    monkeypatch.setenv("t", "task-host-value")  # a bare name in task env: a host variable
    monkeypatch.setenv("LATE_SOURCE", "late")
    seen = {}

    def record_env(jobs, **kwargs):  # the jobs run in the runner, each with its own env
        seen.update(jobs[0].env)

    import evalfleet.jobs

    monkeypatch.setattr(evalfleet.jobs, "evaluate_jobs", record_env)
    executor = local.LocalExecutor()
    executor._job_envs = {
        job.job_id: local._resolved(job_env(config, job.index)) for job in inv.jobs
    }

    class FakeRun:
        jobs = inv.jobs[:1]

    executor._run_jobs(FakeRun(), parallel=False)
    assert seen["FROM_EVAL"] == "e"
    assert seen["SECRET_TOKEN"] == "s3cr3t-value"
    assert seen["FROM_TASK"] == "task-host-value"
    assert seen["LATE"] == "late"
    # The plan (what a dry run writes to disk) names the variable, never its value.
    plan = json.dumps(executor.plan(inv))
    assert "s3cr3t-value" not in plan and "host:MY_SECRET" in plan


def test_an_unset_host_variable_stops_the_local_run_naming_its_key(write_yaml, tmp_path):
    from evalfleet.executors.local.executor import _resolved

    config = load_config(
        write_yaml(
            ENDPOINT.replace("OUT", str(tmp_path))
            + "evaluation:\n  tasks:\n    - name: gsm8k\n      env_vars: {X: host:SURELY_UNSET_9}\n"
        )
    ).model
    with pytest.raises(
        ConfigError, match=r"^evaluation.tasks\[0\].env_vars.X: host:SURELY_UNSET_9 "
    ):
        _resolved(job_env(config, 0))


def test_a_task_process_really_gets_its_env(tmp_path):
    """End to end of the one line that matters: the env reaches a child process."""
    from evalfleet.executors.local.executor import _resolved

    env = _resolved({"X": ("k", EnvRef("literal", "v"))})
    out = subprocess.run(
        [sys.executable, "-c", "import os; print(os.environ['X'])"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "v"


# --------------------------------------------------------------------------- pre_cmd


def test_pre_cmd_exports_reach_the_task_and_post_cmd_runs(write_yaml, tmp_path, monkeypatch):
    from evalfleet.engine.job_commands import JobCommandError, run_post_cmd, run_pre_cmd

    (spec,) = _specs(
        write_yaml,
        tmp_path,
        "evaluation:\n  pre_cmd: export FROM_PRE=1\n  post_cmd: touch done\n"
        "  tasks: [{name: gsm8k, pre_cmd: 'export FROM_PRE=task'}]\n",
    )
    assert spec["pre_cmd"] == "export FROM_PRE=task"  # the task's own wins
    assert spec["post_cmd"] == "touch done"
    monkeypatch.delenv("FROM_PRE", raising=False)
    job_env = run_pre_cmd(spec["pre_cmd"], tmp_path, {**os.environ, "GIVEN": "g"})
    assert job_env["FROM_PRE"] == "task" and job_env["GIVEN"] == "g"
    # The job's own environment, not the process's: jobs running side by side share that.
    assert "FROM_PRE" not in os.environ
    assert run_post_cmd(spec["post_cmd"] + ' && echo "$FROM_PRE" > seen', tmp_path, job_env) == 0
    assert (tmp_path / "done").is_file() and (tmp_path / "seen").read_text() == "task\n"
    with pytest.raises(JobCommandError, match="pre_cmd exited with 3"):
        run_pre_cmd("exit 3", tmp_path, os.environ)
