"""Math answer equivalence with math-verify, safe from any thread and bounded in time.

math-verify's built-in timeouts rely on `signal.alarm` (main thread only) and sympy can
hang on adversarial input, so each check runs in a long-lived worker process
(`_math_worker`) with math-verify's timeouts off; the caller waits at most `timeout_s`
for the reply and, past it, kills that worker (a fresh one starts on the next call) and
counts the answer wrong. Up to `MAX_WORKERS` workers serve concurrent callers.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import select
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

from evalfleet.exceptions import EngineError, NotAvailableError

DEFAULT_TIMEOUT_S = 10.0
STARTUP_TIMEOUT_S = 60.0  # importing sympy and math-verify in a new worker
MAX_WORKERS = max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class Verdict:
    equal: bool
    extracted: str | None
    timed_out: bool = False


class _Worker:
    module = "evalfleet.scoring._math_worker"

    def __init__(self) -> None:
        src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        # Read back only if it fails to start; closed with the worker.
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=env,
            text=True,
            encoding="utf-8",
        )
        self.ready = False  # True once it has imported math-verify

    def ask(self, gold: str, response: str, timeout_s: float) -> dict | None:
        """The worker's reply, or None when it took too long or died."""
        assert self.process.stdin and self.process.stdout
        if not self.ready:
            if self._read_line(time.monotonic() + STARTUP_TIMEOUT_S) is None:
                # Not a wrong answer: every answer would be. Stop scoring with the reason.
                if self.process.poll() is None:
                    self.process.kill()
                self.process.wait()
                self.stderr.seek(0)
                tail = self.stderr.read().decode("utf-8", "replace").strip().splitlines()[-1:]
                raise EngineError(
                    "the math-verify worker did not start: "
                    + (tail[0] if tail else f"no sign of life in {STARTUP_TIMEOUT_S:g} s")
                )
            self.ready = True
        deadline = time.monotonic() + timeout_s
        try:
            self.process.stdin.write(json.dumps({"gold": gold, "response": response}) + "\n")
            self.process.stdin.flush()
        except OSError:  # BrokenPipeError included: the worker died
            return None
        return self._read_line(deadline)

    def _read_line(self, deadline: float) -> dict | None:
        assert self.process.stdout
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([self.process.stdout], [], [], left)[0]:
            return None
        line = self.process.stdout.readline()
        return json.loads(line) if line else None

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.stderr):
            if stream:
                stream.close()


class _Pool:
    def __init__(self) -> None:
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self._all: list[_Worker] = []
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(MAX_WORKERS)

    def verdict(self, gold: str, response: str, timeout_s: float) -> Verdict:
        with self._slots:
            worker = self._take()
            try:
                reply = worker.ask(gold, response, timeout_s)
            except EngineError:
                self._discard(worker)
                raise
            if reply is None:
                self._discard(worker)
                return Verdict(False, None, timed_out=True)
            self._idle.put(worker)
            return Verdict(bool(reply["equal"]), reply["extracted"])

    def _take(self) -> _Worker:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            worker = _Worker()
            with self._lock:
                self._all.append(worker)
            return worker

    def _discard(self, worker: _Worker) -> None:
        worker.close()
        with self._lock:
            self._all.remove(worker)

    def close(self) -> None:
        with self._lock:
            workers, self._all = self._all, []
        for worker in workers:
            worker.close()
        self._idle = queue.LifoQueue()


_pool: _Pool | None = None
_pool_lock = threading.Lock()


def _get_pool() -> _Pool:
    global _pool
    with _pool_lock:
        if _pool is None:
            from importlib.util import find_spec

            if find_spec("math_verify") is None:
                raise NotAvailableError(
                    "math answers are checked with math-verify: pip install 'evalfleet[math]'"
                )
            _pool = _Pool()
            atexit.register(_pool.close)
        return _pool


def check(gold: str, response: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Verdict:
    """Whether `response` states an answer equivalent to `gold` (both LaTeX or plain text;
    the response's last boxed / last math expression is what counts)."""
    return _get_pool().verdict(gold, response, timeout_s)


def shutdown() -> None:
    """Stop the worker processes (they also stop at interpreter exit)."""
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.close()
            _pool = None
