"""Exporters: an invocation's results to MLflow, Weights & Biases or local JSON/CSV files.

`export(records, destination)` is what `evalfleet export` runs; `auto_export(record)` is
what every executor calls when an invocation ends (`execution.auto_export.destinations`).
`_gather` reads what to export once for all destinations; each `to_<destination>` module
writes it, and imports its tracker's client only when it is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from evalfleet.exceptions import ConfigError, EvalFleetError, ExportError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from evalfleet.exporters._gather import InvocationExport, Skipped, TaskExport, gather
    from evalfleet.exporters._report import Exported, ExportReport

# Imported on first use: `evalfleet status` asks about auto-export for every invocation
# it finds ended, and most have nothing to export; reading results (`_gather`, with the
# config package it needs for redaction) costs ~60-90 ms that status need not pay.
_LAZY = {
    "InvocationExport": "_gather",
    "Skipped": "_gather",
    "TaskExport": "_gather",
    "gather": "_gather",
    "Exported": "_report",
    "ExportReport": "_report",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"evalfleet.exporters.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


DESTINATIONS = ("mlflow", "wandb", "local")

__all__ = [
    "DESTINATIONS",
    "ExportReport",
    "Exported",
    "InvocationExport",
    "Skipped",
    "TaskExport",
    "auto_export",
    "export",
    "gather",
    "settings_for",
]


def export(
    records: list[Any],
    destination: str,
    overrides: dict[str, Any] | None = None,
    states: dict[str, dict[str, tuple[str, str]]] | None = None,
) -> ExportReport:
    """Export the finished tasks of `records` (store.InvocationRecord) to `destination`.

    Settings are the first invocation's `export.<destination>` with `overrides` (command
    line options, None meaning "not given") on top. `states` maps invocation id -> job id
    -> (state, detail) as the executor reports it now; without it the store's are used.
    Raises ExportError when no task at all can be exported or the destination fails.
    """
    if destination not in DESTINATIONS:
        raise ConfigError(
            f"export destination {destination!r}: expected one of {', '.join(DESTINATIONS)}"
        )
    from evalfleet.exporters._gather import gather

    gathered = [gather(record, (states or {}).get(record.invocation_id)) for record in records]
    if not any(inv.tasks for inv in gathered):
        reasons = "; ".join(
            f"{item.job_id} {item.task}: {item.reason}" for inv in gathered for item in inv.skipped
        )
        raise ExportError(f"nothing to export: no task has finished results ({reasons})")
    settings = settings_for(destination, gathered[0].export_settings(destination), overrides)
    writer = importlib.import_module(f"evalfleet.exporters.to_{destination}")
    return writer.export(gathered, settings)


def settings_for(
    destination: str, stored: dict[str, Any], overrides: dict[str, Any] | None = None
) -> Any:
    """The validated `export.<destination>` settings: `stored` with `overrides` on top."""
    from pydantic import ValidationError

    from evalfleet.config import schema

    models: dict[str, type[BaseModel]] = {
        "mlflow": schema.MlflowExportConfig,
        "wandb": schema.WandbExportConfig,
        "local": schema.LocalExportConfig,
    }
    model = models[destination]
    given = {key: value for key, value in (overrides or {}).items() if value is not None}
    try:
        return model.model_validate({**stored, **given})
    except ValidationError as exc:
        raise ConfigError(
            [
                f"export.{destination}.{'.'.join(map(str, error['loc']))}: {error['msg']}"
                for error in exc.errors(include_url=False)
            ]
        ) from None


def auto_export_destinations(config: dict[str, Any]) -> list[str]:
    """`execution.auto_export.destinations` of a stored (redacted) config."""
    execution = config.get("execution") or {}
    return list((execution.get("auto_export") or {}).get("destinations") or [])


def auto_export(record: Any) -> list[str]:
    """Export `record` (a store.InvocationRecord whose jobs have ended) to every destination
    in its `execution.auto_export.destinations`; returns lines to show the user.

    A failing destination does not stop the others, nor fail the run: its results are on
    disk and `evalfleet export` can be run again; the returned lines say what happened.
    """
    destinations = auto_export_destinations(record.config)
    lines: list[str] = []
    for destination in destinations:
        try:
            lines += export([record], destination).lines()
        except EvalFleetError as exc:
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            lines.append(
                f"auto-export to {destination} failed: {first} "
                f"(retry: evalfleet export {record.invocation_id} --dest {destination})"
            )
    return lines
