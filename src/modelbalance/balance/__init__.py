"""Balancing: alphas -> factors -> optimizer. TempBalance and the pieces it is built from.

Example
-------
>>> import torch, torch.nn as nn
>>> from modelbalance.balance import TempBalance, param_groups
>>> model = nn.Sequential(*[nn.Linear(32, 32) for _ in range(3)])
>>> optimizer = torch.optim.AdamW(param_groups(model, weight_decay=0.01, unit="layer"), lr=1e-3)
>>> tb = TempBalance(model, optimizer, unit="layer", mapping="sigmoid", interval=10)
"""

from .blocks import BlockIndex, detect_blocks
from .config import DEFAULT_HEAD_PATTERNS, PRESETS, TempBalanceConfig
from .mappings import (
    MAPPINGS,
    linear_factors,
    log2_factors,
    map_alphas,
    noise_aware_factors,
    normalize_factors,
    rank_factors,
    shrink_alphas,
    sigmoid_factors,
    sqrt_factors,
)
from .measurement import alpha_change_bound
from .param_groups import UNBALANCED, param_groups
from .tempbalance import TempBalance
from .units import Unit, UnitPlan, plan_units

__all__ = [
    "DEFAULT_HEAD_PATTERNS",
    "MAPPINGS",
    "PRESETS",
    "UNBALANCED",
    "BlockIndex",
    "TempBalance",
    "TempBalanceConfig",
    "Unit",
    "UnitPlan",
    "alpha_change_bound",
    "detect_blocks",
    "linear_factors",
    "log2_factors",
    "map_alphas",
    "noise_aware_factors",
    "normalize_factors",
    "param_groups",
    "plan_units",
    "rank_factors",
    "shrink_alphas",
    "sigmoid_factors",
    "sqrt_factors",
]
