"""The scalars the HF and Lightning integrations log: the metric is named by its own name."""

import pytest
import torch
import torch.nn as nn

from modelbalance import TempBalance, param_groups
from modelbalance.integrations.log_values import balancer_log_values


def trained_balancer(**options):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(24, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 48))
    opt = torch.optim.SGD(param_groups(model, unit="layer", exclude=()), lr=0.01)
    tb = TempBalance(model, opt, unit="layer", exclude=(), interval=1, **options)
    model(torch.randn(8, 24)).pow(2).mean().backward()
    opt.step()
    return tb


@pytest.mark.parametrize("metric", ["alpha_relative", "alpha"])
def test_log_values_name_the_metric(metric):
    tb = trained_balancer(metric=metric)
    units = balancer_log_values(tb, "units")
    assert {f"tempbalance/{metric}/{u}" for u in ("0", "2", "4")} <= set(units)
    assert units[f"tempbalance/{metric}/2"] == tb.alphas["2"]
    if metric != "alpha":  # a negative "alpha" (the shape-corrected value) confused readers
        assert not any(key.startswith("tempbalance/alpha/") for key in units)
    summary = balancer_log_values(tb, "summary")
    assert {f"tempbalance/{metric}_{s}" for s in ("min", "mean", "max")} <= set(summary)
