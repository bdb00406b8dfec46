"""A lean client for the Lepton workspace REST API (no `leptonai` SDK, standard library only).

Credentials resolve as the SDK does (`reference/lepton-api.md` §3): `LEPTON_WORKSPACE_ID`,
`LEPTON_WORKSPACE_TOKEN`, `LEPTON_WORKSPACE_URL`, else the record `lep login` writes
(`~/.cache/lepton/workspace_info.yaml`, or under `LEPTON_CACHE_DIR`).

Every request sends `Authorization: Bearer <token>`, has a timeout, and is retried with
backoff on 5xx answers and connection errors. A 4xx becomes one line with the server's own
message and what to do. The token never appears in an error or a log line.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalfleet.exceptions import BackendRefused, BackendUnreachable, UsageError

DEFAULT_API_BASE = "https://gateway.dgxc-lepton.nvidia.com/api/v2/workspaces/"
PAGE_SIZE = 500
LOGIN_HINT = "run `lep login -c <workspace_id>:<token>` or set LEPTON_WORKSPACE_ID and LEPTON_WORKSPACE_TOKEN"


@dataclass(frozen=True)
class Credentials:
    workspace_id: str
    url: str  # the workspace API base, no trailing slash
    token: str = field(repr=False)
    source: str  # where they came from, for messages


def _cache_file(env: dict[str, str]) -> Path:
    root = env.get("LEPTON_CACHE_DIR") or str(Path.home() / ".cache" / "lepton")
    return Path(root) / "workspace_info.yaml"


def resolve_credentials(env: dict[str, str] | None = None) -> Credentials:
    """Env vars first, then `lep login`'s record; UsageError saying what to do if neither."""
    env = dict(os.environ) if env is None else env
    workspace = env.get("LEPTON_WORKSPACE_ID", "")
    token = env.get("LEPTON_WORKSPACE_TOKEN", "")
    url = env.get("LEPTON_WORKSPACE_URL", "")
    if ":" in workspace and not token:  # `id:token`, as `lep login -c` takes it
        workspace, token = workspace.split(":", 1)
    source = "LEPTON_WORKSPACE_* env vars"
    if not (workspace and token):
        record = _login_record(workspace, env)
        if record is not None:
            workspace = workspace or str(record.get("id") or "")
            token = token or str(record.get("auth_token") or "")
            url = url or str(record.get("url") or "")
            source = str(_cache_file(env))
    if not (workspace and token):
        raise UsageError(f"no Lepton credentials found: {LOGIN_HINT}")
    url = (url or DEFAULT_API_BASE + workspace).rstrip("/")
    return Credentials(workspace_id=workspace, url=url, token=token, source=source)


def _login_record(workspace: str, env: dict[str, str]) -> dict[str, Any] | None:
    path = _cache_file(env)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    import yaml

    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        raise UsageError(f"{path}: not valid YAML; {LOGIN_HINT}") from None
    workspaces = data.get("workspaces") if isinstance(data, dict) else None
    if not isinstance(workspaces, dict):
        return None
    record = workspaces.get(workspace or data.get("current_workspace"))
    return record if isinstance(record, dict) else None


