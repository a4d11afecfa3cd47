"""PDE operator-learning tasks (``burgers``, ``darcy``, ``advection``, ``reaction_diffusion``) for the runner.

Generated data comes from :mod:`modelbalance.experiments.pde` (verified solvers, cached on disk); ``data=PATH``
reads a user's file instead (a PDEBench HDF5 download, or ``.npz``/``.h5`` with arrays ``inputs`` and
``targets``)::

    modelbalance experiment --task burgers --model fno --fractions 0.05,0.25 --out runs/burgers
    modelbalance experiment --task burgers --data 1D_Burgers_Sols_Nu0.01.hdf5 --task-param stride=4 ...

The primary metric is PDEBench's nRMSE (lower is better); relative L2 is reported too.

Time-dependent tasks trained autoregressively (``cfd1d``, and ``rollout`` for a user's time-series file) live in
:mod:`modelbalance.experiments.tasks.rollout`, imported at the end of this module so that they register too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

from modelbalance.experiments.registry import TASKS
from modelbalance.experiments.tasks import Task, TaskData, check_data_options

# Defaults sized for CPU sweeps; every generator argument of modelbalance.experiments.pde can be overridden.
GENERATED_DEFAULTS: dict[str, dict[str, Any]] = {
    "burgers": {"n_samples": 512, "n_test": 128, "resolution": 256, "nu": 0.01},
    "advection": {"n_samples": 512, "n_test": 128, "resolution": 256},
    "reaction_diffusion": {"n_samples": 512, "n_test": 128, "resolution": 256},
    "darcy": {"n_samples": 256, "n_test": 64, "resolution": 32},
}
LOADER_OPTIONS = ("stride", "max_samples", "input_time", "target_time", "spatial_dims")
LOSSES = ("mse", "rel_l2")
TEST_SEED_OFFSET = 10_000  # the test set is generated with seed + this, so it never overlaps the pool


class PDETask(Task):
    """Field-to-field regression on generated or user-supplied PDE data.

    Examples
    --------
    >>> task = PDETask("advection", n_samples=8, n_test=4, resolution=32, cache_dir="/tmp/mb-doctest")
    >>> data = task.load()
    >>> len(data.train_pool), data.spec["grid"]
    (8, (32,))

    Parameters
    ----------
    name : str
        ``burgers``, ``darcy``, ``advection`` or ``reaction_diffusion``.
    data : str, optional
        A user file; then ``params`` may only hold loader options (:data:`LOADER_OPTIONS`).
    seed : int
        Seed of the generated pool (the test set uses ``seed + 10000``) or of the user data's test split.
    test_fraction : float
        With ``data``: the share of the file's samples held out as the test set.
    loss : str
        ``"mse"`` (PDEBench's training loss) or ``"rel_l2"``.
    normalize : bool
        Standardise input channels and divide targets by their RMS, both with pool statistics. nRMSE and
        relative L2 are scale-invariant, so the metrics are those of the raw data.
    cache_dir : str, optional
        Where generated data is cached (default: the PDE module's cache directory).
    **params
        Generator arguments (``n_samples``, ``n_test``, ``resolution``, ``nu``, ...) or loader options.
    """

    primary_metric = "nrmse"
    direction = "min"

    def __init__(
        self,
        name: str,
        *,
        data: str | None = None,
        seed: int = 0,
        test_fraction: float = 0.2,
        loss: str = "mse",
        normalize: bool = True,
        cache_dir: str | None = None,
        **params,
    ):
        if name not in GENERATED_DEFAULTS:
            raise ValueError(f"unknown PDE task {name!r}; known: {sorted(GENERATED_DEFAULTS)}")
        if loss not in LOSSES:
            raise ValueError(f"task {name!r}: loss must be one of {LOSSES}, got {loss!r}")
        if not 0 < test_fraction < 1:
            raise ValueError(f"task {name!r}: test_fraction must lie in (0, 1), got {test_fraction}")
        check_data_options(name, params, LOADER_OPTIONS, data, f"only loader options {LOADER_OPTIONS}")
        self.name, self.data_path, self.seed = name, data, int(seed)
        self.test_fraction, self.loss_name, self.normalize, self.cache_dir = (
            test_fraction,
            loss,
            normalize,
            cache_dir,
        )
        self.params = params if data is not None else {**GENERATED_DEFAULTS[name], **params}
        if data is None:
            _check_generator_options(name, params)

    # ------------------------------------------------------------------ data
    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self.data_path is not None:
            from modelbalance.experiments.pde import load_pde_file

            inputs, targets = load_pde_file(self.data_path, **self.params)
            if len(inputs) < 3:
                raise ValueError(f"{self.data_path}: {len(inputs)} sample(s) is too few to split")
            order = np.random.default_rng(self.seed).permutation(len(inputs))
            n_test = max(1, int(round(self.test_fraction * len(inputs))))
            test, pool = np.sort(order[:n_test]), np.sort(order[n_test:])
            return inputs[pool], targets[pool], inputs[test], targets[test]
        from modelbalance.experiments.pde import generate

        params = dict(self.params)
        n_samples, n_test = params.pop("n_samples"), params.pop("n_test")
        common = {"cache_dir": self.cache_dir, **params}
        x_pool, y_pool = generate(self.name, n_samples, seed=self.seed, **common)
        x_test, y_test = generate(self.name, n_test, seed=self.seed + TEST_SEED_OFFSET, **common)
        return x_pool, y_pool, x_test, y_test

    def load(self) -> TaskData:
        x_pool, y_pool, x_test, y_test = self._arrays()
        if x_pool.ndim not in (3, 4):
            raise ValueError(
                f"task {self.name!r}: need (N, channels, x) or (N, channels, x, y) fields, got {x_pool.shape}"
            )
        if self.normalize:
            axes = (0, *range(2, x_pool.ndim))
            mean = x_pool.mean(axis=axes, keepdims=True)
            std = x_pool.std(axis=axes, keepdims=True)
            std = np.where(std > 0, std, 1.0)
            x_pool, x_test = (x_pool - mean) / std, (x_test - mean) / std
            scale = float(np.sqrt(np.mean(y_pool.astype(np.float64) ** 2))) or 1.0
            y_pool, y_test = y_pool / scale, y_test / scale

        def dataset(x, y):
            return TensorDataset(
                torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32),
                torch.as_tensor(np.ascontiguousarray(y), dtype=torch.float32),
            )

        spec = {
            "in_channels": x_pool.shape[1],
            "out_channels": y_pool.shape[1],
            "grid": tuple(x_pool.shape[2:]),
            "n_dims": x_pool.ndim - 2,
        }
        return TaskData(train_pool=dataset(x_pool, y_pool), test=dataset(x_test, y_test), spec=spec)

    # ------------------------------------------------------------------ objective
    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.loss_name == "mse":
            return torch.nn.functional.mse_loss(prediction, target)
        dims = tuple(range(1, prediction.ndim))
        return ((prediction - target).pow(2).sum(dims).sqrt() / target.pow(2).sum(dims).sqrt()).mean()

    def metrics(self, prediction: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        return field_metrics(prediction, target)

    def describe(self) -> str:
        if self.data_path is not None:
            return f"{self.name} from {self.data_path}"
        shown = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.name} (generated: {shown})"


def _check_generator_options(name: str, params: dict) -> None:
    """Unknown generator options as one line naming the known ones (not a TypeError from deep inside)."""
    import inspect

    from modelbalance.experiments.pde import datasets
    from modelbalance.experiments.registry import unknown_option

    parameters = inspect.signature(datasets.TASKS[name]).parameters
    known = ["n_samples", "n_test"] + [
        p
        for p, spec in parameters.items()
        if spec.kind is spec.KEYWORD_ONLY and p not in ("seed", "progress")
    ]
    for key in params:
        if key not in known:
            raise unknown_option("task", name, key, known)


def field_metrics(prediction: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """nRMSE (PDEBench) and relative L2 of fields (N, channels, *grid): the PDE tasks' metrics."""
    from modelbalance.experiments.metrics import nrmse, relative_l2

    return {"nrmse": float(nrmse(prediction, target)), "rel_l2": float(relative_l2(prediction, target))}


def _register(name: str, help: str) -> None:
    @TASKS.register(name, help=help)
    def build(**params) -> PDETask:
        return PDETask(name, **params)


_register("burgers", "1-D viscous Burgers u(x,0) -> u(x,t) (nRMSE)")
_register("advection", "1-D linear advection u(x,0) -> u(x,t) (nRMSE)")
_register("reaction_diffusion", "1-D Fisher-KPP reaction-diffusion u(x,0) -> u(x,t) (nRMSE)")
_register("darcy", "2-D Darcy flow coefficient -> pressure (nRMSE)")

# Autoregressive time-series tasks (cfd1d, rollout) live in their own module; importing it registers them.
from modelbalance.experiments.tasks import rollout as _rollout  # noqa: E402, F401
