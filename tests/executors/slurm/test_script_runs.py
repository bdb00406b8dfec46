"""Rendered scripts run end to end with bash on this machine (a fake `srun`, no Slurm)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evalfleet.contract import Invocation
from evalfleet.executors.slurm.render import render_scripts

from .helpers import override, port_open, process_gone, write_executable

BASH = shutil.which("bash")
pytestmark = pytest.mark.skipif(
    BASH is None or shutil.which("setsid") is None, reason="needs bash and setsid"
)

NO_DEPLOYMENT = """
execution:
  type: slurm
  env_vars:
    GLOBAL_NOTE: "it's $HOME `x`"
target:
  api_endpoint:
    url: http://127.0.0.1:9/v1
    model_id: some-model
evaluation:
  tasks:
    - name: gsm8k
      env_vars:
        TASK_NOTE: "for gsm8k only"
    - name: ifeval
"""

GENERIC = """
execution:
  type: slurm
  endpoint_readiness_timeout: 30
deployment:
  type: generic
  command: python3 -m http.server {port} --bind 127.0.0.1
  endpoints:
    health: /
evaluation:
  tasks:
    - name: gsm8k
    - name: ifeval
"""

# Asks the server named in its job.json for "/" (so it runs only while the server is up).
FAKE_EVAL_NEEDS_SERVER = """#!/bin/bash
python3 - "$3" <<'PY' || exit 9
import json, sys, urllib.request
url = json.load(open(sys.argv[1]))["endpoint"]["url"].split("/v1/")[0] + "/"
urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=5).close()
PY
echo "$3 server-ok" >> RECORD
"""


def _script(inv: Invocation, tmp_path: Path) -> Path:
    (script,) = render_scripts(inv)
    path = tmp_path / script.name
    path.write_text(script.text)
    return path


def _run(script: Path, path_env: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    assert BASH is not None
    env = {**os.environ, "PATH": path_env}
    return subprocess.run(
        [BASH, str(script)], env=env, capture_output=True, text=True, timeout=timeout
    )


def _fake_eval(path: Path, text: str, record: Path) -> Path:
    return write_executable(path, text.replace("RECORD", shlex.quote(str(record))))


def _python3_link(bin_dir: Path) -> None:
    """`python3` on PATH is this interpreter (a pyenv shim may not work with a bare PATH)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / "python3").symlink_to(os.path.realpath(sys.executable))


def _server_record(record: Path) -> tuple[int, str]:
    pid, args = record.read_text().splitlines()
    return int(pid), args


def test_no_deployment_runs_every_task_and_fails_if_one_failed(plan_config, tmp_path) -> None:
    calls = tmp_path / "calls.txt"
    fake = _fake_eval(
        tmp_path / "bin" / "fake-evalfleet",
        "#!/bin/bash\n"
        'printf \'%s|%s|%s\\n\' "$*" "${TASK_NOTE:-}" "${GLOBAL_NOTE:-}" >> RECORD\n'
        'case "$(<"$3")" in *\'"task": "lm-evaluation-harness.ifeval"\'*) exit 3 ;; esac\n',
        calls,
    )
    out = tmp_path / "results"
    inv = plan_config(
        NO_DEPLOYMENT, override("execution.evalfleet_command", str(fake)), output_dir=str(out)
    )
    result = _run(_script(inv, tmp_path), os.environ["PATH"])

    assert result.returncode == 1, result.stderr
    run_dir = out / "0123abcd"
    assert calls.read_text().splitlines() == [
        f"eval --job {run_dir}/gsm8k/job.json|for gsm8k only|it's $HOME `x`",
        f"eval --job {run_dir}/ifeval/job.json||it's $HOME `x`",
    ]
    for job in inv.jobs:
        assert json.loads(Path(job.job_file).read_text()) == job.spec
        assert Path(job.output_dir, "logs").is_dir()
    assert "task gsm8k (0123abcd.0): exit code 0" in result.stderr
    assert "task ifeval (0123abcd.1): exit code 3" in result.stderr
    assert "1 of 2 task(s) failed: ifeval" in result.stderr


def test_no_deployment_all_tasks_passing_exits_zero(plan_config, tmp_path) -> None:
    fake = write_executable(tmp_path / "bin" / "fake-evalfleet", "#!/bin/bash\nexit 0\n")
    inv = plan_config(
        NO_DEPLOYMENT,
        override("execution.evalfleet_command", str(fake)),
        output_dir=str(tmp_path / "results"),
    )
    result = _run(_script(inv, tmp_path), os.environ["PATH"])
    assert result.returncode == 0, result.stderr
    assert "all 2 task(s) succeeded" in result.stderr


