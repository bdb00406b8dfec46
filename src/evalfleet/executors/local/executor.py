"""The local executor's hooks: an invocation on this machine.

`run` stays in the foreground: it starts the model server (if any) as its own process
group, waits for its health path, runs each task as `evalfleet eval --job job.json` in its
own process, and stops the server when the last task ends, when launching fails, on
Ctrl-C and on `evalfleet kill` (the flow in `executors/base.py` does the rest).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from evalfleet.contract import JSON, Invocation, Job, JobState
from evalfleet.deployments.servers import ServerSpec, server_spec
from evalfleet.exceptions import DeploymentError, UsageError
from evalfleet.executors._process import process_alive
from evalfleet.executors.base import Executor, Observation, Run
from evalfleet.executors.local._settings import settings
from evalfleet.executors.local.server import LocalServer, group_alive, stop_group

if TYPE_CHECKING:
    from evalfleet.store import InvocationRecord


def eval_command(job: Job) -> list[str]:
    """The command every backend runs for a job."""
    return ["evalfleet", "eval", "--job", job.job_file]


def server_argv(inv: Invocation, server: ServerSpec) -> list[str]:
    execution = settings(inv.config)
    if not (execution.use_docker and server.image):
        return [
            sys.executable if server.argv[:1] == ["python3"] else server.argv[0],
            *server.argv[1:],
        ]
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


class LocalExecutor(Executor):
    name = "local"

    def __init__(self) -> None:
        self._server: LocalServer | None = None  # the one a run started

    def plan(self, inv: Invocation) -> JSON:
        execution = settings(inv.config)
        # Inside a container the server must listen on all interfaces to be published.
        host = "0.0.0.0" if execution.use_docker else "127.0.0.1"
        server = server_spec(inv.config.deployment, host=host)
        env = {} if server is None else dict(server.env)
        if execution.cuda_visible_devices is not None:
            env["CUDA_VISIBLE_DEVICES"] = execution.cuda_visible_devices
        plan: JSON = {
            "executor": self.name,
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
                "port": server.port,
                "readiness_timeout_s": execution.endpoint_readiness_timeout,
                "log": f"{inv.output_dir}/server.log",
                "stop": "SIGTERM to the server's process group, SIGKILL after 30 s",
                "model_package": getattr(inv.config.deployment, "model_package", None),
            }
        return plan

    @staticmethod
    def render_plan(plan: JSON) -> list[str]:
        lines = []
        server = plan.get("server")
        if server:
            lines.append(f"\n1. start the {server['type']} server (log: {server['log']}):")
            lines.append(f"   {server['command']}")
            lines += [f"   env {name}={value}" for name, value in server["env"].items()]
            lines.append(
                f"2. wait up to {server['readiness_timeout_s']} s for {server['health_url']}"
            )
        step = 3 if server else 1
        lines.append(f"\n{step}. run the tasks ({plan['mode']}):")
        lines += [f"   [{task['job_id']}] {task['command']}" for task in plan["tasks"]]
        if server:
            lines.append(f"\n{step + 1}. stop the server: {server['stop']}")
        return lines

    # ------------------------------------------------------------------ running

    def local_job_dir(self, invocation: Invocation, job: Job) -> str:
        return job.output_dir

    def check_resumable(self, record: InvocationRecord) -> None:
        from evalfleet.config.redact import REDACTED

        if REDACTED in json.dumps(record.config.get("deployment", {})):
            raise UsageError(
                "cannot resume: the server's settings hold secret values that were not stored; "
                "reference secrets by env var name instead, or start a new run"
            )

    def start(self, run: Run) -> None:
        """Start the server (if any), then run the jobs to their end."""
        inv = run.invocation
        plan = self.plan(inv)
        if plan["server"] is not None:
            server = LocalServer(plan["server"], Path(inv.output_dir) / "logs" / "server.log")
            self._server = server
            _check_model_file(inv)
            server.start()
            run.set_handle({"server_pid": server.pid})
            waited = server.wait_ready(plan["server"]["readiness_timeout_s"])
            print(f"{plan['server']['type']} server ready after {waited:.1f} s", file=sys.stderr)
        if settings(inv.config).mode == "parallel":
            self._run_parallel(run)
        else:
            for job in run.jobs:
                self._run_one(run, job)

    def finish(self, run: Run, completed: bool) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def _start(self, run: Run, job: Job) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "evalfleet", "eval", "--job", job.job_file],
            start_new_session=True,  # Ctrl-C reaches us; we stop the task's whole group
        )
        run.update(job, JobState.RUNNING, "", handle={"pid": process.pid})
        return process

    def _run_one(self, run: Run, job: Job) -> None:
        process = self._start(run, job)
        try:
            code = process.wait()
        except KeyboardInterrupt:
            stop_group(process.pid, 10.0, process)
            raise
        run.ended(job, code)

    def _run_parallel(self, run: Run) -> None:
        running = [(job, self._start(run, job)) for job in run.jobs]
        try:
            for job, process in running:
                run.ended(job, process.wait())
        except KeyboardInterrupt:
            for _, process in running:
                if process.poll() is None:
                    stop_group(process.pid, 10.0, process)
            raise

    # ------------------------------------------------------------------ watching

    def observe(self, record: InvocationRecord, runner_alive: bool) -> dict[str, Observation]:
        """The store, checked against the processes: a job recorded as running whose
        process is gone did not finish."""
        seen = {}
        for job in record.jobs:
            if job.state == JobState.RUNNING and not process_alive(job.handle.get("pid")):
                seen[job.job_id] = Observation(
                    JobState.FAILED, "its process ended without reporting; resume to rerun it"
                )
            elif job.state == JobState.PENDING and not runner_alive:
                seen[job.job_id] = Observation(
                    JobState.FAILED, "never started: the run was interrupted; resume to run it"
                )
        return seen

    def cancel(self, record: InvocationRecord) -> list[str]:
        """What the runner could not stop (it was killed itself, say)."""
        stopped = []
        for pid in [record.handle.get("server_pid"), *(j.handle.get("pid") for j in record.jobs)]:
            if isinstance(pid, int) and group_alive(pid) and stop_group(pid, 10.0):
                stopped.append(f"process group {pid}")
        return stopped


def _check_model_file(inv: Invocation) -> None:
    deployment = inv.config.deployment
    path = getattr(deployment, "checkpoint_path", None)
    if deployment.type == "llamacpp" and path and not Path(path).expanduser().is_file():
        raise DeploymentError(f"model file not found: {path} (deployment.checkpoint_path)")
