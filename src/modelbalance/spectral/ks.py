"""Kolmogorov-Smirnov distances of power-law tails, and the Clauset-Shalizi-Newman scan over xmin.

Example
-------
>>> import numpy as np
>>> from modelbalance.spectral.ks import Steps, scan
>>> values = np.sort((1 - np.random.default_rng(0).random(5000)) ** (-1 / 1.5))
>>> steps = Steps.of(values)
>>> candidates = np.arange(steps.size - 10)              # distinct values with >= 10 values at or above them
>>> distances, alphas = scan(steps, candidates)
>>> int(np.argmin(distances)) < 1000
True

The data are n sorted positive values grouped into m distinct values u_0 < ... < u_{m-1}; ``below[l]`` values are
< u_l and ``upto[l]`` are <= u_l. The candidate xmin = u_j has the tail of every value >= u_j: s = below[j] values
lie under it, k = n - s in it, and alpha_j is the Hill estimate. At each distinct u_l of the tail the fitted CDF
is P = 1 - (u_l / u_j)^(1 - alpha_j), the empirical CDF is E = (below[l] - s) / k just below u_l and
H = (upto[l] - s) / k at u_l. The distance is

    "both":  D_j = max_l max(H - P, P - E)   the supremum of |ECDF - CDF| over x >= xmin (both sides of each step)
    "lower": D_j = max_l |E - P|             (default) the ECDF just below each distinct value, as in the code of
                                             Clauset et al. and the ``powerlaw`` package

Every D_j is the maximum of the same elementwise numbers, however it is computed, so the two algorithms here
give identical results:
- ``dense``: every candidate against every distinct value of its tail, vectorised in blocks of candidates;
  O(m^2) work, the fastest for a few thousand distinct values.
- ``bounded``: branch and bound. Between two evaluated points a < b of a tail the monotone E, H and P bound the
  deviation of every point strictly inside: H - P <= E_b - P_a and P - E <= P_b - H_a. Each candidate starts
  with a coarse grid of its tail; intervals whose bound cannot reach the candidate's largest deviation so far
  are dropped, the others split, and a candidate is dropped once its largest deviation exceeds a bound on
  another's distance. Exact; about m * sqrt(n) evaluations on power-law data instead of m^2 / 2.
Memory is bounded by ``_BLOCK_ELEMENTS`` numbers per array in both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

KsSteps = Literal["both", "lower"]

# Elements per block of the vectorised evaluations (2 MB per float64 array: small enough to stay in cache).
_BLOCK_ELEMENTS = 262_144
# Above this many (candidate, tail value) pairs the scan switches from dense to bounded.
_DENSE_WORK = 20_000
# Bounded search: grid points per candidate tail at the start, and how many pieces an interval splits into.
_GRID = 16
_SPLIT = 8
# Bounded search: candidates solved first to seed the best distance and the hot points (twice this many at most).
_PILOTS = 16
# Float slack of the pruning tests: a bound must clear the value it is compared with by more than this.
_TOL = 1e-12


@dataclass(frozen=True)
class Steps:
    """The empirical distribution of sorted positive values as distinct values and counts (see the module)."""

    log_values: np.ndarray  # (m,) log of the distinct values, ascending
    below: np.ndarray  # (m,) float64 count of values < u_l
    upto: np.ndarray  # (m,) float64 count of values <= u_l
    total: int  # n
    first_index: np.ndarray  # (m,) int64 index of u_l's first occurrence in the sorted values (= below)

    @classmethod
    def of(cls, sorted_values: np.ndarray, log_values: np.ndarray | None = None) -> Steps:
        """Group ``sorted_values`` (ascending, positive, float64; ``log_values`` their logs) by value."""
        n = sorted_values.size
        new = np.empty(n, dtype=bool)
        new[:1] = True
        np.not_equal(sorted_values[1:], sorted_values[:-1], out=new[1:])
        first = np.flatnonzero(new)
        below = first.astype(np.float64)
        upto = np.empty_like(below)
        upto[:-1], upto[-1] = below[1:], n
        logs = np.log(sorted_values[first]) if log_values is None else log_values[first]
        return cls(logs, below, upto, n, first)

    @property
    def size(self) -> int:
        return self.log_values.size


def hill_alphas(steps: Steps, suffix_log: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Hill alpha of each candidate's tail; ``suffix_log[i]`` = sum of the logs of sorted values i..n-1."""
    starts = steps.first_index[candidates]
    k = steps.total - starts
    sums = suffix_log[starts] - k * steps.log_values[candidates]
    if (sums > 0).all():  # always, unless log() merges distinct values
        return 1.0 + k / sums
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sums > 0, 1.0 + k / sums, np.inf)


