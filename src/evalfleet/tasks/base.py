"""What a benchmark is, as the engine sees it.

Two kinds: a `Task` (the default, `request_kind = "generate"`) gets one reply text per
sample and scores it; a `LoglikelihoodTask` (`request_kind = "loglikelihood"`) gives several
(context, continuation) pairs per sample and scores how likely the model found each
continuation (`engine/loglikelihood.py` asks a completions endpoint).

Scoring is pure (no network, no clock): results can be recomputed from the response cache
without a single request (`evalfleet eval --rescore`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from evalfleet.scoring.stats import Metric


@dataclass(frozen=True)
class Sample:
    id: str
    target: Any
    prompt: str | None = None  # completions
    messages: tuple[dict[str, Any], ...] | None = None  # chat
    metadata: dict[str, Any] = field(default_factory=dict)

    def shown_prompt(self) -> str:
        if self.prompt is not None:
            return self.prompt
        messages = self.messages or ()
        if len(messages) == 1:  # the usual case, once per samples.jsonl line: no generator
            only = messages[0]
            return f"{only.get('role')}: {only.get('content')}"
        return "\n".join(f"{m.get('role')}: {m.get('content')}" for m in messages)


@dataclass(frozen=True)
class Score:
    value: float
    """The headline metric's per-sample value."""
    extracted: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    """Further per-sample metrics reported beside the headline (HellaSwag's `acc`), each
    summarised like it (mean, stderr, ci95) unless `aggregate` already names it."""


@dataclass(frozen=True)
class Loglikelihood:
    """How likely the model found one continuation after its context."""

    logprob: float
    """The sum of the continuation's token logprobs."""
    is_greedy: bool | None
    """Whether each continuation token was the model's top choice (None: not reported)."""
    chars: int
    """The continuation's length in characters (what `acc_norm` divides by)."""


class Task(Protocol):
    name: str
    endpoint_type: Literal["chat", "completions"]
    headline_metric: str
    default_params: dict[str, Any]

    def samples(self, limit: int | None) -> Iterable[Sample]: ...

    def request(self, sample: Sample) -> dict[str, Any]:
        """The task's part of the request body: `messages` or `prompt`."""

    def score(self, sample: Sample, response: str) -> Score: ...

    def aggregate(self, per_sample: Sequence[tuple[Sample, float]]) -> dict[str, Metric]: ...


class LoglikelihoodTask(Protocol):
    name: str
    endpoint_type: Literal["completions"]
    request_kind: Literal["loglikelihood"]
    headline_metric: str
    default_params: dict[str, Any]

    def samples(self, limit: int | None) -> Iterable[Sample]: ...

    def pairs(self, sample: Sample) -> Sequence[tuple[str, str]]:
        """The (context, continuation) pairs to score; one completions request each."""

    def score_loglikelihoods(self, sample: Sample, results: Sequence[Loglikelihood]) -> Score:
        """Score from the per-pair results, in the order `pairs` gave them."""

    def aggregate(self, per_sample: Sequence[tuple[Sample, float]]) -> dict[str, Metric]: ...


def is_loglikelihood(task: object) -> bool:
    return getattr(task, "request_kind", "generate") == "loglikelihood"
