"""HTML pages: `evalfleet report` (metrics, charts and a sample browser per task), and the
compare and sweep pages that `evalfleet compare` builds from plain dicts.

Every page is one self-contained file (`_html.page`): CSS, scripts and data inline, so it
opens offline and can be mailed. The callers hand over store records or dicts; nothing
here reads the store or asks a backend.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalfleet.exceptions import UsageError
from evalfleet.report.html import write_compare_html, write_sweep_html

__all__ = [
    "build_report",
    "default_report_path",
    "write_compare_html",
    "write_report",
    "write_sweep_html",
]


def build_report(records: Sequence[Any]) -> dict[str, Any]:
    """The report's data for store.InvocationRecords: every task that has a results.json,
    and the others with the reason they are not shown. Raises UsageError when no task of
    any of them has results."""
    from evalfleet.report._data import read_results, task_data

    tasks: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    invocations: list[dict[str, Any]] = []
    seen: set[str] = set()
    for record in records:
        if record.invocation_id in seen:
            continue
        seen.add(record.invocation_id)
        invocations.append(
            {
                "invocation_id": record.invocation_id,
                "model": record.model,
                "executor": record.executor,
                "created_at": record.created_at,
                "output_dir": record.output_dir,
            }
        )
        for job in record.jobs:
            task_dir = Path(job.output_dir)
            results, problem = read_results(task_dir)
            if results is None:
                state = f"{job.state}: {job.detail}" if job.detail else job.state
                skipped.append(
                    {"invocation_id": record.invocation_id, "job_id": job.job_id,
                     "task": job.task, "reason": f"{state}; {problem}"}
                )  # fmt: skip
                continue
            tasks.append(task_data(record.invocation_id, job.job_id, job.task, task_dir, results))
    if not tasks:
        ids = ", ".join(inv["invocation_id"] for inv in invocations)
        why = "; ".join(f"{s['task']}: {s['reason']}" for s in skipped) or "it has no tasks"
        raise UsageError(f"nothing to report for {ids}: no task has results ({why})")
    return {
        "kind": "report",
        "generated_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "invocations": invocations,
        "tasks": tasks,
        "skipped": skipped,
    }


def default_report_path(records: Sequence[Any]) -> Path:
    """`<invocation output dir>/report.html` for one invocation whose dir is here; else
    ./report.html."""
    ids = {record.invocation_id for record in records}
    if len(ids) == 1 and Path(records[0].output_dir).is_dir():
        return Path(records[0].output_dir) / "report.html"
    return Path.cwd() / "report.html"


def write_report(records: Sequence[Any], path: Path | None = None) -> Path:
    """Write the report of `records` to `path` (default: `default_report_path`); returns
    where it went."""
    from evalfleet.report.html import page, write_page

    data = build_report(records)
    target = (path or default_report_path(records)).expanduser().absolute()
    ids = ", ".join(inv["invocation_id"] for inv in data["invocations"])
    write_page(target, page(f"evalfleet report {ids}", data, "report.js"))
    return target
