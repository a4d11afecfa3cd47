"""Fourier neural operators for 1D and 2D fields, built on neuraloperator's ``neuralop.models.FNO``.

Usage::

    import torch
    from modelbalance.experiments.models.fno import build_fno

    torch.manual_seed(0)
    model = build_fno(dim=1, in_channels=1, out_channels=1, modes=16, width=64, n_layers=4)
    y = model(torch.randn(4, 1, 256))          # (4, 1, 256)

``modes`` means the Fourier modes kept per spatial axis, counted as in the original FNO code: frequencies
``0 .. modes - 1`` along every axis, with the negative frequencies ``-modes .. -1`` also kept along every axis
but the last (whose negative half is redundant for real data). neuraloperator's own ``n_modes`` counts
differently (both signs, and ``n // 2 + 1`` along the last axis: its ``n_modes=(16,)`` keeps 9 rfft modes), so
this builder passes ``n_modes = (2 * modes, ..., 2 * modes, 2 * (modes - 1))``. The spectral weights then have
shape ``(width, width, 2 * modes, ..., 2 * modes, modes)``. Each axis needs ``modes <= size // 2``.

neuraloperator is imported on the first call (it is in the ``pde`` extra, and importing it pulls in wandb).
Construction draws only from torch's global generator, so ``torch.manual_seed`` fixes the initial weights.
"""

from __future__ import annotations

from torch import nn

__all__ = ["build_fno", "fno_n_modes"]


def fno_n_modes(dim: int, modes: int) -> tuple[int, ...]:
    """neuraloperator's ``n_modes`` argument that keeps ``modes`` Fourier modes per axis (module docstring).

    Usage: ``fno_n_modes(2, 12)`` -> ``(24, 22)``.
    """
    if dim not in (1, 2, 3):
        raise ValueError(f"FNO: dim must be 1, 2 or 3, got {dim!r}")
    if not isinstance(modes, int) or isinstance(modes, bool) or modes < 1:
        raise ValueError(f"FNO: modes must be a positive integer, got {modes!r}")
    return (2 * modes,) * (dim - 1) + (2 * (modes - 1),)


def build_fno(
    dim: int,
    in_channels: int,
    out_channels: int,
    modes: int = 16,
    width: int = 64,
    n_layers: int = 4,
    **fno_options,
) -> nn.Module:
    """A neuraloperator FNO mapping (batch, in_channels, *grid) to (batch, out_channels, *grid).

    Usage: ``model = build_fno(2, 1, 1, modes=12, width=32, n_layers=4)``.

    Parameters
    ----------
    dim : int
        Spatial dimensions (1 or 2; 3 also works).
    in_channels, out_channels : int
        Channels of input and output fields (neuraloperator appends ``dim`` coordinate channels itself).
    modes : int, default 16
        Fourier modes kept per axis, counted as in the original FNO (module docstring).
    width : int, default 64
        Hidden channels (``hidden_channels`` in neuraloperator).
    n_layers : int, default 4
        Number of Fourier layers.
    **fno_options
        Passed to ``neuralop.models.FNO`` unchanged (e.g. ``norm``, ``domain_padding``,
        ``positional_embedding``).
    """
    for name, value in (
        ("in_channels", in_channels),
        ("out_channels", out_channels),
        ("width", width),
        ("n_layers", n_layers),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"FNO: {name} must be a positive integer, got {value!r}")
    n_modes = fno_n_modes(dim, modes)
    try:
        from neuralop.models import FNO
    except ImportError as err:  # pragma: no cover - neuraloperator is in the "pde" extra
        raise ImportError("build_fno needs neuraloperator: pip install 'modelbalance[pde]'") from err
    return FNO(
        n_modes=n_modes,
        in_channels=in_channels,
        out_channels=out_channels,
        hidden_channels=width,
        n_layers=n_layers,
        **fno_options,
    )
