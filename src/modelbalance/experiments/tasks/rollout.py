"""Autoregressive tasks on time series (PDEBench's "autoregressive" training), behind the runner's Task interface.

A sample is a whole trajectory ``(channels, time, *space)``. The model sees ``initial_step`` consecutive
snapshots stacked as channels (``channels * initial_step`` in, ``channels`` out) and predicts the next one;
its prediction is appended to the window and the oldest snapshot dropped, and so on::

    modelbalance experiment --task cfd1d --model fno --sizes 54,225 ...                   # generated data
    modelbalance experiment --task cfd1d --data 1D_CFD_Rand_Eta0.1_Zeta0.1_periodic_Train.hdf5 \\
        --task-param stride=8 --task-param time_stride=5 ...                              # PDEBench's file

What PDEBench's training loops (``pdebench/models/{fno,unet}/train.py``) do, and this task does too:

* training rolls out from the ``initial_step`` given snapshots to time index ``t_train`` (exclusive), always
  feeding the model its own predictions (no teacher forcing), and back-propagates through the whole rollout;
  the loss is the sum over the rolled-out steps of the per-step MSE (``loss_reduction="sum"``; ``"mean"``
  divides by the number of steps).
* ``unroll_step=k`` is PDEBench's UNet "pushforward" variant: the first ``t_train - initial_step - k`` steps
  run without gradients and only the last ``k`` steps enter the loss (PDEBench's UNet uses k = 20, more than
  the 11 rolled-out steps of its 1D CFD setting, so there it changes nothing). None (default) = every step.
* evaluation (``model.eval()``) rolls out to the end of the trajectory; the metric is PDEBench's nRMSE over
  the rolled-out steps only (the given snapshots excluded): per sample, channel and time step the RMSE over
  space divided by the RMS of the target, averaged over samples, then over channels and time steps
  (:func:`~modelbalance.experiments.metrics.nrmse_per_step`). Metrics: ``nrmse`` (primary), ``nrmse_<channel>``
  for each channel, ``nrmse_final`` (the last time step) and ``rmse``.
* data are not normalised (``normalize=False``). With ``normalize=True`` each channel is standardised with
  the pool's mean and standard deviation (the model and the loss work on standardised fields; the metrics
  are computed on de-standardised ones, so they stay PDEBench's).
* PDEBench's FNO also feeds the grid coordinates; the project's FNO (neuraloperator) appends its own
  positional channels, the UNet gets none (as PDEBench's UNet).

Data: ``cfd1d`` generates 1D compressible Navier-Stokes trajectories
(:func:`~modelbalance.experiments.pde.datasets.generate_cfd1d`; pool seed ``seed``, test seed ``seed + 10000``)
or reads a user file with ``data=PATH``: PDEBench's ``1D_CFD_*.hdf5`` (datasets ``density``, ``Vx``,
``pressure``; 2D/3D CFD files with ``Vy``/``Vz`` work the same way), or any file
:func:`~modelbalance.experiments.pde.loaders.load_trajectories` reads. ``rollout`` is the same task for any
user file of time series (e.g. PDEBench's Burgers or advection ``tensor`` files), or, with
``generator=burgers|advection|reaction_diffusion``, for trajectories of the project's 1-D generators (snapshots
at ``t_k = k t_final / (n_times - 1)``, channel ``u``). As in PDEBench, the first
``test_fraction`` (10%) of a file's samples are the test set and the rest is the training pool (a 10,000-sample
PDEBench file gives its 9,000-sample pool).

Bad input (a file without the expected datasets, ``initial_step`` >= the number of time steps, ``t_train``
outside ``initial_step + 1 .. nt``, options that do not apply) raises ValueError when the task is built or
loaded, before any training.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

from modelbalance.experiments.registry import TASKS
from modelbalance.experiments.tasks import Task, TaskData, check_data_options

__all__ = [
    "RolloutTask",
    "build_cfd1d",
    "build_rollout",
    "CFD_CHANNELS",
    "GENERATED_DEFAULTS",
    "ROLLOUT_GENERATORS",
]

ROLLOUT_OPTIONS = ("initial_step", "t_train", "unroll_step", "loss_reduction", "normalize")
FILE_OPTIONS = ("stride", "time_stride", "max_samples", "layout", "test_fraction")
LOSS_REDUCTIONS = ("sum", "mean")
TEST_SEED_OFFSET = 10_000  # the generated test set uses seed + this (as the other PDE tasks)
CFD_CHANNELS = ("density", "velocity", "pressure")
# CPU-sized defaults of generated trajectories; every argument of the generator can be overridden.
GENERATED_DEFAULTS: dict[str, Any] = {"n_samples": 256, "n_test": 64, "resolution": 128, "n_times": 21}
ROLLOUT_GENERATORS = ("burgers", "advection", "reaction_diffusion")


class RolloutTask(Task):
    """Autoregressive next-step prediction on trajectories ``(N, C, T, *space)`` (module docstring).

    Examples
    --------
    >>> pool = np.random.default_rng(0).normal(size=(6, 2, 5, 16)).astype(np.float32)
    >>> task = RolloutTask("toy_series", lambda: (pool, pool[:2]), initial_step=2)
    >>> data = task.load()
    >>> data.spec["in_channels"], data.spec["out_channels"], data.spec["grid"]
    (4, 2, (16,))

    Parameters
    ----------
    name : str
        The registered name.
    source : callable
        ``source() -> (pool, test)``, two float arrays ``(N, C, T, *space)`` with equal C, T and space.
    channel_names : sequence of str, optional
        Names of the channels in the metrics (``nrmse_<name>``); default ``c0, c1, ...``.
    initial_step : int
        Snapshots the model sees (PDEBench: 10).
    t_train : int, optional
        Training rolls out to this time index (exclusive); default (None) the whole trajectory. Must lie in
        ``initial_step + 1 .. T``.
    unroll_step : int, optional
        Pushforward: only the last ``unroll_step`` training steps get gradients and enter the loss.
    loss_reduction : {"sum", "mean"}
        Sum (PDEBench) or mean over the rolled-out steps of the per-step MSE.
    normalize : bool
        Standardise each channel with pool statistics (metrics stay in the data's units).
    data_path : str, optional
        The user file the data come from (for the run record).
    description : str, optional
        What :meth:`describe` says.
    """

    primary_metric = "nrmse"
    direction = "min"

    def __init__(
        self,
        name: str,
        source: Callable[[], tuple[np.ndarray, np.ndarray]],
        *,
        channel_names: Sequence[str] | None = None,
        initial_step: int = 10,
        t_train: int | None = None,
        unroll_step: int | None = None,
        loss_reduction: str = "sum",
        normalize: bool = False,
        data_path: str | None = None,
        description: str | None = None,
    ):
        self.name, self.source, self.data_path = name, source, data_path
        self.initial_step = _positive_int(name, "initial_step", initial_step)
        self.t_train = None if t_train is None else _positive_int(name, "t_train", t_train)
        if self.t_train is not None and self.t_train <= self.initial_step:
            raise ValueError(
                f"task {name!r}: t_train={self.t_train} must exceed initial_step={self.initial_step} "
                "(training predicts the snapshots initial_step .. t_train - 1)"
            )
        self.unroll_step = None if unroll_step is None else _positive_int(name, "unroll_step", unroll_step)
        if loss_reduction not in LOSS_REDUCTIONS:
            raise ValueError(
                f"task {name!r}: loss_reduction must be one of {LOSS_REDUCTIONS}, got {loss_reduction!r}"
            )
        if not isinstance(normalize, bool):
            raise ValueError(f"task {name!r}: normalize must be true or false, got {normalize!r}")
        self.loss_reduction, self.normalize = loss_reduction, normalize
        self.channel_names = None if channel_names is None else tuple(str(c) for c in channel_names)
        self.description = description or name
        self.n_times: int | None = None
        self._mean: torch.Tensor | None = None
        self._std: torch.Tensor | None = None

    # ------------------------------------------------------------------ data
    def load(self) -> TaskData:
        pool, test = self.source()
        pool, test = np.asarray(pool), np.asarray(test)
        for split, array in (("pool", pool), ("test", test)):
            if array.ndim < 4:
                raise ValueError(
                    f"task {self.name!r}: {split} trajectories must be (N, channels, time, *space), got {array.shape}"
                )
            if len(array) == 0:
                raise ValueError(f"task {self.name!r}: the {split} split is empty")
        if pool.shape[1:] != test.shape[1:]:
            raise ValueError(
                f"task {self.name!r}: pool {pool.shape} and test {test.shape} trajectories differ in shape"
            )
        n_channels, n_times = pool.shape[1], pool.shape[2]
        check_time_steps(self.name, self.initial_step, self.t_train, n_times)
        if self.channel_names is None:
            self.channel_names = tuple(f"c{c}" for c in range(n_channels))
        elif len(self.channel_names) != n_channels:
            raise ValueError(
                f"task {self.name!r}: {n_channels} channels but {len(self.channel_names)} channel names"
            )
        for split, array in (("pool", pool), ("test", test)):
            if not np.isfinite(array).all():
                raise ValueError(f"task {self.name!r}: the {split} trajectories contain non-finite values")
        self.n_times = n_times
        if self.normalize:
            axes = (0, *range(2, pool.ndim))
            mean = pool.astype(np.float64).mean(axis=axes)
            std = pool.astype(np.float64).std(axis=axes)
            std = np.where(std > 0, std, 1.0)
            shape = (1, n_channels) + (1,) * (pool.ndim - 2)
            self._mean = torch.as_tensor(mean.reshape(shape), dtype=torch.float32)
            self._std = torch.as_tensor(std.reshape(shape), dtype=torch.float32)
            pool = (pool - mean.reshape(shape)) / std.reshape(shape)
            test = (test - mean.reshape(shape)) / std.reshape(shape)

        def dataset(array):
            return TensorDataset(torch.as_tensor(np.ascontiguousarray(array), dtype=torch.float32))

        spec = {
            "in_channels": n_channels * self.initial_step,
            "out_channels": n_channels,
            "grid": tuple(pool.shape[3:]),
            "n_dims": pool.ndim - 3,
            "n_times": n_times,
            "initial_step": self.initial_step,
        }
        return TaskData(train_pool=dataset(pool), test=dataset(test), spec=spec)

    def split_batch(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of trajectories is both the input (its first snapshots) and the target (the rest)."""
        trajectories = batch[0] if isinstance(batch, (list, tuple)) else batch
        return trajectories, trajectories

    # ------------------------------------------------------------------ rollout
    def rollout_end(self, training: bool, n_times: int) -> int:
        """The time index (exclusive) a rollout reaches: ``t_train`` when training, else the trajectory's end."""
        if training and self.t_train is not None:
            return min(self.t_train, n_times)
        return n_times

    def predict(self, model: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        """Roll ``model`` out from the first ``initial_step`` snapshots of ``inputs`` (B, C, T, *space).

        Returns the predicted snapshots ``initial_step .. end - 1`` as (B, C, end - initial_step, *space), with
        ``end`` = ``t_train`` in training mode and ``T`` in eval mode.
        """
        k = self.initial_step
        batch, channels, n_times, *space = inputs.shape
        if n_times <= k:
            raise ValueError(
                f"task {self.name!r}: trajectories of {n_times} steps are too short for initial_step={k}"
            )
        n_steps = self.rollout_end(model.training, n_times) - k
        n_free = (
            max(0, n_steps - self.unroll_step) if (self.unroll_step is not None and model.training) else 0
        )
        window = inputs[:, :, :k]
        outputs = []
        for step in range(n_steps):
            stacked = window.reshape(batch, channels * k, *space)
            if step < n_free:
                with torch.no_grad():
                    snapshot = model(stacked)
            else:
                snapshot = model(stacked)
            if step == 0 and tuple(snapshot.shape) != (batch, channels, *space):
                raise ValueError(
                    f"task {self.name!r}: the model maps {tuple(stacked.shape)} to {tuple(snapshot.shape)}; "
                    f"a rollout needs {(batch, channels, *space)}"
                )
            outputs.append(snapshot)
            window = torch.cat([window[:, :, 1:], snapshot.unsqueeze(2)], dim=2)
        return torch.stack(outputs, dim=2)

    def _aligned_target(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        k, n = self.initial_step, prediction.shape[2]
        if target.shape[2] < k + n or target.shape[:2] != prediction.shape[:2]:
            raise ValueError(
                f"task {self.name!r}: prediction {tuple(prediction.shape)} does not fit target trajectories "
                f"{tuple(target.shape)} after {k} initial steps"
            )
        return target[:, :, k : k + n]

    # ------------------------------------------------------------------ objective
    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = self._aligned_target(prediction, target)
        if self.unroll_step is not None:
            start = max(0, prediction.shape[2] - self.unroll_step)
            prediction, target = prediction[:, :, start:], target[:, :, start:]
        dims = (0, 1, *range(3, prediction.ndim))
        per_step = (prediction - target).pow(2).mean(dim=dims)
        return per_step.sum() if self.loss_reduction == "sum" else per_step.mean()

    def metrics(self, prediction: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        from modelbalance.experiments.metrics import nrmse_per_step

        target = self._aligned_target(prediction, target)
        prediction, target = prediction.detach().double(), target.detach().double()
        if self._mean is not None:  # (1, C, 1, *ones): broadcasts over samples, time and space
            mean, std = self._mean.to(target), self._std.to(target)
            prediction, target = prediction * std + mean, target * std + mean
        table = nrmse_per_step(prediction, target)  # (C, steps)
        space = tuple(range(3, target.ndim))
        rmse = (prediction - target).pow(2).mean(dim=space).sqrt().mean()
        names = self.channel_names or tuple(f"c{c}" for c in range(table.shape[0]))
        result = {
            "nrmse": float(table.mean()),
            "nrmse_final": float(table[:, -1].mean()),
            "rmse": float(rmse),
        }
        for name, row in zip(names, table):
            result[f"nrmse_{name}"] = float(row.mean())
        return result

    def describe(self) -> str:
        return self.description


# ---------------------------------------------------------------------------------------------------- factories
def _split_options(name: str, params: dict[str, Any], data: str | None) -> tuple[dict, dict]:
    rollout = {k: params.pop(k) for k in ROLLOUT_OPTIONS if k in params}
    takes = f"rollout options {ROLLOUT_OPTIONS} and file options {FILE_OPTIONS}"
    check_data_options(name, params, FILE_OPTIONS, data, takes)
    return rollout, params


def _file_source(
    name: str, path: str, options: dict[str, Any]
) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    test_fraction = options.pop("test_fraction", 0.1)
    if (
        isinstance(test_fraction, bool)
        or not isinstance(test_fraction, (int, float))
        or not 0 < test_fraction < 1
    ):
        raise ValueError(f"task {name!r}: test_fraction must lie in (0, 1), got {test_fraction!r}")

    def source() -> tuple[np.ndarray, np.ndarray]:
        from modelbalance.experiments.pde.loaders import load_trajectories

        trajectories = load_trajectories(path, **options)
        n = len(trajectories)
        if n < 3:
            raise ValueError(f"{path}: {n} trajectory(ies) is too few to split into pool and test")
        n_test = min(n - 2, max(1, int(n * test_fraction)))  # PDEBench: the first test_ratio of the file
        return trajectories[n_test:], trajectories[:n_test]

    return source


def _rollout_from_file(name: str, data: str, params: dict[str, Any], channel_names=None) -> RolloutTask:
    rollout, options = _split_options(name, dict(params), data)
    return RolloutTask(
        name,
        _file_source(name, data, options),
        channel_names=channel_names,
        data_path=data,
        description=f"{name} from {data} (autoregressive, initial_step {rollout.get('initial_step', 10)})",
        **rollout,
    )


@TASKS.register(
    "cfd1d", help="1-D compressible Navier-Stokes, autoregressive rollout (PDEBench 1D CFD; nRMSE)"
)
def build_cfd1d(
    *, data: str | None = None, seed: int = 0, cache_dir: str | None = None, **params
) -> RolloutTask:
    """The ``cfd1d`` task: generated trajectories, or a PDEBench ``1D_CFD_*.hdf5`` file with ``data``.

    Usage: ``task = build_cfd1d(n_samples=64, n_test=16, initial_step=10)``; ``build_cfd1d(data="1D_CFD_...
    .hdf5", stride=8, time_stride=5)``. ``params`` hold rollout options (``initial_step``, ``t_train``,
    ``unroll_step``, ``loss_reduction``, ``normalize``) and either generator arguments (``n_samples``,
    ``n_test``, ``resolution``, ``n_times``, ``eta``, ``zeta``, ...) or, with ``data``, file options
    (``stride``, ``time_stride``, ``max_samples``, ``layout``, ``test_fraction``).
    """
    if data is not None:
        return _rollout_from_file("cfd1d", data, params, channel_names=CFD_CHANNELS)
    return _generated_rollout("cfd1d", "cfd1d", params, seed, cache_dir, CFD_CHANNELS)


@TASKS.register(
    "rollout",
    help="autoregressive rollout: a time-series file (--data), or generated trajectories "
    "(generator=burgers|advection|reaction_diffusion; nRMSE)",
)
def build_rollout(
    *,
    data: str | None = None,
    seed: int = 0,
    generator: str | None = None,
    cache_dir: str | None = None,
    **params,
) -> RolloutTask:
    """The ``rollout`` task: any time-series file :func:`~modelbalance.experiments.pde.loaders.load_trajectories`
    reads, e.g. ``build_rollout(data="1D_Burgers_Sols_Nu0.01.hdf5", stride=4)``; or trajectories of one of the
    project's 1-D generators, ``build_rollout(generator="burgers", n_samples=64, n_times=21, nu=0.01)``
    (snapshots at ``t_k = k t_final / (n_times - 1)``, the same solver as the pair tasks)."""
    if data is not None:
        if generator is not None:
            raise ValueError("task 'rollout': give either a data file (--data) or generator=..., not both")
        return _rollout_from_file("rollout", data, params)
    if generator is None:
        raise ValueError(
            "task 'rollout' needs a data file (--data PATH with time series) or generated trajectories "
            f"(--task-param generator=NAME, NAME one of {', '.join(ROLLOUT_GENERATORS)})"
        )
    if generator not in ROLLOUT_GENERATORS:
        raise ValueError(
            f"task 'rollout': unknown generator {generator!r}; known: {', '.join(ROLLOUT_GENERATORS)}"
        )
    return _generated_rollout("rollout", generator, params, seed, cache_dir, ("u",))


def _generated_rollout(
    name: str, generator: str, params: dict, seed: int, cache_dir: str | None, channel_names
) -> RolloutTask:
    """A rollout task on trajectories of ``generator`` (pool seed ``seed``, test seed ``seed + 10000``); every
    option is checked before anything is generated."""
    from modelbalance.experiments.pde.cfd1d import CFDSolverError
    from modelbalance.experiments.pde.datasets import TASKS as GENERATORS

    rollout, options = _split_options(name, dict(params), None)
    options = {**GENERATED_DEFAULTS, **options}
    n_samples, n_test = options.pop("n_samples"), options.pop("n_test")
    generate = GENERATORS[generator]
    accepted = set(inspect.signature(generate).parameters) - {"n_samples", "seed", "cache_dir", "use_cache"}
    stray = sorted(set(options) - accepted)
    if stray:
        raise ValueError(f"task {name!r}: unknown option(s) {stray}; generator options: {sorted(accepted)}")
    seed = int(seed)
    if isinstance(options.get("n_times"), int):  # known before generating: fail before the solver runs
        check_time_steps(name, rollout.get("initial_step", 10), rollout.get("t_train"), options["n_times"])

    def generated(what: str, n: int, seed: int) -> np.ndarray:
        try:
            return generate(n, seed=seed, cache_dir=cache_dir, **options)
        except CFDSolverError as err:  # say which set: sample numbers count within it
            raise CFDSolverError(
                f"generating the {what} ({n} samples, seed {seed}): {err}",
                sample=err.sample,
                step=err.step,
                time=err.time,
            ) from None

    def source() -> tuple[np.ndarray, np.ndarray]:
        return generated("training pool", n_samples, seed), generated(
            "test set", n_test, seed + TEST_SEED_OFFSET
        )

    shown = ", ".join(f"{k}={v}" for k, v in {"n_samples": n_samples, "n_test": n_test, **options}.items())
    label = name if name == generator else f"{name} of {generator}"
    return RolloutTask(
        name, source, channel_names=channel_names, description=f"{label} (generated: {shown})", **rollout
    )


def check_time_steps(task: str, initial_step, t_train, n_times: int) -> None:
    """Refuse an ``initial_step`` (or ``t_train``) that leaves nothing to predict in ``n_times`` snapshots."""
    if isinstance(initial_step, int) and initial_step >= n_times:
        raise ValueError(
            f"task {task!r}: initial_step={initial_step} must be below the number of time steps "
            f"({n_times}); nothing would be left to predict"
        )
    if isinstance(t_train, int) and t_train > n_times:
        raise ValueError(
            f"task {task!r}: t_train={t_train} exceeds the number of time steps ({n_times}); use at most {n_times}"
        )


def _positive_int(task: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"task {task!r}: {name} must be a positive integer, got {value!r}")
    return int(value)
