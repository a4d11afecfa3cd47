"""Power-law fits of an eigenvalue tail: the Hill / continuous maximum-likelihood estimate of alpha.

Example
-------
>>> import numpy as np
>>> from modelbalance import fit_power_law
>>> rng = np.random.default_rng(0)
>>> eigs = (1 - rng.random(4000)) ** (-1 / 2.5)          # Pareto tail, density ~ x^-3.5
>>> fit = fit_power_law(eigs, xmin="ks")
>>> round(fit.alpha, 1)
3.5

For a sorted spectrum lambda_0 <= ... <= lambda_{N-1} and a tail starting at index i (xmin = lambda_i, k = N - i):

    alpha = 1 + k / sum_{j >= i} ln(lambda_j / xmin),   stderr = (alpha - 1) / sqrt(k)

and the fit quality is the Kolmogorov-Smirnov distance between the tail's empirical CDF and the fitted
``1 - (x / xmin)^(1 - alpha)``. All arithmetic is float64.

``xmin="ks"`` is the scan of Clauset, Shalizi & Newman (2009) on any positive data, ties included: the candidates
are the distinct values, the tail of xmin = x is every value >= x, and the distance is computed exactly
(:mod:`modelbalance.spectral.ks`) in about m * sqrt(n) steps for m distinct values. The distance is the one the
``powerlaw`` package, Clauset et al.'s code and the reference TempBalance code use (the ECDF just below each
distinct value against the CDF), so the scan picks their xmin; ``ks_steps="both"`` takes the exact supremum of
|ECDF - CDF| over both sides of each ECDF step instead. Deliberate differences from
``powerlaw.Fit(data, discrete=False)``:
- candidates must leave ``min_tail`` (10) values in the tail; powerlaw tries every distinct value but the two
  largest;
- alpha is the closed-form maximum-likelihood (Hill) estimate, unconstrained; powerlaw fits numerically when it
  lies outside (1.5, 3] and by default discards candidates whose alpha is not in (0, 3) (``parameter_ranges``).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .ks import KsSteps, Steps, scan, tail_distance

XminRule = Literal["fixed", "peak", "ks"]


@dataclass(frozen=True)
class FitConfig:
    """How to choose the tail: ``xmin`` is "fixed" (index floor(N / xmin_pos)), "peak", "ks" or a number.

    ``xmin_pos=2`` puts xmin at the median (NeurIPS TempBalance, the PDE runs); the EMNLP GLUE runs used 1.5
    (tail = top third). ``min_tail`` is the smallest tail the KS and peak scans consider. ``ks_steps`` is the
    KS distance: "lower" (default) the ECDF just below each distinct value against the CDF (Clauset et al.'s
    code, the ``powerlaw`` package, the reference TempBalance code), "both" the exact supremum of |ECDF - CDF|
    over both sides of each ECDF step (at most 1/k larger).
    """

    xmin: XminRule | float = "fixed"
    xmin_pos: float = 2.0
    min_tail: int = 10
    peak_bins: int = 100
    ks_steps: KsSteps = "lower"

    def __post_init__(self):
        if isinstance(self.xmin, str):
            if self.xmin not in ("fixed", "peak", "ks"):
                raise ValueError(
                    f"xmin must be 'fixed', 'peak', 'ks' or a positive number, got {self.xmin!r}"
                )
        elif not (
            isinstance(self.xmin, numbers.Real)
            and not isinstance(self.xmin, bool)
            and math.isfinite(self.xmin)
            and self.xmin > 0
        ):
            raise ValueError(f"xmin must be 'fixed', 'peak', 'ks' or a positive number, got {self.xmin!r}")
        else:  # numpy scalars -> float, so key() (the null-reference cache key) is the same for equal values
            object.__setattr__(self, "xmin", float(self.xmin))
        if not (math.isfinite(self.xmin_pos) and self.xmin_pos > 1):
            raise ValueError(f"xmin_pos must be > 1 (2 = median, 1.5 = top third), got {self.xmin_pos}")
        if self.min_tail < 2:
            raise ValueError(f"min_tail must be at least 2, got {self.min_tail}")
        if self.peak_bins < 2:
            raise ValueError(f"peak_bins must be at least 2, got {self.peak_bins}")
        if self.ks_steps not in ("both", "lower"):
            raise ValueError(f"ks_steps must be 'both' or 'lower', got {self.ks_steps!r}")

    def key(self) -> tuple:
        """The settings that change alpha, as a tuple that ``FitConfig(*key)`` rebuilds (the key of the
        null-reference cache on disk). ``ks_steps`` picks xmin only in the "ks" and "peak" scans, so only those
        keys hold it: a fixed or numeric xmin keeps the key it had before that field existed."""
        key = (self.xmin, float(self.xmin_pos), self.min_tail, self.peak_bins)
        return (*key, self.ks_steps) if self.xmin in ("ks", "peak") else key


@dataclass(frozen=True)
class PowerLawFit:
    """Result of :func:`fit_power_law`. ``alpha`` is NaN when no fit is possible; ``status`` says why."""

    alpha: float
    xmin: float
    xmin_index: int
    num_tail: int
    num_eigs: int
    ks_distance: float
    alpha_stderr: float
    status: str = "ok"

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _failed(status: str, num_eigs: int) -> PowerLawFit:
    nan = float("nan")
    return PowerLawFit(nan, nan, -1, 0, num_eigs, nan, nan, status)


def _prepare(eigenvalues) -> np.ndarray:
    if hasattr(eigenvalues, "detach"):  # torch tensor on any device
        eigenvalues = eigenvalues.detach().cpu().double().numpy()
    eigs = np.asarray(eigenvalues, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(eigs)):
        raise ValueError("eigenvalues contain NaN or Inf")
    if np.any(eigs < 0):
        raise ValueError(f"eigenvalues must be non-negative (smallest is {eigs.min():.3g})")
    return np.sort(eigs)


def fixed_xmin_index(num_eigs: int, xmin_pos: float) -> int:
    """Index of xmin among all ``num_eigs`` sorted eigenvalues under the fixed rule: floor(N / xmin_pos).

    Zeros count (as the papers count them), so the tail is the top ``num_eigs - fixed_xmin_index(...)`` values.

    >>> fixed_xmin_index(384, 1.5), fixed_xmin_index(6, 2.0)
    (256, 3)
    """
    return int(num_eigs / xmin_pos)


def hill_alpha(tail_sum_log: np.ndarray, num_tail: np.ndarray) -> np.ndarray:
    """alpha = 1 + k / sum ln(lambda / xmin), elementwise; inf where the tail is flat."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 + num_tail / tail_sum_log


