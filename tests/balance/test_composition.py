"""The lr each group uses inside optimizer.step() == (the scheduler's lr alone) x (the group's factor)."""

import copy
import math

import pytest
import torch
import torch.nn as nn
from torch.optim import lr_scheduler as sched

from modelbalance.balance import TempBalance, param_groups
from modelbalance.balance.composition import GroupScaler

STEPS = 12


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(24, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 32))


def _batches():
    gen = torch.Generator().manual_seed(1)
    return [(torch.randn(16, 24, generator=gen), torch.randn(16, 32, generator=gen)) for _ in range(STEPS)]


def _run(make_opt, make_sched, plateau=False, target="lr", weight_decay=0.0):
    """Train with TempBalance; an identical optimizer + scheduler without it is the independent reference."""
    model = _model()
    opt = make_opt(param_groups(model, weight_decay, unit="layer", exclude=()))
    scheduler = make_sched(opt)
    twin = make_opt(param_groups(copy.deepcopy(model), weight_decay, unit="layer", exclude=()))
    twin_scheduler = make_sched(twin)
    tb = TempBalance(
        model, opt, unit="layer", exclude=(), interval=3, mapping="linear", metric="alpha", target=target
    )
    key = "lr" if target == "lr" else "weight_decay"
    inside, factors, expected = [], [], []
    opt.register_step_pre_hook(lambda o, a, k: inside.append([float(g[key]) for g in o.param_groups]))
    opt.register_step_pre_hook(lambda o, a, k: factors.append(list(tb.group_factors().values())))
    for x, y in _batches():
        loss = ((model(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        expected.append([float(g[key]) for g in twin.param_groups])
        twin.step()
        if plateau:
            scheduler.step(1.0)
            twin_scheduler.step(1.0)
        else:
            scheduler.step()
            twin_scheduler.step()
    return opt, twin, inside, factors, expected, tb


SCHEDULES = {
    "transformers_linear_warmup": lambda o: pytest.importorskip(
        "transformers"
    ).get_linear_schedule_with_warmup(o, 3, STEPS),
    "lambda": lambda o: sched.LambdaLR(o, lambda s: 1.0 / (1 + s)),
    "step": lambda o: sched.StepLR(o, step_size=4, gamma=0.5),
    "multistep": lambda o: sched.MultiStepLR(o, milestones=[3, 7], gamma=0.3),
    "exponential": lambda o: sched.ExponentialLR(o, gamma=0.9),
    "cosine": lambda o: sched.CosineAnnealingLR(o, T_max=STEPS),
    "onecycle": lambda o: sched.OneCycleLR(o, max_lr=0.2, total_steps=STEPS),
    "sequential": lambda o: sched.SequentialLR(
        o,
        [sched.LinearLR(o, start_factor=0.1, total_iters=3), sched.ExponentialLR(o, gamma=0.8)],
        milestones=[3],
    ),
}


def _check(inside, factors, expected, opt, twin):
    assert len(inside) == STEPS
    for seen, f, base in zip(inside, factors, expected, strict=True):
        for s, fi, b in zip(seen, f, base, strict=True):
            assert s == pytest.approx(b * fi, rel=1e-6, abs=1e-15)
    # the scheduler's own values are untouched: no factor ever compounds into them
    assert [float(g["lr"]) for g in opt.param_groups] == [float(g["lr"]) for g in twin.param_groups]
    balanced = [f for f in factors[-1] if f != 1.0]
    assert len(balanced) >= 2 and len(set(balanced)) >= 2


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_scheduler_composition_is_exact(name):
    make_opt = lambda groups: torch.optim.SGD(groups, lr=0.1, momentum=0.9)  # noqa: E731
    opt, twin, inside, factors, expected, _ = _run(make_opt, SCHEDULES[name])
    _check(inside, factors, expected, opt, twin)


def test_reduce_on_plateau_composition_is_exact():
    make_opt = lambda groups: torch.optim.SGD(groups, lr=0.1)  # noqa: E731
    make = lambda o: sched.ReduceLROnPlateau(o, patience=0, factor=0.5)  # noqa: E731
    opt, twin, inside, factors, expected, _ = _run(make_opt, make, plateau=True)
    _check(inside, factors, expected, opt, twin)
    assert float(opt.param_groups[1]["lr"]) < 0.1 * 0.5**3  # the plateau schedule really did reduce


@pytest.mark.parametrize("foreach", [False, None])
def test_tensor_learning_rates_are_scaled_and_restored_in_place(foreach):
    def make_opt(groups):
        for group in groups:
            group["lr"] = torch.tensor(0.01)  # one tensor per group: scaled with mul_, restored with copy_
        return torch.optim.Adam(groups, lr=0.01, foreach=foreach)

    make = lambda o: sched.StepLR(o, step_size=4, gamma=0.5)  # noqa: E731
    opt, twin, inside, factors, expected, _ = _run(make_opt, make)
    _check(inside, factors, expected, opt, twin)
    lrs = [g["lr"] for g in opt.param_groups]
    assert all(isinstance(lr, torch.Tensor) for lr in lrs) and len({id(lr) for lr in lrs}) == len(lrs)


def test_tensor_learning_rate_shared_by_all_groups():
    shared = torch.tensor(0.01)
    opt, twin, inside, factors, expected, _ = _run(
        lambda groups: torch.optim.Adam(groups, lr=shared, foreach=False),
        lambda o: sched.LambdaLR(o, lambda s: 1.0),
    )
    _check(inside, factors, expected, opt, twin)
    assert all(g["lr"] is shared for g in opt.param_groups) and float(shared) == pytest.approx(0.01)


def test_weight_decay_target_scales_decay_not_lr():
    make_opt = lambda groups: torch.optim.AdamW(groups, lr=0.01)  # noqa: E731
    opt, twin, inside, factors, expected, tb = _run(
        make_opt, SCHEDULES["cosine"], target="weight_decay", weight_decay=0.1
    )
    _check(inside, factors, expected, opt, twin)
    lr_inside = []
    opt.register_step_pre_hook(lambda o, a, k: lr_inside.append([g["lr"] for g in o.param_groups]))
    opt.step()
    assert lr_inside[0] == [g["lr"] for g in twin.param_groups]


def test_actual_sgd_update_uses_scheduled_lr_times_factor():
    model = _model()
    opt = torch.optim.SGD(param_groups(model, unit="layer", exclude=()), lr=0.05)
    scheduler = sched.LambdaLR(opt, lambda s: 0.5 ** (s // 2))
    tb = TempBalance(model, opt, unit="layer", exclude=(), interval=2, mapping="linear", metric="alpha")
    weights = [model[0].weight, model[2].weight, model[4].weight]
    units = ["0", "2", "4"]
    for step, (x, y) in enumerate(_batches()):
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        before = [w.detach().clone() for w in weights]
        grads = [w.grad.clone() for w in weights]
        opt.step()
        for w, b, g, u in zip(weights, before, grads, units, strict=True):
            used_lr = 0.05 * 0.5 ** (step // 2) * tb.factors[u]
            torch.testing.assert_close(b - w.detach(), used_lr * g, rtol=1e-4, atol=1e-7)
        scheduler.step()
    assert min(tb.factors.values()) == 0.5 and max(tb.factors.values()) == 1.5


def test_group_scaler_skips_factor_one_and_none_values():
    p = nn.Parameter(torch.zeros(1))
    groups = [{"params": [p], "lr": 0.1, "weight_decay": None}, {"params": [p], "lr": 0.2}]
    scaler = GroupScaler(("lr", "weight_decay"))
    scaler.scale(groups, [3.0, 1.0])
    assert (
        groups[0]["lr"] == pytest.approx(0.3) and groups[0]["weight_decay"] is None and groups[1]["lr"] == 0.2
    )
    with pytest.raises(RuntimeError, match="twice"):
        scaler.scale(groups, [3.0, 1.0])
    scaler.restore(groups)
    assert groups[0]["lr"] == 0.1 and not scaler.active
    assert math.isclose(groups[1]["lr"], 0.2)


def test_factors_cannot_act_warnings():
    transformers = pytest.importorskip("transformers")
    model = _model()
    adafactor = transformers.optimization.Adafactor(
        param_groups(model, unit="layer", exclude=()),
        lr=None,
        relative_step=True,
        scale_parameter=True,
        warmup_init=False,
    )
    with pytest.warns(RuntimeWarning, match="relative_step"):
        TempBalance(model, adafactor, unit="layer", exclude=())
    zero = torch.optim.SGD(param_groups(model, unit="layer", exclude=()), lr=0.0)
    with pytest.warns(RuntimeWarning, match="lr=0.0"):
        TempBalance(model, zero, unit="layer", exclude=())
    no_decay = torch.optim.SGD(param_groups(model, unit="layer", exclude=()), lr=0.1)
    with pytest.warns(RuntimeWarning, match="weight_decay 0"):
        TempBalance(model, no_decay, unit="layer", exclude=(), target="weight_decay")
