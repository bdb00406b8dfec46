"""Creating invocations and reading them back."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from evalfleet.store import (
    JOB_STATES,
    InvocationStore,
    NewJob,
    default_home,
    new_invocation_id,
)


def test_default_home_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EVALFLEET_HOME", str(tmp_path / "x"))
    assert default_home() == tmp_path / "x"
    monkeypatch.delenv("EVALFLEET_HOME")
    assert default_home() == Path.home() / ".local" / "state" / "evalfleet"
    monkeypatch.setenv("EVALFLEET_HOME", "")
    assert default_home() == Path.home() / ".local" / "state" / "evalfleet"


def test_store_uses_env_home_by_default(home: Path) -> None:
    with InvocationStore() as s:
        assert s.path == home / "store.sqlite"


def test_new_invocation_id_is_8_lowercase_hex() -> None:
    ids = {new_invocation_id() for _ in range(200)}
    assert all(re.fullmatch(r"[0-9a-f]{8}", i) for i in ids)
    assert len(ids) == 200


def test_job_states() -> None:
    assert JOB_STATES == ("PENDING", "RUNNING", "SUCCESS", "FAILED", "KILLED", "UNKNOWN")


def test_create_returns_full_record(store: InvocationStore, create) -> None:
    before = time.time()
    inv = create()
    after = time.time()
    assert re.fullmatch(r"[0-9a-f]{8}", inv.invocation_id)
    assert before <= inv.created_at <= after
    assert inv.executor == "local"
    assert inv.deployment_type == "vllm"
    assert inv.model == "meta/llama-3.1-8b"
    assert inv.output_dir == "/results"
    assert inv.config == {"execution": {"type": "local"}, "evaluation": {"tasks": ["gsm8k"]}}
    assert inv.handle == {}
    assert inv.tasks == ["gsm8k", "mmlu"]
    first, second = inv.jobs
    assert first.job_id == f"{inv.invocation_id}.0"
    assert second.job_id == f"{inv.invocation_id}.1"
    assert (first.index, second.index) == (0, 1)
    assert first.invocation_id == inv.invocation_id
    assert first.state == second.state == "PENDING"
    assert first.detail == ""
    assert first.output_dir == "/results/gsm8k"
    assert first.handle == {"pid": 1}
    assert second.handle == {}
    assert first.created_at == first.updated_at == inv.created_at


def test_get_returns_what_create_returned(store: InvocationStore, create) -> None:
    inv = create()
    assert store.get(inv.invocation_id) == inv


def test_records_survive_reopening(home: Path, create) -> None:
    inv = create(config={"unicode": "héllo ✓", "nested": {"list": [1, 2.5, None, True]}})
    with InvocationStore(home) as other:
        assert other.get(inv.invocation_id) == inv
        assert other.get(inv.invocation_id).config["unicode"] == "héllo ✓"


def test_explicit_id(create) -> None:
    inv = create(invocation_id="my-run_1")
    assert inv.invocation_id == "my-run_1"
    assert inv.jobs[0].job_id == "my-run_1.0"


@pytest.mark.parametrize("bad", ["", "ABC", "a.b", "has space", "-lead", "x" * 65])
def test_explicit_id_must_be_valid(create, bad: str) -> None:
    with pytest.raises(ValueError, match="invalid invocation id"):
        create(invocation_id=bad)


def test_explicit_id_must_be_new(store: InvocationStore, create) -> None:
    create(invocation_id="abc")
    with pytest.raises(ValueError, match="already exists"):
        create(invocation_id="abc")
    assert len(store.list_invocations()) == 1


def test_generated_id_retries_on_collision(
    store: InvocationStore, create, monkeypatch: pytest.MonkeyPatch
) -> None:
    create(invocation_id="deadbeef")
    drawn = iter(["deadbeef", "deadbeef", "cafef00d"])
    monkeypatch.setattr("evalfleet.store._store.new_invocation_id", lambda: next(drawn))
    assert create().invocation_id == "cafef00d"


def test_invocation_without_jobs(create) -> None:
    inv = create(jobs=[])
    assert inv.jobs == ()
    assert inv.tasks == []


def test_config_must_be_json(store: InvocationStore, create) -> None:
    with pytest.raises(TypeError, match="config is not JSON-serialisable"):
        create(config={"path": object()})
    with pytest.raises(TypeError, match="job handle must be a dict"):
        create(jobs=[NewJob(task="t", output_dir="/o", handle=["not", "a", "dict"])])  # type: ignore[arg-type]
    assert store.list_invocations() == []


def test_records_are_frozen(create) -> None:
    inv = create()
    with pytest.raises(AttributeError):
        inv.model = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        inv.jobs[0].state = "RUNNING"  # type: ignore[misc]


def test_new_job_defaults() -> None:
    a, b = NewJob(task="t", output_dir="/o"), NewJob(task="t", output_dir="/o")
    assert a.handle == {}
    assert a.handle is not b.handle
