"""Contract check against the official SDK models (leptonai, test-only, optional).

The SDK's pydantic models silently drop keys they do not know (lepton-api.md §0.4); parsing
every planned body with them and dumping it back as the CLI would must give back everything
we send. Install with `pip install --no-deps leptonai==0.47.1` plus its light dependencies.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest

from evalfleet.contract import Invocation
from evalfleet.executors.lepton import LeptonExecutor

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # leptonai still uses pydantic-v1-style validators
    pytest.importorskip("leptonai")
    from leptonai.api.v2.job_validation import validate_job_create
    from leptonai.api.v2.types.deployment import LeptonDeployment, LeptonDeploymentUserSpec
    from leptonai.api.v2.types.job import LeptonJob, LeptonJobUserSpec

CASES = ["vllm_guide", "nim_guide", "sglang_guide", "none_guide", "full"]


def _lost(sent: Any, kept: Any, path: str = "spec") -> list[str]:
    """Paths of everything in `sent` that `kept` does not hold with the same value."""
    if isinstance(sent, dict):
        if not isinstance(kept, dict):
            return [path]
        return [
            lost
            for key, value in sent.items()
            for lost in (
                _lost(value, kept[key], f"{path}.{key}") if key in kept else [f"{path}.{key}"]
            )
        ]
    if isinstance(sent, list):
        if not isinstance(kept, list) or len(kept) != len(sent):
            return [path]
        return [lost for i, (a, b) in enumerate(zip(sent, kept, strict=True))
                for lost in _lost(a, b, f"{path}[{i}]")]  # fmt: skip
    return [] if sent == kept else [f"{path} ({sent!r} became {kept!r})"]


def _roundtrip(model: Any, data: dict[str, Any]) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.model_validate(data).model_dump(mode="json", exclude_none=True, by_alias=True)


@pytest.mark.parametrize("case", CASES)
def test_sdk_keeps_every_field_we_send(case: str, plan_case: Callable[[str], Invocation]) -> None:
    plan = LeptonExecutor().plan(plan_case(case))
    if plan["deployment"] is not None:
        body = plan["deployment"]["body"]
        assert _lost(body["spec"], _roundtrip(LeptonDeploymentUserSpec, body["spec"])) == []
        assert _lost(body, _roundtrip(LeptonDeployment, body), "body") == []
    for job in plan["jobs"]:
        body = job["body"]
        assert _lost(body["spec"], _roundtrip(LeptonJobUserSpec, body["spec"])) == []
        assert _lost(body, _roundtrip(LeptonJob, body), "body") == []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            validate_job_create(LeptonJob.model_validate(body))  # the SDK's client-side checks


def test_the_check_catches_a_dropped_field(plan_case: Callable[[str], Invocation]) -> None:
    body = LeptonExecutor().plan(plan_case("vllm_guide"))["deployment"]["body"]
    spec = {**body["spec"], "enable_rdma": False}
    spec["auto_scaler"] = {"scale_down": {"no_traffic_timeout": 3600, "scale_from_zero": False}}
    assert _lost(spec, _roundtrip(LeptonDeploymentUserSpec, spec)) == [
        "spec.auto_scaler.scale_down.scale_from_zero",
        "spec.enable_rdma",
    ]
