"""Targeted checks of the Lepton request bodies: the fields the guide and the API care about."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import evalfleet
from evalfleet.contract import Invocation
from evalfleet.exceptions import ConfigError
from evalfleet.executors.lepton import LeptonExecutor
from evalfleet.executors.lepton.results import emit_lines
from evalfleet.executors.lepton.spec import (
    ENDPOINT_URL_PLACEHOLDER,
    LEPTON_ENDPOINT_TOKEN_ENV,
    LEPTON_ENDPOINT_URL_ENV,
    WHEEL_CHUNK_CHARS,
    bodies,
    deployment_body,
    endpoint_name,
    fill_wheel,
    job_bodies,
    job_name,
    job_script,
)

from .conftest import FAKE_WHEEL, FAKE_WHEEL_DATA

PlanYaml = Callable[..., Invocation]
NAME = re.compile(r"^[a-z][a-z0-9-]*$")

VLLM = """\
deployment:
  type: vllm
  checkpoint_path: meta-llama/Llama-3.1-8B-Instruct
  lepton_config:
    resource_shape: gpu.1xh200
execution:
  type: lepton
evaluation:
  tasks:
    - name: ifeval
"""


def _with(base: str, **sections: str) -> str:
    """`base` with extra YAML indented under deployment.lepton_config / execution."""
    text = base
    if "lepton_config" in sections:
        extra = "".join(f"    {line}\n" for line in sections["lepton_config"].splitlines())
        text = text.replace(
            "    resource_shape: gpu.1xh200\n", "    resource_shape: gpu.1xh200\n" + extra
        )
    if "execution" in sections:
        extra = "".join(f"  {line}\n" for line in sections["execution"].splitlines())
        text = text.replace("  type: lepton\n", "  type: lepton\n" + extra)
    return text


def _envs(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    envs = body["spec"]["envs"]
    names = [env["name"] for env in envs]
    assert len(names) == len(set(names)), f"duplicate env names: {names}"
    return {env["name"]: env for env in envs}


def _problems(excinfo: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    return excinfo.value.problems


# --------------------------------------------------------------------------- guide sections


def test_guide_vllm_replicas_and_autoscaler(plan_case: Callable[[str], Invocation]) -> None:
    body = deployment_body(plan_case("vllm_guide"))
    assert body is not None
    resources = body["spec"]["resource_requirement"]
    assert (resources["min_replicas"], resources["max_replicas"]) == (1, 3)
    assert resources["resource_shape"] == "gpu.1xh200"
    assert "affinity" not in resources
    assert body["spec"]["auto_scaler"] == {"scale_down": {"no_traffic_timeout": 3600}}


def test_scale_from_zero_is_accepted_but_never_sent(plan_yaml: PlanYaml) -> None:
    inv = plan_yaml(_with(VLLM, lepton_config=(
        "min_replicas: 1\nmax_replicas: 3\nauto_scaler:\n  scale_down:\n"
        "    no_traffic_timeout: 3600\n    scale_from_zero: false\n"
    )))  # fmt: skip
    body = deployment_body(inv)
    assert body is not None
    assert body["spec"]["auto_scaler"] == {"scale_down": {"no_traffic_timeout": 3600}}
    assert "scale_from_zero" not in json.dumps(LeptonExecutor().plan(inv))


@pytest.mark.parametrize(
    ("lepton_config", "expected"),
    [
        ("", {"scale_down": {"no_traffic_timeout": 3600}}),
        ("auto_scaler:\n  scale_down:\n    scale_from_zero: true\n",
         {"scale_down": {"no_traffic_timeout": 3600}}),
        ("auto_scaler:\n  scale_down:\n    no_traffic_timeout: 600\n",
         {"scale_down": {"no_traffic_timeout": 600}}),
        ("auto_scaler:\n  target_gpu_utilization_percentage: 80\n",
         {"target_gpu_utilization_percentage": 80, "scale_down": {"no_traffic_timeout": 3600}}),
        ("auto_scaler:\n  scale_down:\n    no_traffic_timeout: 0\n",
         {"scale_down": {"no_traffic_timeout": 0}}),
    ],
)  # fmt: skip
def test_an_idle_endpoint_always_scales_down(
    plan_yaml: PlanYaml, lepton_config: str, expected: dict[str, Any]
) -> None:
    body = deployment_body(plan_yaml(_with(VLLM, lepton_config=lepton_config)))
    assert body is not None
    assert body["spec"]["auto_scaler"] == expected


def test_platform_default_timeout_is_kept_when_lepton_config_sets_none(plan_yaml: PlanYaml) -> None:
    inv = plan_yaml(_with(VLLM, execution=(
        "lepton_platform:\n  deployment:\n    platform_defaults:\n      auto_scaler:\n"
        "        scale_down:\n          no_traffic_timeout: 900\n"
    )))  # fmt: skip
    body = deployment_body(inv)
    assert body is not None
    assert body["spec"]["auto_scaler"] == {"scale_down": {"no_traffic_timeout": 900}}


def test_guide_envs_secret_ref_and_plain_value(plan_yaml: PlanYaml) -> None:
    inv = plan_yaml(_with(VLLM, lepton_config=(
        "envs:\n  HF_TOKEN:\n    value_from:\n      secret_name_ref: \"HUGGING_FACE_HUB_TOKEN\"\n"
        "  CUSTOM_VAR: \"direct_value\"\n"
    )))  # fmt: skip
    body = deployment_body(inv)
    assert body is not None
    envs = body["spec"]["envs"]
    assert envs[0] == {
        "name": "HF_TOKEN",
        "value_from": {"secret_name_ref": "HUGGING_FACE_HUB_TOKEN"},
    }
    assert envs[1] == {"name": "CUSTOM_VAR", "value": "direct_value"}
    assert _envs(body)["SERVED_MODEL_NAME"] == {
        "name": "SERVED_MODEL_NAME",
        "value": "meta-llama/Llama-3.1-8B-Instruct",
    }
    assert _envs(body)["MODEL_PORT"] == {"name": "MODEL_PORT", "value": "8000"}


def test_a_derived_env_the_user_set_is_not_repeated(plan_yaml: PlanYaml) -> None:
    inv = plan_yaml(_with(VLLM, lepton_config="envs:\n  MODEL_PORT: '9000'\n"))
    body = deployment_body(inv)
    assert body is not None
    assert _envs(body)["MODEL_PORT"]["value"] == "9000"


def test_guide_mounts(plan_yaml: PlanYaml) -> None:
    inv = plan_yaml(_with(VLLM, lepton_config=(
        "mounts:\n  enabled: true\n  cache_path: \"/path/to/storage\"\n"
        "  mount_path: \"/opt/nim/.cache\"\n"
    )))  # fmt: skip
    body = deployment_body(inv)
    assert body is not None
    assert body["spec"]["mounts"] == [{
        "path": "/path/to/storage",
        "from": "node-nfs:lepton-shared-fs",
        "mount_path": "/opt/nim/.cache",
        "mount_options": {},
    }]  # fmt: skip


def test_no_mounts_unless_enabled(plan_yaml: PlanYaml) -> None:
    inv = plan_yaml(_with(VLLM, lepton_config="mounts:\n  enabled: false\n  cache_path: /x\n"))
    body = deployment_body(inv)
    assert body is not None
    assert "mounts" not in body["spec"]


def test_servers_listen_on_all_interfaces_as_the_launcher_starts_them(
    plan_case: Callable[[str], Invocation],
) -> None:
    # The launcher's Lepton command lines: sglang names 0.0.0.0; vllm names no host, and
    # vLLM's server socket then binds every interface (`args.host or ""`).
    commands = {}
    for case in ("vllm_guide", "sglang_guide"):
        body = deployment_body(plan_case(case))
        assert body is not None
        commands[case] = body["spec"]["container"]["command"]
        assert body["spec"]["container"]["ports"] == [{"container_port": 8000}]
    assert not any(word.startswith("--host") for word in commands["vllm_guide"])
    assert "--host=0.0.0.0" in commands["sglang_guide"]
    assert "--port=8000" in commands["vllm_guide"]


def test_nim_runs_its_image_entrypoint(plan_case: Callable[[str], Invocation]) -> None:
    body = deployment_body(plan_case("nim_guide"))
    assert body is not None
    assert "command" not in body["spec"]["container"]
    assert body["spec"]["container"]["image"] == "nvcr.io/nim/meta/llama-3.1-8b-instruct:1.8.6"


def test_none_deploys_nothing(plan_case: Callable[[str], Invocation]) -> None:
    inv = plan_case("none_guide")
    assert deployment_body(inv) is None
    plan = LeptonExecutor().plan(inv)
    assert (plan["deployment"], plan["readiness"], plan["teardown"]) == (None, None, [])
    (job,) = job_bodies(inv)
    names = {env["name"] for env in job["spec"]["envs"]}
    assert not names & {LEPTON_ENDPOINT_URL_ENV, LEPTON_ENDPOINT_TOKEN_ENV}


# --------------------------------------------------------------------------- node groups, queue


def test_node_groups_and_queue(plan_case: Callable[[str], Invocation]) -> None:
    inv = plan_case("full")
    deployment, jobs = bodies(inv)
    assert deployment is not None
    assert deployment["spec"]["resource_requirement"]["affinity"] == {
        "allowed_dedicated_node_groups": ["ng-h200-01-mjgbgffo"]  # lepton_config wins
    }
    assert deployment["spec"]["queue_config"] == {
        "priority_class": "high-9000",
        "can_be_preempted": False,
    }
    for job in jobs:
        assert job["spec"]["affinity"] == {"allowed_dedicated_node_groups": ["ng-cpu-01"]}


def test_platform_node_group_is_used_when_lepton_config_has_none(plan_yaml: PlanYaml) -> None:
    inv = plan_yaml(
        _with(VLLM, execution="lepton_platform:\n  deployment:\n    node_group: ng-1\n")
    )
    body = deployment_body(inv)
    assert body is not None
    assert body["spec"]["resource_requirement"]["affinity"] == {
        "allowed_dedicated_node_groups": ["ng-1"]
    }
    assert "affinity" not in job_bodies(inv)[0]["spec"]


def test_platform_defaults_sit_under_explicit_settings(
    plan_case: Callable[[str], Invocation],
) -> None:
    body = deployment_body(plan_case("full"))
    assert body is not None
    spec = body["spec"]
    assert spec["log"] == {"enable_collection": True}
    assert spec["metrics"] == {} and spec["routing_policy"] == {}
    assert spec["image_pull_secrets"] == ["ngc-pull"]
    assert spec["health"] == {"readiness": {}, "liveness": {"initial_delay_seconds": 600}}
    envs = _envs(body)
    assert envs["CUSTOM_VAR"]["value"] == "direct_value"
    assert envs["PLATFORM_ONLY"]["value"] == "1"


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        (None, "vllm-0123abcd"),
        ("Llama_3.1-8B.Instruct", "llama-3-1-8b-instruct-0123abcd"),
        ("meta/Llama 3 (8B)!!", "meta-llama-3-8b-0123abcd"),
        ("8b-model", "b-model-0123abcd"),
        ("123", "vllm-0123abcd"),
        (
            "a-very-long-endpoint-name-that-never-ends-at-all",
            "a-very-long-endpoint-name-t-0123abcd",
        ),
        ("abcdefghijklmnopqrstuvwxyz-0123456789", "abcdefghijklmnopqrstuvwxyz-0123abcd"),
    ],
)
def test_endpoint_name(plan_yaml: PlanYaml, endpoint: str | None, expected: str) -> None:
    extra = "" if endpoint is None else f"endpoint_name: {json.dumps(endpoint)}\n"
    inv = plan_yaml(_with(VLLM, lepton_config=extra))
    name = endpoint_name(inv)
    assert name == expected
    assert NAME.match(name) and len(name) <= 36 and not name.endswith("-")
    assert name.endswith("-0123abcd")
    body = deployment_body(inv)
    assert body is not None
    assert body["metadata"] == {"id": name, "name": name}


def test_job_names_for_long_tasks_stay_valid_and_distinct(
    plan_case: Callable[[str], Invocation],
) -> None:
    inv = plan_case("full")
    assert [job_name(inv, job) for job in inv.jobs] == [
        "eval-0123abcd-ifeval",
        "eval-0123abcd-gsm8k",
    ]
    long_a = dataclasses.replace(inv.jobs[0], task="a_very_long_benchmark_name_variant_alpha")
    long_b = dataclasses.replace(inv.jobs[1], task="a_very_long_benchmark_name_variant_beta")
    names = [job_name(inv, long_a), job_name(inv, long_b)]
    assert names == ["eval-0123abcd-a-very-long-benchmar-0", "eval-0123abcd-a-very-long-benchmar-1"]
    for name in names:
        assert NAME.match(name) and len(name) <= 36 and not name.endswith("-")


def test_job_name_of_a_guide_task(plan_case: Callable[[str], Invocation]) -> None:
    inv = plan_case("none_guide")
    assert job_name(inv, inv.jobs[0]) == "eval-0123abcd-mmlu-pro"


# --------------------------------------------------------------------------- job spec and script


def _payload(script: str) -> dict[str, Any]:
    match = re.search(r"^printf '%s' ([A-Za-z0-9+/=]+) \| base64 -d > (\S+)$", script, re.M)
    assert match, script
    return json.loads(base64.b64decode(match.group(1)))


@pytest.mark.parametrize("case", ["vllm_guide", "nim_guide", "none_guide", "full"])
def test_job_script_writes_the_job_spec(plan_case: Callable[[str], Invocation], case: str) -> None:
    inv = plan_case(case)
    for job, body in zip(inv.jobs, job_bodies(inv), strict=True):
        command = body["spec"]["container"]["command"]
        assert command[:2] == ["bash", "-c"]
        script = command[2]
        assert _payload(script) == job.spec
        timeout = inv.config.execution.evaluation_tasks.timeout
        lines = script.splitlines()
        scratch = [] if job.output_dir.startswith("/") else ['cd "$(mktemp -d)"']
        n = len(scratch)
        parts = '"$EVALFLEET_WHEEL_0" "$EVALFLEET_WHEEL_1" "$EVALFLEET_WHEEL_2"'
        assert lines[: 11 + n] == [
            "set -euo pipefail",
            *scratch,
            f"mkdir -p {job.output_dir}",
            lines[2 + n],
            "# evalfleet 0.1.0+sha0123456789ab, the planner's own wheel: in the envs "
            "EVALFLEET_WHEEL_0..",
            f'evalfleet_wheel="$(mktemp -d)"/{FAKE_WHEEL.filename}',
            f"printf '%s' {parts} | base64 -d > \"$evalfleet_wheel\"",
            "unset EVALFLEET_WHEEL_0 EVALFLEET_WHEEL_1 EVALFLEET_WHEEL_2",
            f'echo "{FAKE_WHEEL.sha256}  $evalfleet_wheel" | sha256sum --check --quiet -',
            "python3 -m pip install --quiet --no-cache-dir --disable-pip-version-check "
            '"$evalfleet_wheel"',
            lines[9 + n],
            "status=0",
        ]
        assert lines[9 + n].startswith("python3 -c ") and lines[9 + n].endswith(
            f" {FAKE_WHEEL.version}"
        )
        assert lines[11 + n] == (
            f"timeout --signal=TERM --kill-after=60 {timeout} "
            f"python3 -m evalfleet eval --job {job.output_dir}/job.json || status=$?"
        )
        assert lines[12 + n :] == [*emit_lines(job.output_dir), 'exit "$status"']
        envs = _envs(body)
        assert [envs[f"EVALFLEET_WHEEL_{i}"]["value"] for i in range(3)] == [
            f"<filled at launch: part {i}/3 of {FAKE_WHEEL.filename} (150,000 bytes), base64>"
            for i in (1, 2, 3)
        ]
        assert "EVALFLEET_WHEEL_3" not in envs


def test_job_spec_fields(plan_case: Callable[[str], Invocation]) -> None:
    inv = plan_case("full")
    jobs = job_bodies(inv)
    assert [job["metadata"] for job in jobs] == [
        {"name": "eval-0123abcd-ifeval"},
        {"name": "eval-0123abcd-gsm8k"},
    ]
    spec = jobs[1]["spec"]
    assert spec["resource_shape"] == "cpu.medium"
    assert spec["container"]["image"] == "python:3.12-slim"
    assert (spec["completions"], spec["parallelism"]) == (1, 1)
    assert spec["ttl_seconds_after_finished"] == 86400
    assert spec["max_job_failure_retry"] == 0
    assert spec["mounts"] == [{
        "path": "/shared/evalfleet", "from": "node-nfs:lepton-shared-fs",
        "mount_path": "/workspace", "mount_options": {},
    }]  # fmt: skip
    assert spec["image_pull_secrets"] == ["ngc-pull"]
    envs = _envs(jobs[1])
    assert envs["SHARED"] == {"name": "SHARED", "value": "from-lepton-tasks"}  # later wins
    assert envs["TASK_ONLY"]["value"] == "gsm8k" and "TASK_ONLY" not in _envs(jobs[0])
    assert envs["ROOT_ONLY"]["value"] == "root" and envs["EVAL_ONLY"]["value"] == "eval"
    assert envs["HF_TOKEN"] == {
        "name": "HF_TOKEN",
        "value_from": {"secret_name_ref": "HUGGING_FACE_HUB_TOKEN"},
    }
    assert envs[LEPTON_ENDPOINT_URL_ENV] == {
        "name": LEPTON_ENDPOINT_URL_ENV,
        "value": ENDPOINT_URL_PLACEHOLDER,
    }
    assert envs[LEPTON_ENDPOINT_TOKEN_ENV] == {
        "name": LEPTON_ENDPOINT_TOKEN_ENV,
        "value_from": {"secret_name_ref": "EVAL_ENDPOINT_KEY"},
    }
    assert inv.jobs[1].output_dir == "/workspace/evalfleet/0123abcd/gsm8k"


@pytest.mark.parametrize(
    ("command", "install"),
    [("''", None), ("'pip install evalfleet=={version}'", "pip install evalfleet==0.1.0")],
)
def test_an_image_with_evalfleet_gets_no_wheel(
    plan_yaml: PlanYaml, command: str, install: str | None
) -> None:
    inv = plan_yaml(
        _with(VLLM, execution=f"evaluation_tasks:\n  install_command: {command}\n  timeout: 60\n")
    )
    script = job_script(inv, inv.jobs[0])
    assert "EVALFLEET_WHEEL" not in script and "sha256sum" not in script
    assert [line for line in script.splitlines() if "install" in line] == (
        [install] if install else []
    )
    assert "\ntimeout --signal=TERM --kill-after=60 60 evalfleet eval" in script
    assert not [e for e in _envs(job_bodies(inv)[0]) if e.startswith("EVALFLEET_WHEEL")]
    assert LeptonExecutor().plan(inv)["evalfleet_wheel"] is None


def test_a_user_env_cannot_take_a_wheel_part(plan_yaml: PlanYaml) -> None:
    inv = plan_yaml(_with(VLLM, execution="env_vars:\n  EVALFLEET_WHEEL_1: x\n"))
    with pytest.raises(ConfigError, match=r"execution\.env_vars\.EVALFLEET_WHEEL_1: "):
        job_bodies(inv)


def test_the_dry_run_says_where_the_wheel_goes(plan_yaml: PlanYaml) -> None:
    inv = plan_yaml(VLLM)
    plan = LeptonExecutor().plan(inv)
    assert plan["evalfleet_wheel"] == {
        "file": FAKE_WHEEL.filename, "version": FAKE_WHEEL.version,
        "sha256": FAKE_WHEEL.sha256, "bytes": 150_000,
        "envs": ["EVALFLEET_WHEEL_0", "EVALFLEET_WHEEL_1", "EVALFLEET_WHEEL_2"],
    }  # fmt: skip
    text = "\n".join(LeptonExecutor.render_plan(plan))
    assert (
        f"evalfleet 0.1.0+sha0123456789ab ({FAKE_WHEEL.filename}, 150,000 bytes, sha256 "
        f"{FAKE_WHEEL.sha256[:12]}…) ships in each job's spec: envs EVALFLEET_WHEEL_0, "
        "EVALFLEET_WHEEL_1, EVALFLEET_WHEEL_2"
    ) in text


def _run_job(body: dict[str, Any], bin_dir: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "TMPDIR": str(tmp_path)}
    env.update({e["name"]: e["value"] for e in body["spec"]["envs"] if "value" in e})
    return subprocess.run(body["spec"]["container"]["command"], env=env, timeout=30,
                          capture_output=True, text=True)  # fmt: skip


@pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("bash", "base64", "sha256sum")),
    reason="needs bash, base64, sha256sum",
)
def test_job_script_runs(plan_yaml: PlanYaml, tmp_path: Path) -> None:
    """Run the script with fake python3/timeout: the wheel is rebuilt from its parts and
    checked, installed, and job.json lands where `evalfleet eval` reads it."""
    shared = tmp_path / "shared"
    inv = plan_yaml(_with(VLLM, execution=(
        "lepton_platform:\n  tasks:\n    mounts:\n      - from: node-nfs:x\n"
        f"        path: /shared\n        mount_path: {shared}\n"
    )))  # fmt: skip
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls, got = tmp_path / "calls", tmp_path / "got.whl"
    for tool in ("python3", "timeout"):
        fake = bin_dir / tool
        fake.write_text(
            f'#!/bin/bash\necho "{tool} ${{*:1:5}}" >> {calls}\n'
            f'if [[ $2 == pip ]]; then cp "${{@: -1}}" {got}; fi\n'
        )
        fake.chmod(0o755)
    job = inv.jobs[0]
    (body,) = job_bodies(inv)
    fill_wheel(body)
    parts = [e["value"] for e in body["spec"]["envs"] if e["name"].startswith("EVALFLEET_WHEEL")]
    assert [len(part) for part in parts] == [WHEEL_CHUNK_CHARS, WHEEL_CHUNK_CHARS, 3392]
    result = _run_job(body, bin_dir, tmp_path)
    assert result.returncode == 0, result.stderr
    assert got.read_bytes() == FAKE_WHEEL_DATA
    written = Path(job.job_file)
    assert written.parent == shared / "evalfleet" / "0123abcd" / "ifeval"
    assert json.loads(written.read_text()) == job.spec
    recorded = calls.read_text().splitlines()
    assert recorded[0] == "python3 -m pip install --quiet --no-cache-dir"
    assert recorded[1].startswith("python3 -c import sys, importlib.metadata")
    assert recorded[2:] == ["timeout --signal=TERM --kill-after=60 3600 python3 -m"]

    calls.unlink()
    body["spec"]["envs"] = [
        {**e, "value": "////" + e["value"][4:]} if e["name"] == "EVALFLEET_WHEEL_1" else e
        for e in body["spec"]["envs"]
    ]
    broken = _run_job(body, bin_dir, tmp_path)
    assert broken.returncode != 0 and "FAILED" in broken.stderr + broken.stdout
    assert not calls.exists()  # nothing installed or run from a damaged wheel


def test_no_secret_value_reaches_the_plan(
    plan_case: Callable[[str], Invocation], monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = {
        "HF_TOKEN": "hf_SECRETVALUE1",
        "HUGGING_FACE_HUB_TOKEN": "hf_SECRETVALUE2",
        "ENDPOINT_API_KEY": "SECRETVALUE3",
        "EVAL_ENDPOINT_KEY": "SECRETVALUE4",
        LEPTON_ENDPOINT_TOKEN_ENV: "SECRETVALUE5",
        "LEPTON_WORKSPACE_TOKEN": "SECRETVALUE6",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    for case in ("vllm_guide", "nim_guide", "full"):
        plan = LeptonExecutor().plan(plan_case(case))
        text = json.dumps(plan)
        scripts = [job["body"]["spec"]["container"]["command"][2] for job in plan["jobs"]]
        text += "".join(json.dumps(_payload(script)) for script in scripts)
        assert "SECRETVALUE" not in text
        for entry in _all_env_entries(plan):
            if "value_from" in entry:
                assert "value" not in entry
        for token in plan["deployment"]["body"]["spec"]["api_tokens"]:
            assert set(token) == {"value_from"}


def _all_env_entries(plan: dict[str, Any]) -> list[dict[str, Any]]:
    entries = list(plan["deployment"]["body"]["spec"]["envs"]) if plan["deployment"] else []
    for job in plan["jobs"]:
        entries.extend(job["body"]["spec"]["envs"])
    return entries


# --------------------------------------------------------------------------- refusals


def test_reserved_env_names_are_refused(plan_yaml: PlanYaml) -> None:
    inv = plan_yaml(_with(
        VLLM,
        lepton_config="envs:\n  LEPTON_JOB_NAME: x\n  OK_NAME: y\n",
        execution="lepton_platform:\n  tasks:\n    env_vars:\n      LEPTON_WORKSPACE_ID: x\n",
    ))  # fmt: skip
    with pytest.raises(ConfigError) as excinfo:
        LeptonExecutor().plan(inv)
    assert _problems(excinfo) == [
        "deployment.lepton_config.envs.LEPTON_JOB_NAME: reserved by Lepton",
        "execution.lepton_platform.tasks.env_vars.LEPTON_WORKSPACE_ID: reserved by Lepton",
    ]
    with pytest.raises(ConfigError, match=r"^deployment.lepton_config.envs.LEPTON_JOB_NAME: "):
        deployment_body(inv)
    with pytest.raises(ConfigError, match=r"^execution.lepton_platform.tasks.env_vars.LEPTON_WORK"):
        job_bodies(inv)


@pytest.mark.parametrize("path", ["/opt", "/etc/", "//usr", "/var/../root", "/", "/proc"])
def test_system_mount_paths_are_refused(plan_yaml: PlanYaml, path: str) -> None:
    inv = plan_yaml(_with(
        VLLM,
        lepton_config=f"mounts:\n  enabled: true\n  cache_path: /c\n  mount_path: {path}\n",
        execution=(
            "lepton_platform:\n  tasks:\n    mounts:\n      - from: node-nfs:x\n"
            f"        path: /shared\n        mount_path: {path}\n"
        ),
    ))  # fmt: skip
    with pytest.raises(ConfigError) as excinfo:
        LeptonExecutor().plan(inv)
    assert _problems(excinfo) == [
        f"deployment.lepton_config.mounts.mount_path: {path!r} is a system path Lepton "
        "refuses to mount over (mount below it instead)",
        f"execution.lepton_platform.tasks.mounts[0].mount_path: {path!r} is a system path "
        "Lepton refuses to mount over (mount below it instead)",
    ]


def test_mounts_below_system_paths_are_fine(plan_case: Callable[[str], Invocation]) -> None:
    body = deployment_body(plan_case("full"))  # mount_path /opt/nim/.cache
    assert body is not None


def test_every_problem_is_reported_at_once(plan_yaml: PlanYaml) -> None:
    inv = plan_yaml(_with(
        VLLM,
        lepton_config="api_tokens:\n  - value_from: {token_name_ref: OTHER}\n",
        execution=(
            "env_vars:\n  EVALFLEET_ENDPOINT_URL: http://x\n"
            "lepton_platform:\n  deployment:\n    platform_defaults:\n      enable_rdma: false\n"
        ),
    ))  # fmt: skip
    with pytest.raises(ConfigError) as excinfo:
        LeptonExecutor().plan(inv)
    problems = _problems(excinfo)
    assert [line.split(":")[0] for line in problems] == [
        "execution.lepton_platform.tasks.api_key_secret",
        "execution.lepton_platform.deployment.platform_defaults.enable_rdma",
        "execution.env_vars.EVALFLEET_ENDPOINT_URL",
    ]
    assert (
        "'ENDPOINT_API_KEY' is not one of deployment.lepton_config.api_tokens (OTHER)"
        in problems[0]
    )


def test_empty_api_tokens_are_refused(plan_yaml: PlanYaml) -> None:
    with pytest.raises(ConfigError, match=r"^deployment.lepton_config.api_tokens: empty"):
        LeptonExecutor().plan(plan_yaml(_with(VLLM, lepton_config="api_tokens: []\n")))


def test_unauthenticated_access_is_refused(plan_yaml: PlanYaml) -> None:
    inv = plan_yaml(_with(VLLM, execution=(
        "lepton_platform:\n  deployment:\n    platform_defaults:\n"
        "      allow_unauthenticated_access: true\n"
    )))  # fmt: skip
    with pytest.raises(ConfigError, match=r"platform_defaults.allow_unauthenticated_access: "):
        LeptonExecutor().plan(inv)


def test_bad_platform_default_envs_and_mounts(plan_yaml: PlanYaml) -> None:
    inv = plan_yaml(_with(VLLM, execution=(
        "lepton_platform:\n  deployment:\n    platform_defaults:\n      envs:\n"
        "        - name: LEPTON_DEPLOYMENT_NAME\n          value: x\n        - value: y\n"
        "      mounts:\n        - from: node-nfs:x\n          path: /p\n          mount_path: /etc\n"
    )))  # fmt: skip
    with pytest.raises(ConfigError) as excinfo:
        deployment_body(inv)
    key = "execution.lepton_platform.deployment.platform_defaults"
    assert [line.split(": ")[0] for line in _problems(excinfo)] == [
        f"{key}.envs[0].name",
        f"{key}.envs[1]",
        f"{key}.mounts[0].mount_path",
    ]


def test_none_needs_the_api_key_env_in_the_job(plan_yaml: PlanYaml) -> None:
    text = (
        "deployment:\n  type: none\ntarget:\n  api_endpoint:\n    url: https://x.lepton.ai/v1\n"
        "    model_id: m\n    api_key_name: API_KEY\nexecution:\n  type: lepton\n"
        "evaluation:\n  tasks:\n    - name: ifeval\n"
    )
    with pytest.raises(ConfigError, match=r"^target.api_endpoint.api_key_name: API_KEY is not"):
        job_bodies(plan_yaml(text))
    ok = plan_yaml(
        text, ["+execution.lepton_platform.tasks.env_vars.API_KEY.value_from.secret_name_ref=K"]
    )
    (job,) = job_bodies(ok)
    assert _envs(job)["API_KEY"] == {"name": "API_KEY", "value_from": {"secret_name_ref": "K"}}


# --------------------------------------------------------------------------- executor


def test_plan_layout(plan_case: Callable[[str], Invocation]) -> None:
    inv = plan_case("nim_guide")
    plan = LeptonExecutor().plan(inv)
    deployment, jobs = bodies(inv)
    # The guide's NIM names its served model: only the tasks' runtime differs.
    (difference,) = plan.pop("launcher_differences")
    assert difference.startswith("evaluation client: evalfleet runs each task as")
    assert plan == {
        "executor": "lepton",
        "invocation_id": "0123abcd",
        "output_dir": "/data/results/0123abcd",
        "deployment": {"method": "POST", "path": "/deployments", "body": deployment},
        "readiness": {
            "poll": "GET /deployments/nim-0123abcd",
            "until": "Ready",
            "timeout_s": 1200,
            "health_probe": "<external_endpoint>/v1/health/ready",
        },
        "jobs": [{"job_id": "0123abcd.0", "task": "ifeval", "method": "POST", "path": "/jobs",
                  "body": jobs[0]}],
        "teardown": ["DELETE /deployments/nim-0123abcd"],
        "evalfleet_wheel": {
            "file": FAKE_WHEEL.filename, "version": FAKE_WHEEL.version,
            "sha256": FAKE_WHEEL.sha256, "bytes": FAKE_WHEEL.size,
            "envs": ["EVALFLEET_WHEEL_0", "EVALFLEET_WHEEL_1", "EVALFLEET_WHEEL_2"],
        },
    }  # fmt: skip
    json.dumps(plan)  # JSON-able


def test_import_is_light() -> None:
    code = (
        "import sys, evalfleet.executors.lepton\n"
        "heavy = {'httpx', 'requests', 'leptonai', 'aiohttp', 'fastapi', 'pydantic'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
    )
    src = Path(evalfleet.__file__).parents[1]
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True, timeout=60)  # fmt: skip
    assert out.stdout.strip() == "[]"


def test_a_judge_key_must_reach_the_job(plan_yaml: PlanYaml) -> None:
    """The env var that `config.params.extra.judge.api_key` names is read inside the job:
    without it there, every judge call would fail after the endpoint was paid for."""
    judged = VLLM.replace(
        "    - name: ifeval\n",
        "    - name: simple_evals.AIME_2025\n"
        "      nemo_evaluator_config: {config: {params: {extra: {judge: "
        "{url: 'http://judge:8000/v1', model_id: j, api_key: JUDGE_KEY}}}}}\n",
    )
    inv = plan_yaml(judged)
    with pytest.raises(ConfigError) as excinfo:
        LeptonExecutor().plan(inv)
    assert _problems(excinfo) == [
        "config.params.extra.judge.api_key: JUDGE_KEY is not in the Lepton job's environment; "
        "set execution.lepton_platform.tasks.env_vars.JUDGE_KEY: "
        "{value_from: {secret_name_ref: <Lepton secret>}}"
    ]
    ok = plan_yaml(_with(
        judged,
        execution="lepton_platform:\n  tasks:\n    env_vars:\n"
        "      JUDGE_KEY: {value_from: {secret_name_ref: judge-secret}}\n",
    ))  # fmt: skip
    (body,) = job_bodies(ok)
    assert _envs(body)["JUDGE_KEY"]["value_from"] == {"secret_name_ref": "judge-secret"}


def test_a_framework_packages_judge_key_must_reach_the_job(plan_yaml: PlanYaml) -> None:
    """A task run by its framework package names its judge's key as the package does
    (`extra.judge.api_key_name` for mtbench): the same check applies."""
    judged = VLLM.replace(
        "    - name: ifeval\n",
        "    - name: mtbench.mtbench\n"
        "      nemo_evaluator_config: {config: {params: {extra: {judge: "
        "{url: 'http://judge:8000/v1', api_key_name: MT_JUDGE_KEY}}}}}\n",
    )
    with pytest.raises(ConfigError) as excinfo:
        LeptonExecutor().plan(plan_yaml(judged))
    assert _problems(excinfo) == [
        "config.params.extra.judge.api_key_name: MT_JUDGE_KEY is not in the Lepton job's environment; "
        "set execution.lepton_platform.tasks.env_vars.MT_JUDGE_KEY: "
        "{value_from: {secret_name_ref: <Lepton secret>}}"
    ]


def test_host_values_reach_the_job_only_when_it_is_submitted(
    plan_yaml: PlanYaml, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The launcher reads `host:NAME` (and a bare name in a task's env_vars, launcher 0.1)
    on the launching machine; the plan and the store keep a placeholder, the value goes
    only into what is sent, and a missing one stops the launch before anything exists."""
    from evalfleet.executors.lepton.spec import fill_host_values, host_values_missing

    text = (
        "deployment:\n  type: none\ntarget:\n  api_endpoint:\n    url: https://x.lepton.ai/v1\n"
        "    model_id: m\nexecution:\n  type: lepton\n"
        "evaluation:\n  env_vars: {HF_TOKEN: 'host:MY_HF', NOTE: 'lit:a b'}\n"
        "  tasks:\n    - name: ifeval\n      env_vars: {OLD_STYLE: MY_OTHER}\n"
    )
    (job,) = job_bodies(plan_yaml(text))
    envs = _envs(job)
    assert envs["HF_TOKEN"]["value"] == "<filled at launch: the launching host's $MY_HF>"
    assert envs["OLD_STYLE"]["value"] == "<filled at launch: the launching host's $MY_OTHER>"
    assert envs["NOTE"]["value"] == "a b"
    monkeypatch.delenv("MY_HF", raising=False)
    monkeypatch.setenv("MY_OTHER", "x")
    assert host_values_missing(job) == ["env HF_TOKEN: host:MY_HF is not set in this environment "
                                        "(export MY_HF=..., or write lit:<value> for a literal value)"]  # fmt: skip
    monkeypatch.setenv("MY_HF", "hf_value")
    assert host_values_missing(job) == []
    sent = json.loads(json.dumps(job))
    fill_host_values(sent)
    assert (
        _envs(sent)["HF_TOKEN"]["value"] == "hf_value" and _envs(sent)["OLD_STYLE"]["value"] == "x"
    )
    assert "hf_value" not in json.dumps(job)  # the planned body is untouched


def test_a_runtime_value_is_refused_on_lepton(plan_yaml: PlanYaml) -> None:
    text = (
        "deployment:\n  type: none\ntarget:\n  api_endpoint:\n    url: https://x.lepton.ai/v1\n"
        "    model_id: m\nexecution:\n  type: lepton\n"
        "evaluation:\n  env_vars: {SCRATCH: 'runtime:TMPDIR'}\n  tasks:\n    - name: ifeval\n"
    )
    with pytest.raises(ConfigError, match=r"^evaluation.env_vars.SCRATCH: runtime:TMPDIR cannot"):
        job_bodies(plan_yaml(text))
