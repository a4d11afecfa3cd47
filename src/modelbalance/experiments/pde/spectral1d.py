"""Periodic 1D pseudo-spectral machinery: wavenumbers, Fourier resampling and a batched ETDRK4 integrator.

Usage::

    import numpy as np
    from modelbalance.experiments.pde.spectral1d import etdrk4, wavenumbers

    k = wavenumbers(128)                                  # angular wavenumbers of rfft bins on [0, 1)
    u0 = np.sin(2 * np.pi * np.arange(128) / 128)[None]   # (batch, n)
    u1 = etdrk4(u0, linear=-0.1 * k**2, nonlinear=lambda u_hat: 0 * u_hat, t_final=1.0, n_steps=10)

The domain is always the unit interval [0, 1) with ``n`` equispaced points ``x_j = j / n``. Arrays carry the
batch in their first axis and space in their last; every function here works on all samples at once.

ETDRK4 is the exponential time-differencing fourth-order Runge-Kutta scheme of Cox and Matthews (2002) with
the coefficients evaluated by contour integrals as proposed by Kassam and Trefethen (2005), which avoids the
cancellation error of the closed-form coefficients for small ``h * L``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = [
    "wavenumbers",
    "derivative_wavenumbers",
    "dealias_mask",
    "fourier_upsample",
    "etdrk4_coefficients",
    "etdrk4",
    "spectral_tail",
    "spectral_scale",
]

# Number of points on the circle around each h*L used to evaluate the phi-functions (Kassam & Trefethen use 32
# on a half circle for real L; 64 on the full circle also covers complex L).
_CONTOUR_POINTS = 64


def wavenumbers(n: int) -> np.ndarray:
    """Angular wavenumbers ``2 pi m`` of the ``n // 2 + 1`` rfft bins of an ``n``-point grid on [0, 1).

    Usage: ``ik = 1j * wavenumbers(64)`` is the spectral first derivative.
    The Nyquist bin of an even grid is set to 0 for odd derivatives by :func:`derivative_wavenumbers`.
    """
    _check_grid_size(n)
    return 2.0 * np.pi * np.arange(n // 2 + 1, dtype=np.float64)


def derivative_wavenumbers(n: int) -> np.ndarray:
    """Like :func:`wavenumbers` but with the Nyquist bin zeroed, as needed for odd derivatives of real data.

    Usage: ``u_x = np.fft.irfft(1j * derivative_wavenumbers(n) * np.fft.rfft(u), n)``.
    """
    k = wavenumbers(n)
    if n % 2 == 0:
        k[-1] = 0.0
    return k


def dealias_mask(n: int) -> np.ndarray:
    """Boolean mask of rfft bins kept by the 2/3 rule: integer wavenumber ``m`` with ``m <= n / 3``.

    Usage: ``nonlinear_hat *= dealias_mask(n)``.
    """
    _check_grid_size(n)
    m = np.arange(n // 2 + 1)
    return m <= n / 3.0


def fourier_upsample(u: np.ndarray, n_out: int) -> np.ndarray:
    """Trigonometric (band-limited) interpolation of periodic samples along the last axis to ``n_out`` points.

    Usage: ``fine = fourier_upsample(coarse, 1024)``; ``fine[..., ::1024 // coarse.shape[-1]]`` equals
    ``coarse``.

    Exact for trigonometric polynomials whose frequencies lie below the coarse Nyquist frequency. The coarse
    Nyquist coefficient (ambiguous between +m and -m) is split evenly between the two.
    """
    u = np.asarray(u)
    n_in = u.shape[-1]
    _check_grid_size(n_in)
    _check_grid_size(n_out)
    if n_out < n_in:
        raise ValueError(
            f"fourier_upsample: n_out={n_out} is smaller than the input size {n_in}; subsample instead"
        )
    if n_out == n_in:
        return u.copy()
    u_hat = np.fft.rfft(u, axis=-1)
    padded = np.zeros(u.shape[:-1] + (n_out // 2 + 1,), dtype=u_hat.dtype)
    padded[..., : n_in // 2 + 1] = u_hat
    if n_in % 2 == 0:
        padded[..., n_in // 2] *= 0.5
    return np.fft.irfft(padded, n=n_out, axis=-1) * (n_out / n_in)


def spectral_tail(
    u: np.ndarray, fraction: float = 0.2, scale: np.ndarray | float | None = None
) -> np.ndarray:
    """Per-sample size of the highest resolved Fourier modes of ``u`` (batch, n), relative to ``scale``.

    Usage: ``if spectral_tail(u, scale=spectral_scale(u0)).max() > 1e-8: ...`` (the grid under-resolves
    ``u``).

    Returns ``max |u_hat_m|`` over the top ``fraction`` of the 2/3-dealiased band (``m <= n / 3``) divided by
    ``scale`` (default: ``max |u_hat_m|`` over ``m >= 1`` of ``u`` itself; pass the initial condition's
    :func:`spectral_scale` for solutions that decay to round-off). Values near 1e-10 mean the grid resolves
    the field to about that relative accuracy; 1e-4 or above means it is under-resolved.
    """
    u = np.asarray(u, dtype=np.float64)
    n = u.shape[-1]
    m_max = int(n // 3)
    m_lo = max(1, int(round(m_max * (1.0 - fraction))))
    tail = np.abs(np.fft.rfft(u, axis=-1))[..., m_lo : m_max + 1].max(axis=-1)
    scale = spectral_scale(u) if scale is None else np.asarray(scale, dtype=np.float64)
    return np.where(scale > 0, tail / np.where(scale > 0, scale, 1.0), 0.0)


def spectral_scale(u: np.ndarray) -> np.ndarray:
    """Per-sample largest non-mean rfft magnitude of ``u`` (batch, n): a reference for :func:`spectral_tail`.

    Usage: ``scale = spectral_scale(u0)``.
    """
    u = np.asarray(u, dtype=np.float64)
    return np.abs(np.fft.rfft(u, axis=-1))[..., 1:].max(axis=-1)


def etdrk4_coefficients(linear: np.ndarray, dt: float) -> dict[str, np.ndarray]:
    """ETDRK4 coefficient arrays for the diagonal linear operator ``linear`` (one value per Fourier bin).

    Usage: ``c = etdrk4_coefficients(-nu * wavenumbers(n) ** 2, dt)``; keys ``E, E2, Q, f1, f2, f3``.

    The phi-functions are averaged over ``_CONTOUR_POINTS`` points on the unit circle around each ``dt * L``
    (Kassam & Trefethen 2005), which is accurate also where ``dt * L`` is near zero.
    """
    if not np.isfinite(dt) or dt <= 0:
        raise ValueError(f"etdrk4_coefficients: dt must be a positive finite number, got {dt}")
    hl = dt * np.asarray(linear)
    roots = np.exp(1j * np.pi * (np.arange(1, _CONTOUR_POINTS + 1) - 0.5) / (_CONTOUR_POINTS / 2))
    r = hl[:, None] + roots[None, :]
    er = np.exp(r)
    q = dt * np.mean((np.exp(r / 2) - 1.0) / r, axis=1)
    f1 = dt * np.mean((-4.0 - r + er * (4.0 - 3.0 * r + r**2)) / r**3, axis=1)
    f2 = dt * np.mean((2.0 + r + er * (r - 2.0)) / r**3, axis=1)
    f3 = dt * np.mean((-4.0 - 3.0 * r - r**2 + er * (4.0 - r)) / r**3, axis=1)
    if np.isrealobj(hl):
        q, f1, f2, f3 = q.real, f1.real, f2.real, f3.real
    return {"E": np.exp(hl), "E2": np.exp(hl / 2), "Q": q, "f1": f1, "f2": f2, "f3": f3}


def etdrk4(
    u0: np.ndarray,
    *,
    linear: np.ndarray,
    nonlinear: Callable[[np.ndarray], np.ndarray],
    t_final: float,
    n_steps: int,
) -> np.ndarray:
    """Integrate ``u_t = L u + N(u)`` in Fourier space from ``u0`` (batch, n) to ``t_final`` in ``n_steps``.

    Usage::

        k = wavenumbers(64)
        u1 = etdrk4(u0, linear=-nu * k**2, nonlinear=burgers_term, t_final=0.5, n_steps=200)

    Parameters
    ----------
    u0 : array (batch, n)
        Real initial values on the grid ``x_j = j / n``.
    linear : array (n // 2 + 1,)
        The diagonal linear operator ``L`` in rfft space.
    nonlinear : callable
        Maps the rfft coefficients ``u_hat`` (batch, n // 2 + 1) to the rfft coefficients of ``N(u)``; it
        should apply any dealiasing itself.
    t_final, n_steps :
        Final time and number of equal steps.

    Returns
    -------
    array (batch, n), float64: the solution at ``t_final``.
    """
    u0 = np.asarray(u0, dtype=np.float64)
    if u0.ndim != 2:
        raise ValueError(f"etdrk4: u0 must have shape (batch, n), got {u0.shape}")
    n = u0.shape[-1]
    if np.shape(linear) != (n // 2 + 1,):
        raise ValueError(f"etdrk4: linear must have shape ({n // 2 + 1},), got {np.shape(linear)}")
    if not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"etdrk4: n_steps must be a positive integer, got {n_steps!r}")
    if t_final < 0:
        raise ValueError(f"etdrk4: t_final must be >= 0, got {t_final}")
    v = np.fft.rfft(u0, axis=-1)
    if t_final == 0:
        return u0.copy()
    c = etdrk4_coefficients(linear, t_final / n_steps)
    e, e2, q, f1, f2, f3 = c["E"], c["E2"], c["Q"], c["f1"], c["f2"], c["f3"]
    for _ in range(int(n_steps)):
        nv = nonlinear(v)
        a = e2 * v + q * nv
        na = nonlinear(a)
        b = e2 * v + q * na
        nb = nonlinear(b)
        cc = e2 * a + q * (2.0 * nb - nv)
        nc = nonlinear(cc)
        v = e * v + f1 * nv + 2.0 * f2 * (na + nb) + f3 * nc
    return np.fft.irfft(v, n=n, axis=-1)


def _check_grid_size(n: int) -> None:
    if not isinstance(n, (int, np.integer)) or n < 4 or n % 2:
        raise ValueError(f"grid size must be an even integer >= 4, got {n!r}")
