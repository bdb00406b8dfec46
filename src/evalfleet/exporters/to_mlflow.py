"""Export to an MLflow tracking server: a parent run per invocation, a child run per task.

Runs are found again by their tags (`evalfleet.kind` + `invocation_id` / `job_id`), so
exporting twice updates the same runs: tags are set again, metrics logged only when their
value changed, missing params added (MLflow params are immutable), artifacts overwritten.
A run is RUNNING while it is written and FINISHED only once everything is in, so an
export cut short never looks complete in MLflow; exporting again completes it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from evalfleet.exceptions import ExportError, NotAvailableError
from evalfleet.exporters._gather import InvocationExport, task_files
from evalfleet.exporters._report import Exported, ExportReport

KIND_TAG = "evalfleet.kind"
NOT_EXPORTED_TAG = "evalfleet.not_exported"
# Unless the user chose otherwise: fail within seconds, not after MLflow's ~2 min of retries.
_CLIENT_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}
_MAX_PARAMS_PER_BATCH = 100  # MLflow's limit for one log_batch call
_INVALID_KEY_CHARS = re.compile(r"[^\w\-. :/]")


def metric_key(name: str) -> str:
    """A metric or param name MLflow accepts: `pass@1` -> `pass_at_1`, other characters
    outside letters, digits, `_-. :/` -> `_`."""
    return _INVALID_KEY_CHARS.sub("_", name.replace("@", "_at_"))


def sanitized(values: dict[str, Any]) -> dict[str, Any]:
    """`values` under MLflow-safe keys; two names that collide once sanitised stay apart
    (`a_b`, `a_b_2`) rather than one silently overwriting the other."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        key = base = metric_key(name)
        suffix = 2
        while key in out:
            key, suffix = f"{base}_{suffix}", suffix + 1
        out[key] = value
    return out


