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
import os
import shlex
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from evalfleet.contract import JSON, Invocation, JobState
from evalfleet.exceptions import BackendUnreachable, ConfigError, DeploymentError, UsageError
from evalfleet.executors.base import Executor, LogSource, Observation, Run, complete_lines
from evalfleet.executors.slurm._servers import JUDGE_HOST_VAR
from evalfleet.executors.slurm._settings import settings
from evalfleet.executors.slurm.bootstrap import shipped_wheel, wheel_plan
from evalfleet.executors.slurm.host import HostUnreachable, SlurmHost
from evalfleet.executors.slurm.render import (
    chain_file_name,
    job_name,
    launcher_differences,
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

if TYPE_CHECKING:
    from evalfleet.config.schema import RunConfig
    from evalfleet.executors.slurm.config import SlurmExecution
    from evalfleet.store import InvocationRecord, JobRecord

KILL_WAIT_S = 60.0
FOLLOW_POLL_S = 2.0


def submit_host(execution: SlurmExecution) -> str:
    return execution.hostname or "localhost"


def submit_prefix(execution: SlurmExecution) -> list[str]:
    """How a submission command reaches the submit host: `sh -c`, or ssh and its options."""
    host = SlurmHost.for_execution(execution)
    return host.ssh_argv() if host.remote else ["sh", "-c"]


def sbatch_line(path: str, options: str = "", env: str = "", reads: str = "") -> str:
    """The shell line that submits `path` from its own directory (what launch runs)."""
    directory = shlex.quote(str(Path(path).parent))
    flags = " ".join(part for part in (env, "sbatch --parsable", options) if part)
    return f"cd {directory} && {reads}{flags} {shlex.quote(path)}"


class SlurmExecutor(Executor):
    name = "slurm"
    foreground = False  # launch returns once the chains are submitted

    def __init__(self) -> None:
        self._submitted: list[str] = []  # Slurm job ids of this launch, cancelled if it fails

    def plan(self, inv: Invocation) -> JSON:
        """The batch scripts and how each is submitted; contacts nothing.

        Each script is written to `<output_dir>/<name>` on the submit host and submitted
        by `command`: the exact argv launch runs (`submit.command` + the sbatch line).
        """
        execution = settings(inv.config)
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
            "executor": self.name,
            "invocation_id": inv.invocation_id,
            "output_dir": inv.output_dir,
            "submit": {"host": submit_host(execution), "command": prefix},
            "scripts": scripts,
            "launcher_differences": launcher_differences(inv.config),
            # The planner's own evalfleet, copied next to the scripts (None: the cluster's).
            "evalfleet_wheel": None if execution.evalfleet_command else wheel_plan(inv),
        }

    @staticmethod
    def render_plan(plan: JSON) -> list[str]:
        lines = [
            f"# differs from NeMo Evaluator Launcher: {line}"
            for line in plan.get("launcher_differences", [])
        ]
        wheel = plan.get("evalfleet_wheel")
        if wheel:
            lines.append(
                f"# evalfleet {wheel['version']} ({wheel['bytes']:,} bytes, sha256 "
                f"{wheel['sha256'][:12]}…) is copied to {wheel['copied_to']} and installed "
                f"once in {wheel['installed_in']}"
            )
        for script in plan["scripts"]:
            command = shlex.join(script["command"])
            lines.append(
                f"\n# {script['name']}  (jobs {', '.join(script['job_ids'])}; submit: {command})"
            )
            lines.append(script["text"].rstrip())
        return lines

    def endpoint_base(self, config: RunConfig, port: int) -> tuple[str, str | None]:
        """Several instances (`execution.num_instances`): the tasks call their proxy."""
        execution = settings(config)
        if execution.num_instances > 1:
            return f"http://127.0.0.1:{execution.proxy.config.haproxy_port}", None
        return super().endpoint_base(config, port)

    def judge_endpoint_base(self, config: RunConfig, port: int) -> tuple[str, str | None]:
        judge = config.judge_deployment
        if judge is not None and judge.num_nodes:
            # On nodes of its own: the batch script exports the judge node's address and
            # `evalfleet eval` expands it in job.json (contract.spec.read_job).
            return f"http://${{{JUDGE_HOST_VAR}}}:{port}", None
        return f"http://127.0.0.1:{port}", None

    def invocation_dir(self, config: RunConfig, invocation_id: str) -> str:
        execution = settings(config)
        if not execution.remote_output_dir():
            return super().invocation_dir(config, invocation_id)
        base = os.path.expanduser(execution.output_dir)
        if not base.startswith("/"):
            raise ConfigError(
                f"execution.output_dir: must be an absolute path on the cluster when "
                f"execution.hostname is {execution.hostname!r} (got {base!r})"
            )
        return f"{base.rstrip('/')}/{invocation_id}"

    def local_root(self, invocation: Invocation) -> str:
        execution = settings(invocation.config)
        if not execution.remote_output_dir():
            return invocation.output_dir
        return str(_local_dir(execution, invocation.invocation_id))

    # ------------------------------------------------------------------------- launch

    def launch_handles(self, inv: Invocation) -> tuple[JSON, list[JSON]]:
        scripts = render_scripts(inv)
        chain_of_job = {job_id: script.name for script in scripts for job_id in script.job_ids}
        job_names = {script.name: _job_name(inv, script.name) for script in scripts}
        handle = {
            "host": SlurmHost.for_execution(settings(inv.config)).hostname,
            "job_names": job_names,
            "slurm_jobs": {name: [] for name in job_names},
        }
        if settings(inv.config).remote_output_dir():
            handle["local_dir"] = self.local_root(inv)
        return handle, [{"chain": chain_of_job[job.job_id]} for job in inv.jobs]

    def start(self, run: Run) -> None:
        """Write the scripts to the submit host and `sbatch` each (a resume: forget the
        unfinished tasks' exit codes and resubmit their chains); every job id is recorded."""
        inv = run.invocation
        host = SlurmHost.for_execution(settings(inv.config))
        chain_of_job = {job.job_id: job.handle["chain"] for job in run.record().jobs}
        try:
            if run.resuming:
                secrets, _ = _secrets_from_environment(run.record())
                stale = [
                    f"{job.output_dir}/logs/{name}"
                    for job in run.jobs
                    for name in ("exit_code", "slurm_job")
                ]
                host.check("rm -f " + " ".join(shlex.quote(path) for path in stale), "rm")
                if host.remote:  # the copies of the last attempt, or `collect` keeps them
                    for job in run.jobs:
                        local = Path(self.local_job_dir(inv, job))
                        for name in ("logs/exit_code", "results.json"):
                            (local / name).unlink(missing_ok=True)
                paths = {name: f"{inv.output_dir}/{name}" for name in _chains_of(run, chain_of_job)}
            else:
                plan = self.plan(inv)
                files: dict[str, str | bytes] = {
                    "config.yaml": (Path(self.local_root(inv)) / "config.yaml").read_text(),
                    **{script["name"]: script["text"] for script in plan["scripts"]},
                }
                if plan["evalfleet_wheel"]:  # the scripts install it: it travels with them
                    built = shipped_wheel()
                    files[built.filename] = built.data
                _write_files(host, inv.output_dir, files)
                secrets = secret_env(inv.config)
                paths = {script["name"]: script["path"] for script in plan["scripts"]}
            known = dict(run.record().handle.get("slurm_jobs", {}))
            for chain, path in paths.items():
                slurm_id = _sbatch(host, path, secrets)
                self._submitted.append(slurm_id)
                known[chain] = [*known.get(chain, []), slurm_id]
                run.set_handle({"slurm_jobs": known})
                detail = (
                    f"resumed: Slurm job {slurm_id}" if run.resuming else f"Slurm job {slurm_id}"
                )
                for job in run.jobs:
                    if chain_of_job[job.job_id] == chain:
                        run.update(job, JobState.PENDING, detail)
        except HostUnreachable as exc:
            raise HostUnreachable(f"cannot submit to {host.hostname}: {exc}") from None
        except OSError as exc:
            raise DeploymentError(f"cannot write the batch scripts: {exc.strerror}") from None

    def abandon(self, run: Run, error: BaseException) -> None:
        host = SlurmHost.for_execution(settings(run.invocation.config))
        _cancel_quietly(host, self._submitted)

    def check_resumable(self, record: InvocationRecord) -> None:
        _, missing = _secrets_from_environment(record)
        if missing:
            raise UsageError(
                f"cannot resume {record.invocation_id}: the values of {', '.join(missing)} are "
                "never stored; export them in this shell and resume again"
            )

    # ------------------------------------------------------------------------- status

    def observe(self, record: InvocationRecord, runner_alive: bool) -> dict[str, Observation]:
        """Live from the submit host, in one call; a chain's new job ids are recorded, and
        a chain whose last job was preempted without a successor is continued."""
        host = _host(record)
        try:
            probe = _probe(host, record)
        except HostUnreachable as exc:
            raise BackendUnreachable(f"cannot reach {host.hostname}: {exc}") from None
        _continue_preempted(host, record, probe)
        from evalfleet.store import InvocationStore

        with InvocationStore() as store:
            store.update_invocation_handle(
                record.invocation_id,
                {"slurm_jobs": {name: view.job_ids for name, view in probe.chains.items()}},
            )
        seen = {}
        for job in record.jobs:
            chain = probe.chains.get(job.handle.get("chain", ""))
            files = probe.tasks.get(job.job_id)
            if files is not None and files.exit_code is not None and files.exit_code.isdigit():
                seen[job.job_id] = Observation(JobState.FAILED, exit_code=int(files.exit_code))
                continue
            decided = task_state(chain, files) if chain and files else None
            if decided is not None:
                seen[job.job_id] = Observation(*decided)
            elif not JobState(job.state).is_terminal:
                reason = (
                    "Slurm no longer lists its jobs and the cluster has no accounting"
                    if not probe.accounting
                    else "Slurm has no record of its jobs"
                )
                seen[job.job_id] = Observation(
                    JobState.UNKNOWN, f"{reason} (last recorded state: {job.state})"
                )
        return seen

    def collect(self, record: InvocationRecord, job: JobRecord) -> str:
        return str(_copy_back(_host(record), record, job))

    # ------------------------------------------------------------------------- kill

    def cancel(self, record: InvocationRecord, wait_s: float = KILL_WAIT_S) -> list[str]:
        """Cancel every job of every chain (those the store knows, those the chain files
        list, those squeue finds by name) until none is pending or running; idempotent.
        The batch script's trap stops the model server, the judge server and the task on
        the node."""
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

    # ------------------------------------------------------------------------- logs

    def log_sources(
        self, record: InvocationRecord, jobs: list[JobRecord], whole: bool
    ) -> list[LogSource]:
        """The Slurm output of every job of the chain(s), the server logs (the model's and
        the judge's), each eval.log."""
        try:
            probe = _probe(_host(record), record)
        except HostUnreachable as exc:
            raise DeploymentError(f"cannot read the logs: {exc}") from None
        chains = {job.handle.get("chain", "") for job in jobs}
        return _log_sources(record, jobs, chains, probe)

    def read_logs(
        self, record: InvocationRecord, sources: list[LogSource], offsets: dict[str, int]
    ) -> Iterator[tuple[LogSource, str]]:
        host = _host(record)
        if not host.remote:  # the files are here: the flow's own reader
            yield from super().read_logs(record, sources, offsets)
            return
        for source, data in _read_remote(host, sources, offsets):
            for line in complete_lines(data, source.where, offsets):
                yield source, line

    def active(self, record: InvocationRecord) -> bool:
        try:
            probe = _probe(_host(record), record)
        except HostUnreachable:
            return False
        return any(view.active for view in probe.chains.values())


