"""Statistics for headline metrics: mean, standard error, bootstrap 95 % interval.

Pure Python (no NumPy): a few thousand values at most, and `evalfleet eval` must start fast.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    value: float
    stderr: float
    ci95: tuple[float, float]
    n: int

    def as_dict(self) -> dict[str, object]:
        return {"value": self.value, "stderr": self.stderr, "ci95": list(self.ci95), "n": self.n}


def mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else float("nan")


def stderr(values: Sequence[float]) -> float:
    """Standard error of the mean (sample standard deviation, n - 1)."""
    n = len(values)
    if n < 2:
        return 0.0 if n == 1 else float("nan")
    m = mean(values)
    variance = math.fsum((v - m) ** 2 for v in values) / (n - 1)
    return math.sqrt(variance / n)


def bootstrap_ci95(
    values: Sequence[float], resamples: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean, seeded so results are reproducible."""
    n = len(values)
    if n == 0:
        return (float("nan"), float("nan"))
    if n == 1 or min(values) == max(values):
        return (float(values[0]), float(values[0]))
    rng = random.Random(seed)
    data = list(values)
    means = sorted(math.fsum(rng.choices(data, k=n)) / n for _ in range(resamples))
    low = means[int(0.025 * (resamples - 1))]
    high = means[math.ceil(0.975 * (resamples - 1))]
    return (low, high)


def summarize(values: Sequence[float]) -> Metric:
    return Metric(mean(values), stderr(values), bootstrap_ci95(values), len(values))
