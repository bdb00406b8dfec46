"""The Lepton executor: one endpoint per invocation (unless `deployment.type: none`), a
second one for the judge when the config has a `judge_deployment`, one Lepton job per
task, all through the workspace REST API (`client.py`; no SDK).

`run` stays in the foreground: it records the invocation, creates the endpoints (each
name is in the store before its POST), waits for each to be Ready and probes its health
path through its external endpoint, submits the jobs (their ids go to the store), polls
them with one listing per round, brings each finished job's results home from its log
(`results.py`), and deletes the endpoints when the last job ends (`--keep-endpoint` keeps
them). Ctrl-C, SIGTERM (`evalfleet kill`) and a failed launch delete what was created.
`status` reads the backend (one job listing, one GET per endpoint), brings home results a
dead runner could not, and deletes a finished invocation's endpoints.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from evalfleet.config.notices import launcher_differences
from evalfleet.contract import JSON, OPEN_STATES, Invocation, Job, JobState
from evalfleet.exceptions import (
    BackendRefused,
    BackendUnreachable,
    ConfigError,
    DeploymentError,
    EvalFleetError,
    UsageError,
)
from evalfleet.executors.base import Executor, LogSource, Observation, Run
from evalfleet.executors.lepton import _remote as remote
from evalfleet.executors.lepton._settings import settings
from evalfleet.executors.lepton.results import ResultsMissing
from evalfleet.executors.lepton.spec import (
    ENDPOINT_URL_PLACEHOLDER,
    JUDGE_URL_PLACEHOLDER,
    LEPTON_ENDPOINT_TOKEN_ENV,
    LEPTON_ENDPOINT_URL_ENV,
    LEPTON_JUDGE_TOKEN_ENV,
    LEPTON_JUDGE_URL_ENV,
    _slug,
    all_bodies,
    endpoint_name,
    fill_host_values,
    fill_wheel,
    host_values_missing,
    judge_endpoint_name,
    judge_token_secret,
    shipped_wheel,
    ships_wheel,
    wheel_env_names,
)

if TYPE_CHECKING:
    from evalfleet.config.schema import RunConfig
    from evalfleet.executors.lepton.client import LeptonClient
    from evalfleet.store import InvocationRecord, JobRecord

POLL_START_S = 0.5
POLL_MAX_S = 5.0
# Refusals of the workspace token in a row (401/403) after which a run stops watching: a
# revoked token does not come back by itself, and polling on would never end.
MAX_AUTH_FAILURES = 5


class LeptonExecutor(Executor):
    """One Lepton endpoint per invocation (unless `deployment.type: none`), one job per task."""

    name = "lepton"
    creates_endpoints = True

    def __init__(self, client: LeptonClient | None = None) -> None:
        self._given_client = client
        self._made_client: LeptonClient | None = None
        self._token_refused = False

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
        deployment, judge, jobs = all_bodies(invocation)
        readiness = None
        teardown: list[str] = []
        if deployment is not None:
            readiness = _readiness(config, config.deployment, endpoint_name(invocation))
            teardown = [f"DELETE /deployments/{endpoint_name(invocation)}"]
        plan: JSON = {
            "executor": self.name,
            "invocation_id": invocation.invocation_id,
            "output_dir": invocation.output_dir,
            "deployment": (
                None
                if deployment is None
                else {"method": "POST", "path": "/deployments", "body": deployment}
            ),
            "readiness": readiness,
        }
        plan["launcher_differences"] = launcher_differences(config)
        if judge is not None:  # created right after the model's, both then waited for
            name = judge["metadata"]["name"]
            plan["judge_deployment"] = {"method": "POST", "path": "/deployments", "body": judge}
            plan["judge_readiness"] = _readiness(config, config.judge_deployment, name)
            teardown.append(f"DELETE /deployments/{name}")
        return {
            **plan,
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
            "evalfleet_wheel": _wheel_plan(invocation),
        }

    @staticmethod
    def render_plan(plan: JSON) -> list[str]:
        lines = [
            f"# differs from NeMo Evaluator Launcher: {line}"
            for line in plan.get("launcher_differences", [])
        ]
        step = 1
        for key, what in (("deployment", ""), ("judge_deployment", "  (the judge)")):
            deployment = plan.get(key)
            if deployment:
                lines.append(f"\n{step}. {deployment['method']} {deployment['path']}{what}")
                lines.append(_indent(json.dumps(deployment["body"], indent=2)))
                step += 1
        for key in ("readiness", "judge_readiness"):
            readiness = plan.get(key)
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
        wheel = plan.get("evalfleet_wheel")
        if wheel:
            lines.append(
                f"\nevalfleet {wheel['version']} ({wheel['file']}, {wheel['bytes']:,} bytes, "
                f"sha256 {wheel['sha256'][:12]}…) ships in each job's spec: envs "
                f"{', '.join(wheel['envs'])} (base64, filled in at launch)"
            )
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

    def judge_endpoint_base(self, config: RunConfig, port: int) -> tuple[str, str | None]:
        # Each job gets the judge's external URL and token as env vars (spec.py).
        return "${" + LEPTON_JUDGE_URL_ENV + "}", LEPTON_JUDGE_TOKEN_ENV

    # ------------------------------------------------------------------ running

    def prepare(self, invocation: Invocation) -> None:
        # Refuse what Lepton would refuse, and host variables this machine lacks, before
        # contacting anything.
        deployment, judge, jobs = all_bodies(invocation)
        bodies = [body for body in (deployment, judge, *jobs) if body is not None]
        missing = [problem for body in bodies for problem in host_values_missing(body)]
        if missing:
            raise ConfigError(list(dict.fromkeys(missing)))
        self._client().workspace()  # credentials and route family, before anything is recorded

    def launch_handles(self, inv: Invocation) -> tuple[JSON, list[JSON]]:
        return {
            "workspace_id": self._client().credentials.workspace_id,
            "endpoint": None if inv.config.deployment.type == "none" else endpoint_name(inv),
            "endpoint_deleted": False,
            "judge_endpoint": judge_endpoint_name(inv),
            "judge_endpoint_deleted": False,
            "job_prefix": f"eval-{_slug(inv.invocation_id)}",
        }, [{} for _ in inv.jobs]

    def check_resumable(self, record: InvocationRecord) -> None:
        from evalfleet.config.env import ENDPOINT_URL_ENV
        from evalfleet.config.redact import REDACTED

        target = (record.config.get("target") or {}).get("api_endpoint") or {}
        rest = {**record.config, "target": {"api_endpoint": {**target, "url": None}}}
        if REDACTED in json.dumps(rest):
            raise UsageError(
                "cannot resume: the config held secret values that were not stored; reference "
                "secrets by name (secret_name_ref) instead, or start a new run"
            )
        if REDACTED in str(target.get("url") or "") and ENDPOINT_URL_ENV not in os.environ:
            raise UsageError(
                f"cannot resume {record.invocation_id}: the credentials in "
                "target.api_endpoint.url are never stored; export "
                f"{ENDPOINT_URL_ENV}=<the URL with them> in this shell and resume again"
            )
        self._client().workspace()

    def start(self, run: Run) -> None:
        """Endpoints up, jobs in, watched to their end (results brought home as each ends)."""
        inv = run.invocation
        client = self._client()
        run.set_handle({"keep_endpoint": run.options.keep_endpoint})
        deployment_body, judge_body, job_bodies = all_bodies(inv)
        servers = [
            (key, body, server)
            for key, body, server in (
                ("endpoint", deployment_body, inv.config.deployment),
                ("judge_endpoint", judge_body, inv.config.judge_deployment),
            )
            if body is not None
        ]
        # Both are created before either is waited for: they start side by side.
        created = {key: self._create(run, client, key, body) for key, body, _ in servers}
        urls = {
            key: self._wait_up(run, client, key, body, server, created[key])
            for key, body, server in servers
        }
        for job in run.jobs:
            self._submit(run, client, job, job_bodies[job.index], urls)
        self._watch(run, client)
        with contextlib.suppress(DeploymentError):  # best effort; kill also does it
            remote.delete_strays(client, run.record())

    def _create(self, run: Run, client: LeptonClient, key: str, body: JSON) -> float:
        """Record the deployment's name (so kill finds it), then POST it unless it is
        already there (a resume); returns when its clock started."""
        name = body["metadata"]["name"]
        kind = remote.DEPLOYMENT_KINDS[key]
        platform = settings(run.invocation.config).lepton_platform.deployment
        timeout = platform.endpoint_readiness_timeout
        run.set_handle({key: name, f"{key}_deleted": False})
        existing = client.get_deployment(name)
        if existing is not None and (existing.get("status") or {}).get("state") == "Deleting":
            self._wait_gone(client, name)
            existing = None
        if existing is None:
            body = json.loads(json.dumps(body))  # the host's values only in what is sent
            fill_host_values(body)
            client.create_deployment(body)
            remote.note(f"Lepton {kind} {name} created; waiting for Ready (up to {timeout} s)")
        return time.monotonic()

    def _wait_up(
        self, run: Run, client: LeptonClient, key: str, body: JSON, server: Any, started: float
    ) -> str:
        """Wait for Ready (counted from its creation), probe its health path through its
        external endpoint; returns that endpoint's URL."""
        config = run.invocation.config
        name = body["metadata"]["name"]
        kind = remote.DEPLOYMENT_KINDS[key]
        timeout = settings(config).lepton_platform.deployment.endpoint_readiness_timeout
        deployment = remote.wait_ready(client, name, timeout, since=started, kind=kind)
        external = deployment["status"]["endpoint"]["external_endpoint"].rstrip("/")
        secret = (
            judge_token_secret(config)
            if key == "judge_endpoint"
            else settings(config).lepton_platform.tasks.api_key_secret
        )
        health = external + _health_path(server)
        left = max(30.0, timeout - (time.monotonic() - started))
        how = remote.probe_health(health, os.environ.get(secret), left)
        remote.note(f"Lepton {kind} {name} Ready after {time.monotonic() - started:.1f} s, {how}")
        run.set_handle({f"{key}_url": external})
        return str(external)

    def _wait_gone(self, client: LeptonClient, name: str, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while client.get_deployment(name) is not None:
            if time.monotonic() > deadline:
                raise DeploymentError(f"endpoint {name} is still Deleting after {timeout:g} s")
            time.sleep(1.0)

    def _submit(
        self, run: Run, client: LeptonClient, job: Job, body: JSON, urls: dict[str, str]
    ) -> None:
        body = json.loads(json.dumps(body))
        filled = {ENDPOINT_URL_PLACEHOLDER: "endpoint", JUDGE_URL_PLACEHOLDER: "judge_endpoint"}
        for env in body["spec"]["envs"]:
            if env.get("value") in filled:
                env["value"] = urls[filled[env["value"]]]
        fill_wheel(body)
        fill_host_values(body, run.invocation.config)
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
        refused = 0
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
                refused = 0
            except BackendRefused as exc:
                if exc.status not in (401, 403):
                    raise
                refused += 1
                if refused >= MAX_AUTH_FAILURES:
                    self._token_refused = True
                    raise LeptonTokenRefused(_left_running(run.record(), refused, exc)) from None
                if refused == 1:
                    remote.note(f"warning: {exc}; stopping after {MAX_AUTH_FAILURES} in a row")
            except DeploymentError as exc:  # Lepton unreachable for a while: keep waiting
                remote.note(f"warning: {exc}")
            time.sleep(delay)
            delay = min(delay * 1.5, POLL_MAX_S)

    def abandon(self, run: Run, error: BaseException) -> None:
        """Delete the jobs (the endpoints go in `finish`); with a refused token nothing
        can be, and the jobs stay open in the store (still running) for `kill`."""
        if isinstance(error, LeptonTokenRefused):
            return
        record = run.record()
        handle = {**record.handle, **dict.fromkeys(remote.DEPLOYMENT_KINDS)}
        remote.delete_all(self._client(), replace(record, handle=handle))

    def finish(self, run: Run, completed: bool) -> None:
        """Delete the endpoints the run recorded (the model's, the judge's), unless a run
        that completed keeps them (`--keep-endpoint`)."""
        record = run.record()
        if self._token_refused:
            return  # every DELETE would be refused too; the error named what is left
        for key, name in remote.deployments(record.handle):
            if record.handle.get(f"{key}_deleted"):
                continue
            kind = remote.DEPLOYMENT_KINDS[key]
            if completed and run.options.keep_endpoint:
                remote.note(f"Lepton {kind} {name} kept (--keep-endpoint); evalfleet kill "
                            f"{run.invocation_id} deletes it")  # fmt: skip
                continue
            try:
                existed = self._client().delete_deployment(name)
            except DeploymentError as exc:
                remote.note(f"warning: could not delete {kind} {name}: {exc}; "
                            f"run evalfleet kill {run.invocation_id}")  # fmt: skip
                continue
            run.set_handle({f"{key}_deleted": True})
            if existed:
                remote.note(f"Lepton {kind} {name} deleted")

    # ------------------------------------------------------------------ watching

    def needs_observing(self, record: InvocationRecord) -> bool:
        """An ended invocation with an endpoint still up: status deletes it."""
        handle = record.handle
        return not handle.get("keep_endpoint") and any(
            not handle.get(f"{key}_deleted") for key, _ in remote.deployments(handle)
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
        """The endpoints' states; deleted here once the invocation has ended without a
        runner to do it (unless they were kept on purpose)."""
        finished = all(
            (seen[job.job_id].state if job.job_id in seen else JobState(job.state)).is_terminal
            for job in record.jobs
        )
        notes = []
        for key, name in remote.deployments(record.handle):
            if record.handle.get(f"{key}_deleted"):
                continue
            kind = remote.DEPLOYMENT_KINDS[key]
            deployment = client.get_deployment(name)
            state = (deployment or {}).get("status", {}).get("state", "gone")
            if not finished or runner_alive or record.handle.get("keep_endpoint"):
                notes.append(f"{kind} {name}: {state}")
                continue
            if deployment is not None:
                client.delete_deployment(name)
            from evalfleet.store import InvocationStore

            with InvocationStore() as store:
                store.update_invocation_handle(record.invocation_id, {f"{key}_deleted": True})
            notes.append(f"{kind} {name}: deleted (the invocation has ended)")
        return "; ".join(notes)

    # ------------------------------------------------------------------ logs

    def log_sources(
        self, record: InvocationRecord, jobs: list[JobRecord], whole: bool
    ) -> list[LogSource]:
        """The endpoints' and each job's lines through `GET /logs`."""
        sources = []
        if whole:
            sources += [
                LogSource(remote.DEPLOYMENT_KINDS[key], f"deployment:{name}", server=True)
                for key, name in remote.deployments(record.handle)
            ]
        sources += [
            LogSource(job.task, f"job:{job.handle['lepton_id']}", task=job.task)
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
        """Delete the invocation's unfinished jobs and then, always, its endpoints."""
        deleted, errors, gone = remote.delete_all(self._client(), record)
        if gone:
            from evalfleet.store import InvocationStore

            with InvocationStore() as store:
                handle = {f"{key}_deleted": True for key in gone}
                store.update_invocation_handle(record.invocation_id, handle)
        if errors:
            raise DeploymentError(
                f"kill did not finish ({errors[0]}); nothing was left on purpose: run "
                f"evalfleet kill {record.invocation_id} again"
            )
        return deleted


class LeptonTokenRefused(DeploymentError):
    """Lepton refused the workspace token again and again while a run watched its jobs.
    They run on: the store keeps them open, so that `status` (once the token works) brings
    their results home and `kill` finds them."""

    jobs_still_running = True


def _left_running(record: InvocationRecord, times: int, error: BackendRefused) -> str:
    """One line: the refusal, what is still on Lepton (recorded in the store, so `kill`
    finds it) and how to remove it."""
    endpoints = [
        f"{remote.DEPLOYMENT_KINDS[key]} {name}"
        for key, name in remote.deployments(record.handle)
        if not record.handle.get(f"{key}_deleted")
    ]
    job_ids = [
        str(job.handle["lepton_id"])
        for job in record.jobs
        if job.handle.get("lepton_id") and job.state in OPEN_STATES
    ]
    left = endpoints + ([f"job{'s' if len(job_ids) > 1 else ''} {', '.join(job_ids)}"]
                        if job_ids else [])  # fmt: skip
    by_hand = [f"lep endpoint remove -n {name}" for _, name in remote.deployments(record.handle)
               if not record.handle.get(f"{_}_deleted")]  # fmt: skip
    by_hand += [f"lep job remove -i {job_id}" for job_id in job_ids]
    refusal = str(error).split(":", 1)[0]
    return (
        f"{refusal} {times} times in a row ({error.status}) while watching invocation "
        f"{record.invocation_id}; stopped. Still on Lepton: {'; '.join(left) or 'nothing'}. "
        f"Once the token works, `evalfleet kill {record.invocation_id}` removes "
        f"{'them' if left else 'anything left'}"
        + (f" (or by hand: {'; '.join(by_hand)})" if by_hand else "")
    )


def _wheel_plan(invocation: Invocation) -> JSON | None:
    """Where evalfleet's wheel goes (None when the image has evalfleet)."""
    if not ships_wheel(invocation.config):
        return None
    built = shipped_wheel()
    return {**built.describe(), "envs": wheel_env_names(built)}


def _health_path(deployment: Any) -> str:
    """A deployed server's health path (`deployment` or `judge_deployment`)."""
    if deployment.type == "none":
        raise ValueError("deployment.type none has no server to probe")
    return str(deployment.endpoints.health)


def _readiness(config: RunConfig, deployment: Any, name: str) -> JSON:
    """How the plan waits for one endpoint."""
    return {
        "poll": f"GET /deployments/{name}",
        "until": "Ready",
        "timeout_s": settings(config).lepton_platform.deployment.endpoint_readiness_timeout,
        "health_probe": f"<external_endpoint>{_health_path(deployment)}",
    }


def _indent(text: str, prefix: str = "   ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())
