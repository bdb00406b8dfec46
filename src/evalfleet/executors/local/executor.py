"""The local executor: plans and runs an invocation on this machine.

This release runs invocations without a deployment (`deployment.type: none`) in the
foreground: each task is `evalfleet eval --job job.json` in its own process, its state
recorded in the store as it goes. Starting model servers and `--detach` come next.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from evalfleet.deployments.servers import ServerSpec, server_spec
from evalfleet.exceptions import NotAvailableError
from evalfleet.executors.base import Invocation, Job, JobState, JobStatus

_NOT_YET = "the local executor can only plan (--dry-run) in this release"


def eval_command(job: Job) -> list[str]:
    """The command every backend runs for a job."""
    return ["evalfleet", "eval", "--job", job.job_file]


def server_argv(inv: Invocation, server: ServerSpec) -> list[str]:
    execution = inv.config.execution
    if not (execution.use_docker and server.image):
        return [sys.executable if server.argv[:1] == ["python3"] else server.argv[0], *server.argv[1:]]
    gpus = execution.cuda_visible_devices
    return [
        "docker", "run", "--rm", "--init",
        "--name", f"evalfleet-{inv.invocation_id}",
        "--publish", f"127.0.0.1:{server.port}:{server.port}",
        *(["--gpus", f'"device={gpus}"'] if gpus else ["--gpus", "all"]),
        *[arg for name in sorted(server.env) for arg in ("--env", name)],
        *shlex.split(execution.extra_docker_args),
        # The image's own entrypoint is replaced so that the same server argv works everywhere.
        *(["--entrypoint", server.argv[0], server.image, *server.argv[1:]] if server.argv else [server.image]),
    ]  # fmt: skip


class LocalExecutor:
    def plan(self, inv: Invocation) -> dict[str, Any]:
        execution = inv.config.execution
        # Inside a container the server must listen on all interfaces to be published.
        host = "0.0.0.0" if execution.use_docker else "127.0.0.1"
        server = server_spec(inv.config.deployment, host=host)
        env = {} if server is None else dict(server.env)
        if execution.cuda_visible_devices is not None:
            env["CUDA_VISIBLE_DEVICES"] = execution.cuda_visible_devices
        plan: dict[str, Any] = {
            "executor": "local",
            "invocation_id": inv.invocation_id,
            "output_dir": inv.output_dir,
            "mode": execution.mode,
            "server": None,
            "tasks": [
                {
                    "job_id": job.job_id,
                    "task": job.task,
                    "job_file": job.job_file,
                    "command": shlex.join(eval_command(job)),
                }
                for job in inv.jobs
            ],
        }
        if server is not None:
            argv = server_argv(inv, server)
            plan["server"] = {
                "type": server.type,
                "argv": argv,
                "command": shlex.join(argv),
                "env": env,
                "health_url": server.base_url() + server.health_path,
                "readiness_timeout_s": execution.endpoint_readiness_timeout,
                "log": f"{inv.output_dir}/server.log",
                "stop": "SIGTERM to the server's process group, SIGKILL after 30 s",
            }
        return plan

    def launch(self, inv: Invocation, config_text: str = "") -> int:
        """Run every task in the foreground; returns how many tasks did not succeed."""
        if inv.config.deployment.type != "none":
            raise NotAvailableError(
                f"cannot start a {inv.config.deployment.type} server yet: this release runs "
                "local invocations against an existing endpoint (deployment.type: none)"
            )
        from evalfleet.store import InvocationStore, NewJob

        root = Path(inv.output_dir)
        root.mkdir(parents=True, exist_ok=True)
        if config_text:
            (root / "config.yaml").write_text(config_text, encoding="utf-8")
        for job in inv.jobs:
            Path(job.output_dir).mkdir(parents=True, exist_ok=True)
            Path(job.job_file).write_text(json.dumps(job.spec, indent=2) + "\n", encoding="utf-8")
        with InvocationStore() as store:
            store.create_invocation(
                invocation_id=inv.invocation_id,
                executor="local",
                deployment_type=inv.config.deployment.type,
                model=inv.jobs[0].spec["endpoint"]["model_id"] if inv.jobs else "",
                output_dir=inv.output_dir,
                config=json.loads(json.dumps(inv.config.model_dump(mode="json", by_alias=True, exclude_none=True))),
                jobs=[NewJob(task=job.task, output_dir=job.output_dir) for job in inv.jobs],
            )
            store.update_invocation_handle(inv.invocation_id, {"runner_pid": os.getpid()})
            if inv.config.execution.mode == "parallel":
                return self._run_parallel(inv, store)
            return sum(self._run_one(job, store) for job in inv.jobs)

    def _start(self, job: Job, store: Any) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "evalfleet", "eval", "--job", job.job_file],
            start_new_session=True,  # Ctrl-C reaches us; we stop the task's whole group
        )
        store.update_job(job.job_id, state="RUNNING", detail="", handle={"pid": process.pid})
        return process

    def _finish(self, job: Job, store: Any, code: int) -> int:
        if code == 0:
            store.update_job(job.job_id, state="SUCCESS", detail="")
            return 0
        detail = {
            3: "some samples failed after their retries (see samples.jsonl); resume retries them",
        }.get(code, f"evalfleet eval exited with code {code}; see {job.output_dir}/logs/eval.log")
        store.update_job(job.job_id, state="FAILED", detail=detail)
        return 1

    def _run_one(self, job: Job, store: Any) -> int:
        process = self._start(job, store)
        try:
            code = process.wait()
        except KeyboardInterrupt:
            _stop_group(process)
            store.update_job(job.job_id, state="KILLED", detail="interrupted (Ctrl-C)")
            raise
        return self._finish(job, store, code)

    def _run_parallel(self, inv: Invocation, store: Any) -> int:
        running = {job.job_id: (job, self._start(job, store)) for job in inv.jobs}
        failures = 0
        try:
            for job, process in running.values():
                failures += self._finish(job, store, process.wait())
        except KeyboardInterrupt:
            for job, process in running.values():
                if process.poll() is None:
                    _stop_group(process)
                    store.update_job(job.job_id, state="KILLED", detail="interrupted (Ctrl-C)")
            raise
        return failures

    def status(self, record: Any) -> list[JobStatus]:
        """From the store, checked against the processes: a job recorded as running whose
        process is gone did not finish."""
        rows = []
        runner_alive = _alive(record.handle.get("runner_pid"))
        for job in record.jobs:
            state, detail = job.state, job.detail
            if state == "RUNNING" and not _alive(job.handle.get("pid")):
                state, detail = "FAILED", "its process ended without reporting; resume to rerun it"
            elif state == "PENDING" and not runner_alive:
                state, detail = "FAILED", "never started: the run was interrupted; resume to run it"
            elif state == "SUCCESS":
                detail = _headline(job.output_dir) or detail
            rows.append(JobStatus(record.invocation_id, job.job_id, job.task, JobState(state), detail))
        return rows

    def logs(self, job: Job, follow: bool) -> Iterator[str]:
        raise NotAvailableError(f"cannot show logs: {_NOT_YET}")

    def kill(self, inv: Invocation) -> None:
        raise NotAvailableError(f"cannot kill: {_NOT_YET}")


def _headline(output_dir: str) -> str:
    try:
        results = json.loads((Path(output_dir) / "results.json").read_text())
        name = results["headline_metric"]
        metric = results["metrics"][name]
        return f"{name} {metric['value']:.4f} ± {metric['stderr']:.4f} (n={metric['n']})"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_group(process: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace_s)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
