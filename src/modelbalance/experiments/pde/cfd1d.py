"""1D compressible Navier-Stokes (PDEBench's "1D CFD"): a batched second-order finite-volume solver, PDEBench-style
random initial conditions and the exact Riemann solution used to verify the scheme.

Usage::

    import numpy as np
    from modelbalance.experiments.pde.cfd1d import rand_initial_conditions, solve_cfd1d

    rho, v, p = rand_initial_conditions(0, 4, resolution=128)                  # each (4, 128)
    times = np.linspace(0.0, 1.0, 21)
    traj = solve_cfd1d(rho, v, p, times=times, eta=0.1, zeta=0.1)                     # (4, 3, 21, 128)
    density, velocity, pressure = traj[:, 0], traj[:, 1], traj[:, 2]

Equations (PDEBench, ideal gas with ``gamma = 5/3``)::

    rho_t + (rho v)_x = 0
    (rho v)_t + (rho v^2 + p - sigma)_x = 0
    E_t + ((E + p) v - sigma v)_x = 0,       E = p / (gamma - 1) + rho v^2 / 2
    sigma = mu v_x,   mu = (zeta + 4 eta / 3) * rho   ("kinematic", PDEBench's generator)
                      mu = zeta + 4 eta / 3           ("dynamic", the textbook form)

``eta`` and ``zeta`` are the shear and bulk viscosities. PDEBench's data generator multiplies them by the
local density (its source comments: "the viscosity is eta*D0, so that dv/dt = eta*d^2v/dx^2"), so they act as
kinematic viscosities; ``viscosity="kinematic"`` (the default) does the same, ``"dynamic"`` uses them as
dynamic viscosities. There is no heat conduction, as in PDEBench.

Scheme: cell averages of (rho, rho v, E) on ``n`` uniform cells; MUSCL reconstruction of the primitive
variables (rho, v, p) with a slope limiter (van Leer by default; minmod and MC too), HLLC Riemann fluxes
(Toro, "Riemann Solvers and Numerical Methods for Fluid Dynamics", 3rd ed., section 10.4, with Davis wave-speed
estimates), viscous fluxes by central differences at the faces, and SSP Runge-Kutta time stepping (Heun's
SSP-RK2 by default, or Shu-Osher SSP-RK3). The time step of each sample is its own::

    dt = 1 / (max(|v| + c) / (cfl dx) + 2 nu_max / (viscous_cfl dx^2)),     nu_max = max(mu / rho)

(the advective CFL condition, default ``cfl`` 0.4, and the explicit-diffusion limit, default safety
``viscous_cfl`` 0.8, combined), shortened to land exactly on every output time. Per-sample steps make a
sample's trajectory independent of which other samples share its batch; samples that need fewer steps drop
out of the batch (work follows the average, not the slowest sample).
The limited reconstruction keeps interface densities and pressures between neighbouring cell values, so
they stay positive whenever the cell values are. Conservation: the update is in flux form, so on the periodic
domain total mass, momentum and energy change only by round-off (the tests check about 1e-15 relative).

Boundaries: ``"periodic"`` (PDEBench's 1D CFD "periodic" sets) or ``"transmissive"`` (zero-gradient ghost
cells, for shock tubes; PDEBench calls it "trans").

Failures: a non-finite value or a non-positive density or pressure raises :class:`CFDSolverError` naming the
sample, its time step and the time; unphysical inputs (non-positive density or pressure in the initial state,
``cfl`` outside (0, 1], negative viscosity) raise ``ValueError``.

Verification (``tests/experiments/test_cfd1d.py``): the Sod shock tube against :func:`riemann_exact`
(first-order L1 convergence, as expected with discontinuities), conservation to round-off, second-order
convergence of a smooth viscous flow, positivity and the input checks.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "GAMMA",
    "CFDSolverError",
    "solve_cfd1d",
    "rand_initial_conditions",
    "riemann_exact",
    "riemann_star",
    "primitive_to_conservative",
    "conservative_to_primitive",
    "cell_centers",
]

GAMMA = 5.0 / 3.0
LIMITERS = ("vanleer", "minmod", "mc")
BOUNDARIES = ("periodic", "transmissive")
VISCOSITY_MODELS = ("kinematic", "dynamic")
TIME_STEPPERS = ("rk2", "rk3")
_GHOST = 2
_MIN_DT = 1e-12  # a time step below this (relative to the output interval) means the flow has blown up


class CFDSolverError(RuntimeError):
    """The solver met a non-finite value or a non-positive density / pressure.

    Attributes ``sample`` (index in the caller's numbering), ``step`` (that sample's time-step count) and
    ``time`` say where.
    """

    def __init__(self, message: str, *, sample: int, step: int, time: float):
        super().__init__(message)
        self.sample, self.step, self.time = sample, step, time


# ------------------------------------------------------------------------------------------------ variables


def cell_centers(resolution: int, *, x_left: float = -1.0, length: float = 2.0) -> np.ndarray:
    """Cell centres ``x_left + (j + 1/2) * length / resolution``, ``j = 0 .. resolution - 1``.

    Usage: ``x = cell_centers(128)`` (PDEBench's domain [-1, 1]).
    """
    return x_left + (np.arange(resolution) + 0.5) * (length / resolution)


def primitive_to_conservative(rho, v, p, gamma: float = GAMMA) -> np.ndarray:
    """(rho, v, p) arrays (batch, n) -> conservative state (batch, 3, n) = (rho, rho v, E).

    Usage: ``u = primitive_to_conservative(rho, v, p)``.
    """
    rho, v, p = (np.asarray(a, dtype=np.float64) for a in (rho, v, p))
    return np.stack([rho, rho * v, p / (gamma - 1.0) + 0.5 * rho * v * v], axis=-2)


def conservative_to_primitive(
    u: np.ndarray, gamma: float = GAMMA
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Conservative state (..., 3, n) -> (rho, v, p), each (..., n).

    Usage: ``rho, v, p = conservative_to_primitive(u)``.
    """
    rho, mom, energy = u[..., 0, :], u[..., 1, :], u[..., 2, :]
    v = mom / rho
    return rho, v, (gamma - 1.0) * (energy - 0.5 * mom * v)


# ------------------------------------------------------------------------------------------------ solver


def solve_cfd1d(
    density,
    velocity,
    pressure,
    *,
    times,
    eta: float,
    zeta: float,
    gamma: float = GAMMA,
    length: float = 2.0,
    boundary: str = "periodic",
    cfl: float = 0.4,
    viscous_cfl: float = 0.8,
    limiter: str = "vanleer",
    viscosity: str = "kinematic",
    time_stepper: str = "rk2",
    first_sample: int = 0,
    max_steps: int = 10_000_000,
) -> np.ndarray:
    """Evolve initial states to the output ``times``; returns primitives (batch, 3, len(times), n) float64.

    Usage: ``traj = solve_cfd1d(rho0, v0, p0, times=np.linspace(0, 1, 21), eta=0.1, zeta=0.1)``; channel 0 is
    the density, 1 the velocity, 2 the pressure; ``traj[:, :, 0]`` is the initial state.

    Parameters
    ----------
    density, velocity, pressure : arrays (batch, n) or (n,)
        Initial cell averages (density and pressure must be positive and finite).
    times : 1D array
        Non-decreasing output times starting at 0 (PDEBench: 101 times on [0, 1]).
    eta, zeta : float
        Shear and bulk viscosity (>= 0; 0 and 0 give the Euler equations).
    gamma : float
        Ratio of specific heats (> 1).
    length : float
        Domain length; the grid spacing is ``length / n``.
    boundary : {"periodic", "transmissive"}
    cfl : float in (0, 1]
        Advective Courant number of the time step (module docstring).
    viscous_cfl : float in (0, 1]
        Safety factor on the explicit-diffusion limit ``dx^2 / (2 nu_max)`` (module docstring).
    limiter : {"vanleer", "minmod", "mc"}
    viscosity : {"kinematic", "dynamic"}
        How ``eta`` and ``zeta`` enter (module docstring).
    time_stepper : {"rk2", "rk3"}
    first_sample : int
        Index of the batch's first sample in the caller's numbering (only for error messages).
    max_steps : int
        Give up (CFDSolverError) when a sample needs more steps than this.
    """
    rho0, v0, p0 = _batched_initial_state(density, velocity, pressure)
    times = np.asarray(times, dtype=np.float64)
    check_parameters(
        times,
        eta=eta,
        zeta=zeta,
        gamma=gamma,
        length=length,
        boundary=boundary,
        cfl=cfl,
        viscous_cfl=viscous_cfl,
        limiter=limiter,
        viscosity=viscosity,
        time_stepper=time_stepper,
    )
    for name, values in (("density", rho0), ("pressure", p0)):
        bad = np.flatnonzero(~(np.isfinite(values).all(axis=1) & (values > 0).all(axis=1)))
        if bad.size:
            raise ValueError(
                f"cfd1d: the initial {name} must be positive and finite; sample {first_sample + int(bad[0])} "
                f"has min {float(np.min(values[bad[0]])):.3g}"
            )
    bad = np.flatnonzero(~np.isfinite(v0).all(axis=1))
    if bad.size:
        raise ValueError(f"cfd1d: the initial velocity of sample {first_sample + int(bad[0])} is not finite")

    batch, n = rho0.shape
    dx = length / n
    rhs = _RightHandSide(
        n=n, dx=dx, gamma=gamma, eta=eta, zeta=zeta, boundary=boundary, limiter=limiter, viscosity=viscosity
    )
    stepper = _ssp_rk2 if time_stepper == "rk2" else _ssp_rk3
    u = primitive_to_conservative(rho0, v0, p0, gamma)  # (batch, 3, n)
    out = np.empty((batch, 3, len(times), n), dtype=np.float64)
    out[:, 0, 0], out[:, 1, 0], out[:, 2, 0] = rho0, v0, p0
    t = np.full(batch, times[0])
    steps = np.zeros(batch, dtype=np.int64)
    for k in range(1, len(times)):
        target = times[k]
        interval = max(target - times[k - 1], 1e-300)
        active = np.flatnonzero(t < target)
        while active.size:
            u_act = u[active]
            dt_stable = rhs.stable_dt(u_act, cfl, viscous_cfl)
            remaining = target - t[active]
            hit = dt_stable >= remaining
            dt = np.where(hit, remaining, dt_stable)
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
                u_new = stepper(rhs, u_act, dt[:, None, None])
            steps[active] += 1
            _check_state(u_new, gamma, active, steps, t, first_sample, dt_stable, interval, max_steps)
            u[active] = u_new
            t[active] = np.where(hit, target, t[active] + dt)
            active = active[~hit]
        rho, v, p = conservative_to_primitive(u, gamma)
        out[:, 0, k], out[:, 1, k], out[:, 2, k] = rho, v, p
    return out


class _RightHandSide:
    """The semi-discrete operator L(U) = -(F_{j+1/2} - F_{j-1/2}) / dx on a batch (batch, 3, n)."""

    def __init__(self, *, n, dx, gamma, eta, zeta, boundary, limiter, viscosity):
        self.n, self.dx, self.gamma = n, dx, gamma
        self.mu = zeta + 4.0 * eta / 3.0
        self.periodic = boundary == "periodic"
        self.limiter = _LIMITER_FUNCTIONS[limiter]
        self.kinematic = viscosity == "kinematic"

    def stable_dt(self, u: np.ndarray, cfl: float, viscous_cfl: float) -> np.ndarray:
        """Per-sample step ``1 / (max(|v| + c) / (cfl dx) + 2 nu_max / (viscous_cfl dx^2))``, shape (batch,)."""
        rho, v, p = conservative_to_primitive(u, self.gamma)
        with np.errstate(invalid="ignore"):
            speed = np.abs(v) + np.sqrt(self.gamma * np.maximum(p, 0.0) / rho)
        rate = speed.max(axis=1) / (cfl * self.dx)
        if self.mu > 0:
            nu = self.mu if self.kinematic else self.mu / rho.min(axis=1)
            rate = rate + 2.0 * nu / (viscous_cfl * self.dx**2)
        return 1.0 / rate

    def _pad(self, w: np.ndarray) -> np.ndarray:
        """Add ghost cells along the last axis (periodic wrap or zero-gradient copies)."""
        g = _GHOST
        if self.periodic:
            return np.concatenate([w[..., -g:], w, w[..., :g]], axis=-1)
        return np.concatenate(
            [np.repeat(w[..., :1], g, axis=-1), w, np.repeat(w[..., -1:], g, axis=-1)], axis=-1
        )

    def __call__(self, u: np.ndarray) -> np.ndarray:
        gamma = self.gamma
        rho, v, p = conservative_to_primitive(u, gamma)
        w = self._pad(np.stack([rho, v, p], axis=1))  # (batch, 3, n + 4)
        centre = w[..., 1:-1]  # cells -1 .. n
        slope = self.limiter(centre - w[..., :-2], w[..., 2:] - centre)
        w_left = (centre + 0.5 * slope)[..., :-1]  # state left of faces -1/2 .. n-1/2
        w_right = (centre - 0.5 * slope)[..., 1:]  # state right of those faces
        flux = _hllc_flux(w_left, w_right, gamma)  # (batch, 3, n + 1)
        if self.mu > 0:
            v_c = centre[:, 1]
            grad_v = (v_c[:, 1:] - v_c[:, :-1]) / self.dx
            v_face = 0.5 * (v_c[:, 1:] + v_c[:, :-1])
            mu = self.mu * 0.5 * (centre[:, 0, 1:] + centre[:, 0, :-1]) if self.kinematic else self.mu
            stress = mu * grad_v
            flux[:, 1] -= stress
            flux[:, 2] -= stress * v_face
        return -(flux[..., 1:] - flux[..., :-1]) / self.dx


def _hllc_flux(wl: np.ndarray, wr: np.ndarray, gamma: float) -> np.ndarray:
    """HLLC flux (Toro 10.4) between primitive states (batch, 3, m) on each side; Davis wave speeds."""
    rl, ul, pl = wl[:, 0], wl[:, 1], wl[:, 2]
    rr, ur, pr = wr[:, 0], wr[:, 1], wr[:, 2]
    cl = np.sqrt(gamma * pl / rl)
    cr = np.sqrt(gamma * pr / rr)
    s_l = np.minimum(ul - cl, ur - cr)
    s_r = np.maximum(ul + cl, ur + cr)
    el = pl / (gamma - 1.0) + 0.5 * rl * ul * ul
    er = pr / (gamma - 1.0) + 0.5 * rr * ur * ur
    ml, mr = rl * (s_l - ul), rr * (s_r - ur)  # mass fluxes through the outer waves (ml < 0 < mr)
    s_star = (pr - pl + ul * ml - ur * mr) / (ml - mr)

    def side(r, u, p, e, s, m):
        flux = np.stack([r * u, r * u * u + p, (e + p) * u], axis=1)
        state = np.stack([r, r * u, e], axis=1)
        scale = m / (s - s_star)  # rho_K (S_K - u_K) / (S_K - S*)
        star = np.stack([scale, scale * s_star, scale * (e / r + (s_star - u) * (s_star + p / m))], axis=1)
        return flux, flux + s[:, None] * (star - state)

    f_l, f_star_l = side(rl, ul, pl, el, s_l, ml)
    f_r, f_star_r = side(rr, ur, pr, er, s_r, mr)
    s_l, s_r, s_star = s_l[:, None], s_r[:, None], s_star[:, None]
    return np.where(s_l >= 0.0, f_l, np.where(s_star >= 0.0, f_star_l, np.where(s_r > 0.0, f_star_r, f_r)))


def _minmod(a, b):
    return np.where(a * b > 0.0, np.sign(a) * np.minimum(np.abs(a), np.abs(b)), 0.0)


def _vanleer(a, b):
    ab = a * b
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ab > 0.0, 2.0 * ab / (a + b), 0.0)


