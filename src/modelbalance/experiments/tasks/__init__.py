"""The task interface of the experiment runner: data splits, a loss and metrics.

A task plug-in is a factory registered in :data:`~modelbalance.experiments.registry.TASKS`; called with the
config's ``task_params`` (plus ``data``, ``data_seed`` and ``cache_dir`` where it accepts them) it returns a
:class:`Task`. Everything task-specific stays behind this interface, so PDE regression, text classification and
image tasks share the runner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import Dataset


@dataclass
class TaskData:
    """The datasets of a task and the shape facts a model builder needs.

    Examples
    --------
    >>> from torch.utils.data import TensorDataset
    >>> pool = TensorDataset(torch.randn(10, 1, 8), torch.randn(10, 1, 8))
    >>> data = TaskData(train_pool=pool, test=pool, spec={"in_channels": 1, "out_channels": 1, "grid": (8,)})
    >>> len(data.train_pool), data.val is None
    (10, True)

    Attributes
    ----------
    train_pool : Dataset
        The pool the training fractions are drawn from (the runner carves the validation split from it when
        ``val`` is None).
    test : Dataset
        Held-out data, only ever used for the reported metrics.
    val : Dataset or None
        A task's own validation split, if it has one.
    spec : dict
        Facts for model builders, e.g. ``in_channels``, ``out_channels``, ``grid`` (spatial shape), ``num_classes``.
    labels : sequence of int or None
        Class labels of ``train_pool`` (classification tasks): training subsets and the validation split are
        then stratified, and ``shots`` (k examples per class) is available.
    """

    train_pool: Dataset
    test: Dataset
    val: Dataset | None = None
    spec: dict[str, Any] = field(default_factory=dict)
    labels: Any = None


class Task:
    """Base class of runner tasks: subclasses implement :meth:`load`, :meth:`loss` and :meth:`metrics`.

    Examples
    --------
    >>> class Mean(Task):
    ...     name, primary_metric, direction = "mean", "mse", "min"
    ...     def loss(self, prediction, target):
    ...         return torch.nn.functional.mse_loss(prediction, target)
    ...     def metrics(self, prediction, target):
    ...         return {"mse": float(self.loss(prediction, target))}
    >>> Mean().metrics(torch.zeros(3), torch.ones(3))
    {'mse': 1.0}

    Attributes
    ----------
    name : str
        The registered name.
    primary_metric : str
        The key of :meth:`metrics` that tuning and the summary use (e.g. ``"nrmse"``, ``"accuracy"``).
    direction : str
        ``"min"`` when smaller is better, ``"max"`` otherwise.
    """

    name: str = "task"
    primary_metric: str = "loss"
    direction: str = "min"
    #: Batches are built by this function (e.g. dynamic padding of token ids); None = torch's default_collate.
    collate: Any = None
    #: A TempBalanceConfig preset the ``tb`` methods start from on this task (None: the PDE experiment setting).
    tempbalance_preset: str | None = None
    #: The user's data file the task reads, if any (recorded with every run, with its content hash).
    data_path: str | None = None

    @property
    def label(self) -> str:
        """How results tables name the task: the registered name, or the user's data file it reads."""
        if self.data_path:
            from pathlib import Path

            return f"{self.name}:{Path(self.data_path).name}"
        return self.name

    def load(self) -> TaskData:
        """Build or read the datasets (called once per sweep)."""
        raise NotImplementedError

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The training loss of one batch (a scalar tensor)."""
        raise NotImplementedError

    def metrics(self, prediction: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        """Metrics over a whole split, from the concatenated predictions and targets."""
        raise NotImplementedError

    def split_batch(self, batch: Any) -> tuple[Any, torch.Tensor]:
        """(inputs, target) of a batch from the task's datasets; default: a 2-tuple."""
        inputs, target = batch
        return inputs, target

    def predict(self, model: torch.nn.Module, inputs: Any) -> torch.Tensor:
        """The model's prediction for a batch's inputs (override for dict inputs, e.g. text)."""
        return model(inputs)

    def describe(self) -> str:
        """One line for the summary: what the data is."""
        return self.name


def check_data_options(
    name: str, params: dict[str, Any], file_options: tuple[str, ...], data: str | None, takes: str
) -> None:
    """Refuse options that do not fit where a task's data comes from (a ``--data`` file or a generator).

    With ``data``, ``params`` may hold only ``file_options`` (``takes`` says so in the error); without it, none of
    them, since they apply to files only.
    """
    if data is not None:
        stray = sorted(set(params) - set(file_options))
        if stray:
            raise ValueError(
                f"task {name!r} with --data takes {takes}, not {stray} (those shape generated data)"
            )
    else:
        stray = sorted(set(params) & set(file_options))
        if stray:
            raise ValueError(f"task {name!r}: {stray} apply to --data files only")
