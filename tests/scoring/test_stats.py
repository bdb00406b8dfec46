"""Headline statistics: the bootstrap interval and the binomial draws it is built on."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from evalfleet.scoring.stats import binomial, bootstrap_ci95, stderr, summarize


def one_by_one_bootstrap(values, resamples=1000, seed=7):
    """The textbook percentile bootstrap: n values drawn with replacement, per resample."""
    rng = random.Random(seed)
    n = len(values)
    means = sorted(math.fsum(rng.choices(values, k=n)) / n for _ in range(resamples))
    return means[int(0.025 * (resamples - 1))], means[math.ceil(0.975 * (resamples - 1))]


@pytest.mark.parametrize("n, p", [(10, 0.3), (7, 0.9), (40, 0.05)])
def test_binomial_draws_follow_the_binomial_distribution(n, p):
    rng = random.Random(1)
    draws = 100_000
    counts = Counter(binomial(n, p, rng) for _ in range(draws))
    for k in range(n + 1):
        expected = math.comb(n, k) * p**k * (1 - p) ** (n - k)
        tolerance = 5 * math.sqrt(expected * (1 - expected) / draws) + 1e-4
        assert abs(counts[k] / draws - expected) <= tolerance, (k, counts[k] / draws, expected)


def test_binomial_draws_for_large_n_have_its_mean_and_variance():
    rng = random.Random(2)
    n, p, draws = 12_000, 0.6, 20_000
    xs = [binomial(n, p, rng) for _ in range(draws)]
    mean = sum(xs) / draws
    variance = sum((x - mean) ** 2 for x in xs) / (draws - 1)
    assert abs(mean - n * p) < 5 * math.sqrt(n * p * (1 - p) / draws)
    assert abs(variance / (n * p * (1 - p)) - 1) < 5 * math.sqrt(2 / draws)
    assert binomial(n, 0.0, rng) == 0 and binomial(n, 1.0, rng) == n and binomial(0, 0.5, rng) == 0


@pytest.mark.parametrize(
    "levels",
    [
        (0.0, 1.0),  # right or wrong
        (0.0, 1 / 3, 2 / 3, 1.0),  # the mean over three repeats
        (0.0, 0.25, 1.0),
    ],
)
def test_the_interval_matches_drawing_values_one_by_one(levels):
    rng = random.Random(3)
    values = [rng.choice(levels) for _ in range(3000)]
    fast = bootstrap_ci95(values)
    slow = one_by_one_bootstrap(values)
    width = slow[1] - slow[0]
    # Two Monte Carlo estimates of the same percentiles: equal up to their own noise.
    assert abs(fast[0] - slow[0]) < 0.12 * width and abs(fast[1] - slow[1]) < 0.12 * width
    # And both agree with the normal approximation the interval should approach.
    mean = math.fsum(values) / len(values)
    half = 1.96 * stderr(values)
    assert abs(fast[0] - (mean - half)) < 0.1 * width and abs(fast[1] - (mean + half)) < 0.1 * width


def test_continuous_values_still_get_an_interval_around_their_mean():
    rng = random.Random(4)
    values = [rng.random() for _ in range(500)]  # 500 distinct levels: drawn one by one
    low, high = bootstrap_ci95(values)
    assert low < math.fsum(values) / 500 < high and high - low < 0.1


def test_the_interval_is_reproducible_and_degenerate_cases_are_exact():
    values = [float(i % 3 == 0) for i in range(1000)]
    assert bootstrap_ci95(values) == bootstrap_ci95(list(values))
    assert bootstrap_ci95([1.0] * 50) == (1.0, 1.0)
    assert bootstrap_ci95([0.5]) == (0.5, 0.5)
    assert all(math.isnan(x) for x in bootstrap_ci95([]))
    metric = summarize([1.0, 0.0, 1.0, 1.0])
    assert (metric.value, metric.n) == (0.75, 4) and metric.ci95[0] <= 0.75 <= metric.ci95[1]
