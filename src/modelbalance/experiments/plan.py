"""What a sweep runs: one :class:`RunSpec` per training run, the unit executors hand to workers.

A run is fixed by its cell (``fraction``: the training-subset key), its ``seed``, its ``method`` and its grid point
(``params``: the learning rate and any other tuned setting, e.g. ``batch_size`` or ``tb.s_max``). Specs are
small, hashable and picklable, so they travel to worker processes and Ray tasks unchanged::

    from modelbalance.experiments.plan import RunSpec
    spec = RunSpec(fraction=0.25, seed=0, method="tb", params=(("lr", 1e-3), ("s_max", 0.5)))
    spec.lr, spec.point_label()        # (0.001, 'lr=0.001, s_max=0.5')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Grid parameters that change how training runs rather than the method (everything else is a method option).
TRAINING_PARAMS = ("lr", "batch_size", "weight_decay", "warmup", "epochs", "steps")


def normalize_params(params: dict[str, Any] | tuple) -> tuple[tuple[str, Any], ...]:
    """A grid point as a sorted tuple of (name, value) with ``lr`` first (hashable, one spelling per point).

    Examples
    --------
    >>> normalize_params({"s_max": 0.5, "lr": 1e-3})
    (('lr', 0.001), ('s_max', 0.5))
    """
    items = dict(params)
    if "lr" not in items:
        raise ValueError(f"a grid point needs an lr, got {items}")
    rest = sorted((k, v) for k, v in items.items() if k != "lr")
    return (("lr", float(items["lr"])), *rest)


def point_label(params) -> str:
    """``lr=0.001, s_max=0.5``: how a grid point is shown in tables."""
    return ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in normalize_params(params)
    )


@dataclass(frozen=True)
class RunSpec:
    """One training run of a sweep.

    Examples
    --------
    >>> RunSpec(0.5, 1, "baseline", (("lr", 3e-3),)).lr
    0.003
    """

    fraction: float
    seed: int
    method: str
    params: tuple[tuple[str, Any], ...]

    def __post_init__(self):
        object.__setattr__(self, "params", normalize_params(self.params))

    @property
    def lr(self) -> float:
        return float(dict(self.params)["lr"])

    @property
    def extra(self) -> dict[str, Any]:
        """The grid point without the learning rate."""
        return {k: v for k, v in self.params if k != "lr"}

    def point_label(self) -> str:
        return point_label(self.params)


def record_point(record: dict) -> tuple[tuple[str, Any], ...]:
    """The grid point of a stored run record (records written before grids existed hold only an ``lr``).

    Examples
    --------
    >>> record_point({"lr": 0.001})
    (('lr', 0.001),)
    """
    params = record.get("params")
    return normalize_params([tuple(item) for item in params] if params else {"lr": record["lr"]})