def fit_power_law(
    eigenvalues,
    xmin: XminRule | float = "fixed",
    *,
    xmin_pos: float = 2.0,
    min_tail: int = 10,
    peak_bins: int = 100,
    ks_steps: KsSteps = "lower",
    config: FitConfig | None = None,
) -> PowerLawFit:
    """Fit a power law to the upper tail of ``eigenvalues`` (any order; zeros are ignored).

    Parameters
    ----------
    eigenvalues : array-like or torch.Tensor
        Non-negative eigenvalues (squared singular values), or any positive data. Zeros (a rank-deficient
        matrix) are dropped first.
    xmin : "fixed", "peak", "ks" or float
        "fixed": tail starts at index floor(N / xmin_pos) of the sorted spectrum (the papers' choice).
        "ks": Clauset-Shalizi-Newman, the candidate xmin (every distinct value, its tail every value >= it)
        with the smallest KS distance; the first such value on a tie.
        "peak": the KS scan restricted to [0.95, 1.5] x the mode of a log-spaced histogram (a window that is the
        same width in log scale wherever the peak is). A float: the tail is every eigenvalue >= xmin.
    xmin_pos : float
        Position divisor for "fixed": 2 = median, 1.5 = top third.
    min_tail : int
        Smallest tail (number of values >= xmin) the "ks" and "peak" scans consider.
    ks_steps : "lower" or "both"
        The KS distance: "lower" (default), the ECDF just below each distinct value against the CDF, as
        ``powerlaw.Fit`` computes it; "both", the exact supremum of |ECDF - CDF| (both sides of each ECDF step).
    config : FitConfig, optional
        Overrides the keyword arguments above.

    Returns
    -------
    PowerLawFit
        ``alpha`` is NaN, with ``status`` saying why, when fewer than two eigenvalues are positive or the tail is
        flat (all equal).
    """
    cfg = config or FitConfig(
        xmin=xmin, xmin_pos=xmin_pos, min_tail=min_tail, peak_bins=peak_bins, ks_steps=ks_steps
    )
    eigs = _prepare(eigenvalues)
    total = eigs.size
    # The fixed position counts every eigenvalue, zeros included (as the papers do), so that round-off zeros of
    # a full-rank matrix never shift xmin; the tail itself must be positive.
    fixed_start = fixed_xmin_index(total, cfg.xmin_pos)
    eigs = eigs[eigs > 0]
    n = eigs.size
    if n < 2:
        return _failed(f"too few positive eigenvalues ({n} of {total})", total)
    if eigs[0] == eigs[-1]:
        return _failed("degenerate spectrum: all eigenvalues equal", total)
    log_eigs = np.log(eigs)
    # suffix[i] = sum_{j >= i} ln(lambda_j), with suffix[n] = 0; float64 cumulative sum from the top.
    suffix = np.concatenate([np.cumsum(log_eigs[::-1])[::-1], [0.0]])

    if isinstance(cfg.xmin, str) and cfg.xmin == "fixed":
        start = fixed_start - (total - n)  # index among the positive eigenvalues
        if start < 0:
            return _failed(
                f"rank-deficient: xmin at position {fixed_start} of {total} is 0 ({n} nonzero eigenvalues)",
                total,
            )
        start = min(start, n - 2)
    elif isinstance(cfg.xmin, str):
        steps = Steps.of(eigs, log_eigs)
        # Candidates: each distinct value but the largest (a tail needs spread) that leaves at least min_tail
        # values in its tail (or n - 1 when there are fewer); the smallest value always qualifies.
        last_start = n - min(cfg.min_tail, n - 1)  # first_index ascends: the candidates are a prefix
        count = int(np.searchsorted(steps.first_index, last_start, side="right"))
        candidates = np.arange(max(1, min(count, steps.size - 1)))
        if cfg.xmin == "peak":
            candidates = _peak_window(log_eigs, steps.log_values, candidates, cfg.peak_bins)
        distances, alphas = scan(steps, candidates, suffix_log=suffix, ks_steps=cfg.ks_steps)
        if not np.isfinite(alphas).any():
            return _failed("degenerate spectrum: no candidate tail has spread", total)
        best = int(np.argmin(distances))  # the first (smallest xmin) on a tie
        start = int(steps.first_index[candidates[best]])
        return _finish(
            eigs, log_eigs, suffix, start, total, cfg.ks_steps, alpha=alphas[best], ks=distances[best]
        )
    else:
        start = int(np.searchsorted(eigs, float(cfg.xmin), side="left"))
        if n - start < 2:
            return _failed(f"fewer than 2 eigenvalues >= xmin={cfg.xmin:g}", total)
        return _finish(eigs, log_eigs, suffix, start, total, cfg.ks_steps, xmin_value=float(cfg.xmin))
    return _finish(eigs, log_eigs, suffix, start, total, cfg.ks_steps)


