"""The YAML config groups and the pydantic defaults say the same thing."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from evalfleet.config import schema
from evalfleet.config.loader import MISSING, group_defaults, group_options
from evalfleet.executors import registry

MODELS = {
    **{("execution", name): registry.backend(name).config_model() for name in registry.names()},
    ("deployment", "none"): schema.NoDeployment,
    ("deployment", "vllm"): schema.VllmDeployment,
    ("deployment", "sglang"): schema.SglangDeployment,
    ("deployment", "trtllm"): schema.TrtllmDeployment,
    ("deployment", "nim"): schema.NimDeployment,
    ("deployment", "llamacpp"): schema.LlamacppDeployment,
    ("deployment", "generic"): schema.GenericDeployment,
}


def test_every_type_has_a_group_and_a_model():
    assert set(group_options("execution")) == set(registry.names())
    assert set(group_options("deployment")) == set(schema.DEPLOYMENT_TYPES)
    assert set(MODELS) == {(g, o) for g in ("execution", "deployment") for o in group_options(g)}


def _model_default(model: type[BaseModel], key: str):
    field = next(f for name, f in model.model_fields.items() if key in (name, f.alias))
    if field.is_required():
        return MISSING
    value = field.get_default(call_default_factory=True)
    return value.model_dump(by_alias=True) if isinstance(value, BaseModel) else value


def _subset_differences(yaml_value, default, where: str) -> list[str]:
    """Keys the YAML sets must equal the model's default; keys it leaves out are fine."""
    if isinstance(yaml_value, dict) and isinstance(default, dict) and yaml_value:
        return [
            problem
            for key, value in yaml_value.items()
            for problem in _subset_differences(
                value, default.get(key, "<absent>"), f"{where}.{key}"
            )
        ]
    return (
        []
        if yaml_value == default
        else [f"{where}: YAML says {yaml_value!r}, model says {default!r}"]
    )


def _compare(model: type[BaseModel], values: dict, where: str) -> list[str]:
    return [
        problem
        for key, value in values.items()
        for problem in _subset_differences(value, _model_default(model, key), f"{where}.{key}")
    ]


@pytest.mark.parametrize(("group", "option"), sorted(MODELS))
def test_group_yaml_agrees_with_model_defaults(group, option):
    values = group_defaults(group, option)
    assert values["type"] == option
    assert _compare(MODELS[group, option], values, f"{group}/{option}") == []
