"""The progress display reads the engine's counters; off a TTY it prints plain lines."""

from __future__ import annotations

import asyncio
import io
import re
import time

from evalfleet import progress as display
from evalfleet.engine.runner import RunProgress


def test_plain_lines_when_not_a_tty(monkeypatch):
    monkeypatch.setattr(display, "PLAIN_EVERY_S", 0.05)
    counters = RunProgress(task="adds", total=200, started=time.monotonic() - 10)
    stream = io.StringIO()

    async def scenario() -> None:
        shown = asyncio.ensure_future(display.show_progress(counters, stream))
        await asyncio.sleep(0.12)
        counters.done, counters.cached, counters.errors, counters.retries = 150, 50, 2, 7
        await asyncio.sleep(0.1)
        shown.cancel()
        await asyncio.gather(shown, return_exceptions=True)

    asyncio.run(scenario())
    lines = stream.getvalue().splitlines()
    assert len(lines) >= 3
    assert lines[0].startswith("adds: 0/200 (0%)")
    # 100 sent (50 were cached) in ~10 s: ~10 req/s, 48 left: ~5 s.
    assert re.fullmatch(
        r"adds: 150/200 \(75%\) (9\.\d|10\.0) req/s, errors 2, retries 7, ETA 5s", lines[-1]
    )
