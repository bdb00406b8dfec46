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
from pathlib import Path
from typing import Any

from evalfleet.exceptions import DeploymentError, EvalFleetError, UsageError
from evalfleet.executors._process import process_alive, stop_runner, terminate_as_interrupt
from evalfleet.executors.base import Invocation, Job, JobState, JobStatus, unknown_statuses
from evalfleet.executors.lepton import _remote as remote
from evalfleet.executors.lepton.spec import (
    ENDPOINT_URL_PLACEHOLDER,
    _slug,
    bodies,
    endpoint_name,
)

POLL_START_S = 0.5
POLL_MAX_S = 5.0


class LeptonExecutor:
    """One Lepton endpoint per invocation (unless `deployment.type: none`), one job per task."""

    name = "lepton"

    def plan(self, invocation: Invocation) -> dict[str, Any]:
        """What launching would send to Lepton, as JSON-able data; contacts nothing.

        Raises ConfigError listing everything Lepton would refuse.
        """
        config = invocation.config
        deployment, jobs = bodies(invocation)
        readiness = None
        teardown: list[str] = []
        if deployment is not None:
            name = endpoint_name(invocation)
            platform = config.execution.lepton_platform.deployment
            readiness = {
                "poll": f"GET /deployments/{name}",
                "until": "Ready",
                "timeout_s": platform.endpoint_readiness_timeout,
                "health_probe": f"<external_endpoint>{config.deployment.endpoints.health}",
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

    def __init__(self, client: Any = None) -> None:
        self._given_client = client

    def _client(self) -> Any:
        """A client from the user's credentials (UsageError saying what to do if none)."""
        if self._given_client is not None:
            return self._given_client
        from evalfleet.executors.lepton.client import LeptonClient, resolve_credentials

        return LeptonClient(resolve_credentials())

    # ------------------------------------------------------------------ run

    def launch(
        self, invocation: Invocation, shown_config: dict[str, Any], keep_endpoint: bool = False
    ) -> int:
        """Run the invocation in the foreground; returns how many tasks did not succeed."""
        import yaml

        from evalfleet.store import InvocationStore, NewJob

        inv = invocation
        bodies(inv)  # refuse what Lepton would refuse before contacting anything
        client = self._client()
        client.workspace()  # credentials and route family, before anything is recorded
        root = Path(inv.output_dir)
        root.mkdir(parents=True, exist_ok=True)
        (root / "config.yaml").write_text(
            yaml.safe_dump(shown_config, sort_keys=False), encoding="utf-8"
        )
        for job in inv.jobs:
            local = Path(remote.local_dir(inv.output_dir, job.task))
            local.mkdir(parents=True, exist_ok=True)
            (local / "job.json").write_text(json.dumps(job.spec, indent=2) + "\n", "utf-8")
        with InvocationStore() as store:
            inv.record_in(
                store,
                "lepton",
                shown_config,
                [
                    NewJob(task=job.task, output_dir=remote.local_dir(inv.output_dir, job.task))
                    for job in inv.jobs
                ],
            )
            store.update_invocation_handle(inv.invocation_id, {
                "workspace_id": client.credentials.workspace_id,
                "endpoint": None if inv.config.deployment.type == "none" else endpoint_name(inv),
                "endpoint_deleted": False,
                "keep_endpoint": keep_endpoint,
                "job_prefix": f"eval-{_slug(inv.invocation_id)}",
            })  # fmt: skip
            return self._execute(inv, store, client, list(inv.jobs), keep_endpoint)

    def _execute(
        self, inv: Invocation, store: Any, client: Any, jobs: list[Job], keep_endpoint: bool
    ) -> int:
        """Endpoint up, jobs in, watch them to the end; always leave no endpoint behind
        unless asked to keep it after a run that went through."""
        deployment_body, job_bodies = bodies(inv)
        store.update_invocation_handle(inv.invocation_id, {"runner_pid": os.getpid()})
        keep = False
        try:
            with terminate_as_interrupt():
                try:
                    url = None
                    if deployment_body is not None:
                        url = self._bring_up(inv, store, client, deployment_body)
                    for job in jobs:
                        self._submit(store, client, job, job_bodies[job.index], url)
                    failures = self._watch(inv.invocation_id, store, client)
                    with contextlib.suppress(DeploymentError):  # best effort; kill also does it
                        remote.delete_strays(client, store.get(inv.invocation_id))
                    keep = keep_endpoint
                    return failures
                except BaseException as exc:
                    self._abandon(inv.invocation_id, store, client, exc)
                    raise
        finally:
            self._tear_down(inv.invocation_id, store, client, keep)

    def _bring_up(self, inv: Invocation, store: Any, client: Any, body: dict[str, Any]) -> str:
        config = inv.config
        name = body["metadata"]["name"]
        timeout = config.execution.lepton_platform.deployment.endpoint_readiness_timeout
        store.update_invocation_handle(
            inv.invocation_id, {"endpoint": name, "endpoint_deleted": False}
        )
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
        token = os.environ.get(config.execution.lepton_platform.tasks.api_key_secret)
        health = external + config.deployment.endpoints.health
        left = max(30.0, timeout - (time.monotonic() - started))
        how = remote.probe_health(health, token, left)
        remote.note(f"Lepton endpoint {name} Ready after {time.monotonic() - started:.1f} s, {how}")
        store.update_invocation_handle(inv.invocation_id, {"endpoint_url": external})
        return external

    def _wait_gone(self, client: Any, name: str, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while client.get_deployment(name) is not None:
            if time.monotonic() > deadline:
                raise DeploymentError(f"endpoint {name} is still Deleting after {timeout:g} s")
            time.sleep(1.0)

    def _submit(
        self, store: Any, client: Any, job: Job, body: dict[str, Any], url: str | None
    ) -> None:
        body = json.loads(json.dumps(body))
        for env in body["spec"]["envs"]:
            if env.get("value") == ENDPOINT_URL_PLACEHOLDER:
                env["value"] = url
        created = client.create_job(body)
        lepton_id = str(created["metadata"]["id"])
        store.update_job(
            job.job_id, state="PENDING", detail="submitted to Lepton",
            handle={"lepton_id": lepton_id, "lepton_name": body["metadata"]["name"]},
        )  # fmt: skip

    def _watch(self, invocation_id: str, store: Any, client: Any) -> int:
        """Poll until every job of the invocation has ended; returns how many did not succeed."""
        delay = POLL_START_S
        while True:
            record = store.get(invocation_id)
            open_jobs = [
                j for j in record.jobs if j.state in remote.OPEN and j.handle.get("lepton_id")
            ]
            if not open_jobs:
                return sum(job.state != "SUCCESS" for job in record.jobs)
            try:
                listed = remote.remote_jobs(client, record)
                for job in open_jobs:
                    remote.absorb(client, store, job, listed.get(job.handle["lepton_id"]))
            except DeploymentError as exc:  # Lepton unreachable for a while: keep waiting
                remote.note(f"warning: {exc}")
            time.sleep(delay)
            delay = min(delay * 1.5, POLL_MAX_S)

    def _abandon(self, invocation_id: str, store: Any, client: Any, exc: BaseException) -> None:
        """A launch that stops half-way: delete its jobs, record why."""
        record = store.get(invocation_id)
        with contextlib.suppress(EvalFleetError):  # must not mask the original error
            remote.delete_all(client, _without_endpoint(record))
        interrupted = isinstance(exc, KeyboardInterrupt)
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        for job in record.jobs:
            if job.state in remote.OPEN:
                store.update_job(
                    job.job_id,
                    state="KILLED" if interrupted else "FAILED",
                    detail="stopped (Ctrl-C or evalfleet kill)" if interrupted
                    else f"not run: {first}",
                )  # fmt: skip

    def _tear_down(self, invocation_id: str, store: Any, client: Any, keep: bool) -> None:
        record = store.get(invocation_id)
        name = record.handle.get("endpoint")
        if not name or record.handle.get("endpoint_deleted"):
            return
        if keep:
            remote.note(f"Lepton endpoint {name} kept (--keep-endpoint); evalfleet kill "
                        f"{invocation_id} deletes it")  # fmt: skip
            return
        try:
            existed = client.delete_deployment(name)
        except DeploymentError as exc:
            remote.note(f"warning: could not delete endpoint {name}: {exc}; "
                        f"run evalfleet kill {invocation_id}")  # fmt: skip
            return
        store.update_invocation_handle(invocation_id, {"endpoint_deleted": True})
        if existed:
            remote.note(f"Lepton endpoint {name} deleted")

    # ------------------------------------------------------------------ status

    def status(self, record: Any) -> list[JobStatus]:
        """From the backend: one job listing (live and archived) and one endpoint GET. When
        the runner is gone, finished jobs' results are brought home here and a finished
        invocation's endpoint is deleted (unless it was kept on purpose)."""
        handle = record.handle
        name = handle.get("endpoint")
        endpoint_open = bool(name) and not handle.get("endpoint_deleted")
        open_jobs = [j for j in record.jobs if j.state in remote.OPEN]
        if not open_jobs and not (endpoint_open and not handle.get("keep_endpoint")):
            return [
                _row(record, job.job_id, job.task, job.state, job.detail) for job in record.jobs
            ]
        from evalfleet.store import InvocationStore

        try:
            client = self._client()
            runner_alive = process_alive(handle.get("runner_pid"))
            with InvocationStore() as store:
                shown = {}
                if open_jobs:
                    shown = self._refresh_jobs(client, store, record, open_jobs, runner_alive)
                record = store.get(record.invocation_id)
                endpoint_note = ""
                if endpoint_open:
                    endpoint_note = self._check_endpoint(client, store, record, runner_alive)
        except EvalFleetError as exc:
            return unknown_statuses(record, f"cannot ask Lepton: {str(exc).splitlines()[0]}")
        rows = []
        for job in record.jobs:
            state, detail = job.state, job.detail
            if job.job_id in shown:
                observed, detail = shown[job.job_id]
                state = observed.value
            if state in remote.OPEN and endpoint_note:
                detail = f"{detail}; {endpoint_note}"
            rows.append(_row(record, job.job_id, job.task, state, detail))
        return rows

    def _refresh_jobs(
        self, client: Any, store: Any, record: Any, open_jobs: list[Any], runner_alive: bool
    ) -> dict[str, tuple[JobState, str]]:
        """One job listing. Without a runner, record what it shows (results brought home);
        with one, only show it: the runner records states and brings results home itself."""
        listed = remote.remote_jobs(client, record)
        shown = {}
        for job in open_jobs:
            lepton_id = job.handle.get("lepton_id")
            if runner_alive:
                if lepton_id:
                    state, detail = remote.observe(listed.get(lepton_id))
                    if state.is_terminal:
                        # Ended on Lepton, but its results are not home yet: still RUNNING
                        # for us, so that `export` right after a SUCCESS finds them.
                        state = JobState.RUNNING
                        detail = f"{detail}; the run is bringing its results home"
                    shown[job.job_id] = (state, detail)
            elif lepton_id:
                remote.absorb(client, store, job, listed.get(lepton_id))
            else:
                detail = "never submitted: the run was interrupted; resume to run it"
                store.update_job(job.job_id, state="FAILED", detail=detail)
        return shown

    def _check_endpoint(self, client: Any, store: Any, record: Any, runner_alive: bool) -> str:
        """The endpoint's state; deleted here once the invocation has ended without a runner
        to do it (unless it was kept on purpose)."""
        name = record.handle["endpoint"]
        deployment = client.get_deployment(name)
        state = (deployment or {}).get("status", {}).get("state", "gone")
        finished = all(job.state not in remote.OPEN for job in record.jobs)
        if not finished or runner_alive or record.handle.get("keep_endpoint"):
            return f"endpoint {name}: {state}"
        if deployment is not None:
            client.delete_deployment(name)
        store.update_invocation_handle(record.invocation_id, {"endpoint_deleted": True})
        return f"endpoint {name}: deleted (the invocation has ended)"

    # ------------------------------------------------------------------ logs

    def logs(self, record: Any, job_id: str | None, follow: bool) -> Iterator[str]:
        """The endpoint's and each job's lines through `GET /logs`, prefixed with their source;
        with `follow`, new lines until every job has ended."""
        client = self._client()
        sources: list[tuple[str, dict[str, str], str]] = []
        if job_id is None and record.handle.get("endpoint"):
            sources.append(("endpoint", {"deployment": record.handle["endpoint"]}, ""))
        for job in record.jobs:
            if (job_id is None or job.job_id == job_id) and job.handle.get("lepton_id"):
                sources.append((job.task, {"job": job.handle["lepton_id"]}, job.output_dir))
        cursors: dict[str, int | None] = {name: None for name, _, _ in sources}
        while True:
            fresh = False
            for name, where, output_dir in sources:
                lines = list(client.all_logs(start=cursors[name], **where))
                if lines:
                    fresh = True
                    cursors[name] = lines[-1][0] + 1
                for _, line in remote.readable(iter(lines), output_dir or "the output dir"):
                    yield f"[{name}] {line}"
            if not follow:
                return
            if not fresh:
                listed = remote.remote_jobs(client, record)
                states = [remote.observe(listed.get(str(j.handle.get("lepton_id"))))[0]
                          for j in record.jobs if j.handle.get("lepton_id")]  # fmt: skip
                if all(state.is_terminal for state in states):
                    return
                time.sleep(1.0)

    # ------------------------------------------------------------------ kill, resume

    def kill(self, record: Any) -> list[str]:
        """Delete the invocation's jobs and then, always, its endpoint; idempotent."""
        stopped = []
        if stop_runner(record.handle.get("runner_pid")):
            stopped.append(f"run process {record.handle['runner_pid']}")
        from evalfleet.store import InvocationStore

        with InvocationStore() as store:
            record = store.get(record.invocation_id)
        client = self._client()
        deleted, errors, endpoint_gone = remote.delete_all(client, record)
        if endpoint_gone:
            with InvocationStore() as store:
                store.update_invocation_handle(record.invocation_id, {"endpoint_deleted": True})
        if errors:
            raise DeploymentError(
                f"kill did not finish ({errors[0]}); nothing was left on purpose: run "
                f"evalfleet kill {record.invocation_id} again"
            )
        return stopped + deleted

    def resume(self, record: Any) -> int:
        """Rerun, in the foreground, every task that did not succeed (a new endpoint if the
        old one is gone, new Lepton jobs)."""
        from evalfleet.config.redact import REDACTED
        from evalfleet.config.schema import RunConfig
        from evalfleet.planner import plan_invocation
        from evalfleet.store import InvocationStore

        if process_alive(record.handle.get("runner_pid")):
            raise UsageError(
                f"invocation {record.invocation_id} is still running "
                f"(pid {record.handle['runner_pid']}); kill it first or wait"
            )
        todo = [job for job in record.jobs if job.state != "SUCCESS"]
        if not todo:
            raise UsageError(f"nothing to resume: every task of {record.invocation_id} succeeded")
        if REDACTED in json.dumps(record.config):
            raise UsageError(
                "cannot resume: the config held secret values that were not stored; reference "
                "secrets by name (secret_name_ref) instead, or start a new run"
            )
        inv = plan_invocation(RunConfig.model_validate(record.config), record.invocation_id)
        client = self._client()
        client.workspace()
        wanted = {job.job_id for job in todo}
        with InvocationStore() as store:
            for job in todo:
                store.update_job(job.job_id, state="PENDING", detail="resumed")
            jobs = [job for job in inv.jobs if job.job_id in wanted]
            keep = bool(record.handle.get("keep_endpoint"))
            return self._execute(inv, store, client, jobs, keep)


def _row(record: Any, job_id: str, task: str, state: str, detail: str) -> JobStatus:
    return JobStatus(record.invocation_id, job_id, task, JobState(state), detail)


def _without_endpoint(record: Any) -> Any:
    """The record as `delete_all` should see it when only the jobs are to go."""
    from dataclasses import replace

    return replace(record, handle={**record.handle, "endpoint": None})
