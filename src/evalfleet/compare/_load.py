"""Finished invocations as `compare` reads them: per task its results.json, job.json and
(on demand) samples.jsonl, through the same gathering `export` uses."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalfleet.exceptions import NotAvailableError, UsageError


@dataclass
class TaskRun:
    """One finished task of one invocation."""

    task: str
    output_dir: Path
    results: dict[str, Any]
    job_spec: dict[str, Any]
    _samples: list[dict[str, Any]] | None = field(default=None, repr=False)

    @property
    def headline(self) -> str:
        return str(self.results.get("headline_metric") or "")

    def samples(self) -> list[dict[str, Any]]:
        """samples.jsonl's lines, read once; a missing file raises UsageError."""
        if self._samples is None:
            self._samples = read_samples(self.output_dir / "samples.jsonl")
        return self._samples


@dataclass
class Run:
    """One invocation: its finished tasks, and the others with the reason they are out."""

    invocation_id: str
    model: str
    created_at: float
    tasks: dict[str, TaskRun]
    skipped: dict[str, str]


def load_runs(ids: list[str] | tuple[str, ...]) -> list[Run]:
    """The invocations `ids` name (any unique prefix), in order; job states are asked of
    each one's executor first, as `export` does (the store's when it cannot be asked)."""
    from evalfleet import api, exporters
    from evalfleet.executors import get_executor

    runs: list[Run] = []
    for id_or_prefix in ids:
        record = api.get_invocation(id_or_prefix)
        if any(run.invocation_id == record.invocation_id for run in runs):
            raise UsageError(f"invocation {record.invocation_id} is named twice ({id_or_prefix})")
        try:
            rows = get_executor(record.executor).status(record, export=False)
            states = {row.job_id: (row.state.value, row.detail) for row in rows}
        except NotAvailableError:
            states = None
        gathered = exporters.gather(record, states)
        tasks = {
            task.task: TaskRun(task.task, task.output_dir, task.results, task.job_spec)
            for task in gathered.tasks
        }
        model = next(
            (str(t.results["model_id"]) for t in tasks.values() if t.results.get("model_id")),
            str(record.model or ""),
        )
        runs.append(
            Run(
                invocation_id=record.invocation_id,
                model=model,
                created_at=float(record.created_at),
                tasks=tasks,
                skipped={item.task: item.reason for item in gathered.skipped},
            )
        )
    return runs


def read_samples(path: Path) -> list[dict[str, Any]]:
    """A task's samples.jsonl, one dict per line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(
            f"{path} not found: comparing samples needs each task's samples.jsonl"
        ) from None
    except OSError as exc:
        raise UsageError(f"{path} cannot be read: {exc}") from None
    samples = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise UsageError(f"{path}:{lineno}: not a JSON line ({exc})") from None
        if not isinstance(row, dict) or "id" not in row:
            raise UsageError(f"{path}:{lineno}: expected a JSON object with an 'id'")
        samples.append(row)
    return samples