def _mc(a, b):
    limited = np.minimum(np.minimum(2.0 * np.abs(a), 2.0 * np.abs(b)), 0.5 * np.abs(a + b))
    return np.where(a * b > 0.0, np.sign(a) * limited, 0.0)


_LIMITER_FUNCTIONS = {"vanleer": _vanleer, "minmod": _minmod, "mc": _mc}


def _ssp_rk2(rhs: _RightHandSide, u: np.ndarray, dt: np.ndarray) -> np.ndarray:
    u1 = u + dt * rhs(u)
    return 0.5 * u + 0.5 * (u1 + dt * rhs(u1))


def _ssp_rk3(rhs: _RightHandSide, u: np.ndarray, dt: np.ndarray) -> np.ndarray:
    u1 = u + dt * rhs(u)
    u2 = 0.75 * u + 0.25 * (u1 + dt * rhs(u1))
    return u / 3.0 + (2.0 / 3.0) * (u2 + dt * rhs(u2))


def _check_state(u, gamma, active, steps, t, first_sample, dt_stable, interval, max_steps) -> None:
    rho, _, p = conservative_to_primitive(u, gamma)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(u).all(axis=(1, 2)) & (rho > 0).all(axis=1) & (p > 0).all(axis=1)
    ok &= np.isfinite(dt_stable) & (dt_stable > _MIN_DT * interval)
    too_long = steps[active] > max_steps
    if ok.all() and not too_long.any():
        return
    local = int(np.flatnonzero(~ok | too_long)[0])
    index = int(active[local])
    sample, step, time = first_sample + index, int(steps[index]), float(t[index])
    if too_long[local]:
        problem = f"needs more than {max_steps} time steps"
    elif not np.isfinite(u[local]).all():
        problem = "produced a non-finite value"
    elif not (rho[local] > 0).all():
        problem = f"produced a non-positive density (min {float(np.nanmin(rho[local])):.3g})"
    elif not (p[local] > 0).all():
        problem = f"produced a non-positive pressure (min {float(np.nanmin(p[local])):.3g})"
    else:
        problem = f"collapsed its time step to {float(dt_stable[local]):.3g}"
    raise CFDSolverError(
        f"cfd1d solver: sample {sample} {problem} at time step {step} (t = {time:.6g})",
        sample=sample,
        step=step,
        time=time,
    )


