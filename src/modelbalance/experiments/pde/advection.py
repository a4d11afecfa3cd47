"""Linear advection ``u_t + beta u_x = 0`` on the periodic unit interval, solved exactly.

Usage::

    import numpy as np
    from modelbalance.experiments.pde.advection import solve_advection

    x = np.arange(128) / 128
    u0 = np.sin(2 * np.pi * x)[None, :]
    u1 = solve_advection(u0, beta=0.4, t_final=2.0)   # = sin(2 pi (x - 0.8))

The exact solution is the shift ``u(x, t) = u0(x - beta t)``. On the grid it is applied in Fourier space
(multiplication by ``exp(-i k beta t)``), which is exact for band-limited ``u0`` (frequencies below the
Nyquist frequency, as for :func:`~modelbalance.experiments.pde.random_fields.random_sine_series`), and is
the trigonometric interpolant of the shifted samples otherwise.
"""

from __future__ import annotations

import numpy as np

from .spectral1d import wavenumbers

__all__ = ["solve_advection"]


def solve_advection(u0: np.ndarray, *, beta: float, t_final: float) -> np.ndarray:
    """Shift ``u0`` (batch, n) or (n,) by ``beta * t_final`` on the periodic grid ``x_j = j / n``; float64.

    Usage: ``u1 = solve_advection(u0, beta=1.0, t_final=0.25)`` (a quarter-period shift).
    """
    u0 = np.asarray(u0, dtype=np.float64)
    if u0.ndim not in (1, 2):
        raise ValueError(f"solve_advection: u0 must have shape (batch, n) or (n,), got {u0.shape}")
    if not np.isfinite(beta) or not np.isfinite(t_final):
        raise ValueError(f"solve_advection: beta and t_final must be finite, got {beta}, {t_final}")
    n = u0.shape[-1]
    if n % 2:
        raise ValueError(f"solve_advection: the grid size must be even, got {n}")
    shift = beta * t_final
    phase = np.exp(-1j * wavenumbers(n) * shift)
    # The Nyquist mode of an even grid is cos(k x) on the grid; its shifted samples are cos(k shift) times it
    # (the sin(k x) part vanishes on the grid), which keeps the result real and whole-cell shifts exact.
    phase[-1] = np.cos(wavenumbers(n)[-1] * shift)
    u_hat = np.fft.rfft(u0, axis=-1) * phase
    return np.fft.irfft(u_hat, n=n, axis=-1)
