"""The Lepton emulator's behaviour: auth, validation, state machines, logs, proxy, faults."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from evalfleet.testing.lepton import Emulator, EmulatorError, run_emulator

TOKEN = "emu-token"


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with run_emulator(TOKEN, secrets={"EP_KEY": "endpoint-secret", "S": "job-secret"}) as e:
        yield e


@pytest.fixture
def emu(emulator: Emulator) -> Iterator[Emulator]:
    emulator.faults(server_errors=0, deployment_state=None, ready_after=0.3, delete_after=0.2,
                    queue_after=0.1, archive_after=None)  # fmt: skip
    yield emulator
    for deployment in emulator.call("GET", "/deployments"):
        emulator.call("DELETE", f"/deployments/{deployment['metadata']['name']}")
    for job in emulator.call("GET", "/jobs?job_query_mode=alive_only")["jobs"]:
        if job["status"]["state"] not in ("Completed", "Failed", "Deleting"):
            emulator.call("DELETE", f"/jobs/{job['metadata']['id']}")
    emulator.wait_until_empty()


def _deployment(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {
        "resource_requirement": {"resource_shape": "cpu.small", "min_replicas": 1,
                                 "max_replicas": 1},
        "api_tokens": [{"value_from": {"token_name_ref": "EP_KEY"}}],
        "envs": [{"name": "SERVED_MODEL_NAME", "value": "m"}], **spec}}  # fmt: skip


def _job(name: str, script: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name},
            "spec": {"resource_shape": "cpu.small",
                     "container": {"image": "img", "command": ["bash", "-c", script]}, **spec}}  # fmt: skip


def _status(error: EmulatorError) -> int:
    return int(str(error).split(": ", 1)[1].split()[0])


def _wait_state(emu: Emulator, path: str, want: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        got = emu.call("GET", path)
        if got["status"]["state"] == want:
            return got
        assert time.monotonic() < deadline, f"{path} stuck in {got['status']['state']}"
        time.sleep(0.05)


def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_command_line_prints_ready_and_needs_the_token(emulator: Emulator) -> None:
    assert emulator.base_url.startswith("http://127.0.0.1:")
    assert emulator.base_url.endswith("/api/v2/workspaces/emulated")
    assert _get(emulator.base_url + "/workspace")[0] == 401
    assert _get(emulator.base_url + "/workspace", "wrong")[0] == 401
    status, body = _get(emulator.base_url + "/workspace", TOKEN)
    assert status == 200 and json.loads(body)["features"]["enable_new_deployment_api"] is False
    missing = subprocess.run([sys.executable, "-m", "evalfleet.testing.lepton", "--port", "0"],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert missing.returncode == 2 and "--token" in missing.stderr


def test_deployment_lifecycle_and_endpoint_proxy(emu: Emulator) -> None:
    created = emu.call("POST", "/deployments", _deployment("dep-a"))
    assert created["status"]["state"] == "Starting"
    external = created["status"]["endpoint"]["external_endpoint"]
    assert _get(external + "/health", "endpoint-secret")[0] == 503  # not Ready yet
    with pytest.raises(EmulatorError) as dup:
        emu.call("POST", "/deployments", _deployment("dep-a"))
    assert _status(dup.value) == 409
    _wait_state(emu, "/deployments/dep-a", "Ready")
    assert _get(external + "/health")[0] == 401  # the token is enforced
    assert _get(external + "/health", "wrong")[0] == 401
    assert _get(external + "/v1/health/ready", "endpoint-secret")[0] == 200
    status, models = _get(external + "/v1/models", "endpoint-secret")
    assert status == 200 and json.loads(models)["data"][0]["id"] == "m"
    logs = emu.call("GET", "/logs?deployment=dep-a&direction=forward")
    lines = [line for _, line in logs["data"]["result"][0]["values"]]
    assert lines[0].startswith("Creating replica") and "GET /v1/models 200" in lines
    emu.call("DELETE", "/deployments/dep-a")
    assert emu.call("GET", "/deployments/dep-a")["status"]["state"] == "Deleting"
    assert _get(external + "/health", "endpoint-secret")[0] == 404
    time.sleep(0.4)
    with pytest.raises(EmulatorError) as gone:
        emu.call("GET", "/deployments/dep-a")
    assert _status(gone.value) == 404


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (_deployment("Bad_Name"), 400, "invalid deployment name"),
        (_deployment("dep-b", resource_requirement={"resource_shape": "gpu.nope"}), 400,
         "resource shape 'gpu.nope' is not available"),
        (_deployment("dep-b", resource_requirement={"resource_shape": "cpu.small",
                     "affinity": {"allowed_dedicated_node_groups": ["ng-x"]}}), 400,
         "dedicated node group 'ng-x' not found"),
        (_deployment("dep-b", resource_requirement={"resource_shape": "cpu.small",
                     "min_replicas": 3, "max_replicas": 1}), 400, "min_replicas"),
        (_deployment("dep-b", envs=[{"name": "LEPTON_JOB_NAME", "value": "x"}]), 400, "reserved"),
        (_deployment("dep-b", envs=[{"name": "A", "value_from": {"secret_name_ref": "NOPE"}}]),
         400, "secret 'NOPE' not found"),
        (_deployment("dep-b", api_tokens=[{"value_from": {"token_name_ref": "NOPE"}}]), 400,
         "secret 'NOPE' not found"),
        (_deployment("dep-b", allow_unauthenticated_access=True), 400, "api_tokens"),
        (_deployment("dep-b", mounts=[{"path": "/x"}]), 400, "from and mount_path"),
    ],
)  # fmt: skip
def test_deployment_validation(emu: Emulator, body: dict, status: int, message: str) -> None:
    with pytest.raises(EmulatorError) as refused:
        emu.call("POST", "/deployments", body)
    assert _status(refused.value) == status and message in str(refused.value)
    assert emu.live()["deployments"] == []


def test_fault_error_state_and_stuck_readiness(emu: Emulator) -> None:
    emu.faults(deployment_state="Error")
    emu.call("POST", "/deployments", _deployment("dep-err"))
    _wait_state(emu, "/deployments/dep-err", "Error")
    events = emu.call("GET", "/deployments/dep-err/events")
    assert [e["reason"] for e in events] == ["Scheduled", "BackOff"]
    emu.faults(deployment_state="Starting", ready_after=0)
    emu.call("POST", "/deployments", _deployment("dep-stuck"))
    time.sleep(0.5)
    assert emu.call("GET", "/deployments/dep-stuck")["status"]["state"] == "Starting"


def test_server_error_bursts(emu: Emulator) -> None:
    emu.faults(server_errors=2)
    for _ in range(2):
        with pytest.raises(EmulatorError) as failed:
            emu.call("GET", "/workspace")
        assert _status(failed.value) == 503
    assert emu.call("GET", "/workspace")["workspace_state"] == "normal"


def test_job_lifecycle_env_secrets_and_archive(emu: Emulator) -> None:
    emu.faults(archive_after=0.3)
    script = 'echo "secret=$S plain=$P home=$HOME"; pwd; test -z "${EVALFLEET_HOME:-}"'
    job = emu.call("POST", "/jobs", _job("job-ok", script, envs=[
        {"name": "S", "value_from": {"secret_name_ref": "S"}}, {"name": "P", "value": "1"}]))  # fmt: skip
    job_id = job["metadata"]["id"]
    assert job["status"]["state"] == "Queueing" and job_id.startswith("job-ok-")
    done = _wait_state(emu, f"/jobs/{job_id}", "Completed")
    assert (done["status"]["succeeded"], done["status"]["failed"]) == (1, 0)
    logs = emu.call("GET", f"/logs?job={job_id}&direction=forward")["data"]["result"][0]["values"]
    lines = [line for _, line in logs]
    workdir = lines[1]
    assert lines[0] == f"secret=job-secret plain=1 home={workdir}" and job_id in workdir
    stamps = [int(stamp) for stamp, _ in logs]
    assert stamps == sorted(set(stamps))
    window = emu.call("GET", f"/logs?job={job_id}&start={stamps[1]}&end={stamps[2]}")
    assert [line for _, line in window["data"]["result"][0]["values"]] == [workdir]
    time.sleep(0.5)
    assert emu.call("GET", "/jobs?job_query_mode=alive_only")["jobs"] == []
    (archived,) = emu.call("GET", "/jobs?job_query_mode=archive_only")["jobs"]
    assert archived["status"]["state"] == "Completed"
    with pytest.raises(EmulatorError) as gone:
        emu.call("DELETE", f"/jobs/{job_id}?job_query_mode=alive_only")
    assert _status(gone.value) == 404


def test_failing_and_deleted_jobs(emu: Emulator) -> None:
    failing = emu.call("POST", "/jobs", _job("job-fail", "exit 7"))["metadata"]["id"]
    done = _wait_state(emu, f"/jobs/{failing}", "Failed")
    assert done["status"]["failed"] == 1
    slow = emu.call("POST", "/jobs", _job("job-slow", "sleep 60"))["metadata"]["id"]
    _wait_state(emu, f"/jobs/{slow}", "Running")
    assert slow in emu.live()["jobs"]
    emu.call("DELETE", f"/jobs/{slow}")
    assert emu.call("GET", f"/jobs/{slow}")["status"]["state"] == "Deleting"
    assert emu.wait_until_empty()["jobs"] == []


def test_job_listing_pages_and_filters(emu: Emulator) -> None:
    ids = [emu.call("POST", "/jobs", _job(f"page-{i}", "true"))["metadata"]["id"] for i in range(3)]
    emu.call("POST", "/jobs", _job("other", "true"))
    pages = [emu.call("GET", f"/jobs?q=page-&page={p}&page_size=2")["jobs"] for p in (1, 2, 3)]
    assert [[j["metadata"]["id"] for j in page] for page in pages] == [ids[:2], ids[2:], []]
    with pytest.raises(EmulatorError) as bad:
        emu.call("POST", "/jobs", _job("Bad", "true"))
    assert _status(bad.value) == 400
    with pytest.raises(EmulatorError) as shape:
        emu.call("POST", "/jobs", _job("job-shape", "true", resource_shape="cpu.huge"))
    assert "cpu.huge" in str(shape.value)
