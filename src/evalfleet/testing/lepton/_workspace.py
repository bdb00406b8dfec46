"""The emulated workspace: deployments, jobs, secrets and their logs, as plain state.

States follow `reference/lepton-api.md` §5. A deployment's state is derived from its clock
(`Starting` until `ready_at`, then `Ready`, or `Error` / stuck when a fault says so;
`Deleting` for `delete_after` seconds, then gone). A deployment's own envs can script what
its emulated container does, as `reference/lepton-api.md` §5 suggests for outcomes:
`EMULATOR_DEPLOYMENT_STATE` (Error, Starting, Not Ready) forces its state like the
`deployment_state` fault, for that deployment alone, and `EMULATOR_DEFAULT_ANSWER` is what
its model server answers every request with (the simulator's `--default-answer`; default:
echo). A job is driven by its process:
`Queueing` → `Starting` → `Running` → `Completed` | `Failed`; `ttl_seconds_after_finished`
(or `archive_after`) later it is archived: hidden from `alive_only`, its final state kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalfleet.testing.lepton._image import job_container

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]*$")
ENV_NAME_PATTERN = re.compile(r"^[A-Za-z_.-][A-Za-z0-9._-]*$")
RESERVED_ENV_NAMES = frozenset({
    "LEPTON_WORKSPACE_ID", "LEPTON_DEPLOYMENT_NAME", "LEPTON_JOB_NAME",
    "LEPTON_RESOURCE_ACCELERATOR_TYPE", "LEPTON_WORKSPACE_ORIGIN_URL",
})  # fmt: skip
# What a container sees of the emulator's environment: enough to find `python`/`evalfleet`
# (the image would have them), nothing else of the host (no tokens, no EVALFLEET_HOME).
PASSED_ENV = ("PATH", "LANG", "LC_ALL", "PYTHONPATH", "VIRTUAL_ENV")
# Deployment envs the emulated container honours (see the module docstring).
STATE_ENV = "EMULATOR_DEPLOYMENT_STATE"
ANSWER_ENV = "EMULATOR_DEFAULT_ANSWER"
FORCIBLE_STATES = ("Error", "Starting", "Not Ready")

SHAPES: dict[str, dict[str, Any]] = {
    "cpu.small": {"cpu": 1, "memory": 4096, "description": "1 CPU, 4 GiB"},
    "cpu.medium": {"cpu": 2, "memory": 8192, "description": "2 CPU, 8 GiB"},
    "cpu.large": {"cpu": 4, "memory": 16384, "description": "4 CPU, 16 GiB"},
    "gpu.1xh200": {"cpu": 16, "memory": 262144, "accelerator_type": "H200",
                   "accelerator_num": 1, "description": "1x H200"},
    "gpu.2xa100": {"cpu": 16, "memory": 262144, "accelerator_type": "A100-80GB",
                   "accelerator_num": 2, "description": "2x A100"},
}  # fmt: skip


class ApiError(Exception):
    """An answer the workspace API gives instead of a result: status and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Faults:
    """What the next requests and resources suffer; `POST /_emulator/faults` sets them."""

    server_errors: int = 0  # the next N workspace-API requests answer 503
    deployment_state: str | None = None  # "Error" | "Starting" (stuck) | "Not Ready" (stuck)
    ready_after: float = 0.5  # seconds a new deployment stays Starting
    delete_after: float = 0.3  # seconds a deleted deployment or job stays Deleting
    queue_after: float = 0.2  # seconds a new job stays Queueing
    archive_after: float | None = None  # overrides every job's ttl_seconds_after_finished
    new_deployment_api: bool = False  # /workspace reports the new /endpoints route family
    token_revoked: bool = False  # the workspace token is refused (401), as after revocation

    def update(self, changes: dict[str, Any]) -> dict[str, Any]:
        for key, value in changes.items():
            if key not in self.__dataclass_fields__:
                raise ApiError(400, "InvalidFault", f"unknown fault {key!r}")
            setattr(self, key, value)
        return dict(self.__dict__)


@dataclass
class LogBook:
    """Lines with unique, increasing nanosecond timestamps (what `/logs` serves)."""

    lines: list[tuple[int, str]] = field(default_factory=list)

    def add(self, line: str) -> None:
        stamp = time.time_ns()
        if self.lines and stamp <= self.lines[-1][0]:
            stamp = self.lines[-1][0] + 1
        self.lines.append((stamp, line))


