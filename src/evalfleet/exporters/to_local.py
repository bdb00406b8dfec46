"""Export to files: one JSON and one CSV summary, a row per finished task, across any set
of invocations (`evalfleet export A B C --dest local`).

The files are rewritten whole (atomically) from the invocations given, so exporting the
same set twice gives the same files. The JSON also lists what was not exported and why.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from pathlib import Path
from typing import Any

from evalfleet.exceptions import ExportError
from evalfleet.exporters._gather import InvocationExport, TaskExport
from evalfleet.exporters._report import Exported, ExportReport

SCHEMA_VERSION = 1
COLUMNS = (
    "invocation_id", "job_id", "model", "task", "executor", "headline_metric",
    "value", "stderr", "ci95_low", "ci95_high", "n", "errors", "output_dir",
)  # fmt: skip


def row(inv: InvocationExport, task: TaskExport) -> dict[str, Any]:
    """The summary row of one task: its headline metric, with its uncertainty."""
    metric = (task.results.get("metrics") or {}).get(task.headline_metric) or {}
    ci95 = metric.get("ci95") or [None, None]
    return {
        "invocation_id": inv.invocation_id,
        "job_id": task.job_id,
        "model": task.model,
        "task": task.task,
        "executor": inv.executor,
        "headline_metric": task.headline_metric,
        "value": metric.get("value"),
        "stderr": metric.get("stderr"),
        "ci95_low": ci95[0],
        "ci95_high": ci95[1],
        "n": metric.get("n"),
        "errors": (task.results.get("counts") or {}).get("errors"),
        "output_dir": str(task.output_dir),
    }


def export(invocations: list[InvocationExport], settings: Any) -> ExportReport:
    """Write `<output_dir>/<filename>.json` and `.csv` (config.schema.LocalExportConfig)."""
    out = Path(settings.output_dir).expanduser().resolve()
    # The launcher's output_filename names the file; its format picks json or csv.
    stem = settings.filename
    given = getattr(settings, "output_filename", None)
    if given:
        stem = given.removesuffix(".json").removesuffix(".csv")
    json_path, csv_path = out / f"{stem}.json", out / f"{stem}.csv"
    chosen = getattr(settings, "format", None)
    formats: list[str] = [str(chosen)] if chosen else ["json", "csv"]
    target = {"json": str(json_path), "csv": str(csv_path)}
    report = ExportReport("local", " and ".join(target[name] for name in formats))
    main_path = json_path if "json" in formats else csv_path
    rows = []
    for inv in invocations:
        for task in inv.tasks:
            rows.append(row(inv, task))
            report.exported.append(
                Exported(inv.invocation_id, task.job_id, task.task, str(main_path), True)
            )
        report.skipped.extend(inv.skipped)
    summary = {
        "schema_version": SCHEMA_VERSION,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "columns": list(COLUMNS),
        "rows": rows,
        "not_exported": [vars(item) for item in report.skipped],
    }
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    try:
        out.mkdir(parents=True, exist_ok=True)
        if "json" in formats:
            _write_atomic(json_path, json.dumps(summary, indent=2) + "\n")
        if "csv" in formats:
            _write_atomic(csv_path, table.getvalue())
    except OSError as exc:
        raise ExportError(
            f"cannot write the summary to {out}: {exc.strerror}; choose another "
            "export.local.output_dir (or --output-dir)"
        ) from None
    return report


def _write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)