@pytest.mark.parametrize("probe", ["curl", "python3"])
def test_generic_server_is_started_awaited_used_and_stopped(
    plan_config, fake_srun, free_port, tmp_path, probe: str
) -> None:
    bin_dir = tmp_path / "bin"
    _python3_link(bin_dir)
    srun_record = tmp_path / "srun.txt"
    fake_srun(bin_dir, srun_record)
    calls = tmp_path / "calls.txt"
    fake = _fake_eval(bin_dir / "fake-evalfleet", FAKE_EVAL_NEEDS_SERVER, calls)
    if probe == "curl":
        if shutil.which("curl") is None:
            pytest.skip("curl is not installed")
        path_env = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    else:  # only what the script needs, and no curl: the python3 probe must do
        for tool in ("bash", "mkdir", "cat", "setsid", "env", "sleep", "tail"):
            found = shutil.which(tool)
            assert found is not None, tool
            (bin_dir / tool).symlink_to(found)
        path_env = str(bin_dir)
    out = tmp_path / "results"
    inv = plan_config(
        GENERIC,
        f"deployment.port={free_port}",
        override("execution.evalfleet_command", str(fake)),
        output_dir=str(out),
    )

    result = _run(_script(inv, tmp_path), path_env)

    assert result.returncode == 0, result.stderr
    run_dir = out / "0123abcd"
    assert calls.read_text().splitlines() == [
        f"{run_dir}/gsm8k/job.json server-ok",
        f"{run_dir}/ifeval/job.json server-ok",
    ]
    pid, args = _server_record(srun_record)
    assert args.startswith("--ntasks=1 --nodes=1 --overlap bash -c ")
    assert f"http.server {free_port}" in args
    assert "the model server is ready" in result.stderr
    assert '"GET / HTTP/1.1" 200' in (run_dir / "logs" / "server.log").read_text()
    assert process_gone(pid), "the server outlived the script"
    assert not port_open(free_port)


