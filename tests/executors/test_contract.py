"""One contract, every backend: the same scenarios run on the local executor, the real
Slurm cluster, the Lepton emulator and a backend defined only in the tests (`threads`).

Each run evaluates a small custom task against the endpoint simulator (an endpoint that
already runs: `deployment.type: none`), through the CLI as a user types it: run to
SUCCESS, status, logs, info; kill twice, then resume; a task that fails while it runs and
one that fails before its first request, whose reasons every command must show.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from evalfleet import api
from evalfleet.executors import registry
from evalfleet.executors._process import process_alive
from evalfleet.store import InvocationStore
from evalfleet.testing import run_simulator
from tests.conftest import REPO

from . import thread_backend

SAMPLES = 6
WORKSPACE_TOKEN = "PLANTED-contract-workspace-token"


@dataclass
class Backend:
    """How the suite runs on one backend: its `execution` section, and what it can check
    is left running after a kill."""

    name: str
    execution: str
    env: dict[str, str]
    emulator: object | None = None

    def leftovers(self, invocation_id: str) -> list[str]:
        record = _record(invocation_id)
        if self.name in ("local", "threads"):
            pids = [record.handle.get("runner_pid"), *(j.handle.get("pid") for j in record.jobs)]
            # A foreground run made in this test process has this process as its runner.
            return [f"pid {pid}" for pid in pids if pid != os.getpid() and process_alive(pid)]
        if self.name == "slurm":
            out = subprocess.run(
                ["squeue", "-h", "-o", "%i %j", "--name", f"evalfleet-{invocation_id}"],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            return out.split()
        left = self.emulator.wait_until_empty()  # type: ignore[attr-defined]
        return [*left["deployments"], *left["jobs"]]


@pytest.fixture(scope="module")
def lepton_emulator() -> Iterator[object]:
    from evalfleet.testing.lepton import run_emulator

    with run_emulator(WORKSPACE_TOKEN, secrets={"ENDPOINT_API_KEY": "unused"}) as emulator:
        yield emulator


@pytest.fixture(params=["local", "slurm", "lepton", "threads"])
def backend(request, tmp_path, monkeypatch) -> Backend:
    name = request.param
    out = tmp_path / "results"
    if name == "local":
        return Backend(name, f"execution: {{type: local, output_dir: {out}}}", {})
    if name == "threads":
        registry.register(thread_backend.BACKEND)
        request.addfinalizer(lambda: registry.unregister("threads"))
        # A `--detach`ed run is a new process: it finds the backend through the plugin
        # variable, as a user's own backend package would be found.
        monkeypatch.setenv("EVALFLEET_BACKENDS", thread_backend.MODULE)
        monkeypatch.setenv(
            "PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
        )
        return Backend(name, f"execution: {{type: threads, output_dir: {out}}}", {})
    if name == "slurm":
        request.getfixturevalue("slurm_cluster")
        execution = (
            f"execution: {{type: slurm, output_dir: {out}, walltime: '00:05:00', "
            f"max_walltime: '00:10:00', evalfleet_command: {sys.executable} -m evalfleet, "
            # The test cluster has no GPUs and one shared node.
            "gres: null, sbatch_extra_flags: {exclusive: false}}"
        )
        return Backend(name, execution, {})
    emulator = request.getfixturevalue("lepton_emulator")
    emulator.faults(server_errors=0, deployment_state=None, ready_after=0.5, delete_after=0.3,
                    queue_after=0.2, archive_after=None, new_deployment_api=False)  # fmt: skip
    for key, value in emulator.client_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("LEPTON_CACHE_DIR", str(tmp_path / "lepton-cache"))
    # The jobs install the wheel their spec ships (the emulator's image has no evalfleet).
    execution = f"execution: {{type: lepton, output_dir: {out}}}"
    return Backend(name, execution, {}, emulator)


def _dataset(directory: Path, n: int = SAMPLES) -> tuple[Path, dict[str, str]]:
    directory.mkdir(parents=True, exist_ok=True)
    data, answers = directory / "adds.jsonl", {}
    with data.open("w") as rows:
        for i in range(n):
            prompt = f"What is {i} plus one?"
            rows.write(json.dumps({"id": f"s{i}", "prompt": prompt, "answer": str(i + 1)}) + "\n")
            answers[prompt] = f"It is {i + 1}."
    return data, answers


def _config(backend: Backend, tmp_path: Path, url: str, dataset: Path, params: str = "") -> Path:
    path = tmp_path / f"{backend.name}.yaml"
    path.write_text(
        f"""\
{backend.execution}
target: {{api_endpoint: {{url: "{url}", model_id: sim-model}}}}
evaluation:
  params: {{parallelism: 1{params}}}
  tasks:
    - {{name: adds, dataset: {{path: {dataset}}}, scorer: numeric}}
