"""What a dry run says about a launcher config: keys NeMo Evaluator Launcher accepts that a
run here does not use (one warning line each), and where evalfleet's defaults or layout
differ from the launcher's, with why (each backend's plan adds its own to these).

A launcher config runs unchanged, so such a key is no error; but the user is told, once,
that it changes nothing (the CLI prints these lines to stderr before the plan).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evalfleet.config.schema import RunConfig


def ignored_keys(config: RunConfig) -> list[str]:
    """`warning: <key>: ignored (<why>)` for every launcher key set that means nothing here."""
    found: list[tuple[str, str]] = []
    for index, task in enumerate(config.evaluation.tasks):
        if task.dataset_mount_path is not None:
            found.append(
                (
                    f"evaluation.tasks[{index}].dataset_mount_path",
                    "tasks run outside a container here; NEMO_EVALUATOR_DATASET_DIR is "
                    "dataset_dir itself",
                )
            )
    export = config.export
    if export.gsheets is not None:
        found.append(("export.gsheets", "evalfleet cannot export to Google Sheets"))
    for name in ("mlflow", "wandb", "local"):
        settings = getattr(export, name)
        if settings.job_dirs:
            found.append(
                (f"export.{name}.job_dirs", "evalfleet exports invocations by id, from its store")
            )
    if export.mlflow.log_config_params:
        found.append(
            ("export.mlflow.log_config_params", "the resolved config is uploaded as config.yaml")
        )
    if export.wandb.run_id is not None:
        found.append(("export.wandb.run_id", "W&B run ids derive from the job ids"))
    if export.wandb.log_mode == "multi_task":
        found.append(("export.wandb.log_mode", "multi_task: evalfleet writes one run per task"))
    execution = config.execution
    nested = getattr(execution.env_vars, "export", None)
    if nested:
        found.append(
            (
                "execution.env_vars.export",
                "exports run in evalfleet's own process, with its environment",
            )
        )
    mounts = getattr(execution, "mounts", None)
    if mounts is not None and execution.type == "local":
        if mounts.evaluation:
            found.append(("execution.mounts.evaluation", "local tasks run on the host"))
        if "mount_home" in mounts.model_fields_set:
            found.append(("execution.mounts.mount_home", "Slurm only, as in the launcher"))
    return [f"warning: {key}: ignored ({why})" for key, why in found]


def launcher_differences(config: RunConfig) -> list[str]:
    """`key: evalfleet X, launcher Y — why`, for what differs on every backend."""
    out = []
    for key in ("deployment", "judge_deployment"):
        section = getattr(config, key)
        if (
            section is not None
            and section.type in ("vllm", "sglang", "trtllm", "nim")
            and not section.served_model_name
        ):
            out.append(
                f"{key}.served_model_name: evalfleet defaults to hf_model_handle or "
                "checkpoint_path (nim: the image's model), launcher requires it — one less "
                "required key, the same name when set"
            )
    out.append(
        "evaluation client: evalfleet runs each task as `evalfleet eval` (its own engine, or "
        "the task's framework package in a virtualenv), launcher in the task's container "
        "image — no image to pull, the same commands and scores"
    )
    return out