def _batched_initial_state(density, velocity, pressure):
    arrays = [np.asarray(a, dtype=np.float64) for a in (density, velocity, pressure)]
    arrays = [a[None] if a.ndim == 1 else a for a in arrays]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1 or arrays[0].ndim != 2:
        raise ValueError(
            f"cfd1d: density, velocity and pressure must share one shape (batch, n) or (n,), got "
            f"{[a.shape for a in arrays]}"
        )
    if arrays[0].shape[1] < 4:
        raise ValueError(f"cfd1d: need at least 4 cells, got {arrays[0].shape[1]}")
    return arrays


def check_parameters(
    times, *, eta, zeta, gamma, length, boundary, cfl, viscous_cfl, limiter, viscosity, time_stepper
):
    """ValueError / TypeError for unphysical or unknown solver settings; ``times=None`` skips the time checks
    (the data generator checks its settings before it builds the output times)."""

    def number(name, value):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"cfd1d: {name} must be a number, got {value!r}")
        if not math.isfinite(float(value)):
            raise ValueError(f"cfd1d: {name} must be finite, got {value}")
        return float(value)

    for name, value in (("cfl", cfl), ("viscous_cfl", viscous_cfl)):
        if not 0.0 < number(name, value) <= 1.0:
            raise ValueError(f"cfd1d: {name} must lie in (0, 1], got {value}")
    for name, value in (("eta", eta), ("zeta", zeta)):
        if number(name, value) < 0:
            raise ValueError(f"cfd1d: viscosity {name} must be >= 0, got {value}")
    if number("gamma", gamma) <= 1.0:
        raise ValueError(f"cfd1d: gamma must be > 1, got {gamma}")
    if number("length", length) <= 0:
        raise ValueError(f"cfd1d: length must be > 0, got {length}")
    for name, value, known in (
        ("boundary", boundary, BOUNDARIES),
        ("limiter", limiter, LIMITERS),
        ("viscosity", viscosity, VISCOSITY_MODELS),
        ("time_stepper", time_stepper, TIME_STEPPERS),
    ):
        if value not in known:
            raise ValueError(f"cfd1d: unknown {name} {value!r}; known: {', '.join(known)}")
    if times is None:
        return
    if times.ndim != 1 or times.size < 1 or not np.isfinite(times).all():
        raise ValueError("cfd1d: times must be a non-empty 1D array of finite numbers")
    if times[0] != 0.0 or np.any(np.diff(times) < 0):
        raise ValueError(f"cfd1d: times must start at 0 and not decrease, got {times[:3]}...")


