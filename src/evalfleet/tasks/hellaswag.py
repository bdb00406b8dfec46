"""HellaSwag, scored as lm-eval scores it: by the log-likelihood of each of the 4 endings.

Data: validation split (10,042, `Rowan/hellaswag`). Each item is lm-eval's `process_docs`:
query = preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize()), choices =
preprocess(ending) for each ending, where preprocess strips, turns " [title]" into ". ",
removes every other `[...]` WikiHow header and folds double spaces. 0-shot (lm-eval's
default; the Open LLM Leaderboard's 10-shot is not built in).

Each sample asks a completions endpoint for 4 log-likelihoods: the context is the query,
the continuation " " + choice (lm-eval's target delimiter). Metrics, as lm-eval's:
- `acc_norm` (headline): the ending with the highest logprob per character of the choice
  (its length without the leading space) is the gold one;
- `acc`: the ending with the highest summed logprob is the gold one.
Ties go to the first ending (numpy's argmax).

There is no chat variant: a generative multiple-choice HellaSwag gives numbers nobody
publishes and that are not comparable with `acc_norm`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from evalfleet.datasets import load_rows
from evalfleet.scoring.stats import Metric, summarize
from evalfleet.tasks.base import Loglikelihood, Sample, Score

TARGET_DELIMITER = " "


def preprocess(text: str) -> str:
    """lm-eval's HellaSwag `preprocess`: WikiHow markup out, spacing fixed."""
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def query_of(row: dict[str, Any]) -> str:
    context = row["ctx_a"] + " " + row["ctx_b"].capitalize()
    return preprocess(row["activity_label"] + ": " + context)


def _argmax(values: Sequence[float]) -> int:
    return max(range(len(values)), key=lambda i: (values[i], -i))


class HellaSwag:
    name = "lm-evaluation-harness.hellaswag"
    endpoint_type = "completions"
    request_kind = "loglikelihood"
    headline_metric = "acc_norm"
    default_params: dict[str, Any] = {}

    def __init__(self) -> None:
        self._samples: list[Sample] | None = None

    def samples(self, limit: int | None) -> Iterable[Sample]:
        if self._samples is None:
            self._samples = [
                Sample(
                    id=f"hellaswag/{row['ind']}",
                    target=int(row["label"]),
                    prompt=query_of(row),
                    metadata={"choices": [preprocess(ending) for ending in row["endings"]]},
                )
                for row in load_rows(self.name, "hellaswag-validation")
            ]
        return self._samples[:limit] if limit else self._samples

    def pairs(self, sample: Sample) -> list[tuple[str, str]]:
        query = sample.prompt or ""
        return [(query, TARGET_DELIMITER + choice) for choice in sample.metadata["choices"]]

    def score_loglikelihoods(self, sample: Sample, results: Sequence[Loglikelihood]) -> Score:
        logprobs = [result.logprob for result in results]
        lengths = [max(1, len(choice)) for choice in sample.metadata["choices"]]
        normalised = _argmax([lp / n for lp, n in zip(logprobs, lengths, strict=True)])
        unnormalised = _argmax(logprobs)
        return Score(
            value=float(normalised == sample.target),
            extracted=str(normalised),
            metrics={"acc": float(unnormalised == sample.target)},
        )

    def aggregate(self, per_sample: Sequence[tuple[Sample, float]]) -> dict[str, Metric]:
        return {self.headline_metric: summarize([value for _, value in per_sample])}