"""
    )
    return path


def _record(invocation_id: str):
    with InvocationStore() as store:
        return store.get(invocation_id)


def _states(invocation_id: str) -> list[dict[str, str]]:
    return api.status([invocation_id])


def _wait(invocation_id: str, done, timeout_s: float = 120.0) -> list[dict[str, str]]:
    deadline = time.monotonic() + timeout_s
    while True:
        rows = _states(invocation_id)
        if done(rows):
            return rows
        assert time.monotonic() < deadline, f"timed out; last status: {rows}"
        time.sleep(0.5)


def _ended(rows: list[dict[str, str]]) -> bool:
    return all(row["state"] in ("SUCCESS", "FAILED", "KILLED") for row in rows)


def _run(cli, config: Path) -> str:
    """`evalfleet run`; waits for the end where the backend returns once submitted."""
    result = cli("run", "--config", str(config))
    invocation_id = result.out.strip().splitlines()[-1] if result.out.strip() else ""
    assert invocation_id, result.err
    _wait(invocation_id, _ended)
    return invocation_id


def test_a_run_goes_to_success_and_every_command_reports_it(cli, backend, tmp_path):
    data, answers = _dataset(tmp_path / "data")
    with run_simulator(answers=answers) as sim:
        invocation_id = _run(cli, _config(backend, tmp_path, sim.base_url + "/v1", data))
        requests = sim.stats()["requests"]
    (row,) = _states(invocation_id)
    assert (row["state"], row["detail"]) == ("SUCCESS", f"accuracy 1.0000 (95% CI 1.000\u20131.000, n={SAMPLES})")
    assert requests == SAMPLES

    info = json.loads(cli("info", invocation_id, "--json").out)
    assert info["executor"] == backend.name
    (job,) = info["jobs"]
    results = json.loads((Path(job["output_dir"]) / "results.json").read_text())
    assert results["metrics"]["accuracy"]["value"] == 1.0
    assert (Path(job["output_dir"]) / "job.json").is_file()
    logs = cli("logs", invocation_id)
    assert logs.code == 0
    assert any(line.startswith("[adds] ") for line in logs.out.splitlines()), logs.out
    assert "FAILED" not in logs.out
    export = cli("export", invocation_id, "--dest", "local", "--output-dir", "exported")
    assert export.code == 0, export.err
    assert [r["task"] for r in json.loads(Path("exported/summary.json").read_text())["rows"]] == [
        "adds"
    ]
    assert backend.leftovers(invocation_id) == []


def test_kill_twice_then_resume(cli, backend, tmp_path):
    data, answers = _dataset(tmp_path / "data", n=8)
    with run_simulator(answers=answers, latency=1.0) as sim:
        config = _config(backend, tmp_path, sim.base_url + "/v1", data)
        started = cli("run", "--config", str(config), "--detach")
        assert started.code == 0, started.err
        invocation_id = started.out.strip().splitlines()[-1]
        _wait(invocation_id, lambda rows: rows[0]["state"] == "RUNNING", timeout_s=90)

        first = cli("kill", invocation_id)
        assert first.code == 0, first.err
        (row,) = _states(invocation_id)
        assert row["state"] == "KILLED", row
        assert backend.leftovers(invocation_id) == []
        second = cli("kill", invocation_id)  # idempotent: nothing left to stop, no error
        assert second.code == 0, second.err
        assert _states(invocation_id)[0]["state"] == "KILLED"

        resumed = cli("resume", invocation_id)
        assert resumed.code == 0, resumed.err
        (row,) = _wait(invocation_id, _ended, timeout_s=180)
        assert (row["state"], row["detail"]) == ("SUCCESS", "accuracy 1.0000 (95% CI 1.000\u20131.000, n=8)")
    again = cli("resume", invocation_id)
    assert again.code == 2 and "nothing to resume" in again.err
    assert backend.leftovers(invocation_id) == []


def _assert_reason_everywhere(cli, invocation_id: str, reason: str) -> None:
    """status (detail), logs, info and export all say why the task failed."""
    (row,) = _states(invocation_id)
    assert row["state"] == "FAILED"
    assert reason in row["detail"], row
    logs = cli("logs", invocation_id).out
    assert reason in logs, logs
    info = cli("info", invocation_id)
    assert reason in info.out, info.out
    assert reason in json.loads(cli("info", invocation_id, "--json").out)["jobs"][0]["detail"]
    export = cli("export", invocation_id, "--dest", "local", "--output-dir", "exported")
    assert export.code != 0 and reason in export.err, export.err


def test_a_task_that_fails_while_running_says_why(cli, backend, tmp_path):
    data, _ = _dataset(tmp_path / "data")
    # Nothing listens on port 9: every request fails to connect, after no retries.
    config = _config(backend, tmp_path, "http://127.0.0.1:9/v1", data, ", max_retries: 0")
    invocation_id = _run(cli, config)
    _assert_reason_everywhere(cli, invocation_id, "is unreachable")
    assert backend.leftovers(invocation_id) == []


def test_a_task_that_fails_before_its_first_request_says_why(cli, backend, tmp_path):
    data, answers = _dataset(tmp_path / "data")
    data.unlink()  # the task's data is gone when the job starts
    if backend.name == "local":
        # Its jobs read the data here: validation refuses the run before recording it.
        result = cli("run", "--config", str(_config(backend, tmp_path, "http://127.0.0.1:9", data)))
        assert result.code == 2 and result.out == "", result.out
        assert result.err.strip().splitlines()[-1] == (
            f"error: evaluation.tasks[0].dataset.path: cannot read {data}: "
            "No such file or directory"
        ), result.err
        assert json.loads(cli("ls", "runs", "--json").out) == []
        return
    with run_simulator(answers=answers) as sim:
        invocation_id = _run(cli, _config(backend, tmp_path, sim.base_url + "/v1", data))
        assert sim.stats()["requests"] == 0
    _assert_reason_everywhere(cli, invocation_id, f"dataset.path: cannot read {data}")
    assert backend.leftovers(invocation_id) == []
