"""What an invocation has to export: its identity, its redacted config, and per task either
the finished results (metrics, params, artifact files) or the reason it is left out.

Every destination exports the same content; this module reads it once from the store's
record and the task output dirs, so that destinations only decide how to write it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalfleet.config.redact import redact

# Generation parameters worth comparing across runs (the rest of results.params is plumbing).
_PARAM_KEYS = (
    "temperature", "top_p", "max_new_tokens", "n_samples", "seed", "stop",
    "limit_samples", "extra_body",
)  # fmt: skip
_MAX_PARAM_CHARS = 500


@dataclass(frozen=True)
class TaskExport:
    """One finished task: everything a destination writes for it."""

    invocation_id: str
    job_id: str
    task: str
    output_dir: Path
    results: dict[str, Any]
    job_spec: dict[str, Any]

    @property
    def model(self) -> str:
        return str(
            self.results.get("model_id") or self.job_spec.get("endpoint", {}).get("model_id", "")
        )

    @property
    def headline_metric(self) -> str:
        return str(self.results.get("headline_metric", ""))

    @property
    def artifacts(self) -> dict[str, Path]:
        """Artifact name -> file, for the files that exist."""
        names = ("results.json", "samples.jsonl")
        return {
            name: self.output_dir / name for name in names if (self.output_dir / name).is_file()
        }

    def metrics(self, only: list[str] | None = None) -> dict[str, float]:
        """`<metric>` and `<metric>_stderr` for every metric (or those `only` selects), plus
        the sample counts; non-finite values are left out (no tracker stores NaN well).

        `only` filters as NeMo Evaluator Launcher's `log_metrics` does: a metric is kept
        when a filter is a (case-insensitive) part of its name or of `<task>_<name>`, the
        task being the launcher's task name (`mmlu_pro` of `simple_evals.mmlu_pro`)."""
        values: dict[str, float] = {}
        short_task = str(self.results.get("task") or self.task).split(".", 1)[-1]
        for name, metric in (self.results.get("metrics") or {}).items():
            if only and not any(
                wanted.lower() in f"{short_task}_{name}".lower() for wanted in only
            ):
                continue
            for key, number in (
                (name, metric.get("value")),
                (f"{name}_stderr", metric.get("stderr")),
            ):
                if isinstance(number, (int, float)) and math.isfinite(number):
                    values[key] = float(number)
        counts = self.results.get("counts") or {}
        for key, count_key in (("samples_scored", "scored_samples"), ("sample_errors", "errors")):
            if isinstance(counts.get(count_key), int):
                values[key] = float(counts[count_key])
        return values

    def params(self) -> dict[str, str]:
        """Model, task, generation params, versions and dataset, as strings (secret-looking
        keys redacted, long values cut)."""
        results = self.results
        generation = redact(results.get("params") or {})
        params: dict[str, Any] = {
            "model_id": self.model,
            "task": self.task,
            "endpoint_type": results.get("endpoint_type", ""),
            **{key: generation[key] for key in _PARAM_KEYS if generation.get(key) is not None},
        }
        for name, version in (results.get("versions") or {}).items():
            params[f"{name}_version"] = version
        dataset = results.get("dataset")
        if isinstance(dataset, dict):  # a catalog task's source: revision, sha256, url
            params.update({f"dataset.{k}": v for k, v in redact(dataset).items()})
        elif self.job_spec.get("dataset"):  # a custom task: the user's file
            params["dataset.path"] = self.job_spec["dataset"].get("path", "")
        if self.job_spec.get("scorer"):
            params["scorer"] = self.job_spec["scorer"].get("name", "")
        return {key: _text(value) for key, value in params.items()}


@dataclass(frozen=True)
class Skipped:
    """A task that is not exported, and why (it failed, still runs, has no results…)."""

    invocation_id: str
    job_id: str
    task: str
    reason: str


