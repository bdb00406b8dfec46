"""The local executor: plans and runs an invocation on this machine.

`run` stays in the foreground: it starts the model server (if any) as its own process
group, waits for its health path, runs each task as `evalfleet eval --job job.json` in its
own process, records every state in the store as it goes, and stops the server when the
last task ends, when launching fails, on Ctrl-C and on `evalfleet kill`.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from evalfleet.deployments.servers import ServerSpec, server_spec
from evalfleet.exceptions import DeploymentError, UsageError
from evalfleet.executors._process import process_alive, stop_runner, terminate_as_interrupt
from evalfleet.executors.base import Invocation, Job, JobState, JobStatus
from evalfleet.executors.local.server import LocalServer, group_alive, stop_group


def eval_command(job: Job) -> list[str]:
    """The command every backend runs for a job."""
    return ["evalfleet", "eval", "--job", job.job_file]


def server_argv(inv: Invocation, server: ServerSpec) -> list[str]:
    execution = inv.config.execution
    if not (execution.use_docker and server.image):
        return [
            sys.executable if server.argv[:1] == ["python3"] else server.argv[0],
            *server.argv[1:],
        ]
    gpus = execution.cuda_visible_devices
    return [
        "docker", "run", "--rm", "--init",
        "--name", f"evalfleet-{inv.invocation_id}",
        "--publish", f"127.0.0.1:{server.port}:{server.port}",
        *(["--gpus", f'"device={gpus}"'] if gpus else ["--gpus", "all"]),
        *[arg for name in sorted(server.env) for arg in ("--env", name)],
        *shlex.split(execution.extra_docker_args),
        # The image's own entrypoint is replaced so that the same server argv works everywhere.
        *(["--entrypoint", server.argv[0], server.image, *server.argv[1:]] if server.argv else [server.image]),
    ]  # fmt: skip


class LocalExecutor:
    def plan(self, inv: Invocation) -> dict[str, Any]:
        execution = inv.config.execution
        # Inside a container the server must listen on all interfaces to be published.
        host = "0.0.0.0" if execution.use_docker else "127.0.0.1"
        server = server_spec(inv.config.deployment, host=host)
        env = {} if server is None else dict(server.env)
        if execution.cuda_visible_devices is not None:
            env["CUDA_VISIBLE_DEVICES"] = execution.cuda_visible_devices
        plan: dict[str, Any] = {
            "executor": "local",
            "invocation_id": inv.invocation_id,
            "output_dir": inv.output_dir,
            "mode": execution.mode,
            "server": None,
            "tasks": [
                {
                    "job_id": job.job_id,
                    "task": job.task,
                    "job_file": job.job_file,
                    "command": shlex.join(eval_command(job)),
                }
                for job in inv.jobs
            ],
        }
        if server is not None:
            argv = server_argv(inv, server)
            plan["server"] = {
                "type": server.type,
                "argv": argv,
                "command": shlex.join(argv),
                "env": env,
                "health_url": server.base_url() + server.health_path,
                "port": server.port,
                "readiness_timeout_s": execution.endpoint_readiness_timeout,
                "log": f"{inv.output_dir}/server.log",
                "stop": "SIGTERM to the server's process group, SIGKILL after 30 s",
                "model_package": getattr(inv.config.deployment, "model_package", None),
            }
        return plan

    def launch(self, inv: Invocation, shown_config: dict[str, Any]) -> int:
        """Run the invocation in the foreground; returns how many tasks did not succeed.

        `shown_config` is the redacted config: it is what reaches the disk and the store.
        The server (if any) is stopped when the last task ends, when launching fails,
        on Ctrl-C and on SIGTERM (`evalfleet kill`).
        """
        import yaml

        from evalfleet.store import InvocationStore, NewJob

        root = Path(inv.output_dir)
        root.mkdir(parents=True, exist_ok=True)
        (root / "config.yaml").write_text(
            yaml.safe_dump(shown_config, sort_keys=False), encoding="utf-8"
        )
        for job in inv.jobs:
            Path(job.output_dir).mkdir(parents=True, exist_ok=True)
            Path(job.job_file).write_text(json.dumps(job.spec, indent=2) + "\n", encoding="utf-8")
        with InvocationStore() as store, terminate_as_interrupt():
            inv.record_in(
                store,
                "local",
                shown_config,
                [NewJob(task=job.task, output_dir=job.output_dir) for job in inv.jobs],
            )
            failures = self._execute(inv, store, list(inv.jobs))
            return failures

    def resume(self, record: Any) -> int:
        """Rerun, in the foreground, every task of `record` that did not succeed; each
        task's response cache means only unanswered requests are sent again."""
        from evalfleet.config.redact import REDACTED
        from evalfleet.config.schema import RunConfig
        from evalfleet.store import InvocationStore

        if process_alive(record.handle.get("runner_pid")):
            raise UsageError(
                f"invocation {record.invocation_id} is still running "
                f"(pid {record.handle['runner_pid']}); kill it first or wait"
            )
        todo = [job for job in record.jobs if job.state != "SUCCESS"]
        if not todo:
            raise UsageError(f"nothing to resume: every task of {record.invocation_id} succeeded")
        if REDACTED in json.dumps(record.config.get("deployment", {})):
            raise UsageError(
                "cannot resume: the server's settings hold secret values that were not stored; "
                "reference secrets by env var name instead, or start a new run"
            )
        config = RunConfig.model_validate(record.config)
        jobs = []
        for index, stored in enumerate(record.jobs):
            spec = json.loads((Path(stored.output_dir) / "job.json").read_text())
            jobs.append(
                Job(
                    index,
                    stored.job_id,
                    stored.task,
                    spec["endpoint"]["type"],
                    stored.output_dir,
                    spec,
                )
            )
        inv = Invocation(record.invocation_id, config, record.output_dir, tuple(jobs))
        wanted = {job.job_id for job in todo}
        with InvocationStore() as store, terminate_as_interrupt():
            for job in todo:
                store.update_job(job.job_id, state="PENDING", detail="resumed")
            failures = self._execute(inv, store, [job for job in jobs if job.job_id in wanted])
            return failures

    def _execute(self, inv: Invocation, store: Any, jobs: list[Job]) -> int:
        """Start the server (if any), run `jobs`, always stop the server."""
        plan = self.plan(inv)
        store.update_invocation_handle(inv.invocation_id, {"runner_pid": os.getpid()})
        server = None
        try:
            if plan["server"] is not None:
                server = LocalServer(plan["server"], Path(inv.output_dir) / "logs" / "server.log")
                try:
                    _check_model_file(inv)
                    server.start()
                    store.update_invocation_handle(inv.invocation_id, {"server_pid": server.pid})
                    waited = server.wait_ready(plan["server"]["readiness_timeout_s"])
                except DeploymentError as exc:
                    first_line = str(exc).splitlines()[0]
                    for job in jobs:
                        store.update_job(
                            job.job_id, state="FAILED", detail=f"not run: {first_line}"
                        )
                    raise
                print(
                    f"{plan['server']['type']} server ready after {waited:.1f} s", file=sys.stderr
                )
            if inv.config.execution.mode == "parallel":
                return self._run_parallel(jobs, store)
            return sum(self._run_one(job, store) for job in jobs)
        except KeyboardInterrupt:
            for job in store.get(inv.invocation_id).jobs:
                if job.state in ("PENDING", "RUNNING"):
                    store.update_job(
                        job.job_id, state="KILLED", detail="stopped (Ctrl-C or evalfleet kill)"
                    )
            raise
        finally:
            if server is not None:
                server.stop()

    def _start(self, job: Job, store: Any) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "evalfleet", "eval", "--job", job.job_file],
            start_new_session=True,  # Ctrl-C reaches us; we stop the task's whole group
        )
        store.update_job(job.job_id, state="RUNNING", detail="", handle={"pid": process.pid})
        return process

    def _finish(self, job: Job, store: Any, code: int) -> int:
        if code == 0:
            store.update_job(job.job_id, state="SUCCESS", detail="")
            return 0
        detail = {
            3: "some samples failed after their retries (see samples.jsonl); resume retries them",
        }.get(code, f"evalfleet eval exited with code {code}; see {job.output_dir}/logs/eval.log")
        store.update_job(job.job_id, state="FAILED", detail=detail)
        return 1

    def _run_one(self, job: Job, store: Any) -> int:
        process = self._start(job, store)
        try:
            code = process.wait()
        except KeyboardInterrupt:
            stop_group(process.pid, 10.0, process)
            raise
        return self._finish(job, store, code)

    def _run_parallel(self, jobs: list[Job], store: Any) -> int:
        running = [(job, self._start(job, store)) for job in jobs]
        failures = 0
        try:
            for job, process in running:
                failures += self._finish(job, store, process.wait())
        except KeyboardInterrupt:
            for _, process in running:
                if process.poll() is None:
                    stop_group(process.pid, 10.0, process)
            raise
        return failures

    def kill(self, record: Any, wait_s: float = 60.0) -> list[str]:
        """Stop a local invocation from any terminal; idempotent. Returns what was stopped."""
        stopped = []
        runner = record.handle.get("runner_pid")
        if stop_runner(runner, wait_s):  # the runner stops its server and tasks itself
            stopped.append(f"run process {runner}")
        # Whatever the runner could not stop (it was killed itself, say) is stopped here.
        for pid in [record.handle.get("server_pid"), *(j.handle.get("pid") for j in record.jobs)]:
            if isinstance(pid, int) and group_alive(pid) and stop_group(pid, 10.0):
                stopped.append(f"process group {pid}")
        return stopped

    def status(self, record: Any) -> list[JobStatus]:
        """From the store, checked against the processes: a job recorded as running whose
        process is gone did not finish."""
        rows = []
        runner_alive = process_alive(record.handle.get("runner_pid"))
        for job in record.jobs:
            state, detail = job.state, job.detail
            if state == "RUNNING" and not process_alive(job.handle.get("pid")):
                state, detail = "FAILED", "its process ended without reporting; resume to rerun it"
            elif state == "PENDING" and not runner_alive:
                state, detail = "FAILED", "never started: the run was interrupted; resume to run it"
            elif state == "SUCCESS":
                detail = _headline(job.output_dir) or detail
            rows.append(
                JobStatus(record.invocation_id, job.job_id, job.task, JobState(state), detail)
            )
        return rows

    def logs(self, record: Any, job_id: str | None, follow: bool) -> Iterator[str]:
        """Lines of the server log and of each task's eval.log, prefixed with their source;
        with `follow`, new lines as they come until the run ends."""
        sources = [] if job_id else [("server", Path(record.output_dir) / "logs" / "server.log")]
        sources += [
            (job.task, Path(job.output_dir) / "logs" / "eval.log")
            for job in record.jobs
            if job_id is None or job.job_id == job_id
        ]
        offsets = {path: 0 for _, path in sources}
        while True:
            fresh = False
            for name, path in sources:
                try:
                    with path.open("rb") as handle:
                        handle.seek(offsets[path])
                        data = handle.read()
                except OSError:
                    continue
                complete = data[: data.rfind(b"\n") + 1]
                offsets[path] += len(complete)
                for line in complete.decode("utf-8", "replace").splitlines():
                    fresh = True
                    yield f"[{name}] {line}"
            if not follow or (not fresh and not process_alive(record.handle.get("runner_pid"))):
                return
            if not fresh:
                time.sleep(0.2)


def _headline(output_dir: str) -> str:
    try:
        results = json.loads((Path(output_dir) / "results.json").read_text())
        name = results["headline_metric"]
        metric = results["metrics"][name]
        return f"{name} {metric['value']:.4f} ± {metric['stderr']:.4f} (n={metric['n']})"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def _check_model_file(inv: Invocation) -> None:
    deployment = inv.config.deployment
    path = getattr(deployment, "checkpoint_path", None)
    if deployment.type == "llamacpp" and path and not Path(path).expanduser().is_file():
        raise DeploymentError(f"model file not found: {path} (deployment.checkpoint_path)")
