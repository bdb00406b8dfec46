"""Paired statistics for comparing two runs sample by sample.

Pure Python (no NumPy/SciPy: they are test-only), seeded so a comparison prints the same
numbers every time. Every function takes the per-sample differences or counts of the
samples both runs scored; pairing is done by the caller (`evalfleet.compare.core`).

- `paired_bootstrap_ci95`: percentile bootstrap of the mean difference, resampling pairs.
- `mcnemar_p`: McNemar's test for right/wrong metrics, from the discordant counts.
- `sign_flip_p`: the paired permutation test (random sign flips of the differences).

Speed: each uses the fact that most per-sample differences take few distinct values
(right/wrong gives -1, 0, +1) and draws how many times each value comes up instead of
drawing every sample; only many-valued differences on large runs fall back to the normal
approximation of the resampling distribution (said where it happens).
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Sequence

from evalfleet.scoring.stats import binomial, bootstrap_ci95

RESAMPLES = 10_000
SEED = 0
# Below this many discordant pairs McNemar's p-value is the exact binomial one; from it on,
# the chi-square approximation with continuity correction (statsmodels' recommendation for
# when the exact test's cost or discreteness stops being worth it).
MCNEMAR_EXACT_BELOW = 25
# Differences with at most this many distinct values are resampled by counts (exact);
# more distinct values are drawn one by one while n x resamples stays under a budget
# (measured: 500 x 10,000 draws ~0.8 s; 4,000 sign-flipped sums in 8-value blocks ~1 s).
_MAX_LEVELS = 64
_DRAW_BUDGET = 5_000_000
_FLIP_BUDGET = 40_000_000
_Z975 = 1.959963984540054


def paired_bootstrap_ci95(
    differences: Sequence[float], resamples: int = RESAMPLES, seed: int = SEED
) -> tuple[float, float]:
    """95 % percentile bootstrap interval of the mean of `differences` (candidate minus
    baseline per shared sample): resampling the differences is resampling the pairs.

    Few distinct values (right/wrong, means over a few repeats): every resample is drawn
    exactly, by counts (`scoring.stats.bootstrap_ci95`). Many distinct values: drawn one
    by one while `n * resamples` <= 5 million; beyond that (e.g. 100,000 continuous
    scores) the interval is the normal one, mean +- 1.96 x the bootstrap standard error
    (the bootstrap distribution of a mean over so many pairs is normal to within a
    fraction of its resampling noise)."""
    n = len(differences)
    if n == 0:
        return (math.nan, math.nan)
    if len(set(differences)) <= _MAX_LEVELS or n * resamples <= _DRAW_BUDGET:
        return bootstrap_ci95(differences, resamples=resamples, seed=seed)
    mean = math.fsum(differences) / n
    spread = math.sqrt(math.fsum((d - mean) ** 2 for d in differences) / n / n)
    return (mean - _Z975 * spread, mean + _Z975 * spread)


def mcnemar_p(right_to_wrong: int, wrong_to_right: int) -> float:
    """Two-sided p-value of McNemar's test from the discordant pairs' counts.

    Fewer than 25 discordant pairs: the exact binomial test, as statsmodels'
    `mcnemar(table, exact=True)`: 2 x P(X <= min(b, c)) for X ~ Binomial(b + c, 1/2),
    capped at 1 (no discordant pair at all: 1.0). From 25 on: the chi-square test with
    continuity correction, as `mcnemar(table, exact=False, correction=True)`:
    (|b - c| - 1)^2 / (b + c) against chi-square with one degree of freedom."""
    b, c = right_to_wrong, wrong_to_right
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got {b} and {c}")
    n = b + c
    if n < MCNEMAR_EXACT_BELOW:
        tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
        return min(1.0, 2 * tail / 2**n)
    statistic = (abs(b - c) - 1) ** 2 / n
    return math.erfc(math.sqrt(statistic / 2))  # chi-square(1) survival function


def sign_flip_p(
    differences: Sequence[float], resamples: int = RESAMPLES, seed: int = SEED
) -> float:
    """Two-sided p-value of the paired permutation test of mean difference 0: under the
    null each pair's two values are exchangeable, so each difference keeps its size and
    gets a random sign. Defined as SciPy's `permutation_test(..., permutation_type=
    "samples")`: 2 x min(P(T* >= T), P(T* <= T)), capped at 1, with the observed
    statistic counted once among the Monte Carlo draws ((k + 1) / (R + 1)).

    Exact (all 2^m sign patterns of the m nonzero differences) when 2^m <= resamples
    (m <= 13 for 10,000); otherwise Monte Carlo. Few distinct sizes: each draw is
    exact by counts (how many of each size flip is binomial); many sizes on a large run
    (n x resamples > 40 million): the normal approximation of the sign-flip distribution
    (mean 0, variance sum d^2), whose error shrinks as 1/sqrt(n)."""
    nonzero = [float(d) for d in differences if d != 0]
    if not nonzero:
        return 1.0
    observed = math.fsum(nonzero)
    # Sums are compared with a tolerance, as SciPy does, so that float rounding does not
    # decide whether a tie counts.
    gamma = 1e-14 * max(1.0, abs(observed)) * len(nonzero)
    if 2 ** len(nonzero) <= resamples:
        sums = [
            math.fsum(s * d for s, d in zip(signs, nonzero, strict=True))
            for signs in itertools.product((1.0, -1.0), repeat=len(nonzero))
        ]
        return _two_sided(sums, observed, gamma, exact=True)
    rng = random.Random(seed)
    sizes = Counter(abs(d) for d in nonzero)
    if len(sizes) <= _MAX_LEVELS:
        ordered = sorted(sizes.items())
        sums = []
        for _ in range(resamples):
            total = 0.0
            for size, count in ordered:
                total += size * (2 * binomial(count, 0.5, rng) - count)
            sums.append(total)
        return _two_sided(sums, observed, gamma, exact=False)
    if len(nonzero) * resamples <= _FLIP_BUDGET:
        return _two_sided(_block_sign_sums(nonzero, resamples, rng), observed, gamma, False)
    scale = math.sqrt(math.fsum(d * d for d in nonzero))
    return min(1.0, math.erfc(abs(observed) / scale / math.sqrt(2)))


def _block_sign_sums(values: list[float], resamples: int, rng: random.Random) -> list[float]:
    """Sums of `values` under random signs, 8 values at a time: every block's 256 signed
    sums are tabled once, and one 8-bit draw picks a block's sum (8x fewer Python steps)."""
    tables = []
    for start in range(0, len(values), 8):
        block = values[start : start + 8]
        tables.append(
            [
                math.fsum(d if (bits >> i) & 1 else -d for i, d in enumerate(block))
                for bits in range(1 << len(block))
            ]
        )
    out = []
    for _ in range(resamples):
        out.append(math.fsum(table[rng.getrandbits(8) & (len(table) - 1)] for table in tables))
    return out


def _two_sided(sums: list[float], observed: float, gamma: float, exact: bool) -> float:
    adjustment = 0 if exact else 1
    greater = sum(1 for s in sums if s >= observed - gamma)
    less = sum(1 for s in sums if s <= observed + gamma)
    total = len(sums) + adjustment
    return min(1.0, 2 * min(greater + adjustment, less + adjustment) / total)


def significant(p_value: float, ci95: Sequence[float], alpha: float = 0.05) -> bool:
    """The rule `compare` marks a difference by: the test's p-value is below `alpha` AND
    the paired bootstrap interval excludes 0. Requiring both keeps a borderline McNemar
    p-value from being called significant when resampling the same pairs says the mean
    difference could be 0 (and the other way round)."""
    low, high = ci95
    if math.isnan(p_value) or math.isnan(low) or math.isnan(high):
        return False
    return p_value < alpha and (low > 0 or high < 0)