@dataclass
class Deployment:
    name: str
    spec: dict[str, Any]
    created_at: int
    ready_at: float  # time.monotonic()
    forced_state: str | None
    external_endpoint: str
    logs: LogBook = field(default_factory=LogBook)
    deleting_since: float | None = None
    upstream: str | None = None  # the model server's base URL, once it runs
    process: asyncio.subprocess.Process | None = None

    def state(self) -> str:
        if self.deleting_since is not None:
            return "Deleting"
        if self.forced_state and time.monotonic() >= self.ready_at:
            return self.forced_state
        if self.forced_state in ("Starting", "Not Ready"):
            return self.forced_state
        ready = time.monotonic() >= self.ready_at and self.upstream is not None
        return "Ready" if ready else "Starting"

    def to_json(self) -> dict[str, Any]:
        state = self.state()
        spec = dict(self.spec)
        if "api_tokens" in spec:  # GET answers redact literal token values
            spec["api_tokens"] = [
                {**token, "value": "***"} if "value" in token else token
                for token in spec["api_tokens"]
            ]
        ready = 1 if state == "Ready" else 0
        return {
            "metadata": {"id": self.name, "name": self.name, "created_at": self.created_at,
                         "version": 1, "visibility": "private"},
            "spec": spec,
            "status": {
                "state": state,
                "phase": state,
                "endpoint": {
                    "internal_endpoint": f"http://{self.name}.internal:8080",
                    "external_endpoint": self.external_endpoint,
                },
                "ready_replicas": ready,
                "autoscaler_status": {"desired_replicas": ready},
            },
        }  # fmt: skip


@dataclass
class Job:
    id: str
    name: str
    spec: dict[str, Any]
    metadata: dict[str, Any]
    created_at: int
    workdir: Path
    state: str = "Queueing"
    logs: LogBook = field(default_factory=LogBook)
    completion_time: int | None = None
    archived: bool = False
    process: asyncio.subprocess.Process | None = None
    runner: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return not self.archived

    def to_json(self) -> dict[str, Any]:
        running = self.state == "Running"
        return {
            "metadata": {**self.metadata, "id": self.id, "name": self.name,
                         "created_at": self.created_at, "version": 1},
            "spec": self.spec,
            "status": {
                "job_name": self.name,
                "state": self.state,
                "ready": int(running),
                "active": int(running),
                "succeeded": int(self.state == "Completed"),
                "failed": int(self.state == "Failed"),
                "creation_time": self.created_at // 1000,
                "completion_time": self.completion_time,
                "job_history": [],
            },
        }  # fmt: skip


