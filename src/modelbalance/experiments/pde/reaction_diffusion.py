"""1D reaction-diffusion (Fisher-KPP) ``u_t = nu u_xx + rho u (1 - u)`` on the periodic unit interval.

Usage::

    import numpy as np
    from modelbalance.experiments.pde.reaction_diffusion import solve_reaction_diffusion

    x = np.arange(128) / 128
    u0 = (0.5 + 0.4 * np.sin(2 * np.pi * x))[None, :]
    u1 = solve_reaction_diffusion(u0, nu=0.005, rho=1.0, t_final=1.0)

This is PDEBench's 1D "ReacDiff" equation. Pseudo-spectral in space (2/3-rule dealiasing of the quadratic
term), ETDRK4 in time with the diffusion integrated exactly. Tests check it against two exact solutions: the
logistic ODE for constant data and the heat equation for ``rho = 0``.
"""

from __future__ import annotations

import math

import numpy as np

from .spectral1d import dealias_mask, etdrk4, fourier_upsample, wavenumbers

__all__ = ["solve_reaction_diffusion", "reaction_diffusion_time_step"]


def reaction_diffusion_time_step(rho: float) -> float:
    """Default time step ``0.05 / max(rho, 1)``: the reaction rate sets the only explicit time scale.

    Usage: ``dt = reaction_diffusion_time_step(5.0)``.
    """
    return 0.05 / max(float(rho), 1.0)


def solve_reaction_diffusion(
    u0: np.ndarray,
    *,
    nu: float,
    rho: float,
    t_final: float,
    dt: float | None = None,
    solver_resolution: int | None = None,
) -> np.ndarray:
    """Solve ``u_t = nu u_xx + rho u (1 - u)`` from ``u0`` (batch, n) or (n,) to ``t_final``; float64.

    Usage: ``u1 = solve_reaction_diffusion(u0, nu=0.005, rho=1.0, t_final=1.0)``.

    ``dt`` is the largest allowed step (default :func:`reaction_diffusion_time_step`); ``solver_resolution``
    (dividing ``n``) solves on a coarser grid and interpolates spectrally, as in
    :func:`~modelbalance.experiments.pde.burgers.solve_burgers`.
    """
    u0 = np.asarray(u0, dtype=np.float64)
    squeeze = u0.ndim == 1
    u0 = np.atleast_2d(u0)
    if u0.ndim != 2:
        raise ValueError(f"solve_reaction_diffusion: u0 must have shape (batch, n), got {u0.shape}")
    if not nu >= 0 or not rho >= 0 or not t_final >= 0:
        raise ValueError(
            f"solve_reaction_diffusion: nu, rho, t_final must be >= 0, got {nu}, {rho}, {t_final}"
        )
    n = u0.shape[-1]
    n_solve = n if solver_resolution is None else int(solver_resolution)
    if n_solve > n or n % n_solve:
        raise ValueError(
            f"solve_reaction_diffusion: solver_resolution={solver_resolution} must divide the grid size {n}"
        )
    u_solve = u0[:, :: n // n_solve]
    dt = reaction_diffusion_time_step(rho) if dt is None else dt
    n_steps = max(1, math.ceil(t_final / dt - 1e-9))
    mask = dealias_mask(n_solve)

    def reaction(u_hat: np.ndarray) -> np.ndarray:
        u = np.fft.irfft(u_hat, n=n_solve, axis=-1)
        return mask * np.fft.rfft(rho * u * (1.0 - u), axis=-1)

    k = wavenumbers(n_solve)
    u1 = etdrk4(u_solve, linear=-nu * k**2, nonlinear=reaction, t_final=t_final, n_steps=n_steps)
    if n_solve != n:
        u1 = fourier_upsample(u1, n)
    return u1[0] if squeeze else u1