def _peak_window(
    log_eigs: np.ndarray, log_values: np.ndarray, candidates: np.ndarray, bins: int
) -> np.ndarray:
    """The candidates (distinct indices into ``log_values``) in the log window around the histogram's mode."""
    counts, edges = np.histogram(log_eigs, bins=bins)
    peak = int(np.argmax(counts))
    centre = 0.5 * (edges[peak] + edges[peak + 1])
    lo, hi = centre + math.log(0.95), centre + math.log(1.5)
    logs = log_values[candidates]
    inside = candidates[(logs >= lo) & (logs <= hi)]
    if inside.size:
        return inside
    return candidates[[int(np.argmin(np.abs(logs - centre)))]]


def _finish(
    eigs, log_eigs, suffix, start, total, ks_steps: KsSteps, xmin_value=None, alpha=None, ks=None
) -> PowerLawFit:
    """The fit with its tail from sorted index ``start``; ``alpha`` and ``ks`` when a scan computed them."""
    n = eigs.size
    k = n - start
    xmin = eigs[start] if xmin_value is None else xmin_value
    if alpha is None:
        log_xmin = math.log(xmin)
        tail_sum = float(suffix[start] - k * log_xmin)
        if not tail_sum > 0:
            return _failed("degenerate tail: all tail eigenvalues equal", total)
        alpha = 1.0 + k / tail_sum
        if xmin_value is None:
            log_xmin = float(log_eigs[start])
        ks = tail_distance(eigs[start:], log_xmin, alpha, ks_steps)
    alpha, ks = float(alpha), float(ks)
    return PowerLawFit(
        alpha=alpha,
        xmin=float(xmin),
        xmin_index=int(start + (total - n)),  # index in the full sorted spectrum, zeros included
        num_tail=int(k),
        num_eigs=int(total),
        ks_distance=ks,
        alpha_stderr=(alpha - 1.0) / math.sqrt(k),
    )
