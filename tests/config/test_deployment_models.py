"""`deployment` and `judge_deployment` are validated by their type's model alone: pydantic
builds a deployment model when a config uses it (most runs deploy nothing), and the
result — errors, key paths, dumps — is what the discriminated union of all of them gives."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import typing
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from evalfleet.config import schema
from evalfleet.config.schema import DEPLOYMENT_TYPES, RunConfig

BASE: dict[str, Any] = {
    "execution": {"type": "local", "output_dir": "/tmp/out"},
    "target": {"api_endpoint": {"url": "http://host:8000/v1", "model_id": "m"}},
    "evaluation": {"tasks": [{"name": "ifeval"}]},
}
VLLM = {"type": "vllm", "hf_model_handle": "org/model", "checkpoint_path": None}


def test_only_the_deployment_a_config_uses_is_built() -> None:
    code = textwrap.dedent(
        """
        from evalfleet.config import schema

        servers = [schema.VllmDeployment, schema.SglangDeployment, schema.TrtllmDeployment,
                   schema.NimDeployment, schema.LlamacppDeployment, schema.GenericDeployment,
                   schema.LeptonDeploymentConfig, schema.Endpoints]
        base = {"execution": {"type": "local"}, "evaluation": {"tasks": [{"name": "ifeval"}]}}
        schema.RunConfig.model_validate({**base, "deployment": {"type": "none"},
            "target": {"api_endpoint": {"url": "http://h:1/v1", "model_id": "m"}}})
        print([model.__name__ for model in servers if model.__pydantic_complete__])
        schema.RunConfig.model_validate({**base, "deployment": {"type": "vllm",
            "hf_model_handle": "org/model", "checkpoint_path": None}})
        print([model.__name__ for model in servers if model.__pydantic_complete__])
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    after_none, after_vllm = result.stdout.splitlines()
    assert after_none == "[]"
    assert "'VllmDeployment'" in after_vllm
    assert "'SglangDeployment'" not in after_vllm and "'NimDeployment'" not in after_vllm


def test_the_type_table_is_the_union() -> None:
    members = typing.get_args(typing.get_args(schema.DeploymentConfig)[0])
    assert tuple(schema._DEPLOYMENT_MODELS.values()) == members
    for kind, model in schema._DEPLOYMENT_MODELS.items():
        assert model.model_fields["type"].default == kind
    assert sorted(DEPLOYMENT_TYPES) == sorted(schema._DEPLOYMENT_MODELS)


SECTIONS = [
    None,
    "vllm",
    [VLLM],
    {},
    {"type": None},
    {"type": ["vllm"]},
    {"type": "vllmm"},
    {"type": "none"},
    {"type": "none", "port": 1},
    VLLM,
    {**VLLM, "port": 0, "bogus": 1, "lepton_config": {"min_replicas": 2, "max_replicas": 1}},
    {"type": "vllm"},
    {"type": "nim", "port": 9001},
    {"type": "llamacpp", "checkpoint_path": "a.gguf", "model_package": "p"},
    {"type": "generic", "command": "serve {port}", "port": 9002, "env_vars": {"A": True}},
]


def _errors(run: Any) -> list[tuple[Any, ...]] | None:
    try:
        run()
    except ValidationError as exc:
        return [(e["type"], e["loc"], e["msg"]) for e in exc.errors(include_url=False)]
    return None


@pytest.mark.parametrize("section", SECTIONS, ids=repr)
@pytest.mark.parametrize(
    ("key", "union"),
    [
        ("deployment", schema.DeploymentConfig),
        ("judge_deployment", typing.Optional[schema.JudgeDeploymentConfig]),  # noqa: UP045
    ],
    ids=["deployment", "judge_deployment"],
)
def test_as_the_union_validates_and_dumps(key: str, union: Any, section: Any) -> None:
    adapter: TypeAdapter[Any] = TypeAdapter(union)
    expected = _errors(lambda: adapter.validate_python(section))
    config = {**BASE, "deployment": {"type": "none"}, key: section}
    if key == "deployment" and isinstance(section, dict) and section.get("type") != "none":
        config["target"] = {"api_endpoint": {}}
    got = _errors(lambda: RunConfig.model_validate(config))
    if expected is not None:
        assert got == [(kind, (key, *loc), msg) for kind, loc, msg in expected]
        return
    assert got is None
    run = RunConfig.model_validate(config)
    model = adapter.validate_python(section)
    assert getattr(run, key) == model
    for mode in ("python", "json"):
        assert run.model_dump(mode=mode)[key] == adapter.dump_python(model, mode=mode)
        assert run.model_dump(mode=mode, by_alias=True, exclude_unset=True)[
            key
        ] == adapter.dump_python(model, mode=mode, by_alias=True, exclude_unset=True)


def test_json_schema_shows_every_type() -> None:
    properties = RunConfig.model_json_schema()["properties"]
    deployment = properties["deployment"]["discriminator"]["mapping"]
    judge = properties["judge_deployment"]["anyOf"][0]["discriminator"]["mapping"]
    assert sorted(deployment) == sorted(DEPLOYMENT_TYPES)
    assert sorted(judge) == sorted(set(DEPLOYMENT_TYPES) - {"none"})
