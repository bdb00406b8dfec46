"""The Slurm executor: submits an invocation's batch scripts and watches their jobs.

One batch script per invocation (or per task with `job_per_task`) is written to the
invocation's output dir on the submit host and submitted with `sbatch` (locally, or over
ssh). Each script is the head of a *chain*: near its time limit a job queues the next one
(`--dependency=afternotok`), see `templates/batch.sh.j2`. The store records every Slurm job
id of every chain; `status` reads the chains' states and each task's `logs/exit_code` from
the host in one call; `kill` cancels every job of every chain until none is left.
"""

from __future__ import annotations

import contextlib
import io
import json
import shlex
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from evalfleet.exceptions import DeploymentError, UsageError
from evalfleet.executors.base import Invocation, JobState, JobStatus, unknown_statuses
from evalfleet.executors.slurm.host import HostUnreachable, SlurmHost
from evalfleet.executors.slurm.render import (
    chain_file_name,
    job_name,
    render_scripts,
    secret_env,
    walltime_seconds,
)
from evalfleet.executors.slurm.states import (
    Probe,
    TaskFiles,
    next_link,
    parse_probe,
    probe_command,
    task_state,
)

KILL_WAIT_S = 60.0
FOLLOW_POLL_S = 2.0


def submit_host(execution: Any) -> str:
    return execution.hostname or "localhost"


def submit_prefix(execution: Any) -> list[str]:
    """How a submission command reaches the submit host: `sh -c`, or ssh and its options."""
    host = SlurmHost.for_execution(execution)
    return host.ssh_argv() if host.remote else ["sh", "-c"]


def sbatch_line(path: str, options: str = "", env: str = "", reads: str = "") -> str:
    """The shell line that submits `path` from its own directory (what launch runs)."""
    directory = shlex.quote(str(Path(path).parent))
    flags = " ".join(part for part in (env, "sbatch --parsable", options) if part)
    return f"cd {directory} && {reads}{flags} {shlex.quote(path)}"


