"""The Python API. The CLI is a thin shell over these functions."""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalfleet.exceptions import (
    ConfigError,
    EngineError,
    EvalFleetError,
    NotAvailableError,
    UsageError,
)


@dataclass(frozen=True)
class RunPlan:
    """A validated config, the invocation planned from it, and the executor's plan."""

    config: dict[str, Any]  # resolved, with defaults, secrets redacted
    invocation: Any  # executors.base.Invocation
    plan: dict[str, Any]
    # One line per launcher key the run accepts and ignores (the CLI prints them once).
    warnings: tuple[str, ...] = ()
    # Values the config holds under secret-looking keys: hidden wherever the plan is shown.
    hidden: frozenset[str] = frozenset()

    def as_dict(self) -> dict[str, Any]:
        return {"config": self.config, "plan": self.plan}


def plan_run(
    config: str | Path | None = None,
    *,
    config_dir: str | Path | None = None,
    config_name: str | None = None,
    overrides: list[str] | None = None,
    tasks: list[str] | None = None,
    invocation_id: str | None = None,
    limit: int | None = None,
) -> RunPlan:
    """Load and validate a config and plan it; contacts nothing and records nothing.
    `limit` (`run --limit N`) caps every task's samples, over the config's own limits."""
    from evalfleet.config import load_config
    from evalfleet.config.redact import redact, scrub, secret_values
    from evalfleet.executors import get_executor
    from evalfleet.planner import plan_invocation, plan_warnings, with_derived_defaults

    loaded = load_config(
        config, config_dir=config_dir, config_name=config_name, overrides=overrides
    )
    model = with_derived_defaults(loaded.model)
    if limit is not None:
        model = _with_limit(model, limit)
    if tasks:
        model = _select_tasks(model, tasks)
    invocation = plan_invocation(model, invocation_id)
    plan = get_executor(model.execution.type).plan(invocation)
    dumped = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    # Values a user put under secret-looking keys are hidden wherever they appear,
    # including inside rendered scripts and base64-free command lines.
    hidden = secret_values(dumped)
    return RunPlan(
        config=scrub(redact(dumped), hidden),
        invocation=invocation,
        plan=scrub(plan, hidden),
        warnings=tuple(plan_warnings(model)),
        hidden=frozenset(hidden),
    )


def _with_limit(model: Any, limit: int) -> Any:
    """Every task's `limit_samples` set to `limit`: evaluation.params's and each task's own
    (which would win over evaluation.params)."""

    def limited(params: Any) -> Any:
        return params.model_copy(update={"limit_samples": limit})

    evaluation = model.evaluation.model_copy(
        update={
            "params": limited(model.evaluation.params),
            "tasks": [
                task.model_copy(update={"params": limited(task.params)})
                for task in model.evaluation.tasks
            ],
        }
    )
    return model.model_copy(update={"evaluation": evaluation})


def _select_tasks(model: Any, wanted: list[str]) -> Any:
    """The configured tasks `wanted` names: as the config spells them, or by what they
    resolve to (`-t ifeval` picks `lm-evaluation-harness.ifeval` and the reverse)."""
    from evalfleet.tasks.catalog import resolve_task_name

    target_type = model.target.api_endpoint.type

    def resolved(name: str, endpoint_type: str | None) -> str | None:
        try:
            return resolve_task_name(name, endpoint_type).name
        except ValueError:
            return None

    configured = model.evaluation.tasks
    chosen = []
    for name in wanted:
        match = next((t for t in configured if t.name == name), None)
        if match is None:
            key = resolved(name, target_type)
            match = next(
                (
                    t for t in configured
                    if key is not None and resolved(t.name, t.endpoint_type or target_type) == key
                ),
                None,
            )  # fmt: skip
        if match is None:
            names = ", ".join(t.name for t in configured)
            raise UsageError(f"--tasks: {name!r} is not in evaluation.tasks (configured: {names})")
        chosen.append(match)
    evaluation = model.evaluation.model_copy(update={"tasks": chosen})
    return model.model_copy(update={"evaluation": evaluation})


