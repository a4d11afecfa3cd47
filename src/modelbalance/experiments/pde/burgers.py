"""Viscous Burgers equation ``u_t + u u_x = nu u_xx`` on the periodic unit interval, and its exact solutions.

Usage::

    import numpy as np
    from modelbalance.experiments.pde.burgers import solve_burgers

    x = np.arange(256) / 256
    u0 = np.sin(2 * np.pi * x)[None, :]             # (batch, n)
    u1 = solve_burgers(u0, nu=0.01, t_final=0.5)    # (batch, n) at t = 0.5

The solver is pseudo-spectral in space (the nonlinearity ``-(u^2)_x / 2`` is formed on the grid and dealiased
with the 2/3 rule) and ETDRK4 in time (the diffusion is integrated exactly). It is checked against the
Cole-Hopf exact solution :func:`cole_hopf_solution` in the tests (max error about 1e-9 at 128 points).
"""

from __future__ import annotations

import math

import numpy as np

from .spectral1d import dealias_mask, derivative_wavenumbers, etdrk4, fourier_upsample, wavenumbers

__all__ = ["solve_burgers", "burgers_time_step", "cole_hopf_solution"]

# Advective Courant number dt * max|u| / dx used when no step is given. ETDRK4 integrates the diffusion
# exactly, so only the advection limits the step; 0.4 keeps dt * max|u| * k_max (dealiased) near 0.85, well
# inside the stable region, and the time error far below the spatial error.
DEFAULT_COURANT = 0.4


def burgers_time_step(u0: np.ndarray, courant: float = DEFAULT_COURANT) -> float:
    """The time step ``courant * dx / max|u0|`` (``dx = 1 / n``) that :func:`solve_burgers` uses by default.

    Usage: ``dt = burgers_time_step(all_initial_conditions)``, then pass ``dt`` to every chunk's solve so that
    results do not depend on how samples are chunked. ``max|u|`` never grows under viscous Burgers (maximum
    principle), so the initial value bounds the whole run.
    """
    u0 = np.asarray(u0)
    u_max = float(np.max(np.abs(u0))) if u0.size else 0.0
    dx = 1.0 / u0.shape[-1]
    return courant * dx / max(u_max, 1e-12)


def solve_burgers(
    u0: np.ndarray,
    *,
    nu: float,
    t_final: float,
    dt: float | None = None,
    solver_resolution: int | None = None,
) -> np.ndarray:
    """Solve viscous Burgers from ``u0`` (batch, n) to ``t_final``; returns (batch, n) float64.

    Usage: ``u1 = solve_burgers(u0, nu=0.01, t_final=1.0)``.

    Parameters
    ----------
    u0 : array (batch, n) or (n,)
        Initial values at ``x_j = j / n`` on [0, 1); ``n`` even.
    nu : float
        Viscosity, > 0.
    t_final : float
        Final time, >= 0.
    dt : float, optional
        Largest allowed time step; the step used is ``t_final / ceil(t_final / dt)``. Default
        :func:`burgers_time_step` of ``u0`` on the solver grid.
    solver_resolution : int, optional
        Solve on this many points and interpolate spectrally back to ``n`` (``u0`` is first sampled at every
        ``n // solver_resolution``-th point, which is exact for band-limited ``u0``). Much faster, and exact
        to the extent that the solution is resolved on the coarse grid: check with
        :func:`~modelbalance.experiments.pde.spectral1d.spectral_tail`. Must divide ``n``.
    """
    u0 = np.asarray(u0, dtype=np.float64)
    squeeze = u0.ndim == 1
    u0 = np.atleast_2d(u0)
    if u0.ndim != 2:
        raise ValueError(f"solve_burgers: u0 must have shape (batch, n), got {u0.shape}")
    if not nu > 0:
        raise ValueError(f"solve_burgers: nu must be > 0, got {nu}")
    if not t_final >= 0:
        raise ValueError(f"solve_burgers: t_final must be >= 0, got {t_final}")
    n = u0.shape[-1]
    n_solve = n if solver_resolution is None else int(solver_resolution)
    if n_solve > n or n % n_solve:
        raise ValueError(
            f"solve_burgers: solver_resolution={solver_resolution} must divide the grid size {n}"
        )
    u_solve = u0[:, :: n // n_solve]

    if dt is None:
        dt = burgers_time_step(u_solve)
    n_steps = max(1, math.ceil(t_final / dt - 1e-9))

    k = wavenumbers(n_solve)
    # -(u^2)_x / 2 in Fourier space, with the 2/3-rule mask folded into the derivative factor.
    half_ik_masked = -0.5j * derivative_wavenumbers(n_solve) * dealias_mask(n_solve)

    def advection(u_hat: np.ndarray) -> np.ndarray:
        u = np.fft.irfft(u_hat, n=n_solve, axis=-1)
        return half_ik_masked * np.fft.rfft(u * u, axis=-1)

    u1 = etdrk4(u_solve, linear=-nu * k**2, nonlinear=advection, t_final=t_final, n_steps=n_steps)
    if n_solve != n:
        u1 = fourier_upsample(u1, n)
    return u1[0] if squeeze else u1


def cole_hopf_solution(
    x: np.ndarray, t: float, *, nu: float, offset: float, amplitudes, wavenumbers_int, phases
) -> np.ndarray:
    """Exact Burgers solution ``u = -2 nu phi_x / phi`` from a heat-equation solution ``phi`` (Cole-Hopf).

    Usage::

        x = np.arange(128) / 128
        waves = dict(offset=1.0, amplitudes=[0.5], wavenumbers_int=[1], phases=[0.0])
        u0 = cole_hopf_solution(x, 0.0, nu=0.05, **waves)

    ``phi(x, t) = offset + sum_j A_j exp(-nu (2 pi m_j)^2 t) cos(2 pi m_j x + theta_j)`` solves
    ``phi_t = nu phi_xx``; ``offset > sum |A_j|`` keeps ``phi > 0`` so that ``u`` is smooth and periodic.
    """
    a = np.asarray(amplitudes, dtype=np.float64)
    m = np.asarray(wavenumbers_int, dtype=np.float64)
    theta = np.asarray(phases, dtype=np.float64)
    if not offset > np.abs(a).sum():
        raise ValueError(
            "cole_hopf_solution: offset must exceed sum(|amplitudes|) so that phi stays positive"
        )
    x = np.asarray(x, dtype=np.float64)[..., None]
    kk = 2.0 * np.pi * m
    decay = a * np.exp(-nu * kk**2 * t)
    phi = offset + np.sum(decay * np.cos(kk * x + theta), axis=-1)
    phi_x = -np.sum(decay * kk * np.sin(kk * x + theta), axis=-1)
    return -2.0 * nu * phi_x / phi