class SlurmExecutor:
    def plan(self, inv: Invocation) -> dict[str, Any]:
        """The batch scripts and how each is submitted; contacts nothing.

        Each script is written to `<output_dir>/<name>` on the submit host and submitted
        by `command`: the exact argv launch runs (`submit.command` + the sbatch line).
        """
        execution = inv.config.execution
        prefix = submit_prefix(execution)
        scripts = []
        for script in render_scripts(inv):
            path = f"{inv.output_dir}/{script.name}"
            scripts.append(
                {
                    "name": script.name,
                    "path": path,
                    "job_ids": list(script.job_ids),
                    "command": [*prefix, sbatch_line(path)],
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

    # ------------------------------------------------------------------------- launch

    def launch(self, inv: Invocation, shown_config: dict[str, Any]) -> int:
        """Write the scripts to the submit host, `sbatch` each, record every job id.

        Returns 0 once submitted (the jobs run on the cluster; `status` follows them). A
        refused submission cancels what was already submitted and raises DeploymentError
        quoting sbatch's own message.
        """
        import yaml

        from evalfleet.store import InvocationStore, NewJob

        execution = inv.config.execution
        host = SlurmHost.for_execution(execution)
        plan = self.plan(inv)
        config_text = yaml.safe_dump(shown_config, sort_keys=False)
        local_dir = _local_dir(execution, inv.invocation_id) if host.remote else None
        files = {"config.yaml": config_text, **{s["name"]: s["text"] for s in plan["scripts"]}}
        chain_of_job = {job_id: s["name"] for s in plan["scripts"] for job_id in s["job_ids"]}
        job_names = {s["name"]: _job_name(inv, s["name"]) for s in plan["scripts"]}
        with InvocationStore() as store:
            inv.record_in(
                store,
                "slurm",
                shown_config,
                [
                    NewJob(
                        task=job.task,
                        output_dir=job.output_dir,
                        handle={"chain": chain_of_job[job.job_id]},
                    )
                    for job in inv.jobs
                ],
            )
            store.update_invocation_handle(
                inv.invocation_id,
                {
                    "host": host.hostname,
                    "job_names": job_names,
                    "slurm_jobs": {name: [] for name in job_names},
                    **({"local_dir": str(local_dir)} if local_dir else {}),
                },
            )
            submitted: dict[str, list[str]] = {name: [] for name in job_names}
            try:
                if local_dir is not None:
                    local_dir.mkdir(parents=True, exist_ok=True)
                    (local_dir / "config.yaml").write_text(config_text, encoding="utf-8")
                _write_files(host, inv.output_dir, files)
                secrets = secret_env(inv.config)
                for script in plan["scripts"]:
                    submitted[script["name"]].append(_sbatch(host, script["path"], secrets))
                    store.update_invocation_handle(inv.invocation_id, {"slurm_jobs": submitted})
            except HostUnreachable as exc:
                _cancel_quietly(host, [i for ids in submitted.values() for i in ids])
                for job in inv.jobs:
                    store.update_job(job.job_id, state="FAILED", detail=f"not submitted: {exc}")
                raise HostUnreachable(f"cannot submit to {host.hostname}: {exc}") from None
            except (DeploymentError, OSError) as exc:
                _cancel_quietly(host, [i for ids in submitted.values() for i in ids])
                message = str(exc) if isinstance(exc, DeploymentError) else exc.strerror
                for job in inv.jobs:
                    store.update_job(job.job_id, state="FAILED", detail=f"not submitted: {message}")
                if isinstance(exc, DeploymentError):
                    raise
                raise DeploymentError(f"cannot write the batch scripts: {message}") from None
            for job in inv.jobs:
                chain = chain_of_job[job.job_id]
                store.update_job(
                    job.job_id, state="PENDING", detail=f"Slurm job {submitted[chain][0]}"
                )
        return 0

    # ------------------------------------------------------------------------- status

    def status(self, record: Any) -> list[JobStatus]:
        """Live from the submit host; UNKNOWN (never FAILED) when it cannot be asked.
        What it learns is written back to the store, and a remote task's finished results
        are copied back to `execution.local_output_dir`."""
        host = _host(record)
        try:
            probe = _probe(host, record)
        except HostUnreachable as exc:
            return unknown_statuses(record, f"cannot reach {host.hostname}: {exc}")
        rows = []
        from evalfleet.store import InvocationStore

        _continue_preempted(host, record, probe)
        with InvocationStore() as store:
            store.update_invocation_handle(
                record.invocation_id,
                {"slurm_jobs": {name: view.job_ids for name, view in probe.chains.items()}},
            )
            for job in record.jobs:
                chain = probe.chains.get(job.handle.get("chain", ""))
                files = probe.tasks.get(job.job_id)
                decided = task_state(chain, files) if chain and files else None
                if decided is None:
                    if job.state in ("SUCCESS", "FAILED", "KILLED"):
                        decided = (job.state, job.detail)
                    else:
                        reason = (
                            "Slurm no longer lists its jobs and the cluster has no accounting"
                            if not probe.accounting
                            else "Slurm has no record of its jobs"
                        )
                        rows.append(
                            JobStatus(
                                record.invocation_id, job.job_id, job.task, JobState.UNKNOWN,
                                f"{reason} (last recorded state: {job.state})",
                            )
                        )  # fmt: skip
                        continue
                state, detail = decided
                if state == "SUCCESS":
                    local = _copy_back(host, record, job)
                    detail = _headline(local) or detail
                if (state, detail) != (job.state, job.detail):
                    store.update_job(job.job_id, state=state, detail=detail)
                rows.append(
                    JobStatus(record.invocation_id, job.job_id, job.task, JobState(state), detail)
                )
        return rows

    # ------------------------------------------------------------------------- kill

    def kill(self, record: Any, wait_s: float = KILL_WAIT_S) -> list[str]:
        """Cancel every job of every chain (those the store knows, those the chain files
        list, those squeue finds by name) until none is pending or running; idempotent.
        The batch script's trap stops the model server and the task on the node."""
        host = _host(record)
        cancelled: list[str] = []
        deadline = time.monotonic() + wait_s
        while True:
            probe = _probe(host, record)
            active = sorted({job for view in probe.chains.values() for job in view.active})
            if not active:
                break
            fresh = [job for job in active if job not in cancelled]
            if fresh:
                result = host.run("scancel " + " ".join(shlex.quote(j) for j in fresh))
                if result.returncode != 0:
                    _raise_unless_gone(result, host)
                cancelled += fresh
            if time.monotonic() > deadline:
                raise DeploymentError(
                    f"Slurm jobs {', '.join(active)} still active {wait_s:g} s after scancel"
                )
            time.sleep(0.5)
        return [f"Slurm job {job}" for job in cancelled]

    # ------------------------------------------------------------------------- resume

    def resume(self, record: Any) -> int:
        """Resubmit every chain with a task that did not succeed; each task's response
        cache makes the rerun cheap, and tasks that succeeded are not run again."""
        host = _host(record)
        statuses = self.status(record)
        if any(row.state == JobState.UNKNOWN for row in statuses):
            raise DeploymentError(
                f"cannot resume {record.invocation_id}: its state is unknown ("
                + next(r.detail for r in statuses if r.state == JobState.UNKNOWN)
                + ")"
            )
        if any(row.state in (JobState.PENDING, JobState.RUNNING) for row in statuses):
            raise UsageError(
                f"invocation {record.invocation_id} is still running; kill it first or wait"
            )
        todo = [row for row in statuses if row.state != JobState.SUCCESS]
        if not todo:
            raise UsageError(f"nothing to resume: every task of {record.invocation_id} succeeded")
        jobs = {job.job_id: job for job in record.jobs}
        chains = sorted({jobs[row.job_id].handle["chain"] for row in todo})
        # Forget the unfinished tasks' exit codes, so that the scripts run them again.
        stale = [
            f"{jobs[row.job_id].output_dir}/logs/{name}"
            for row in todo
            for name in ("exit_code", "slurm_job")
        ]
        secrets, missing = _secrets_from_environment(record)
        if missing:
            raise UsageError(
                f"cannot resume {record.invocation_id}: the values of {', '.join(missing)} are "
                "never stored; export them in this shell and resume again"
            )
        host.check("rm -f " + " ".join(shlex.quote(path) for path in stale), "rm")
        from evalfleet.store import InvocationStore

        with InvocationStore() as store:
            known = dict(store.get(record.invocation_id).handle.get("slurm_jobs", {}))
            for chain in chains:
                job_id = _sbatch(host, f"{record.output_dir}/{chain}", secrets)
                known[chain] = [*known.get(chain, []), job_id]
                store.update_invocation_handle(record.invocation_id, {"slurm_jobs": known})
                for row in todo:
                    if jobs[row.job_id].handle["chain"] == chain:
                        store.update_job(
                            row.job_id, state="PENDING", detail=f"resumed: Slurm job {job_id}"
                        )
        return 0

    # ------------------------------------------------------------------------- logs

    def logs(self, record: Any, job_id: str | None, follow: bool) -> Iterator[str]:
        """The Slurm output of every job of the chain(s), the server log and each task's
        eval.log, prefixed with their source; `follow` waits for new lines until every
        chain has ended."""
        host = _host(record)
        jobs = [job for job in record.jobs if job_id is None or job.job_id == job_id]
        chains = {job.handle.get("chain", "") for job in jobs}
        offsets: dict[str, int] = {}
        while True:
            try:
                probe = _probe(host, record)
            except HostUnreachable as exc:
                raise DeploymentError(f"cannot read the logs: {exc}") from None
            sources = _log_sources(record, jobs, chains, probe)
            fresh = False
            for name, _path, data in _read_new(host, sources, offsets):
                for line in data.decode("utf-8", "replace").splitlines():
                    fresh = True
                    yield f"[{name}] {line}"
            running = any(probe.chains[c].active for c in chains if c in probe.chains)
            if not follow or (not fresh and not running):
                return
            if not fresh:
                time.sleep(FOLLOW_POLL_S)


# ----------------------------------------------------------------------------- helpers


def _host(record: Any) -> SlurmHost:
    execution = record.config.get("execution", {})
    return SlurmHost(
        execution.get("hostname"), execution.get("username"), execution.get("ssh_config")
    )


def _local_dir(execution: Any, invocation_id: str) -> Path:
    return Path(execution.local_output_dir).expanduser().absolute() / invocation_id


def _job_name(inv: Invocation, script_name: str) -> str:
    """The `--job-name` the script carries: every job of its chain has it."""
    prefix = f"evalfleet-{inv.invocation_id}"
    task = script_name.removesuffix(".sbatch")[len(prefix) + 1 :]
    return job_name(inv.config.execution.job_name_prefix, inv.invocation_id, task or None)


def _write_files(host: SlurmHost, directory: str, files: dict[str, str]) -> None:
    """Write `files` into `directory` on the host, in one call (a tar stream)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, text in files.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if name.endswith(".sbatch") else 0o644
            info.mtime = int(time.time())
            archive.addfile(info, io.BytesIO(data))
    d = shlex.quote(directory)
    host.check(f"mkdir -p {d} && tar -xf - -C {d}", "writing the batch scripts", buffer.getvalue())


def _sbatch(
    host: SlurmHost,
    path: str,
    secrets: dict[str, str],
    options: str = "",
    env: str = "",
) -> str:
    """Submit `path` (its directory as the working dir); returns the Slurm job id.

    `secrets` reach sbatch's environment through its stdin (`read`), so their values are
    on no command line and no disk; Slurm hands the environment on to the job."""
    reads = "".join(f"IFS= read -r {name} && export {name} && " for name in secrets)
    stdin = "".join(f"{value}\n" for value in secrets.values()).encode()
    out = host.check(sbatch_line(path, options, env, reads), "sbatch", stdin)
    job_id = out.decode().strip().splitlines()[-1].split(";")[0] if out.strip() else ""
    if not job_id.split("_")[0].isdigit():
        raise DeploymentError(f"sbatch on {host.hostname} printed no job id: {out!r}")
    return job_id


def _continue_preempted(host: SlurmHost, record: Any, probe: Probe) -> None:
    """A job preempted without being requeued by Slurm (PreemptMode=CANCEL) gets no
    warning, so it cannot queue its successor: the next status does, within max_walltime."""
    execution = record.config.get("execution", {})
    walltime = walltime_seconds(execution.get("walltime", "01:00:00"))
    budget = walltime_seconds(execution.get("max_walltime") or execution.get("walltime"))
    for name, view in probe.chains.items():
        unfinished = [
            job
            for job in record.jobs
            if job.handle.get("chain") == name
            and (probe.tasks.get(job.job_id) or TaskFiles()).exit_code is None
        ]
        step = next_link(view, walltime, budget)
        if step is None or not unfinished:
            continue
        link, minutes = step
        preempted = view.latest
        secrets, missing = _secrets_from_environment(record)
        if missing:
            continue  # the preempted job shows FAILED; resume says what to export
        try:
            job_id = _sbatch(
                host,
                f"{record.output_dir}/{name}",
                secrets,
                f"--time={minutes}",
                f"EVALFLEET_CHAIN_LINK={link}",
            )
        except DeploymentError:
            continue  # shown as the preempted job's FAILED; resume can still continue it
        view.job_ids.append(job_id)
        view.links[job_id] = link
        view.states[job_id] = ("PENDING", f"continues preempted job {preempted}")


def _secrets_from_environment(record: Any) -> tuple[dict[str, str], list[str]]:
    """The secret env vars a resubmission needs, from this process's environment (the
    store holds only their names); and the names that are not set here."""
    import os

    from evalfleet.config.schema import RunConfig

    names = sorted(secret_env(RunConfig.model_validate(record.config)))
    found = {name: os.environ[name] for name in names if name in os.environ}
    return found, [name for name in names if name not in found]


def _known_ids(record: Any) -> dict[str, list[str]]:
    return {name: list(ids) for name, ids in record.handle.get("slurm_jobs", {}).items()}


def _probe(host: SlurmHost, record: Any) -> Probe:
    chains = _known_ids(record)
    command = probe_command(
        {name: f"{record.output_dir}/{chain_file_name(name)}" for name in chains},
        list(record.handle.get("job_names", {}).values()) or ["-"],
        sorted({i for ids in chains.values() for i in ids}),
        {job.job_id: f"{job.output_dir}/logs" for job in record.jobs},
    )
    result = host.run(command)
    text = result.stdout.decode("utf-8", "replace")
    probe = parse_probe(text, chains, record.handle.get("job_names", {}))
    if probe.squeue_error:
        raise HostUnreachable(probe.squeue_error)
    if "@@evalfleet end" not in text:
        raise HostUnreachable(f"the status query was cut short (exit {result.returncode})")
    return probe


def _raise_unless_gone(result: subprocess.CompletedProcess[bytes], host: SlurmHost) -> None:
    """scancel of a job that just ended is not an error; anything else is."""
    text = result.stderr.decode("utf-8", "replace")
    lines = [line for line in text.splitlines() if line.strip()]
    benign = ("already completing or completed", "Invalid job id")
    if all(any(word in line for word in benign) for line in lines):
        return
    from evalfleet.executors.slurm.host import first_message

    raise DeploymentError(f"scancel failed on {host.hostname}: {first_message(text)}")


def _cancel_quietly(host: SlurmHost, job_ids: list[str]) -> None:
    if not job_ids:
        return
    with contextlib.suppress(HostUnreachable):
        host.run("scancel " + " ".join(shlex.quote(j) for j in job_ids))


def _copy_back(host: SlurmHost, record: Any, job: Any) -> Path:
    """Where a finished task's files are on this machine (copied once from a remote host)."""
    if not host.remote:
        return Path(job.output_dir)
    local_root = Path(record.handle.get("local_dir") or ".")
    local = local_root / Path(job.output_dir).name
    if (local / "results.json").is_file():
        return local
    parent, name = str(Path(job.output_dir).parent), Path(job.output_dir).name
    try:
        result = host.run(f"tar -C {shlex.quote(parent)} -cf - {shlex.quote(name)}")
    except HostUnreachable:
        return local
    if result.returncode == 0:
        local_root.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["tar", "-xf", "-", "-C", str(local_root)],
            input=result.stdout,
            capture_output=True,
            check=False,
        )
    return local


