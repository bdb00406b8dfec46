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

from evalfleet.config.env import EnvRef, host_value, job_env, server_env
from evalfleet.config.notices import launcher_differences as common_differences
from evalfleet.deployments.servers import ServerSpec, server_spec
from evalfleet.exceptions import ConfigError, UsageError
from evalfleet.executors.base import Invocation, Job
from evalfleet.executors.slurm._servers import (
    describe,
    image_of,
    judge_placement,
    launch_lines,
    model_placement,
    proxy_lines,
    server_mounts,
)
from evalfleet.executors.slurm._settings import settings
from evalfleet.executors.slurm.bootstrap import bootstrap_script

if TYPE_CHECKING:
    from evalfleet.config.schema import RunConfig

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
    deployed = [
        (spec, key, role)
        for spec, key, role in (
            (server, "deployment", "model"),
            (judge, "judge_deployment", "judge"),
        )
        if spec
    ]
    extra_flags = sbatch_extra_flags(execution.sbatch_extra_flags)
    if execution.sbatch_comment is not None and "comment" in execution.sbatch_extra_flags:
        raise ConfigError(
            "execution.sbatch_extra_flags.comment: execution.sbatch_comment sets --comment already"
        )
    # No command named: the bootstrap installs the planner's own wheel (bootstrap.py).
    command = (
        _evalfleet_command(execution.evalfleet_command)
        if execution.evalfleet_command is not None
        else None
    )
    groups: list[tuple[str | None, list[Job]]] = (
        [(job.task, [job]) for job in inv.jobs]
        if execution.job_per_task
        else [(None, list(inv.jobs))]
    )
    job_words = {job.job_id: _shell_env(job_env(config, job.index)) for job in inv.jobs}
    secret_names = sorted(secret_env(config))
    max_walltime = execution.max_walltime
    scripts = []
    for task, jobs in groups:
        suffix = f"-{task}" if task else ""
        # A server per task logs next to its task; a shared one in the invocation's logs.
        log_dir = f"{(jobs[0].output_dir if task else inv.output_dir)}/logs"
        servers = [
            # The task's logs dir exists already; the invocation's is made once.
            _server_context(config, spec, key, role, log_dir, not task and i == 0)
            for i, (spec, key, role) in enumerate(deployed)
        ]
        common_env, own_env = _split_env([job_words[job.job_id] for job in jobs])
        context = {
            "title": f"invocation {inv.invocation_id}" + (f", task {task}" if task else ""),
            "invocation_id": inv.invocation_id,
            "output_dir": inv.output_dir,
            "sbatch": sbatch_header(inv, task, extra_flags),
            "evalfleet_command": command or [],
            "bootstrap": None if command else bootstrap_script(inv),
            "env": common_env,
            "secret_names": secret_names,
            "jobs": [_job_context(job, env) for job, env in zip(jobs, own_env, strict=True)],
            # The model server, then the judge (`judge_deployment`), those deployed.
            "servers": servers,
            "server": next((s for s in servers if s["role"] == "model server"), None),
            "needs_nodes": any(s["needs_nodes"] for s in servers),
        }
        name = f"evalfleet-{inv.invocation_id}{suffix}.sbatch"
        context["chain"] = {
            "script": f"{inv.output_dir}/{name}",
            "file": f"{inv.output_dir}/{chain_file_name(name)}",
            "walltime_s": walltime_seconds(execution.walltime),
            "max_walltime_s": walltime_seconds(max_walltime) if max_walltime else 0,
        }
        scripts.append(
            SbatchScript(
                name=name,
                text=_template().render(context),
                job_ids=[job.job_id for job in jobs],
            )
        )
    return scripts


