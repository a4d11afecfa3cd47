"""Which unit each optimizer param group belongs to, checked once when the balancer is built.

Example
-------
>>> import torch, torch.nn as nn
>>> from modelbalance.balance import param_groups, plan_units
>>> model = nn.Sequential(nn.Linear(16, 16), nn.Linear(16, 16))
>>> optimizer = torch.optim.SGD(param_groups(model, unit="layer", exclude=()), lr=0.1)
>>> match_group_units(model, optimizer, plan_units(model, unit="layer", exclude=()), "layer")
['0', '1']
"""

from __future__ import annotations

import warnings

import torch
import torch.nn as nn

from .units import UnitPlan

__all__ = ["match_group_units", "unwrap_optimizer", "warn_if_inert"]

_HINT = "build the optimizer from modelbalance.param_groups(model, ...) with the same unit settings"


def unwrap_optimizer(optimizer) -> torch.optim.Optimizer:
    """The torch optimizer whose ``step`` does the work (e.g. inside accelerate's AcceleratedOptimizer)."""
    while isinstance(getattr(optimizer, "optimizer", None), torch.optim.Optimizer):
        optimizer = optimizer.optimizer
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    return optimizer


def _label(index: int, group: dict) -> str:
    return f"group {index}" + (f" ({group['name']!r})" if "name" in group else "")


def match_group_units(
    model: nn.Module, optimizer: torch.optim.Optimizer, plan: UnitPlan, unit_setting: str
) -> list[str | None]:
    """The unit of every param group (None: unbalanced), found by parameter identity.

    Raises ValueError when a group holds a parameter that is not in the model, mixes parameters of different
    units (one group takes one factor), carries a ``"unit"`` key that disagrees with ``plan`` (groups built
    with other unit settings), or when a trainable parameter of a balanced unit is in no group.
    """
    names = {id(p): n for n, p in model.named_parameters()}
    units: list[str | None] = []
    seen: set[int] = set()
    for i, group in enumerate(optimizer.param_groups):
        found: dict[str | None, str] = {}
        for param in group["params"]:
            if id(param) not in names:
                raise ValueError(
                    f"optimizer {_label(i, group)} holds a parameter of shape {tuple(param.shape)} that is "
                    f"not in the model; {_HINT}"
                )
            seen.add(id(param))
            found.setdefault(plan.param_units.get(names[id(param)]), names[id(param)])
        if len(found) > 1:
            examples = ", ".join(f"{p!r} -> {u or 'unbalanced'}" for u, p in list(found.items())[:3])
            raise ValueError(
                f"optimizer {_label(i, group)} mixes parameters of different units ({examples}); one group "
                f"can only take one factor: {_HINT}"
            )
        unit = next(iter(found)) if found else None
        if "unit" in group and group["unit"] != unit:
            raise ValueError(
                f"optimizer {_label(i, group)} was built for unit {group['unit']!r}, but "
                f"TempBalance (unit {unit_setting}) puts its parameters in {unit or 'no unit'!r}: pass the "
                "same unit settings (or config) to both"
            )
        units.append(unit)
    missing = [
        n
        for n, p in model.named_parameters()
        if p.requires_grad and plan.param_units.get(n) is not None and id(p) not in seen
    ]
    if missing:
        raise ValueError(
            f"{len(missing)} trainable parameter(s) of balanced units are in no optimizer group "
            f"(e.g. {missing[:3]}); {_HINT}"
        )
    return units


def warn_if_inert(param_groups: list[dict], group_units: list[str | None], target: str) -> None:
    """Warn when the factors cannot act: Adafactor's relative_step, lr 0 or None, no weight decay to scale."""
    balanced = [
        (i, g) for i, (g, u) in enumerate(zip(param_groups, group_units, strict=True)) if u is not None
    ]
    if target in ("lr", "both"):
        for i, group in balanced:
            if group.get("relative_step"):
                warnings.warn(
                    "optimizer uses relative_step=True (Adafactor): it ignores the group learning rate, so "
                    "TempBalance's lr factors have no effect; set relative_step=False and an explicit lr",
                    RuntimeWarning,
                    stacklevel=3,
                )
                break
            lr = group.get("lr")
            if lr is None or (float(lr) == 0.0 and float(group.get("initial_lr", 0.0)) == 0.0):
                warnings.warn(
                    f"optimizer {_label(i, group)} has lr={lr}: factors cannot act on it",
                    RuntimeWarning,
                    stacklevel=3,
                )
    if target in ("weight_decay", "both"):
        if all(float(group.get("weight_decay") or 0.0) == 0.0 for _, group in balanced):
            warnings.warn(
                "target includes weight_decay but every balanced group has weight_decay 0: the weight-decay "
                "factors have no effect",
                RuntimeWarning,
                stacklevel=3,
            )
