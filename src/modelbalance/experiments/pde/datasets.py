"""Generated PDE operator-learning data sets, cached on disk, and seeded training-subset selection.

Usage::

    from modelbalance.experiments.pde.datasets import generate, subsample_indices

    x, y = generate("burgers", 1024, resolution=1024, nu=0.01, seed=0)   # float32 (1024, 1, 1024) each
    x_test, y_test = generate("burgers", 256, resolution=1024, nu=0.01, seed=1)
    train = subsample_indices(len(x), 0.025, seed=0)   # 2.5 % of the pool, nested in larger fractions

Tasks (each maps an input field to an output field; arrays are ``(N, 1, *grid)`` float32):

========================  =================================  ==========================================
task                      input                              target
========================  =================================  ==========================================
``"burgers"``             ``u(x, 0)``, random sine series    ``u(x, t_final)`` of viscous Burgers
``"advection"``           ``u(x, 0)``, random sine series    ``u(x, t_final) = u(x - beta t_final, 0)``
``"reaction_diffusion"``  ``u(x, 0)`` in [0, 1]              ``u(x, t_final)`` of Fisher-KPP
``"darcy"``               two-phase coefficient ``a(x, y)``  ``u`` with ``-div(a grad u) = f``, ``u=0``
========================  =================================  ==========================================

1D grids are ``x_j = j / resolution`` on the periodic interval [0, 1); the Darcy grid is ``resolution x
resolution`` nodes of the unit square including the boundary (see :mod:`.darcy`).

Trajectory tasks (:data:`TRAJECTORY_TASKS`) return one float32 array ``(N, channels, n_times, *grid)``
instead of pairs: ``"cfd1d"``, 1D compressible Navier-Stokes (density, velocity, pressure) on PDEBench's
periodic domain [-1, 1) of ``resolution`` cells (see :func:`generate_cfd1d` and :mod:`.cfd1d`). The 1D pair
tasks (Burgers, advection, reaction-diffusion) give trajectories too when asked for ``n_times`` snapshots
(:func:`trajectory_1d`): ``generate("burgers", 64, n_times=21)`` is a float32 (64, 1, 21, resolution) array.

Caching: each call's parameters (everything except ``cache_dir``, ``use_cache`` and ``progress``), the task
name and a per-task format version are hashed into a key; the arrays live in ``<cache_dir>/<task>-<key>.npz``.
The cache directory is the ``cache_dir`` argument if given, else ``$MODELBALANCE_CACHE/pde`` if that
environment variable is set, else ``~/.cache/modelbalance/pde``. A missing or unreadable file is regenerated;
files are written to a temporary name and renamed, so concurrent runs never see a half-written file.

Determinism: a seed fixes the data. Sample ``i`` of ``generate(task, n, seed=s)`` does not depend on ``n`` (up
to round-off of the automatically chosen Burgers solver grid), so a pool of 1000 samples is the prefix of a
pool of 2000 with the same seed. Use different seeds for training and test pools.

Resolution limits (Burgers): the spectral solver needs the fronts resolved; with the default initial
conditions (``|u| <= 2``, wavenumbers <= 4) 1024 points resolve ``nu`` down to about 0.003 by ``t_final = 1``.
Below that a ``RuntimeWarning`` reports the under-resolution (PDEBench's ``nu = 0.001`` data needs a
shock-capturing solver).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .advection import solve_advection
from .burgers import solve_burgers
from .darcy import solve_darcy
from .random_fields import random_sine_series, two_phase_coefficient
from .reaction_diffusion import reaction_diffusion_time_step, solve_reaction_diffusion
from .spectral1d import spectral_scale, spectral_tail

__all__ = [
    "TASKS",
    "generate",
    "generate_burgers",
    "generate_advection",
    "generate_reaction_diffusion",
    "generate_darcy",
    "generate_cfd1d",
    "TRAJECTORY_TASKS",
    "default_cache_dir",
    "cache_path",
    "subsample_indices",
]

# Bump a task's version whenever its generator changes the numbers it produces, so old cache files are not
# reused.
_FORMAT_VERSIONS = {"burgers": 1, "advection": 1, "reaction_diffusion": 1, "darcy": 1, "cfd1d": 1}
_CHUNK_1D = 256  # samples per solver call: large enough to vectorise, small enough for a lively progress bar
_CHUNK_2D = 50
_CHUNK_CFD = 64
# Spectral-tail thresholds (relative to the initial condition's largest mode) for the 1D spectral solvers: the
# automatic solver grid must reach PILOT_TAIL on the steepest samples; above WARN_TAIL the stored float32 data
# would carry visible truncation error.
_PILOT_TAIL = 1e-9
_WARN_TAIL = 1e-7
_PILOT_SAMPLES = 16


def default_cache_dir() -> Path:
    """Where generated PDE data is cached: ``$MODELBALANCE_CACHE/pde`` or ``~/.cache/modelbalance/pde``.

    Usage: ``print(default_cache_dir())``.
    """
    root = os.environ.get("MODELBALANCE_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "modelbalance"
    return base / "pde"


def cache_path(task: str, params: dict, cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache file for ``task`` generated with ``params`` (a JSON-serialisable dict of arguments).

    Usage: ``cache_path("darcy", {"n_samples": 10, "resolution": 64, ...})``. The key is the first 16 hex
    digits of the SHA-256 of the canonical JSON of ``{"task", "version", **params}``.
    """
    if task not in _FORMAT_VERSIONS:
        raise ValueError(f"unknown PDE task {task!r}; known: {sorted(_FORMAT_VERSIONS)}")
    payload = json.dumps({"task": task, "version": _FORMAT_VERSIONS[task], **params}, sort_keys=True)
    key = hashlib.sha256(payload.encode()).hexdigest()[:16]
    directory = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return directory / f"{task}-{key}.npz"


