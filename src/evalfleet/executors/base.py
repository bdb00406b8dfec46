"""The invocation flow, written once; each backend supplies only its hooks.

`Executor` is a template (the shape submitit's executors have): `launch`, `resume`,
`status`, `logs` and `kill` are defined here, with everything that must mean the same on
every backend — the files a run writes (`config.yaml`, each `job.json`), the store rows,
the resume rules, what an exit code means, the headline of a finished job, the reason a
failed job failed, KILLED on Ctrl-C and `evalfleet kill`, auto-export once an invocation
has ended. A backend subclasses it and fills in the hooks marked below: how to start or
submit jobs, how to see their states, how to cancel them, how to read their logs and bring
their files home. It registers itself in `executors.registry`, nothing else.

Who writes the store: a foreground run (`foreground = True`) owns its invocation's rows
while its process lives; `status` then only shows what the backend says. Without a live
runner (or for a backend that returns once jobs are submitted), `status` records what it
learns.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from evalfleet.contract import (
    ENDED_STATES,
    EXIT_OK,
    FAILED_STATES,
    JSON,
    OPEN_STATES,
    Invocation,
    Job,
    JobState,
    JobStatus,
    exit_detail,
    headline,
    read_failure,
)
from evalfleet.contract.files import make_private_dirs, write_private
from evalfleet.exceptions import BackendUnreachable, DeploymentError, UsageError
from evalfleet.executors._process import process_alive, stop_runner, terminate_as_interrupt

if TYPE_CHECKING:
    from evalfleet.config.schema import RunConfig
    from evalfleet.store import InvocationRecord, InvocationStore, JobRecord

KILLED_DETAIL = "stopped (Ctrl-C or evalfleet kill)"
FOLLOW_POLL_S = 0.5


@dataclass(frozen=True)
class Observation:
    """What a backend sees of one job. With `exit_code` (the job's `evalfleet eval` has
    ended) the flow decides the state and detail itself, the same on every backend."""

    state: JobState
    detail: str = ""
    exit_code: int | None = None


@dataclass(frozen=True)
class LaunchOptions:
    keep_endpoint: bool = False  # leave a backend-created endpoint running after the jobs


@dataclass(frozen=True)
class LogSource:
    """One log a backend can read: `name` prefixes its lines, `where` is the backend's own
    locator (a path, a job id...). `task` (the task it belongs to, None for the whole
    invocation's) and `server` (a deployment server's log) are what `logs --task` and
    `logs --server` select by."""

    name: str
    where: str
    task: str | None = None
    server: bool = False


@dataclass(frozen=True)
class LogFilter:
    """What `evalfleet logs` shows: only `task`'s own log, only the servers' logs, or
    both; the last `tail` lines of each log before following."""

    task: str | None = None
    server: bool = False
    tail: int | None = None

    def wants(self, source: LogSource) -> bool:
        if self.task is None and not self.server:
            return True
        if source.server:
            return self.server and (self.task is None or source.task in (None, self.task))
        return self.task is not None and source.task == self.task


class Run:
    """One launch or resume as the flow hands it to a backend's hooks: the invocation, the
    jobs to run now, and the store rows they update."""

    def __init__(
        self,
        executor: Executor,
        invocation: Invocation,
        jobs: list[Job],
        store: InvocationStore,
        options: LaunchOptions,
        resuming: bool,
    ) -> None:
        self.executor = executor
        self.invocation = invocation
        self.jobs = jobs
        self.store = store
        self.options = options
        self.resuming = resuming

    @property
    def invocation_id(self) -> str:
        return self.invocation.invocation_id

    def record(self) -> InvocationRecord:
        return self.store.get(self.invocation_id)

    def set_handle(self, values: JSON) -> None:
        self.store.update_invocation_handle(self.invocation_id, values)

    def update(
        self, job: Job, state: JobState, detail: str = "", handle: JSON | None = None
    ) -> None:
        self.store.update_job(job.job_id, state=state.value, detail=detail, handle=handle)

    def ended(self, job: Job, exit_code: int) -> JobState:
        """Record a job whose `evalfleet eval` exited with `exit_code`; its files must be
        home already (`Executor.local_job_dir`)."""
        state, detail = self.executor.ended_state(
            exit_code, self.executor.local_job_dir(self.invocation, job)
        )
        self.update(job, state, detail)
        return state

    def open_jobs(self) -> list[JobRecord]:
        wanted = {job.job_id for job in self.jobs}
        return [j for j in self.record().jobs if j.job_id in wanted and j.state in OPEN_STATES]


class Executor(ABC):
    """An execution backend. Subclasses set `name` and implement the hooks."""

    name: ClassVar[str]
    # True: `launch` runs the jobs to their end in this process (the runner); False: it
    # returns once they are submitted and `status` follows them.
    foreground: ClassVar[bool] = True
    # Whether it creates an endpoint that `run --keep-endpoint` may leave running.
    creates_endpoints: ClassVar[bool] = False

    # ================================================================= hooks: planning

    @abstractmethod
    def plan(self, invocation: Invocation) -> JSON:
        """What launching would create, as JSON-able data; contacts nothing. Must have
        `executor`, `invocation_id` and `output_dir`."""

    @staticmethod
    @abstractmethod
    def render_plan(plan: JSON) -> list[str]:
        """The dry run's steps, as lines for a terminal."""

    def invocation_dir(self, config: RunConfig, invocation_id: str) -> str:
        """Where the invocation's files go, as its jobs see them."""
        base = Path(os.path.expanduser(config.execution.output_dir))
        return str(base.absolute() / invocation_id)

    def job_root(self, config: RunConfig, invocation_id: str, output_dir: str) -> str:
        """The directory holding each task's directory, as the jobs see it."""
        return output_dir

    def endpoint_base(self, config: RunConfig, port: int) -> tuple[str, str | None]:
        """(base URL of a server this backend deploys, env var holding its key) as the
        jobs see them."""
        return f"http://127.0.0.1:{port}", None

    def judge_endpoint_base(self, config: RunConfig, port: int) -> tuple[str, str | None]:
        """The same for the judge deployment (`judge_deployment`), beside the model's."""
        return self.endpoint_base(config, port)

    # ================================================================= hooks: running

    def prepare(self, invocation: Invocation) -> None:  # noqa: B027 (optional hook)
        """Check what can be checked before anything is recorded (credentials...)."""

    def check_environment(self, invocation: Invocation) -> None:  # noqa: B027 (optional hook)
        """Where the jobs run on this machine: raise ConfigError for a variable they will
        read that is not there (a host value, the endpoint's API key). Called before the
        invocation is recorded, and before a `--detach`ed run is started."""

    def local_root(self, invocation: Invocation) -> str:
        """Where the invocation's files are (or are brought) on this machine: its
        `config.yaml`, and one directory per task with its `job.json` and results."""
        return invocation.output_dir

    def local_job_dir(self, invocation: Invocation, job: Job) -> str:
        return f"{self.local_root(invocation)}/{job.task}"

    def launch_handles(self, invocation: Invocation) -> tuple[JSON, list[JSON]]:
        """What to record at launch beside the rows: the invocation's handle, each job's."""
        return {}, [{} for _ in invocation.jobs]

    @abstractmethod
    def start(self, run: Run) -> None:
        """Bring up what the jobs need and start or submit `run.jobs`. A foreground backend
        also waits here until they have ended, recording each (`run.ended`)."""

    def abandon(self, run: Run, error: BaseException) -> None:  # noqa: B027 (optional hook)
        """A launch stopped half-way (an error, Ctrl-C): undo what `start` made that the
        rows do not cover (submitted jobs...). Must not raise."""

    def finish(self, run: Run, completed: bool) -> None:  # noqa: B027 (optional hook)
        """Always called after `start`: tear down what the run owns (a server, an endpoint)."""

    def check_resumable(self, record: InvocationRecord) -> None:  # noqa: B027 (optional hook)
        """Raise UsageError when this backend cannot rerun `record` (missing secrets...)."""

    # ================================================================= hooks: watching

    @abstractmethod
    def observe(self, record: InvocationRecord, runner_alive: bool) -> dict[str, Observation]:
        """The backend's view of the jobs it can say something about (by job id); raise
        BackendUnreachable when it cannot be asked. Jobs left out keep their recorded row."""

    def needs_observing(self, record: InvocationRecord) -> bool:
        """Whether `status` must ask the backend although every job has ended."""
        return False

    def collect(self, record: InvocationRecord, job: JobRecord) -> str:
        """Bring an ended job's files home (once); returns where they are here."""
        return job.output_dir

    @abstractmethod
    def cancel(self, record: InvocationRecord) -> list[str]:
        """Stop and delete everything the invocation still runs (idempotent); returns what
        was stopped. The flow has already stopped a foreground runner."""

    def log_sources(
        self, record: InvocationRecord, jobs: list[JobRecord], whole: bool
    ) -> list[LogSource]:
        """The logs of `jobs`; with `whole` (`logs ID`, not `logs ID.N`) also those of
        the invocation itself (its server...)."""
        sources = []
        if whole:
            if record.deployment_type != "none":
                path = f"{record.output_dir}/logs/server.log"
                sources.append(LogSource("server", path, server=True))
            if record.config.get("judge_deployment"):
                path = f"{record.output_dir}/logs/judge_server.log"
                sources.append(LogSource("judge server", path, server=True))
        sources += [
            LogSource(job.task, f"{job.output_dir}/logs/eval.log", task=job.task) for job in jobs
        ]
        return sources

    def read_logs(
        self, record: InvocationRecord, sources: list[LogSource], offsets: dict[str, int]
    ) -> Iterator[tuple[LogSource, str]]:
        """New complete lines of each source since the last call (`offsets` is kept by
        the flow between calls); by default each source is a local file."""
        for source in sources:
            data = _read_from(source.where, offsets.get(source.where, 0))
            for line in complete_lines(data, source.where, offsets):
                yield source, line

    def active(self, record: InvocationRecord) -> bool:
        """Whether anything of the invocation may still write logs (`logs --follow`)."""
        if self.foreground:
            return process_alive(record.handle.get("runner_pid"))
        return any(job.state in OPEN_STATES for job in record.jobs)

    # ================================================================= the flow

    def launch(
        self,
        invocation: Invocation,
        shown_config: JSON,
        options: LaunchOptions | None = None,
    ) -> int:
        """Record the invocation, then start it; returns how many of its tasks did not
        succeed (0 for a backend that returns once jobs are submitted). `shown_config` is
        the redacted config: the only one that reaches the disk and the store."""
        from evalfleet.store import InvocationStore, NewJob

        self.prepare(invocation)
        self._write_job_files(invocation, shown_config)
        invocation_handle, job_handles = self.launch_handles(invocation)
        if self.foreground:  # in the row from its first moment: `status` sees a live run
            invocation_handle = {**invocation_handle, "runner_pid": os.getpid()}
        with InvocationStore() as store:
            store.create_invocation(
                invocation_id=invocation.invocation_id,
                executor=self.name,
                deployment_type=invocation.config.deployment.type,
                model=invocation.model,
                output_dir=invocation.output_dir,
                config=shown_config,
                jobs=[
                    NewJob(task=job.task, output_dir=self.local_job_dir(invocation, job), handle=h)
                    for job, h in zip(invocation.jobs, job_handles, strict=True)
                ],
                handle=invocation_handle,
            )
        return self._run(invocation, list(invocation.jobs), options or LaunchOptions(), False)

    def resume(self, record: InvocationRecord, options: LaunchOptions | None = None) -> int:
        """Rerun every task that did not succeed (each task's response cache means only
        unanswered requests are sent again); returns how many still did not succeed."""
        from evalfleet.store import InvocationStore

        runner = record.handle.get("runner_pid")
        if process_alive(runner):
            raise UsageError(
                f"invocation {record.invocation_id} is still running (pid {runner}); "
                "kill it first or wait"
            )
        rows = self.status(record, export=False)
        unknown = [row for row in rows if row.state is JobState.UNKNOWN]
        if unknown:
            raise DeploymentError(
                f"cannot resume {record.invocation_id}: its state is unknown ({unknown[0].detail})"
            )
        if any(row.state.is_open for row in rows):
            raise UsageError(
                f"invocation {record.invocation_id} is still running; kill it first or wait"
            )
        todo = {row.job_id for row in rows if row.state is not JobState.SUCCESS}
        if not todo:
            raise UsageError(f"nothing to resume: every task of {record.invocation_id} succeeded")
        self.check_resumable(record)
        invocation = self.invocation_from_record(record)
        with InvocationStore() as store:
            for job_id in sorted(todo):
                store.update_job(job_id, state=JobState.PENDING.value, detail="resumed")
            store.update_invocation_handle(record.invocation_id, {"auto_exported_at": None})
        jobs = [job for job in invocation.jobs if job.job_id in todo]
        return self._run(invocation, jobs, options or self._stored_options(record), True)

    def status(self, record: InvocationRecord, export: bool = True) -> list[JobStatus]:
        """One row per job, live from the backend (UNKNOWN, never a guess, when it cannot
        be asked). What it learns is recorded unless a live runner owns the rows; once
        every job has ended, `execution.auto_export` runs (once; not with `export=False`)."""
        runner_alive = self.foreground and process_alive(record.handle.get("runner_pid"))
        open_jobs = [job for job in record.jobs if job.state in OPEN_STATES]
        if open_jobs or self.needs_observing(record):
            try:
                seen = self.observe(record, runner_alive)
            except BackendUnreachable as exc:
                return unknown_statuses(record, str(exc).splitlines()[0])
            rows = self._apply(record, seen, record_changes=not runner_alive)
        else:
            rows = [_row(record, job, JobState(job.state), job.detail) for job in record.jobs]
        if export and all(row.state.value in ENDED_STATES for row in rows):
            self.auto_export_once(record.invocation_id)
        return rows

    def logs(
        self,
        record: InvocationRecord,
        job_id: str | None,
        follow: bool,
        only: LogFilter | None = None,
    ) -> Iterator[str]:
        """Lines of the invocation's logs (or one job's), prefixed with their source; then
        why each failed job failed. With `follow`, new lines until nothing runs. `only`
        selects logs (a task's, the servers') and how many lines of each come first;
        a selection that no log of this invocation matches is a UsageError."""
        only = only or LogFilter()
        jobs = [
            job
            for job in record.jobs
            if (job_id is None or job.job_id == job_id) and only.task in (None, job.task)
        ]
        whole = job_id is None or only.server
        offsets: dict[str, int] = {}
        first = True
        while True:
            sources = [s for s in self.log_sources(record, jobs, whole=whole) if only.wants(s)]
            if first and not sources and only.server:
                why = (
                    "deployment.type none: it evaluated an endpoint that already ran"
                    if record.deployment_type == "none"
                    else f"the {self.name} backend keeps none for it"
                )
                raise UsageError(
                    f"--server: invocation {record.invocation_id} has no server log ({why})"
                )
            fresh = False
            lines = self.read_logs(record, sources, offsets)
            if first and only.tail is not None:
                lines = _tail_each(lines, only.tail)
            first = False
            for source, line in lines:
                fresh = True
                yield f"[{source.name}] {line}"
            if not follow or (not fresh and not self.active(self._reload(record))):
                break
            if not fresh:
                time.sleep(FOLLOW_POLL_S)
        if only.server and only.task is None:
            return  # the servers' logs only: a task's failure is not theirs
        wanted = {job.job_id for job in jobs}
        for job in self._reload(record).jobs:
            if job.job_id in wanted and job.state in FAILED_STATES and job.detail:
                yield f"[{job.task}] {job.state}: {job.detail}"

    def kill(self, record: InvocationRecord) -> list[str]:
        """Stop everything the invocation owns, tearing down its deployment; idempotent.
        Returns what was stopped; its unfinished jobs are recorded KILLED."""
        from evalfleet.store import InvocationStore

        stopped = []
        runner = record.handle.get("runner_pid")
        if self.foreground and stop_runner(runner):  # the runner tears down what it made
            stopped.append(f"run process {runner}")
        stopped += self.cancel(self._reload(record))
        with InvocationStore() as store:
            for job in store.get(record.invocation_id).jobs:
                if job.state in OPEN_STATES:
                    store.update_job(
                        job.job_id, state=JobState.KILLED.value, detail="stopped by evalfleet kill"
                    )
        return stopped

    # ----------------------------------------------------------------- shared steps

    def ended_state(self, exit_code: int, job_dir: str) -> tuple[JobState, str]:
        """What an ended job's exit code means, with its headline or failure reason."""
        if exit_code == EXIT_OK:
            return JobState.SUCCESS, headline(job_dir)
        return JobState.FAILED, exit_detail(exit_code, job_dir, read_failure(job_dir))

    def invocation_from_record(self, record: InvocationRecord) -> Invocation:
        """The invocation as planned, from the stored config and the job files written at
        launch (so a resume runs exactly what ran)."""
        import json

        from pydantic import ValidationError

        from evalfleet.config.schema import RunConfig

        cannot = f"cannot resume {record.invocation_id}:"
        try:
            config = RunConfig.model_validate(record.config)
        except ValidationError as exc:  # a config an older evalfleet stored, or a hand edit
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"]) or "(top level)"
            raise UsageError(
                f"{cannot} its stored config is not valid for this evalfleet ({where}: "
                f"{first['msg']}); start a new run"
            ) from None
        jobs = []
        for stored in record.jobs:
            directory = Path(stored.output_dir)
            path = directory / "job.json"
            # The answers were cached in that directory: without it, a resume would be a new
            # run under an old id; the store has no copy of the job file to rebuild it from.
            if not directory.is_dir():
                raise UsageError(
                    f"{cannot} the job directory {directory} was deleted (with its job.json and "
                    "cached answers); start a new run"
                )
            try:
                spec = json.loads(path.read_text(encoding="utf-8"))
                job_type, job_dir = spec["endpoint"]["type"], spec["output_dir"]
            except (OSError, ValueError) as exc:
                raise UsageError(
                    f"{cannot} its job file {path} is unreadable "
                    f"({getattr(exc, 'strerror', None) or exc}); start a new run"
                ) from None
            except (KeyError, TypeError):
                raise UsageError(
                    f"{cannot} its job file {path} is not a job spec (it has no endpoint.type "
                    "or output_dir); start a new run"
                ) from None
            jobs.append(Job(stored.index, stored.job_id, stored.task, job_type, job_dir, spec))
        return Invocation(record.invocation_id, config, record.output_dir, tuple(jobs))

    def auto_export_once(self, invocation_id: str) -> None:
        """`execution.auto_export` for an invocation whose every task has ended without a
        kill, once (a store flag keeps it from repeating): at the end of a foreground run,
        or at the `status` that first sees the end. A failing destination never fails the
        run; what happened is printed on stderr."""
        from evalfleet.exporters import auto_export, auto_export_destinations
        from evalfleet.store import InvocationStore

        with InvocationStore() as store:
            record = store.get(invocation_id)
            if not auto_export_destinations(record.config):
                return
            states = {job.state for job in record.jobs}
            if record.handle.get("auto_exported_at") or not states <= ENDED_STATES:
                return
            store.update_invocation_handle(invocation_id, {"auto_exported_at": time.time()})
        for line in auto_export(record):
            print(line, file=sys.stderr)

    def _run(
        self, invocation: Invocation, jobs: list[Job], options: LaunchOptions, resuming: bool
    ) -> int:
        from evalfleet.contract import clear_failure
        from evalfleet.store import InvocationStore

        for job in jobs:
            clear_failure(self.local_job_dir(invocation, job))
        with InvocationStore() as store, terminate_as_interrupt():
            run = Run(self, invocation, jobs, store, options, resuming)
            if self.foreground:
                run.set_handle({"runner_pid": os.getpid()})
            completed = False
            try:
                self.start(run)
                completed = True
            except BaseException as exc:
                with contextlib.suppress(Exception):  # must not mask the original error
                    self.abandon(run, exc)
                interrupted = isinstance(exc, KeyboardInterrupt)
                reason = KILLED_DETAIL if interrupted else f"not run: {_first_line(exc)}"
                # A backend that lost sight of jobs still running (Lepton refusing a revoked
                # token) leaves them open: status or kill finish them later.
                left_running = getattr(exc, "jobs_still_running", False)
                for stored in [] if left_running else run.open_jobs():
                    store.update_job(
                        stored.job_id,
                        state=(JobState.KILLED if interrupted else JobState.FAILED).value,
                        detail=reason,
                    )
                raise
            finally:
                try:
                    self.finish(run, completed)
                finally:
                    if self.foreground:  # this process no longer runs the invocation
                        run.set_handle({"runner_pid": None})
            record = store.get(invocation.invocation_id)
        wanted = {job.job_id for job in jobs}
        failures = sum(
            job.state != JobState.SUCCESS and job.state not in OPEN_STATES
            for job in record.jobs
            if job.job_id in wanted
        )
        if self.foreground:
            self.auto_export_once(invocation.invocation_id)
        return failures

    def _apply(
        self, record: InvocationRecord, seen: dict[str, Observation], record_changes: bool
    ) -> list[JobStatus]:
        from evalfleet.store import InvocationStore

        rows = []
        with InvocationStore() as store:
            for job in record.jobs:
                observation = seen.get(job.job_id)
                if observation is None:
                    rows.append(_row(record, job, JobState(job.state), job.detail))
                    continue
                state, detail = observation.state, observation.detail
                if observation.exit_code is not None:
                    state, detail = self.ended_state(
                        observation.exit_code, self.collect(record, job)
                    )
                elif state is JobState.SUCCESS:
                    detail = headline(self.collect(record, job)) or detail
                if (
                    record_changes
                    and state is not JobState.UNKNOWN
                    and (state.value, detail) != (job.state, job.detail)
                ):
                    store.update_job(job.job_id, state=state.value, detail=detail)
                rows.append(_row(record, job, state, detail))
        return rows

    def _write_job_files(self, invocation: Invocation, shown_config: JSON) -> None:
        """`config.yaml` (redacted) and every `job.json`, on this machine."""
        import json

        import yaml

        root = make_private_dirs(self.local_root(invocation))
        write_private(root / "config.yaml", yaml.safe_dump(shown_config, sort_keys=False))
        for job in invocation.jobs:
            local = make_private_dirs(self.local_job_dir(invocation, job))
            write_private(local / "job.json", json.dumps(job.spec, indent=2) + "\n")

    def _stored_options(self, record: InvocationRecord) -> LaunchOptions:
        return LaunchOptions(keep_endpoint=bool(record.handle.get("keep_endpoint")))

    def _reload(self, record: InvocationRecord) -> InvocationRecord:
        from evalfleet.store import InvocationStore

        with InvocationStore() as store:
            return store.get(record.invocation_id)


