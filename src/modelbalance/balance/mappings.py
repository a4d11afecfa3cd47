"""Maps from per-unit alphas to per-unit factors.

Every mapping is a pure function of a 1-D array of alphas (and, for the noise-aware one, their standard
errors) and returns one positive factor per entry. Larger alpha (a lighter-tailed, under-trained unit) never
gets a smaller factor. Shared rules, applied by :func:`map_alphas` and by each mapping:

- entries whose alpha is NaN get factor 1 and are left out of the statistics (mean, min, max, ranks);
- when all finite alphas are equal (or there is only one) every factor is 1.

Example
-------
>>> import numpy as np
>>> sigmoid_factors(np.array([2.0, 3.0, 4.0])).round(3)
array([0.562, 1.   , 1.778])
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = [
    "MAPPINGS",
    "linear_factors",
    "log2_factors",
    "map_alphas",
    "noise_aware_factors",
    "normalize_factors",
    "rank_factors",
    "shrink_alphas",
    "sigmoid_factors",
    "sqrt_factors",
]


def _as_alphas(alphas) -> np.ndarray:
    values = np.asarray(alphas, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"alphas must be a 1-D array, got shape {values.shape}")
    return values


def _spread_is_zero(finite: np.ndarray) -> bool:
    return finite.size < 2 or float(np.ptp(finite)) <= 1e-12 * max(1.0, float(np.abs(finite).max()))


def _on_finite(alphas, compute: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply ``compute`` to the finite alphas; NaN entries and the all-equal case give factor 1."""
    values = _as_alphas(alphas)
    factors = np.ones_like(values)
    finite = np.isfinite(values)
    if not _spread_is_zero(values[finite]):
        factors[finite] = compute(values[finite])
    return factors


def linear_factors(alphas, *, s1: float = 0.5, s2: float = 1.5) -> np.ndarray:
    """NeurIPS TempBalance: factor linear in alpha, ``s1`` at the smallest alpha and ``s2`` at the largest.

    >>> linear_factors([2.0, 3.0, 4.0])
    array([0.5, 1. , 1.5])
    """
    if not 0 < s1 <= s2:
        raise ValueError(f"linear mapping needs 0 < s1 <= s2, got s1={s1}, s2={s2}")

    def compute(a: np.ndarray) -> np.ndarray:
        return s1 + (s2 - s1) * (a - a.min()) / (a.max() - a.min())

    return _on_finite(alphas, compute)


def sigmoid_factors(
    alphas, *, s_min: float = 0.5, s_max: float = 0.5, temperature: float = 10.0
) -> np.ndarray:
    """EMNLP TB_Sigmoid: ``10 ** f`` with ``f = s * (sigmoid(T * (alpha - mean)) - 1/2)``.

    ``s`` is ``s_max`` above the mean and ``s_min`` below it, so the factor lies in
    ``(10 ** (-s_min / 2), 10 ** (s_max / 2))``.

    >>> sigmoid_factors([3.0, 3.0]).tolist()
    [1.0, 1.0]
    """
    if s_min < 0 or s_max < 0 or temperature <= 0:
        raise ValueError(
            f"sigmoid mapping needs s_min >= 0, s_max >= 0, temperature > 0; "
            f"got s_min={s_min}, s_max={s_max}, temperature={temperature}"
        )

    def compute(a: np.ndarray) -> np.ndarray:
        x = a - a.mean()
        centred_sigmoid = 1.0 / (1.0 + np.exp(-temperature * x)) - 0.5
        exponent = np.where(x > 0, s_max, s_min) * centred_sigmoid
        return 10.0**exponent

    return _on_finite(alphas, compute)


