"""The local executor's hooks: an invocation on this machine.

`run` stays in the foreground: it starts the model server (if any) as its own process
group, waits for its health path, runs the tasks, and stops the server when the last task
ends, when launching fails, on Ctrl-C and on `evalfleet kill` (the flow in
`executors/base.py` does the rest).

The tasks run in this process (`evalfleet.jobs.evaluate_jobs`: what `evalfleet eval --job
job.json` runs, for every job at once), for three reasons: the tasks that target one
endpoint share its in-flight budget, and in sequence the next task's requests fill the
slots the last one's answers free; a second Python process per task cost ~0.3 s of start-up
each; and a runner killed by SIGKILL (the OOM killer, a closed ssh session) leaves no eval
process behind to run on unseen beside a resume. What this process starts (the server, a
harness's process) is killed with it (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalfleet.config.env import EnvRef, host_value, job_env, server_env
from evalfleet.contract import JSON, Invocation, Job, JobState
from evalfleet.deployments.servers import ServerSpec, server_spec
from evalfleet.exceptions import ConfigError, DeploymentError, UsageError
from evalfleet.executors._process import process_alive
from evalfleet.executors.base import Executor, Observation, Run
from evalfleet.executors.local._settings import settings
from evalfleet.executors.local.server import LocalServer, group_alive, stop_group

if TYPE_CHECKING:
    from evalfleet.store import InvocationRecord


def eval_command(job: Job) -> list[str]:
    """The command every backend runs for a job."""
    return ["evalfleet", "eval", "--job", job.job_file]


def server_argv(
    inv: Invocation, server: ServerSpec, role: str = "server", env_names: Iterable[str] = ()
) -> list[str]:
    """The server's command line; in docker, `env_names` (besides the server type's own)
    are passed into the container by name, their values from the server's environment."""
    execution = settings(inv.config)
    if not (execution.use_docker and server.image):
        return [
            sys.executable if server.argv[:1] == ["python3"] else server.argv[0],
            *server.argv[1:],
        ]
    gpus = execution.cuda_visible_devices
    return [
        "docker", "run", "--rm", "--init",
        "--name", f"evalfleet-{inv.invocation_id}" + ("-judge" if role != "server" else ""),
        "--publish", f"127.0.0.1:{server.port}:{server.port}",
        *(["--gpus", f'"device={gpus}"'] if gpus else ["--gpus", "all"]),
        *[arg for name in sorted({*server.env, *env_names}) for arg in ("--env", name)],
        *[arg for host, inside in execution.mounts.deployment.items()
          for arg in ("--volume", f"{host}:{inside}")],
        *shlex.split(execution.extra_docker_args),
        # The image's own entrypoint is replaced so that the same server argv works everywhere.
        *(["--entrypoint", server.argv[0], server.image, *server.argv[1:]] if server.argv
          else [server.image, *_image_command(inv, role)]),
    ]  # fmt: skip


def _launcher_differences(inv: Invocation) -> list[str]:
    from evalfleet.config.notices import launcher_differences

    out = []
    execution = settings(inv.config)
    for key in ("deployment", "judge_deployment"):
        section = getattr(inv.config, key)
        if section is not None and section.type != "none" and not execution.use_docker:
            out.append(
                f"execution.use_docker: evalfleet runs the {key.replace('_', ' ')}'s server "
                "as a process on this machine, bound to 127.0.0.1; launcher runs "
                f"{key}.image in docker — no docker needed (set execution.use_docker: true "
                "for the launcher's way)"
            )
    return out + launcher_differences(inv.config)


def _image_command(inv: Invocation, role: str) -> list[str]:
    """A NIM's `command` after its image, as the launcher runs it (its entrypoint then
    execs it): the image's own CMD where the config names none."""
    deployment = inv.config.deployment if role == "server" else inv.config.judge_deployment
    command = getattr(deployment, "command", None)
    return shlex.split(command) if command else []