# ------------------------------------------------------------------------------------------------ initial data


def rand_initial_conditions(
    seed: int | np.random.SeedSequence,
    n_samples: int,
    *,
    resolution: int,
    x_left: float = -1.0,
    length: float = 2.0,
    max_wavenumber: int = 3,
    n_waves: int = 2,
    density_range: tuple[float, float] = (1.0, 10.0),
    pressure_range: tuple[float, float] = (10.0, 100.0),
    p_abs: float = 0.1,
    p_window: float = 0.5,
    window_width: float = 0.01,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PDEBench's "Rand" initial conditions for 1D CFD: density, velocity, pressure, each (n_samples, resolution).

    Usage: ``rho, v, p = rand_initial_conditions(0, 16, resolution=128)`` (``seed`` an int or a SeedSequence).

    Each field starts from a random sum of sine waves on the cell centres ``x``::

        s(x) = sum_{i=1..n_waves} A_i sin(2 pi m_i (x - x_left) / length + phi_i)

    with integer wavenumbers ``m_i`` uniform in 1..max_wavenumber, amplitudes ``A_i`` uniform in [0, 1] and
    phases uniform in [0, 2 pi); PDEBench: 2 waves, wavenumbers up to 3. Then, as in PDEBench's generator:
    with probability ``p_abs`` (0.1) ``s`` is replaced by ``|s|``; its sign is flipped with probability 1/2;
    with probability ``p_window`` (0.5) it is multiplied by the window ``(tanh((x - x_L) / w) - tanh((x -
    x_R) / w)) / 2`` with ``x_L`` uniform in [0.1, 0.45], ``x_R`` in [0.55, 0.9] (raw coordinates, as
    PDEBench) and ``w = window_width`` (0.01: sharper than a 128-cell grid, effectively a jump).

    * velocity: ``s`` plus a uniform mean flow ``A_0 sin(phi_0)`` (PDEBench's generator sums its unused
      wavenumbers as constants, so its velocities carry such an offset), added before the window; ``|v| <=
      n_waves + 1``.
    * density: ``s`` rescaled to ``[b, b + m]`` with ``m`` and ``b`` log-uniform in ``density_range``
      ([1, 10], so densities lie in [1, 20]).
    * pressure: the same with ``pressure_range`` ([10, 100], pressures in [10, 200]).

    Density and pressure are therefore at least the lower ends of their ranges (positive). Sample ``i`` draws
    from the ``i``-th child of ``SeedSequence(seed)``, so it does not depend on ``n_samples``.
    """
    x = cell_centers(resolution, x_left=x_left, length=length)
    sequence = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(int(seed))
    out = np.empty((3, n_samples, resolution))
    for i, child_seed in enumerate(sequence.spawn(n_samples)):
        child = np.random.default_rng(child_seed)
        for field in range(3):
            s = _sine_sum(
                child,
                x,
                x_left=x_left,
                length=length,
                n_waves=n_waves,
                max_wavenumber=max_wavenumber,
                offset=field == 1,
            )
            if child.random() < p_abs:
                s = np.abs(s)
            if child.random() < 0.5:
                s = -s
            x_l, x_r = child.uniform(0.1, 0.45), child.uniform(0.55, 0.9)
            if child.random() < p_window:
                s = s * 0.5 * (np.tanh((x - x_l) / window_width) - np.tanh((x - x_r) / window_width))
            if field == 1:
                out[1, i] = s
                continue
            low, high = density_range if field == 0 else pressure_range
            m, b = np.exp(child.uniform(math.log(low), math.log(high), size=2))
            spread = s.max() - s.min()
            shape = (s - s.min()) / spread if spread > 0 else np.zeros_like(s)
            out[field, i] = b + m * shape
    return out[0], out[1], out[2]


def _sine_sum(rng, x, *, x_left, length, n_waves, max_wavenumber, offset):
    m = rng.integers(1, max_wavenumber + 1, size=n_waves)
    amplitude = rng.uniform(0.0, 1.0, size=n_waves)
    phase = rng.uniform(0.0, 2.0 * np.pi, size=n_waves)
    arg = 2.0 * np.pi * m[:, None] * (x[None] - x_left) / length + phase[:, None]
    s = (amplitude[:, None] * np.sin(arg)).sum(axis=0)
    if offset:
        s = s + rng.uniform(0.0, 1.0) * np.sin(rng.uniform(0.0, 2.0 * np.pi))
    return s


# ------------------------------------------------------------------------------------------------ exact Riemann


def riemann_exact(left, right, xi, gamma: float = GAMMA, *, tol: float = 1e-12):
    """Exact solution of the Euler Riemann problem at similarity coordinates ``xi = (x - x0) / t``.

    Usage: ``rho, v, p = riemann_exact((1.0, 0.0, 1.0), (0.125, 0.0, 0.1), (x - 0.5) / 0.2, gamma=1.4)``.

    ``left`` and ``right`` are (density, velocity, pressure). The star pressure solves Toro's pressure equation
    ``f_L(p) + f_R(p) + u_R - u_L = 0`` by Newton's method from the two-rarefaction guess (Toro, chapter 4);
    the solution is then sampled wave by wave. Raises ValueError when the data generate a vacuum. Returns
    ``(rho, v, p)`` arrays of ``xi``'s shape; :func:`riemann_star` gives ``(p*, u*)``.
    """
    rl, ul, pl = (float(a) for a in left)
    rr, ur, pr = (float(a) for a in right)
    p_star, u_star = _riemann_star(rl, ul, pl, rr, ur, pr, gamma, tol)
    xi = np.asarray(xi, dtype=np.float64)
    g = gamma
    cl, cr = math.sqrt(g * pl / rl), math.sqrt(g * pr / rr)
    g6 = (g - 1.0) / (g + 1.0)
    rho, v, p = np.empty_like(xi), np.empty_like(xi), np.empty_like(xi)

    def fill(mask, values):
        for array, value in zip((rho, v, p), values):
            array[mask] = value[mask] if isinstance(value, np.ndarray) else value

    left_side = xi <= u_star
    if p_star > pl:  # left shock
        s = ul - cl * math.sqrt((g + 1.0) / (2.0 * g) * p_star / pl + (g - 1.0) / (2.0 * g))
        r_star = rl * (p_star / pl + g6) / (g6 * p_star / pl + 1.0)
        fill(left_side & (xi <= s), (rl, ul, pl))
        fill(left_side & (xi > s), (r_star, u_star, p_star))
    else:  # left rarefaction
        head, tail = ul - cl, u_star - cl * (p_star / pl) ** ((g - 1.0) / (2.0 * g))
        u_fan = 2.0 / (g + 1.0) * (cl + 0.5 * (g - 1.0) * ul + xi)
        c_fan = 2.0 / (g + 1.0) * (cl + 0.5 * (g - 1.0) * (ul - xi))
        fan = (
            rl * np.abs(c_fan / cl) ** (2.0 / (g - 1.0)),
            u_fan,
            pl * np.abs(c_fan / cl) ** (2.0 * g / (g - 1.0)),
        )
        fill(left_side & (xi <= head), (rl, ul, pl))
        fill(left_side & (xi > head) & (xi < tail), fan)
        fill(left_side & (xi >= tail), (rl * (p_star / pl) ** (1.0 / g), u_star, p_star))
    right_side = ~left_side
    if p_star > pr:  # right shock
        s = ur + cr * math.sqrt((g + 1.0) / (2.0 * g) * p_star / pr + (g - 1.0) / (2.0 * g))
        r_star = rr * (p_star / pr + g6) / (g6 * p_star / pr + 1.0)
        fill(right_side & (xi >= s), (rr, ur, pr))
        fill(right_side & (xi < s), (r_star, u_star, p_star))
    else:  # right rarefaction
        head, tail = ur + cr, u_star + cr * (p_star / pr) ** ((g - 1.0) / (2.0 * g))
        u_fan = 2.0 / (g + 1.0) * (-cr + 0.5 * (g - 1.0) * ur + xi)
        c_fan = 2.0 / (g + 1.0) * (cr - 0.5 * (g - 1.0) * (ur - xi))
        fan = (
            rr * np.abs(c_fan / cr) ** (2.0 / (g - 1.0)),
            u_fan,
            pr * np.abs(c_fan / cr) ** (2.0 * g / (g - 1.0)),
        )
        fill(right_side & (xi >= head), (rr, ur, pr))
        fill(right_side & (xi < head) & (xi > tail), fan)
        fill(right_side & (xi <= tail), (rr * (p_star / pr) ** (1.0 / g), u_star, p_star))
    return rho, v, p


def _riemann_star(rl, ul, pl, rr, ur, pr, g, tol):
    cl, cr = math.sqrt(g * pl / rl), math.sqrt(g * pr / rr)
    if 2.0 / (g - 1.0) * (cl + cr) <= ur - ul:
        raise ValueError("riemann_exact: the initial data generate a vacuum")

    def f(p, r, pk, c):
        if p > pk:  # shock
            a, b = 2.0 / ((g + 1.0) * r), (g - 1.0) / (g + 1.0) * pk
            root = math.sqrt(a / (p + b))
            return (p - pk) * root, root * (1.0 - 0.5 * (p - pk) / (p + b))
        ratio = p / pk  # rarefaction
        return (
            2.0 * c / (g - 1.0) * (ratio ** ((g - 1.0) / (2.0 * g)) - 1.0),
            ratio ** (-(g + 1.0) / (2.0 * g)) / (r * c),
        )

    z = (g - 1.0) / (2.0 * g)  # two-rarefaction initial guess
    p = ((cl + cr - 0.5 * (g - 1.0) * (ur - ul)) / (cl / pl**z + cr / pr**z)) ** (1.0 / z)
    p = max(p, tol)
    for _ in range(100):
        fl, dl = f(p, rl, pl, cl)
        fr, dr = f(p, rr, pr, cr)
        p_new = max(p - (fl + fr + ur - ul) / (dl + dr), tol)
        change = 2.0 * abs(p_new - p) / (p_new + p)
        p = p_new
        if change < tol:
            break
    fl, _ = f(p, rl, pl, cl)
    fr, _ = f(p, rr, pr, cr)
    return p, 0.5 * (ul + ur) + 0.5 * (fr - fl)


def riemann_star(left, right, gamma: float = GAMMA) -> tuple[float, float]:
    """Star-region pressure and velocity ``(p*, u*)`` of the Riemann problem (see :func:`riemann_exact`).

    Usage: ``riemann_star((1.0, 0.0, 1.0), (0.125, 0.0, 0.1), gamma=1.4)`` -> about (0.30313, 0.92745).
    """
    return _riemann_star(*(float(a) for a in left), *(float(a) for a in right), gamma, 1e-12)
