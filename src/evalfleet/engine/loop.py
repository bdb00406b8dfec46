"""The event loop `evalfleet eval` (and the endpoint simulator) run on.

uvloop where it is installed (a dependency on Linux and macOS): at 1,024 requests in
flight it cuts the client's per-request overhead enough to move the achieved rate from
~0.78 to ~0.86 of the endpoint's ideal (`benchmarks/engine_throughput.py`).
`EVALFLEET_LOOP=asyncio` keeps the standard loop (for debugging, or to compare).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_name() -> str:
    """`uvloop` or `asyncio`: which loop `run` uses here."""
    if os.environ.get("EVALFLEET_LOOP", "").strip().lower() == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    if loop_name() == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)
