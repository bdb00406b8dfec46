"""Invocation → Slurm batch scripts (pure: no I/O beyond reading the packaged template).

By default one script runs every task of an invocation in turn against one model server
(and a judge server beside it with `judge_deployment`); with `execution.job_per_task: true`
each task gets its own script and its own servers.
Every value that reaches the script is quoted with `shlex.quote`; the job files are
written by the script itself (quoted heredocs), so the script needs nothing else on the
cluster but `evalfleet` and, for a deployment, `srun`, `setsid` and curl or python3.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from evalfleet.deployments.servers import ServerSpec, server_spec
from evalfleet.exceptions import ConfigError, UsageError
from evalfleet.executors.base import Invocation, Job
from evalfleet.executors.slurm._settings import settings

if TYPE_CHECKING:
    from evalfleet.config.schema import RunConfig
    from evalfleet.executors.slurm.config import SlurmExecution

TEMPLATE = "batch.sh.j2"
JOB_JSON_DELIMITER = "EVALFLEET_JOB_JSON"
# SIGUSR1 to the batch shell this many seconds before the time limit: the script then queues
# its successor (the next link of its chain, `--dependency=afternotok`), which starts only if
# this job ends without success (TIMEOUT, PREEMPTED...); at the limit Slurm sends SIGTERM and
# the trap stops the task and the server.
LIMIT_SIGNAL_S = 60

_SHELL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_FLAG_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*$")

# sbatch options evalfleet writes itself, and the setting to use instead of an extra flag.
_MANAGED_FLAGS = {
    "job-name": "execution.job_name_prefix",
    "account": "execution.account",
    "partition": "execution.partition",
    "qos": "execution.qos",
    "nodes": "execution.num_nodes",
    "ntasks-per-node": "execution.ntasks_per_node",
    "gres": "execution.gres",
    "gpus-per-node": "execution.gpus_per_node",
    "time": "execution.walltime",
    "output": None,
    "error": None,
    "signal": None,
}


@dataclass(frozen=True)
class SbatchScript:
    """One batch script: its file name, its text and the evalfleet jobs it runs."""

    name: str
    text: str
    job_ids: list[str]


def render_scripts(inv: Invocation) -> list[SbatchScript]:
    """The batch scripts for `inv`: one for all tasks, or one per task (`job_per_task`).

    Raises ConfigError when the config cannot be expressed as a safe batch script.
    """
    config = inv.config
    execution = settings(config)
    if execution.type != "slurm":
        raise ValueError(f"render_scripts needs execution.type slurm, got {execution.type!r}")
    if not _SAFE_ID.match(inv.invocation_id):
        raise UsageError(f"invocation id {inv.invocation_id!r}: use letters, digits, '.', '_', '-'")
    for job in inv.jobs:  # names end up in file names and comments
        if not _SAFE_ID.match(job.task):
            raise ConfigError(
                f"evaluation.tasks[{job.index}].name: {job.task!r} cannot name a batch script "
                "(use letters, digits, '.', '_', '-')"
            )
    server = _server(config.deployment, "deployment")
    judge = (
        None
        if config.judge_deployment is None
        else _server(config.judge_deployment, "judge_deployment")
    )
    deployed = [(spec, role) for spec, role in ((server, "model"), (judge, "judge")) if spec]
    secrets = secret_env(config)
    env = {k: v for k, v in _global_env(config).items() if k not in secrets}
    extra_flags = sbatch_extra_flags(execution.sbatch_extra_flags)
    command = _evalfleet_command(execution.evalfleet_command)
    groups: list[tuple[str | None, list[Job]]] = (
        [(job.task, [job]) for job in inv.jobs]
        if execution.job_per_task
        else [(None, list(inv.jobs))]
    )
    scripts = []
    for task, jobs in groups:
        suffix = f"-{task}" if task else ""
        # A server per task logs next to its task; a shared one in the invocation's logs.
        log_dir = f"{(jobs[0].output_dir if task else inv.output_dir)}/logs"
        servers = [
            # The task's logs dir exists already; the invocation's is made once.
            _server_context(execution, spec, role, log_dir, not task and i == 0, secrets)
            for i, (spec, role) in enumerate(deployed)
        ]
        context = {
            "title": f"invocation {inv.invocation_id}" + (f", task {task}" if task else ""),
            "invocation_id": inv.invocation_id,
            "output_dir": inv.output_dir,
            "sbatch": sbatch_header(inv, task, extra_flags),
            "evalfleet_command": command,
            "env": list(env.items()),
            "secret_names": sorted(secrets),
            "jobs": [_job_context(config, job, secrets) for job in jobs],
            # The model server, then the judge (`judge_deployment`), those deployed.
            "servers": servers,
            "server": next((s for s in servers if s["role"] == "model server"), None),
        }
        name = f"evalfleet-{inv.invocation_id}{suffix}.sbatch"
        context["chain"] = {
            "script": f"{inv.output_dir}/{name}",
            "file": f"{inv.output_dir}/{chain_file_name(name)}",
            "walltime_s": walltime_seconds(execution.walltime),
            "max_walltime_s": walltime_seconds(execution.max_walltime or execution.walltime),
        }
        scripts.append(
            SbatchScript(
                name=name,
                text=_template().render(context),
                job_ids=[job.job_id for job in jobs],
            )
        )
    return scripts


def chain_file_name(script_name: str) -> str:
    """The file where each job of a script's chain appends its Slurm job id."""
    return script_name.removesuffix(".sbatch") + ".slurm-jobs"