def write_plan(run_plan: RunPlan, path: str | Path | None = None) -> Path:
    """Write `plan.json` (config + plan) atomically; by default in the invocation's
    directory on this machine (a remote cluster's output dir is not on this machine: a
    dry run writes nothing there)."""
    from evalfleet.contract.files import make_private_dirs, write_private
    from evalfleet.executors import get_executor

    executor = get_executor(run_plan.plan["executor"])
    default = Path(executor.local_root(run_plan.invocation)) / "plan.json"
    target = Path(path).expanduser() if path else default
    try:
        make_private_dirs(target.parent)
        write_private(target, json.dumps(run_plan.as_dict(), indent=2) + "\n")
    except OSError as exc:
        raise UsageError(
            f"cannot write the plan to {target}: {exc.strerror}; choose a place with --plan-out FILE"
        ) from None
    return target


def save_config(run_plan: RunPlan, directory: str | Path) -> Path:
    """Save the complete config (secrets redacted) as `<directory>/<id>_config.yml`, as
    the launcher's `run --config-output` does; `run --config FILE` reruns it."""
    import yaml

    invocation_id = run_plan.invocation.invocation_id
    target = Path(directory).expanduser() / f"{invocation_id}_config.yml"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(
            f"# The complete config of invocation {invocation_id} (secrets redacted).\n"
            + yaml.safe_dump(run_plan.config, sort_keys=False),
            encoding="utf-8",
        )
    except OSError as exc:
        raise UsageError(f"--config-output: cannot write {target}: {exc.strerror}") from None
    return target


def launch(run_plan: RunPlan, *, keep_endpoint: bool = False) -> int:
    """Create what the plan describes and run it; returns how many tasks did not succeed.

    `keep_endpoint` leaves an endpoint the backend created running after the jobs end.
    """
    from evalfleet.executors import get_executor
    from evalfleet.executors.base import LaunchOptions

    executor = get_executor(run_plan.plan["executor"])
    _check_trusted_commands(run_plan)
    check_before_launch(run_plan)
    if keep_endpoint and not executor.creates_endpoints:
        raise UsageError(
            f"--keep-endpoint: execution.type {executor.name} creates no endpoint to keep"
        )
    options = LaunchOptions(keep_endpoint=keep_endpoint)
    return executor.launch(run_plan.invocation, run_plan.config, options)


def check_before_launch(run_plan: RunPlan) -> None:
    """What a run would otherwise find only once the invocation is recorded (a traceback
    writing its first file, or FAILED jobs): an output directory that cannot be made or
    written, and, where the jobs run here (local), an environment variable they need
    that is not set. Raises ConfigError, one line naming the key."""
    from evalfleet.executors import get_executor

    executor = get_executor(run_plan.plan["executor"])
    _check_output_dir(Path(executor.local_root(run_plan.invocation)))
    executor.check_environment(run_plan.invocation)


def _check_output_dir(root: Path) -> None:
    existing = root
    while not (existing.exists() or existing.is_symlink()) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(
            f"execution.output_dir: {existing} is not a directory (cannot create {root})"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"execution.output_dir: {existing} is not writable (cannot create {root})"
        )


def _check_trusted_commands(run_plan: RunPlan) -> None:
    """A task's pre_cmd/post_cmd runs only when the user says they trust it, as the
    launcher asks (a dry run needs no such say)."""
    from evalfleet.engine.job_commands import TRUST_VARIABLE

    for job in run_plan.invocation.jobs:
        for key in ("pre_cmd", "post_cmd"):
            if job.spec.get(key) and os.environ.get(TRUST_VARIABLE) != "1":
                raise UsageError(
                    f"evaluation.tasks[{job.index}].{key}: runs a shell command; set "
                    f"{TRUST_VARIABLE}=1 if you trust it (as the launcher asks)"
                )


def plan_lines(run_plan: RunPlan) -> list[str]:
    """The dry run's steps as its backend describes them."""
    from evalfleet.executors import get_executor

    return get_executor(run_plan.plan["executor"]).render_plan(run_plan.plan)


def backend_names() -> list[str]:
    from evalfleet.executors.registry import names

    return names()


