"""A small UNet for 1D and 2D fields in plain torch.

Usage::

    import torch
    from modelbalance.experiments.models.unet import UNet

    model = UNet(dim=1, in_channels=1, out_channels=1, width=16, depth=3)
    y = model(torch.randn(4, 1, 256))          # (4, 1, 256)

Layout (``depth`` levels, channels ``width * 2**level``): at each level two 3-wide convolutions with
normalisation and GELU, then 2x max-pooling; a bottleneck block at ``width * 2**depth`` channels; on the way
up a stride-2 transposed convolution halves the channels and doubles the grid, the skip connection of that
level is concatenated and followed by two convolutions; a final 1x1 convolution maps to ``out_channels``.

Grid sizes: every spatial size must be divisible by ``2**depth`` for the pooling to line up. Other sizes are
padded at the high end of each axis up to the next multiple (replicate padding, or circular with
``padding_mode="circular"``) and the output is cropped back, so any size works, at some cost at the edges.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["UNet"]

_CONV = {1: nn.Conv1d, 2: nn.Conv2d}
_CONV_T = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d}
_POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d}
_BATCH_NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}


class ConvBlock(nn.Sequential):
    """Two (convolution -> normalisation -> GELU) layers with kernel 3 and 'same' padding.

    Usage: ``block = ConvBlock(2, 8, 16, norm="group", padding_mode="zeros")``.
    """

    def __init__(self, dim: int, in_channels: int, out_channels: int, norm: str | None, padding_mode: str):
        layers: list[nn.Module] = []
        for c_in in (in_channels, out_channels):
            layers += [
                _CONV[dim](c_in, out_channels, 3, padding=1, padding_mode=padding_mode, bias=norm is None),
                _make_norm(norm, dim, out_channels),
                nn.GELU(),
            ]
        super().__init__(*layers)


class UNet(nn.Module):
    """UNet mapping (batch, in_channels, *grid) to (batch, out_channels, *grid) for 1D or 2D grids.

    Usage::

        model = UNet(dim=2, in_channels=1, out_channels=1, width=32, depth=4)
        y = model(torch.randn(2, 1, 64, 64))   # (2, 1, 64, 64)

    Parameters
    ----------
    dim : int
        Number of spatial dimensions, 1 or 2.
    in_channels, out_channels : int
        Channels of input and output fields.
    width : int, default 32
        Channels at the finest level; level ``l`` has ``width * 2**l`` (PDEBench's UNet: 32 with depth 4).
    depth : int, default 4
        Number of pooling steps. Grid sizes divisible by ``2**depth`` avoid padding (module docstring).
    norm : {"group", "batch", None}, default "group"
        GroupNorm with ``gcd(8, channels)`` groups (independent of the batch, suits tiny training sets),
        BatchNorm, or none (convolutions then get biases).
    padding_mode : {"zeros", "circular", "replicate", "reflect"}, default "zeros"
        Padding of the 3-wide convolutions; "circular" suits periodic data.
    """

    def __init__(
        self,
        dim: int,
        in_channels: int,
        out_channels: int,
        width: int = 32,
        depth: int = 4,
        norm: str | None = "group",
        padding_mode: str = "zeros",
    ):
        super().__init__()
        if dim not in _CONV:
            raise ValueError(f"UNet: dim must be 1 or 2, got {dim!r}")
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("width", width)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"UNet: {name} must be a positive integer, got {value!r}")
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 0:
            raise ValueError(f"UNet: depth must be a non-negative integer, got {depth!r}")
        if norm not in ("group", "batch", None):
            raise ValueError(f"UNet: norm must be 'group', 'batch' or None, got {norm!r}")
        if padding_mode not in ("zeros", "circular", "replicate", "reflect"):
            raise ValueError(f"UNet: unknown padding_mode {padding_mode!r}")
        self.dim, self.depth, self.padding_mode = dim, depth, padding_mode
        channels = [width * 2**level for level in range(depth + 1)]

        self.encoders = nn.ModuleList()
        c_in = in_channels
        for level in range(depth):
            self.encoders.append(ConvBlock(dim, c_in, channels[level], norm, padding_mode))
            c_in = channels[level]
        self.pool = _POOL[dim](2)
        self.bottleneck = ConvBlock(dim, c_in, channels[depth], norm, padding_mode)
        self.upsamplers = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for level in reversed(range(depth)):
            self.upsamplers.append(_CONV_T[dim](channels[level + 1], channels[level], 2, stride=2))
            self.decoders.append(ConvBlock(dim, 2 * channels[level], channels[level], norm, padding_mode))
        self.head = _CONV[dim](channels[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != self.dim + 2:
            raise ValueError(
                f"UNet({self.dim}D): expected input (batch, channels, *grid), got {tuple(x.shape)}"
            )
        grid = x.shape[2:]
        multiple = 2**self.depth
        # F.pad lists pads from the last axis backwards: (last_lo, last_hi, previous_lo, previous_hi, ...)
        pads = [p for size in reversed(grid) for p in (0, -size % multiple)]
        if any(pads):
            x = F.pad(x, pads, mode="circular" if self.padding_mode == "circular" else "replicate")
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for upsample, decoder, skip in zip(self.upsamplers, self.decoders, reversed(skips), strict=True):
            x = decoder(torch.cat([upsample(x), skip], dim=1))
        x = self.head(x)
        return x[(..., *(slice(0, size) for size in grid))]


def _make_norm(norm: str | None, dim: int, channels: int) -> nn.Module:
    if norm == "group":
        return nn.GroupNorm(math.gcd(8, channels), channels)
    if norm == "batch":
        return _BATCH_NORM[dim](channels)
    return nn.Identity()
