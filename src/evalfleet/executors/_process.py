"""Processes the executors record in the store (a foreground runner, a task): whether one
still runs, stopping a runner, and SIGTERM taking Ctrl-C's clean-up path."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def process_alive(pid: object) -> bool:
    """Whether `pid` runs; a zombie (exited, not yet reaped by its parent) does not."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): trust kill(0)
    return stat.rpartition(")")[2].split()[0] != "Z"


def stop_runner(pid: object, wait_s: float = 60.0) -> bool:
    """SIGTERM a foreground `run` (it tears down what it made) and wait for it to end;
    False when there was nothing to stop."""
    if not isinstance(pid, int) or not process_alive(pid) or pid == os.getpid():
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return True


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (`evalfleet kill`, a shutdown) takes the same clean-up path as Ctrl-C."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
