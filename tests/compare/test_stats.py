"""compare's statistics against SciPy and statsmodels on constructed data.

Pairs are built with known flips (right->wrong, wrong->right) and known differences; the
resampling methods are held to tolerances a 10,000-resample estimate meets (the CI's ends
are quantiles of a resampling distribution, p-values Monte Carlo proportions).
"""

from __future__ import annotations

import random

import pytest

from evalfleet.compare.stats import (
    MCNEMAR_EXACT_BELOW,
    mcnemar_p,
    paired_bootstrap_ci95,
    sign_flip_p,
    significant,
)

np = pytest.importorskip("numpy")
scipy_stats = pytest.importorskip("scipy.stats")
contingency = pytest.importorskip("statsmodels.stats.contingency_tables")


def binary_pairs(
    both_right: int, right_to_wrong: int, wrong_to_right: int, both_wrong: int, seed: int = 3
) -> tuple[list[float], list[float]]:
    """Baseline and candidate right/wrong scores with exactly these flips, shuffled."""
    pairs = (
        [(1.0, 1.0)] * both_right
        + [(1.0, 0.0)] * right_to_wrong
        + [(0.0, 1.0)] * wrong_to_right
        + [(0.0, 0.0)] * both_wrong
    )
    random.Random(seed).shuffle(pairs)
    return [b for b, _ in pairs], [c for _, c in pairs]


def differences(base: list[float], cand: list[float]) -> list[float]:
    return [c - b for b, c in zip(base, cand, strict=True)]


def scipy_paired_ci(base, cand, n_resamples: int = 10_000) -> tuple[float, float]:
    result = scipy_stats.bootstrap(
        (np.array(base), np.array(cand)),
        lambda b, c, axis: np.mean(c - b, axis=axis),
        paired=True, vectorized=True, method="percentile", confidence_level=0.95,
        n_resamples=n_resamples, batch=500, random_state=np.random.default_rng(7),
    )  # fmt: skip
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def scipy_sign_flip_p(base, cand, n_resamples: int = 9_999) -> float:
    result = scipy_stats.permutation_test(
        (np.array(base), np.array(cand)),
        lambda b, c, axis: np.mean(c - b, axis=axis),
        permutation_type="samples", vectorized=True, alternative="two-sided",
        n_resamples=n_resamples, batch=500, random_state=np.random.default_rng(7),
    )  # fmt: skip
    return float(result.pvalue)


@pytest.mark.parametrize(
    ("right_to_wrong", "wrong_to_right"),
    [(0, 0), (0, 1), (1, 0), (3, 3), (2, 9), (9, 2), (0, 12), (5, 19), (12, 12),
     (10, 15), (11, 30), (40, 41), (60, 95), (300, 350)],
)  # fmt: skip
def test_mcnemar_matches_statsmodels(right_to_wrong: int, wrong_to_right: int) -> None:
    table = [[50, right_to_wrong], [wrong_to_right, 40]]
    discordant = right_to_wrong + wrong_to_right
    exact = discordant < MCNEMAR_EXACT_BELOW
    expected = contingency.mcnemar(table, exact=exact, correction=True).pvalue
    assert mcnemar_p(right_to_wrong, wrong_to_right) == pytest.approx(expected, rel=1e-9)
    if exact and discordant:  # the exact test is the two-sided binomial test at 1/2
        binom = scipy_stats.binomtest(min(right_to_wrong, wrong_to_right), discordant, 0.5)
        assert mcnemar_p(right_to_wrong, wrong_to_right) == pytest.approx(binom.pvalue)


def test_zero_discordant_pairs_mean_no_difference() -> None:
    base, cand = binary_pairs(30, 0, 0, 20)
    diffs = differences(base, cand)
    p = mcnemar_p(0, 0)
    ci = paired_bootstrap_ci95(diffs)
    assert p == contingency.mcnemar([[30, 0], [0, 20]], exact=True).pvalue == 1.0
    assert ci == (0.0, 0.0)
    assert sign_flip_p(diffs) == 1.0
    assert not significant(p, ci)


