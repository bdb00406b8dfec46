"""Running job files in this process: one, as `evalfleet eval` does; or all of an
invocation's jobs side by side, as the local executor does.

A job is a built-in task (the engine) or a framework package's (the harness); either way its
failure is kept where every backend finds it: one line in the job's `logs/failure.txt` and,
as an ERROR line, in its `logs/eval.log`.

Jobs run here together share what their endpoint can take (`engine/budget.py`): one
in-flight limit per endpoint, so that it sees at most `parallelism` requests. In sequence,
the next job starts as soon as the one before has sent its last request (`dispatched`), so
its requests take the slots the last answers free, and the endpoint never idles between
tasks; the jobs still end, and are recorded, in order of their answers. Each job has its
own environment (`engine/environ.py`).

A job directory is locked while a job runs in it (`logs/eval.lock`, `flock`): a second
`evalfleet eval` of the same job (a resume while the first still runs, a requeued Slurm
job) stops at once instead of sending every request twice into the same files.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import traceback
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalfleet.contract import headline_text
from evalfleet.contract.files import make_private_dirs, open_private
from evalfleet.exceptions import EngineError, EvalFleetError, UsageError

Display = Callable[[Any], Awaitable[None]]


@dataclass
class JobRun:
    """One job to run here: its job.json and its environment (None: this process's)."""

    job_file: str
    env: Mapping[str, str] | None = None
    code: int | None = None  # set once it has ended
    results: dict[str, Any] | None = None
    progress: Any = field(default=None, repr=False)


def evaluate_job(
    job_file: str | Path, *, rescore: bool = False, display: Display | None = None
) -> tuple[dict[str, Any], int]:
    """Run one job file (`evalfleet eval`). Returns (results, exit code); a failure raises
    its EvalFleetError, after keeping its one line."""
    from evalfleet.engine.loop import run

    job = JobRun(str(job_file))

    async def main() -> tuple[dict[str, Any], int]:
        shown = asyncio.ensure_future(_show(display, job)) if display else None
        try:
            return await _run_job(job, rescore=rescore, dispatched=asyncio.Event())
        finally:
            await _stop(shown)

    return run(main())


def evaluate_jobs(
    jobs: Sequence[JobRun],
    *,
    parallel: bool,
    started: Callable[[JobRun], None],
    ended: Callable[[JobRun], None],
    display: Display | None = None,
) -> None:
    """Run `jobs` in this process, sharing their endpoints' budgets; `started` and `ended`
    are called for each (`job.code` is its exit code, as `evalfleet eval`'s would be: a
    failure is printed in one line, a bug with its traceback, and never stops the others).
    Ctrl-C (KeyboardInterrupt) stops them all and is raised."""
    from evalfleet.engine.budget import shared_budgets
    from evalfleet.engine.loop import run

    async def one(job: JobRun, dispatched: asyncio.Event) -> None:
        started(job)
        try:
            job.results, job.code = await _run_job(job, rescore=False, dispatched=dispatched)
            print(summary_line(job.results), file=sys.stderr, flush=True)
        except EvalFleetError as exc:
            job.code = exc.exit_code
            print(f"error: {exc}".splitlines()[0], file=sys.stderr, flush=True)
        except Exception:  # a bug: as a crashed `evalfleet eval` would show it
            job.code = 1
            traceback.print_exc()
        finally:
            dispatched.set()
        ended(job)

    async def main() -> None:
        running: list[asyncio.Future[None]] = []
        shown = asyncio.ensure_future(_show(display, *jobs)) if display else None
        try:
            with shared_budgets():
                for job in jobs:
                    dispatched = asyncio.Event()
                    running.append(asyncio.ensure_future(one(job, dispatched)))
                    if not parallel:
                        await dispatched.wait()
                await asyncio.gather(*running)
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            await _stop(shown)

    run(main())


def summary_line(results: dict[str, Any]) -> str:
    """A finished job in one line: its headline metric, samples and errors, its files."""
    return f"{results['task']}: {headline_text(results)} -> {results['output_dir']}"


async def _run_job(
    job: JobRun, *, rescore: bool, dispatched: asyncio.Event
) -> tuple[dict[str, Any], int]:
    from evalfleet.contract import clear_failure
    from evalfleet.contract.spec import read_job
    from evalfleet.engine.environ import use_job_environ
    from evalfleet.engine.runner import RunProgress

    job_dir = Path(job.job_file).parent
    try:
        spec = read_job(job.job_file, job.env)  # its env may carry the URL's credentials
        job_dir = Path(spec.output_dir)
        job.progress = RunProgress(task=spec.task)
        env: Mapping[str, str] = os.environ if job.env is None else job.env
        with _job_lock(job_dir, spec.job_id):
            clear_failure(job_dir)
            if spec.pre_cmd:
                from evalfleet.engine.job_commands import run_pre_cmd

                env = await asyncio.to_thread(run_pre_cmd, spec.pre_cmd, job_dir, env)
            try:
                with use_job_environ(env):
                    return await _evaluate(spec, job.progress, rescore, dispatched)
            finally:
                if spec.post_cmd:
                    from evalfleet.engine.job_commands import run_post_cmd

                    await asyncio.to_thread(run_post_cmd, spec.post_cmd, job_dir, env)
    except EvalFleetError as exc:
        _keep_failure(job_dir, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise
    except Exception as exc:  # a bug: its traceback is printed, its one line kept
        _keep_failure(job_dir, f"{type(exc).__name__}: {exc}".splitlines()[0])
        raise


async def _evaluate(
    spec: Any, progress: Any, rescore: bool, dispatched: asyncio.Event
) -> tuple[dict[str, Any], int]:
    if spec.harness is None:
        from evalfleet.engine.runner import evaluate

        return await evaluate(spec, rescore=rescore, progress=progress, dispatched=dispatched)
    if rescore:
        raise UsageError(
            f"{spec.task}: --rescore re-scores built-in tasks; a framework package scores its "
            "own output (run the job again: its answers are cached)"
        )
    from evalfleet.harness.run import run_harness_job

    return await run_harness_job(spec, progress)


@contextlib.contextmanager
def _job_lock(job_dir: Path, job_id: str) -> Iterator[None]:
    """Hold the job directory's lock while the job runs; refuse if another process has it."""
    import fcntl

    logs = make_private_dirs(job_dir / "logs")
    fd = os.open(logs / "eval.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise EngineError(
                f"job {job_id} is already running (pid {holder}) in {job_dir}: a second run "
                "would send every request again into the same files; kill it first or wait"
            ) from None
        except OSError:
            pass  # a file system without locks (some NFS): run as before there were any
        else:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


async def _show(display: Display | None, *jobs: JobRun) -> None:
    """The display of the job started last (the one filling the endpoint now)."""
    assert display is not None
    await display(_LatestProgress(jobs))


class _LatestProgress:
    """The counters of the latest job that has started and not ended, else the last one
    that ended: what a one-line display shows while several jobs run in turn."""

    def __init__(self, jobs: Sequence[JobRun]) -> None:
        self._jobs = jobs

    def _current(self) -> Any:
        begun = [job for job in self._jobs if job.progress is not None]
        running = [job for job in begun if job.code is None]
        chosen = (running or begun)[-1:] if begun else []
        if not chosen:
            from evalfleet.engine.runner import RunProgress

            return RunProgress()
        return chosen[0].progress

    def __getattr__(self, name: str) -> Any:
        return getattr(self._current(), name)


async def _stop(shown: asyncio.Future[None] | None) -> None:
    if shown is not None:
        shown.cancel()
        await asyncio.gather(shown, return_exceptions=True)


def _keep_failure(job_dir: Path, reason: str) -> None:
    import time

    from evalfleet.contract import write_failure

    write_failure(job_dir, reason)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S") + ",000"
    try:
        with open_private(make_private_dirs(job_dir / "logs") / "eval.log", "a") as log:
            log.write(f"{stamp} ERROR {reason}\n")
    except OSError:
        pass  # the failure file (or the exit code) still says it
