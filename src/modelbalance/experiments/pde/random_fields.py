"""Seeded random input fields for the PDE tasks: periodic sine sums (1D) and thresholded Gaussian fields (2D).

Usage::

    import numpy as np
    from modelbalance.experiments.pde.random_fields import random_sine_series, two_phase_coefficient

    rng = np.random.default_rng(0)
    u0 = random_sine_series(rng, n_samples=8, resolution=256)        # (8, 256) periodic initial conditions
    a = two_phase_coefficient(rng, n_samples=8, resolution=64)       # (8, 64, 64) values in {3, 12}

All draws come from the ``numpy.random.Generator`` passed in, in a fixed order, so a seed fixes the fields.
"""

from __future__ import annotations

import numpy as np

__all__ = ["random_sine_series", "gaussian_random_field_2d", "two_phase_coefficient"]


def random_sine_series(
    rng: np.random.Generator,
    *,
    n_samples: int,
    resolution: int,
    n_waves: int = 2,
    max_wavenumber: int = 4,
    amplitude: float = 1.0,
) -> np.ndarray:
    """Random periodic fields ``sum_j A_j sin(2 pi m_j x + phi_j)`` on ``x_i = i / resolution`` (as PDEBench).

    Usage: ``u0 = random_sine_series(np.random.default_rng(0), n_samples=4, resolution=128)``.

    Per sample and wave: integer wavenumber ``m_j`` uniform in ``1..max_wavenumber``, amplitude ``A_j``
    uniform in ``[0, amplitude)``, phase ``phi_j`` uniform in ``[0, 2 pi)``. Sample ``i`` does not depend on
    ``n_samples``. The fields are band-limited (highest frequency ``max_wavenumber``), so they are represented
    exactly on any grid with ``resolution > 2 * max_wavenumber`` and subsampling them to a coarser solver grid
    loses nothing. Returns float64 (n_samples, resolution).
    """
    _check_positive_int("n_samples", n_samples)
    _check_positive_int("n_waves", n_waves)
    _check_positive_int("max_wavenumber", max_wavenumber)
    if resolution <= 2 * max_wavenumber:
        raise ValueError(f"random_sine_series: resolution={resolution} must exceed 2 * max_wavenumber")
    # One block of uniforms, sample-major, so that sample i does not depend on n_samples (prefix property).
    draws = rng.random(size=(n_samples, n_waves, 3))
    m = np.minimum(np.floor(draws[..., 0] * max_wavenumber).astype(np.int64) + 1, max_wavenumber)
    amp = amplitude * draws[..., 1]
    phase = 2.0 * np.pi * draws[..., 2]
    x = np.arange(resolution, dtype=np.float64) / resolution
    # (n_samples, n_waves, resolution) -> sum over waves
    waves = amp[..., None] * np.sin(2.0 * np.pi * m[..., None] * x + phase[..., None])
    return waves.sum(axis=1)


def gaussian_random_field_2d(
    rng: np.random.Generator,
    *,
    n_samples: int,
    resolution: int,
    alpha: float = 2.0,
    tau: float = 3.0,
    n_modes: int | None = None,
) -> np.ndarray:
    """Zero-mean Gaussian random fields on the nodes of a ``resolution x resolution`` grid of the unit square.

    Usage: ``g = gaussian_random_field_2d(np.random.default_rng(0), n_samples=2, resolution=64)``.

    Cosine (Neumann) expansion with the covariance ``(-Laplacian + tau^2)^(-alpha)`` used for the FNO Darcy
    data: ``g(x, y) = sum_{k, l} xi_kl * (pi^2 (k^2 + l^2) + tau^2)^(-alpha / 2) * cos(pi k x) cos(pi l y)``
    with ``xi_kl`` standard normal, ``(k, l) != (0, 0)``, ``0 <= k, l < n_modes`` (default ``resolution``),
    evaluated at ``x_i = i / (resolution - 1)``. Returns float64 (n_samples, resolution, resolution), indexed
    ``[x, y]``.
    """
    _check_positive_int("n_samples", n_samples)
    _check_positive_int("resolution", resolution)
    n_modes = resolution if n_modes is None else n_modes
    _check_positive_int("n_modes", n_modes)
    k = np.arange(n_modes, dtype=np.float64)
    sqrt_eig = (np.pi**2 * (k[:, None] ** 2 + k[None, :] ** 2) + tau**2) ** (-alpha / 2.0)
    sqrt_eig[0, 0] = 0.0
    xi = rng.standard_normal(size=(n_samples, n_modes, n_modes))
    x = np.linspace(0.0, 1.0, resolution)
    basis = np.cos(np.pi * x[:, None] * k[None, :])  # (resolution, n_modes)
    return np.einsum("ik,nkl,jl->nij", basis, xi * sqrt_eig, basis, optimize=True)


def two_phase_coefficient(
    rng: np.random.Generator,
    *,
    n_samples: int,
    resolution: int,
    high: float = 12.0,
    low: float = 3.0,
    alpha: float = 2.0,
    tau: float = 3.0,
) -> np.ndarray:
    """Piecewise-constant coefficients: ``high`` where a Gaussian random field is >= 0, else ``low``.

    Usage: ``a = two_phase_coefficient(np.random.default_rng(0), n_samples=2, resolution=64)``.

    The field is :func:`gaussian_random_field_2d` with ``alpha``, ``tau``; the defaults (12, 3, 2, 3) follow
    the Darcy data of the FNO paper. Returns float64 (n_samples, resolution, resolution).
    """
    if not (high > 0 and low > 0):
        raise ValueError(f"two_phase_coefficient: high and low must be > 0, got {high}, {low}")
    g = gaussian_random_field_2d(rng, n_samples=n_samples, resolution=resolution, alpha=alpha, tau=tau)
    return np.where(g >= 0.0, high, low)


def _check_positive_int(name: str, value) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
