"""A real MLflow tracking server for the session, and finished local invocations to export.

The server is `mlflow server` with a SQLite backend and a local artifact root, on a free
loopback port; it serves artifacts itself, so uploads take the same HTTP path as against a
team server. Invocations are real local runs (`deployment.type: none`) against the
endpoint simulator, on the arithmetic task of tests/engine.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from evalfleet.testing import run_simulator
from tests.engine.conftest import oracle, write_dataset


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class MlflowServer:
    url: str
    root: Path


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    executable = shutil.which("mlflow")
    if executable is None:
        pytest.skip("needs the mlflow server: pip install mlflow (CI installs it)")
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    log = (root / "server.log").open("wb")
    process = subprocess.Popen(
        [
            executable, "server",
            "--backend-store-uri", f"sqlite:///{root / 'mlflow.sqlite'}",
            "--artifacts-destination", str(root / "artifacts"),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        ],
        cwd=root, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,  # the server forks uvicorn: stop the whole group
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.close()
                pytest.fail(
                    "mlflow server did not start:\n" + (root / "server.log").read_text()[-3000:]
                )
            time.sleep(0.25)
        yield MlflowServer(url, root)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()


@dataclass(frozen=True)
class Ran:
    invocation_id: str
    err: str  # what the run printed on stderr (auto-export lines among it)


@pytest.fixture
def mlflow_client(mlflow_server: MlflowServer):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=mlflow_server.url)


@pytest.fixture
def run_invocation(cli, write_yaml, tmp_path: Path, monkeypatch):
    """Run a local invocation of tasks `adds` (numeric: 3 in 4 right) and `adds_exact`
    (exact_match, 10 samples); `failing=True` adds `broken`, whose pre_cmd fails when the
    task starts (its data share "is not mounted"): a task that fails while the run runs.
    Extra top-level YAML (e.g. an export section) is appended to the config."""

    def run(
        failing: bool = False,
        extra: str = "",
        auto_export: tuple[str, ...] = (),
        expect_code: int | None = None,
    ) -> Ran:
        dataset = tmp_path / "adds.jsonl"
        if not dataset.exists():
            write_dataset(tmp_path)
        broken = (
            f"    - {{name: broken, dataset: {{path: {dataset}}}, scorer: numeric,\n"
            f"       pre_cmd: 'echo the data share is not mounted >&2; exit 3'}}\n"
            if failing
            else ""
        )
        if failing:
            monkeypatch.setenv("NEMO_EVALUATOR_TRUST_PRE_CMD", "1")
        with run_simulator(answers=oracle()) as sim:
            config = write_yaml(
                f"""\
target:
  api_endpoint: {{url: "{sim.base_url}/v1/chat/completions", model_id: sim-model}}
execution:
  {{type: local, output_dir: results, mode: parallel,
    auto_export: {{destinations: [{", ".join(auto_export)}]}}}}
evaluation:
  params: {{parallelism: 16, temperature: 0.0}}
  tasks:
    - {{name: adds, dataset: {{path: {dataset}}}, scorer: numeric}}
    - {{name: adds_exact, dataset: {{path: {dataset}}}, scorer: exact_match, params: {{limit_samples: 10}}}}
{broken}{extra}""",
                name=f"config-{time.monotonic_ns()}.yaml",
            )
            result = cli("run", "--config", str(config))
        expected = expect_code if expect_code is not None else (1 if failing else 0)
        assert result.code == expected, result.err
        return Ran(result.out.strip().splitlines()[-1], result.err)

    return run


class _Relay(http.server.BaseHTTPRequestHandler):
    """Forwards to `target`, except requests whose path contains `refuse`: 403."""

    target = ""
    refuse = ""

    def _relay(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.refuse and self.refuse in self.path:
            self.send_response(403)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        request = urllib.request.Request(
            self.target + self.path, data=body if body else None, method=self.command,
            headers={k: v for k, v in self.headers.items() if k.lower() in ("content-type",)},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                status, payload, kind = (
                    answer.status,
                    answer.read(),
                    answer.headers.get("Content-Type"),
                )
        except urllib.error.HTTPError as error:
            status, payload, kind = error.code, error.read(), error.headers.get("Content-Type")
            error.close()
        self.send_response(status)
        self.send_header("Content-Type", kind or "application/octet-stream")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _relay

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@contextlib.contextmanager
def refusing_relay(target: str, refuse: str) -> Iterator[str]:
    """A loopback HTTP relay to `target` that answers 403 to paths containing `refuse`."""
    handler = type("Relay", (_Relay,), {"target": target, "refuse": refuse})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
