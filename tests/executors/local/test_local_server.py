"""Local runs that start their own server: the simulator, run as a `generic` deployment."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evalfleet.executors.local.server import port_in_use
from evalfleet.store import InvocationStore
from tests.engine.conftest import N_SAMPLES
from tests.helpers import cache_rows


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def config_text(
    dataset: Path, port: int, command: str, timeout: int = 60, latency: float = 0.0
) -> str:
    return f"""\
deployment:
  type: generic
  command: "{command}"
  port: {port}
  served_model_name: sim-model
execution: {{type: local, output_dir: results, endpoint_readiness_timeout: {timeout}}}
evaluation:
  params: {{parallelism: 8}}
  tasks:
    - name: adds
      dataset: {{path: {dataset}}}
      scorer: numeric
"""


def simulator_command(answers: Path, latency: float = 0.0) -> str:
    return f"{sys.executable} -m evalfleet.testing.endpoint --port {{port}} --answers {answers} --latency {latency}"


def test_server_is_started_used_and_stopped(cli, write_yaml, dataset, answers):
    port = free_port()
    path = write_yaml(config_text(dataset, port, simulator_command(answers)))
    result = cli("run", "--config", str(path))
    assert result.code == 0, result.err
    invocation_id = result.out.strip().splitlines()[-1]
    (row,) = json.loads(cli("status", invocation_id, "--json").out)
    assert row["state"] == "SUCCESS" and row["detail"].startswith("accuracy 0.7500")
    assert not port_in_use(port), "the server must be stopped when the last task ends"
    log = Path("results") / invocation_id / "logs" / "server.log"
    assert "READY" in log.read_text()
    results = json.loads((Path("results") / invocation_id / "adds" / "results.json").read_text())
    assert results["counts"]["responses"] == N_SAMPLES


def test_server_that_exits_fails_fast_with_its_log(cli, write_yaml, dataset):
    path = write_yaml(config_text(dataset, free_port(), "echo cannot load weights >&2; exit 7"))
    started = time.monotonic()
    result = cli("run", "--config", str(path))
    assert time.monotonic() - started < 10
    assert result.code == 1
    assert "the generic server exited with code 7 before it was ready" in result.err
    assert "cannot load weights" in result.err
    with InvocationStore() as store:
        (record,) = store.list_invocations()
    assert [j.state for j in record.jobs] == ["FAILED"]


def test_server_that_never_gets_ready_times_out_and_is_stopped(cli, write_yaml, dataset):
    port = free_port()
    path = write_yaml(config_text(dataset, port, "sleep 600", timeout=2))
    result = cli("run", "--config", str(path))
    assert result.code == 1
    assert "did not answer" in result.err and "within 2 s" in result.err
    with InvocationStore() as store:
        (record,) = store.list_invocations()
    pid = record.handle["server_pid"]
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)


def test_kill_from_another_terminal_stops_server_and_tasks(write_yaml, dataset, answers, isolated):
    port = free_port()
    path = write_yaml(config_text(dataset, port, simulator_command(answers, latency=0.5)))
    env = {**os.environ, "EVALFLEET_HOME": str(isolated)}
    runner = subprocess.Popen(
        [sys.executable, "-m", "evalfleet", "run", "--config", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    record = None
    while time.monotonic() < deadline:
        with InvocationStore() as store:
            runs = store.list_invocations()
        if runs and runs[0].jobs[0].state == "RUNNING":
            record = runs[0]
            break
        time.sleep(0.1)
    assert record is not None, runner.communicate(timeout=5)
    task_pid = record.jobs[0].handle["pid"]
    killed = subprocess.run(
        [sys.executable, "-m", "evalfleet", "kill", record.invocation_id[:5]],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert killed.returncode == 0, killed.stderr
    assert "stopped run process" in killed.stdout
    runner.communicate(timeout=60)
    assert runner.returncode != 0
    assert not port_in_use(port)
    with pytest.raises(ProcessLookupError):
        os.killpg(task_pid, 0)
    with InvocationStore() as store:
        assert [j.state for j in store.get(record.invocation_id).jobs] == ["KILLED"]
    again = subprocess.run(
        [sys.executable, "-m", "evalfleet", "kill", record.invocation_id],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert again.returncode == 0 and again.stdout.strip() == "nothing was running"


def test_sigterm_to_the_runner_is_handled_like_ctrl_c(write_yaml, dataset, answers, isolated):
    port = free_port()
    path = write_yaml(config_text(dataset, port, simulator_command(answers, latency=0.5)))
    env = {**os.environ, "EVALFLEET_HOME": str(isolated)}
    runner = subprocess.Popen(
        [sys.executable, "-m", "evalfleet", "run", "--config", str(path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not port_in_use(port):
        time.sleep(0.1)
    time.sleep(1)
    runner.send_signal(signal.SIGTERM)
    runner.wait(timeout=60)
    assert not port_in_use(port)


def test_resume_after_kill_restarts_the_server_and_sends_only_the_rest(
    write_yaml, dataset, answers, isolated
):
    port = free_port()
    path = write_yaml(config_text(dataset, port, simulator_command(answers, latency=0.2)))
    env = {**os.environ, "EVALFLEET_HOME": str(isolated)}
    runner = _background_run(path, env)
    try:
        cache = _cache_with(16)
    finally:  # never leave the runner (and its server) behind for the next test
        runner.send_signal(signal.SIGTERM)
        runner.wait(timeout=60)
    kept = cache_rows(cache)
    assert 16 <= kept < N_SAMPLES
    invocation_id = cache.parent.parent.name
    resumed = subprocess.run(
        [sys.executable, "-m", "evalfleet", "resume", invocation_id[:4]],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert "SUCCESS" in resumed.stdout and "accuracy 0.7500" in resumed.stdout
    assert cache_rows(cache) == N_SAMPLES
    assert not port_in_use(port)
    results = json.loads((cache.parent / "results.json").read_text())
    assert results["requests"]["requests"] <= N_SAMPLES - kept + 8, "only the rest is sent"
    again = subprocess.run(
        [sys.executable, "-m", "evalfleet", "resume", invocation_id],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert again.returncode == 2
    assert (
        again.stderr.strip() == f"error: nothing to resume: every task of {invocation_id} succeeded"
    )


def test_a_sigkilled_run_leaves_nothing_running_and_resume_sends_only_the_rest(
    write_yaml, dataset, answers, isolated
):
    """SIGKILL (the OOM killer, a closed ssh session) gives the runner no chance to clean
    up: its server must die with it and no task may run on unseen, so that `status` is
    right and a resume is the only process answering into the job's files."""
    port = free_port()
    path = write_yaml(config_text(dataset, port, simulator_command(answers, latency=0.5)))
    env = {**os.environ, "EVALFLEET_HOME": str(isolated)}
    runner = _background_run(path, env)
    try:
        cache = _cache_with(16)
    finally:
        runner.kill()
        runner.wait(timeout=60)
    with InvocationStore() as store:
        (record,) = store.list_invocations()
    server, task = record.handle["server_pid"], record.jobs[0].handle["pid"]
    # PR_SET_PDEATHSIG acts at once; the run had ~6 s of requests left to send.
    deadline = time.monotonic() + 4
    while (port_in_use(port) or _alive(server) or _alive(task)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(task), "a task outlived its killed runner"
    assert not _alive(server) and not port_in_use(port), "the server outlived its killed runner"
    kept = cache_rows(cache)
    time.sleep(0.5)
    assert cache_rows(cache) == kept, "nothing may answer into the job after its runner died"
    status = subprocess.run(
        [sys.executable, "-m", "evalfleet", "status", record.invocation_id],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert "FAILED" in status.stdout and "RUNNING" not in status.stdout, status.stdout
    resumed = subprocess.run(
        [sys.executable, "-m", "evalfleet", "resume", record.invocation_id],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    results = json.loads((cache.parent / "results.json").read_text())
    assert results["requests"]["requests"] <= N_SAMPLES - kept, "only the rest is sent"
    assert cache_rows(cache) == N_SAMPLES


def _background_run(config: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "evalfleet", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip


def _cache_with(rows: int, timeout_s: float = 60) -> Path:
    """The running task's cache, once it holds `rows` answers."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        caches = list(Path("results").glob("*/adds/cache.sqlite"))
        if caches and cache_rows(caches[0]) >= rows:
            return caches[0]
        time.sleep(0.1)
    raise AssertionError(f"no task cache reached {rows} answers in {timeout_s} s")


def _alive(pid: int) -> bool:
    from evalfleet.executors._process import process_alive

    return process_alive(pid)


def test_logs_show_server_and_task_lines_and_follow_a_running_invocation(
    cli, write_yaml, dataset, answers, isolated
):
    port = free_port()
    path = write_yaml(config_text(dataset, port, simulator_command(answers)))
    result = cli("run", "--config", str(path))
    assert result.code == 0
    invocation_id = result.out.strip().splitlines()[-1]
    lines = cli("logs", invocation_id).out.splitlines()
    assert any(line.startswith("[server] READY http://127.0.0.1:") for line in lines)
    assert any(line.startswith("[adds] ") and "samples x 1 repeats" in line for line in lines)
    one_job = cli("logs", f"{invocation_id}.0").out.splitlines()
    assert one_job and all(line.startswith("[adds] ") for line in one_job)

    env = {**os.environ, "EVALFLEET_HOME": str(isolated)}
    slow = write_yaml(
        config_text(dataset, free_port(), simulator_command(answers, latency=0.3)), "slow.yaml"
    )
    runner = subprocess.Popen(
        [sys.executable, "-m", "evalfleet", "run", "--config", str(slow)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(InvocationStore().list_invocations()) < 2:
        time.sleep(0.05)
    newest = InvocationStore().list_invocations()[0].invocation_id
    follower = subprocess.run(
        [sys.executable, "-m", "evalfleet", "logs", "--follow", newest],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    runner.communicate(timeout=60)
    assert follower.returncode == 0
    assert "[adds] " in follower.stdout and "done:" in follower.stdout, (
        "follow ends after the run, with its last line"
    )


def test_a_port_already_in_use_is_refused_before_anything_starts(cli, write_yaml, dataset):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = write_yaml(config_text(dataset, port, "sleep 600"))
        result = cli("run", "--config", str(path))
    assert result.code == 1
    assert result.err.strip().splitlines()[-1] == (
        f"error: port {port} is already in use on 127.0.0.1 (deployment.port): stop what "
        "listens there or choose another port"
    )
    with InvocationStore() as store:
        (record,) = store.list_invocations()
    assert "server_pid" not in record.handle
    assert record.jobs[0].state == "FAILED"


def test_a_missing_model_file_is_one_line(cli, write_yaml, dataset):
    path = write_yaml(
        f"deployment: {{type: llamacpp, checkpoint_path: /nonexistent/model.gguf, port: {free_port()}}}\n"
        f"evaluation: {{tasks: [{{name: adds, dataset: {{path: {dataset}}}, scorer: numeric}}]}}\n"
    )
    result = cli("run", "--config", str(path))
    assert result.code == 1
    assert result.err.strip().splitlines()[-1] == (
        "error: model file not found: /nonexistent/model.gguf (deployment.checkpoint_path)"
    )


def test_detach_returns_at_once_and_the_background_run_finishes(cli, write_yaml, dataset, answers):
    port = free_port()
    path = write_yaml(config_text(dataset, port, simulator_command(answers, latency=0.1)))
    started = time.monotonic()
    result = cli("run", "--config", str(path), "-o", "evaluation.params.parallelism=4", "--detach")
    assert result.code == 0, result.err
    assert time.monotonic() - started < 15
    invocation_id = result.out.strip()
    (row,) = json.loads(cli("status", invocation_id, "--json").out)
    assert row["state"] in ("PENDING", "RUNNING")
    follow = cli("logs", "--follow", invocation_id)  # returns when the background run ends
    assert "[adds] " in follow.out
    (row,) = json.loads(cli("status", invocation_id, "--json").out)
    assert row["state"] == "SUCCESS", row
    assert (
        json.loads((Path("results") / invocation_id / "adds" / "job.json").read_text())["params"][
            "parallelism"
        ]
        == 4
    )
    assert not port_in_use(port)
    assert "READY" in (Path("results") / invocation_id / "logs" / "server.log").read_text()


def test_detach_with_a_bad_config_fails_in_the_foreground(cli, write_yaml, isolated):
    path = write_yaml("deployment: {type: generic}\nevaluation: {tasks: [{name: gsm8k}]}\n")
    result = cli("run", "--config", str(path), "--detach")
    assert result.code == 2 and "deployment.command: missing mandatory value" in result.err
    assert not isolated.exists()