def unknown_statuses(record: InvocationRecord, reason: str) -> list[JobStatus]:
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


def _row(record: InvocationRecord, job: JobRecord, state: JobState, detail: str) -> JobStatus:
    return JobStatus(record.invocation_id, job.job_id, job.task, state, detail)


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text.strip() else type(exc).__name__


def complete_lines(data: bytes, key: str, offsets: dict[str, int]) -> list[str]:
    """The complete lines of `data` (read from `offsets[key]` on); the offset moves past
    them, so a line still being written is read whole next time."""
    complete = data[: data.rfind(b"\n") + 1]
    offsets[key] = offsets.get(key, 0) + len(complete)
    return complete.decode("utf-8", "replace").splitlines()


def _tail_each(
    lines: Iterator[tuple[LogSource, str]], count: int
) -> Iterator[tuple[LogSource, str]]:
    """The last `count` lines of each source, sources in their order."""
    import collections

    kept: dict[str, collections.deque[tuple[LogSource, str]]] = {}
    for source, line in lines:
        kept.setdefault(source.where, collections.deque(maxlen=count)).append((source, line))
    for last in kept.values():
        yield from last


def _read_from(path: str, offset: int) -> bytes:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read()
    except OSError:
        return b""


__all__ = [
    "Executor",
    "LaunchOptions",
    "LogFilter",
    "LogSource",
    "Observation",
    "Run",
    "unknown_statuses",
]
