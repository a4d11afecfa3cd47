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
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Literal

import numpy as np

XminRule = Literal["fixed", "peak", "ks"]

# Chunk size of the vectorised KS scan: candidates x tail points per block, bounds memory at ~32 MB.
_KS_BLOCK_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class FitConfig:
    """How to choose the tail: ``xmin`` is "fixed" (index floor(N / xmin_pos)), "peak", "ks" or a number.

    ``xmin_pos=2`` puts xmin at the median (NeurIPS TempBalance, the PDE runs); the EMNLP GLUE runs used 1.5
    (tail = top third). ``min_tail`` is the smallest tail the KS and peak scans consider.
    """

    xmin: XminRule | float = "fixed"
    xmin_pos: float = 2.0
    min_tail: int = 10
    peak_bins: int = 100

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

    def key(self) -> tuple:
        return (self.xmin, float(self.xmin_pos), self.min_tail, self.peak_bins)


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


def hill_alpha(tail_sum_log: np.ndarray, num_tail: np.ndarray) -> np.ndarray:
    """alpha = 1 + k / sum ln(lambda / xmin), elementwise; inf where the tail is flat."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 + num_tail / tail_sum_log


def _ks_distances(log_eigs: np.ndarray, starts: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Two-sided KS distance of each candidate tail (start index) against its fitted power law.

    Vectorised over candidates in blocks; each block is a (candidates x N) masked array operation.
    """
    n = log_eigs.size
    out = np.empty(starts.size)
    positions = np.arange(n)
    block = max(1, _KS_BLOCK_ELEMENTS // max(n, 1))
    for lo in range(0, starts.size, block):
        s = starts[lo : lo + block, None]  # (c, 1)
        a = alphas[lo : lo + block, None]
        k = n - s
        p = positions[None, :] - s  # position within the tail, negative = not in tail
        in_tail = p >= 0
        with np.errstate(over="ignore", invalid="ignore"):
            log_ratio = log_eigs[None, :] - log_eigs[s[:, 0], None]
            model_cdf = -np.expm1((1.0 - a) * log_ratio)  # 1 - (x/xmin)^(1-alpha), accurate near 0
        upper = (p + 1) / k - model_cdf
        lower = model_cdf - p / k
        dist = np.where(in_tail, np.maximum(upper, lower), -np.inf)
        out[lo : lo + block] = dist.max(axis=1)
    return out


def _scan(log_eigs: np.ndarray, suffix: np.ndarray, starts: np.ndarray):
    n = log_eigs.size
    k = n - starts
    sums = suffix[starts] - k * log_eigs[starts]
    alphas = hill_alpha(sums, k)
    finite = np.isfinite(alphas) & (sums > 0)
    starts, alphas = starts[finite], alphas[finite]
    if starts.size == 0:
        return None
    ks = _ks_distances(log_eigs, starts, alphas)
    best = int(np.argmin(ks))
    return int(starts[best])


def fit_power_law(
    eigenvalues,
    xmin: XminRule | float = "fixed",
    *,
    xmin_pos: float = 2.0,
    min_tail: int = 10,
    peak_bins: int = 100,
    config: FitConfig | None = None,
) -> PowerLawFit:
    """Fit a power law to the upper tail of ``eigenvalues`` (any order; zeros are ignored).

    Parameters
    ----------
    eigenvalues : array-like or torch.Tensor
        Non-negative eigenvalues (squared singular values). Zeros (a rank-deficient matrix) are dropped first.
    xmin : "fixed", "peak", "ks" or float
        "fixed": tail starts at index floor(N / xmin_pos) of the sorted spectrum (the papers' choice).
        "ks": Clauset-Shalizi-Newman, the candidate xmin (every eigenvalue) with the smallest KS distance.
        "peak": the KS scan restricted to [0.95, 1.5] x the mode of a log-spaced histogram (a window that is the
        same width in log scale wherever the peak is). A float: the tail is every eigenvalue >= xmin.
    xmin_pos : float
        Position divisor for "fixed": 2 = median, 1.5 = top third.
    min_tail : int
        Smallest tail the "ks" and "peak" scans consider.
    config : FitConfig, optional
        Overrides the keyword arguments above.

    Returns
    -------
    PowerLawFit
        ``alpha`` is NaN, with ``status`` saying why, when fewer than two eigenvalues are positive or the tail is
        flat (all equal).
    """
    cfg = config or FitConfig(xmin=xmin, xmin_pos=xmin_pos, min_tail=min_tail, peak_bins=peak_bins)
    eigs = _prepare(eigenvalues)
    total = eigs.size
    # The fixed position counts every eigenvalue, zeros included (as the papers do), so that round-off zeros of
    # a full-rank matrix never shift xmin; the tail itself must be positive.
    fixed_start = int(total / cfg.xmin_pos) if total else 0
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
        last = n - min(cfg.min_tail, n - 1)  # candidates leave at least min_tail points (or 2)
        last = max(last, 1)
        candidates = np.arange(0, last)
        if cfg.xmin == "peak":
            candidates = _peak_window(log_eigs, candidates, cfg.peak_bins)
        start = _scan(log_eigs, suffix, candidates)
        if start is None:
            return _failed("degenerate spectrum: no candidate tail has spread", total)
    else:
        start = int(np.searchsorted(eigs, float(cfg.xmin), side="left"))
        if n - start < 2:
            return _failed(f"fewer than 2 eigenvalues >= xmin={cfg.xmin:g}", total)
        return _finish(eigs, log_eigs, suffix, start, total, xmin_value=float(cfg.xmin))
    return _finish(eigs, log_eigs, suffix, start, total)


def _peak_window(log_eigs: np.ndarray, candidates: np.ndarray, bins: int) -> np.ndarray:
    counts, edges = np.histogram(log_eigs, bins=bins)
    peak = int(np.argmax(counts))
    centre = 0.5 * (edges[peak] + edges[peak + 1])
    lo, hi = centre + math.log(0.95), centre + math.log(1.5)
    inside = candidates[(log_eigs[candidates] >= lo) & (log_eigs[candidates] <= hi)]
    if inside.size:
        return inside
    nearest = candidates[np.argmin(np.abs(log_eigs[candidates] - centre))]
    return np.array([nearest])


def _finish(eigs, log_eigs, suffix, start, total, xmin_value: float | None = None) -> PowerLawFit:
    n = eigs.size
    k = n - start
    xmin = eigs[start] if xmin_value is None else xmin_value
    log_xmin = math.log(xmin)
    tail_sum = float(suffix[start] - k * log_xmin)
    if not tail_sum > 0:
        return _failed("degenerate tail: all tail eigenvalues equal", total)
    alpha = 1.0 + k / tail_sum
    if xmin_value is None:
        ks = float(_ks_distances(log_eigs, np.array([start]), np.array([alpha]))[0])
    else:
        ks = _ks_fixed_value(log_eigs[start:], log_xmin, alpha)
    return PowerLawFit(
        alpha=alpha,
        xmin=float(xmin),
        xmin_index=int(start + (total - n)),  # index in the full sorted spectrum, zeros included
        num_tail=int(k),
        num_eigs=int(total),
        ks_distance=ks,
        alpha_stderr=(alpha - 1.0) / math.sqrt(k),
    )


def _ks_fixed_value(log_tail: np.ndarray, log_xmin: float, alpha: float) -> float:
    k = log_tail.size
    p = np.arange(k)
    model = -np.expm1((1.0 - alpha) * (log_tail - log_xmin))
    return float(np.max(np.maximum((p + 1) / k - model, model - p / k)))
