"""Show an evaluation's progress without slowing it: a redraw a few times a second on a
TTY (rich), a plain line every few seconds otherwise. It only reads the engine's counters."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

PLAIN_EVERY_S = 5.0


def _line(progress: Any) -> str:
    elapsed = max(time.monotonic() - progress.started, 1e-9)
    rate = progress.sent / elapsed
    remaining = progress.total - progress.done - progress.errors
    eta = f"{remaining / rate:.0f}s" if rate > 0 and remaining > 0 else "-"
    percent = 100.0 * progress.done / progress.total if progress.total else 0.0
    return (
        f"{progress.task}: {progress.done}/{progress.total} ({percent:.0f}%) "
        f"{rate:.1f} req/s, errors {progress.errors}, retries {progress.retries}, ETA {eta}"
    )


async def show_progress(progress: Any, stream: Any = None) -> None:
    """Run until cancelled."""
    stream = stream or sys.stderr
    if not stream.isatty():
        try:
            while True:
                await asyncio.sleep(PLAIN_EVERY_S)
                if progress.total:
                    print(_line(progress), file=stream, flush=True)
        except asyncio.CancelledError:
            if progress.total:
                print(_line(progress), file=stream, flush=True)
            raise
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "{task.fields[rate]:.1f} req/s  errors {task.fields[errors]}  retries {task.fields[retries]}"
        ),
        TimeRemainingColumn(),
        console=Console(file=stream),
        auto_refresh=False,
    ) as bar:
        handle = bar.add_task(progress.task or "eval", total=None, rate=0.0, errors=0, retries=0)

        def draw(final: bool) -> None:
            elapsed = max(time.monotonic() - progress.started, 1e-9)
            # A framework package's run does not say its total; once it ends, what was
            # answered or failed is.
            total = progress.total or ((progress.done + progress.errors) if final else 0)
            bar.update(
                handle,
                description=progress.task,
                total=total or None,
                completed=progress.done,
                rate=progress.sent / elapsed,
                errors=progress.errors,
                retries=progress.retries,
            )
            bar.refresh()

        try:
            while True:
                await asyncio.sleep(0.25)
                draw(final=False)
        except asyncio.CancelledError:
            # Every counter, not only `done`: a run shorter than a redraw would otherwise
            # end on the first frame's (`20/? 0.0 req/s`).
            draw(final=True)
            raise