def launcher_differences(config: RunConfig) -> list[str]:
    """Where this run's Slurm defaults or layout differ from NeMo Evaluator Launcher's, and
    why: the dry run prints them (`key: evalfleet X, launcher Y — why`)."""
    execution = settings(config)
    out = []
    if execution.partition is None:
        out.append(
            "execution.partition: evalfleet null (the cluster's default partition), launcher "
            "batch — not every cluster has a partition named batch"
        )
    if execution.account is None:
        out.append(
            "execution.account: evalfleet optional, launcher required — sbatch then uses "
            "your default account"
        )
    out.append(
        f"execution.subproject: not in job names — evalfleet names jobs "
        f"{execution.job_name_prefix}-<invocation id>[-<task>] so status and kill find them"
    )
    out += common_differences(config)  # the tasks: in the batch shell on the first node
    if execution.mounts.evaluation:
        out.append(
            "execution.mounts.evaluation: not applied — the tasks run on the node, where the "
            "host paths are visible as they are"
        )
    if execution.cpu_partition:
        out.append(
            "execution.cpu_partition: unused — evalfleet exports from the machine that runs "
            "the export, not in a Slurm job"
        )
    if config.judge_deployment is not None and not config.judge_deployment.num_nodes:
        out.append(
            "judge_deployment: runs on the model's first node beside it (set "
            "judge_deployment.num_nodes for nodes of its own, as the launcher's "
            "auxiliary_deployments always have)"
        )
    return out


def chain_file_name(script_name: str) -> str:
    """The file where each job of a script's chain appends its Slurm job id."""
    return script_name.removesuffix(".sbatch") + ".slurm-jobs"


def walltime_seconds(text: str) -> int:
    """`[D-]H:MM:SS` in seconds."""
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
    judge = inv.config.judge_deployment
    nodes = execution.num_nodes + ((judge.num_nodes or 0) if judge is not None else 0)
    flags += [("nodes", nodes), ("ntasks-per-node", execution.ntasks_per_node)]
    if execution.gres:
        flags.append(("gres", execution.gres))
    if execution.gpus_per_node is not None:
        flags.append(("gpus-per-node", execution.gpus_per_node))
    if execution.sbatch_comment is not None:
        flags.append(("comment", execution.sbatch_comment))
    # '%' starts a Slurm filename pattern; a literal one in the directory is written '%%'.
    output = inv.output_dir.replace("%", "%%") + "/slurm-%j.out"
    flags += [
        ("time", execution.walltime),
        ("output", output),
        ("signal", f"B:USR1@{LIMIT_SIGNAL_S}"),
    ]
    where = {
        "output": "execution.output_dir",
        "job-name": "execution.job_name_prefix",
        "comment": "execution.sbatch_comment",
    }
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
    """Env vars with secret-looking names (HF_TOKEN, *_API_KEY…), from every section, with
    the values the jobs get (a `host:` value read from this machine's environment).

    Their values never go into a script (which sits on the cluster's disk): the script only
    checks they are set; the executor hands them to `sbatch` on its stdin, and Slurm passes
    the submitting environment on to the job.
    """
    found: dict[str, str] = {}
    for env in _all_env(config):
        for name, (where, ref) in env.items():
            if _is_secret(name) and ref.kind in ("literal", "host"):
                value = host_value(ref, where)
                if value is not None:
                    found[name] = value
    return found


def _all_env(config: RunConfig) -> list[dict[str, tuple[str, EnvRef]]]:
    envs = [job_env(config, i) for i in range(len(config.evaluation.tasks))]
    for key in ("deployment", "judge_deployment"):
        section = getattr(config, key, None)
        if section is not None and section.type != "none":
            envs.append(server_env(config, key))
    return envs


def _is_secret(name: str) -> bool:
    from evalfleet.config.redact import is_secret_key

    return bool(is_secret_key(name))


def _shell_env(env: dict[str, tuple[str, EnvRef]]) -> list[tuple[str, str]]:
    """(name, shell word) to export: a value quoted, a `runtime:` variable expanded by the
    job; secrets are left out (they are in the job's environment already)."""
    problems = [
        f"{where}: not a shell variable name, so a batch script cannot export it "
        "(use letters, digits and '_')"
        for name, (where, _) in env.items()
        if not _SHELL_NAME.match(name)
    ]
    problems += [
        f"{where}: a Lepton secret ({ref.text}) has no meaning on Slurm; use host:NAME"
        for _, (where, ref) in env.items()
        if ref.kind == "secret"
    ]
    if problems:
        raise ConfigError(problems)
    words = []
    for name, (where, ref) in env.items():
        if ref.kind == "runtime":
            words.append((name, f'"${{{ref.text}}}"'))
        elif not _is_secret(name):
            words.append((name, shlex.quote(host_value(ref, where) or "")))
    return words