def walltime_seconds(text: str) -> int:
    """`[D-]HH:MM:SS` in seconds."""
    days, _, clock = text.rpartition("-")
    hours, minutes, seconds = (int(part) for part in clock.split(":"))
    return int(days or 0) * 86400 + hours * 3600 + minutes * 60 + seconds


# --------------------------------------------------------------------------- header


def job_name(prefix: str, invocation_id: str, task: str | None) -> str:
    return f"{prefix}-{invocation_id}" + (f"-{task}" if task else "")


def sbatch_header(inv: Invocation, task: str | None, extra: list[str]) -> list[str]:
    """The `#SBATCH` options (without the `#SBATCH `), in the order they are written."""
    execution = settings(inv.config)
    name = job_name(execution.job_name_prefix, inv.invocation_id, task)
    flags: list[tuple[str, Any]] = [("job-name", name)]
    for key in ("account", "partition", "qos"):
        if getattr(execution, key):
            flags.append((key, getattr(execution, key)))
    flags += [("nodes", execution.num_nodes), ("ntasks-per-node", execution.ntasks_per_node)]
    if execution.gres:
        flags.append(("gres", execution.gres))
    if execution.gpus_per_node:
        flags.append(("gpus-per-node", execution.gpus_per_node))
    # '%' starts a Slurm filename pattern; a literal one in the directory is written '%%'.
    output = inv.output_dir.replace("%", "%%") + "/slurm-%j.out"
    flags += [
        ("time", execution.walltime),
        ("output", output),
        ("signal", f"B:USR1@{LIMIT_SIGNAL_S}"),
    ]
    where = {"output": "execution.output_dir", "job-name": "execution.job_name_prefix"}
    return [
        _flag(name, value, where.get(name, f"execution.{name}")) for name, value in flags
    ] + extra


def sbatch_extra_flags(flags: dict[str, Any]) -> list[str]:
    """`execution.sbatch_extra_flags` as options: true → `--flag`, false/null → omitted,
    anything else → `--flag=value` (quoted); `_` in a name becomes `-`."""
    lines: list[str] = []
    problems: list[str] = []
    for key, value in flags.items():
        where = f"execution.sbatch_extra_flags.{key}"
        name = key.replace("_", "-")
        if not _FLAG_NAME.match(name) or len(name) < 2:
            problems.append(f"{where}: not an sbatch long option name (e.g. exclusive, mem)")
            continue
        if name in _MANAGED_FLAGS:
            instead = _MANAGED_FLAGS[name]
            problems.append(
                f"{where}: set {instead} instead"
                if instead
                else f"{where}: evalfleet writes --{name} itself"
            )
            continue
        if value is None or value is False:
            continue
        try:
            lines.append(_flag(name, None if value is True else value, where))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return lines


def _flag(name: str, value: Any, where: str) -> str:
    if value is None:
        return f"--{name}"
    text = str(value)
    # sbatch reads #SBATCH lines with its own shell-like parser: quotes work as in a shell,
    # but a backslash escapes even inside single quotes, and a line ends the option.
    if any(char in text for char in "\n\r\\"):
        raise ConfigError(
            f"{where}: must not contain a line break or a backslash (it goes into an #SBATCH line)"
        )
    return f"--{name}={shlex.quote(text)}"


# --------------------------------------------------------------------------- body


def secret_env(config: RunConfig) -> dict[str, str]:
    """Env vars with secret-looking names (HF_TOKEN, *_API_KEY…), from every section.

    Their values never go into a script (which sits on the cluster's disk): the script only
    checks they are set; the executor hands them to `sbatch` on its stdin, and Slurm passes
    the submitting environment on to the job.
    """
    from evalfleet.config.redact import is_secret_key

    sections = [
        settings(config).env_vars,
        config.env_vars,
        config.evaluation.env_vars,
        *(task.env_vars for task in config.evaluation.tasks),
        getattr(config.deployment, "env_vars", {}),
        getattr(config.judge_deployment, "env_vars", {}),
    ]
    found: dict[str, str] = {}
    for env in sections:
        found.update({name: value for name, value in env.items() if is_secret_key(name)})
    return found


