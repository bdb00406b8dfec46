"""Comparing runs: `evalfleet compare A B [C…]` (paired statistics per shared task and
metric, the samples that flipped) and `evalfleet compare --sweep` (models x tasks).

`core` builds the comparison dict, `sweep` the sweep dict, `stats` holds the statistics
(pure Python), `_load` turns the finished invocations it is handed (gathered as `export`
gathers them) into runs. `evalfleet.report.html` renders both
dicts as pages; the CLI prints them as tables.
"""

from __future__ import annotations

from typing import Any

__all__ = ["compare_runs", "sweep_runs"]


def compare_runs(exports: list[Any], force: bool = False) -> tuple[dict[str, Any], list[str]]:
    """(the comparison dict, the settings that differ) for gathered invocations
    (exporters.InvocationExport, as `api.finished_results` returns them), the first being
    the baseline. Raises UsageError when settings differ and not `force`."""
    from evalfleet.compare._load import load_runs
    from evalfleet.compare.core import check_comparable, compare

    runs = load_runs(exports)
    differences = check_comparable(runs, force)
    return compare(runs), differences


def sweep_runs(exports: list[Any]) -> dict[str, Any]:
    """The sweep dict (models x tasks) of gathered invocations."""
    from evalfleet.compare._load import load_runs
    from evalfleet.compare.sweep import sweep

    return sweep(load_runs(exports))
