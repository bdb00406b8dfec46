"""Export to Weights & Biases: one run per task, grouped by invocation.

Each run's id is derived from the job id, and runs are opened with `resume="allow"`, so
exporting again updates the same run instead of creating one (no walk over the whole
project to find it). Metrics go to the run summary — set, not appended — with the same
names as in results.json (`pass@1`, `pass@1_stderr`); W&B needs no sanitising. Works
offline (`WANDB_MODE=offline` or `export.wandb.mode: offline`): the runs are then written
under `<dir>/wandb/offline-run-*` for a later `wandb sync`.
"""

from __future__ import annotations

import os
import re
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from evalfleet.exceptions import ExportError, NotAvailableError
from evalfleet.exporters._gather import InvocationExport, TaskExport, task_files
from evalfleet.exporters._report import Exported, ExportReport

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def run_id(job_id: str) -> str:
    """The W&B run id of a job: stable across exports, only characters W&B accepts."""
    return "evalfleet-" + _UNSAFE.sub("-", job_id)


def export(invocations: list[InvocationExport], settings: Any) -> ExportReport:
    """Export `invocations` to W&B with `settings` (config.schema.WandbExportConfig)."""
    wandb = _import_wandb()
    mode = settings.mode or os.environ.get("WANDB_MODE") or "online"
    where = f"{settings.entity}/{settings.project}" if settings.entity else settings.project
    report = ExportReport("wandb", f"project {where!r} ({mode})")
    if mode == "online":
        _check_reachable(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai")
    silent = "WANDB_SILENT" not in os.environ
    if silent:  # wandb.login's "Loaded credentials" line would come before init's settings
        os.environ["WANDB_SILENT"] = "true"
    try:
        with tempfile.TemporaryDirectory() as staging:
            for inv in invocations:
                config_file = Path(staging) / inv.invocation_id / "config.yaml"
                config_file.parent.mkdir(parents=True)
                config_file.write_text(yaml.safe_dump(inv.config, sort_keys=False), "utf-8")
                for task in inv.tasks:
                    created = _export_task(wandb, inv, task, settings, mode, config_file)
                    report.exported.append(
                        Exported(
                            inv.invocation_id, task.job_id, task.task, run_id(task.job_id), created
                        )
                    )
                report.skipped.extend(inv.skipped)
    except ExportError:
        raise
    except Exception as exc:
        if not type(exc).__module__.startswith("wandb"):
            raise
        message = " ".join(str(exc).split())[:300]
        raise ExportError(f"W&B refused the export to {where}: {message}") from None
    finally:
        wandb.teardown()  # stop the wandb service process this export started
        if silent:
            os.environ.pop("WANDB_SILENT", None)
    return report


def _export_task(
    wandb: Any, inv: InvocationExport, task: TaskExport, settings: Any, mode: str, config: Path
) -> bool:
    """One task's run; returns whether it is new (offline, every run looks new)."""
    run = wandb.init(
        entity=settings.entity,
        project=settings.project,
        id=run_id(task.job_id),
        name=settings.name or f"eval-{inv.invocation_id}-{task.task}",
        group=settings.group or inv.invocation_id,
        job_type=settings.job_type,
        tags=[task.task, *settings.tags],
        notes=settings.description,
        config={**inv.tags(), "job_id": task.job_id, **task.params(), **settings.extra_metadata},
        resume="allow",
        dir=settings.dir,
        mode=mode,
        settings=wandb.Settings(
            silent=True, console="off", save_code=False, x_disable_stats=True,
            x_disable_meta=True,
        ),
    )  # fmt: skip
    try:
        run.summary.update(task.metrics(settings.log_metrics or None))
        artifact = wandb.Artifact(
            f"{inv.invocation_id}-{task.task}",
            type="evaluation_result",
            metadata={"job_id": task.job_id, "headline_metric": task.headline_metric},
        )
        for folder, path in task_files(task, settings):
            artifact.add_file(str(path), name=f"{folder}/{path.name}" if folder else path.name)
        artifact.add_file(str(config), name="config.yaml")
        run.log_artifact(artifact)
    except BaseException:
        run.finish(exit_code=1)
        raise
    created = not run.resumed
    run.finish()
    return created


def _check_reachable(base_url: str) -> None:
    """Fail in one line, before anything is written, when the W&B server does not answer
    (wandb itself retries for a minute and a half)."""
    try:
        with urllib.request.urlopen(base_url, timeout=10):
            pass
    except urllib.error.HTTPError:
        return  # it answers
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ExportError(f"W&B server {base_url} is not reachable: {reason}") from None


def _import_wandb() -> Any:
    try:
        import wandb
    except ImportError:
        raise NotAvailableError(
            "export to W&B needs the wandb client: pip install 'evalfleet[wandb]'"
        ) from None
    return wandb
