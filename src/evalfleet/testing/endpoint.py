"""An OpenAI-compatible endpoint simulator: the engine's test double.

Run it as a process::

    python -m evalfleet.testing.endpoint --port 0 --latency 0.2 --capacity 64 \\
        --fault-rate 0.05 --faults 429,500 --seed 1 --answers oracle.jsonl

It prints one line, ``READY http://127.0.0.1:<port>``, once it listens, and exits 0 on SIGTERM
or SIGINT. From Python, `run_simulator(**settings)` does the same in a subprocess and hands
back a `Simulator` with the base URL and helpers for `/stats` and `/control`.

Routes: ``POST /v1/chat/completions``, ``POST /v1/completions``, ``GET /v1/models``,
``GET /health``, ``GET /stats``, ``POST /stats/reset``, ``GET|POST /control``.

Every setting of `SimulatorSettings` is a command-line option (``--fault-rate``) and a key of
``POST /control`` (``{"fault_rate": 0.1}``), which changes it live and returns all settings.

What one completion request goes through, in order:

1. counted in ``/stats`` ``requests``; 401 if an API key is required and missing or wrong;
2. 400 for a body that is not a JSON object, lacks ``model``/``messages``/``prompt`` or has a
   bad parameter (``stream: true`` included, and ``echo: true`` with ``--refuse-echo``);
   404 ``model_not_found`` for another model;
3. its lookup key(s) counted in ``by_key`` (sha256 of the last user message or the prompt);
4. the fault draw: a ``429`` answers at once, without queueing;
5. a capacity slot (FIFO queue while all are taken), then ``latency`` (± jitter) inside it;
6. the answer, or the fault: ``500``, ``malformed`` (200, body cut mid-JSON), ``empty``
   (200, ``choices: []``), ``drop`` (connection aborted, nothing sent), ``timeout`` (waits
   ``hang_seconds`` still holding its slot, then answers normally) or, only when named,
   ``null_content`` (200, ``content: null``, the reply all in ``reasoning_content``, as a
   reasoning parser that never saw the end of the thinking leaves it).

A client that disconnects cancels its request and frees its slot (counted as ``cancelled``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import json
import os
import signal
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from ._process import first_line, stop_process
from ._sim_server import Endpoint, as_aiohttp, key_hash
from ._sim_wire import start_server

__all__ = [
    "FAULT_KINDS",
    "Simulator",
    "SimulatorError",
    "SimulatorSettings",
    "build_app",
    "key_hash",
    "run_simulator",
    "serve",
]

FAULT_KINDS = ("429", "500", "timeout", "malformed", "empty", "drop", "null_content")
# The mix a fault rate draws from unless `faults` names others: the transient ones a client
# retries (`null_content`, a reasoning-only reply, is asked for by name).
DEFAULT_FAULTS = ("429", "500", "timeout", "malformed", "empty", "drop")
"""Every fault the simulator can inject; `--faults` picks a subset (default: all)."""

ENDPOINT_KEY = web.AppKey("evalfleet_simulator", Endpoint)
"""Where `build_app` keeps the live `Endpoint` (settings and counters) on the application."""


_MAX_BODY = 64 * 1024 * 1024


class SimulatorError(RuntimeError):
    """The simulator process did not start, or a control request to it failed."""


@dataclass
class SimulatorSettings:
    """Everything that shapes the simulator's answers; each field is also a CLI option."""

    model: str = "sim-model"
    """The one model served; a request naming another gets 404 `model_not_found`."""
    latency: float = 0.0
    """Seconds each request takes (an `asyncio.sleep` while holding a capacity slot)."""
    latency_jitter: float = 0.0
    """Each request's latency is drawn uniformly from `latency ± latency_jitter` (>= 0)."""
    latency_sigma: float = 0.0
    """If > 0, each request's latency is log-normal instead: median `latency`, this sigma
    (of the underlying normal), as real answer times are: most short, a long tail."""
    capacity: int | None = None
    """At most this many requests are served at once, the rest queue (None or 0: unlimited)."""
    fault_rate: float = 0.0
    """Probability that a request gets a fault, chosen uniformly from `faults`."""
    faults: tuple[str, ...] = DEFAULT_FAULTS
    """Fault kinds to choose from (a subset of `FAULT_KINDS`; a comma string is accepted)."""
    retry_after: float = 1.0
    """The `Retry-After` header (seconds) of a 429 fault."""
    hang_seconds: float = 3600.0
    """How long a `timeout` fault waits before answering normally."""
    seed: int | None = None
    """Seeds fault and jitter draws, so a run's fault sequence is reproducible."""
    answers: str | None = None
    """Oracle file: JSONL of `{"prompt": …, "response": …}`, keyed by the last user message
    (chat) or the prompt (completions); other keys get `default_answer`, else
    `"echo: " + key[-64:]`. A line may
    give `"token_logprob": x` (<= 0) instead of or beside `response`: when a completions
    request echoes that prompt with `logprobs`, each of its tokens scores x instead of -0.5
    (so 0.0 makes it the likeliest choice of a log-likelihood benchmark)."""
    default_answer: str | None = None
    """The answer to a key the oracle does not know, instead of the echo (e.g. `"[[8]]"` when
    the simulator stands in for an LLM judge, whose prompts no oracle can list)."""
    require_api_key: str | None = None
    """If set, requests without `Authorization: Bearer <key>` get 401."""
    reasoning: bool = False
    """Prefix chat answers with `<think>simulated reasoning</think>`."""
    reasoning_field: bool = False
    """Put the reasoning in `message.reasoning_content` instead (implies `reasoning`)."""
    refuse_echo: bool = False
    """Answer completions requests with `echo: true` by 400, as endpoints without prompt
    logprobs do (a log-likelihood benchmark cannot run against them)."""

    def __post_init__(self) -> None:
        for name in ("latency", "latency_jitter", "latency_sigma", "retry_after", "hang_seconds", "fault_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ValueError(f"{name} must be a number, got {value!r}")
            number = float(value)
            if not number >= 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
            setattr(self, name, number)
        if self.fault_rate > 1:
            raise ValueError(f"fault_rate must be between 0 and 1, got {self.fault_rate!r}")
        self.capacity = _optional_int("capacity", self.capacity) or None
        self.seed = _optional_int("seed", self.seed)
        if isinstance(self.faults, str):
            self.faults = tuple(f.strip() for f in self.faults.split(",") if f.strip())
        elif isinstance(self.faults, (list, tuple)):
            self.faults = tuple(str(f) for f in self.faults)
        else:
            raise ValueError(
                f"faults must be a comma-separated string or a list, got {self.faults!r}"
            )
        bad = [f for f in self.faults if f not in FAULT_KINDS]
        if bad:
            raise ValueError(f"unknown fault kind(s) {bad}; choose from {', '.join(FAULT_KINDS)}")
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"model must be a non-empty string, got {self.model!r}")
        if isinstance(self.answers, Path):
            self.answers = str(self.answers)
        for name in ("answers", "default_answer", "require_api_key"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be a string or null, got {value!r}")
        for name in ("reasoning", "reasoning_field", "refuse_echo"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")

    def to_argv(self) -> list[str]:
        """The command-line options that reproduce these settings."""
        argv: list[str] = []
        defaults = SimulatorSettings()
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value == getattr(defaults, f.name):
                continue
            option = "--" + f.name.replace("_", "-")
            if isinstance(value, bool):
                argv.append(option)  # every flag defaults to False
            elif f.name == "faults":
                argv += [option, ",".join(value)]
            else:
                argv += [option, repr(value) if isinstance(value, float) else str(value)]
        return argv


def _optional_int(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    number = int(value)
    if number < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return number


# --------------------------------------------------------------------------- server


def build_app(settings: SimulatorSettings | None = None) -> web.Application:
    """The simulator as an aiohttp application (its `Endpoint` is `app[ENDPOINT_KEY]`).

    Serve it with `AppRunner(app, handler_cancellation=True)` (as `serve` does) so that a
    client giving up on a hanging request frees its capacity slot.
    """
    endpoint = Endpoint(settings or SimulatorSettings())
    app = web.Application(client_max_size=_MAX_BODY)
    app[ENDPOINT_KEY] = endpoint
    for (method, path), handler in endpoint.routes().items():
        app.router.add_route(method, path, as_aiohttp(handler))
    return app


@contextlib.asynccontextmanager
async def serve(
    settings: SimulatorSettings | None = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve the simulator in this event loop; yields its base URL (`http://host:port`).

    This runs the same handlers as `build_app`, on the lean HTTP/1.1 server of `_sim_wire`
    with a dict for routing: no router, no middleware chain, no access log.
    """
    endpoint = Endpoint(settings or SimulatorSettings())
    server = await start_server(endpoint.dispatch, host, port, max_body=_MAX_BODY)
    try:
        bound = server.sockets[0].getsockname()[1]
        yield f"http://{host}:{bound}"
    finally:
        server.close()
        await server.wait_closed()


def _parser() -> argparse.ArgumentParser:
    d = SimulatorSettings()
    p = argparse.ArgumentParser(
        prog="python -m evalfleet.testing.endpoint",
        description="An OpenAI-compatible endpoint simulator (see the module docstring).",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--model", default=d.model)
    p.add_argument("--latency", type=float, default=d.latency, metavar="SECONDS")
    p.add_argument("--latency-jitter", type=float, default=d.latency_jitter, metavar="SECONDS")
    p.add_argument("--latency-sigma", type=float, default=d.latency_sigma, metavar="SIGMA")
    p.add_argument("--capacity", type=int, default=None, metavar="N", help="default: unlimited")
    p.add_argument("--fault-rate", type=float, default=d.fault_rate, metavar="P")
    p.add_argument("--faults", default=",".join(d.faults), metavar="LIST")
    p.add_argument("--retry-after", type=float, default=d.retry_after, metavar="SECONDS")
    p.add_argument("--hang-seconds", type=float, default=d.hang_seconds, metavar="SECONDS")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--answers", default=None, metavar="FILE", help="oracle JSONL")
    p.add_argument("--default-answer", default=None, metavar="TEXT", help="default: echo")
    p.add_argument("--require-api-key", default=None, metavar="KEY")
    p.add_argument("--reasoning", action="store_true")
    p.add_argument("--reasoning-field", action="store_true")
    p.add_argument("--refuse-echo", action="store_true")
    return p


async def _serve_until_signalled(settings: SimulatorSettings, host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with serve(settings, host, port) as url:
        sys.stdout.write(f"READY {url}\n")
        sys.stdout.flush()
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: parse options, serve until SIGTERM/SIGINT, return the exit code."""
    args = vars(_parser().parse_args(argv))
    host, port = args.pop("host"), args.pop("port")
    try:
        settings = SimulatorSettings(**args)
        if settings.answers is not None:
            Endpoint(settings)  # read the oracle file now, to fail before READY
    except (ValueError, OSError) as exc:
        print(f"evalfleet simulator: {exc}", file=sys.stderr)
        return 2
    # Requests allocate many short-lived containers; with a thousand requests in flight the
    # default thresholds run the cyclic GC every few requests (measured: ~20 us per request).
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 50)
    from evalfleet.engine.loop import run

    run(_serve_until_signalled(settings, host, port))
    return 0


# --------------------------------------------------------------------------- client side

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Simulator:
    """A running simulator process, as `run_simulator` yields it."""

    def __init__(self, base_url: str, process: subprocess.Popen[bytes]) -> None:
        self.base_url = base_url
        """`http://127.0.0.1:<port>` (the OpenAI base URL is this plus `/v1`)."""
        self.process = process

    @property
    def pid(self) -> int:
        return self.process.pid

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with _OPENER.open(req, timeout=30) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise SimulatorError(f"{method} {path}: {exc.code} {exc.read().decode()}") from exc

    def stats(self) -> dict[str, Any]:
        """`GET /stats`: requests, completed, by_status, faults, in_flight, max_in_flight, …"""
        return self._call("GET", "/stats")

    def reset_stats(self) -> None:
        """`POST /stats/reset`: zero every counter."""
        self._call("POST", "/stats/reset", {})

    def control(self, **changes: Any) -> dict[str, Any]:
        """`POST /control`: change settings live; returns all current settings."""
        return self._call("POST", "/control", changes)

    def requests_for(self, key: str) -> int:
        """How many requests had lookup key `key` (last user message, or prompt)."""
        return int(self.stats()["by_key"].get(key_hash(key), 0))

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM, then SIGKILL after `timeout` seconds; returns the exit code."""
        return stop_process(self.process, timeout)


def _read_ready(proc: subprocess.Popen[bytes], timeout: float, stderr: Any) -> str:
    assert proc.stdout is not None
    line = first_line(proc, timeout)
    if line.startswith("READY "):
        return line.split(" ", 1)[1]
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    proc.stdout.close()
    stderr.seek(0)
    err = stderr.read().decode(errors="replace").strip()
    what = f"exited with {proc.returncode}" if line or err else f"not ready within {timeout:g}s"
    raise SimulatorError(f"endpoint simulator {what}: {err or line or 'no output'}")


@contextlib.contextmanager
def run_simulator(*, ready_timeout: float = 30.0, **settings: Any) -> Iterator[Simulator]:
    """Start the simulator as a subprocess; stop it (SIGTERM, then SIGKILL) on exit.

    Keyword arguments are `SimulatorSettings` fields; `answers` may also be a mapping of
    prompt to response (or to a dict of oracle fields, e.g. `{"token_logprob": 0.0}`),
    written to a temporary oracle file.
    """
    with contextlib.ExitStack() as stack:
        answers = settings.get("answers")
        if isinstance(answers, Mapping):
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="evalfleet-sim-"))
            path = Path(tmp) / "answers.jsonl"
            with path.open("w", encoding="utf-8") as fh:
                for prompt, response in answers.items():
                    row = response if isinstance(response, Mapping) else {"response": response}
                    fh.write(json.dumps({"prompt": prompt, **row}) + "\n")
            settings["answers"] = str(path)
        argv = SimulatorSettings(**settings).to_argv()
        src = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        stderr = stack.enter_context(tempfile.TemporaryFile())
        proc = subprocess.Popen(
            [sys.executable, "-m", "evalfleet.testing.endpoint", "--port", "0", *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
        )
        sim = Simulator(_read_ready(proc, ready_timeout, stderr), proc)
        try:
            yield sim
        finally:
            sim.stop()
            if proc.stdout is not None:
                proc.stdout.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