def public_uri(uri: str) -> str:
    """`uri` without user:password, for messages and reports."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    netloc = parts.hostname or ""
    netloc += f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=netloc))


def export(invocations: list[InvocationExport], settings: Any) -> ExportReport:
    """Export `invocations` to MLflow with `settings` (config.schema.MlflowExportConfig)."""
    uri = settings.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise ExportError(
            "no MLflow tracking URI: pass --tracking-uri URI, or set export.mlflow.tracking_uri "
            "or $MLFLOW_TRACKING_URI"
        )
    shown = public_uri(uri)
    _check_reachable(uri, shown)
    client_class = _client_class()
    report = ExportReport("mlflow", f"experiment {settings.experiment_name!r} at {shown}")
    with _client_env(), _mlflow_errors(uri, shown), tempfile.TemporaryDirectory() as staging:
        client = client_class(tracking_uri=uri)
        experiment_id = _experiment_id(client, settings.experiment_name)
        for inv in invocations:
            _export_invocation(client, experiment_id, inv, settings, Path(staging), report, uri)
    return report


def _export_invocation(
    client: Any,
    experiment_id: str,
    inv: InvocationExport,
    settings: Any,
    staging: Path,
    report: ExportReport,
    uri: str,
) -> None:
    config_file = staging / inv.invocation_id / "config.yaml"
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text(yaml.safe_dump(inv.config, sort_keys=False), encoding="utf-8")
    tags = {**inv.tags(), **settings.tags}
    parent_id, _ = _run_for(
        client, experiment_id, {KIND_TAG: "invocation", "invocation_id": inv.invocation_id},
        run_name=f"evalfleet-{inv.invocation_id}",
    )  # fmt: skip
    parent_tags = {
        **tags,
        NOT_EXPORTED_TAG: " ".join(f"{s.job_id}:{s.task}" for s in inv.skipped),
    }
    if settings.description:
        parent_tags["mlflow.note.content"] = settings.description
    headline = {
        f"{task.task}.{task.headline_metric}": value
        for task in inv.tasks
        for name, value in task.metrics(settings.log_metrics or None).items()
        if name == task.headline_metric
    }
    _write(
        client,
        parent_id,
        tags=parent_tags,
        params={**_invocation_params(inv), **settings.extra_metadata},
        metrics=headline,
    )
    client.log_artifact(parent_id, str(config_file))
    for task in inv.tasks:
        identity = {KIND_TAG: "task", "job_id": task.job_id}
        existing = (
            _existing_run(client, experiment_id, identity) if settings.skip_existing else None
        )
        if existing is not None:  # the launcher's skip_existing: an earlier run stays as it is
            report.exported.append(
                Exported(inv.invocation_id, task.job_id, task.task,
                         _run_url(uri, experiment_id, existing), False)
            )  # fmt: skip
            continue
        run_name = settings.run_name or f"eval-{inv.invocation_id}-{task.task}"
        run_id, created = _run_for(client, experiment_id, identity, run_name=run_name)
        if settings.run_name:
            client.set_tag(run_id, "mlflow.runName", settings.run_name)
        _write(
            client, run_id,
            tags={**tags, "job_id": task.job_id, "task": task.task,
                  "mlflow.parentRunId": parent_id},
            params={**task.params(), **settings.extra_metadata},
            metrics=task.metrics(settings.log_metrics or None),
        )  # fmt: skip
        for artifact, path in task_files(task, settings):
            client.log_artifact(run_id, str(path), artifact)
        client.log_artifact(run_id, str(config_file))
        _finish(client, run_id, "FINISHED")
        report.exported.append(
            Exported(
                inv.invocation_id,
                task.job_id,
                task.task,
                _run_url(uri, experiment_id, run_id),
                created,
            )
        )
    report.skipped.extend(inv.skipped)
    _finish(client, parent_id, "FAILED" if inv.skipped else "FINISHED")


def _invocation_params(inv: InvocationExport) -> dict[str, str]:
    versions = {
        f"{name}_version": str(version)
        for task in inv.tasks
        for name, version in (task.results.get("versions") or {}).items()
    }
    return {
        "model_id": inv.model,
        "executor": inv.executor,
        "deployment_type": inv.deployment_type,
        "tasks": " ".join(task.task for task in inv.tasks),
        **versions,
    }


def _run_for(
    client: Any, experiment_id: str, identity: dict[str, str], run_name: str
) -> tuple[str, bool]:
    """The run carrying `identity` tags (marked RUNNING again while it is rewritten), or a
    new one; returns (run id, created)."""
    where = " and ".join(f"tags.`{key}` = '{value}'" for key, value in identity.items())
    found = client.search_runs([experiment_id], filter_string=where, max_results=2)
    if found:
        run_id = found[0].info.run_id
        _forget_artifact_repo(run_id)
        client.update_run(run_id, status="RUNNING")
        return run_id, False
    return client.create_run(experiment_id, run_name=run_name, tags=identity).info.run_id, True


def _existing_run(client: Any, experiment_id: str, identity: dict[str, str]) -> str | None:
    where = " and ".join(f"tags.`{key}` = '{value}'" for key, value in identity.items())
    found = client.search_runs([experiment_id], filter_string=where, max_results=1)
    return found[0].info.run_id if found else None


def _forget_artifact_repo(run_id: str) -> None:
    """MLflow caches each run's artifact store process-wide, bound to the tracking URI it
    was first used with: a later export of the same run to another URI from the same
    process (auto-export, the API) would upload to the old one."""
    try:
        from mlflow.tracking._tracking_service import utils
    except ImportError:
        return
    cache = getattr(utils, "_artifact_repos_cache", None)
    if isinstance(cache, dict):
        cache.pop(run_id, None)


def _write(
    client: Any,
    run_id: str,
    *,
    tags: dict[str, str],
    params: dict[str, str],
    metrics: dict[str, float],
) -> None:
    """Set tags, add params not yet logged, log metrics whose value is new or changed."""
    from mlflow.entities import Metric, Param, RunTag

    data = client.get_run(run_id).data
    now = int(time.time() * 1000)
    new_params = {k: v for k, v in sanitized(params).items() if k not in data.params}
    changed = {k: v for k, v in sanitized(metrics).items() if data.metrics.get(k) != v}
    params_list = [Param(key, str(value)) for key, value in new_params.items()]
    client.log_batch(
        run_id,
        metrics=[Metric(key, value, now, 0) for key, value in changed.items()],
        params=params_list[:_MAX_PARAMS_PER_BATCH],
        tags=[RunTag(metric_key(key), str(value)) for key, value in tags.items()],
    )
    for start in range(_MAX_PARAMS_PER_BATCH, len(params_list), _MAX_PARAMS_PER_BATCH):
        client.log_batch(run_id, params=params_list[start : start + _MAX_PARAMS_PER_BATCH])


def _finish(client: Any, run_id: str, status: str) -> None:
    # set_terminated prints "View run … at …" on stdout; the report carries the URL instead.
    with contextlib.redirect_stdout(io.StringIO()):
        client.set_terminated(run_id, status)


def _experiment_id(client: Any, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name)
        except Exception:
            experiment = client.get_experiment_by_name(name)  # created meanwhile by another
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        raise ExportError(
            f"MLflow experiment {name!r} is deleted: restore it or choose another --experiment-name"
        )
    return experiment.experiment_id


def _run_url(uri: str, experiment_id: str, run_id: str) -> str:
    if uri.startswith(("http://", "https://")):
        return f"{public_uri(uri).rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
    return run_id


def _check_reachable(uri: str, shown: str) -> None:
    """Fail in one line, before anything is written, when the server does not answer."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=10):
            pass
    except urllib.error.HTTPError:
        return  # it answers; whether it lets us write is for the API calls to say
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ExportError(f"MLflow tracking server {shown} is not reachable: {reason}") from None


def _client_class() -> Any:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise NotAvailableError(
            "export to MLflow needs the mlflow client: pip install 'evalfleet[mlflow]'"
        ) from None
    return MlflowClient


@contextlib.contextmanager
def _client_env() -> Iterator[None]:
    """Capped retries (unless the user set them), and no retry chatter from urllib3 or
    MLflow on stderr: what went wrong is said once, in the ExportError."""
    added = [name for name in _CLIENT_ENV if name not in os.environ]
    os.environ.update({name: _CLIENT_ENV[name] for name in added})
    loggers = [logging.getLogger(name) for name in ("urllib3", "mlflow")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@contextlib.contextmanager
def _mlflow_errors(uri: str, shown: str) -> Iterator[None]:
    """MLflow's and requests' exceptions as one ExportError line naming the server."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except (MlflowException, OSError) as exc:
        raise ExportError(f"MLflow at {shown}: {_one_line(exc, uri, shown)}") from None
    except Exception as exc:
        if type(exc).__module__.startswith(("requests", "urllib3")):
            raise ExportError(f"MLflow at {shown}: {_one_line(exc, uri, shown)}") from None
        raise


def _one_line(exc: BaseException, uri: str, shown: str) -> str:
    message = " ".join(str(getattr(exc, "message", exc)).replace(uri, shown).split())
    return message if len(message) <= 300 else message[:299] + "…"