class LocalExecutor(Executor):
    name = "local"

    def __init__(self) -> None:
        self._servers: list[LocalServer] = []  # the ones a run started (model, judge)
        self._job_envs: dict[str, dict[str, str]] = {}  # resolved when the run starts

    def plan(self, inv: Invocation) -> JSON:
        execution = settings(inv.config)
        plan: JSON = {
            "executor": self.name,
            "invocation_id": inv.invocation_id,
            "output_dir": inv.output_dir,
            "mode": execution.mode,
            "server": _server_plan(inv, inv.config.deployment, "server"),
            "tasks": [
                {
                    "job_id": job.job_id,
                    "task": job.task,
                    "job_file": job.job_file,
                    "command": shlex.join(eval_command(job)),
                    # As configured: a host variable's value is read when the run starts.
                    "env": {
                        name: ref.shown()
                        for name, (_, ref) in job_env(inv.config, job.index).items()
                    },
                }
                for job in inv.jobs
            ],
        }
        if inv.config.judge_deployment is not None:
            plan["judge_server"] = _server_plan(inv, inv.config.judge_deployment, "judge_server")
        plan["launcher_differences"] = _launcher_differences(inv)
        return plan

    @staticmethod
    def render_plan(plan: JSON) -> list[str]:
        lines = [
            f"# differs from NeMo Evaluator Launcher: {line}"
            for line in plan.get("launcher_differences", [])
        ]
        step = 1
        servers = [(plan.get("server"), "server"), (plan.get("judge_server"), "judge server")]
        for server, what in servers:
            if server:
                lines.append(f"\n{step}. start the {server['type']} {what} (log: {server['log']}):")
                lines.append(f"   {server['command']}")
                lines += [f"   env {name}={value}" for name, value in server["env"].items()]
                lines.append(
                    f"{step + 1}. wait up to {server['readiness_timeout_s']} s for "
                    f"{server['health_url']}"
                )
                step += 2
        lines.append(
            f"\n{step}. run the tasks ({plan['mode']}) in this process, as these commands "
            "would, sharing the endpoint's parallelism:"
        )
        for task in plan["tasks"]:
            lines.append(f"   [{task['job_id']}] {task['command']}")
            lines += [f"     env {name}={value}" for name, value in task.get("env", {}).items()]
        for server, what in servers:
            if server:
                step += 1
                lines.append(f"\n{step}. stop the {what}: {server['stop']}")
        return lines

    # ------------------------------------------------------------------ running

    def local_job_dir(self, invocation: Invocation, job: Job) -> str:
        return job.output_dir

    def check_environment(self, inv: Invocation) -> None:
        """Each job's variables, read as `start` will read them, and the endpoint's API
        key among them or in this process's environment."""
        for job in inv.jobs:
            provided = {**os.environ, **_resolved(job_env(inv.config, job.index))}
            name = job.spec["endpoint"].get("api_key_name")
            if inv.config.deployment.type == "none" and name and name not in provided:
                raise ConfigError(
                    f"target.api_endpoint.api_key_name: the env var {name} is not set "
                    f"(export {name}=<the key> before the run)"
                )

    def check_resumable(self, record: InvocationRecord) -> None:
        from evalfleet.config.redact import REDACTED

        if REDACTED in json.dumps(record.config.get("deployment", {})):
            raise UsageError(
                "cannot resume: the server's settings hold secret values that were not stored; "
                "reference secrets by env var name instead, or start a new run"
            )

    def start(self, run: Run) -> None:
        """Start the server (if any), then run the jobs to their end."""
        inv = run.invocation
        plan = self.plan(inv)
        if plan["server"] is not None:
            _check_model_file(inv.config.deployment, "deployment")
        if plan.get("judge_server") is not None:
            _check_model_file(inv.config.judge_deployment, "judge_deployment")
        # Every host variable is read before anything starts: a missing one stops the run.
        self._job_envs = {job.job_id: _resolved(job_env(inv.config, job.index))
                          for job in run.jobs}  # fmt: skip
        server_envs = {
            key: _resolved(server_env(inv.config, section))
            for key, section in (("server", "deployment"), ("judge_server", "judge_deployment"))
            if plan.get(key) is not None
        }
        started = []
        for key in ("server", "judge_server"):
            if plan.get(key) is None:
                continue
            log = Path(inv.output_dir) / "logs" / f"{key}.log"
            server = LocalServer(
                {**plan[key], "env": {**plan[key]["env"], **server_envs[key]}}, log
            )
            self._servers.append(server)  # stopped by finish, however the run ends
            server.start()
            run.set_handle({f"{key}_pid": server.pid})  # before waiting: kill finds it
            started.append((key, server))
        for key, server in started:
            waited = server.wait_ready(plan[key]["readiness_timeout_s"])
            what = "judge server" if key == "judge_server" else "server"
            print(f"{plan[key]['type']} {what} ready after {waited:.1f} s", file=sys.stderr)
        self._run_jobs(run, parallel=settings(inv.config).mode == "parallel")

    def finish(self, run: Run, completed: bool) -> None:
        while self._servers:
            self._servers.pop().stop()

    def _run_jobs(self, run: Run, parallel: bool) -> None:
        from evalfleet.jobs import JobRun, evaluate_jobs
        from evalfleet.progress import show_progress

        by_file = {job.job_file: job for job in run.jobs}
        jobs = [
            JobRun(job.job_file, {**os.environ, **self._job_envs.get(job.job_id, {})})
            for job in run.jobs
        ]

        def started(job: JobRun) -> None:
            # This process runs the task: its pid is how `status` sees the task alive.
            run.update(by_file[job.job_file], JobState.RUNNING, "", handle={"pid": os.getpid()})

        def ended(job: JobRun) -> None:
            assert job.code is not None
            run.ended(by_file[job.job_file], job.code)

        evaluate_jobs(
            jobs, parallel=parallel, started=started, ended=ended, display=show_progress
        )

    # ------------------------------------------------------------------ watching

    def observe(self, record: InvocationRecord, runner_alive: bool) -> dict[str, Observation]:
        """The store, checked against the processes: a job recorded as running whose
        process is gone did not finish."""
        seen = {}
        for job in record.jobs:
            if job.state == JobState.RUNNING and not process_alive(job.handle.get("pid")):
                seen[job.job_id] = Observation(
                    JobState.FAILED, "its process ended without reporting; resume to rerun it"
                )
            elif job.state == JobState.PENDING and not runner_alive:
                seen[job.job_id] = Observation(
                    JobState.FAILED, "never started: the run was interrupted; resume to run it"
                )
        return seen

    def cancel(self, record: InvocationRecord) -> list[str]:
        """What the runner could not stop (it was killed itself, say)."""
        stopped = []
        servers = [record.handle.get("server_pid"), record.handle.get("judge_server_pid")]
        # A task's pid is its runner's (tasks run in it), or, recorded by an older
        # evalfleet, a process group of its own.
        runner = record.handle.get("runner_pid")
        tasks = [j.handle.get("pid") for j in record.jobs if j.handle.get("pid") != runner]
        for pid in [*servers, *tasks]:
            if isinstance(pid, int) and group_alive(pid) and stop_group(pid, 10.0):
                stopped.append(f"process group {pid}")
        return stopped


