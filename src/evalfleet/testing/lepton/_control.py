"""Start the emulator as a subprocess and talk to it: the side tests use."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from evalfleet.testing._process import first_line, stop_process

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class EmulatorError(RuntimeError):
    """The emulator did not start, or refused a test hook."""


class Emulator:
    """A running emulator process, as `run_emulator` yields it."""

    def __init__(self, base_url: str, token: str, process: subprocess.Popen[bytes]) -> None:
        self.base_url = base_url
        """The workspace API base, `http://127.0.0.1:<port>/api/v2/workspaces/<ws>`."""
        self.token = token
        self.workspace_id = base_url.rstrip("/").rsplit("/", 1)[1]
        parts = urlsplit(base_url)
        self.root_url = f"{parts.scheme}://{parts.netloc}"
        self.process = process

    def client_env(self) -> dict[str, str]:
        """The env vars that point a Lepton client (evalfleet, the SDK) here."""
        return {
            "LEPTON_WORKSPACE_ID": self.workspace_id,
            "LEPTON_WORKSPACE_TOKEN": self.token,
            "LEPTON_WORKSPACE_URL": self.base_url,
        }

    def call(self, method: str, path: str, body: Any = None, *, api: bool = True) -> Any:
        """One request; `path` is relative to the workspace base (or the root if not `api`)."""
        url = (self.base_url if api else self.root_url) + path
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})  # fmt: skip
        try:
            with _OPENER.open(request, timeout=30) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise EmulatorError(f"{method} {path}: {exc.code} {exc.read().decode()}") from None

    def add_secret(self, name: str, value: str) -> None:
        self.call("POST", "/usersecrets", [{"name": name, "value": value}])

    def faults(self, **changes: Any) -> dict[str, Any]:
        """Set faults (`server_errors`, `deployment_state`, `ready_after`, …); returns all."""
        return self.call("POST", "/_emulator/faults", changes, api=False)

    def live(self) -> dict[str, list[str]]:
        """Deployments (any state) and jobs not finished: what would still cost money."""
        return self.call("GET", "/_emulator/live", api=False)

    def requests(self, reset: bool = False) -> dict[str, int]:
        """Workspace-API requests so far by `METHOD /route` (`reset`: and start counting anew)."""
        return self.call("POST" if reset else "GET", "/_emulator/requests", api=False)

    def wait_until_empty(self, timeout: float = 10.0) -> dict[str, list[str]]:
        """Wait for deletions to finish; returns what is still live (empty lists if all gone)."""
        deadline = time.monotonic() + timeout
        live = self.live()
        while (live["deployments"] or live["jobs"]) and time.monotonic() < deadline:
            time.sleep(0.1)
            live = self.live()
        return live

    def stop(self, timeout: float = 10.0) -> int:
        return stop_process(self.process, timeout)


def _read_ready(process: subprocess.Popen[bytes], timeout: float, stderr: Any) -> str:
    line = first_line(process, timeout)
    if line.startswith("READY "):
        return line.split(" ", 1)[1]
    if process.poll() is None:
        process.kill()
    process.wait()
    stderr.seek(0)
    raise EmulatorError(f"Lepton emulator did not start: {stderr.read().decode()[-2000:] or line}")


@contextlib.contextmanager
def run_emulator(
    token: str = "workspace-token", *, ready_timeout: float = 30.0,
    secrets: Mapping[str, str] | None = None, extra_args: list[str] | None = None,
    job_python: str | None = None,
) -> Iterator[Emulator]:  # fmt: skip
    """Start the emulator in a subprocess; stop it on exit (its jobs and model servers too).

    Jobs run over `job_python`'s environment (default: the image `_image.job_image` builds,
    evalfleet's dependencies without evalfleet), each in a fresh environment of its own."""
    from evalfleet.testing.lepton._image import job_image

    python = job_python or str(job_image())  # built here: its time is not the emulator's start
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "evalfleet.testing.lepton", "--port", "0", "--token", token,
             "--job-python", python, *(extra_args or [])],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr,
        )  # fmt: skip
        emulator = Emulator(_read_ready(process, ready_timeout, stderr), token, process)
        try:
            for name, value in (secrets or {}).items():
                emulator.add_secret(name, value)
            yield emulator
        finally:
            emulator.stop()
            if process.stdout is not None:
                process.stdout.close()
