"""`evalfleet compare --sweep`: several invocations of several models as one models x tasks
table of each task's headline metric with its 95 % CI (results.json's: the bootstrap
interval the engine computed over the task's samples)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evalfleet.compare._load import Run


def sweep(runs: Sequence[Run]) -> dict[str, Any]:
    """{"kind": "sweep", "models", "tasks", "cells", "notes"}: one cell per model and task.
    A model that ran a task in several invocations gets the newest one's result (each
    such case is a line in `notes`)."""
    newest: dict[tuple[str, str], Run] = {}
    older: dict[tuple[str, str], list[str]] = {}
    models: list[str] = []
    tasks: list[str] = []
    for run in sorted(runs, key=lambda r: r.created_at):
        for task, task_run in run.tasks.items():
            model = str(task_run.results.get("model_id") or run.model)
            key = (model, task)
            if key in newest:
                older.setdefault(key, []).append(newest[key].invocation_id)
            newest[key] = run
    # Rows and columns in the order the user named the invocations.
    for run in runs:
        for task, task_run in run.tasks.items():
            model = str(task_run.results.get("model_id") or run.model)
            if model not in models:
                models.append(model)
            if task not in tasks:
                tasks.append(task)
    cells = []
    for model in models:
        for task in tasks:
            chosen = newest.get((model, task))
            if chosen is None:
                continue
            results = chosen.tasks[task].results
            metric = str(results.get("headline_metric") or "")
            values = (results.get("metrics") or {}).get(metric) or {}
            ci95 = values.get("ci95")
            cells.append(
                {
                    "model": model,
                    "task": task,
                    "metric": metric,
                    "value": values.get("value"),
                    "ci95": list(ci95) if isinstance(ci95, (list, tuple)) else [None, None],
                    "n": values.get("n"),
                    "invocation_id": chosen.invocation_id,
                }
            )
    notes = [
        f"{model} ran {task} in {len(replaced) + 1} invocations: the newest, "
        f"{newest[(model, task)].invocation_id}, is shown ({', '.join(replaced)} left out)"
        for (model, task), replaced in older.items()
    ]
    return {"kind": "sweep", "models": models, "tasks": tasks, "cells": cells, "notes": notes}


def cell_text(cell: dict[str, Any] | None) -> str:
    """`0.7500 [0.6750, 0.8250]`; `-` for a model that did not run the task."""
    if cell is None or not isinstance(cell.get("value"), (int, float)):
        return "-"
    low, high = cell["ci95"]
    if isinstance(low, (int, float)) and isinstance(high, (int, float)):
        return f"{cell['value']:.4f} [{low:.4f}, {high:.4f}]"
    return f"{cell['value']:.4f}"


def sweep_rows(data: dict[str, Any]) -> tuple[list[str], list[dict[str, str]]]:
    """(column names, one row per model) for a plain table: model, then per task
    `task (metric)`."""
    by_key = {(cell["model"], cell["task"]): cell for cell in data["cells"]}
    metric = {cell["task"]: cell["metric"] for cell in data["cells"]}
    columns = ["model", *(f"{task} ({metric[task]})" for task in data["tasks"])]
    rows = []
    for model in data["models"]:
        row = {"model": model}
        for task, column in zip(data["tasks"], columns[1:], strict=True):
            row[column] = cell_text(by_key.get((model, task)))
        rows.append(row)
    return columns, rows


def sweep_markdown(data: dict[str, Any]) -> str:
    """The sweep as a GitHub-flavoured markdown table (value [95 % CI] per cell)."""
    columns, rows = sweep_rows(data)
    lines = [
        "| " + " | ".join(_escape(c) for c in columns) + " |",
        "|" + "|".join(["---"] + [":---:"] * (len(columns) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(_escape(row[c]) for c in columns) + " |" for row in rows]
    lines.append("")
    lines.append("Each cell: the task's headline metric [95 % bootstrap CI].")
    lines += [f"Note: {note}." for note in data.get("notes") or []]
    return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    return text.replace("|", "\\|")
