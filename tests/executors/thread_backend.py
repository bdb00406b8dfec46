"""A backend that exists only in the tests: each job is a thread of the runner process,
calling the engine in-process. The contract suite registers `BACKEND` for its tests
(`execution.type: threads`); a separate process (a `--detach`ed run) finds it through
`$EVALFLEET_BACKENDS`, which names this module.

It proves that a backend is its hooks and one `register()` call: nothing under `src/`
names it, and it passes the same contract suite as the built-in backends.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Literal

from pydantic import Field

from evalfleet.config.schema import ExecutionBase
from evalfleet.contract import Invocation, Job, JobState
from evalfleet.exceptions import EvalFleetError
from evalfleet.executors.base import Executor, Observation, Run
from evalfleet.executors.registry import Backend
from evalfleet.store import InvocationRecord

MODULE = __name__


class ThreadExecution(ExecutionBase):
    type: Literal["threads"] = "threads"
    threads: int = Field(4, gt=0, description="jobs run at once")


class ThreadExecutor(Executor):
    name = "threads"

    def plan(self, invocation: Invocation) -> dict[str, Any]:
        return {
            "executor": self.name,
            "invocation_id": invocation.invocation_id,
            "output_dir": invocation.output_dir,
            "jobs": [job.job_file for job in invocation.jobs],
        }

    @staticmethod
    def render_plan(plan: dict[str, Any]) -> list[str]:
        return [f"thread: evalfleet eval --job {job_file}" for job_file in plan["jobs"]]

    def local_job_dir(self, invocation: Invocation, job: Job) -> str:
        return job.output_dir

    def start(self, run: Run) -> None:
        codes: dict[str, int] = {}
        pending = list(run.jobs)
        running: list[tuple[Job, threading.Thread]] = []
        limit = run.invocation.config.execution.threads
        while pending or running:
            while pending and len(running) < limit:
                job = pending.pop(0)
                thread = threading.Thread(target=_evaluate, args=(job, codes), daemon=True)
                thread.start()
                run.update(job, JobState.RUNNING, "", handle={"thread": thread.name})
                running.append((job, thread))
            for job, thread in list(running):
                thread.join(0.05)  # short waits: Ctrl-C / SIGTERM reach this thread
                if not thread.is_alive():
                    running.remove((job, thread))
                    run.ended(job, codes[job.job_id])
            time.sleep(0.01)

    def observe(self, record: InvocationRecord, runner_alive: bool) -> dict[str, Observation]:
        if runner_alive:
            return {}
        return {
            job.job_id: Observation(JobState.FAILED, "its runner ended without reporting")
            for job in record.jobs
            if job.state in ("PENDING", "RUNNING")
        }

    def cancel(self, record: InvocationRecord) -> list[str]:
        return []  # the jobs are threads of the runner, which the flow has stopped


def _evaluate(job: Job, codes: dict[str, int]) -> None:
    from evalfleet import api

    try:
        _, codes[job.job_id] = api.evaluate_job(job.job_file)
    except EvalFleetError as exc:
        codes[job.job_id] = exc.exit_code
    except Exception:
        codes[job.job_id] = 1


BACKEND = Backend("threads", ThreadExecutor, ThreadExecution)
BACKENDS = [BACKEND]  # what a process finds through $EVALFLEET_BACKENDS