def _evalfleet_command(text: str) -> list[str]:
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise ConfigError(f"execution.evalfleet_command: cannot split {text!r}: {exc}") from None
    if not words:
        raise ConfigError("execution.evalfleet_command: must name a command, e.g. evalfleet")
    return words


def _job_context(job: Job, task_env: list[tuple[str, str]]) -> dict[str, Any]:
    text = json.dumps(job.spec, indent=2, sort_keys=True)
    if JOB_JSON_DELIMITER in text.splitlines():  # pragma: no cover - indent=2 prevents it
        raise ValueError(f"job {job.job_id}: job.json contains the heredoc delimiter")
    fixed = [shlex.quote(arg) for arg in (job.task, job.job_id, job.job_file)]
    return {
        "job_id": job.job_id,
        "task": job.task,
        "file": job.job_file,
        "logs_dir": f"{job.output_dir}/logs",
        "json": text,
        # `NAME=word` words: the shell expands a runtime variable when the task starts.
        "run_args": " ".join([*fixed, *(f"{name}={word}" for name, word in task_env)]),
    }


def _split_env(
    per_job: list[list[tuple[str, str]]],
) -> tuple[list[tuple[str, str]], list[list[tuple[str, str]]]]:
    """What every job of a script shares (exported once) and what is each job's own."""
    common = [item for item in per_job[0] if all(item in env for env in per_job[1:])]
    return common, [[item for item in env if item not in common] for env in per_job]


def _server(deployment: Any, key: str) -> ServerSpec | None:
    """The server a deployment section (`key`) starts. The tasks run in the batch shell,
    on the allocation's first node, where the (first instance of the) server listens too."""
    return server_spec(deployment, host="127.0.0.1", key=key)


def _server_context(
    config: RunConfig,
    server: ServerSpec,
    key: str,
    role: str,
    log_dir: str,
    make_log_dir: bool,
) -> dict[str, Any]:
    """How the script starts, awaits and stops one server: `role` model or judge (its
    shell names get a `judge_` prefix)."""
    execution = settings(config)
    var = "server" if role == "model" else f"{role}_server"
    if role == "model":
        placement = model_placement(execution)
        extra_mounts = dict(execution.mounts.deployment)
    else:
        placement = judge_placement(execution, config.judge_deployment)
        extra_mounts = dict(execution.mounts.auxiliary.get("judge", {}))
    in_container = image_of(execution, server) is not None
    if server.image is None and not server.argv and not in_container:
        raise ConfigError(f"{key}.image: {server.type} starts through its image, so it needs one")
    env = server_env(config, key)
    env_words = _shell_env(env)
    # The server's own defaults (NIM's port and name) unless the config sets them.
    env_words += [(n, shlex.quote(v)) for n, v in server.env.items() if n not in env]
    secret_names = sorted(name for name in env if _is_secret(name))
    mounts = server_mounts(execution, server, extra_mounts) if in_container else {}
    log = f"{log_dir}/{var}.log"
    return {
        "type": server.type,
        "role": f"{role} server",
        "var": var,
        "log_dir": log_dir,
        "make_log_dir": make_log_dir,
        "log": log,
        "health_path": server.health_path,
        "port": server.port,
        "timeout": execution.readiness_timeout_s(),
        "launch": launch_lines(execution, server, var, placement, env_words, secret_names, mounts),
        "needs_nodes": not placement.simple or in_container,
        "placement": describe(execution, server, placement),
        "proxy": (
            proxy_lines(
                execution,
                var,
                server.port,
                server.health_path,
                f"{log_dir}/{var}-haproxy.cfg",
                f"{log_dir}/proxy.log",
            )
            if placement.instances > 1
            else None
        ),
        "proxy_url": (
            f"http://127.0.0.1:{execution.proxy.config.haproxy_port}"
            f"{execution.proxy.config.health_check_path}"
        ),
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