def test_server_that_exits_early_fails_fast_with_its_log(plan_config, fake_srun, tmp_path) -> None:
    bin_dir = tmp_path / "bin"
    fake_srun(bin_dir, tmp_path / "srun.txt")
    calls = tmp_path / "calls.txt"
    fake = _fake_eval(bin_dir / "fake-evalfleet", FAKE_EVAL_NEEDS_SERVER, calls)
    inv = plan_config(
        GENERIC,
        "deployment.command='echo cannot open model file >&2; exit 7'",
        override("execution.evalfleet_command", str(fake)),
        output_dir=str(tmp_path / "results"),
    )
    started = time.monotonic()
    result = _run(_script(inv, tmp_path), f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert result.returncode == 1
    assert time.monotonic() - started < 20
    assert "the model server exited before it was ready" in result.stderr
    assert "cannot open model file" in result.stderr  # the log's tail
    assert not calls.exists()


def test_server_not_ready_in_time_is_stopped(plan_config, fake_srun, tmp_path) -> None:
    bin_dir = tmp_path / "bin"
    srun_record = tmp_path / "srun.txt"
    fake_srun(bin_dir, srun_record)
    calls = tmp_path / "calls.txt"
    fake = _fake_eval(bin_dir / "fake-evalfleet", FAKE_EVAL_NEEDS_SERVER, calls)
    inv = plan_config(
        GENERIC,
        "deployment.command='sleep 120'",
        "execution.endpoint_readiness_timeout=1",
        override("execution.evalfleet_command", str(fake)),
        output_dir=str(tmp_path / "results"),
    )
    result = _run(_script(inv, tmp_path), f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert result.returncode == 1
    assert "the model server was not ready within 1s" in result.stderr
    assert not calls.exists()
    pid, _ = _server_record(srun_record)
    assert process_gone(pid)


def test_sigterm_stops_the_running_task_and_the_server(
    plan_config, fake_srun, free_port, tmp_path
) -> None:
    """What `--signal=B:TERM@60` and scancel do: the trap must stop both process groups."""
    bin_dir = tmp_path / "bin"
    _python3_link(bin_dir)
    srun_record = tmp_path / "srun.txt"
    fake_srun(bin_dir, srun_record)
    task_pidfile = tmp_path / "task.pid"
    fake = write_executable(
        bin_dir / "fake-evalfleet",
        f"#!/bin/bash\necho $$ > {shlex.quote(str(task_pidfile))}\nexec sleep 300\n",
    )
    inv = plan_config(
        GENERIC,
        f"deployment.port={free_port}",
        override("execution.evalfleet_command", str(fake)),
        output_dir=str(tmp_path / "results"),
    )
    script = _script(inv, tmp_path)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    assert BASH is not None
    with subprocess.Popen(
        [BASH, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        deadline = time.monotonic() + 30
        while not (task_pidfile.exists() and task_pidfile.read_text().strip()):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the task never started"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)

    assert proc.returncode == 143, stderr
    assert "SIGTERM" in stderr
    task_pid = int(task_pidfile.read_text())
    server_pid, _ = _server_record(srun_record)
    assert process_gone(task_pid), "the task outlived the script"
    assert process_gone(server_pid), "the server outlived the script"
    assert not port_open(free_port)


def test_time_limit_warning_queues_the_next_job_and_a_finished_job_cancels_it(
    plan_config, tmp_path
) -> None:
    """SIGUSR1 (`--signal=B:USR1@60`) while a task runs: the task keeps running (bash's
    `wait` is interrupted, not the task), the next link is queued with sbatch; when the
    task then finishes, the script cancels that link (it only continues a timed-out job)."""
    bin_dir = tmp_path / "bin"
    calls = tmp_path / "slurm-calls.txt"
    record = shlex.quote(str(calls))
    write_executable(
        bin_dir / "sbatch",
        f'#!/bin/bash\necho "sbatch link=$EVALFLEET_CHAIN_LINK $*" >> {record}\necho 777\n',
    )
    write_executable(bin_dir / "scancel", f'#!/bin/bash\necho "scancel $*" >> {record}\n')
    started, release = tmp_path / "started", tmp_path / "release"
    fake = write_executable(
        bin_dir / "fake-evalfleet",
        f"#!/bin/bash\ntouch {shlex.quote(str(started))}\n"
        f"while [ ! -e {shlex.quote(str(release))} ]; do sleep 0.1; done\n",
    )
    out = tmp_path / "results"
    inv = plan_config(
        NO_DEPLOYMENT,
        override("execution.evalfleet_command", str(fake)),
        "execution.walltime=00:10:00",
        "execution.max_walltime=00:25:00",
        output_dir=str(out),
    )
    script = _script(inv, tmp_path)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "SLURM_JOB_ID": "41"}
    assert BASH is not None
    with subprocess.Popen(
        [BASH, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        deadline = time.monotonic() + 30
        while not started.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 30
        while not calls.exists():
            assert time.monotonic() < deadline, "no next job was queued"
            time.sleep(0.05)
        release.touch()
        _, stderr = proc.communicate(timeout=60)

    assert proc.returncode == 0, stderr
    sbatch, scancel = calls.read_text().splitlines()
    assert sbatch == (
        "sbatch link=2 --parsable --dependency=afternotok:41 --kill-on-invalid-dep=yes "
        f"--time=10 {out}/0123abcd/evalfleet-0123abcd.sbatch"
    )
    assert scancel == "scancel 777"
    assert "queued job 777 to continue (10 min)" in stderr
    run_dir = out / "0123abcd"
    assert (run_dir / "gsm8k" / "logs" / "exit_code").read_text() == "0\n"
    assert (run_dir / "evalfleet-0123abcd.slurm-jobs").read_text() == "41 1\n777 2 queued\n"


def test_no_next_job_once_max_walltime_is_spent(plan_config, tmp_path) -> None:
    bin_dir = tmp_path / "bin"
    calls = tmp_path / "slurm-calls.txt"
    write_executable(bin_dir / "sbatch", f"#!/bin/bash\necho sbatch >> {shlex.quote(str(calls))}\n")
    started = tmp_path / "started"
    fake = write_executable(
        bin_dir / "fake-evalfleet", f"#!/bin/bash\ntouch {shlex.quote(str(started))}\nsleep 1\n"
    )
    inv = plan_config(
        NO_DEPLOYMENT,
        override("execution.evalfleet_command", str(fake)),
        "execution.walltime=00:10:00",
        "execution.max_walltime=00:20:00",
        output_dir=str(tmp_path / "results"),
    )
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env["EVALFLEET_CHAIN_LINK"] = "2"  # the second 10-minute job of a 20-minute budget
    assert BASH is not None
    with subprocess.Popen(
        [BASH, str(_script(inv, tmp_path))], env=env, stderr=subprocess.PIPE, text=True
    ) as proc:
        while not started.exists():
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGUSR1)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "max_walltime (1200s) spent: no further job" in stderr
    assert not calls.exists()


# A model and a judge (judge_deployment), both served by http.server; a judged task.
JUDGE = """
execution:
  type: slurm
  endpoint_readiness_timeout: 30
deployment:
  type: generic
  command: python3 -m http.server {port} --bind 127.0.0.1
  endpoints:
    health: /
judge_deployment:
  type: generic
  command: python3 -m http.server {port} --bind 127.0.0.1
  served_model_name: judge
  endpoints:
    health: /
evaluation:
  tasks:
    - name: simple_evals.AIME_2025
"""

# Asks the model and the judge named in its job.json for "/".
FAKE_EVAL_NEEDS_JUDGE = """#!/bin/bash
python3 - "$3" <<'PY' || exit 9
import json, sys, urllib.request
spec = json.load(open(sys.argv[1]))
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
for url in (spec["endpoint"]["url"].split("/v1/")[0], spec["params"]["judge"]["url"][: -len("/v1")]):
    opener.open(url + "/", timeout=5).close()
PY
echo "$3 both-ok" >> RECORD
"""


def _srun_recording_every_server(bin_dir: Path, record: Path) -> None:
    """A fake `srun` that appends `<pid> <args>` per call (one line per server), then
    execs the command, so the recorded pid is the server's."""
    write_executable(
        bin_dir / "srun",
        "#!/bin/bash\n"
        f'printf \'%s %s\\n\' "$$" "$*" >> {shlex.quote(str(record))}\n'
        "while [[ $# -gt 0 && $1 == -* ]]; do shift; done\n"
        'exec "$@"\n',
    )


def _other_port(port: int) -> int:
    import socket

    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            other = sock.getsockname()[1]
        if other != port:
            return other


def test_the_judge_server_is_started_awaited_used_and_stopped_with_the_model(
    plan_config, free_port, tmp_path
) -> None:
    bin_dir = tmp_path / "bin"
    _python3_link(bin_dir)
    srun_record = tmp_path / "srun.txt"
    _srun_recording_every_server(bin_dir, srun_record)
    calls = tmp_path / "calls.txt"
    fake = _fake_eval(bin_dir / "fake-evalfleet", FAKE_EVAL_NEEDS_JUDGE, calls)
    judge_port = _other_port(free_port)
    out = tmp_path / "results"
    inv = plan_config(
        JUDGE,
        f"deployment.port={free_port}",
        f"judge_deployment.port={judge_port}",
        override("execution.evalfleet_command", str(fake)),
        output_dir=str(out),
    )

    result = _run(_script(inv, tmp_path), f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    assert result.returncode == 0, result.stderr
    run_dir = out / "0123abcd"
    assert calls.read_text().splitlines() == [f"{run_dir}/simple_evals.AIME_2025/job.json both-ok"]
    servers = [line.split(" ", 1) for line in srun_record.read_text().splitlines()]
    # Both start in the background, side by side: their srun lines come in either order.
    (_, first_args), (_, second_args) = servers
    assert sorted(
        [f"http.server {free_port} " in first_args, f"http.server {judge_port} " in first_args]
    ) == [False, True]
    assert {first_args, second_args} == {
        next(args for args in (first_args, second_args) if f"http.server {port} " in args)
        for port in (free_port, judge_port)
    }
    assert "the judge server is ready" in result.stderr
    assert '"GET / HTTP/1.1" 200' in (run_dir / "logs" / "judge_server.log").read_text()
    assert "stopping the judge server" in result.stderr
    for pid, _ in servers:
        assert process_gone(int(pid)), "a server outlived the script"
    assert not port_open(free_port) and not port_open(judge_port)


def test_a_judge_that_exits_early_fails_the_job_and_stops_the_model(
    plan_config, free_port, tmp_path
) -> None:
    bin_dir = tmp_path / "bin"
    _python3_link(bin_dir)
    srun_record = tmp_path / "srun.txt"
    _srun_recording_every_server(bin_dir, srun_record)
    calls = tmp_path / "calls.txt"
    fake = _fake_eval(bin_dir / "fake-evalfleet", FAKE_EVAL_NEEDS_JUDGE, calls)
    inv = plan_config(
        JUDGE,
        f"deployment.port={free_port}",
        "judge_deployment.command='echo no judge weights >&2; exit 7'",
        override("execution.evalfleet_command", str(fake)),
        output_dir=str(tmp_path / "results"),
    )
    result = _run(_script(inv, tmp_path), f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert result.returncode == 1
    assert "the judge server exited before it was ready" in result.stderr
    assert "no judge weights" in result.stderr  # the judge log's tail
    assert not calls.exists()
    model_pid = srun_record.read_text().splitlines()[0].split(" ", 1)[0]
    assert process_gone(int(model_pid))
    assert not port_open(free_port)