class LeptonClient:
    """The workspace API routes evalfleet uses (legacy `/deployments` family, `/jobs`, `/logs`)."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        timeout: float = 30.0,
        retries: int = 4,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.credentials = credentials
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep
        self._opener = urllib.request.build_opener()

    # ------------------------------------------------------------------ transport

    def request(
        self, method: str, path: str, *, query: dict[str, Any] | None = None, body: Any = None,
        not_found_ok: bool = False,
    ) -> Any:  # fmt: skip
        """JSON in, JSON out. None for a 404 when `not_found_ok`."""
        url = self.credentials.url + path
        if query:
            url += "?" + urllib.parse.urlencode(query, doseq=True)
        data = None if body is None else json.dumps(body).encode()
        what = f"{method} {path}"
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(url, data=data, method=method, headers={
                "Authorization": f"Bearer {self.credentials.token}",
                "Content-Type": "application/json", "Accept": "application/json",
            })  # fmt: skip
            try:
                with self._opener.open(request, timeout=self.timeout) as response:
                    raw = response.read()
                return json.loads(raw) if raw.strip() else None
            except urllib.error.HTTPError as exc:
                message = _server_message(exc)
                if exc.code == 404 and not_found_ok:
                    return None
                if exc.code < 500:
                    raise _refusal(exc.code, what, message, self.credentials) from None
                failure = f"{what}: Lepton answered {exc.code} {message}".rstrip()
            except OSError as exc:  # URLError, timeouts and resets are OSErrors
                reason = getattr(exc, "reason", exc)
                failure = f"{what}: cannot reach Lepton at {self.credentials.url}: {reason}"
            except json.JSONDecodeError:
                raise BackendUnreachable(f"{what}: Lepton's answer is not JSON") from None
            if attempt < self.retries:
                self._sleep(self.backoff * 2**attempt)
        raise BackendUnreachable(f"{failure} (after {self.retries + 1} attempts)")

    # ------------------------------------------------------------------ routes

    def workspace(self) -> dict[str, Any]:
        """`GET /workspace`; refuses a workspace that only speaks the new `/endpoints` API."""
        info = self.request("GET", "/workspace")
        if not isinstance(info, dict):
            raise BackendRefused("GET /workspace: unexpected answer from Lepton")
        if (info.get("features") or {}).get("enable_new_deployment_api") is True:
            raise BackendRefused(
                f"workspace {self.credentials.workspace_id} uses Lepton's new /endpoints API, "
                "which evalfleet does not speak yet; use a workspace on the /deployments API"
            )
        return info

    def create_deployment(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/deployments", body=body)

    def get_deployment(self, name: str) -> dict[str, Any] | None:
        return self.request("GET", f"/deployments/{name}", not_found_ok=True)

    def delete_deployment(self, name: str) -> bool:
        """True if it existed (it is now Deleting), False if it was already gone."""
        return self.request("DELETE", f"/deployments/{name}", not_found_ok=True) is not None

    def deployment_events(self, name: str) -> list[dict[str, Any]]:
        return self.request("GET", f"/deployments/{name}/events", not_found_ok=True) or []

    def create_job(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/jobs", body=body)

    def delete_job(self, job_id: str) -> bool:
        """True if a live job was deleted, False if it had finished into the archive or gone."""
        answer = self.request("DELETE", f"/jobs/{job_id}", query={"job_query_mode": "alive_only"},
                              not_found_ok=True)  # fmt: skip
        return answer is not None

    def list_jobs(
        self, q: str | None = None, mode: str = "alive_and_archive"
    ) -> list[dict[str, Any]]:
        """Every job matching the name substring `q`, page by page until an empty page."""
        jobs: list[dict[str, Any]] = []
        page = 1
        while True:
            query: dict[str, Any] = {"job_query_mode": mode, "page": page, "page_size": PAGE_SIZE}
            if q:
                query["q"] = q
            answer = self.request("GET", "/jobs", query=query)
            batch = answer.get("jobs") if isinstance(answer, dict) else answer
            if not batch:
                return jobs
            jobs.extend(batch)
            if len(batch) < PAGE_SIZE:
                return jobs
            page += 1

    def logs(self, *, job: str | None = None, deployment: str | None = None, start: int | None = None,
             limit: int = 5000) -> list[tuple[int, str]]:  # fmt: skip
        """(ns timestamp, line) pairs, oldest first, from `start` (ns) on; one page."""
        query: dict[str, Any] = {"job": job} if job else {"deployment": deployment}
        now = time.time_ns() + 60 * 10**9
        query.update({"start": start or now - 30 * 86400 * 10**9, "end": now, "limit": limit,
                      "direction": "forward", "timestamps": "true",
                      "job_query_mode": "alive_and_archive"})  # fmt: skip
        answer = self.request("GET", "/logs", query=query, not_found_ok=True) or {}
        lines = [
            (int(stamp), line)
            for stream in (answer.get("data") or {}).get("result") or []
            for stamp, line, *_ in stream.get("values") or []
        ]
        return sorted(lines)

    def all_logs(self, start: int | None = None, **where: Any) -> Iterator[tuple[int, str]]:
        """Every line from `start` (ns; default: the beginning), page after page."""
        while True:
            batch = self.logs(start=start, **where)
            yield from batch
            if len(batch) < 5000:
                return
            start = batch[-1][0] + 1


def _server_message(exc: urllib.error.HTTPError) -> str:
    try:
        raw = exc.read().decode("utf-8", "replace")
    except OSError:
        return ""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        return raw.strip()[:300]
    if isinstance(data, dict):
        return str(data.get("message") or data.get("error") or data.get("code") or raw)[:300]
    return raw.strip()[:300]


def _refusal(status: int, what: str, message: str, credentials: Credentials) -> BackendRefused:
    if status in (401, 403):
        return BackendRefused(
            f"Lepton refused the token for workspace {credentials.workspace_id} ({status}, "
            f"from {credentials.source}): {LOGIN_HINT}",
            status=status,
        )
    hint = _HINTS.get(what.split("/")[1] if "/" in what else "", "")
    return BackendRefused(f"Lepton refused {what} ({status}): {message}{hint}", status=status)


# What to check when Lepton refuses a body evalfleet built from the config.
_HINTS = {
    "deployments": " (check deployment.lepton_config and execution.lepton_platform.deployment)",
    "jobs": " (check execution.evaluation_tasks and execution.lepton_platform.tasks)",
}