@dataclass(frozen=True)
class InvocationExport:
    """One invocation as every destination sees it."""

    invocation_id: str
    executor: str
    deployment_type: str
    model: str
    output_dir: str
    created_at: float
    config: dict[str, Any]  # redacted again here: nothing secret leaves through an export
    tasks: tuple[TaskExport, ...]
    skipped: tuple[Skipped, ...] = field(default=())

    def tags(self) -> dict[str, str]:
        return {
            "invocation_id": self.invocation_id,
            "executor": self.executor,
            "deployment_type": self.deployment_type,
            "model": self.model,
        }

    def export_settings(self, destination: str) -> dict[str, Any]:
        """`export.<destination>` as the invocation's config holds it."""
        section = (self.config.get("export") or {}).get(destination)
        return dict(section) if isinstance(section, dict) else {}


def gather(record: Any, states: dict[str, tuple[str, str]] | None = None) -> InvocationExport:
    """Read what `record` (a store.InvocationRecord) has to export.

    `states` maps job id -> (state, detail) as the executor reports it now; without it the
    store's recorded states are used (right at the end of a run, when they are final).
    A task is exported when it succeeded and its results.json can be read.
    """
    tasks: list[TaskExport] = []
    skipped: list[Skipped] = []
    for job in record.jobs:
        state, detail = (states or {}).get(job.job_id, (job.state, job.detail))
        out = Path(job.output_dir)
        reason = ""
        if state != "SUCCESS":
            reason = f"{state}" + (f": {detail}" if detail else "")
        else:
            results, problem = _read_json(out / "results.json")
            if problem:
                reason = problem
            elif not results.get("metrics"):
                reason = f"no metrics in {out / 'results.json'}"
        if reason:
            skipped.append(Skipped(record.invocation_id, job.job_id, job.task, reason))
            continue
        spec, _ = _read_json(out / "job.json")
        tasks.append(TaskExport(record.invocation_id, job.job_id, job.task, out, results, spec))
    return InvocationExport(
        invocation_id=record.invocation_id,
        executor=record.executor,
        deployment_type=record.deployment_type,
        model=record.model,
        output_dir=record.output_dir,
        created_at=record.created_at,
        config=redact(record.config),
        tasks=tuple(tasks),
        skipped=tuple(skipped),
    )


def _read_json(path: Path) -> tuple[dict[str, Any], str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, f"no results: {path} not found"
    except (OSError, ValueError) as exc:
        return {}, f"{path} cannot be read: {exc}"
    if not isinstance(data, dict):
        return {}, f"{path}: expected a JSON object"
    return data, ""


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= _MAX_PARAM_CHARS else text[: _MAX_PARAM_CHARS - 1] + "…"


def task_files(task: TaskExport, settings: Any) -> list[tuple[str | None, Path]]:
    """(artifact folder, file) a destination uploads for `task`, as the launcher's export
    keys choose: `only_required` (results.json, and samples.jsonl per `log_samples`) or
    every file of the task's directory but its response cache and logs; none without
    `copy_artifacts`; its logs/ files under `logs` with `copy_logs`."""
    import fnmatch

    log_samples = getattr(settings, "log_samples", True)
    files: list[tuple[str | None, Path]] = []
    if getattr(settings, "copy_artifacts", True):
        if getattr(settings, "only_required", True):
            files += [
                (None, path)
                for name, path in task.artifacts.items()
                if name != "samples.jsonl" or log_samples
            ]
        else:
            excluded = list(getattr(settings, "exclude_patterns", None) or [])
            for path in sorted(task.output_dir.rglob("*")):
                relative = path.relative_to(task.output_dir)
                if (
                    not path.is_file()
                    or relative.parts[0] == "logs"
                    or path.name.startswith("cache.sqlite")
                    or (path.name == "samples.jsonl" and not log_samples)
                    or any(
                        fnmatch.fnmatch(str(relative), pattern)
                        or fnmatch.fnmatch(path.name, pattern)
                        for pattern in excluded
                    )
                ):
                    continue
                folder = str(relative.parent) if relative.parent != Path(".") else None
                files.append((folder, path))
    logs = task.output_dir / "logs"
    if getattr(settings, "copy_logs", False) and logs.is_dir():
        files += [("logs", path) for path in sorted(logs.iterdir()) if path.is_file()]
    return files
