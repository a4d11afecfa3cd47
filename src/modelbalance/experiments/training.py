"""The generic training loop of the runner: optimizer, base scheduler, epochs, evaluation.

Nothing here knows about balancing: a method changes the optimizer's param groups before this loop starts and
attaches to ``optimizer.step`` through hooks, so baseline and balanced runs go through identical code.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from modelbalance.experiments.tasks import Task


@dataclass(frozen=True)
class TrainSettings:
    """How one run trains (everything but the model, the data and the method).

    Examples
    --------
    >>> settings = TrainSettings(epochs=2, batch_size=8, lr=1e-3)
    >>> settings.steps_per_epoch(20), settings.total_steps(20)
    (3, 6)
    >>> TrainSettings(epochs=2, batch_size=8, lr=1e-3, steps=10).total_steps(20)  # a fixed step budget
    10
    """

    epochs: int
    batch_size: int
    lr: float
    optimizer: str = "adamw"
    momentum: float = 0.9
    weight_decay: float = 0.0
    scheduler: str = "cosine"
    warmup: float = 0.0
    min_lr_ratio: float = 0.0
    step_epochs: int = 10
    step_gamma: float = 0.5
    grad_clip: float | None = None
    eval_batch_size: int = 128
    steps: int | None = None  # when set: exactly this many optimizer steps, whatever the training-set size

    def steps_per_epoch(self, n_train: int) -> int:
        return max(1, math.ceil(n_train / self.batch_size))

    def total_steps(self, n_train: int) -> int:
        return self.steps if self.steps is not None else self.epochs * self.steps_per_epoch(n_train)

    def num_epochs(self, n_train: int) -> int:
        """Epochs to run (the last one cut short when ``steps`` is not a multiple of the epoch length)."""
        return math.ceil(self.total_steps(n_train) / self.steps_per_epoch(n_train))


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (the model's initialisation follows from this); cuDNN picks deterministic
    kernels, so reruns on one GPU repeat too."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def make_optimizer(param_groups: list[dict], settings: TrainSettings) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD over ``param_groups``; groups without an ``lr`` get ``settings.lr``.

    Examples
    --------
    >>> model = torch.nn.Linear(3, 2)
    >>> opt = make_optimizer([{"params": list(model.parameters())}], TrainSettings(1, 1, lr=0.1, optimizer="sgd"))
    >>> opt.param_groups[0]["lr"]
    0.1
    """
    name = settings.optimizer
    if name == "adamw":
        return torch.optim.AdamW(param_groups, lr=settings.lr, weight_decay=settings.weight_decay)
    if name == "adam":
        return torch.optim.Adam(param_groups, lr=settings.lr, weight_decay=settings.weight_decay)
    if name == "sgd":
        return torch.optim.SGD(
            param_groups, lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay
        )
    raise ValueError(f"unknown optimizer {name!r}; known: adam, adamw, sgd")


def lr_multiplier(settings: TrainSettings, steps_per_epoch: int, total_steps: int) -> Callable[[int], float]:
    """The base schedule as a function of the step: multiplies every group's initial lr.

    Linear warm-up over ``warmup * total_steps`` steps, then constant, cosine or linear decay to
    ``min_lr_ratio``, or a step decay by ``step_gamma`` every ``step_epochs`` epochs.

    Examples
    --------
    >>> f = lr_multiplier(TrainSettings(1, 1, 1.0, scheduler="cosine"), steps_per_epoch=10, total_steps=10)
    >>> round(f(0), 3), round(f(5), 3)
    (1.0, 0.5)
    """
    warmup_steps = int(round(settings.warmup * total_steps))
    floor = settings.min_lr_ratio

    def multiplier(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if settings.scheduler == "constant":
            return 1.0
        if settings.scheduler == "step":
            epoch = step // steps_per_epoch
            return settings.step_gamma ** (epoch // settings.step_epochs)
        span = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / span)
        if settings.scheduler == "cosine":
            return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
        if settings.scheduler == "linear":
            return floor + (1.0 - floor) * (1.0 - progress)
        raise ValueError(f"unknown scheduler {settings.scheduler!r}; known: constant, cosine, linear, step")

    return multiplier


def make_scheduler(
    optimizer: torch.optim.Optimizer, settings: TrainSettings, n_train: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step LambdaLR implementing :func:`lr_multiplier` (stepped once per optimizer step)."""
    multiplier = lr_multiplier(settings, settings.steps_per_epoch(n_train), settings.total_steps(n_train))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)


def _loader(
    dataset: Dataset, batch_size: int, *, shuffle: bool, generator: torch.Generator | None, collate=None
) -> DataLoader:
    # No workers: the runner's models are small and worker start-up would dominate on CPU.
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        num_workers=0,
        collate_fn=collate,
    )


def to_device(value, device: torch.device):
    """``value`` with every tensor inside (nested in dicts, lists, tuples) moved to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(v, device) for v in value)
    return value


@dataclass
class TrainResult:
    """What :func:`train` measured: the mean training loss per epoch and the wall time."""

    epoch_losses: list[float]
    train_time_s: float
    steps: int


def train(
    model: torch.nn.Module,
    task: Task,
    train_set: Dataset,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    settings: TrainSettings,
    *,
    seed: int,
    device: torch.device,
    on_step: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train ``model`` for ``settings.total_steps`` optimizer steps (``epochs`` epochs unless ``steps`` is set);
    batches are shuffled by a generator seeded with ``seed``.

    A non-finite loss stops the run with a FloatingPointError (recorded as a failed run by the runner).
    """
    generator = torch.Generator().manual_seed(seed)
    loader = _loader(train_set, settings.batch_size, shuffle=True, generator=generator, collate=task.collate)
    model.train()
    epoch_losses: list[float] = []
    step = 0
    start = time.perf_counter()
    n_train = len(train_set)
    total_steps = settings.total_steps(n_train)
    for epoch in range(settings.num_epochs(n_train)):
        total, count = 0.0, 0
        for batch in loader:
            if step == total_steps:
                break
            inputs, target = task.split_batch(to_device(batch, device))
            optimizer.zero_grad(set_to_none=True)
            loss = task.loss(task.predict(model, inputs), target)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"non-finite training loss {loss.item()} at epoch {epoch}, step {step}"
                )
            loss.backward()
            if settings.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            size = len(target)
            total += loss.item() * size
            count += size
            if on_step is not None:
                on_step(step)
        epoch_losses.append(total / max(count, 1))
    return TrainResult(epoch_losses=epoch_losses, train_time_s=time.perf_counter() - start, steps=step)


@torch.no_grad()
def evaluate(model: torch.nn.Module, task: Task, dataset: Dataset, *, batch_size: int, device: torch.device):
    """The task's metrics over ``dataset`` (predictions concatenated, then scored once)."""
    was_training = model.training
    model.eval()
    predictions, targets = [], []
    for batch in _loader(dataset, batch_size, shuffle=False, generator=None, collate=task.collate):
        inputs, target = task.split_batch(to_device(batch, device))
        predictions.append(task.predict(model, inputs).detach())
        targets.append(target.detach())
    model.train(was_training)
    return task.metrics(torch.cat(predictions), torch.cat(targets))
