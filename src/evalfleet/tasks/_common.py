"""What the catalog's chat tasks share: one user turn (or few-shot turns), the sample
list, and per-group metrics."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from evalfleet.scoring.stats import Metric, summarize
from evalfleet.tasks.base import Sample


def user(content: str) -> tuple[dict[str, Any], ...]:
    return ({"role": "user", "content": content},)


class ChatTask:
    """Base for the catalog's chat tasks; a subclass fills `_load()` and `score()`.

    On a completions endpoint (`endpoint_type: completions`, e.g. a base model) the same
    turns are sent as one plain-text prompt: each turn's text, a blank line between turns,
    ending with the last user turn and a newline.
    """

    name = ""
    endpoint_type = "chat"
    headline_metric = "accuracy"
    group_label = "group"  # what a sample's metadata["group"] means: subject, language…
    scores_in_subprocesses = False
    default_params: dict[str, Any] = {"temperature": 0.0, "max_new_tokens": 2048}

    def __init__(self, endpoint_type: str = "chat") -> None:
        self.endpoint_type = "completions" if endpoint_type == "completions" else "chat"
        self.n_samples = 1
        self._samples: list[Sample] | None = None

    def _load(self) -> list[Sample]:
        raise NotImplementedError

    def samples(self, limit: int | None) -> Iterable[Sample]:
        if self._samples is None:
            self._samples = self._load()
        return self._samples[:limit] if limit else self._samples

    def request(self, sample: Sample) -> dict[str, Any]:
        if self.endpoint_type == "completions":
            return {"prompt": as_prompt(sample.messages or ())}
        return {"messages": list(sample.messages or ())}

    def aggregate(self, per_sample: Sequence[tuple[Sample, float]]) -> dict[str, Metric]:
        return grouped(self.headline_metric, per_sample, self.group_label)


def as_prompt(messages: Sequence[dict[str, Any]]) -> str:
    """Chat turns as one completions prompt (see ChatTask)."""
    return "\n\n".join(str(m["content"]) for m in messages) + "\n"


def grouped(
    metric: str, per_sample: Sequence[tuple[Sample, float]], label: str = "group"
) -> dict[str, Metric]:
    """The headline over all samples, plus `metric/<label>:<group>` per group when the
    samples carry more than one `metadata["group"]` (MMLU subjects, MGSM languages…)."""
    metrics = {metric: summarize([value for _, value in per_sample])}
    groups: dict[str, list[float]] = {}
    for sample, value in per_sample:
        group = sample.metadata.get("group")
        if group is not None:
            groups.setdefault(str(group), []).append(value)
    if len(groups) > 1:
        for group, values in sorted(groups.items()):
            metrics[f"{metric}/{label}:{group}"] = summarize(values)
    supers: dict[str, list[float]] = {}
    for sample, value in per_sample:
        category = sample.metadata.get("category")
        if category is not None:
            supers.setdefault(str(category), []).append(value)
    if len(supers) > 1:
        for category, values in sorted(supers.items()):
            metrics[f"{metric}/category:{category}"] = summarize(values)
    return metrics
