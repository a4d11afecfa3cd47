"""nRMSE and relative L2 against hand-computed values and independent numpy computations."""

import numpy as np
import pytest
import torch

from modelbalance.experiments.metrics import nrmse, relative_l2

# Two samples, two channels, two grid points.
TARGET = torch.tensor([[[1.0, 1.0], [2.0, 2.0]], [[0.0, 2.0], [1.0, 0.0]]])
PRED = torch.tensor([[[2.0, 0.0], [2.0, 2.0]], [[0.0, 0.0], [1.0, 1.0]]])


def test_nrmse_hand_computed():
    # sample 0: channel 0 rms err 1 / rms target 1 = 1; channel 1 exact = 0          -> 0.5
    # sample 1: channel 0 sqrt(2) / sqrt(2) = 1; channel 1 sqrt(1/2) / sqrt(1/2) = 1 -> 1.0
    torch.testing.assert_close(nrmse(PRED, TARGET, reduction="none"), torch.tensor([0.5, 1.0]))
    assert nrmse(PRED, TARGET) == pytest.approx(0.75)


def test_relative_l2_hand_computed():
    # sample 0: sqrt(1 + 1) / sqrt(1 + 1 + 4 + 4) = sqrt(0.2); sample 1: sqrt(4 + 1) / sqrt(4 + 1) = 1
    expected = torch.tensor([np.sqrt(0.2), 1.0], dtype=torch.float32)
    torch.testing.assert_close(relative_l2(PRED, TARGET, reduction="none"), expected)
    assert relative_l2(PRED, TARGET) == pytest.approx((np.sqrt(0.2) + 1) / 2)


def test_metrics_match_numpy_on_2d_fields():
    rng = np.random.default_rng(0)
    target = rng.standard_normal((3, 2, 5, 7))
    pred = target + 0.1 * rng.standard_normal(target.shape)
    per_channel = np.sqrt(((pred - target) ** 2).mean(axis=(2, 3))) / np.sqrt((target**2).mean(axis=(2, 3)))
    rel = np.linalg.norm((pred - target).reshape(3, -1), axis=1) / np.linalg.norm(
        target.reshape(3, -1), axis=1
    )
    p64, t64 = torch.from_numpy(pred), torch.from_numpy(target)
    assert nrmse(p64, t64) == pytest.approx(per_channel.mean(), rel=1e-12)
    assert relative_l2(p64, t64) == pytest.approx(rel.mean(), rel=1e-12)
    assert nrmse(p64.float(), t64.float()) == pytest.approx(per_channel.mean(), rel=1e-5)


def test_metrics_are_zero_for_exact_and_scale_invariant():
    target = torch.randn(4, 1, 16)
    assert nrmse(target, target) == 0.0 and relative_l2(target, target) == 0.0
    pred = target + 0.3
    assert nrmse(5 * pred, 5 * target) == pytest.approx(nrmse(pred, target), rel=1e-5)


def test_relative_l2_keeps_gradients_for_use_as_a_loss():
    pred = torch.randn(2, 1, 8, requires_grad=True)
    relative_l2(pred, torch.randn(2, 1, 8), reduction="none").mean().backward()
    assert pred.grad is not None and torch.all(torch.isfinite(pred.grad))


def test_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="differs from target shape"):
        nrmse(torch.zeros(2, 1, 4), torch.zeros(2, 1, 5))
    with pytest.raises(ValueError, match="batch, channels"):
        relative_l2(torch.zeros(2, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="reduction"):
        nrmse(PRED, TARGET, reduction="sum")
    with pytest.raises(TypeError, match="torch tensors"):
        nrmse(PRED.numpy(), TARGET.numpy())
