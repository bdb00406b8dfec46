"""The immutable values the store hands out.

Records are frozen dataclasses rather than pydantic models so that importing the store
stays cheap (`evalfleet ls runs` must start in well under a second).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from evalfleet.contract import JOB_STATES as JOB_STATES  # every state a job can be recorded in


@dataclass(frozen=True)
class NewJob:
    """What a caller supplies for one job when creating an invocation."""

    task: str
    output_dir: str
    handle: dict = field(default_factory=dict)


@dataclass(frozen=True)
class JobRecord:
    """One job as stored: a task run of an invocation, with its backend handles."""

    job_id: str
    invocation_id: str
    index: int
    task: str
    state: str
    detail: str
    output_dir: str
    handle: dict
    created_at: float
    updated_at: float
    damaged: str = ""  # what is unreadable in its row (one line), "" when nothing is


@dataclass(frozen=True)
class InvocationRecord:
    """One invocation as stored, with its jobs in index order."""

    invocation_id: str
    created_at: float
    executor: str
    deployment_type: str
    model: str
    output_dir: str
    config: dict
    handle: dict
    jobs: tuple[JobRecord, ...]
    # What is unreadable in its row or its jobs' rows (one line), "" when nothing is: a
    # damaged record is listed, never handed to a command (`InvocationStore.get` refuses it).
    damaged: str = ""

    @property
    def tasks(self) -> list[str]:
        """Task names in job order, for tables that show one line per invocation."""
        return [job.task for job in self.jobs]
