"""Make a Task from its name (or from the user's own dataset)."""

from __future__ import annotations

from pathlib import Path

from evalfleet.exceptions import ConfigError, NotAvailableError
from evalfleet.tasks.base import Task
from evalfleet.tasks.catalog import resolve_task_name


def create_task(
    name: str,
    *,
    dataset_path: str | Path | None = None,
    scorer: str | None = None,
    pattern: str | None = None,
    ignore_case: bool = True,
    endpoint_type: str = "chat",
) -> Task:
    if dataset_path is not None:
        from evalfleet.tasks.custom import CustomTask

        if scorer is None:
            raise ConfigError(f"task {name!r}: a dataset.path task needs a scorer")
        return CustomTask(
            name, dataset_path, scorer, pattern=pattern, ignore_case=ignore_case,
            endpoint_type="completions" if endpoint_type == "completions" else "chat",
        )  # fmt: skip
    try:
        info = resolve_task_name(name)
    except ValueError as exc:
        raise ConfigError(f"task: {exc}") from None
    if info.name == "humaneval":
        from evalfleet.tasks.humaneval import HumanEval

        return HumanEval()
    if info.name == "ifeval":
        from evalfleet.tasks.ifeval import IFEval

        return IFEval()
    raise NotAvailableError(
        f"task {info.name!r} cannot run yet: its data and scorer arrive with the task catalog; "
        "custom tasks (dataset.path + scorer) run today"
    )
