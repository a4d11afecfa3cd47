"""Paired statistics for method-vs-baseline comparisons over seeds.

Runs of two methods with the same seed share the training subset and the initialisation, so the comparison is
paired: per-seed differences feed a paired t-test, a Wilcoxon signed-rank test and a sign test, and a bootstrap over
the pairs gives a confidence interval for the relative gain. Holm's step-down method adjusts a family of p-values.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class PairedComparison:
    """A method against the baseline over paired seeds; ``gain`` > 0 means the method is better.

    Attributes
    ----------
    n : int
        Number of pairs.
    baseline_mean, method_mean : float
        Means of the metric.
    gain : float
        Relative gain of the means: (baseline - method) / baseline when smaller is better, (method - baseline) /
        |baseline| when larger is better.
    ci_low, ci_high : float
        Bootstrap percentile interval of ``gain`` (pairs resampled); NaN with fewer than two pairs.
    wins, losses, ties : int
        Pairs where the method is better, worse, equal.
    p_ttest, p_wilcoxon, p_sign : float
        Two-sided p-values of the paired t-test, the Wilcoxon signed-rank test and the sign test (NaN when
        undefined, e.g. one pair).
    """

    n: int
    baseline_mean: float
    method_mean: float
    gain: float
    ci_low: float
    ci_high: float
    wins: int
    losses: int
    ties: int
    p_ttest: float
    p_wilcoxon: float
    p_sign: float

    def as_dict(self) -> dict:
        return asdict(self)


def relative_gain(baseline: float, method: float, direction: str = "min") -> float:
    """Relative improvement of ``method`` over ``baseline`` (positive = better).

    Examples
    --------
    >>> round(relative_gain(0.20, 0.15), 6)
    0.25
    >>> round(relative_gain(0.80, 0.88, direction="max"), 6)
    0.1
    """
    _check_direction(direction)
    if baseline == 0:
        return math.nan
    if direction == "min":
        return (baseline - method) / abs(baseline)
    return (method - baseline) / abs(baseline)


def paired_comparison(
    baseline,
    method,
    *,
    direction: str = "min",
    n_boot: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedComparison:
    """Compare paired samples (one value per seed, in the same seed order).

    Examples
    --------
    >>> result = paired_comparison([0.20, 0.22, 0.25, 0.21], [0.18, 0.20, 0.22, 0.20])
    >>> result.wins, round(result.gain, 3), result.p_sign
    (4, 0.091, 0.125)
    """
    _check_direction(direction)
    b = np.asarray(baseline, dtype=float)
    m = np.asarray(method, dtype=float)
    if b.shape != m.shape or b.ndim != 1:
        raise ValueError(f"baseline and method must be 1-D of equal length, got {b.shape} and {m.shape}")
    if not (np.all(np.isfinite(b)) and np.all(np.isfinite(m))):
        raise ValueError("paired_comparison needs finite values; drop failed runs first")
    n = len(b)
    if n == 0:
        raise ValueError("paired_comparison needs at least one pair")
    # improvement > 0 where the method is better, whatever the direction
    improvement = (b - m) if direction == "min" else (m - b)
    wins, losses = int(np.sum(improvement > 0)), int(np.sum(improvement < 0))
    ties = n - wins - losses
    gain = relative_gain(b.mean(), m.mean(), direction)
    ci_low, ci_high = bootstrap_gain_ci(
        b, m, direction=direction, n_boot=n_boot, confidence=confidence, seed=seed
    )
    return PairedComparison(
        n=n,
        baseline_mean=float(b.mean()),
        method_mean=float(m.mean()),
        gain=float(gain),
        ci_low=ci_low,
        ci_high=ci_high,
        wins=wins,
        losses=losses,
        ties=ties,
        p_ttest=paired_ttest_p(improvement),
        p_wilcoxon=wilcoxon_p(improvement),
        p_sign=sign_test_p(wins, losses),
    )


def paired_ttest_p(differences) -> float:
    """Two-sided p-value of the paired t-test on per-pair differences (NaN if undefined).

    Examples
    --------
    >>> round(paired_ttest_p([0.1, 0.2, 0.3]), 4)
    0.0742
    """
    d = np.asarray(differences, dtype=float)
    if len(d) < 2:
        return math.nan
    if np.all(d == d[0]):
        # zero spread: no evidence either way when all are zero, an undefined (infinite) t otherwise
        return 1.0 if d[0] == 0 else math.nan
    from scipy import stats as scipy_stats  # imported on use: scipy.stats takes seconds to import

    return float(scipy_stats.ttest_1samp(d, 0.0).pvalue)


def wilcoxon_p(differences) -> float:
    """Two-sided Wilcoxon signed-rank p-value (zero differences dropped; 1.0 when all are zero)."""
    d = np.asarray(differences, dtype=float)
    if len(d) < 2:
        return math.nan
    if np.all(d == 0):
        return 1.0
    from scipy import stats as scipy_stats

    return float(scipy_stats.wilcoxon(d, zero_method="wilcox").pvalue)


def sign_test_p(wins: int, losses: int) -> float:
    """Two-sided exact sign test: ties excluded, wins ~ Binomial(wins + losses, 1/2).

    Examples
    --------
    >>> sign_test_p(9, 0)
    0.00390625
    """
    trials = wins + losses
    if trials == 0:
        return 1.0
    from scipy import stats as scipy_stats

    return float(scipy_stats.binomtest(wins, trials, 0.5).pvalue)


def bootstrap_gain_ci(
    baseline, method, *, direction: str = "min", n_boot: int = 10_000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the relative gain of the means, resampling pairs (seeded)."""
    b = np.asarray(baseline, dtype=float)
    m = np.asarray(method, dtype=float)
    n = len(b)
    if n < 2:
        return math.nan, math.nan
    if not 0 < confidence < 1:
        raise ValueError(f"confidence {confidence} must lie in (0, 1)")
    rng = np.random.default_rng(seed)
    index = rng.integers(0, n, size=(n_boot, n))
    b_means, m_means = b[index].mean(axis=1), m[index].mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if direction == "min":
            gains = (b_means - m_means) / np.abs(b_means)
        else:
            gains = (m_means - b_means) / np.abs(b_means)
    gains = gains[np.isfinite(gains)]
    if len(gains) == 0:
        return math.nan, math.nan
    tail = (1 - confidence) / 2
    low, high = np.quantile(gains, [tail, 1 - tail])
    return float(low), float(high)


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (NaNs stay NaN and are not counted).

    Examples
    --------
    >>> holm([0.01, 0.04, 0.03]).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full_like(p, np.nan)
    valid = np.flatnonzero(np.isfinite(p))
    if len(valid) == 0:
        return adjusted
    order = valid[np.argsort(p[valid], kind="stable")]
    k = len(order)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (k - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def mean_std(values) -> tuple[float, float, int]:
    """(mean, sample standard deviation, count) of the finite values; std is NaN for one value."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return math.nan, math.nan, 0
    std = float(v.std(ddof=1)) if len(v) > 1 else math.nan
    return float(v.mean()), std, len(v)


def _check_direction(direction: str) -> None:
    if direction not in ("min", "max"):
        raise ValueError(f"direction must be 'min' or 'max', got {direction!r}")