class Workspace:
    """Everything one emulated workspace holds; methods raise ApiError like the server."""

    def __init__(self, workspace_id: str, root: Path, external_base: str,
                 model_server: str | None = None,
                 job_python: Path | None = None) -> None:  # fmt: skip
        self.workspace_id = workspace_id
        # The job image's interpreter (`_image.job_image`): each job runs in a fresh
        # environment over it; None: jobs run with this interpreter's environment.
        self.job_python = job_python
        self.root = root
        self.external_base = external_base  # http://host:port, deployments get /ep/<name>
        self.model_server = model_server
        self.faults = Faults()
        self.requests: dict[str, int] = {}  # "METHOD /route" → count, for tests
        self.deployments: dict[str, Deployment] = {}
        self.jobs: dict[str, Job] = {}
        self.secrets: dict[str, str] = {}
        # Logs outlive their deployment (as the platform's log store keeps them).
        self.deployment_logs: dict[str, LogBook] = {}
        self.node_groups: list[dict[str, Any]] = [  # JSON, as the API returns it
            {"metadata": {"id": "ng-h200-01-abcdefgh", "name": "h200-pool"},
             "spec": {"desired_nodes": 2, "gpu_product": "H200"}, "status": {"ready_nodes": 2}},
            {"metadata": {"id": "ng-cpu-01-abcdefgh", "name": "cpu-pool"},
             "spec": {"desired_nodes": 1}, "status": {"ready_nodes": 1}},
        ]  # fmt: skip

    # ------------------------------------------------------------------ checks

    def _check_shape(self, shape: Any, key: str) -> None:
        if shape is not None and shape not in SHAPES:
            raise ApiError(
                400, "InvalidResourceShape",
                f"{key}: resource shape {shape!r} is not available in this workspace "
                f"(available: {', '.join(SHAPES)})",
            )  # fmt: skip

    def _check_affinity(self, affinity: Any) -> None:
        known = {group["metadata"]["id"] for group in self.node_groups}
        for group in (affinity or {}).get("allowed_dedicated_node_groups") or []:
            if group not in known:
                raise ApiError(
                    400, "InvalidNodeGroup",
                    f"dedicated node group {group!r} not found in this workspace "
                    f"(node group ids: {', '.join(sorted(known))})",
                )  # fmt: skip

    def _check_envs(self, envs: Any) -> None:
        for env in envs or []:
            name = env.get("name", "") if isinstance(env, dict) else ""
            if not ENV_NAME_PATTERN.match(name) or name in RESERVED_ENV_NAMES:
                raise ApiError(400, "InvalidEnv", f"invalid or reserved env var name {name!r}")
            ref = (env.get("value_from") or {}).get("secret_name_ref")
            if ref is not None and ref not in self.secrets:
                raise ApiError(400, "SecretNotFound", f"secret {ref!r} not found (env {name})")

    def _check_mounts(self, mounts: Any) -> None:
        for mount in mounts or []:
            if not mount.get("from") or not mount.get("mount_path"):
                raise ApiError(400, "InvalidMount", "mounts[]: from and mount_path are required")

    def _check_name(self, name: Any, what: str) -> str:
        if not isinstance(name, str) or not NAME_PATTERN.match(name) or len(name) > 36 \
                or name.endswith("-"):  # fmt: skip
            raise ApiError(400, "InvalidName", f"invalid {what} name {name!r}")
        return name

    def endpoint_tokens(self, deployment: Deployment) -> set[str]:
        tokens = set()
        for token in deployment.spec.get("api_tokens") or []:
            if "value" in token:
                tokens.add(token["value"])
            ref = (token.get("value_from") or {}).get("token_name_ref")
            if ref in self.secrets:
                tokens.add(self.secrets[ref])
        return tokens

    # ------------------------------------------------------------------ deployments

    def create_deployment(self, body: dict[str, Any]) -> Deployment:
        metadata = body.get("metadata") or {}
        name = self._check_name(metadata.get("name") or metadata.get("id"), "deployment")
        if name in self.deployments:
            raise ApiError(409, "AlreadyExists", f"deployment {name!r} already exists")
        spec = body.get("spec") or {}
        resources = spec.get("resource_requirement") or {}
        self._check_shape(resources.get("resource_shape"), "resource_requirement.resource_shape")
        self._check_affinity(resources.get("affinity"))
        if int(resources.get("min_replicas", 1)) > int(resources.get("max_replicas", 1)):
            raise ApiError(400, "InvalidReplicas", "min_replicas must not exceed max_replicas")
        self._check_envs(spec.get("envs"))
        self._check_mounts(spec.get("mounts"))
        tokens = spec.get("api_tokens") or []
        if tokens and spec.get("allow_unauthenticated_access") is True:
            raise ApiError(400, "InvalidAuth", "api_tokens and allow_unauthenticated_access")
        for token in tokens:
            ref = (token.get("value_from") or {}).get("token_name_ref")
            if ref is not None and ref not in self.secrets:
                raise ApiError(400, "SecretNotFound", f"secret {ref!r} not found (api_tokens)")
        scripted = _literal_envs(spec).get(STATE_ENV)
        if scripted is not None and scripted not in FORCIBLE_STATES:
            raise ApiError(400, "InvalidEnv", f"{STATE_ENV}: one of {', '.join(FORCIBLE_STATES)}")
        deployment = Deployment(
            name=name,
            spec=spec,
            created_at=now_ms(),
            ready_at=time.monotonic() + float(self.faults.ready_after),
            forced_state=scripted or self.faults.deployment_state,
            external_endpoint=f"{self.external_base}/ep/{name}",
        )
        self.deployment_logs[name] = deployment.logs
        deployment.logs.add(f"Creating replica of {name} ({resources.get('resource_shape')})")
        self.deployments[name] = deployment
        return deployment

    def get_deployment(self, name: str) -> Deployment:
        deployment = self.deployments.get(name)
        if deployment is None:
            raise ApiError(404, "NotFound", f"deployment {name!r} not found")
        return deployment

    def delete_deployment(self, name: str) -> Deployment:
        deployment = self.get_deployment(name)
        if deployment.deleting_since is None:
            deployment.deleting_since = time.monotonic()
            deployment.logs.add("Deleting")
            asyncio.get_running_loop().call_later(
                float(self.faults.delete_after), self._forget_deployment, deployment
            )
        return deployment

    def _forget_deployment(self, deployment: Deployment) -> None:
        if self.deployments.get(deployment.name) is deployment:
            del self.deployments[deployment.name]
        if deployment.process is not None and deployment.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(deployment.process.pid, signal.SIGTERM)

    async def start_model_server(self, deployment: Deployment) -> None:
        """Point the deployment at a model server: the given one, or a simulator it starts."""
        if self.model_server:
            deployment.upstream = self.model_server.rstrip("/")
            return
        envs = _literal_envs(deployment.spec)
        model = envs.get("SERVED_MODEL_NAME") or "model"
        answer = envs.get(ANSWER_ENV)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "evalfleet.testing.endpoint", "--port", "0",
            "--model", str(model), *(["--default-answer", answer] if answer is not None else []),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        deployment.process = process
        assert process.stdout is not None
        line = (await process.stdout.readline()).decode().strip()
        if deployment.deleting_since is not None:
            self._forget_deployment(deployment)  # deleted while its server was starting
            return
        if not line.startswith("READY "):
            deployment.logs.add(f"model server did not start: {line or 'no output'}")
            return
        deployment.upstream = line.split(" ", 1)[1]
        deployment.logs.add(f"model server {model} listening")

    # ------------------------------------------------------------------ jobs

    def create_job(self, body: dict[str, Any]) -> Job:
        metadata = dict(body.get("metadata") or {})
        name = self._check_name(metadata.get("name") or metadata.get("id"), "job")
        spec = dict(body.get("spec") or {})
        self._check_shape(spec.get("resource_shape"), "resource_shape")
        self._check_affinity(spec.get("affinity"))
        self._check_envs(spec.get("envs"))
        self._check_mounts(spec.get("mounts"))
        if not (spec.get("container") or {}).get("command"):
            raise ApiError(400, "InvalidJob", "container.command is required by this emulator")
        for key, default in (("completions", 1), ("parallelism", 1), ("envs", []),
                             ("mounts", []), ("image_pull_secrets", []),
                             ("ttl_seconds_after_finished", 600)):  # fmt: skip
            spec.setdefault(key, default)
        job_id = f"{name}-{secrets.token_hex(2)}"
        while job_id in self.jobs:
            job_id = f"{name}-{secrets.token_hex(2)}"
        metadata.pop("id", None)
        job = Job(
            id=job_id, name=name, spec=spec, metadata=metadata, created_at=now_ms(),
            workdir=self.root / "jobs" / job_id,
        )  # fmt: skip
        self.jobs[job_id] = job
        job.runner = asyncio.get_running_loop().create_task(self._run_job(job))
        return job

    def get_job(self, job_id: str, mode: str = "alive_and_archive") -> Job:
        job = self.jobs.get(job_id)
        if job is None or not _visible(job, mode):
            raise ApiError(404, "NotFound", f"job {job_id!r} not found")
        return job

    def list_jobs(self, mode: str, q: str | None) -> list[Job]:
        jobs = [j for j in self.jobs.values() if _visible(j, mode)]
        if q:
            jobs = [j for j in jobs if q in j.name]
        return sorted(jobs, key=lambda job: (job.created_at, job.id))

    def delete_job(self, job_id: str, mode: str) -> Job:
        job = self.get_job(job_id, mode)
        if job.state != "Deleting":
            job.state = "Deleting"
            job.logs.add("job deleted")
            self._stop_process(job)
            asyncio.get_running_loop().call_later(
                float(self.faults.delete_after), self.jobs.pop, job.id, None
            )
        return job

    def _stop_process(self, job: Job) -> None:
        if job.process is not None and job.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(job.process.pid, signal.SIGKILL)
        if job.runner is not None and job.process is None:
            job.runner.cancel()

    def _job_env(self, job: Job, container_bin: Path | None) -> dict[str, str]:
        env = {key: os.environ[key] for key in PASSED_ENV if key in os.environ}
        if container_bin is None:  # this interpreter's environment is the image
            env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        else:  # the job's own environment first; no evalfleet of the host's reachable
            env.pop("PYTHONPATH", None)
            env.pop("VIRTUAL_ENV", None)
            kept = [d for d in env.get("PATH", "").split(os.pathsep)
                    if d and not (Path(d) / "evalfleet").exists()]  # fmt: skip
            env["PATH"] = os.pathsep.join([str(container_bin), *kept])
            env["PIP_NO_INDEX"] = "1"  # what the job installs must come with the job
        env.update(
            {
                "HOME": str(job.workdir),
                "TMPDIR": str(job.workdir),
                "LEPTON_JOB_NAME": job.name,
                "LEPTON_WORKSPACE_ID": self.workspace_id,
            }
        )
        for entry in job.spec.get("envs") or []:
            ref = (entry.get("value_from") or {}).get("secret_name_ref")
            if ref is not None:
                if ref not in self.secrets:
                    raise ApiError(400, "SecretNotFound", f"secret {ref!r} not found")
                env[entry["name"]] = self.secrets[ref]
            else:
                env[entry["name"]] = str(entry.get("value", ""))
        return env  # fmt: skip

    async def _run_job(self, job: Job) -> None:
        try:
            await asyncio.sleep(float(self.faults.queue_after))
            job.state = "Starting"
            job.workdir.mkdir(parents=True, exist_ok=True)
            container = None
            if self.job_python is not None:
                try:
                    container = await asyncio.to_thread(
                        job_container, self.job_python, job.workdir / ".container"
                    )
                except (OSError, subprocess.CalledProcessError) as exc:
                    job.logs.add(f"cannot start the job's container: {exc}")
                    self._finish(job, "Failed")
                    return
            try:
                env = self._job_env(job, container)
            except ApiError as exc:
                job.logs.add(f"cannot start the job: {exc.message}")
                self._finish(job, "Failed")
                return
            command = [str(part) for part in job.spec["container"]["command"]]
            job.process = await asyncio.create_subprocess_exec(
                *command, cwd=job.workdir, env=env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True, limit=1 << 24,
            )  # fmt: skip
            if job.state == "Deleting":
                self._stop_process(job)
                return
            job.state = "Running"
            assert job.process.stdout is not None
            async for raw in job.process.stdout:
                job.logs.add(raw.decode("utf-8", "replace").rstrip("\n"))
            code = await job.process.wait()
            if job.state != "Deleting":
                job.logs.add(f"container exited with code {code}")
                self._finish(job, "Completed" if code == 0 else "Failed")
        except asyncio.CancelledError:
            pass
        finally:
            shutil.rmtree(job.workdir, ignore_errors=True)  # the container's disk goes too

    def _finish(self, job: Job, state: str) -> None:
        job.state = state
        job.completion_time = int(time.time())
        ttl = self.faults.archive_after
        if ttl is None:
            ttl = job.spec.get("ttl_seconds_after_finished") or 600
        asyncio.get_running_loop().call_later(float(ttl), _archive, job)

    async def shutdown(self) -> None:
        for job in self.jobs.values():
            self._stop_process(job)
        for deployment in self.deployments.values():
            self._forget_deployment(deployment)

    def live(self) -> dict[str, list[str]]:
        """What still costs money: deployments and jobs not yet finished."""
        return {
            "deployments": sorted(self.deployments),
            "jobs": sorted(
                job.id for job in self.jobs.values() if job.state not in ("Completed", "Failed")
            ),
        }


def _literal_envs(spec: dict[str, Any]) -> dict[str, str]:
    """A spec's envs that have a literal value, by name."""
    return {
        str(env["name"]): str(env["value"])
        for env in spec.get("envs") or []
        if isinstance(env, dict) and "name" in env and "value" in env
    }


def _archive(job: Job) -> None:
    job.archived = True


def _visible(job: Job, mode: str) -> bool:
    if mode == "archive_only":
        return job.archived
    if mode == "alive_and_archive":
        return True
    return job.alive