def _chains_of(run: Run, chain_of_job: dict[str, str]) -> list[str]:
    return sorted({chain_of_job[job.job_id] for job in run.jobs})


# ----------------------------------------------------------------------------- helpers


def _host(record: InvocationRecord) -> SlurmHost:
    execution = record.config.get("execution", {})
    return SlurmHost(
        execution.get("hostname"), execution.get("username"), execution.get("ssh_config")
    )


def _job_dir(record: InvocationRecord, job: JobRecord) -> str:
    """A task's directory on the cluster (the store holds where its files are here)."""
    return f"{record.output_dir}/{job.task}"


def _local_dir(execution: SlurmExecution, invocation_id: str) -> Path:
    return Path(execution.local_output_dir).expanduser().absolute() / invocation_id


def _job_name(inv: Invocation, script_name: str) -> str:
    """The `--job-name` the script carries: every job of its chain has it."""
    prefix = f"evalfleet-{inv.invocation_id}"
    task = script_name.removesuffix(".sbatch")[len(prefix) + 1 :]
    return job_name(settings(inv.config).job_name_prefix, inv.invocation_id, task or None)


def _write_files(host: SlurmHost, directory: str, files: dict[str, str | bytes]) -> None:
    """Write `files` into `directory` on the host, in one call (a tar stream, over ssh for
    a remote host)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, text in files.items():
            data = text.encode("utf-8") if isinstance(text, str) else text
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


def _continue_preempted(host: SlurmHost, record: InvocationRecord, probe: Probe) -> None:
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


def _secrets_from_environment(record: InvocationRecord) -> tuple[dict[str, str], list[str]]:
    """The secret env vars a resubmission needs, from this process's environment (the
    store holds only their names); and the names that are not set here."""
    import os

    from evalfleet.config.schema import RunConfig

    names = sorted(secret_env(RunConfig.model_validate(record.config)))
    found = {name: os.environ[name] for name in names if name in os.environ}
    return found, [name for name in names if name not in found]


def _known_ids(record: InvocationRecord) -> dict[str, list[str]]:
    return {name: list(ids) for name, ids in record.handle.get("slurm_jobs", {}).items()}


def _probe(host: SlurmHost, record: InvocationRecord) -> Probe:
    chains = _known_ids(record)
    command = probe_command(
        {name: f"{record.output_dir}/{chain_file_name(name)}" for name in chains},
        list(record.handle.get("job_names", {}).values()) or ["-"],
        sorted({i for ids in chains.values() for i in ids}),
        {job.job_id: f"{_job_dir(record, job)}/logs" for job in record.jobs},
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


def _copy_back(host: SlurmHost, record: InvocationRecord, job: JobRecord) -> Path:
    """Where an ended task's files are on this machine (copied once from a remote host)."""
    local_root = Path(record.handle.get("local_dir") or ".")
    if not host.remote or not record.handle.get("local_dir"):
        return Path(job.output_dir)
    local = local_root / job.task
    if (local / "results.json").is_file() or (local / "logs" / "exit_code").is_file():
        return local
    parent, name = record.output_dir, job.task
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


