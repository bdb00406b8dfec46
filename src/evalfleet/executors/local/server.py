"""A model server on this machine: started as its own process group, watched until its
health path answers, stopped (the whole group) when the invocation ends, fails or is killed."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evalfleet._children import die_with_parent
from evalfleet.contract.files import make_private_dirs, open_private
from evalfleet.exceptions import DeploymentError

POLL_S = 0.5
STOP_GRACE_S = 30.0


@functools.cache
def _no_proxy() -> Any:
    """An opener that ignores *_proxy: the server is on this machine. Made on first use:
    urllib.request (http.client, email) is ~10 ms of every run's start-up, and only a run
    that starts a server polls its health."""
    import urllib.request

    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


class LocalServer:
    def __init__(self, plan: dict[str, Any], log_path: Path) -> None:
        self.plan = plan
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> None:
        """Start the server; refuses a port something else already listens on (its health
        path could answer for our server and the tasks would evaluate the wrong model)."""
        port = self.plan["port"]
        if port_in_use(port):
            raise DeploymentError(
                f"port {port} is already in use on 127.0.0.1 (deployment.port): stop what "
                "listens there or choose another port"
            )
        make_private_dirs(self.log_path.parent)
        package = self.plan.get("model_package")
        if package:  # the packaged GGUF is written (once, then cached) before the server reads it
            from importlib import import_module

            import_module(package).assemble()
        env = {**os.environ, **self.plan["env"]}
        with open_private(self.log_path, "ab") as log:
            try:
                self.process = subprocess.Popen(
                    self.plan["argv"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    start_new_session=True,  # its own group: stopping it stops its children
                    # The run stops it, however the run ends; if the run is SIGKILLed, this.
                    preexec_fn=functools.partial(die_with_parent, signal.SIGTERM),
                )
            except OSError as exc:
                raise DeploymentError(
                    f"cannot start the {self.plan['type']} server ({self.plan['argv'][0]}): {exc.strerror}"
                ) from None

    def wait_ready(self, timeout_s: float, sleep: Callable[[float], None] = time.sleep) -> float:
        """Poll the health URL; returns seconds waited. Fails early if the server exits."""
        assert self.process is not None
        url = self.plan["health_url"]
        started = time.monotonic()
        while True:
            code = self.process.poll()
            if code is not None:
                raise DeploymentError(
                    f"the {self.plan['type']} server exited with code {code} before it was ready; "
                    f"last lines of {self.log_path}:\n{self.log_tail()}"
                )
            try:
                with _no_proxy().open(url, timeout=5) as response:
                    if response.status == 200:
                        return time.monotonic() - started
            except OSError:  # urllib.error.URLError is one
                pass
            if time.monotonic() - started > timeout_s:
                raise DeploymentError(
                    f"the {self.plan['type']} server did not answer {url} within {timeout_s:g} s "
                    f"(execution.endpoint_readiness_timeout); last lines of {self.log_path}:\n"
                    f"{self.log_tail()}"
                )
            sleep(POLL_S)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(f"  {line}" for line in text[-lines:]) or "  (empty log)"

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        stop_group(self.process.pid, grace_s, self.process)


def port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1.0)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def stop_group(pid: int, grace_s: float, process: subprocess.Popen[bytes] | None = None) -> bool:
    """SIGTERM a process group, SIGKILL it after `grace_s`; False if it was already gone."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if process is not None:
            if process.poll() is not None:
                break
        elif not group_alive(pid):
            break
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    if process is not None:
        process.wait()
    return True


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
