import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from modelbalance.balance import TempBalance, param_groups
from modelbalance.balance.measurement import alpha_change_bound, spectral_norm_bounds
from modelbalance.spectral import FitConfig, esd, fit_power_law


def _heavy_tailed(rows, cols, tail_index, seed):
    gen = np.random.default_rng(seed)
    u, _ = np.linalg.qr(gen.standard_normal((rows, rows)))
    v, _ = np.linalg.qr(gen.standard_normal((cols, cols)))
    s = np.sort((1 - gen.random(min(rows, cols))) ** (-1 / tail_index))[::-1]
    return (u[:, : s.size] * s) @ v[: s.size]


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    log_eps=st.floats(-7, -1),
    tail_index=st.floats(1.0, 4.0),
    xmin_pos=st.sampled_from([1.5, 2.0]),
    square=st.booleans(),
)
def test_alpha_change_bound_holds(seed, log_eps, tail_index, xmin_pos, square):
    rows, cols = (40, 40) if square else (48, 32)
    if square:  # Gaussian square matrix: its smallest singular values sit near the engine's zeroing floor
        w = np.random.default_rng(seed).standard_normal((rows, cols))
    else:
        w = _heavy_tailed(rows, cols, tail_index, seed)
    dw = np.random.default_rng(seed + 1).standard_normal((rows, cols)) * 10**log_eps
    fit_config = FitConfig(xmin="fixed", xmin_pos=xmin_pos)
    before_eigs = esd(torch.from_numpy(w)[None].float())
    before = fit_power_law(before_eigs, config=fit_config)
    assume(before.ok)  # e.g. a tail index of 1 spreads the spectrum below float32 round-off
    after = fit_power_law(esd(torch.from_numpy(w + dw)[None].float()), config=fit_config)
    delta = float(np.linalg.norm(dw, 2))
    bound = alpha_change_bound(before_eigs, before.alpha, delta, max(rows, cols), xmin_pos)
    if not after.ok:
        assert bound == math.inf
        return
    assert abs(after.alpha - before.alpha) <= bound + 1e-4  # 1e-4: float32 eigenvalues of the engine
    assert alpha_change_bound(before_eigs, before.alpha, delta / 10, max(rows, cols), xmin_pos) <= bound


def test_alpha_change_bound_shrinks_to_zero_and_gives_up_when_xmin_could_vanish():
    eigs = np.array([0.3, 0.5, 1.0, 1.5, 3.0, 9.0, 30.0])
    alpha = fit_power_law(eigs, config=FitConfig(xmin_pos=2.0)).alpha
    assert alpha_change_bound(eigs, alpha, 1e-9, 64, 2.0) < 1e-6
    assert alpha_change_bound(eigs, alpha, 2.0, 64, 2.0) == math.inf  # delta above the xmin singular value


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    batch=st.integers(1, 4),
    rows=st.integers(2, 40),
    cols=st.integers(2, 40),
    complex_=st.booleans(),
    log_scale=st.floats(-30, 5),
)
def test_spectral_norm_bounds_bracket_the_truth(seed, batch, rows, cols, complex_, log_scale):
    gen = torch.Generator().manual_seed(seed)
    dtype = torch.complex64 if complex_ else torch.float32
    delta = torch.randn(batch, rows, cols, generator=gen, dtype=dtype) * 10**log_scale
    truth = float(
        torch.linalg.matrix_norm(delta.to(torch.complex128 if complex_ else torch.float64), 2).max()
    )
    lower, cheap, tight = spectral_norm_bounds(delta)
    upper = tight()
    assert lower <= truth * (1 + 1e-5)
    assert truth <= upper
    assert upper <= cheap * 1.002 + 1e-30
    assert upper <= truth * min(rows, cols) ** 0.125 * 1.01


def test_skipped_layers_stay_within_tolerance_of_a_fresh_fit():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 48))
    opt = torch.optim.SGD(param_groups(model, unit="layer", exclude=()), lr=1.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 1e-3 if s < 6 else 0.3
    )  # small, then large moves
    tolerance = 0.02
    tb = TempBalance(
        model,
        opt,
        unit="layer",
        exclude=(),
        interval=1,
        metric="alpha",
        mapping="linear",
        skip_tolerance=tolerance,
    )
    weights = []  # the weights each recompute saw (hooks after TempBalance's run before the update)
    opt.register_step_pre_hook(
        lambda o, a, k: weights.append(
            {n: model.get_submodule(n).weight.detach().clone() for n in ("0", "2", "4")}
        )
    )
    gen = torch.Generator().manual_seed(0)
    for _ in range(12):
        x, y = torch.randn(16, 32, generator=gen), torch.randn(16, 48, generator=gen)
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
        schedule.step()
        opt.zero_grad()
    frame = tb.history_frame()
    later = frame[frame["recompute"] > 0]
    assert (later["layers_refit"] == 0).sum() >= 6 and (later["layers_refit"] == 1).sum() >= 6
    fit_config = FitConfig(xmin="fixed", xmin_pos=1.5)
    for row in frame.itertuples():
        fresh = fit_power_law(esd(weights[row.measured_step][row.unit][None]), config=fit_config).alpha
        if row.layers_refit:
            assert row.alpha == pytest.approx(fresh, abs=1e-9)
        else:
            assert abs(row.alpha - fresh) <= tolerance + 1e-5


def test_skip_is_off_by_default_and_bound_needs_fixed_xmin():
    from modelbalance.balance import TempBalanceConfig

    assert TempBalanceConfig().skip_tolerance == 0.0
    with pytest.raises(ValueError, match="fixed"):
        TempBalanceConfig(skip_tolerance=0.01, xmin="peak")
    with pytest.raises(ValueError, match="fixed"):
        TempBalanceConfig(skip_tolerance=0.01, metric="alpha_farms")