def generate_burgers(
    n_samples: int,
    *,
    resolution: int = 1024,
    nu: float = 0.01,
    t_final: float = 1.0,
    seed: int = 0,
    n_waves: int = 2,
    max_wavenumber: int = 4,
    amplitude: float = 1.0,
    solver_resolution: int | str = "auto",
    courant: float = 0.4,
    n_times: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    progress: bool | None = None,
) -> tuple[np.ndarray, np.ndarray] | np.ndarray:
    """Burgers ``u(x, 0) -> u(x, t_final)`` pairs, ``u_t + u u_x = nu u_xx`` periodic on [0, 1).

    Usage: ``x, y = generate_burgers(256, resolution=1024, nu=0.01)`` -> two float32 (256, 1, 1024) arrays;
    ``traj = generate_burgers(256, n_times=21)`` -> one float32 (256, 1, 21, 1024) array of trajectories.

    Parameters
    ----------
    n_samples, resolution, nu, t_final, seed :
        Number of pairs, grid points (even), viscosity, final time, random seed.
    n_waves, max_wavenumber, amplitude :
        Initial conditions ``sum_j A_j sin(2 pi m_j x + phi_j)`` (see
        :func:`~modelbalance.experiments.pde.random_fields.random_sine_series`); ``|u| <= n_waves *
        amplitude``.
    solver_resolution : int or "auto"
        Grid the ETDRK4 solver runs on (must divide ``resolution``); the solution is interpolated spectrally
        to ``resolution``. ``"auto"`` takes the coarsest grid ``resolution / 2^j`` on which the steepest 16
        samples are resolved to 1e-9 relative spectral tail (e.g. 256 for the defaults, 4-10x faster than
        1024).
    courant :
        Time step ``courant / (solver_resolution * n_waves * amplitude)``.
    n_times : int, optional
        Instead of pairs, trajectories of ``n_times`` snapshots at ``t_k = k t_final / (n_times - 1)``
        (:func:`trajectory_1d`), for autoregressive tasks.
    cache_dir, use_cache, progress :
        Cache directory (module docstring), whether to read/write the cache, tqdm bar (None: only on a TTY).
    """
    params = {
        "n_samples": _positive_int("n_samples", n_samples),
        "resolution": _even_resolution(resolution, minimum=2 * max_wavenumber + 2),
        "nu": _positive_float("nu", nu),
        "t_final": _nonnegative_float("t_final", t_final),
        "seed": int(seed),
        "n_waves": _positive_int("n_waves", n_waves),
        "max_wavenumber": _positive_int("max_wavenumber", max_wavenumber),
        "amplitude": _positive_float("amplitude", amplitude),
        "solver_resolution": solver_resolution if solver_resolution == "auto" else int(solver_resolution),
        "courant": _positive_float("courant", courant),
        **_times_param(n_times),
    }

    def build(bar: tqdm):
        p = params
        u0 = _sine_initial_conditions(p)

        def solve(u: np.ndarray, n_solve: int, t: float = p["t_final"]) -> np.ndarray:
            dt = p["courant"] / (n_solve * p["n_waves"] * p["amplitude"])
            return solve_burgers(u, nu=p["nu"], t_final=t, dt=dt, solver_resolution=n_solve)

        n_solve = _choose_solver_resolution(u0, p, _over_snapshots(solve, p))
        if "n_times" in p:
            return trajectory_1d(u0, lambda u, t: solve(u, n_solve, t), p, bar, "burgers", n_solve)
        return u0, _solve_1d_in_chunks(u0, lambda u: solve(u, n_solve), n_solve, bar, "burgers")

    return _pairs_or_trajectories("burgers", params, build, cache_dir, use_cache, progress)


