"""What simple-evals' chat tasks share (nvidia-simple-evals 26.3, `simple_evals/`): the
generation defaults, the per-request seed, and how results are summarised.

- Defaults: the package's `framework.yml` (temperature 0, top_p 1e-5, 16,384 new tokens,
  one repeat, no system message).
- Seed: `ChatCompletionSampler` sends `seed = SeedGenerator(42).get_seed(index)`, `index`
  being the request's position in the eval's list of examples (`[ex1..exN] * n_repeats`,
  after `--first_n`, i.e. evalfleet's `limit_samples`): the engine numbers requests the
  same way and asks `request_seed(index, params.seed)`; a `params.seed` is the base seed,
  as simple-evals' `--seed` is.
- Metrics (`common.aggregate_results`): `score`, the mean over every answer; with
  `add_macro` each per-sample metric name (MMLU's categories, MGSM's languages and script
  groups) is reported as its own mean and `score_macro` is the mean of those means.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

from evalfleet.scoring.stats import Metric, mean, summarize
from evalfleet.tasks._common import ChatTask
from evalfleet.tasks.base import Sample

SIMPLE_EVALS_PARAMS: dict[str, Any] = {"temperature": 0.0, "top_p": 1e-05, "max_new_tokens": 16384}
BASE_SEED = 42  # simple_evals --seed (the launcher never sets it)


def completion_seed(index: int, sub_index: int | None = None, base_seed: int = BASE_SEED) -> int:
    """`SeedGenerator(base_seed).get_seed(index, sub_index)` (simple_evals/seed_generator.py)."""
    combined = base_seed * 2147483647 + index
    if sub_index is not None:
        combined = combined * 2147483647 + sub_index
    return random.Random(combined).randint(0, 2**32 - 1)


class SimpleEvalsTask(ChatTask):
    """A simple-evals chat task: one user turn per sample, the reference's seed per
    request, `score` plus the per-sample metric names in `metadata["metrics"]`."""

    headline_metric = "score"
    default_params = dict(SIMPLE_EVALS_PARAMS)
    add_macro = False  # aggregate_results(add_macro=...)

    def request_seed(self, index: int, seed: int | None) -> int:
        """The seed of the request numbered `index` (repeat x samples + position)."""
        return completion_seed(index, base_seed=BASE_SEED if seed is None else seed)

    def aggregate(self, per_sample: Sequence[tuple[Sample, float]]) -> dict[str, Metric]:
        metrics = {"score": summarize([value for _, value in per_sample])}
        by_name: dict[str, list[float]] = {}
        for sample, value in per_sample:
            for name in sample.metadata.get("metrics", ()):
                by_name.setdefault(name, []).append(value)
        for name in sorted(by_name):
            metrics[name] = summarize(by_name[name])
        if self.add_macro and by_name:
            metrics["score_macro"] = _macro([metrics[name] for name in by_name], len(per_sample))
        return metrics


def _macro(parts: list[Metric], n: int) -> Metric:
    """The mean of the parts' means (the reference reports no spread for it: the standard
    error here treats the parts as independent)."""
    value = mean([part.value for part in parts])
    stderr = math.sqrt(math.fsum(part.stderr**2 for part in parts)) / len(parts)
    return Metric(value, stderr, (value - 1.96 * stderr, value + 1.96 * stderr), n)
