"""What the Lepton executor does against the workspace: bring an endpoint up, submit jobs,
read their states back, bring their results home, tear down. Stateless functions over a
`LeptonClient` and the store, so `run`, `status`, `kill` and `resume` share them."""

from __future__ import annotations

import contextlib
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalfleet.contract import OPEN_STATES, JobState
from evalfleet.exceptions import BackendUnreachable, DeploymentError
from evalfleet.executors.lepton.results import BEGIN, END, LINE, unpack

if TYPE_CHECKING:
    from evalfleet.executors.lepton.client import LeptonClient
    from evalfleet.store import InvocationRecord

# Lepton job states (LeptonJobState) → ours. Anything else is UNKNOWN, with the raw state.
JOB_STATES = {
    "Queueing": JobState.PENDING, "Awaiting": JobState.PENDING,
    "PendingRetry": JobState.PENDING, "Starting": JobState.PENDING,
    "Restarting": JobState.RUNNING, "Running": JobState.RUNNING,
    "Completed": JobState.SUCCESS, "Failed": JobState.FAILED,
    "Stopping": JobState.KILLED, "Stopped": JobState.KILLED, "Deleting": JobState.KILLED,
    "Deleted": JobState.KILLED, "Terminating": JobState.KILLED,
}  # fmt: skip
OPEN = OPEN_STATES


def local_dir(output_dir: str, task: str) -> str:
    """Where a task's results land on the launcher's side."""
    return f"{output_dir}/{task}"


# --------------------------------------------------------------------------- endpoint

# The deployments an invocation may own: the handle key holding each one's name (`<key>`,
# with `<key>_deleted` and `<key>_url` beside it) → how messages call it.
DEPLOYMENT_KINDS = {"endpoint": "endpoint", "judge_endpoint": "judge endpoint"}


def deployments(handle: dict[str, Any]) -> list[tuple[str, str]]:
    """(handle key, deployment name) of every deployment recorded in an invocation handle."""
    return [(key, str(handle[key])) for key in DEPLOYMENT_KINDS if handle.get(key)]


def wait_ready(
    client: LeptonClient,
    name: str,
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
    *,
    since: float | None = None,
    kind: str = "endpoint",
) -> dict[str, Any]:
    """Poll the deployment until Ready, at most `timeout` seconds after `since` (a
    `time.monotonic()`, default now); DeploymentError with its logs and events on Error,
    disappearance or timeout."""
    deadline = (time.monotonic() if since is None else since) + timeout
    delay, state = 0.25, "unknown"
    while True:
        try:
            deployment = client.get_deployment(name)
        except BackendUnreachable:
            deployment = {"status": {"state": state}}  # a blip: keep waiting
        if deployment is None:
            raise DeploymentError(f"{kind} {name} disappeared while starting (deleted?)")
        state = str((deployment.get("status") or {}).get("state"))
        if state == "Ready":
            return deployment
        if state == "Error":
            raise DeploymentError(_failure(client, name, kind, "went to Error"))
        if time.monotonic() >= deadline:
            raise DeploymentError(
                _failure(client, name, kind, f"was not Ready after {timeout:g} s (still {state}); "
                         "raise execution.lepton_platform.deployment.endpoint_readiness_timeout")
            )  # fmt: skip
        sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, 10.0)


def _failure(client: LeptonClient, name: str, kind: str, what: str) -> str:
    lines = [f"Lepton {kind} {name} {what}"]
    with contextlib.suppress(DeploymentError):
        tail = [line for _, line in client.logs(deployment=name)][-10:]
        lines += [f"  log: {line}" for line in tail]
    with contextlib.suppress(DeploymentError):
        for event in client.deployment_events(name)[-5:]:
            lines.append(f"  event: {event.get('type')} {event.get('reason')} "
                         f"(x{event.get('count')})")  # fmt: skip
    return "\n".join(lines)


def probe_health(url: str, token: str | None, timeout: float,
                 sleep: Callable[[float], None] = time.sleep) -> str:  # fmt: skip
    """GET the model's health path through the external endpoint until it answers.

    With the token (from the launcher's env, see README), 200 is required. Without it, a
    401 counts: the endpoint is up and enforces its token; the jobs hold the token.
    """
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            with opener.open(urllib.request.Request(url, headers=headers), timeout=30):
                return "healthy"
        except urllib.error.HTTPError as exc:
            if exc.code == 401 and not token:
                return "up (401 without the token, as it should)"
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(getattr(exc, "reason", exc))
        if time.monotonic() >= deadline:
            raise DeploymentError(f"the endpoint's health check {url} failed: {last}")
        sleep(1.0)