def _headline(output_dir: Path) -> str:
    try:
        results = json.loads((output_dir / "results.json").read_text())
        name = results["headline_metric"]
        metric = results["metrics"][name]
        return f"{name} {metric['value']:.4f} ± {metric['stderr']:.4f} (n={metric['n']})"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def _log_sources(
    record: Any, jobs: list[Any], chains: set[str], probe: Probe
) -> list[tuple[str, str]]:
    sources = []
    for chain in sorted(chains):
        view = probe.chains.get(chain)
        for slurm_id in view.job_ids if view else []:
            sources.append((f"slurm {slurm_id}", f"{record.output_dir}/slurm-{slurm_id}.out"))
    per_task = record.config.get("execution", {}).get("job_per_task", False)
    if record.deployment_type != "none":
        if per_task:
            sources += [(f"{j.task} server", f"{j.output_dir}/logs/server.log") for j in jobs]
        else:
            sources.append(("server", f"{record.output_dir}/logs/server.log"))
    sources += [(job.task, f"{job.output_dir}/logs/eval.log") for job in jobs]
    return sources


def _read_new(
    host: SlurmHost, sources: list[tuple[str, str]], offsets: dict[str, int]
) -> Iterator[tuple[str, str, bytes]]:
    """The complete new lines of each source since the last call (offsets are updated)."""
    if not host.remote:
        for name, path in sources:
            try:
                with open(path, "rb") as handle:
                    handle.seek(offsets.get(path, 0))
                    data = handle.read()
            except OSError:
                continue
            complete = data[: data.rfind(b"\n") + 1]
            offsets[path] = offsets.get(path, 0) + len(complete)
            if complete:
                yield name, path, complete
        return
    import base64

    command = "\n".join(
        f"echo @@{index}; tail -c +{offsets.get(path, 0) + 1} {shlex.quote(path)} 2>/dev/null"
        " | base64 | tr -d '\\n'; echo"
        for index, (_, path) in enumerate(sources)
    )
    try:
        out = host.run(command).stdout.decode()
    except HostUnreachable:
        return
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("@@") and line[2:].isdigit() and i + 1 < len(lines):
            name, path = sources[int(line[2:])]
            data = base64.b64decode(lines[i + 1])
            complete = data[: data.rfind(b"\n") + 1]
            offsets[path] = offsets.get(path, 0) + len(complete)
            if complete:
                yield name, path, complete
