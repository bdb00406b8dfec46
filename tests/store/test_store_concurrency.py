"""Many processes writing one store at once must neither fail nor lose a write.

Each worker is a separate `python -c` process (no shared interpreter state, like real
evalfleet commands). Workers wait at a file-system barrier so they all hit the database
at the same moment, including the very first write that creates the file and schema.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import evalfleet.store
from evalfleet.store import InvocationStore, NewJob

WORKERS = 24
INVOCATIONS_PER_WORKER = 5
JOBS_PER_INVOCATION = 3
SHARED_ROUNDS = 10

_WORKER = r"""
import json, os, sys, time
from pathlib import Path
from evalfleet.store import InvocationStore, NewJob

home, sync, worker, mode = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
(sync / f"ready-{worker}").touch()
deadline = time.monotonic() + 120
while not (sync / "go").exists():
    if time.monotonic() > deadline:
        sys.exit("worker never got the go signal")
    time.sleep(0.001)

created = []
with InvocationStore(home) as store:
    if mode == "create":
        for i in range(int(sys.argv[5])):
            inv = store.create_invocation(
                executor="slurm" if worker % 2 else "local",
                deployment_type="vllm",
                model=f"model-w{worker}",
                output_dir=f"/out/w{worker}/i{i}",
                config={"worker": worker, "i": i},
                jobs=[
                    NewJob(task=f"task{j}", output_dir=f"/out/w{worker}/i{i}/j{j}",
                           handle={"created_by": worker})
                    for j in range(int(sys.argv[6]))
                ],
            )
            created.append(inv.invocation_id)
            store.list_invocations(limit=5)  # readers interleave with writers
            for job in inv.jobs:
                store.update_job(job.job_id, state="RUNNING", handle={"pid": os.getpid()})
            store.update_invocation_handle(inv.invocation_id, {"deployment": f"d-{worker}-{i}"})
            for job in inv.jobs:
                store.update_job(
                    job.job_id, state="SUCCESS", detail=f"w{worker} i{i} j{job.index}",
                    handle={"step": 2},
                )
    else:  # "shared": everyone merges keys into the same rows
        shared = sys.argv[5]
        for k in range(int(sys.argv[6])):
            key = f"w{worker}-k{k}"
            store.update_invocation_handle(shared, {key: k})
            store.update_job(f"{shared}.0", handle={key: k})
            store.update_job(
                f"{shared}.{worker + 1}", state="RUNNING", detail=f"round {k}", handle={key: k}
            )
            store.get(shared)
print(json.dumps(created))
"""


def _run_workers(tmp_path: Path, home: Path, args_for: list[list[str]]) -> list[list[str]]:
    """Start one process per argument list, release them together, return their output."""
    sync = tmp_path / "sync"
    sync.mkdir()
    src = Path(evalfleet.store.__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")])),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(home), str(sync), str(n), *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n, args in enumerate(args_for)
    ]
    try:
        deadline = time.monotonic() + 120
        while len(list(sync.glob("ready-*"))) < len(procs):
            died = [p for p in procs if p.poll() is not None]
            assert not died, died[0].communicate()
            assert time.monotonic() < deadline, "workers did not start"
            time.sleep(0.01)
        (sync / "go").touch()
        outputs = [p.communicate(timeout=180) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (_out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
        assert err == "", err
    return [json.loads(out) for out, _ in outputs]


def test_concurrent_creates_and_updates_on_a_fresh_store(tmp_path: Path) -> None:
    home = tmp_path / "home"  # does not exist: the first writes race to create it
    args = [["create", str(INVOCATIONS_PER_WORKER), str(JOBS_PER_INVOCATION)]] * WORKERS
    created = _run_workers(tmp_path, home, args)

    with InvocationStore(home) as store:
        listed = store.list_invocations()
        assert len(listed) == WORKERS * INVOCATIONS_PER_WORKER
        all_ids = [i for ids in created for i in ids]
        assert len(set(all_ids)) == len(all_ids)
        assert {i.invocation_id for i in listed} == set(all_ids)
        assert [i.created_at for i in listed] == sorted(
            (i.created_at for i in listed), reverse=True
        )
        by_id = {i.invocation_id: i for i in listed}
        for worker, ids in enumerate(created):
            for i, inv_id in enumerate(ids):
                inv = by_id[inv_id]
                assert inv == store.get(inv_id)
                assert inv.model == f"model-w{worker}"
                assert inv.executor == ("slurm" if worker % 2 else "local")
                assert inv.config == {"worker": worker, "i": i}
                assert inv.handle == {"deployment": f"d-{worker}-{i}"}
                assert len(inv.jobs) == JOBS_PER_INVOCATION
                for job in inv.jobs:
                    assert job.state == "SUCCESS"
                    assert job.detail == f"w{worker} i{i} j{job.index}"
                    assert job.output_dir == f"/out/w{worker}/i{i}/j{job.index}"
                    assert set(job.handle) == {"created_by", "pid", "step"}
                    assert job.handle["created_by"] == worker
                    assert job.handle["step"] == 2
        slurm = store.list_invocations(executor="slurm")
        assert len(slurm) == (WORKERS // 2) * INVOCATIONS_PER_WORKER


def test_concurrent_merges_into_the_same_rows_lose_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with InvocationStore(home) as store:
        shared = store.create_invocation(
            executor="lepton",
            deployment_type="nim",
            model="m",
            output_dir="/out",
            config={},
            jobs=[NewJob(task=f"t{j}", output_dir=f"/out/{j}") for j in range(WORKERS + 1)],
        ).invocation_id

    _run_workers(tmp_path, home, [["shared", shared, str(SHARED_ROUNDS)]] * WORKERS)

    expected = {f"w{w}-k{k}": k for w in range(WORKERS) for k in range(SHARED_ROUNDS)}
    with InvocationStore(home) as store:
        inv = store.get(shared)
        assert inv.handle == expected
        assert inv.jobs[0].handle == expected
        assert inv.jobs[0].state == "PENDING"
        for w in range(WORKERS):
            job = inv.jobs[w + 1]
            assert job.state == "RUNNING"
            assert job.detail == f"round {SHARED_ROUNDS - 1}"
            assert job.handle == {f"w{w}-k{k}": k for k in range(SHARED_ROUNDS)}
