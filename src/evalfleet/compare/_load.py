"""Finished invocations as `compare` reads them: per task its results.json, job.json and
(on demand) samples.jsonl, from what the caller gathered as `export` gathers it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalfleet.exceptions import UsageError


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


def load_runs(exports: list[Any]) -> list[Run]:
    """Runs from gathered invocations (exporters.InvocationExport), in order."""
    runs: list[Run] = []
    for gathered in exports:
        tasks = {
            task.task: TaskRun(task.task, task.output_dir, task.results, task.job_spec)
            for task in gathered.tasks
        }
        model = next(
            (str(t.results["model_id"]) for t in tasks.values() if t.results.get("model_id")),
            str(gathered.model or ""),
        )
        runs.append(
            Run(
                invocation_id=gathered.invocation_id,
                model=model,
                created_at=float(gathered.created_at),
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
