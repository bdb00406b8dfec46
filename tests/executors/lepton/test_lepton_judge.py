"""`judge_deployment` on Lepton, as planned: a second endpoint shaped like the model's, its
URL and token handed to every job through env vars, every job.json pointing at them."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from evalfleet.contract import Invocation
from evalfleet.contract.spec import read_job
from evalfleet.exceptions import ConfigError
from evalfleet.executors.lepton import LeptonExecutor
from evalfleet.executors.lepton.spec import (
    JUDGE_URL_PLACEHOLDER,
    LEPTON_JUDGE_TOKEN_ENV,
    LEPTON_JUDGE_URL_ENV,
    all_bodies,
    judge_deployment_body,
)

from .conftest import NONE_GUIDE

PlanYaml = Callable[..., Invocation]

MODEL = """\
deployment:
  type: vllm
  checkpoint_path: meta-llama/Llama-3.1-8B-Instruct
  lepton_config:
    resource_shape: gpu.1xh200
execution:
  type: lepton
evaluation:
  tasks:
    - name: simple_evals.AIME_2025
"""

JUDGE_BLOCK = """\
judge_deployment:
  type: vllm
  checkpoint_path: judge/model
  served_model_name: gpt-4
  port: 8001
  lepton_config:
    resource_shape: gpu.1xh200
"""


def _payload(body: dict[str, Any]) -> dict[str, Any]:
    """The job.json a job body's script writes."""
    script = body["spec"]["container"]["command"][2]
    match = re.search(r"^printf '%s' ([A-Za-z0-9+/=]+) \| base64 -d", script, re.M)
    assert match, script
    return json.loads(base64.b64decode(match.group(1)))