def rank_factors(alphas, *, s1: float = 0.5, s2: float = 1.5) -> np.ndarray:
    """Factor linear in the rank of alpha: ``s1`` for the smallest, ``s2`` for the largest; ties share a rank.

    Insensitive to how far apart the alphas are, so one outlier cannot squeeze the others together.

    >>> rank_factors([2.0, 10.0, 3.0])
    array([0.5, 1.5, 1. ])
    """
    if not 0 < s1 <= s2:
        raise ValueError(f"rank mapping needs 0 < s1 <= s2, got s1={s1}, s2={s2}")

    def compute(a: np.ndarray) -> np.ndarray:
        order = np.argsort(a, kind="stable")
        ranks = np.empty(a.size)
        ranks[order] = np.arange(a.size, dtype=np.float64)
        for value in np.unique(a):  # average rank for ties
            tied = a == value
            ranks[tied] = ranks[tied].mean()
        return s1 + (s2 - s1) * ranks / (a.size - 1)

    return _on_finite(alphas, compute)


def _proportional(alphas, transform: Callable[[np.ndarray], np.ndarray], name: str, lower: float):
    def compute(a: np.ndarray) -> np.ndarray:
        if (a <= lower).any():
            raise ValueError(
                f"{name} mapping needs alphas > {lower} (it scales with {name}(alpha)); got min "
                f"{a.min():.4g}. "
                "Use metric='alpha' with it, not a shifted metric such as 'alpha_relative'."
            )
        g = transform(a)
        return a.size * g / g.sum()

    return _on_finite(alphas, compute)


def sqrt_factors(alphas) -> np.ndarray:
    """Factor proportional to ``sqrt(alpha)``, scaled so the mean factor is 1. Needs positive alphas.

    >>> sqrt_factors([1.0, 4.0]).round(4)
    array([0.6667, 1.3333])
    """
    return _proportional(alphas, np.sqrt, "sqrt", 0.0)


def log2_factors(alphas) -> np.ndarray:
    """Factor proportional to ``log2(alpha)``, scaled so the mean factor is 1. Needs alphas above 1.

    >>> log2_factors([2.0, 8.0])
    array([0.5, 1.5])
    """
    return _proportional(alphas, np.log2, "log2", 1.0)


def shrink_alphas(alphas, stderrs) -> np.ndarray:
    """Empirical-Bayes shrinkage of alphas towards their mean, by how noisy each one is.

    Model: ``alpha_i = theta_i + e_i`` with ``e_i ~ N(0, se_i^2)`` and ``theta_i ~ N(mu, tau^2)``. The
    between-unit variance is estimated by moments, ``tau^2 = max(0, var(alpha) - mean(se^2))``, and each alpha
    is replaced by its posterior mean ``mu + tau^2 / (tau^2 + se_i^2) * (alpha_i - mu)``. Differences that are
    within the fits' noise therefore shrink to (nearly) nothing; differences well above it survive. NaN alphas
    stay NaN; a NaN standard error counts as 0 (no shrinkage for that entry).

    >>> shrink_alphas([2.0, 4.0], [0.0, 0.0]).tolist()
    [2.0, 4.0]
    >>> shrink_alphas([2.0, 4.0], [5.0, 5.0]).tolist()
    [3.0, 3.0]
    """
    values = _as_alphas(alphas)
    errors = np.asarray(stderrs, dtype=np.float64)
    if errors.shape != values.shape:
        raise ValueError(f"stderrs must have the shape of alphas {values.shape}, got {errors.shape}")
    if (errors[np.isfinite(errors)] < 0).any():
        raise ValueError("stderrs must be non-negative")
    shrunk = values.copy()
    finite = np.isfinite(values)
    if finite.sum() < 2:
        return shrunk
    a = values[finite]
    se2 = np.nan_to_num(errors[finite], nan=0.0) ** 2
    mu = a.mean()
    tau2 = max(0.0, float(a.var(ddof=1)) - float(se2.mean()))
    weight = np.divide(tau2, tau2 + se2, out=np.ones_like(se2), where=(tau2 + se2) > 0)
    shrunk[finite] = mu + weight * (a - mu)
    return shrunk