def _log_sources(
    record: InvocationRecord, jobs: list[JobRecord], chains: set[str], probe: Probe
) -> list[LogSource]:
    sources = []
    for chain in sorted(chains):
        view = probe.chains.get(chain)
        # A chain of one task (job_per_task) is that task's batch output.
        tasks = {job.task for job in record.jobs if job.handle.get("chain", "") == chain}
        task = next(iter(tasks)) if len(tasks) == 1 else None
        for slurm_id in view.job_ids if view else []:
            path = f"{record.output_dir}/slurm-{slurm_id}.out"
            sources.append(LogSource(f"slurm {slurm_id}", path, task=task))
    per_task = record.config.get("execution", {}).get("job_per_task", False)
    servers = [("server", "server")] if record.deployment_type != "none" else []
    if record.config.get("judge_deployment"):
        servers.append(("judge server", "judge_server"))
    for what, name in servers:
        if per_task:
            sources += [
                LogSource(
                    f"{j.task} {what}",
                    f"{_job_dir(record, j)}/logs/{name}.log",
                    task=j.task,
                    server=True,
                )
                for j in jobs
            ]
        else:
            path = f"{record.output_dir}/logs/{name}.log"
            sources.append(LogSource(what, path, server=True))
    sources += [
        LogSource(job.task, f"{_job_dir(record, job)}/logs/eval.log", task=job.task) for job in jobs
    ]
    return sources


def _read_remote(
    host: SlurmHost, sources: list[LogSource], offsets: dict[str, int]
) -> Iterator[tuple[LogSource, bytes]]:
    """What each source holds past its offset, in one ssh call (base64, a section each)."""
    import base64

    command = "\n".join(
        f"echo @@{index}; tail -c +{offsets.get(source.where, 0) + 1} "
        f"{shlex.quote(source.where)} 2>/dev/null | base64 | tr -d '\\n'; echo"
        for index, source in enumerate(sources)
    )
    try:
        out = host.run(command).stdout.decode()
    except HostUnreachable:
        return
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("@@") and line[2:].isdigit() and i + 1 < len(lines):
            yield sources[int(line[2:])], base64.b64decode(lines[i + 1])
