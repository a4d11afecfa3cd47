"""Neural-operator models for the PDE experiments: a plain-torch UNet and a neuraloperator FNO builder.

Usage::

    from modelbalance.experiments.models import UNet, build_fno

    unet = UNet(dim=1, in_channels=1, out_channels=1, width=32, depth=4)
    fno = build_fno(dim=2, in_channels=1, out_channels=1, modes=12, width=32, n_layers=4)

Both map ``(batch, in_channels, *grid)`` to ``(batch, out_channels, *grid)``. neuraloperator is imported only
when :func:`build_fno` is called.
"""

from .fno import build_fno, fno_n_modes
from .unet import UNet

__all__ = ["UNet", "build_fno", "fno_n_modes"]
