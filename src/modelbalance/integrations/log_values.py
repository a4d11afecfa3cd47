"""Flat scalars for a trainer's logs: the balancer's factors and metric values under short unit names.

The metric keeps its own name: ``tempbalance/alpha_relative/layer.3`` with the default metric,
``tempbalance/alpha/layer.3`` with ``metric="alpha"``.

Example
-------
>>> short_unit_names(["bert.encoder.layer.0", "bert.encoder.layer.1"])
{'bert.encoder.layer.0': 'layer.0', 'bert.encoder.layer.1': 'layer.1'}
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..balance import TempBalance

__all__ = ["LOG_MODES", "balancer_log_values", "short_unit_names"]

LOG_MODES = ("units", "summary", None)


def short_unit_names(names) -> dict[str, str]:
    """Unit names without the dotted prefix they all share (``bert.encoder.layer.3`` -> ``layer.3``).

    >>> short_unit_names(["bert.encoder.layer.0", "bert.encoder.layer.1"])
    {'bert.encoder.layer.0': 'layer.0', 'bert.encoder.layer.1': 'layer.1'}
    """
    names = list(names)
    parts = [name.split(".") for name in names]
    common = 0
    if len(names) > 1:
        while all(len(p) > common + 1 for p in parts) and len({p[common] for p in parts}) == 1:
            common += 1
    keep = max(common - 1, 0)  # keep the last shared part: "layer.3" reads better than "3"
    return {name: ".".join(p[keep:]) for name, p in zip(names, parts, strict=True)}


def balancer_log_values(
    tb: TempBalance, mode: str | None = "units", prefix: str = "tempbalance/"
) -> dict[str, float]:
    """The balancer's current factors and metric values as flat scalars for a trainer's logs (NaN left out).

    ``mode="units"``: ``<prefix>factor/<unit>`` and ``<prefix><metric>/<unit>``; ``"summary"``:
    ``factor_min``, ``factor_max``, ``<metric>_min``, ``<metric>_mean``, ``<metric>_max``; both with
    ``<prefix>recomputes``. ``<metric>`` is the balancer's ``config.metric`` (``alpha_relative`` by default).

    >>> import torch, torch.nn as nn, modelbalance.balance as modelbalance
    >>> net = nn.Sequential(nn.Linear(16, 16), nn.Linear(16, 16))
    >>> opt = torch.optim.SGD(modelbalance.param_groups(net, unit="layer", exclude=()), lr=0.1)
    >>> tb = modelbalance.TempBalance(net, opt, unit="layer", exclude=())
    >>> sorted(balancer_log_values(tb))
    ['tempbalance/factor/0', 'tempbalance/factor/1', 'tempbalance/recomputes']
    """
    if mode not in LOG_MODES:
        raise ValueError(f"log must be one of {LOG_MODES}, got {mode!r}")
    if mode is None:
        return {}
    out: dict[str, float] = {f"{prefix}recomputes": float(tb.num_recomputes)}
    metric = tb.config.metric
    if mode == "summary":
        factors = list(tb.factors.values())
        alphas = [a for a in tb.alphas.values() if math.isfinite(a)]
        out.update({f"{prefix}factor_min": min(factors), f"{prefix}factor_max": max(factors)})
        if alphas:
            out.update(
                {
                    f"{prefix}{metric}_min": min(alphas),
                    f"{prefix}{metric}_mean": sum(alphas) / len(alphas),
                    f"{prefix}{metric}_max": max(alphas),
                }
            )
        return out
    short = short_unit_names(tb.factors)
    for unit, factor in tb.factors.items():
        out[f"{prefix}factor/{short[unit]}"] = float(factor)
    for unit, alpha in tb.alphas.items():
        if math.isfinite(alpha):
            out[f"{prefix}{metric}/{short[unit]}"] = float(alpha)
    return out