def logs(
    id_or_prefix: str,
    follow: bool = False,
    *,
    task: str | None = None,
    server: bool = False,
    tail: int | None = None,
) -> Iterator[str]:
    """An invocation's (or one job's, `ID.N`) log lines; `follow` waits for new ones.
    `task`: only that task's log (its configured name, or the part after its last dot when
    that is unique); `server`: only the deployment servers' logs (both: the two);
    `tail`: the last N lines of each log first."""
    from evalfleet.executors.base import LogFilter
    from evalfleet.store import InvocationStore

    with InvocationStore() as store:
        record = store.get(id_or_prefix)
        job_id = store.get_job(id_or_prefix).job_id if "." in id_or_prefix else None
    if task is not None:
        if job_id is not None:
            raise UsageError(
                f"--task: {id_or_prefix} names one job already; give the invocation id"
            )
        task = _task_of(record, task)
    from evalfleet.executors import get_executor

    only = LogFilter(task=task, server=server, tail=tail)
    return get_executor(record.executor).logs(record, job_id, follow, only)


def _task_of(record: Any, name: str) -> str:
    tasks = list(dict.fromkeys(record.tasks))
    if name in tasks:
        return name
    short = [t for t in tasks if t.rsplit(".", 1)[-1] == name.rsplit(".", 1)[-1]]
    if len(short) == 1:
        return short[0]
    raise UsageError(
        f"--task: {name!r} is not a task of invocation {record.invocation_id} "
        f"(its tasks: {', '.join(tasks)})"
    )


def resume(id_or_prefix: str) -> tuple[str, int]:
    """Rerun what did not finish; returns (invocation id, tasks that still failed)."""
    record = get_invocation(id_or_prefix)
    from evalfleet.executors import get_executor

    return record.invocation_id, get_executor(record.executor).resume(record)


def detach(run_plan: RunPlan, argv: list[str], wait_s: float = 30.0) -> str:
    """Start `evalfleet <argv> --invocation-id ID` in its own session, its output in
    `<output_dir>/<id>/logs/run.log`; returns once the invocation is recorded.

    The same on every executor: the background process is a plain foreground `run`, which
    owns the server or endpoint its backend starts and tears it down when the tasks end (a
    backend that returns once its jobs are submitted returns here too)."""
    import sys
    import time

    from evalfleet.contract.files import make_private_dirs, open_private
    from evalfleet.store import InvocationStore

    check_before_launch(run_plan)  # here, not only in the background run: one line now
    invocation_id = run_plan.invocation.invocation_id
    log = Path(run_plan.invocation.output_dir) / "logs" / "run.log"
    make_private_dirs(log.parent)
    command = [sys.executable, "-m", "evalfleet", *argv, "--invocation-id", invocation_id]
    with open_private(log, "ab") as handle, open(os.devnull, "rb") as nothing:
        # posix_spawn, not Popen: the run outlives this process, nobody here waits for it.
        pid = os.posix_spawn(
            sys.executable, command, dict(os.environ), setsid=True,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, nothing.fileno(), 0),
                (os.POSIX_SPAWN_DUP2, handle.fileno(), 1),
                (os.POSIX_SPAWN_DUP2, handle.fileno(), 2),
            ],
        )  # fmt: skip
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        with InvocationStore() as store:
            try:
                store.get(invocation_id)
                return invocation_id
            except EvalFleetError:
                pass
        finished, status = os.waitpid(pid, os.WNOHANG)
        if finished:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
            code = os.waitstatus_to_exitcode(status)
            raise EngineError(f"the background run exited with code {code}: {tail[0]}")
        time.sleep(0.1)
    return invocation_id


def kill(id_or_prefix: str) -> list[str]:
    """Stop an invocation (idempotent): returns what was stopped, empty if nothing ran."""
    record = get_invocation(id_or_prefix)
    from evalfleet.executors import get_executor

    return get_executor(record.executor).kill(record)


def list_runs(
    *, limit: int | None = None, executor: str | None = None, since: float | None = None
) -> list[dict[str, Any]]:
    from evalfleet.store import InvocationStore

    store = InvocationStore()
    try:
        records = store.list_invocations(limit=limit, executor=executor, since=since)
    finally:
        store.close()
    # A damaged row is listed with what is wrong with it (commands on it refuse it).
    return [
        {
            **invocation_summary(record),
            **({"damaged": record.damaged} if record.damaged else _recorded_outcome(record)),
        }
        for record in records
    ]