def _server_plan(inv: Invocation, deployment: Any, name: str) -> JSON | None:
    """How the run starts one server (`name`: server, or judge_server), None without one."""
    execution = settings(inv.config)
    # Inside a container the server must listen on all interfaces to be published.
    host = "0.0.0.0" if execution.use_docker else "127.0.0.1"
    server = server_spec(deployment, host=host)
    if server is None:
        return None
    # The config's env as written (a host variable's value is read when the run starts);
    # what the server type adds, as it is.
    configured = server_env(inv.config, "deployment" if name == "server" else "judge_deployment")
    env = {k: v for k, v in server.env.items() if k not in configured}
    env.update({k: ref.shown() if ref.kind != "literal" else ref.text
                for k, (_, ref) in configured.items()})  # fmt: skip
    argv = server_argv(inv, server, name, env_names=configured)
    if execution.cuda_visible_devices is not None:  # docker: `--gpus device=` instead
        env["CUDA_VISIBLE_DEVICES"] = execution.cuda_visible_devices
    return {
        "type": server.type,
        "argv": argv,
        "command": shlex.join(argv),
        "env": env,
        "health_url": server.base_url() + server.health_path,
        "port": server.port,
        "readiness_timeout_s": execution.endpoint_readiness_timeout,
        "log": f"{inv.output_dir}/{name}.log",
        "stop": "SIGTERM to the server's process group, SIGKILL after 30 s",
        "model_package": getattr(deployment, "model_package", None),
    }


def _resolved(env: dict[str, tuple[str, EnvRef]]) -> dict[str, str]:
    """Values for a process started here: literals and host variables now; a runtime
    variable is the job's own environment, which here is this process's."""
    out = {}
    for name, (key, ref) in env.items():
        if ref.kind == "runtime":
            if ref.text in os.environ:
                out[name] = os.environ[ref.text]
        elif ref.kind == "secret":
            raise ConfigError(f"{key}: a Lepton secret reference cannot run locally")
        else:
            value = host_value(ref, key)
            assert value is not None
            out[name] = value
    return out


def _check_model_file(deployment: Any, key: str) -> None:
    path = getattr(deployment, "checkpoint_path", None)
    if deployment.type == "llamacpp" and path and not Path(path).expanduser().is_file():
        raise DeploymentError(f"model file not found: {path} ({key}.checkpoint_path)")