# --------------------------------------------------------------------------- jobs


def remote_jobs(client: LeptonClient, record: InvocationRecord) -> dict[str, dict[str, Any]]:
    """The invocation's jobs on Lepton, live and archived, by id: one (paged) listing."""
    prefix = record.handle.get("job_prefix")
    return {
        str((job.get("metadata") or {}).get("id")): job
        for job in client.list_jobs(q=prefix, mode="alive_and_archive")
    }


def observe(remote: dict[str, Any] | None) -> tuple[JobState, str]:
    """Our state for a Lepton job (None: no longer listed), and a detail line."""
    if remote is None:
        return JobState.KILLED, "the Lepton job is gone (deleted outside evalfleet?)"
    raw = str((remote.get("status") or {}).get("state"))
    state = JOB_STATES.get(raw, JobState.UNKNOWN)
    if state is JobState.UNKNOWN:
        return state, f"Lepton reports state {raw!r}"
    return state, f"{raw} on Lepton"


def fetch_results(client: LeptonClient, lepton_id: str, local_dir: str) -> int:
    """Unpack an ended job's results (from its log) into `local_dir`; returns its
    `evalfleet eval` exit code. Raises ResultsMissing when its log holds none."""
    lines = (line for _, line in client.all_logs(job=lepton_id))
    return unpack(lines, Path(local_dir))


def delete_all(
    client: LeptonClient, record: InvocationRecord
) -> tuple[list[str], list[str], list[str]]:
    """Delete every unfinished job of the invocation and then, whatever happened, its
    deployments (the model's endpoint, the judge's). Finished jobs are left alone: they
    cost nothing and their logs hold results. Returns (what was deleted, errors, the handle
    keys of the deployments now gone or going)."""
    deleted: list[str] = []
    errors: list[str] = []
    gone: list[str] = []
    try:
        try:  # one listing finds also jobs created but not recorded (a crash after POST)
            ids = unfinished_jobs(client, record)
        except DeploymentError as exc:
            errors.append(str(exc))
            ids = [job.handle["lepton_id"] for job in record.jobs
                   if job.handle.get("lepton_id") and job.state in OPEN]  # fmt: skip
        for lepton_id in ids:
            try:
                if client.delete_job(lepton_id):
                    deleted.append(f"Lepton job {lepton_id}")
            except DeploymentError as exc:
                errors.append(str(exc))
    finally:
        for key, name in deployments(record.handle):
            try:
                if client.delete_deployment(name):
                    deleted.append(f"Lepton {DEPLOYMENT_KINDS[key]} {name}")
                gone.append(key)
            except DeploymentError as exc:
                errors.append(str(exc))
    return deleted, errors, gone


def delete_strays(client: LeptonClient, record: InvocationRecord) -> list[str]:
    """Delete unfinished jobs of the invocation that the store does not know (a `POST /jobs`
    retried after a 5xx the server had in fact processed); returns their ids."""
    known = {job.handle.get("lepton_id") for job in record.jobs}
    strays = [i for i in unfinished_jobs(client, record) if i not in known]
    for lepton_id in strays:
        client.delete_job(lepton_id)
    return strays


def unfinished_jobs(client: LeptonClient, record: InvocationRecord) -> list[str]:
    """Ids of the invocation's live jobs that have not finished (nor are being deleted)."""
    prefix = record.handle.get("job_prefix")
    if not prefix:
        return []
    done = ("Completed", "Failed", "Deleting", "Deleted")
    return [
        str(job["metadata"]["id"])
        for job in client.list_jobs(q=prefix, mode="alive_only")
        if (job.get("status") or {}).get("state") not in done
    ]


# --------------------------------------------------------------------------- logs


def readable(lines: Iterator[tuple[int, str]], where: str) -> Iterator[tuple[int, str]]:
    """Log lines with the results block folded into one line saying where it went."""
    inside = 0
    for stamp, line in lines:
        if line == BEGIN:
            inside = 1
        elif inside and line.startswith(LINE):
            inside += 1
        elif inside and line.startswith(END):
            yield stamp, f"(results: {inside - 1} line(s) of packed output, brought into {where})"
            inside = 0
        else:
            yield stamp, line


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
