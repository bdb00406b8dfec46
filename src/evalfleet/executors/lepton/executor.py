"""The Lepton executor: one endpoint per invocation (unless `deployment.type: none`), one
Lepton job per task, all through the workspace REST API (`client.py`; no SDK).

`run` stays in the foreground: it records the invocation, creates the endpoint, waits for
Ready and probes the model's health path through the external endpoint, submits the jobs
(their ids go to the store), polls them with one listing per round, brings each finished
job's results home from its log (`results.py`), and deletes the endpoint when the last job
ends (`--keep-endpoint` keeps it). Ctrl-C, SIGTERM (`evalfleet kill`) and a failed launch
delete what was created. `status` reads the backend (one job listing, one endpoint GET),
brings home results a dead runner could not, and deletes a finished invocation's endpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

from evalfleet.contract import JSON, OPEN_STATES, Invocation, Job, JobState
from evalfleet.exceptions import BackendUnreachable, DeploymentError, EvalFleetError, UsageError
from evalfleet.executors.base import Executor, LogSource, Observation, Run
from evalfleet.executors.lepton import _remote as remote
from evalfleet.executors.lepton._settings import settings
from evalfleet.executors.lepton.results import ResultsMissing
from evalfleet.executors.lepton.spec import (
    ENDPOINT_URL_PLACEHOLDER,
    LEPTON_ENDPOINT_TOKEN_ENV,
    LEPTON_ENDPOINT_URL_ENV,
    _slug,
    bodies,
    endpoint_name,
)

if TYPE_CHECKING:
    from evalfleet.config.schema import RunConfig
    from evalfleet.executors.lepton.client import LeptonClient
    from evalfleet.store import InvocationRecord, JobRecord

POLL_START_S = 0.5
POLL_MAX_S = 5.0


class LeptonExecutor(Executor):
    """One Lepton endpoint per invocation (unless `deployment.type: none`), one job per task."""

    name = "lepton"
    creates_endpoints = True

    def __init__(self, client: LeptonClient | None = None) -> None:
        self._given_client = client
        self._made_client: LeptonClient | None = None

    def _client(self) -> LeptonClient:
        """A client from the user's credentials (UsageError saying what to do if none)."""
        if self._given_client is not None:
            return self._given_client
        if self._made_client is None:
            from evalfleet.executors.lepton.client import LeptonClient, resolve_credentials

            self._made_client = LeptonClient(resolve_credentials())
        return self._made_client

    # ------------------------------------------------------------------ planning

    def plan(self, invocation: Invocation) -> JSON:
        """What launching would send to Lepton, as JSON-able data; contacts nothing.

        Raises ConfigError listing everything Lepton would refuse.
        """
        config = invocation.config
        deployment, jobs = bodies(invocation)
        readiness = None
        teardown: list[str] = []
        if deployment is not None:
            name = endpoint_name(invocation)
            platform = settings(config).lepton_platform.deployment
            readiness = {
                "poll": f"GET /deployments/{name}",
                "until": "Ready",
                "timeout_s": platform.endpoint_readiness_timeout,
                "health_probe": f"<external_endpoint>{_health_path(config)}",
            }
            teardown = [f"DELETE /deployments/{name}"]
        return {
            "executor": self.name,
            "invocation_id": invocation.invocation_id,
            "output_dir": invocation.output_dir,
            "deployment": (
                None
                if deployment is None
                else {"method": "POST", "path": "/deployments", "body": deployment}
            ),
            "readiness": readiness,
            "jobs": [
                {
                    "job_id": job.job_id,
                    "task": job.task,
                    "method": "POST",
                    "path": "/jobs",
                    "body": body,
                }
                for job, body in zip(invocation.jobs, jobs, strict=True)
            ],
            "teardown": teardown,
        }

    @staticmethod
    def render_plan(plan: JSON) -> list[str]:
        lines = []
        deployment = plan.get("deployment")
        step = 1
        if deployment:
            lines.append(f"\n{step}. {deployment['method']} {deployment['path']}")
            lines.append(_indent(json.dumps(deployment["body"], indent=2)))
            step += 1
            readiness = plan.get("readiness")
            if readiness:
                lines.append(
                    f"\n{step}. poll {readiness['poll']} until {readiness['until']} "
                    f"(up to {readiness['timeout_s']} s), then probe {readiness['health_probe']}"
                )
                step += 1
        for job in plan["jobs"]:
            lines.append(
                f"\n{step}. {job['method']} {job['path']}  ({job['job_id']}, {job['task']})"
            )
            lines.append(_indent(json.dumps(job["body"], indent=2)))
            step += 1
        for teardown in plan.get("teardown") or []:
            lines.append(f"\n{step}. when the last job ends: {teardown}")
            step += 1
        return lines

    def job_root(self, config: RunConfig, invocation_id: str, output_dir: str) -> str:
        mounts = settings(config).lepton_platform.tasks.mounts
        if mounts and settings(config).evaluation_tasks.use_shared_storage:
            return f"{mounts[0].mount_path.rstrip('/')}/evalfleet/{invocation_id}"
        # Relative: the job script runs in a fresh scratch dir (see spec.py).
        return f"evalfleet/{invocation_id}"

    def endpoint_base(self, config: RunConfig, port: int) -> tuple[str, str | None]:
        return "${" + LEPTON_ENDPOINT_URL_ENV + "}", LEPTON_ENDPOINT_TOKEN_ENV

    # ------------------------------------------------------------------ running

    def prepare(self, invocation: Invocation) -> None:
        bodies(invocation)  # refuse what Lepton would refuse before contacting anything
        self._client().workspace()  # credentials and route family, before anything is recorded

    def launch_handles(self, inv: Invocation) -> tuple[JSON, list[JSON]]:
        return {
            "workspace_id": self._client().credentials.workspace_id,
            "endpoint": None if inv.config.deployment.type == "none" else endpoint_name(inv),
            "endpoint_deleted": False,
            "job_prefix": f"eval-{_slug(inv.invocation_id)}",
        }, [{} for _ in inv.jobs]

    def check_resumable(self, record: InvocationRecord) -> None:
        from evalfleet.config.redact import REDACTED

        if REDACTED in json.dumps(record.config):
            raise UsageError(
                "cannot resume: the config held secret values that were not stored; reference "
                "secrets by name (secret_name_ref) instead, or start a new run"
            )
        self._client().workspace()

    def start(self, run: Run) -> None:
        """Endpoint up, jobs in, watched to their end (results brought home as each ends)."""
        inv = run.invocation
        client = self._client()
        run.set_handle({"keep_endpoint": run.options.keep_endpoint})
        deployment_body, job_bodies = bodies(inv)
        url = None
        if deployment_body is not None:
            url = self._bring_up(run, client, deployment_body)
        for job in run.jobs:
            self._submit(run, client, job, job_bodies[job.index], url)
        self._watch(run, client)
        with contextlib.suppress(DeploymentError):  # best effort; kill also does it
            remote.delete_strays(client, run.record())

    def _bring_up(self, run: Run, client: LeptonClient, body: JSON) -> str:
        config = run.invocation.config
        name = body["metadata"]["name"]
        timeout = settings(config).lepton_platform.deployment.endpoint_readiness_timeout
        run.set_handle({"endpoint": name, "endpoint_deleted": False})
        existing = client.get_deployment(name)
        if existing is not None and (existing.get("status") or {}).get("state") == "Deleting":
            self._wait_gone(client, name)
            existing = None
        if existing is None:
            client.create_deployment(body)
            remote.note(f"Lepton endpoint {name} created; waiting for Ready (up to {timeout} s)")
        started = time.monotonic()
        deployment = remote.wait_ready(client, name, timeout)
        external = deployment["status"]["endpoint"]["external_endpoint"].rstrip("/")
        token = os.environ.get(settings(config).lepton_platform.tasks.api_key_secret)
        health = external + _health_path(config)
        left = max(30.0, timeout - (time.monotonic() - started))
        how = remote.probe_health(health, token, left)
        remote.note(f"Lepton endpoint {name} Ready after {time.monotonic() - started:.1f} s, {how}")
        run.set_handle({"endpoint_url": external})
        return str(external)

    def _wait_gone(self, client: LeptonClient, name: str, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while client.get_deployment(name) is not None:
            if time.monotonic() > deadline:
                raise DeploymentError(f"endpoint {name} is still Deleting after {timeout:g} s")
            time.sleep(1.0)

    def _submit(
        self, run: Run, client: LeptonClient, job: Job, body: JSON, url: str | None
    ) -> None:
        body = json.loads(json.dumps(body))
        for env in body["spec"]["envs"]:
            if env.get("value") == ENDPOINT_URL_PLACEHOLDER:
                env["value"] = url
        created = client.create_job(body)
        lepton_id = str(created["metadata"]["id"])
        run.update(
            job, JobState.PENDING, "submitted to Lepton",
            handle={"lepton_id": lepton_id, "lepton_name": body["metadata"]["name"]},
        )  # fmt: skip

    def _watch(self, run: Run, client: LeptonClient) -> None:
        """Poll until every job of the run has ended, recording each as it does."""
        jobs = {job.job_id: job for job in run.jobs}
        delay = POLL_START_S
        while True:
            open_jobs = [j for j in run.open_jobs() if j.handle.get("lepton_id")]
            if not open_jobs:
                return
            try:
                listed = remote.remote_jobs(client, run.record())
                for stored in open_jobs:
                    seen = self._observe_job(client, stored, listed, bring_home=True)
                    if seen.exit_code is not None:
                        run.ended(jobs[stored.job_id], seen.exit_code)
                    elif (seen.state.value, seen.detail) != (stored.state, stored.detail):
                        run.update(jobs[stored.job_id], seen.state, seen.detail)
            except DeploymentError as exc:  # Lepton unreachable for a while: keep waiting
                remote.note(f"warning: {exc}")
            time.sleep(delay)
            delay = min(delay * 1.5, POLL_MAX_S)

    def abandon(self, run: Run, error: BaseException) -> None:
        """Delete the jobs (the endpoint goes in `finish`)."""
        record = run.record()
        remote.delete_all(
            self._client(), replace(record, handle={**record.handle, "endpoint": None})
        )

    def finish(self, run: Run, completed: bool) -> None:
        record = run.record()
        name = record.handle.get("endpoint")
        if not name or record.handle.get("endpoint_deleted"):
            return
        if completed and run.options.keep_endpoint:
            remote.note(f"Lepton endpoint {name} kept (--keep-endpoint); evalfleet kill "
                        f"{run.invocation_id} deletes it")  # fmt: skip
            return
        try:
            existed = self._client().delete_deployment(name)
        except DeploymentError as exc:
            remote.note(f"warning: could not delete endpoint {name}: {exc}; "
                        f"run evalfleet kill {run.invocation_id}")  # fmt: skip
            return
        run.set_handle({"endpoint_deleted": True})
        if existed:
            remote.note(f"Lepton endpoint {name} deleted")

    # ------------------------------------------------------------------ watching

    def needs_observing(self, record: InvocationRecord) -> bool:
        """An ended invocation whose endpoint is still up: status deletes it."""
        handle = record.handle
        return (
            bool(handle.get("endpoint"))
            and not handle.get("endpoint_deleted")
            and not (handle.get("keep_endpoint"))
        )

    def observe(self, record: InvocationRecord, runner_alive: bool) -> dict[str, Observation]:
        """One job listing (live and archived) and one endpoint GET. Without a runner,
        ended jobs' results are brought home here, and an ended invocation's endpoint is
        deleted (unless it was kept on purpose)."""
        try:
            client = self._client()
            seen = {}
            open_jobs = [job for job in record.jobs if job.state in OPEN_STATES]
            if open_jobs:
                listed = remote.remote_jobs(client, record)
                for job in open_jobs:
                    if not job.handle.get("lepton_id"):
                        if not runner_alive:
                            seen[job.job_id] = Observation(
                                JobState.FAILED,
                                "never submitted: the run was interrupted; resume to run it",
                            )
                        continue
                    seen[job.job_id] = self._observe_job(
                        client, job, listed, bring_home=not runner_alive
                    )
            note = self._check_endpoint(client, record, seen, runner_alive)
        except EvalFleetError as exc:
            raise BackendUnreachable(f"cannot ask Lepton: {str(exc).splitlines()[0]}") from None
        if note:
            for job in record.jobs:
                observation = seen.get(job.job_id)
                if observation is None and job.state in OPEN_STATES:
                    observation = Observation(JobState(job.state), job.detail)
                if observation is not None and observation.state.is_open:
                    seen[job.job_id] = replace(
                        observation, detail=f"{observation.detail}; {note}".lstrip("; ")
                    )
        return seen

    def _observe_job(
        self,
        client: LeptonClient,
        job: JobRecord,
        listed: dict[str, JSON],
        bring_home: bool,
    ) -> Observation:
        """A job's Lepton state; an ended one's results are unpacked first when
        `bring_home`, otherwise it shows RUNNING until the runner has brought them home
        (so that `export` right after a SUCCESS finds them)."""
        state, detail = remote.observe(listed.get(job.handle["lepton_id"]))
        if state not in (JobState.SUCCESS, JobState.FAILED):
            return Observation(state, detail)
        if not bring_home:
            return Observation(JobState.RUNNING, f"{detail}; the run is bringing its results home")
        try:
            code = remote.fetch_results(client, job.handle["lepton_id"], job.output_dir)
        except ResultsMissing as exc:
            return Observation(JobState.FAILED, f"{exc}; see evalfleet logs {job.job_id}")
        if state is JobState.FAILED and code == 0:
            code = 1  # Lepton says it failed after evalfleet eval succeeded (the upload?)
        return Observation(state, detail, exit_code=code)

    def _check_endpoint(
        self,
        client: LeptonClient,
        record: InvocationRecord,
        seen: dict[str, Observation],
        runner_alive: bool,
    ) -> str:
        """The endpoint's state; deleted here once the invocation has ended without a runner
        to do it (unless it was kept on purpose)."""
        name = record.handle.get("endpoint")
        if not name or record.handle.get("endpoint_deleted"):
            return ""
        deployment = client.get_deployment(name)
        state = (deployment or {}).get("status", {}).get("state", "gone")
        finished = all(
            (seen[job.job_id].state if job.job_id in seen else JobState(job.state)).is_terminal
            for job in record.jobs
        )
        if not finished or runner_alive or record.handle.get("keep_endpoint"):
            return f"endpoint {name}: {state}"
        if deployment is not None:
            client.delete_deployment(name)
        from evalfleet.store import InvocationStore

        with InvocationStore() as store:
            store.update_invocation_handle(record.invocation_id, {"endpoint_deleted": True})
        return f"endpoint {name}: deleted (the invocation has ended)"

    # ------------------------------------------------------------------ logs

    def log_sources(
        self, record: InvocationRecord, jobs: list[JobRecord], whole: bool
    ) -> list[LogSource]:
        """The endpoint's and each job's lines through `GET /logs`."""
        sources = []
        if whole and record.handle.get("endpoint"):
            sources.append(LogSource("endpoint", f"deployment:{record.handle['endpoint']}"))
        sources += [
            LogSource(job.task, f"job:{job.handle['lepton_id']}")
            for job in jobs
            if job.handle.get("lepton_id")
        ]
        return sources

    def read_logs(
        self, record: InvocationRecord, sources: list[LogSource], offsets: dict[str, int]
    ) -> Iterator[tuple[LogSource, str]]:
        client = self._client()
        dirs = {f"job:{job.handle.get('lepton_id')}": job.output_dir for job in record.jobs}
        for source in sources:
            kind, _, ident = source.where.partition(":")
            lines = list(client.all_logs(start=offsets.get(source.where), **{kind: ident}))
            if lines:
                offsets[source.where] = lines[-1][0] + 1
            where = dirs.get(source.where) or "the output dir"
            for _, line in remote.readable(iter(lines), where):
                yield source, line

    def active(self, record: InvocationRecord) -> bool:
        listed = remote.remote_jobs(self._client(), record)
        states = [
            remote.observe(listed.get(str(job.handle.get("lepton_id"))))[0]
            for job in record.jobs
            if job.handle.get("lepton_id")
        ]
        return not all(state.is_terminal for state in states)

    # ------------------------------------------------------------------ kill

    def cancel(self, record: InvocationRecord) -> list[str]:
        """Delete the invocation's unfinished jobs and then, always, its endpoint."""
        deleted, errors, endpoint_gone = remote.delete_all(self._client(), record)
        if endpoint_gone:
            from evalfleet.store import InvocationStore

            with InvocationStore() as store:
                store.update_invocation_handle(record.invocation_id, {"endpoint_deleted": True})
        if errors:
            raise DeploymentError(
                f"kill did not finish ({errors[0]}); nothing was left on purpose: run "
                f"evalfleet kill {record.invocation_id} again"
            )
        return deleted


def _health_path(config: RunConfig) -> str:
    """The model server's health path (only a deployed server has one)."""
    deployment = config.deployment
    if deployment.type == "none":
        raise ValueError("deployment.type none has no server to probe")
    return str(deployment.endpoints.health)


def _indent(text: str, prefix: str = "   ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())