def _envs(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {env["name"]: env for env in body["spec"]["envs"]}


def test_every_judged_task_reaches_the_judge_through_the_jobs_env(
    plan_case: Callable[[str], Invocation], tmp_path, monkeypatch
) -> None:
    inv = plan_case("judge")
    _, judge, jobs = all_bodies(inv)
    assert judge is not None and judge["metadata"]["name"] == "judge-0123abcd"
    aime, mtbench = (_payload(body) for body in jobs)
    assert aime["params"]["judge"]["url"] == f"${{{LEPTON_JUDGE_URL_ENV}}}/v1"
    assert aime["params"]["judge"]["model_id"] == "gpt-4"
    assert aime["params"]["judge"]["api_key"] == LEPTON_JUDGE_TOKEN_ENV
    extra = mtbench["harness"]["run_config"]["config"]["params"]["extra"]["judge"]
    assert extra["url"] == f"${{{LEPTON_JUDGE_URL_ENV}}}/v1"
    assert extra["model_id"] == "gpt-4" and extra["api_key_name"] == LEPTON_JUDGE_TOKEN_ENV
    for body in jobs:  # the judge's own secret (its api_tokens do not take the model's)
        envs = _envs(body)
        assert envs[LEPTON_JUDGE_URL_ENV]["value"] == JUDGE_URL_PLACEHOLDER
        assert envs[LEPTON_JUDGE_TOKEN_ENV]["value_from"] == {"secret_name_ref": "JUDGE_API_KEY"}
    # Inside the job, the URL the executor fills in is what the task calls.
    path = tmp_path / "job.json"
    path.write_text(json.dumps(aime))
    monkeypatch.setenv("EVALFLEET_ENDPOINT_URL", "https://model.example")
    monkeypatch.setenv(LEPTON_JUDGE_URL_ENV, "https://judge.example")
    assert read_job(path).params.judge.url == "https://judge.example/v1"


def test_the_judge_uses_the_models_secret_when_it_accepts_it(plan_yaml: PlanYaml) -> None:
    inv = plan_yaml(MODEL + JUDGE_BLOCK)
    _, judge, (job,) = all_bodies(inv)
    assert judge is not None
    assert judge["spec"]["api_tokens"] == [{"value_from": {"token_name_ref": "ENDPOINT_API_KEY"}}]
    assert _envs(job)[LEPTON_JUDGE_TOKEN_ENV]["value_from"] == {
        "secret_name_ref": "ENDPOINT_API_KEY"
    }
    assert judge["metadata"]["name"] == "vllm-judge-0123abcd"  # never the model's vllm-0123abcd


def test_the_judge_is_shaped_by_the_same_rules_as_the_model(plan_yaml: PlanYaml) -> None:
    judge = JUDGE_BLOCK + (
        "    node_group: ng-h200-01-abcdefgh\n"
        "    envs: {HF_TOKEN: {value_from: {secret_name_ref: HUGGING_FACE_HUB_TOKEN}}}\n"
    )
    execution = (
        "  lepton_platform:\n    deployment:\n      queue_priority: mid-4000\n"
        "      platform_defaults: {log: {enable_collection: true}}\n"
    )
    text = MODEL.replace("  type: lepton\n", "  type: lepton\n" + execution) + judge
    body = judge_deployment_body(plan_yaml(text))
    assert body is not None
    spec = body["spec"]
    assert spec["resource_requirement"]["affinity"] == {
        "allowed_dedicated_node_groups": ["ng-h200-01-abcdefgh"]
    }
    assert spec["queue_config"] == {"priority_class": "mid-4000"}
    assert spec["log"] == {"enable_collection": True}
    assert spec["auto_scaler"]["scale_down"]["no_traffic_timeout"] == 3600
    assert _envs(body)["HF_TOKEN"]["value_from"] == {"secret_name_ref": "HUGGING_FACE_HUB_TOKEN"}
    assert _envs(body)["SERVED_MODEL_NAME"]["value"] == "gpt-4"
    assert spec["container"]["ports"] == [{"container_port": 8001}]


def test_a_judge_beside_an_existing_endpoint(plan_yaml: PlanYaml) -> None:
    inv = plan_yaml(
        NONE_GUIDE.replace("    - name: mmlu_pro\n", "    - name: simple_evals.AIME_2025\n")
        + JUDGE_BLOCK,
        overrides=["target.api_endpoint.api_key_name=API_KEY",
                   "+execution.lepton_platform.tasks.env_vars.API_KEY=x"],
    )  # fmt: skip
    plan = LeptonExecutor().plan(inv)
    assert plan["deployment"] is None and plan["readiness"] is None
    assert plan["judge_deployment"]["body"]["metadata"]["name"] == "vllm-judge-0123abcd"
    assert plan["teardown"] == ["DELETE /deployments/vllm-judge-0123abcd"]
    envs = _envs(plan["jobs"][0]["body"])
    assert "EVALFLEET_ENDPOINT_URL" not in envs and LEPTON_JUDGE_URL_ENV in envs


def test_the_dry_run_shows_the_judge(plan_case: Callable[[str], Invocation]) -> None:
    plan = LeptonExecutor().plan(plan_case("judge"))
    text = "\n".join(LeptonExecutor.render_plan(plan))
    steps = [line for line in text.splitlines() if re.match(r"^\d+\. ", line)]
    assert steps[:4] == [
        "1. POST /deployments",
        "2. POST /deployments  (the judge)",
        "3. poll GET /deployments/vllm-0123abcd until Ready (up to 1200 s), then probe "
        "<external_endpoint>/health",
        "4. poll GET /deployments/judge-0123abcd until Ready (up to 1200 s), then probe "
        "<external_endpoint>/health",
    ]
    assert steps[-2:] == [
        "7. when the last job ends: DELETE /deployments/vllm-0123abcd",
        "8. when the last job ends: DELETE /deployments/judge-0123abcd",
    ]
    assert '"gpt-4"' in text  # the judge's body is shown


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("type: vllm\n  checkpoint_path: judge/model", "type: trtllm\n  checkpoint_path: judge/model"),
         "judge_deployment.type: 'trtllm' cannot run on lepton; expected one of vllm, sglang, nim"),
        (("    resource_shape: gpu.1xh200\n", "    endpoint_name: x\n"),
         "judge_deployment.lepton_config.resource_shape: required on lepton"),
    ],
)  # fmt: skip
def test_what_lepton_cannot_run_is_refused_by_the_config(
    plan_yaml: PlanYaml, change: tuple[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError) as excinfo:
        plan_yaml(MODEL + JUDGE_BLOCK.replace(*change))
    assert expected in str(excinfo.value)


def test_what_lepton_would_refuse_is_reported_before_anything_is_created(
    plan_yaml: PlanYaml,
) -> None:
    judge = JUDGE_BLOCK + "    endpoint_name: vllm\n    api_tokens: []\n"
    execution = "  env_vars: {EVALFLEET_JUDGE_TOKEN: x}\n"
    text = MODEL.replace("  type: lepton\n", "  type: lepton\n" + execution) + judge
    with pytest.raises(ConfigError) as excinfo:
        LeptonExecutor().plan(plan_yaml(text))
    assert excinfo.value.problems == [
        "judge_deployment.lepton_config.endpoint_name: the judge's endpoint would be named "
        "vllm-0123abcd, as the model's is; give it a name of its own",
        "judge_deployment.lepton_config.api_tokens: empty; Lepton would then make up a token "
        "evalfleet never sees (or leave the endpoint open); name the Lepton secret holding it: "
        "[{value_from: {token_name_ref: ENDPOINT_API_KEY}}]",
        "execution.env_vars.EVALFLEET_JUDGE_TOKEN: set by evalfleet on Lepton (the judge's URL "
        "and token)",
    ]
