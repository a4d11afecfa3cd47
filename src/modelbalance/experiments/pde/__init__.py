"""PDE operator-learning tasks: verified numerical solvers, generated and cached data sets, file loaders.

Usage::

    from modelbalance.experiments.pde import generate, subsample_indices, load_pde_file

    x_pool, y_pool = generate("burgers", 1024, resolution=1024, nu=0.01, seed=0)   # (1024, 1, 1024) float32
    x_test, y_test = generate("burgers", 256, resolution=1024, nu=0.01, seed=1)
    idx = subsample_indices(len(x_pool), 0.025, seed=0)                          # nested, seeded subset
    x_user, y_user = load_pde_file("1D_Burgers_Sols_Nu0.01.hdf5", stride=4)     # PDEBench download
    traj = generate("cfd1d", 64, resolution=128, n_times=21, seed=0)            # (64, 3, 21, 128) float32
    traj_user = load_trajectories("1D_CFD_Rand_Eta0.1_Zeta0.1_periodic_Train.hdf5", stride=8, time_stride=5)

Modules: :mod:`.spectral1d` (ETDRK4, Fourier helpers), :mod:`.burgers`, :mod:`.advection`,
:mod:`.reaction_diffusion`, :mod:`.darcy`, :mod:`.cfd1d` (solvers), :mod:`.random_fields` (random inputs),
:mod:`.datasets` (generation, cache, subsampling), :mod:`.loaders` (user files).
"""

from .advection import solve_advection
from .burgers import cole_hopf_solution, solve_burgers
from .cfd1d import CFDSolverError, rand_initial_conditions, riemann_exact, solve_cfd1d
from .darcy import solve_darcy
from .datasets import (
    TASKS,
    TRAJECTORY_TASKS,
    cache_path,
    default_cache_dir,
    generate,
    generate_advection,
    generate_burgers,
    generate_cfd1d,
    generate_darcy,
    generate_reaction_diffusion,
    subsample_indices,
)
from .loaders import load_arrays, load_pde_file, load_pdebench, load_trajectories
from .reaction_diffusion import solve_reaction_diffusion

__all__ = [
    "CFDSolverError",
    "TASKS",
    "TRAJECTORY_TASKS",
    "cache_path",
    "cole_hopf_solution",
    "default_cache_dir",
    "generate",
    "generate_advection",
    "generate_burgers",
    "generate_cfd1d",
    "generate_darcy",
    "generate_reaction_diffusion",
    "load_arrays",
    "load_pde_file",
    "load_pdebench",
    "load_trajectories",
    "rand_initial_conditions",
    "riemann_exact",
    "solve_advection",
    "solve_burgers",
    "solve_cfd1d",
    "solve_darcy",
    "solve_reaction_diffusion",
    "subsample_indices",
]