def generate_advection(
    n_samples: int,
    *,
    resolution: int = 1024,
    beta: float = 0.4,
    t_final: float = 2.0,
    seed: int = 0,
    n_waves: int = 2,
    max_wavenumber: int = 4,
    amplitude: float = 1.0,
    n_times: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    progress: bool | None = None,
) -> tuple[np.ndarray, np.ndarray] | np.ndarray:
    """Advection ``u(x, 0) -> u(x - beta t_final, 0)`` pairs (exact shift), PDEBench's 1D advection task.

    Usage: ``x, y = generate_advection(128, resolution=256, beta=0.4, t_final=2.0)`` -> float32 (128, 1, 256).

    Same initial conditions, ``n_times`` (trajectories) and cache arguments as :func:`generate_burgers`;
    PDEBench uses ``beta`` in 0.1 ... 4 and ``t_final = 2``.
    """
    params = {
        "n_samples": _positive_int("n_samples", n_samples),
        "resolution": _even_resolution(resolution, minimum=2 * max_wavenumber + 2),
        "beta": _finite_float("beta", beta),
        "t_final": _nonnegative_float("t_final", t_final),
        "seed": int(seed),
        "n_waves": _positive_int("n_waves", n_waves),
        "max_wavenumber": _positive_int("max_wavenumber", max_wavenumber),
        "amplitude": _positive_float("amplitude", amplitude),
        **_times_param(n_times),
    }

    def build(bar: tqdm):
        u0 = _sine_initial_conditions(params)
        if "n_times" in params:
            shift = lambda u, t: solve_advection(u, beta=params["beta"], t_final=t)  # noqa: E731
            return trajectory_1d(u0, shift, params, bar, "advection", None)
        target = solve_advection(u0, beta=params["beta"], t_final=params["t_final"])
        bar.update(len(u0))
        return u0, target

    return _pairs_or_trajectories("advection", params, build, cache_dir, use_cache, progress)


def generate_reaction_diffusion(
    n_samples: int,
    *,
    resolution: int = 1024,
    nu: float = 0.01,
    rho: float = 5.0,
    t_final: float = 1.0,
    seed: int = 0,
    n_waves: int = 2,
    max_wavenumber: int = 4,
    solver_resolution: int | str = "auto",
    n_times: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    progress: bool | None = None,
) -> tuple[np.ndarray, np.ndarray] | np.ndarray:
    """Reaction-diffusion ``u(x, 0) -> u(x, t_final)`` pairs for ``u_t = nu u_xx + rho u (1 - u)`` (periodic).

    Usage: ``x, y = generate_reaction_diffusion(64, resolution=256)`` -> float32 (64, 1, 256) arrays.

    Initial conditions ``0.5 + s(x) / (2 n_waves)`` with ``s`` a unit-amplitude random sine series, so they
    lie in [0, 1]. ``solver_resolution`` and ``n_times`` (trajectories) as in :func:`generate_burgers`; time
    step :func:`~modelbalance.experiments.pde.reaction_diffusion.reaction_diffusion_time_step`.
    """
    params = {
        "n_samples": _positive_int("n_samples", n_samples),
        "resolution": _even_resolution(resolution, minimum=2 * max_wavenumber + 2),
        "nu": _nonnegative_float("nu", nu),
        "rho": _nonnegative_float("rho", rho),
        "t_final": _nonnegative_float("t_final", t_final),
        "seed": int(seed),
        "n_waves": _positive_int("n_waves", n_waves),
        "max_wavenumber": _positive_int("max_wavenumber", max_wavenumber),
        "solver_resolution": solver_resolution if solver_resolution == "auto" else int(solver_resolution),
        **_times_param(n_times),
    }

    def build(bar: tqdm):
        p = params
        u0 = 0.5 + _sine_initial_conditions({**p, "amplitude": 1.0}) / (2.0 * p["n_waves"])
        dt = reaction_diffusion_time_step(p["rho"])

        def solve(u: np.ndarray, n_solve: int, t: float = p["t_final"]) -> np.ndarray:
            return solve_reaction_diffusion(
                u, nu=p["nu"], rho=p["rho"], t_final=t, dt=dt, solver_resolution=n_solve
            )

        n_solve = _choose_solver_resolution(u0, p, _over_snapshots(solve, p))
        if "n_times" in p:
            return trajectory_1d(u0, lambda u, t: solve(u, n_solve, t), p, bar, "reaction_diffusion", n_solve)
        return u0, _solve_1d_in_chunks(u0, lambda u: solve(u, n_solve), n_solve, bar, "reaction_diffusion")

    return _pairs_or_trajectories("reaction_diffusion", params, build, cache_dir, use_cache, progress)


