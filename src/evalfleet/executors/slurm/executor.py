"""The Slurm executor: plans an invocation as batch scripts (submission comes later)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from typing import Any

from evalfleet.exceptions import ConfigError, NotAvailableError
from evalfleet.executors.base import Invocation, JobStatus, unknown_statuses
from evalfleet.executors.slurm.render import render_scripts

_NOT_YET = "the Slurm executor can only plan (--dry-run) in this release"
_LOGIN_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def submit_host(execution: Any) -> str:
    return execution.hostname or "localhost"


def submit_prefix(execution: Any) -> list[str]:
    """The command a script's path is appended to: `sbatch`, or `sbatch` over ssh."""
    host = submit_host(execution)
    if host == "localhost":
        return ["sbatch"]
    problems = [
        f"execution.{key}: {value!r} is not a host or user name"
        for key, value in (("hostname", host), ("username", execution.username))
        if value is not None and not _LOGIN_PART.match(value)
    ]
    if problems:
        raise ConfigError(problems)
    target = f"{execution.username}@{host}" if execution.username else host
    return ["ssh", target, "sbatch"]


class SlurmExecutor:
    def plan(self, inv: Invocation) -> dict[str, Any]:
        """The batch scripts and how each would be submitted; contacts nothing.

        Each script would be written to `<output_dir>/<name>` on the submit host and
        submitted as `submit.command + [path]` (the path shell-quoted when the command
        runs over ssh, whose remote shell parses it again).
        """
        execution = inv.config.execution
        prefix = submit_prefix(execution)
        remote = prefix[0] == "ssh"
        scripts = []
        for script in render_scripts(inv):
            path = f"{inv.output_dir}/{script.name}"
            scripts.append(
                {
                    "name": script.name,
                    "path": path,
                    "job_ids": list(script.job_ids),
                    "command": [*prefix, shlex.quote(path) if remote else path],
                    "text": script.text,
                }
            )
        return {
            "executor": "slurm",
            "invocation_id": inv.invocation_id,
            "output_dir": inv.output_dir,
            "submit": {"host": submit_host(execution), "command": prefix},
            "scripts": scripts,
        }

    def launch(self, invocation: Invocation, shown_config: dict[str, Any]) -> int:
        raise NotAvailableError(f"cannot launch: {_NOT_YET}")

    def status(self, record: Any) -> list[JobStatus]:
        # This backend cannot be asked yet: say so rather than guess.
        return unknown_statuses(record, "the slurm executor cannot report status in this release")

    def logs(self, record: Any, job_id: str | None, follow: bool) -> Iterator[str]:
        raise NotAvailableError(f"cannot fetch logs: {_NOT_YET}")

    def kill(self, record: Any) -> list[str]:
        raise NotAvailableError(f"cannot kill an invocation: {_NOT_YET}")

    def resume(self, record: Any) -> int:
        raise NotAvailableError(f"cannot resume an invocation: {_NOT_YET}")
