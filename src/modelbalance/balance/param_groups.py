"""param_groups(model): optimizer parameter groups, one per balanced unit, each named after its unit.

Example
-------
>>> import torch, torch.nn as nn
>>> from modelbalance.balance import param_groups
>>> model = nn.Sequential(nn.Linear(32, 64), nn.LayerNorm(64), nn.Linear(64, 64), nn.Linear(64, 2))
>>> groups = param_groups(model, weight_decay=0.01, unit="layer", exclude=())
>>> [(g["name"], g["unit"], g["weight_decay"]) for g in groups][:2]
[('0', '0', 0.01), ('0/no_decay', '0', 0.0)]
>>> optimizer = torch.optim.AdamW(groups, lr=1e-3)
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn as nn

from .config import TempBalanceConfig
from .units import UnitPlan, plan_units

__all__ = ["UNBALANCED", "param_groups", "plan_from_config"]

UNBALANCED = "unbalanced"
"""Name of the group(s) holding parameters that keep the schedule's learning rate (factor 1)."""

_UNIT_FIELDS = (
    "unit",
    "blocks",
    "exclude",
    "exclude_first_last",
    "attach_norms",
    "balance_outside_blocks",
    "lora",
    "spectral_conv",
)


def plan_from_config(model: nn.Module, config: TempBalanceConfig) -> UnitPlan:
    """The unit plan for ``model`` under ``config`` (shared by :func:`param_groups` and TempBalance)."""
    return plan_units(model, **{name: getattr(config, name) for name in _UNIT_FIELDS})


def _default_no_decay(name: str, param) -> bool:
    return param.ndim <= 1  # biases, norm scales and shifts, scalar gates


def param_groups(
    model: nn.Module,
    weight_decay: float = 0.0,
    *,
    config: TempBalanceConfig | None = None,
    no_decay: Callable[[str, object], bool] | None = None,
    **unit_options,
) -> list[dict]:
    """Parameter groups for any ``torch.optim`` optimizer: one group per balanced unit, plus the unbalanced
    rest.

    Parameters
    ----------
    model : nn.Module
    weight_decay : float
        Weight decay of the decayed groups. With a nonzero value each unit yields two groups, ``"<unit>"`` and
        ``"<unit>/no_decay"`` (weight decay 0 for parameters where ``no_decay(name, param)`` is true, by
        default every parameter with at most one dimension: biases and normalisation weights).
    config : TempBalanceConfig, optional
        Unit settings (``unit``, ``blocks``, ``exclude``, ``exclude_first_last``, ``attach_norms``,
        ``balance_outside_blocks``, ``lora``, ``spectral_conv``). Pass the same config to ``TempBalance``.
    **unit_options
        The same fields given one by one (they override ``config``).

    Returns
    -------
    list of dict
        Each with ``"params"``, ``"name"``, ``"unit"`` (the unit name, None for unbalanced parameters) and
        ``"weight_decay"``; ordered by the first parameter of each group in ``model.named_parameters()``.
        Frozen parameters (``requires_grad=False``) are left out.
    """
    unknown = set(unit_options) - set(_UNIT_FIELDS)
    if unknown:
        raise TypeError(
            f"param_groups() got unknown option(s) {sorted(unknown)}; unit options are {_UNIT_FIELDS}"
        )
    config = (
        (config or TempBalanceConfig()).replace(**unit_options)
        if unit_options
        else (config or TempBalanceConfig())
    )
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    no_decay = no_decay or _default_no_decay
    plan = plan_from_config(model, config)
    groups: dict[str, dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        unit = plan.param_units.get(name)
        base = unit if unit is not None else UNBALANCED
        decayed = weight_decay == 0 or not no_decay(name, param)
        group_name = base if decayed else f"{base}/no_decay"
        if group_name not in groups:
            groups[group_name] = {
                "params": [],
                "name": group_name,
                "unit": unit,
                "weight_decay": weight_decay if decayed else 0.0,
            }
        groups[group_name]["params"].append(param)
    return list(groups.values())
