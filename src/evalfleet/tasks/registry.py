"""Make a Task from its name (or from the user's own dataset)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from evalfleet.exceptions import ConfigError
from evalfleet.tasks.base import Task
from evalfleet.tasks.catalog import check_task_options, resolve_task_name


def create_task(
    name: str,
    *,
    dataset_path: str | Path | None = None,
    scorer: str | None = None,
    pattern: str | None = None,
    ignore_case: bool = True,
    endpoint_type: str = "chat",
    options: dict[str, Any] | None = None,
) -> Task:
    """The task `name` (or a custom one, given `dataset_path`); `options` are its
    benchmark settings (`catalog.task_options`), set on the instance before it loads."""
    if dataset_path is not None:
        from evalfleet.tasks.custom import CustomTask

        if scorer is None:
            raise ConfigError(f"task {name!r}: a dataset.path task needs a scorer")
        return CustomTask(
            name, dataset_path, scorer, pattern=pattern, ignore_case=ignore_case,
            endpoint_type="completions" if endpoint_type == "completions" else "chat",
        )  # fmt: skip
    try:
        info = resolve_task_name(name, endpoint_type)
    except ValueError as exc:
        raise ConfigError(f"task: {exc}") from None
    module_name, class_name = _FACTORIES[info.name]
    module = importlib.import_module(f"evalfleet.tasks.{module_name}")
    task_class = getattr(module, class_name)
    from evalfleet.tasks._common import ChatTask

    try:
        settings = check_task_options(info.name, options or {})
    except ValueError as exc:
        raise ConfigError(f"task {info.name!r}: options.{exc}") from None
    # Chat tasks also speak to completions endpoints.
    task = task_class(endpoint_type) if issubclass(task_class, ChatTask) else task_class()
    for key, value in settings.items():
        setattr(task, key, value)
    return task


def default_params(name: str, custom: bool = False) -> dict[str, Any]:
    """The generation parameters task `name` uses when a config leaves them unset (the
    planner writes them into job.json, so a dry run shows them)."""
    if custom:
        from evalfleet.tasks.custom import CustomTask

        return dict(CustomTask.default_params)
    module_name, class_name = _FACTORIES[resolve_task_name(name).name]
    task_class = getattr(importlib.import_module(f"evalfleet.tasks.{module_name}"), class_name)
    return dict(task_class.default_params)


# qualified name -> (module under evalfleet.tasks, class): imported only when the task runs.
_FACTORIES: dict[str, tuple[str, str]] = {
    "simple_evals.mmlu": ("simple_evals_mc", "SimpleEvalsMMLU"),
    "simple_evals.mmlu_pro": ("simple_evals_mc", "SimpleEvalsMMLUPro"),
    "simple_evals.gpqa_diamond": ("simple_evals_mc", "SimpleEvalsGPQADiamond"),
    "simple_evals.mgsm": ("mgsm", "MGSM"),
    "simple_evals.math_test_500": ("simple_evals_math", "SimpleEvalsMath500"),
    "simple_evals.AIME_2024": ("simple_evals_math", "SimpleEvalsAime2024"),
    "simple_evals.AIME_2025": ("simple_evals_math", "SimpleEvalsAime2025"),
    "simple_evals.humaneval": ("humaneval", "HumanEval"),
    "lm-evaluation-harness.ifeval": ("ifeval", "IFEval"),
    "lm-evaluation-harness.gsm8k": ("gsm8k", "GSM8K"),
    "lm-evaluation-harness.gsm8k_cot_llama": ("gsm8k", "GSM8KCoTLlama"),
    "lm-evaluation-harness.arc_challenge": ("lm_eval_mc", "ArcChallenge"),
    "lm-evaluation-harness.arc_easy": ("lm_eval_mc", "ArcEasy"),
    "lm-evaluation-harness.hellaswag": ("lm_eval_mc", "HellaSwag"),
    "lm-evaluation-harness.piqa": ("lm_eval_mc", "Piqa"),
    "lm-evaluation-harness.winogrande": ("lm_eval_mc", "Winogrande"),
    "lm-evaluation-harness.openbookqa": ("lm_eval_mc", "OpenBookQA"),
    "bigcode-evaluation-harness.humaneval": ("bigcode", "BigcodeHumanEval"),
    "bigcode-evaluation-harness.mbpp-chat": ("bigcode", "BigcodeMBPPChat"),
    "evalfleet.math_500": ("competition_math", "Math500"),
    "evalfleet.aime_2024": ("competition_math", "Aime2024"),
    "evalfleet.aime_2025": ("competition_math", "Aime2025"),
    "evalfleet.mmlu_pro_cot": ("mmlu_pro", "MMLUProCoT"),
    "evalfleet.arc_challenge_cot": ("multiple_choice", "ArcChallengeCoT"),
    "evalfleet.mbpp": ("mbpp", "MBPP"),
}