def test_known_improvement_is_significant() -> None:
    # 25 wrong->right against 5 right->wrong over 400 pairs: +0.05.
    base, cand = binary_pairs(250, 5, 25, 120)
    diffs = differences(base, cand)
    ci = paired_bootstrap_ci95(diffs)
    low, high = scipy_paired_ci(base, cand)
    assert ci[0] == pytest.approx(low, abs=0.005)
    assert ci[1] == pytest.approx(high, abs=0.005)
    assert ci[0] < 0.05 < ci[1] and ci[0] > 0
    p = mcnemar_p(5, 25)
    assert p == pytest.approx(contingency.mcnemar([[250, 5], [25, 120]], exact=False).pvalue)
    assert p < 0.001
    assert significant(p, ci)


def test_balanced_flips_are_not_significant() -> None:
    # As many right->wrong as wrong->right: a real-looking churn with no difference.
    base, cand = binary_pairs(150, 14, 16, 120)
    diffs = differences(base, cand)
    ci = paired_bootstrap_ci95(diffs)
    low, high = scipy_paired_ci(base, cand)
    assert ci[0] == pytest.approx(low, abs=0.005)
    assert ci[1] == pytest.approx(high, abs=0.005)
    assert ci[0] < 0 < ci[1]
    p = mcnemar_p(14, 16)
    assert p == pytest.approx(contingency.mcnemar([[150, 14], [16, 120]], exact=False).pvalue)
    assert p > 0.5
    assert not significant(p, ci)
    assert sign_flip_p(diffs) == pytest.approx(scipy_sign_flip_p(base, cand), abs=0.02)


def test_significant_needs_both_the_test_and_the_interval() -> None:
    assert significant(0.01, (0.01, 0.05))
    assert significant(0.01, (-0.05, -0.01))
    assert not significant(0.01, (-0.001, 0.05))  # the interval holds 0
    assert not significant(0.2, (0.01, 0.05))  # the test does not reject
    assert not significant(0.05, (0.01, 0.05))  # p < 0.05, strictly


def test_sign_flip_exact_matches_scipy() -> None:
    # 10 pairs: 1,024 sign patterns, which both enumerate.
    rng = random.Random(5)
    base = [rng.uniform(0, 1) for _ in range(10)]
    cand = [b + rng.gauss(0.15, 0.2) for b in base]
    expected = scipy_sign_flip_p(base, cand)
    assert sign_flip_p(differences(base, cand)) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("n", "shift", "path"),
    [
        (200, 0.04, "by counts"),  # few distinct sizes: a quarter-point grid
        (1_000, 0.008, "8-value blocks"),  # continuous, drawn
        (6_000, -0.002, "normal approximation"),  # continuous, large
    ],
)
def test_sign_flip_matches_scipy_permutation_test(n: int, shift: float, path: str) -> None:
    rng = random.Random(11)
    base = [rng.uniform(0, 1) for _ in range(n)]
    if path == "by counts":
        base = [round(b * 4) / 4 for b in base]
        cand = [min(1.0, max(0.0, b + rng.choice((-0.25, 0.0, 0.0, 0.25)) + shift)) for b in base]
        cand = [round(c * 4) / 4 for c in cand]
    else:
        cand = [b + rng.gauss(shift, 0.15) for b in base]
    expected = scipy_sign_flip_p(base, cand, n_resamples=9_999 if n < 5_000 else 4_999)
    assert 0.001 < expected < 0.9, "the constructed data should give a p-value in the middle"
    assert sign_flip_p(differences(base, cand)) == pytest.approx(expected, abs=0.02), path


@pytest.mark.parametrize(("n", "path"), [(300, "drawn one by one"), (20_000, "normal")])
def test_continuous_bootstrap_matches_scipy(n: int, path: str) -> None:
    rng = random.Random(13)
    base = [rng.uniform(0, 1) for _ in range(n)]
    cand = [b + rng.gauss(0.05, 0.3) for b in base]
    low, high = scipy_paired_ci(base, cand, n_resamples=10_000 if n < 20_000 else 2_000)
    ci = paired_bootstrap_ci95(differences(base, cand))
    width = high - low
    assert ci[0] == pytest.approx(low, abs=0.03 * width), path
    assert ci[1] == pytest.approx(high, abs=0.03 * width), path


def test_results_are_reproducible() -> None:
    base, cand = binary_pairs(100, 7, 15, 60)
    diffs = differences(base, cand)
    assert paired_bootstrap_ci95(diffs) == paired_bootstrap_ci95(diffs)
    assert sign_flip_p(diffs) == sign_flip_p(diffs)


def test_mcnemar_refuses_negative_counts() -> None:
    with pytest.raises(ValueError, match="discordant counts"):
        mcnemar_p(-1, 3)
