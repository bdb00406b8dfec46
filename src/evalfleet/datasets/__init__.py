"""Benchmark data: pinned sources, a verified download cache, offline mode.

`load_rows(task, source_name)` is what a task calls; `pull(task)` is `evalfleet data pull`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evalfleet.datasets.sources import SOURCES, TASK_SOURCES, Source, sources_for

if TYPE_CHECKING:
    from evalfleet.datasets.cache import (
        Fetched,
        cache_dir,
        cached_path,
        fetch,
        is_cached,
        offline,
    )

# The download cache (hashlib, tempfile, urllib) loads on first use: the task catalog
# reads `sources` at every `evalfleet run`, which downloads nothing for a custom dataset.
_FROM_CACHE = frozenset({"Fetched", "cache_dir", "cached_path", "fetch", "is_cached", "offline"})


def __getattr__(name: str) -> Any:
    if name in _FROM_CACHE:
        from evalfleet.datasets import cache

        return getattr(cache, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    from evalfleet.datasets.cache import fetch
    from evalfleet.datasets.readers import read_rows

    source = SOURCES[source_name]
    return read_rows(source, fetch(source, task).path)


def pull(task: str) -> list[tuple[Source, Fetched]]:
    """Fetch every source of `task` (no-op for those already cached and intact)."""
    from evalfleet.datasets.cache import fetch

    return [(source, fetch(source, task)) for source in sources_for(task)]
