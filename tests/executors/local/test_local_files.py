"""The files a local run leaves: private (they name endpoints and models), and a resume
that cannot find them says so in one line."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from evalfleet.store import InvocationStore
from tests.executors.local.test_local_server import config_text, free_port, simulator_command


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The umask many systems default to for users (0002): files 664, directories 775."""
    previous = os.umask(0o002)
    try:
        yield
    finally:
        os.umask(previous)


def _modes(root: Path) -> dict[str, str]:
    found = {}
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        found[str(path.relative_to(root.parent))] = oct(mode)
    return found


def _not_private(root: Path) -> dict[str, str]:
    wrong = {}
    for name, mode in _modes(root).items():
        path = root.parent / name
        expected = 0o700 if path.is_dir() else 0o600
        if int(mode, 8) != expected:
            wrong[name] = mode
    return wrong


def test_every_file_of_a_run_and_of_the_store_is_private(
    cli, write_yaml, dataset, answers, isolated, loose_umask
):
    port = free_port()
    path = write_yaml(config_text(dataset, port, simulator_command(answers)))
    planned = cli("run", "--config", str(path), "--dry-run")  # plan.json
    assert planned.code == 0, planned.err
    result = cli("run", "--config", str(path))
    assert result.code == 0, result.err
    invocation_id = result.out.strip().splitlines()[-1]
    out = Path("results").absolute()
    names = {Path(name).name for name in _modes(out)}
    assert {"config.yaml", "job.json", "results.json", "samples.jsonl", "cache.sqlite",
            "eval.log", "server.log", "plan.json"} <= names, names  # fmt: skip
    assert (out / invocation_id / "adds" / "results.json").is_file()
    assert _not_private(out) == {}
    assert {Path(name).name for name in _modes(isolated)} >= {"store.sqlite"}
    assert _not_private(isolated) == {}


def test_a_failed_jobs_reason_is_private(tmp_path, loose_umask):
    from evalfleet.contract import read_failure, write_failure

    job_dir = tmp_path / "job"
    write_failure(job_dir, "endpoint http://10.0.0.1:8000/v1 is unreachable")
    assert read_failure(job_dir) == "endpoint http://10.0.0.1:8000/v1 is unreachable"
    assert _not_private(job_dir) == {}


def _failed_run(cli, write_yaml, dataset, answers) -> tuple[str, Path]:
    path = write_yaml(config_text(dataset, free_port(), simulator_command(answers)))
    result = cli("run", "--config", str(path))
    assert result.code == 0, result.err
    invocation_id = result.out.strip().splitlines()[-1]
    with InvocationStore() as store:
        (job,) = store.get(invocation_id).jobs
        # As a run whose directory was deleted under it ends: its job FAILED.
        store.update_job(job.job_id, state="FAILED", detail="the job's directory was deleted")
    return invocation_id, Path(job.output_dir)


def test_resume_after_the_job_directory_was_deleted_is_one_line(cli, write_yaml, dataset, answers):
    invocation_id, job_dir = _failed_run(cli, write_yaml, dataset, answers)
    shutil.rmtree(job_dir.parent)
    result = cli("resume", invocation_id)
    assert result.code == 2, result
    (line,) = result.err.strip().splitlines()
    assert line == (
        f"error: cannot resume {invocation_id}: the job directory {job_dir} was deleted (with "
        "its job.json and cached answers); start a new run"
    )


@pytest.mark.parametrize("content", ["{}", "[]", '{"endpoint": null}', "{not json"])
def test_resume_with_a_job_file_that_is_no_job_spec_is_one_line(
    cli, write_yaml, dataset, answers, content
):
    invocation_id, job_dir = _failed_run(cli, write_yaml, dataset, answers)
    (job_dir / "job.json").write_text(content)
    result = cli("resume", invocation_id)
    assert result.code == 2, result
    (line,) = result.err.strip().splitlines()
    assert line.startswith(f"error: cannot resume {invocation_id}: its job file {job_dir}/job.json")


def test_resume_with_a_stored_config_this_evalfleet_refuses_is_one_line(
    cli, write_yaml, dataset, answers
):
    invocation_id, _ = _failed_run(cli, write_yaml, dataset, answers)
    with InvocationStore() as store:
        config = store.get(invocation_id).config
    config["evaluation"]["params"]["parallelism"] = "many"
    with sqlite3.connect(Path(os.environ["EVALFLEET_HOME"]) / "store.sqlite") as conn:
        conn.execute(
            "UPDATE invocations SET config = ? WHERE id = ?", (json.dumps(config), invocation_id)
        )
    result = cli("resume", invocation_id)
    assert result.code == 2, result
    (line,) = result.err.strip().splitlines()
    assert line.startswith(f"error: cannot resume {invocation_id}: its stored config is not valid")
    assert "evaluation.params.parallelism" in line


def test_a_foreground_run_is_recorded_with_its_runner_from_the_first_moment(
    write_yaml, dataset, monkeypatch
):
    """`status` called the moment a run is recorded (right after `--detach` returns) must
    see its runner: a row without one reads as a run that died, and is recorded FAILED."""
    from evalfleet import api
    from evalfleet.executors.local.executor import LocalExecutor

    seen = {}

    def first_look(self, invocation, jobs, options, resuming):
        with InvocationStore() as store:
            seen["handle"] = store.get(invocation.invocation_id).handle
        seen["status"] = api.status([invocation.invocation_id])
        return 0

    monkeypatch.setattr(LocalExecutor, "_run", first_look)
    path = write_yaml(config_text(dataset, free_port(), "true"))
    api.launch(api.plan_run(path))
    assert seen["handle"]["runner_pid"] == os.getpid()
    assert [row["state"] for row in seen["status"]] == ["PENDING"]