def _recorded_outcome(record: Any) -> dict[str, Any]:
    """`ls runs`' state and scores from what this machine has (the store, each task's
    results.json): no backend is asked, so a list of many runs stays instant. A job still
    open where only its backend knows how it is going (Slurm, Lepton) leaves the state
    unchecked (`state_checked: false`): `status` asks."""
    from evalfleet.contract import OPEN_STATES, JobState
    from evalfleet.executors._process import process_alive

    states = [job.state for job in record.jobs]
    checked = True
    if any(state in OPEN_STATES for state in states):
        if record.executor == "local":
            # The local runner is a process here: gone, its open jobs did not finish
            # (what `status` then records as FAILED).
            if not process_alive(record.handle.get("runner_pid")):
                states = [JobState.FAILED.value if s in OPEN_STATES else s for s in states]
        else:
            checked = False
    scores = []
    for job in record.jobs:
        if job.state == JobState.SUCCESS.value:
            score = _headline_score(job.output_dir)
            if score is not None:
                scores.append({"task": job.task, **score})
    return {"state": _overall_state(states), "state_checked": checked, "scores": scores}


def _overall_state(states: list[str]) -> str:
    """One word for an invocation: the first of these that any of its jobs is in (ended
    only when all have), SUCCESS when all succeeded."""
    from evalfleet.contract import JobState

    if not states:
        return JobState.UNKNOWN.value
    for state in ("RUNNING", "PENDING", "UNKNOWN", "KILLED", "FAILED"):
        if state in states:
            # A PENDING job beside ended ones waits for its turn in a running invocation.
            if state == "PENDING" and any(s != "PENDING" for s in states):
                return JobState.RUNNING.value
            return state
    return JobState.SUCCESS.value


def _headline_score(job_dir: str) -> dict[str, Any] | None:
    from evalfleet.contract import read_results

    results = read_results(job_dir)
    if results is None:
        return None
    try:
        name = results["headline_metric"]
        metric = results["metrics"][name]
        return {"metric": name, "value": float(metric["value"]), "n": metric.get("n")}
    except (ValueError, KeyError, TypeError):
        return None


def invocation_summary(record: Any) -> dict[str, Any]:
    return {
        "invocation_id": record.invocation_id,
        "created_at": record.created_at,
        "executor": record.executor,
        "deployment_type": record.deployment_type,
        "model": record.model,
        "tasks": list(record.tasks),
        "output_dir": record.output_dir,
    }


def export(ids: list[str], destination: str, overrides: dict[str, Any] | None = None) -> Any:
    """Export the finished tasks of the given invocations; returns an exporters.ExportReport.

    Job states are asked of each invocation's executor first (a task that finished after
    the store last heard of it is exported too); a backend that cannot be asked yet
    leaves the recorded states.
    """
    from evalfleet import exporters

    records: dict[str, Any] = {}
    for id_or_prefix in ids:
        record = get_invocation(id_or_prefix)
        records.setdefault(record.invocation_id, record)
    states: dict[str, dict[str, tuple[str, str]]] = {}
    for record in records.values():
        asked = _asked_states(record)
        if asked is not None:
            states[record.invocation_id] = asked
    return exporters.export(list(records.values()), destination, overrides, states)


def _asked_states(record: Any) -> dict[str, tuple[str, str]] | None:
    """job id -> (state, detail) as the invocation's executor reports them now; None when
    its backend cannot be asked yet (the recorded states stand)."""
    from evalfleet.executors import get_executor

    try:
        rows = get_executor(record.executor).status(record, export=False)
    except NotAvailableError:
        return None
    return {row.job_id: (row.state.value, row.detail) for row in rows}


def finished_results(ids: list[str] | tuple[str, ...]) -> list[Any]:
    """What `export` would export of each invocation `ids` names (exporters.InvocationExport:
    finished tasks' results, the others with the reason), in order, with job states asked
    of each executor first. An invocation named twice is a UsageError."""
    from evalfleet import exporters

    gathered: list[Any] = []
    for id_or_prefix in ids:
        record = get_invocation(id_or_prefix)
        if any(done.invocation_id == record.invocation_id for done in gathered):
            raise UsageError(f"invocation {record.invocation_id} is named twice ({id_or_prefix})")
        gathered.append(exporters.gather(record, _asked_states(record)))
    return gathered


def compare(ids: list[str], force: bool = False) -> tuple[dict[str, Any], list[str]]:
    """(the comparison dict, the task settings that differ) of the invocations `ids`, the
    first the baseline; raises UsageError when settings differ and not `force`."""
    from evalfleet.compare import compare_runs

    return compare_runs(finished_results(ids), force=force)