def noise_aware_factors(alphas, stderrs, *, base: str = "sigmoid", **base_options) -> np.ndarray:
    """Shrink alphas by their standard errors (:func:`shrink_alphas`), then apply the ``base`` mapping.

    Statistically identical layers (differences within noise) get factors near 1 instead of the sigmoid's
    full range.

    >>> noise_aware_factors([3.0, 3.2], [0.5, 0.5]).tolist()
    [1.0, 1.0]
    """
    if base == "noise_aware" or base not in MAPPINGS:
        raise ValueError(
            f"unknown base mapping {base!r}; choose from {sorted(set(MAPPINGS) - {'noise_aware'})}"
        )
    return MAPPINGS[base](shrink_alphas(alphas, stderrs), **base_options)


MAPPINGS: dict[str, Callable[..., np.ndarray]] = {
    "linear": linear_factors,
    "sigmoid": sigmoid_factors,
    "rank": rank_factors,
    "sqrt": sqrt_factors,
    "log2": log2_factors,
    "noise_aware": noise_aware_factors,
}
"""Mappings by name. ``noise_aware`` is the only one that takes standard errors."""


def normalize_factors(factors, weights=None, *, skip=None) -> np.ndarray:
    """Rescale factors so their mean (weighted by ``weights``, e.g. parameter counts) is 1.

    Entries flagged in the boolean mask ``skip`` (units without an alpha) are left at their value and out of
    the mean.

    >>> normalize_factors([0.5, 2.0], weights=[3, 1]).round(4).tolist()
    [0.5714, 2.2857]
    """
    values = np.asarray(factors, dtype=np.float64).copy()
    active = np.ones(values.shape, dtype=bool) if skip is None else ~np.asarray(skip, dtype=bool)
    w = np.ones_like(values) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != values.shape or (w < 0).any():
        raise ValueError(f"weights must be non-negative with the shape of factors {values.shape}")
    total = w[active].sum()
    if total > 0:
        values[active] /= (w[active] * values[active]).sum() / total
    return values


def map_alphas(
    alphas,
    stderrs=None,
    *,
    mapping: str | Callable[..., np.ndarray] = "sigmoid",
    options: dict | None = None,
    normalize: str | None = None,
    weights=None,
) -> np.ndarray:
    """Factors for one set of comparable units: mapping, then optional normalisation to mean factor 1.

    Parameters
    ----------
    alphas, stderrs
        1-D arrays, one entry per unit; ``stderrs`` is needed by ``"noise_aware"`` only.
    mapping
        A name from :data:`MAPPINGS`, or a callable ``f(alphas, stderrs, **options) -> factors`` (``stderrs``
        is an array of zeros when none were given).
    normalize
        None, ``"mean"`` (plain mean factor 1) or ``"param_mean"`` (mean weighted by ``weights``).

    >>> map_alphas([2.0, 3.0, 4.0], mapping="linear", normalize="mean").tolist()
    [0.5, 1.0, 1.5]
    """
    values = _as_alphas(alphas)
    options = dict(options or {})
    errors = np.zeros_like(values) if stderrs is None else np.asarray(stderrs, dtype=np.float64)
    if callable(mapping) or mapping == "noise_aware":
        function = mapping if callable(mapping) else noise_aware_factors
        factors = function(values, errors, **options)
    elif mapping in MAPPINGS:
        factors = MAPPINGS[mapping](values, **options)
    else:
        raise ValueError(f"unknown mapping {mapping!r}; choose from {sorted(MAPPINGS)} or pass a callable")
    factors = np.array(factors, dtype=np.float64)
    if factors.shape != values.shape:
        raise ValueError(f"mapping returned shape {factors.shape} for {values.shape} alphas")
    nan_alpha = ~np.isfinite(values)
    factors[nan_alpha] = 1.0
    if not (np.isfinite(factors) & (factors > 0)).all():
        raise ValueError(f"mapping produced non-positive or non-finite factors: {factors}")
    if normalize is None:
        return factors
    if normalize == "mean":
        return normalize_factors(factors, skip=nan_alpha)
    if normalize == "param_mean":
        if weights is None:
            raise ValueError("normalize='param_mean' needs weights (parameter counts per unit)")
        return normalize_factors(factors, weights, skip=nan_alpha)
    raise ValueError(f"unknown normalize {normalize!r}; choose None, 'mean' or 'param_mean'")