def generate_darcy(
    n_samples: int,
    *,
    resolution: int = 64,
    high: float = 12.0,
    low: float = 3.0,
    forcing: float = 1.0,
    alpha: float = 2.0,
    tau: float = 3.0,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    progress: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Darcy ``a(x, y) -> u(x, y)`` pairs: ``-div(a grad u) = forcing`` in the unit square, ``u = 0`` outside.

    Usage: ``a, u = generate_darcy(100, resolution=64)`` -> two float32 (100, 1, 64, 64) arrays.

    ``a`` takes the value ``high`` where a Gaussian random field with covariance ``(-Laplacian +
    tau^2)^-alpha`` is >= 0 and ``low`` elsewhere (FNO's Darcy set: 12 / 3, alpha 2, tau 3, forcing 1); see
    :func:`~modelbalance.experiments.pde.random_fields.two_phase_coefficient` and
    :func:`~modelbalance.experiments.pde.darcy.solve_darcy`.
    """
    params = {
        "n_samples": _positive_int("n_samples", n_samples),
        "resolution": _positive_int("resolution", resolution),
        "high": _positive_float("high", high),
        "low": _positive_float("low", low),
        "forcing": _finite_float("forcing", forcing),
        "alpha": _positive_float("alpha", alpha),
        "tau": _nonnegative_float("tau", tau),
        "seed": int(seed),
    }
    if params["resolution"] < 3:
        raise ValueError(f"resolution must be >= 3 for Darcy, got {resolution}")

    def build(bar: tqdm) -> tuple[np.ndarray, np.ndarray]:
        p = params
        rng = np.random.default_rng(p["seed"])
        coeff = two_phase_coefficient(
            rng,
            n_samples=p["n_samples"],
            resolution=p["resolution"],
            high=p["high"],
            low=p["low"],
            alpha=p["alpha"],
            tau=p["tau"],
        )
        solution = np.empty_like(coeff)
        for start in range(0, len(coeff), _CHUNK_2D):
            stop = min(start + _CHUNK_2D, len(coeff))
            solution[start:stop] = solve_darcy(coeff[start:stop], forcing=p["forcing"])
            bar.update(stop - start)
        return coeff, solution

    return _cached("darcy", params, build, cache_dir, use_cache, progress)


def generate_cfd1d(
    n_samples: int,
    *,
    resolution: int = 128,
    n_times: int = 21,
    t_final: float = 1.0,
    eta: float = 0.1,
    zeta: float = 0.1,
    gamma: float = 5.0 / 3.0,
    x_left: float = -1.0,
    length: float = 2.0,
    boundary: str = "periodic",
    density_range: tuple[float, float] = (1.0, 10.0),
    pressure_range: tuple[float, float] = (10.0, 100.0),
    max_wavenumber: int = 3,
    cfl: float = 0.4,
    viscous_cfl: float = 0.8,
    limiter: str = "vanleer",
    viscosity: str = "kinematic",
    time_stepper: str = "rk2",
    solver_resolution: int | None = None,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    progress: bool | None = None,
) -> np.ndarray:
    """1D compressible Navier-Stokes trajectories (PDEBench's 1D CFD "Rand"): float32 (N, 3, n_times, resolution).

    Usage: ``traj = generate_cfd1d(64, resolution=128, n_times=21)``; channels are density, velocity and
    pressure, ``traj[:, :, k]`` is the state at ``t = k * t_final / (n_times - 1)``.

    Initial conditions: :func:`~modelbalance.experiments.pde.cfd1d.rand_initial_conditions` (PDEBench's random
    sine sums; densities from ``density_range``, pressures from ``pressure_range``, velocities up to about 3);
    solver: :func:`~modelbalance.experiments.pde.cfd1d.solve_cfd1d` (HLLC + MUSCL, SSP-RK, per-sample time
    steps; ``cfl``, ``viscous_cfl``, ``limiter``, ``viscosity``, ``time_stepper`` go to it).

    Size: PDEBench stores 1024 cells and 101 times on t in [0, 1] over x in [-1, 1]; its FNO/UNet configuration
    for 1D CFD trains on every 8th cell and every 5th time (128 x 21), which are these defaults. The data are
    solved directly at ``resolution`` unless ``solver_resolution`` (a multiple of it) asks for a finer solve,
    then cell-averaged down (conservative variables). At the defaults (eta = zeta = 0.1) a sample costs about
    0.4 s on one core (eta = zeta = 0.01: about 0.1 s; the viscous step limit dominates at 0.1). Discretisation
    error at the defaults, measured against a 512-cell solve averaged down (nRMSE over the 20 later times):
    density 1.1% (contacts are only smeared numerically: no heat conduction), velocity 0.2%, pressure 0.03%;
    at eta = zeta = 0.01: 1.4%, 3.7%, 0.4%.

    Raises ValueError for unphysical parameters (a non-positive lower end of ``density_range`` or
    ``pressure_range``, ``cfl`` outside (0, 1], negative viscosity) and
    :class:`~modelbalance.experiments.pde.cfd1d.CFDSolverError` (naming the sample and time step) when a
    solution turns non-finite or non-positive; nothing is cached then.
    """
    from .cfd1d import check_parameters

    params = {
        "n_samples": _positive_int("n_samples", n_samples),
        "resolution": _positive_int("resolution", resolution),
        "n_times": _positive_int("n_times", n_times),
        "t_final": _nonnegative_float("t_final", t_final),
        "eta": _finite_float("eta", eta),
        "zeta": _finite_float("zeta", zeta),
        "gamma": _finite_float("gamma", gamma),
        "x_left": _finite_float("x_left", x_left),
        "length": _positive_float("length", length),
        "boundary": boundary,
        "density_range": _positive_range("density_range", density_range),
        "pressure_range": _positive_range("pressure_range", pressure_range),
        "max_wavenumber": _positive_int("max_wavenumber", max_wavenumber),
        "cfl": _finite_float("cfl", cfl),
        "viscous_cfl": _finite_float("viscous_cfl", viscous_cfl),
        "limiter": limiter,
        "viscosity": viscosity,
        "time_stepper": time_stepper,
        "solver_resolution": None
        if solver_resolution is None
        else _positive_int("solver_resolution", solver_resolution),
        "seed": int(seed),
    }
    p = params
    solver_options = (
        "eta",
        "zeta",
        "gamma",
        "length",
        "boundary",
        "cfl",
        "viscous_cfl",
        "limiter",
        "viscosity",
        "time_stepper",
    )
    solver_settings = {k: p[k] for k in solver_options}
    check_parameters(None, **solver_settings)
    if p["resolution"] < 4:
        raise ValueError(f"cfd1d: resolution must be >= 4, got {resolution}")
    n_solve = p["solver_resolution"] or p["resolution"]
    if n_solve % p["resolution"]:
        raise ValueError(f"cfd1d: solver_resolution {n_solve} must be a multiple of resolution {resolution}")
    if p["n_times"] < 2:
        raise ValueError(
            f"cfd1d: n_times must be >= 2 (the initial state and at least one more), got {n_times}"
        )

    def build(bar: tqdm) -> np.ndarray:
        from .cfd1d import primitive_to_conservative, rand_initial_conditions, solve_cfd1d

        rho, v, pressure = rand_initial_conditions(
            p["seed"],
            p["n_samples"],
            resolution=n_solve,
            x_left=p["x_left"],
            length=p["length"],
            max_wavenumber=p["max_wavenumber"],
            density_range=tuple(p["density_range"]),
            pressure_range=tuple(p["pressure_range"]),
        )
        times = np.linspace(0.0, p["t_final"], p["n_times"])
        factor = n_solve // p["resolution"]
        out = np.empty((p["n_samples"], 3, p["n_times"], p["resolution"]), dtype=np.float32)
        for start in range(0, p["n_samples"], _CHUNK_CFD):
            stop = min(start + _CHUNK_CFD, p["n_samples"])
            traj = solve_cfd1d(
                rho[start:stop],
                v[start:stop],
                pressure[start:stop],
                times=times,
                first_sample=start,
                **solver_settings,
            )
            if factor > 1:  # cell-average the conservative variables onto the output grid
                cons = primitive_to_conservative(traj[:, 0], traj[:, 1], traj[:, 2], p["gamma"])
                cons = cons.reshape(*cons.shape[:-1], p["resolution"], factor).mean(axis=-1)
                dens = cons[..., 0, :]
                vel = cons[..., 1, :] / dens
                pres = (p["gamma"] - 1.0) * (cons[..., 2, :] - 0.5 * cons[..., 1, :] * vel)
                traj = np.stack([dens, vel, pres], axis=1)
            out[start:stop] = traj
            bar.update(stop - start)
        return out

    return _cached_trajectories("cfd1d", params, build, cache_dir, use_cache, progress)


TASKS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray] | np.ndarray]] = {
    "burgers": generate_burgers,
    "advection": generate_advection,
    "reaction_diffusion": generate_reaction_diffusion,
    "darcy": generate_darcy,
    "cfd1d": generate_cfd1d,
}
#: Generators of whole trajectories (N, channels, n_times, *grid) rather than input/target pairs.
TRAJECTORY_TASKS = ("cfd1d",)


def generate(task: str, n_samples: int, **params) -> tuple[np.ndarray, np.ndarray] | np.ndarray:
    """Generate (or load from cache) ``n_samples`` samples of ``task``; see :data:`TASKS`.

    Usage: ``x, y = generate("darcy", 500, resolution=64, seed=0)``; ``traj = generate("cfd1d", 64)``. Keyword
    arguments go to the task's generator (``generate_<task>``). Pair tasks return two float32 arrays of shape
    ``(n_samples, 1, *grid)``; trajectory tasks (:data:`TRAJECTORY_TASKS`) one float32 array ``(n_samples,
    channels, n_times, *grid)``.
    """
    if task not in TASKS:
        raise ValueError(f"unknown PDE task {task!r}; known: {sorted(TASKS)}")
    return TASKS[task](n_samples, **params)


def subsample_indices(n_pool: int, fraction: float, seed: int = 0) -> np.ndarray:
    """Sorted indices of a seeded random ``fraction`` of a pool of ``n_pool`` samples (at least one).

    Usage: ``idx = subsample_indices(1000, 0.006, seed=0)`` -> 6 indices; ``x_train = x_pool[idx]``.

    The subset is the first ``max(1, round(fraction * n_pool))`` entries of one seeded permutation of the
    pool, so for a fixed ``(n_pool, seed)`` smaller fractions give subsets of larger ones (nested), and the
    same arguments always give the same indices. ``fraction`` must lie in (0, 1].
    """
    n_pool = _positive_int("n_pool", n_pool)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.floating, np.integer)):
        raise TypeError(f"fraction must be a number in (0, 1], got {fraction!r}")
    if not (0.0 < float(fraction) <= 1.0):
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    n_keep = min(n_pool, max(1, int(round(float(fraction) * n_pool))))
    order = np.random.default_rng(int(seed)).permutation(n_pool)
    return np.sort(order[:n_keep]).astype(np.int64)


# ------------------------------------------------------------------------------------------------ helpers


def _sine_initial_conditions(p: dict) -> np.ndarray:
    return random_sine_series(
        np.random.default_rng(p["seed"]),
        n_samples=p["n_samples"],
        resolution=p["resolution"],
        n_waves=p["n_waves"],
        max_wavenumber=p["max_wavenumber"],
        amplitude=p["amplitude"],
    )


def _choose_solver_resolution(u0: np.ndarray, p: dict, solve: Callable[[np.ndarray, int], np.ndarray]) -> int:
    """The solver grid: ``p["solver_resolution"]``, or for "auto" the coarsest one resolving a pilot batch."""
    n = p["resolution"]
    requested = p["solver_resolution"]
    if requested != "auto":
        if requested < 4 or requested > n or n % requested or requested % 2:
            raise ValueError(f"solver_resolution={requested} must be an even divisor of resolution={n}")
        return requested
    candidates = [n]
    while candidates[-1] % 4 == 0 and candidates[-1] // 2 >= max(32, 3 * p["max_wavenumber"] + 2):
        candidates.append(candidates[-1] // 2)
    # Pilot on the samples with the steepest initial slopes: they form the sharpest fronts.
    slope = np.abs(np.diff(u0, axis=-1, append=u0[:, :1])).max(axis=-1)
    pilot = u0[np.sort(np.argsort(-slope, kind="stable")[:_PILOT_SAMPLES])]
    scale = spectral_scale(pilot)
    for n_solve in reversed(candidates[1:]):
        coarse = solve(pilot, n_solve)[..., :: n // n_solve]  # (batch, n) or (batch, snapshots, n)
        if spectral_tail(coarse, scale=scale.reshape(-1, *[1] * (coarse.ndim - 2))).max() < _PILOT_TAIL:
            return n_solve
    return n


def trajectory_1d(
    u0: np.ndarray,
    segment: Callable[[np.ndarray, float], np.ndarray],
    params: dict,
    bar: tqdm,
    task: str,
    n_solve: int | None,
) -> np.ndarray:
    """(N, 1, n_times, n) snapshots at ``t_k = k t_final / (n_times - 1)``: ``u0``, then each snapshot solved from
    the previous one over one interval with ``segment(u, dt)`` (the pair generator's own solver), so every
    snapshot is the same solution the pair task would give at that time, to the solver's accuracy."""
    n_times = params["n_times"]
    interval = params["t_final"] / (n_times - 1)
    snapshots = [np.asarray(u0, dtype=np.float64)]
    share = _ShareOfBar(bar, 1.0 / (n_times - 1))
    tails: list[float] = []
    for _ in range(n_times - 1):
        previous = snapshots[-1]
        if n_solve is None:  # an exact solution: one call, no resolution check
            snapshots.append(segment(previous, interval))
            share.update(len(previous))
        else:
            step = lambda u: segment(u, interval)  # noqa: E731
            snapshots.append(_solve_1d_in_chunks(previous, step, n_solve, share, task, tails=tails))
    _warn_if_under_resolved(task, n_solve, max(tails, default=0.0))
    return np.stack(snapshots, axis=1)[:, None]


def _over_snapshots(solve: Callable, p: dict) -> Callable[[np.ndarray, int], np.ndarray]:
    """The solver-grid pilot's solve: the final state for pairs, every later snapshot for trajectories
    (intermediate snapshots can be steeper than the final one, which viscosity has smoothed)."""
    if "n_times" not in p:
        return solve
    interval = p["t_final"] / (p["n_times"] - 1)

    def snapshots(u: np.ndarray, n_solve: int) -> np.ndarray:
        out = []
        for _ in range(p["n_times"] - 1):
            u = solve(u, n_solve, interval)
            out.append(u)
        return np.stack(out, axis=1)  # (batch, n_times - 1, n)

    return snapshots


class _ShareOfBar:
    """Passes a fixed share of each update to a tqdm bar (a trajectory advances the bar once per interval)."""

    def __init__(self, bar: tqdm, share: float):
        self.bar, self.share = bar, share

    def update(self, n: float) -> None:
        self.bar.update(n * self.share)


def _times_param(n_times) -> dict:
    """``{"n_times": n}`` for trajectories (at least 2 snapshots), ``{}`` for pairs (old cache keys unchanged)."""
    if n_times is None:
        return {}
    if isinstance(n_times, bool) or not isinstance(n_times, (int, np.integer)) or n_times < 2:
        raise ValueError(f"n_times must be an integer >= 2 (snapshots per trajectory), got {n_times!r}")
    return {"n_times": int(n_times)}


def _pairs_or_trajectories(task, params, build, cache_dir, use_cache, progress):
    """Pairs through :func:`_cached`, or with ``n_times`` whole trajectories through :func:`_cached_trajectories`."""
    cached = _cached_trajectories if "n_times" in params else _cached
    return cached(task, params, build, cache_dir, use_cache, progress)


def _solve_1d_in_chunks(
    u0: np.ndarray,
    solve: Callable[[np.ndarray], np.ndarray],
    n_solve: int,
    bar: tqdm,
    task: str,
    tails: list[float] | None = None,
) -> np.ndarray:
    """``solve`` over ``u0`` chunk by chunk; warns if the results are under-resolved on the solver grid (or, with
    ``tails``, appends the worst spectral tail there for the caller to judge once)."""
    out = np.empty_like(u0)
    worst_tail = 0.0
    stride = u0.shape[-1] // n_solve
    for start in range(0, len(u0), _CHUNK_1D):
        stop = min(start + _CHUNK_1D, len(u0))
        out[start:stop] = solve(u0[start:stop])
        tail = spectral_tail(out[start:stop, ::stride], scale=spectral_scale(u0[start:stop]))
        worst_tail = max(worst_tail, float(tail.max()))
        bar.update(stop - start)
    if tails is not None:
        tails.append(worst_tail)
    else:
        _warn_if_under_resolved(task, n_solve, worst_tail)
    return out


def _warn_if_under_resolved(task: str, n_solve: int | None, worst_tail: float) -> None:
    if worst_tail > _WARN_TAIL:
        warnings.warn(
            f"{task}: the solution is under-resolved on the {n_solve}-point solver grid (relative spectral "
            f"tail {worst_tail:.1e}); increase resolution or viscosity",
            RuntimeWarning,
        )


def _cached(
    task: str,
    params: dict,
    build: Callable[[tqdm], tuple[np.ndarray, np.ndarray]],
    cache_dir: str | os.PathLike | None,
    use_cache: bool,
    progress: bool | None,
) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) pairs of ``task``, from the cache or ``build`` (then cached), with a channel axis."""

    def pairs(bar: tqdm) -> tuple[np.ndarray, ...]:
        inputs, targets = build(bar)
        return tuple(np.ascontiguousarray(a[:, None], dtype=np.float32) for a in (inputs, targets))

    return _cached_arrays(task, params, pairs, ("inputs", "targets"), cache_dir, use_cache, progress)


def _cached_trajectories(
    task: str,
    params: dict,
    build: Callable[[tqdm], np.ndarray],
    cache_dir: str | os.PathLike | None,
    use_cache: bool,
    progress: bool | None,
) -> np.ndarray:
    """Like :func:`_cached` for generators of whole trajectories (one float32 array, stored as-is)."""

    def trajectories(bar: tqdm) -> tuple[np.ndarray, ...]:
        return (np.ascontiguousarray(build(bar), dtype=np.float32),)

    return _cached_arrays(task, params, trajectories, ("trajectories",), cache_dir, use_cache, progress)[0]


def _cached_arrays(
    task: str,
    params: dict,
    build: Callable[[tqdm], tuple[np.ndarray, ...]],
    keys: tuple[str, ...],
    cache_dir: str | os.PathLike | None,
    use_cache: bool,
    progress: bool | None,
) -> tuple[np.ndarray, ...]:
    """The arrays ``keys`` of ``task`` with ``params``: read from the cache, else built (with a bar) and written."""
    path = cache_path(task, params, cache_dir)
    if use_cache and path.exists():
        loaded = _read_cache(path, params, keys)
        if loaded is not None:
            return loaded
    disable = None if progress is None else not progress
    with tqdm(total=params["n_samples"], desc=f"generating {task}", unit="sample", disable=disable) as bar:
        arrays = build(bar)
    if use_cache:
        _write_cache(path, dict(zip(keys, arrays, strict=True)), params)
    return arrays


def _read_cache(path: Path, params: dict, keys: tuple[str, ...]) -> tuple | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            stored = json.loads(str(data["params"]))
            if stored != json.loads(json.dumps(params)):
                raise ValueError("parameters differ from the requested ones")
            return tuple(data[key] for key in keys)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError) as err:
        warnings.warn(f"ignoring unreadable PDE cache file {path} ({err}); regenerating", RuntimeWarning)
        return None


def _write_cache(path: Path, arrays: dict[str, np.ndarray], params: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays, params=np.array(json.dumps(params, sort_keys=True)))
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _even_resolution(value, *, minimum: int) -> int:
    value = _positive_int("resolution", value)
    if value % 2 or value < minimum:
        raise ValueError(f"resolution must be an even integer >= {minimum}, got {value}")
    return value


def _finite_float(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"{name} must be finite, got {value}")
    return float(value)


def _positive_float(name: str, value) -> float:
    value = _finite_float(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def _positive_range(name: str, value) -> list[float]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise ValueError(f"{name} must be a pair (low, high), got {value!r}")
    low, high = (_finite_float(name, v) for v in value)
    if not 0 < low <= high:
        raise ValueError(
            f"cfd1d: {name} must satisfy 0 < low <= high (positive initial states), got {value!r}"
        )
    return [low, high]


def _nonnegative_float(name: str, value) -> float:
    value = _finite_float(name, value)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value
