"""PDE operator-learning tasks: verified numerical solvers, generated and cached data sets, file loaders.

Usage::

    from modelbalance.experiments.pde import generate, subsample_indices, load_pde_file

    x_pool, y_pool = generate("burgers", 1024, resolution=1024, nu=0.01, seed=0)   # (1024, 1, 1024) float32
    x_test, y_test = generate("burgers", 256, resolution=1024, nu=0.01, seed=1)
    idx = subsample_indices(len(x_pool), 0.025, seed=0)                          # nested, seeded subset
    x_user, y_user = load_pde_file("1D_Burgers_Sols_Nu0.01.hdf5", stride=4)     # PDEBench download

Modules: :mod:`.spectral1d` (ETDRK4, Fourier helpers), :mod:`.burgers`, :mod:`.advection`,
:mod:`.reaction_diffusion`, :mod:`.darcy` (solvers), :mod:`.random_fields` (random inputs), :mod:`.datasets`
(generation, cache, subsampling), :mod:`.loaders` (user files).
"""

from .advection import solve_advection
from .burgers import cole_hopf_solution, solve_burgers
from .darcy import solve_darcy
from .datasets import (
    TASKS,
    cache_path,
    default_cache_dir,
    generate,
    generate_advection,
    generate_burgers,
    generate_darcy,
    generate_reaction_diffusion,
    subsample_indices,
)
from .loaders import load_arrays, load_pde_file, load_pdebench
from .reaction_diffusion import solve_reaction_diffusion

__all__ = [
    "TASKS",
    "cache_path",
    "cole_hopf_solution",
    "default_cache_dir",
    "generate",
    "generate_advection",
    "generate_burgers",
    "generate_darcy",
    "generate_reaction_diffusion",
    "load_arrays",
    "load_pde_file",
    "load_pdebench",
    "solve_advection",
    "solve_burgers",
    "solve_darcy",
    "solve_reaction_diffusion",
    "subsample_indices",
]
