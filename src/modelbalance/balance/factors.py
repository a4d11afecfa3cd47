"""Per-layer fits -> per-unit alphas -> per-unit factors (mapped within each comparison family).

Example
-------
>>> import numpy as np
>>> from modelbalance.balance import TempBalanceConfig, Unit
>>> units = [Unit("a", ("a",), "", ((64, 64),), 10), Unit("b", ("b",), "", ((64, 64),), 10)]
>>> unit_factors(units, np.array([2.0, 4.0]), np.zeros(2), TempBalanceConfig(mapping="linear")).tolist()
[0.5, 1.5]
"""

from __future__ import annotations

import math

import numpy as np

from .mappings import map_alphas

__all__ = ["unit_factors", "unit_metrics"]


def unit_metrics(units: list, fits: dict, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Per unit: the mean of its layers' ``metric`` (NaN layers ignored; NaN if all are) and the standard
    error of that mean, ``sqrt(sum se_i^2) / m`` over its m layers with a value."""
    values, errors = [], []
    for unit in units:
        layer_values = np.array([fits[name].metric(metric) for name in unit.layers])
        layer_errors = np.array([fits[name].alpha_stderr for name in unit.layers])
        ok = np.isfinite(layer_values)
        if not ok.any():
            values.append(math.nan)
            errors.append(math.nan)
            continue
        values.append(float(layer_values[ok].mean()))
        errs = np.nan_to_num(layer_errors[ok], nan=0.0)
        errors.append(float(np.sqrt((errs**2).sum()) / ok.sum()))
    return np.array(values), np.array(errors)


def unit_factors(units: list, alphas: np.ndarray, stderrs: np.ndarray, config) -> np.ndarray:
    """Factors of ``units``: ``config.mapping`` applied separately within each family of comparable units."""
    factors = np.ones(len(units))
    for family in dict.fromkeys(unit.family for unit in units):
        idx = [i for i, unit in enumerate(units) if unit.family == family]
        factors[idx] = map_alphas(
            alphas[idx],
            stderrs[idx],
            mapping=config.mapping,
            options=config.mapping_options,
            normalize=config.normalize,
            weights=[units[i].num_params for i in idx],
        )
    return factors
