"""The Lepton REST client against the emulator: credentials, retries, refusals, paging."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from evalfleet.exceptions import BackendRefused, BackendUnreachable, UsageError
from evalfleet.executors.lepton import client as client_module
from evalfleet.executors.lepton.client import (
    DEFAULT_API_BASE,
    Credentials,
    LeptonClient,
    resolve_credentials,
)
from evalfleet.testing.lepton import Emulator, run_emulator

TOKEN = "client-test-token-4d2e"


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with run_emulator(TOKEN) as emulator:
        yield emulator


@pytest.fixture
def emu(emulator: Emulator) -> Emulator:
    emulator.faults(server_errors=0, new_deployment_api=False, queue_after=0.1)
    return emulator


def _client(emu: Emulator, token: str = TOKEN, **options) -> tuple[LeptonClient, list[float]]:
    slept: list[float] = []
    credentials = Credentials(emu.workspace_id, emu.base_url, token, "test")
    return LeptonClient(credentials, sleep=slept.append, **options), slept


# --------------------------------------------------------------------------- credentials


def test_credentials_from_env() -> None:
    creds = resolve_credentials({"LEPTON_WORKSPACE_ID": "ws1", "LEPTON_WORKSPACE_TOKEN": "t",
                                 "LEPTON_WORKSPACE_URL": "http://x/api/v2/workspaces/ws1/"})  # fmt: skip
    assert (creds.workspace_id, creds.url, creds.token) == (
        "ws1",
        "http://x/api/v2/workspaces/ws1",
        "t",
    )
    combined = resolve_credentials({"LEPTON_WORKSPACE_ID": "ws2:tok"})
    assert (combined.workspace_id, combined.token, combined.url) == (
        "ws2",
        "tok",
        DEFAULT_API_BASE + "ws2",
    )
    assert "tok" not in repr(combined)


def test_credentials_from_lep_login_record(tmp_path: Path) -> None:
    (tmp_path / "workspace_info.yaml").write_text(
        "current_workspace: ws1\n"
        "workspaces:\n"
        "  ws1: {id: ws1, url: 'http://one/api/v2/workspaces/ws1', auth_token: tok1}\n"
        "  ws2: {id: ws2, auth_token: tok2}\n"
    )
    env = {"LEPTON_CACHE_DIR": str(tmp_path)}
    current = resolve_credentials(env)
    assert (current.workspace_id, current.url, current.token) == (
        "ws1",
        "http://one/api/v2/workspaces/ws1",
        "tok1",
    )
    assert current.source == str(tmp_path / "workspace_info.yaml")
    chosen = resolve_credentials({**env, "LEPTON_WORKSPACE_ID": "ws2"})
    assert (chosen.token, chosen.url) == ("tok2", DEFAULT_API_BASE + "ws2")


def test_missing_or_broken_credentials_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as missing:
        resolve_credentials({"LEPTON_CACHE_DIR": str(tmp_path)})
    assert str(missing.value) == (
        "no Lepton credentials found: run `lep login -c <workspace_id>:<token>` or set "
        "LEPTON_WORKSPACE_ID and LEPTON_WORKSPACE_TOKEN"
    )
    (tmp_path / "workspace_info.yaml").write_text("workspaces: [unclosed\n")
    with pytest.raises(UsageError) as broken:
        resolve_credentials({"LEPTON_CACHE_DIR": str(tmp_path)})
    assert "workspace_info.yaml: not valid YAML" in str(broken.value)


# --------------------------------------------------------------------------- transport


def test_5xx_bursts_are_retried_with_backoff(emu: Emulator) -> None:
    emu.faults(server_errors=2)
    client, slept = _client(emu)
    assert client.workspace()["workspace_name"] == emu.workspace_id
    assert slept == [0.5, 1.0]


def test_persistent_5xx_gives_up_with_the_reason(emu: Emulator) -> None:
    emu.faults(server_errors=10)
    client, slept = _client(emu, retries=2)
    with pytest.raises(BackendUnreachable) as failed:
        client.workspace()
    assert str(failed.value) == (
        "GET /workspace: Lepton answered 503 injected fault: try again (after 3 attempts)"
    )
    assert len(slept) == 2


def test_unreachable_lepton_is_retried_then_reported() -> None:
    credentials = Credentials("ws", "http://127.0.0.1:9/api/v2/workspaces/ws", TOKEN, "test")
    slept: list[float] = []
    with pytest.raises(BackendUnreachable) as failed:
        LeptonClient(credentials, sleep=slept.append, retries=1).list_jobs()
    message = str(failed.value)
    assert message.startswith("GET /jobs: cannot reach Lepton at http://127.0.0.1:9/")
    assert TOKEN not in message and slept == [0.5]


def test_4xx_carries_the_server_message(emu: Emulator) -> None:
    client, slept = _client(emu)
    with pytest.raises(BackendRefused) as refused:
        client.create_job({"metadata": {"name": "x"}, "spec": {"resource_shape": "cpu.huge",
                           "container": {"command": ["true"]}}})  # fmt: skip
    assert refused.value.status == 400 and slept == []  # 4xx is not retried
    assert str(refused.value).startswith("Lepton refused POST /jobs (400): resource_shape: ")
    assert str(refused.value).endswith(
        "(check execution.evaluation_tasks and execution.lepton_platform.tasks)"
    )
    assert client.get_deployment("nope") is None  # 404 means "not there"
    assert client.delete_deployment("nope") is False


def test_wrong_token_says_to_log_in_again(emu: Emulator) -> None:
    client, _ = _client(emu, token="wrong")
    with pytest.raises(BackendRefused) as refused:
        client.workspace()
    assert refused.value.status == 401
    assert "Lepton refused the token for workspace emulated (401, from test)" in str(refused.value)
    assert "lep login" in str(refused.value) and "wrong" not in str(refused.value)


def test_new_api_only_workspace_is_refused(emu: Emulator) -> None:
    emu.faults(new_deployment_api=True)
    with pytest.raises(BackendRefused) as refused:
        _client(emu)[0].workspace()
    assert "uses Lepton's new /endpoints API" in str(refused.value)


def test_job_listing_pages_until_the_end(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    client, _ = _client(emu)
    ids = [client.create_job({"metadata": {"name": f"paged-{i}"}, "spec": {
        "resource_shape": "cpu.small", "container": {"command": ["true"]}}})["metadata"]["id"]
        for i in range(5)]  # fmt: skip
    monkeypatch.setattr(client_module, "PAGE_SIZE", 2)
    listed = client.list_jobs(q="paged-")
    assert [job["metadata"]["id"] for job in listed] == ids
