"""``toy``: a seconds-fast 1-D operator-learning task for smoke tests and examples.

Inputs are random band-limited periodic signals u on a grid; the target is a fixed nonlinear operator of u
(periodic smoothing plus a quadratic term), so the task has the shape of a PDE task without a solver::

    modelbalance experiment --task toy --model mlp --fractions 0.25,1 --seeds 0,1 --epochs 3 --out /tmp/toy
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import TensorDataset

from modelbalance.experiments.registry import TASKS
from modelbalance.experiments.tasks import Task, TaskData
from modelbalance.experiments.tasks.pde import field_metrics


class ToyOperatorTask(Task):
    """Random smooth signals -> a fixed smoothing-plus-quadratic operator of them (1 channel in and out).

    Examples
    --------
    >>> task = ToyOperatorTask(n_samples=32, n_test=8, resolution=16)
    >>> data = task.load()
    >>> len(data.train_pool), len(data.test), tuple(data.train_pool[0][0].shape)
    (32, 8, (1, 16))
    """

    name = "toy"
    primary_metric = "nrmse"
    direction = "min"

    def __init__(
        self,
        *,
        n_samples: int = 256,
        n_test: int = 64,
        resolution: int = 32,
        modes: int = 4,
        seed: int = 0,
        data: str | None = None,
    ):
        if data is not None:
            raise ValueError("task 'toy' generates its data; it does not read --data")
        for name, value in (
            ("n_samples", n_samples),
            ("n_test", n_test),
            ("resolution", resolution),
            ("modes", modes),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"toy task: {name} must be a positive integer, got {value!r}")
        if 2 * modes >= resolution:
            raise ValueError(f"toy task: modes {modes} must be below resolution / 2 = {resolution / 2}")
        self.n_samples, self.n_test, self.resolution, self.modes, self.seed = (
            n_samples,
            n_test,
            resolution,
            modes,
            seed,
        )

    def _signals(self, count: int, generator: torch.Generator) -> torch.Tensor:
        x = torch.arange(self.resolution, dtype=torch.float64) / self.resolution
        k = torch.arange(1, self.modes + 1, dtype=torch.float64)
        amplitude = torch.randn(count, self.modes, 2, generator=generator, dtype=torch.float64) / k[:, None]
        phase = 2 * math.pi * k[:, None] * x[None, :]  # (modes, resolution)
        return amplitude[..., 0] @ torch.cos(phase) + amplitude[..., 1] @ torch.sin(phase)

    def _operator(self, u: torch.Tensor) -> torch.Tensor:
        smooth = (torch.roll(u, 1, -1) + 2 * u + torch.roll(u, -1, -1)) / 4
        return smooth + 0.5 * u**2

    def load(self) -> TaskData:
        generator = torch.Generator().manual_seed(self.seed)
        u = self._signals(self.n_samples + self.n_test, generator)
        inputs = u.float().unsqueeze(1)  # (N, 1, resolution)
        targets = self._operator(u).float().unsqueeze(1)
        pool = TensorDataset(inputs[: self.n_samples], targets[: self.n_samples])
        test = TensorDataset(inputs[self.n_samples :], targets[self.n_samples :])
        spec = {"in_channels": 1, "out_channels": 1, "grid": (self.resolution,), "n_dims": 1}
        return TaskData(train_pool=pool, test=test, spec=spec)

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.mse_loss(prediction, target)

    def metrics(self, prediction: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        return field_metrics(prediction, target)

    def describe(self) -> str:
        return f"toy operator, {self.n_samples} pool / {self.n_test} test samples at {self.resolution} points"


@TASKS.register("toy", help="seconds-fast synthetic 1-D operator task (smoke tests)")
def build_toy_task(**params) -> ToyOperatorTask:
    return ToyOperatorTask(**params)