def sweep(ids: list[str]) -> dict[str, Any]:
    """The models x tasks table (a dict) of the invocations `ids`."""
    from evalfleet.compare import sweep_runs

    return sweep_runs(finished_results(ids))


def get_invocation(id_or_prefix: str) -> Any:
    from evalfleet.store import InvocationStore

    store = InvocationStore()
    try:
        return store.get(id_or_prefix)
    finally:
        store.close()


def status(ids: list[str]) -> list[dict[str, str]]:
    """One row per job, as each invocation's executor reports it (UNKNOWN, never a guess,
    when its backend cannot be asked)."""
    from evalfleet.executors import get_executor
    from evalfleet.store import InvocationStore

    rows: list[dict[str, str]] = []
    for id_or_prefix in ids:
        with InvocationStore() as store:
            record = store.get(id_or_prefix)
            wanted = {store.get_job(id_or_prefix).job_id} if "." in id_or_prefix else None
        found = get_executor(record.executor).status(record)
        rows += [row.as_dict() for row in found if wanted is None or row.job_id in wanted]
    return rows


def task_listing(
    include_packages: bool = True,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`ls tasks`: (the built-in tasks, the framework packages' tasks that are not built in).

    A package's task is listed once, under its launcher name, with its endpoint types, its
    package, whether that package's environment is built here, and whether it asks a judge;
    the launcher's tasks of harnesses evalfleet pins no package for follow, marked so."""
    from evalfleet.tasks.catalog import (
        TASK_CATALOG,
        data_source,
        launcher_index,
        offline_ready,
        runnable,
    )

    builtin: list[dict[str, Any]] = [
        {
            "name": t.name,
            "runs": "built-in",
            "endpoint_type": t.endpoint_type,
            "headline_metric": t.headline_metric,
            "samples": t.samples,
            "reference": t.reference.label if t.reference else "",
            "reference_task": t.reference.harness_task if t.reference else "",
            "differs": t.differs,
            "source": data_source(t.name),
            "offline": offline_ready(t.name),
            "runnable": runnable(t.name),
            "description": t.description,
        }
        for t in TASK_CATALOG.values()
    ]
    if not include_packages:
        return builtin, []
    from evalfleet.harness.environment import is_built
    from evalfleet.harness.frameworks import all_tasks, harnesses

    ready: dict[str, bool] = {}
    packaged: list[dict[str, Any]] = []
    for task in all_tasks():
        if task.qualified_name in TASK_CATALOG:
            continue
        package = task.framework
        if package.requirement not in ready:
            ready[package.requirement] = is_built(package.package, package.version)
        packaged.append(
            {
                "name": task.qualified_name,
                "runs": "package",
                "endpoint_type": ",".join(task.endpoint_types or ("any",)),
                "package": f"{package.package} {package.version}",
                "environment": "built" if ready[package.requirement] else "built on first run",
                "judge": task.needs_judge,
                "image": package.image,
                "description": task.description,
            }
        )
    known = {row["name"] for row in packaged} | set(TASK_CATALOG)
    for harness, tasks in launcher_index().items():
        if harness in harnesses():
            continue
        for name, types in tasks.items():
            if f"{harness}.{name}" not in known:
                packaged.append(
                    {
                        "name": f"{harness}.{name}",
                        "runs": "launcher image only",
                        "endpoint_type": ",".join(types),
                        "package": "none pinned",
                        "environment": "not runnable",
                        "judge": False,
                        "image": "",
                        "description": "",
                    }
                )
    return builtin, packaged


def harness_command(job_spec: dict[str, Any]) -> str:
    """The command a harness job will run, as nemo-evaluator renders it, the proxy's URL
    (known only once it listens) shown as a placeholder."""
    from evalfleet.contract.spec import JobSpec
    from evalfleet.harness.run import preview_command

    return preview_command(JobSpec.model_validate(job_spec))


def evaluate_job(
    job_file: str | Path,
    *,
    rescore: bool = False,
    display: Callable[[Any], Awaitable[None]] | None = None,
) -> tuple[dict[str, Any], int]:
    """Run one job file (`evalfleet eval`). Returns (results, exit code); a failure raises
    its EvalFleetError, its one line kept in the job's `logs/failure.txt` and `eval.log`."""
    from evalfleet.jobs import evaluate_job as run_job_file

    return run_job_file(job_file, rescore=rescore, display=display)