def _global_env(config: RunConfig) -> dict[str, str]:
    """Exported for the whole script; later sections win."""
    sections = [
        ("execution.env_vars", settings(config).env_vars),
        ("env_vars", config.env_vars),
        ("evaluation.env_vars", config.evaluation.env_vars),
    ]
    problems = [
        f"{where}.{name}: not a shell variable name, so a batch script cannot export it "
        "(use letters, digits and '_')"
        for where, env in sections
        for name in env
        if not _SHELL_NAME.match(name)
    ]
    if problems:
        raise ConfigError(problems)
    merged: dict[str, str] = {}
    for _, env in sections:
        merged.update(env)
    return merged


def _evalfleet_command(text: str) -> list[str]:
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise ConfigError(f"execution.evalfleet_command: cannot split {text!r}: {exc}") from None
    if not words:
        raise ConfigError("execution.evalfleet_command: must name a command, e.g. evalfleet")
    return words


def _job_context(config: RunConfig, job: Job, secrets: dict[str, str]) -> dict[str, Any]:
    text = json.dumps(job.spec, indent=2, sort_keys=True)
    if JOB_JSON_DELIMITER in text.splitlines():  # pragma: no cover - indent=2 prevents it
        raise ValueError(f"job {job.job_id}: job.json contains the heredoc delimiter")
    task_env = {
        k: v for k, v in config.evaluation.tasks[job.index].env_vars.items() if k not in secrets
    }
    run_args = [job.task, job.job_id, job.job_file, *(f"{k}={v}" for k, v in task_env.items())]
    return {
        "job_id": job.job_id,
        "task": job.task,
        "file": job.job_file,
        "logs_dir": f"{job.output_dir}/logs",
        "json": text,
        "run_args": " ".join(shlex.quote(arg) for arg in run_args),
    }


def _server(deployment: Any, key: str) -> ServerSpec | None:
    """The server a deployment section (`key`) starts. Loopback only: the tasks run in the
    batch shell, on the node where srun starts the server, and nothing else on the cluster
    needs to reach it (the executor's endpoint_base gives the jobs the same 127.0.0.1)."""
    server = server_spec(deployment, host="127.0.0.1")
    if server is not None and not server.argv:
        raise ConfigError(
            f"{key}.type: {server.type} starts through its image's entrypoint, which "
            f"the Slurm executor cannot run yet; use {key}.type generic with the server "
            "command and execution.container_image"
        )
    return server


def _server_context(
    execution: SlurmExecution,
    server: ServerSpec,
    role: str,
    log_dir: str,
    make_log_dir: bool,
    secrets: dict[str, str],
) -> dict[str, Any]:
    """How the script starts, awaits and stops one server: `role` model or judge (its
    shell names get a `judge_` prefix). Both run the same way, in the same container image."""
    q = shlex.quote
    srun = "srun --ntasks=1 --nodes=1 --overlap"
    # A secret is in the job's environment already (srun passes it on): not on a command line.
    assignments = [
        f"{name}={q(value)}" for name, value in server.env.items() if name not in secrets
    ]
    launch = ["setsid env", *assignments, srun] if assignments else [f"setsid {srun}"]
    if execution.container_image:
        launch.append(f"--container-image={q(execution.container_image)}")
        if execution.mounts:
            mounts = [f"{src}:{dst}" for src, dst in execution.mounts.items()]
            bad = [m for m in mounts if "," in m]
            if bad:
                raise ConfigError(f"execution.mounts: a path contains ',' ({bad[0]!r})")
            launch.append(f"--container-mounts={q(','.join(mounts))}")
        if server.env:
            # pyxis keeps an image's own value of a variable unless it is named here.
            launch.append(f"--container-env={q(','.join(server.env))}")
    launch.append(shlex.join(server.argv))
    var = "server" if role == "model" else f"{role}_server"
    return {
        "type": server.type,
        "role": f"{role} server",
        "var": var,
        "log_dir": log_dir,
        "make_log_dir": make_log_dir,
        "log": f"{log_dir}/{var}.log",
        "url": server.base_url("127.0.0.1") + server.health_path,
        "timeout": int(execution.endpoint_readiness_timeout),
        "launch": launch,
    }


@functools.lru_cache(maxsize=1)
def _template() -> Any:
    import jinja2

    text = (resources.files("evalfleet.executors.slurm") / "templates" / TEMPLATE).read_text(
        encoding="utf-8"
    )
    environment = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["q"] = lambda value: shlex.quote(str(value))
    return environment.from_string(text)
