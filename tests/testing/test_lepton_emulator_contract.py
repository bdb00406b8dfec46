"""Contract: the official leptonai 0.47.1 client (test-only, installed --no-deps) works
against the emulator, and its models parse every answer the emulator gives."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from evalfleet.testing.lepton import Emulator, run_emulator

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # leptonai still uses pydantic-v1-style validators
    pytest.importorskip("leptonai")
    from leptonai.api.v2.client import APIClient
    from leptonai.api.v2.types.common import Metadata
    from leptonai.api.v2.types.dedicated_node_group import DedicatedNodeGroup, Node
    from leptonai.api.v2.types.deployment import (
        EnvValue,
        EnvVar,
        LeptonContainer,
        LeptonDeployment,
        LeptonDeploymentUserSpec,
        ResourceRequirement,
    )
    from leptonai.api.v2.types.events import LeptonEvent
    from leptonai.api.v2.types.job import LeptonJob, LeptonJobUserSpec
    from leptonai.api.v2.types.secret import SecretItem
    from leptonai.api.v2.types.workspace import WorkspaceInfo


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with run_emulator("contract-token", extra_args=["--ready-after", "0.2"]) as emulator:
        yield emulator


@pytest.fixture
def sdk(emulator: Emulator) -> APIClient:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return APIClient(workspace_id=emulator.workspace_id, auth_token=emulator.token,
                         url=emulator.base_url)  # fmt: skip


def _quietly(call: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return call()


def _strict(model: Any, data: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.model_validate(data)


def test_sdk_round_trip(sdk: APIClient, emulator: Emulator, capfd: pytest.CaptureFixture[str]):
    info = _quietly(sdk.info)
    assert isinstance(info, WorkspaceInfo) and info.workspace_name == emulator.workspace_id
    _strict(WorkspaceInfo, emulator.call("GET", "/workspace"))

    _quietly(lambda: sdk.secret.create([SecretItem(name="KEY", value="s3cret")]))
    names = [item.name for item in _quietly(sdk.secret.list_all)]
    assert "KEY" in names
    assert "s3cret" not in str(emulator.call("GET", "/usersecrets"))  # values never returned

    spec = LeptonDeploymentUserSpec(
        container=LeptonContainer(image="img", command=["serve"]),
        resource_requirement=ResourceRequirement(resource_shape="cpu.small", min_replicas=1,
                                                 max_replicas=1),
        envs=[EnvVar(name="SERVED_MODEL_NAME", value="m"),
              EnvVar(name="K", value_from=EnvValue(secret_name_ref="KEY"))],
    )  # fmt: skip
    deployment = LeptonDeployment(metadata=Metadata(id="contract-ep", name="contract-ep"),
                                  spec=spec)  # fmt: skip
    assert _quietly(lambda: sdk.deployment.create(deployment)) is True
    got = _quietly(lambda: sdk.deployment.get("contract-ep"))
    assert got.status.state.value in ("Starting", "Ready")
    assert got.status.endpoint.external_endpoint.endswith("/ep/contract-ep")
    deadline = time.monotonic() + 20
    while _quietly(lambda: sdk.deployment.get("contract-ep")).status.state.value != "Ready":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    listed = _quietly(sdk.deployment.list_all)
    assert [d.metadata.name for d in listed] == ["contract-ep"]
    for raw in emulator.call("GET", "/deployments"):
        _strict(LeptonDeployment, raw)
    for raw in emulator.call("GET", "/deployments/contract-ep/events"):
        _strict(LeptonEvent, raw)

    groups = _quietly(sdk.nodegroup.list_all)
    assert groups and all(isinstance(g, DedicatedNodeGroup) for g in groups)
    nodes = _quietly(lambda: sdk.nodegroup.list_nodes(groups[0]))
    assert nodes and all(isinstance(n, Node) and n.spec.unschedulable is False for n in nodes)

    job = LeptonJob(metadata=Metadata(name="contract-job"),
                    spec=LeptonJobUserSpec(resource_shape="cpu.small",
                                           container=LeptonContainer(image="img", command=[
                                               "bash", "-c", "echo line-one; echo line-two"])))  # fmt: skip
    created = _quietly(lambda: sdk.job.create(job))
    job_id = created.metadata.id_
    assert job_id.startswith("contract-job-") and created.spec.ttl_seconds_after_finished == 600
    deadline = time.monotonic() + 20
    while _quietly(lambda: sdk.job.get(job_id)).status.state.value != "Completed":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    finished = _quietly(lambda: sdk.job.get(job_id))
    assert (finished.status.succeeded, finished.status.active) == (1, 0)
    assert finished.status.completion_time is not None
    assert [j.metadata.id_ for j in _quietly(sdk.job.list_all)] == [job_id]
    raw_page = emulator.call("GET", "/jobs?page=1&page_size=500")
    for raw in raw_page["jobs"]:
        _strict(LeptonJob, raw)

    log = _quietly(lambda: sdk.log.get_log(name_or_job=job_id))
    lines = [line for stream in log["data"]["result"] for _, line in stream["values"]]
    assert lines == ["container exited with code 0", "line-two", "line-one"]  # newest first

    assert _quietly(lambda: sdk.job.delete(job_id)) is True
    assert _quietly(lambda: sdk.deployment.delete("contract-ep")) is True
    assert _quietly(lambda: sdk.secret.delete("KEY")) is True
    assert emulator.wait_until_empty() == {"deployments": [], "jobs": []}
    # ensure_list drops what it cannot parse and says so on stderr: it must have said nothing.
    assert "[lepton-error]" not in capfd.readouterr().err
