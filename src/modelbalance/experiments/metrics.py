"""Error metrics for field predictions: PDEBench's normalised RMSE and the relative L2 error.

Usage::

    import torch
    from modelbalance.experiments.metrics import nrmse, relative_l2

    pred, target = torch.randn(8, 1, 64), torch.randn(8, 1, 64)   # (batch, channels, *grid)
    score = nrmse(pred, target)                                    # float
    per_sample = relative_l2(pred, target, reduction="none")       # tensor (8,)
    series = nrmse_per_step(torch.randn(8, 3, 11, 64), torch.randn(8, 3, 11, 64))   # (3, 11)

Both take tensors of shape ``(batch, channels, *grid)`` (at least one grid axis) on any device and compute in
at least float32. ``reduction="none"`` keeps the autograd graph, so ``relative_l2(p, y, "none").mean()`` can
serve as a training loss. A sample (or channel) whose target is identically zero has an infinite or NaN error:
these metrics are relative by definition.
"""

from __future__ import annotations

import torch

__all__ = ["nrmse", "nrmse_per_step", "relative_l2"]


def nrmse(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> float | torch.Tensor:
    """Normalised root-mean-square error as PDEBench defines it.

    Usage: ``nrmse(model(x), y)`` -> float; ``nrmse(model(x), y, reduction="none")`` -> tensor (batch,).

    For each sample ``b`` and channel ``c``::

        nrmse[b, c] = sqrt(mean_x (pred - target)^2) / sqrt(mean_x target^2)

    (means over all grid points), then averaged over channels (``reduction="none"``: one value per sample) and
    over samples (``reduction="mean"``: a Python float).
    """
    pred, target = _check_pair(pred, target, "nrmse")
    space = tuple(range(2, pred.ndim))
    err = (pred - target).pow(2).mean(dim=space).sqrt()
    norm = target.pow(2).mean(dim=space).sqrt()
    per_sample = (err / norm).mean(dim=1)
    return _reduce(per_sample, reduction)


def nrmse_per_step(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PDEBench's nRMSE of time series before its final average: a (channels, time) tensor.

    Usage: ``table = nrmse_per_step(pred, target)`` for ``(batch, channels, time, *grid)`` tensors (the
    rolled-out steps only: leave the given initial steps out); ``float(table.mean())`` is PDEBench's nRMSE
    (``metric_func`` in its ``metrics.py``), ``table.mean(dim=1)`` the per-channel nRMSE, ``table[:, -1]`` the
    error at the last time.

    For each sample ``b``, channel ``c`` and time ``t``::

        e[b, c, t] = sqrt(mean_x (pred - target)^2) / sqrt(mean_x target^2)

    (means over the grid at that time), averaged over the batch. Unlike :func:`nrmse`, which pools every
    axis after the channel, time is kept apart, so an error that grows along a rollout is weighted by step.
    """
    pred, target = _check_pair(pred, target, "nrmse_per_step")
    if pred.ndim < 4:
        raise ValueError(
            f"nrmse_per_step: expected (batch, channels, time, *grid) tensors, got shape {tuple(pred.shape)}"
        )
    space = tuple(range(3, pred.ndim))
    err = (pred - target).pow(2).mean(dim=space).sqrt()
    norm = target.pow(2).mean(dim=space).sqrt()
    return (err / norm).mean(dim=0)


def relative_l2(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> float | torch.Tensor:
    """Relative L2 error per sample, ``||pred - target||_2 / ||target||_2`` over all channels and grid points.

    Usage: ``relative_l2(model(x), y)`` -> float (mean over samples); ``reduction="none"`` -> tensor (batch,).
    """
    pred, target = _check_pair(pred, target, "relative_l2")
    dims = tuple(range(1, pred.ndim))
    per_sample = (pred - target).pow(2).sum(dim=dims).sqrt() / target.pow(2).sum(dim=dims).sqrt()
    return _reduce(per_sample, reduction)


def _check_pair(pred, target, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError(f"{name}: pred and target must be torch tensors, got {type(pred)}, {type(target)}")
    if pred.shape != target.shape:
        raise ValueError(
            f"{name}: pred shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}"
        )
    if pred.ndim < 3:
        raise ValueError(f"{name}: expected (batch, channels, *grid) tensors, got shape {tuple(pred.shape)}")
    if pred.is_complex() or target.is_complex():
        raise TypeError(f"{name}: complex tensors are not supported")
    dtype = torch.promote_types(torch.promote_types(pred.dtype, target.dtype), torch.float32)
    return pred.to(dtype), target.to(dtype)


def _reduce(per_sample: torch.Tensor, reduction: str) -> float | torch.Tensor:
    if reduction == "mean":
        return float(per_sample.mean())
    if reduction == "none":
        return per_sample
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
