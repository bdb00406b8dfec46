"""What a benchmark is, as the engine sees it.

`score` is pure (no network, no clock): results can be recomputed from the response cache
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
        return "\n".join(f"{m.get('role')}: {m.get('content')}" for m in self.messages or ())


@dataclass(frozen=True)
class Score:
    value: float
    extracted: str | None = None


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