def _evaluate(steps: Steps, upper: np.ndarray, start, k, slope, log_xmin, points):
    """P, E, H and the deviation at distinct indices ``points``; the other arguments broadcast against them."""
    with np.errstate(over="ignore", invalid="ignore"):
        model = -np.expm1(slope * (steps.log_values[points] - log_xmin))  # 1 - (x / xmin)^(1 - alpha)
    low = (steps.below[points] - start) / k
    high = (steps.upto[points] - start) / k
    top = high if upper is steps.upto else (upper[points] - start) / k
    return model, low, high, np.maximum(top - model, model - low)


class _Fits:
    """Per-candidate constants of the scan, as float64 columns ready to broadcast."""

    def __init__(self, steps: Steps, candidates: np.ndarray, alphas: np.ndarray):
        self.index = candidates
        self.start = steps.below[candidates]
        self.k = steps.total - self.start
        self.slope = 1.0 - alphas
        self.log_xmin = steps.log_values[candidates]

    def take(self, rows):
        return self.start[rows], self.k[rows], self.slope[rows], self.log_xmin[rows]


def scan(
    steps: Steps,
    candidates: np.ndarray,
    alphas: np.ndarray | None = None,
    suffix_log: np.ndarray | None = None,
    ks_steps: KsSteps = "lower",
    method: Literal["auto", "dense", "bounded"] = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """KS distance of each candidate (distinct indices with spread above them, ascending) and the alphas used.

    ``alphas`` defaults to the Hill estimates, from ``suffix_log`` (sums of the logs of the sorted values from
    each index on) when given.

    Returns ``(distances, alphas)``. With the bounded search, candidates proven not to be the minimum get
    ``inf``; the minimum (and every candidate within float slack of it) is exact.
    """
    candidates = np.asarray(candidates, dtype=np.int64)
    if alphas is None:
        if suffix_log is None:  # sum of the logs of the values from each distinct value's first index on
            counts = steps.upto - steps.below
            by_value = np.cumsum((counts * steps.log_values)[::-1])[::-1]
            suffix_log = np.zeros(steps.total + 1)
            suffix_log[steps.first_index] = by_value
        alphas = hill_alphas(steps, suffix_log, candidates)
    if candidates.size == 0:
        return np.empty(0), alphas
    finite = np.isfinite(alphas)
    if not finite.all():  # a flat tail (log merged distinct values): no fit, distance inf
        distances = np.full(candidates.size, np.inf)
        if finite.any():
            distances[finite], _ = scan(steps, candidates[finite], alphas[finite], None, ks_steps, method)
        return distances, alphas
    upper = steps.upto if ks_steps == "both" else steps.below
    fits = _Fits(steps, candidates, alphas)
    if method == "auto":
        work = float(np.sum(steps.size - candidates))
        method = "dense" if work <= _DENSE_WORK else "bounded"
    if method == "dense":
        return _dense(steps, upper, fits), alphas
    return _bounded(steps, upper, fits), alphas


def tail_distance(
    sorted_tail: np.ndarray, log_xmin: float, alpha: float, ks_steps: KsSteps = "lower"
) -> float:
    """KS distance of one sorted tail (all values >= xmin) against the power law from ``log_xmin``."""
    steps = Steps.of(sorted_tail)
    upper = steps.upto if ks_steps == "both" else steps.below
    points = np.arange(steps.size)
    *_, dev = _evaluate(steps, upper, 0.0, float(sorted_tail.size), 1.0 - alpha, log_xmin, points)
    return float(dev.max())


def _dense(steps: Steps, upper: np.ndarray, fits: _Fits) -> np.ndarray:
    """Every candidate against every distinct value of its tail, in blocks of consecutive candidates."""
    m = steps.size
    out = np.empty(fits.index.size)
    order = np.arange(fits.index.size)  # candidates ascend (see scan)
    lo = 0
    while lo < order.size:
        first = int(fits.index[lo])
        rows = max(1, _BLOCK_ELEMENTS // max(m - first, 1))
        block = order[lo : lo + rows]
        points = np.arange(first, m)[None, :]  # (1, t): the tail of the block's first candidate
        start, k, slope, log_xmin = (a[:, None] for a in fits.take(block))  # (c, 1)
        *_, dev = _evaluate(steps, upper, start, k, slope, log_xmin, points)  # (c, t)
        dev[points < fits.index[block, None]] = -np.inf  # values below each candidate's own xmin
        out[block] = dev.max(axis=1)
        lo += rows
    return out


def _grid(first: np.ndarray, last: np.ndarray, pieces: int) -> np.ndarray:
    """(r, pieces + 1) integer points from first to last (inclusive), evenly spread; repeats where short."""
    frac = np.arange(pieces + 1)
    return first[:, None] + ((last - first)[:, None] * frac) // pieces


def _bounds(steps, upper, fits: _Fits, rows, points):
    """Per row of ``points`` (rows x p): the largest deviation, where it is, and each interval's interior bound."""
    start, k, slope, log_xmin = (a[:, None] for a in fits.take(rows))
    model, low, high, dev = _evaluate(steps, upper, start, k, slope, log_xmin, points)
    bound = np.maximum(low[:, 1:] - model[:, :-1], model[:, 1:] - high[:, :-1])
    bound[np.diff(points, axis=1) < 2] = -np.inf  # no point strictly inside
    at = dev.argmax(axis=1)
    rows_ = np.arange(points.shape[0])
    return dev[rows_, at], points[rows_, at], bound


def _at_points(steps, upper, fits: _Fits, rows, columns: np.ndarray) -> np.ndarray:
    """Largest deviation of each row at the shared distinct indices ``columns`` inside its tail (-inf if none)."""
    start, k, slope, log_xmin = (a[:, None] for a in fits.take(rows))
    *_, dev = _evaluate(steps, upper, start, k, slope, log_xmin, columns[None, :])
    dev[columns[None, :] < fits.index[rows, None]] = -np.inf
    return dev.max(axis=1, initial=-np.inf)


def _pilots(count: int, tails: np.ndarray, number: int) -> np.ndarray:
    """Rows spread over the candidates: evenly by position and evenly in log tail size."""
    by_position = np.linspace(0, count - 1, number).round()
    log_k = np.log(tails)  # decreasing with the row (candidates ascend)
    targets = np.linspace(log_k[0], log_k[-1], number)
    by_size = np.searchsorted(-log_k, -targets).clip(0, count - 1)
    return np.unique(np.concatenate([by_position, by_size]).astype(np.int64))


def _bounded(steps: Steps, upper: np.ndarray, fits: _Fits) -> np.ndarray:
    """Branch and bound over (candidate, interval of its tail); exact for every candidate that may be best."""
    count = fits.index.size
    distances = np.full(count, np.inf)
    # 1. Pilots, solved exactly: the first best distance, and where deviations peak ("hot" points). Neighbouring
    #    candidates see nearly the same deviation curve, so these points give everyone a tight lower bound.
    pilots = _pilots(count, fits.k, _PILOTS)
    exact, where = _refine(steps, upper, fits, pilots, np.inf, np.full(pilots.size, -np.inf))
    distances[pilots] = exact
    best = float(exact.min())
    hot = np.unique(where)
    # 2. Every candidate on a coarse grid of its own tail and at the hot points.
    lower = np.empty(count)  # largest deviation found: a lower bound on each distance
    rows_per_block = max(1, _BLOCK_ELEMENTS // (4 * (_GRID + 1 + hot.size)))
    last = steps.size - 1
    for lo in range(0, count, rows_per_block):
        rows = np.arange(lo, min(lo + rows_per_block, count))
        grid = _grid(fits.index[rows], np.full(rows.size, last), _GRID)
        dev, _, bound = _bounds(steps, upper, fits, rows, grid)
        lower[rows] = np.maximum(dev, _at_points(steps, upper, fits, rows, hot))
        best = min(best, float(np.maximum(lower[rows], bound.max(axis=1)).min()))
    lower[pilots] = np.inf  # done
    # 3. The rest, most promising first, in chunks; each refined until it is exact or proven worse than best.
    order = np.argsort(lower, kind="stable")
    chunk = max(8, min(4096, int(_BLOCK_ELEMENTS // (64 * np.sqrt(steps.size)))))
    for lo in range(0, count, chunk):
        rows = order[lo : lo + chunk]
        rows = rows[lower[rows] <= best + _TOL]
        if rows.size == 0:
            break  # sorted by lower bound: the rest cannot be better either
        exact, _ = _refine(steps, upper, fits, rows, best, lower[rows])
        distances[rows] = exact
        best = min(best, float(exact.min()))
    return distances


def _refine(steps, upper, fits: _Fits, rows: np.ndarray, best: float, lower: np.ndarray):
    """Exact distances of ``rows`` (inf for those proven worse than ``best``) and where each one's maximum lies.

    ``lower`` holds deviations already found (lower bounds). Each tail starts as a grid of intervals; those
    whose bound clears the row's largest deviation split until none is left.
    """
    points = _grid(fits.index[rows], np.full(rows.size, steps.size - 1), _GRID)
    found, where, bound = _bounds(steps, upper, fits, rows, points)
    lower = np.maximum(lower, found)
    owner = np.repeat(np.arange(rows.size), _GRID)
    a, b, ub = points[:, :-1].reshape(-1), points[:, 1:].reshape(-1), bound.reshape(-1)
    while True:
        alive = lower <= best + _TOL
        keep = alive[owner] & (ub + _TOL > lower[owner])
        owner, a, b, ub = owner[keep], a[keep], b[keep], ub[keep]
        if not alive.any():
            break
        # A row's distance is at most the larger of what is found and what its open intervals allow.
        row_ub = lower.copy()
        np.maximum.at(row_ub, owner, ub)
        best = min(best, float(row_ub[alive].min()))
        if owner.size == 0:
            break
        parts = []
        per_block = max(1, _BLOCK_ELEMENTS // (4 * (_SPLIT + 1)))
        for lo in range(0, owner.size, per_block):
            sl = slice(lo, lo + per_block)
            pts = _grid(a[sl], b[sl], _SPLIT)
            dev, at, sub = _bounds(steps, upper, fits, rows[owner[sl]], pts)
            np.maximum.at(lower, owner[sl], dev)
            hit = dev >= lower[owner[sl]]  # this block holds the row's largest deviation so far
            where[owner[sl][hit]] = at[hit]
            inside = sub > -np.inf
            parts.append(
                (
                    np.repeat(owner[sl], _SPLIT)[inside.reshape(-1)],
                    pts[:, :-1][inside],
                    pts[:, 1:][inside],
                    sub[inside],
                )
            )
        owner, a, b, ub = (np.concatenate(p) for p in zip(*parts))
    return np.where(lower <= best + _TOL, lower, np.inf), where
