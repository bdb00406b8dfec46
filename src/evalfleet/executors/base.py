"""The seam between the launcher and its backends.

An `Invocation` is what the planner made of a RunConfig: an id, an output dir and one
`Job` per task, each carrying the `job.json` that `evalfleet eval` will read. An executor
turns an invocation into a plan (pure, for `--dry-run`) and, in later releases, launches,
watches and tears it down.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol


class JobState(str, enum.Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    KILLED = "KILLED"
    UNKNOWN = "UNKNOWN"  # the backend did not answer: never shown as running or failed

    @property
    def is_terminal(self) -> bool:
        return self in (JobState.SUCCESS, JobState.FAILED, JobState.KILLED)


@dataclass(frozen=True)
class Job:
    index: int
    job_id: str  # "<invocation_id>.<index>"
    task: str
    endpoint_type: str  # chat | completions
    output_dir: str  # <invocation output dir>/<task>
    spec: dict[str, Any]  # the content of job.json

    @property
    def job_file(self) -> str:
        return f"{self.output_dir}/job.json"


@dataclass(frozen=True)
class Invocation:
    invocation_id: str
    config: Any  # RunConfig
    output_dir: str  # <execution.output_dir>/<invocation_id>, absolute
    jobs: tuple[Job, ...]

    def record_in(self, store: Any, executor: str, shown_config: Any, jobs: list[Any]) -> None:
        """Its row in the InvocationStore, as every executor writes it at launch; `jobs`
        are the store's NewJob rows, one per job, with what this executor tracks."""
        store.create_invocation(
            invocation_id=self.invocation_id,
            executor=executor,
            deployment_type=self.config.deployment.type,
            model=self.jobs[0].spec["endpoint"]["model_id"] if self.jobs else "",
            output_dir=self.output_dir,
            config=shown_config,
            jobs=jobs,
        )


@dataclass(frozen=True)
class JobStatus:
    invocation_id: str
    job_id: str
    task: str
    state: JobState
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "invocation_id": self.invocation_id,
            "job_id": self.job_id,
            "task": self.task,
            "state": self.state.value,
            "detail": self.detail,
        }


def unknown_statuses(record: Any, reason: str) -> list[JobStatus]:
    """Every job of `record` as UNKNOWN with `reason` and its last recorded state."""
    return [
        JobStatus(
            record.invocation_id,
            job.job_id,
            job.task,
            JobState.UNKNOWN,
            f"{reason} (last recorded state: {job.state})",
        )
        for job in record.jobs
    ]


class Executor(Protocol):
    """What every backend implements. `record` is the invocation as the store holds it
    (`store.InvocationRecord`: id, executor, output dir, redacted config, jobs, handle)."""

    def plan(self, invocation: Invocation) -> dict[str, Any]:
        """What launching would create, as JSON-able data; contacts nothing."""

    def launch(self, invocation: Invocation, shown_config: dict[str, Any]) -> int:
        """Create and start the invocation, recording it in the store; returns how many
        tasks did not succeed (0 for a backend that returns once jobs are submitted).
        `shown_config` is the redacted config, the only one that may reach disk."""

    def status(self, record: Any) -> list[JobStatus]: ...

    def logs(self, record: Any, job_id: str | None, follow: bool) -> Iterator[str]: ...

    def kill(self, record: Any) -> list[str]:
        """Stop everything the invocation owns (idempotent); returns what was stopped."""

    def resume(self, record: Any) -> int:
        """Rerun what did not succeed; returns how many tasks still did not succeed."""
