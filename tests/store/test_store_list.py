"""Listing invocations: order, filters, limits."""

from __future__ import annotations

import time

import pytest

from evalfleet.store import InvocationStore, NewJob


def test_missing_store_lists_nothing(store: InvocationStore) -> None:
    assert store.list_invocations() == []
    assert store.list_invocations(limit=5, executor="local", since=0) == []


def test_newest_first(store: InvocationStore, create) -> None:
    created = [create().invocation_id for _ in range(5)]
    assert [i.invocation_id for i in store.list_invocations()] == created[::-1]


def test_equal_timestamps_keep_insertion_order(
    store: InvocationStore, create, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.0)
    # Ids chosen so that neither alphabetical order nor its reverse is insertion order.
    created = [create(invocation_id=i).invocation_id for i in ("bbb", "aaa", "ccc", "abc")]
    listed = [i.invocation_id for i in store.list_invocations()]
    assert listed == created[::-1]
    assert [i.invocation_id for i in store.list_invocations(limit=2)] == ["abc", "ccc"]


def test_list_includes_jobs(store: InvocationStore, create) -> None:
    a = create(jobs=[NewJob(task=f"t{i}", output_dir=f"/o/{i}") for i in range(12)])
    b = create(jobs=[])
    store.update_job(f"{a.invocation_id}.10", state="SUCCESS", handle={"k": "v"})
    listed = {i.invocation_id: i for i in store.list_invocations()}
    assert listed[a.invocation_id].tasks == [f"t{i}" for i in range(12)]  # index order
    assert listed[a.invocation_id].jobs[10].state == "SUCCESS"
    assert listed[a.invocation_id].jobs[10].handle == {"k": "v"}
    assert listed[a.invocation_id] == store.get(a.invocation_id)
    assert listed[b.invocation_id].jobs == ()


def test_limit(store: InvocationStore, create) -> None:
    created = [create().invocation_id for _ in range(4)]
    assert [i.invocation_id for i in store.list_invocations(limit=2)] == created[:1:-1]
    assert store.list_invocations(limit=0) == []
    assert len(store.list_invocations(limit=100)) == 4
    with pytest.raises(ValueError):
        store.list_invocations(limit=-1)


def test_executor_filter(store: InvocationStore, create) -> None:
    local = create(executor="local").invocation_id
    slurm = [create(executor="slurm").invocation_id for _ in range(2)]
    lepton = create(executor="lepton").invocation_id
    assert [i.invocation_id for i in store.list_invocations(executor="slurm")] == slurm[::-1]
    assert [i.invocation_id for i in store.list_invocations(executor="local")] == [local]
    assert [i.invocation_id for i in store.list_invocations(executor="lepton")] == [lepton]
    assert store.list_invocations(executor="nope") == []
    listed = store.list_invocations(executor="slurm", limit=1)
    assert [i.invocation_id for i in listed] == [slurm[1]]
    assert all(len(i.jobs) == 2 for i in store.list_invocations(executor="slurm"))


def test_since_filter(store: InvocationStore, create, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([100.0, 200.0, 300.0])
    monkeypatch.setattr(time, "time", lambda: next(clock))
    _old, mid, new = (create(executor="local" if n != 1 else "slurm") for n in range(3))
    assert [i.invocation_id for i in store.list_invocations(since=200.0)] == [
        new.invocation_id,
        mid.invocation_id,
    ]
    assert [i.created_at for i in store.list_invocations(since=0)] == [300.0, 200.0, 100.0]
    assert store.list_invocations(since=300.5) == []
    assert [i.invocation_id for i in store.list_invocations(since=150, executor="local")] == [
        new.invocation_id
    ]
