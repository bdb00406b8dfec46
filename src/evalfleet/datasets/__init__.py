"""Benchmark data: pinned sources, a verified download cache, offline mode.

`load_rows(task, source_name)` is what a task calls; `pull(task)` is `evalfleet data pull`.
"""

from __future__ import annotations

from typing import Any

from evalfleet.datasets.cache import Fetched, cache_dir, cached_path, fetch, is_cached, offline
from evalfleet.datasets.readers import read_rows
from evalfleet.datasets.sources import SOURCES, TASK_SOURCES, Source, sources_for

__all__ = [
    "SOURCES",
    "TASK_SOURCES",
    "Fetched",
    "Source",
    "cache_dir",
    "cached_path",
    "fetch",
    "is_cached",
    "load_rows",
    "offline",
    "pull",
    "sources_for",
]


def load_rows(task: str, source_name: str) -> list[dict[str, Any]]:
    source = SOURCES[source_name]
    return read_rows(source, fetch(source, task).path)


def pull(task: str) -> list[tuple[Source, Fetched]]:
    """Fetch every source of `task` (no-op for those already cached and intact)."""
    return [(source, fetch(source, task)) for source in sources_for(task)]
