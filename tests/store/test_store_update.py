"""Updating jobs and invocation handles."""

from __future__ import annotations

import pytest

from evalfleet.exceptions import NotFoundError
from evalfleet.store import JOB_STATES, InvocationStore


def test_update_job_state_and_detail(store: InvocationStore, create) -> None:
    inv = create()
    job_id = inv.jobs[0].job_id
    updated = store.update_job(job_id, state="RUNNING", detail="started on node1")
    assert updated.state == "RUNNING"
    assert updated.detail == "started on node1"
    assert updated.updated_at >= updated.created_at
    assert updated.handle == {"pid": 1}
    assert store.get_job(job_id) == updated
    # The other job is untouched.
    assert store.get(inv.invocation_id).jobs[1] == inv.jobs[1]


def test_update_job_keeps_unspecified_fields(store: InvocationStore, create) -> None:
    job_id = create().jobs[0].job_id
    store.update_job(job_id, state="FAILED", detail="exit code 3")
    updated = store.update_job(job_id, handle={"log": "/x.log"})
    assert updated.state == "FAILED"
    assert updated.detail == "exit code 3"


def test_update_job_merges_handle(store: InvocationStore, create) -> None:
    job_id = create().jobs[0].job_id
    store.update_job(job_id, handle={"slurm_job_id": "123", "node": "a"})
    updated = store.update_job(job_id, handle={"node": "b"})
    assert updated.handle == {"pid": 1, "slurm_job_id": "123", "node": "b"}
    assert store.get_job(job_id).handle == updated.handle


def test_update_job_can_clear_detail(store: InvocationStore, create) -> None:
    job_id = create().jobs[0].job_id
    store.update_job(job_id, detail="waiting")
    assert store.update_job(job_id, detail="").detail == ""


@pytest.mark.parametrize("state", JOB_STATES)
def test_update_job_accepts_every_state(store: InvocationStore, create, state: str) -> None:
    assert store.update_job(create().jobs[1].job_id, state=state).state == state


@pytest.mark.parametrize("state", ["running", "DONE", ""])
def test_update_job_rejects_invalid_state(store: InvocationStore, create, state: str) -> None:
    job = create().jobs[0]
    with pytest.raises(ValueError, match="invalid job state"):
        store.update_job(job.job_id, state=state)
    assert store.get_job(job.job_id) == job


def test_update_job_is_case_insensitive_on_id(store: InvocationStore, create) -> None:
    create(invocation_id="abcdef12")
    assert store.update_job("ABCDEF12.1", state="KILLED").job_id == "abcdef12.1"


@pytest.mark.parametrize("job_id", ["abcdef12.5", "zzzzzzzz.0", "abcdef12", "abcdef1.0"])
def test_update_job_unknown(store: InvocationStore, create, job_id: str) -> None:
    create(invocation_id="abcdef12")
    with pytest.raises(NotFoundError, match="no job matches"):
        store.update_job(job_id, state="RUNNING")


def test_update_job_on_missing_store_creates_nothing(store: InvocationStore) -> None:
    with pytest.raises(NotFoundError):
        store.update_job("abc.0", state="RUNNING")
    with pytest.raises(NotFoundError):
        store.update_invocation_handle("abc", {"a": 1})
    assert not store.home.exists()


def test_update_invocation_handle_merges(store: InvocationStore, create) -> None:
    inv = create()
    store.update_invocation_handle(inv.invocation_id, {"deployment": "ep-1", "region": "us"})
    updated = store.update_invocation_handle(inv.invocation_id.upper(), {"region": "eu"})
    assert updated.handle == {"deployment": "ep-1", "region": "eu"}
    assert updated.jobs == inv.jobs
    assert store.get(inv.invocation_id) == updated


def test_update_invocation_handle_unknown(store: InvocationStore, create) -> None:
    inv = create()
    with pytest.raises(NotFoundError, match="no invocation matches"):
        store.update_invocation_handle(inv.invocation_id[:4], {"a": 1})  # exact ids only


def test_update_rejects_unserialisable_handle(store: InvocationStore, create) -> None:
    inv = create()
    with pytest.raises(TypeError):
        store.update_job(inv.jobs[0].job_id, handle={"x": {1, 2}})
    with pytest.raises(TypeError):
        store.update_invocation_handle(inv.invocation_id, {"x": object()})
    assert store.get(inv.invocation_id) == inv
