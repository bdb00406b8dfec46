"""The local executor: plans (and, in a later release, runs) an invocation on this machine."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterator
from typing import Any

from evalfleet.deployments.servers import ServerSpec, server_spec
from evalfleet.exceptions import NotAvailableError
from evalfleet.executors.base import Invocation, Job, JobStatus

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

    def launch(self, inv: Invocation) -> None:
        raise NotAvailableError(f"cannot launch: {_NOT_YET}")

    def status(self, inv: Invocation) -> list[JobStatus]:
        raise NotAvailableError(f"cannot ask for status: {_NOT_YET}")

    def logs(self, job: Job, follow: bool) -> Iterator[str]:
        raise NotAvailableError(f"cannot show logs: {_NOT_YET}")

    def kill(self, inv: Invocation) -> None:
        raise NotAvailableError(f"cannot kill: {_NOT_YET}")
