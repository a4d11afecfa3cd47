"""Equal tuning budget: every method's learning rate is picked from the same grid on the validation split.

For each (fraction, method) the runs of the tuning seeds at every grid learning rate are averaged on the task's
primary *validation* metric; the best mean wins. A learning rate with a failed or non-finite tuning run is out (a
diverging learning rate is a bad one, not a missing one). The test split is never looked at here.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from modelbalance.experiments.plan import normalize_params
from modelbalance.experiments.stats import mean_std


@dataclass(frozen=True)
class GridPoint:
    """The validation result of one (fraction, method, lr) over the tuning seeds."""

    fraction: float
    method: str
    lr: float
    n_ok: int
    n_failed: int
    val_mean: float
    val_std: float
    selected: bool = False
    point: str = ""  # the whole grid point ("lr=0.001, s_max=0.5"); empty for an lr-only grid of old records

    def as_row(self, metric: str) -> dict:
        return {
            "fraction": self.fraction,
            "method": self.method,
            "point": self.point or f"lr={self.lr:g}",
            "lr": self.lr,
            "n_ok": self.n_ok,
            "n_failed": self.n_failed,
            f"val_{metric}_mean": self.val_mean,
            f"val_{metric}_std": self.val_std,
            "selected": self.selected,
        }


def pick_learning_rate(records_by_lr: dict, *, metric: str, direction: str) -> tuple[object | None, dict]:
    """Pick the learning rate (or whole grid point) with the best mean validation ``metric``.

    Parameters
    ----------
    records_by_lr : dict
        lr (or any hashable grid point) -> the run records of the tuning seeds (each with ``status`` and
        ``val_<metric>``).
    metric, direction : str
        The task's primary metric and ``"min"``/``"max"``.

    Returns
    -------
    (lr or None, {lr: (n_ok, n_failed, mean, std)})
        None when no learning rate had all its tuning runs succeed. Ties go to the earlier grid entry.

    Examples
    --------
    >>> runs = {1e-3: [{"status": "ok", "val_nrmse": 0.2}], 3e-3: [{"status": "ok", "val_nrmse": 0.1}]}
    >>> pick_learning_rate(runs, metric="nrmse", direction="min")[0]
    0.003
    """
    key = f"val_{metric}"
    stats: dict[float, tuple[int, int, float, float]] = {}
    best_lr, best_score = None, math.inf
    for lr, records in records_by_lr.items():
        values = [r.get(key) for r in records if r.get("status") == "ok"]
        values = [v for v in values if v is not None and math.isfinite(v)]
        n_failed = len(records) - len(values)
        mean, std, _ = mean_std(values)
        stats[lr] = (len(values), n_failed, mean, std)
        if n_failed or not values:
            continue
        score = mean if direction == "min" else -mean
        if score < best_score:
            best_lr, best_score = lr, score
    return best_lr, stats


def without_signal(records) -> bool:
    """Whether every run in ``records`` has a validation MCC of exactly 0: predictions that carry nothing about the
    labels, which is what a classifier that predicts one class for every example gives (a collapsed fine-tuning
    run). On imbalanced data such a run still scores the majority share of accuracy, so it can win the tuning.

    Examples
    --------
    >>> without_signal([{"val_mcc": 0.0, "val_accuracy": 0.69}, {"val_mcc": 0.0, "val_accuracy": 0.69}])
    True
    >>> without_signal([{"val_mcc": 0.0}, {"val_mcc": 0.4}]), without_signal([{"val_nrmse": 0.1}])
    (False, False)
    """
    values = [record.get("val_mcc") for record in records]
    return bool(values) and all(value == 0.0 for value in values)


def edge_axes(point, grid: dict[str, tuple]) -> list[str]:
    """The numeric axes of ``grid`` on which the picked ``point`` lies at the smallest or largest value.

    A pick at a grid's edge means the optimum may lie outside it: the grid has to be widened before the
    comparison can count as tuned. Axes with one value (nothing was tuned), non-numeric axes (choices such as
    ``unit``, which have no inside) and a smallest value of 0 (a natural bound) are not reported.

    Examples
    --------
    >>> edge_axes((("lr", 1e-3), ("s_max", 0.5)), {"lr": (1e-4, 3e-4, 1e-3), "s_max": (0.25, 0.5, 1.0)})
    ['lr (top)']
    >>> edge_axes((("lr", 3e-4),), {"lr": (1e-4, 3e-4, 1e-3)})
    []
    """
    values_of = dict(point)
    edges = []
    for name, numeric in _numeric_axes(grid, values_of):
        value = values_of[name]
        if value == min(numeric) and value != 0:  # 0 (no warm-up, no decay) is a bound, not an edge
            edges.append(f"{name} (bottom)")
        elif value == max(numeric):
            edges.append(f"{name} (top)")
    return edges


def tied_edge_axes(point, grid: dict[str, tuple], stats: dict) -> list[str]:
    """The numeric axes of ``grid`` whose edge value, with the other axes held at the picked ``point``, scored the
    same mean validation metric as the pick.

    Ties go to the earlier grid entry, so a pick can sit inside its grid only because of the tie rule: the edge
    did as well, and the best setting may lie beyond it just as for a pick at the edge. ``stats`` is
    ``pick_learning_rate``'s second value (point -> (n_ok, n_failed, mean, std)); an edge with a failed run
    does not tie.

    Examples
    --------
    >>> grid = {"lr": (1e-4, 3e-4, 1e-3)}
    >>> means = {1e-4: 0.90, 3e-4: 0.94, 1e-3: 0.94}  # 1e-3 lost to 3e-4 by the tie rule only
    >>> stats = {(("lr", lr),): (1, 0, mean, 0.0) for lr, mean in means.items()}
    >>> tied_edge_axes((("lr", 3e-4),), grid, stats)
    ['lr (top, tied)']
    """
    values_of = dict(point)
    picked = stats.get(point)
    if picked is None or picked[0] == 0:
        return []
    ties = []
    for name, numeric in _numeric_axes(grid, values_of):
        for side, edge in (("bottom", min(numeric)), ("top", max(numeric))):
            if edge == values_of[name] or (side == "bottom" and edge == 0):
                continue
            n_ok, n_failed, mean, _ = stats.get(
                normalize_params({**values_of, name: edge}), (0, 0, math.nan, 0)
            )
            if n_ok and not n_failed and math.isclose(mean, picked[2], rel_tol=1e-9, abs_tol=1e-12):
                ties.append(f"{name} ({side}, tied)")
    return ties


def _numeric_axes(grid: dict[str, tuple], values_of: dict):
    """(name, values) of the axes that have an inside: numbers only, at least two of them, set in the point."""
    for name, values in grid.items():
        numeric = [v for v in values if isinstance(v, numbers.Real) and not isinstance(v, bool)]
        if len(set(numeric)) >= 2 and len(numeric) == len(values) and name in values_of:
            yield name, numeric
