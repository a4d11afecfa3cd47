"""Hugging Face Trainer: TempBalance as a callback, and a Trainer with one optimizer param group per unit.

Example
-------
>>> from modelbalance.integrations.hf import TempBalanceTrainer
>>> trainer = TempBalanceTrainer(
...     model=model, args=training_args, train_dataset=train_set,
...     tempbalance=dict(unit="block", mapping="sigmoid", interval=10))  # doctest: +SKIP
>>> trainer.train()  # or trainer.train(resume_from_checkpoint=True)  # doctest: +SKIP
>>> trainer.balancer.factors  # doctest: +SKIP

Why a Trainer subclass. The Trainer's default optimizer has two param groups (decay / no decay), and one
factor per group is meaningless. :class:`TempBalanceTrainer` builds the optimizer the user asked for
(``args.optim``, ``args.learning_rate``, betas, ``optim_args`` ...) from :func:`modelbalance.param_groups`,
one group per balanced unit, with the Trainer's own weight-decay rule (biases and norm weights get none). With
your own Trainer, pass ``optimizers=(torch.optim.AdamW(modelbalance.param_groups(model, ...)), None)`` and add
:class:`TempBalanceCallback`.

Checkpoints. ``on_save`` writes the balancer's state to ``<checkpoint>/tempbalance.pt``; on a resumed run the
callback loads it at train begin, so the resumed run continues exactly as an uninterrupted one. The checkpoint
is found from ``TempBalanceTrainer.train(resume_from_checkpoint=...)``, else ``args.resume_from_checkpoint``,
else ``<output_dir>/checkpoint-<global_step>``.

Logging. After each recompute the next log line carries ``tempbalance/factor/<unit>`` and
``tempbalance/<metric>/<unit>`` (the metric by its own name, e.g. ``tempbalance/alpha_relative/layer.3`` with
the default metric; unit names without their common prefix), or only their min / mean / max with
``log="summary"``. :class:`TempBalanceTrainer` adds them before the reporting integrations see
the logs (TensorBoard, W&B, ...); a bare callback can only add them for the callbacks after it and to
``state.log_history``.

Distributed (DDP / FSDP2 under torchrun or accelerate launch): with ``distributed="auto"`` every rank measures
its share of the layers and all ranks apply identical factors (:mod:`modelbalance.integrations.distributed`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping

import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from ..balance import TempBalance, TempBalanceConfig, param_groups
from .distributed import maybe_shard_measurement, unwrap_model
from .log_values import LOG_MODES, balancer_log_values, short_unit_names

__all__ = [
    "STATE_FILE",
    "TempBalanceCallback",
    "TempBalanceTrainer",
    "balancer_log_values",
    "short_unit_names",
]

STATE_FILE = "tempbalance.pt"


def _as_config(config: TempBalanceConfig | Mapping | None, options: dict) -> TempBalanceConfig:
    if config is None:
        config = TempBalanceConfig()
    elif isinstance(config, Mapping):
        config = TempBalanceConfig().replace(**config)
    elif not isinstance(config, TempBalanceConfig):
        raise TypeError(
            f"tempbalance must be a TempBalanceConfig, a dict of its fields or None, got "
            f"{type(config).__name__}"
        )
    return config.replace(**options) if options else config


def _steps_per_epoch(train_dataloader, accumulation: int) -> int | None:
    """Optimizer steps per epoch, computed the way the Trainer does; None for loaders without a length."""
    try:
        batches = len(train_dataloader)
    except TypeError:
        return None
    return max(batches // accumulation + int(batches % accumulation > 0), 1)


class TempBalanceCallback(TrainerCallback):
    """Runs TempBalance inside a ``transformers.Trainer``: built at train begin, saved with every checkpoint.

    >>> trainer = Trainer(model, args, train_dataset=data,
    ...                   optimizers=(torch.optim.AdamW(modelbalance.param_groups(model), lr=3e-5), None),
    ...                   callbacks=[TempBalanceCallback(interval=10)])  # doctest: +SKIP

    The optimizer must have one param group per unit (:func:`modelbalance.param_groups` with the same unit
    settings); :class:`TempBalanceTrainer` does that for you.

    Parameters
    ----------
    config : TempBalanceConfig or dict, optional
        Balancer settings. With ``interval="epoch"`` and no ``steps_per_epoch``, the steps per epoch are taken
        from the Trainer's dataloader (or, without a length, recomputes happen at each epoch end).
    distributed : True, False or "auto"
        Shard the measurement across ranks (see :mod:`modelbalance.integrations.distributed`); "auto" does so
        when more than one process is running.
    log : {"units", "summary", None}
        What goes into the Trainer's logs after each recompute.
    resume_from : str, optional
        Checkpoint folder to load ``tempbalance.pt`` from when the run resumes (normally found automatically).
    **options
        Config fields given directly (``interval=10``, ``mapping="linear"`` ...).

    Attributes
    ----------
    balancer : TempBalance or None
        The running balancer (kept after training, detached from the optimizer, for inspection).
    """

    def __init__(
        self,
        config: TempBalanceConfig | Mapping | None = None,
        *,
        distributed: bool | str = "auto",
        log: str | None = "units",
        resume_from: str | None = None,
        **options,
    ):
        if log not in LOG_MODES:
            raise ValueError(f"log must be one of {LOG_MODES}, got {log!r}")
        self.config = _as_config(config, options)
        self.distributed = distributed
        self.log_mode = log
        self.resume_from = resume_from
        self.balancer: TempBalance | None = None
        self.logs_via_trainer = False  # set by TempBalanceTrainer, which adds the values in Trainer.log
        self._logged_recomputes = 0

    # ------------------------------------------------------------------------------------------------ set-up
    def on_train_begin(
        self, args, state, control, model=None, optimizer=None, train_dataloader=None, **kwargs
    ):
        if model is None or optimizer is None:
            raise RuntimeError("TempBalanceCallback needs the Trainer's model and optimizer at train begin")
        if self.balancer is not None:  # a second train() call: start over on the new optimizer
            self.balancer.remove()
        config = self.config
        if config.interval == "epoch" and config.steps_per_epoch is None and train_dataloader is not None:
            steps = _steps_per_epoch(train_dataloader, args.gradient_accumulation_steps)
            if steps is not None:
                config = config.replace(steps_per_epoch=steps)
        self.balancer = TempBalance(unwrap_model(model), optimizer, config)
        maybe_shard_measurement(self.balancer, self.distributed)
        self._logged_recomputes = 0
        if state.global_step > 0:
            self._load(args, state)

    def _checkpoint_dir(self, args, state) -> str | None:
        candidates = [self.resume_from]
        if isinstance(getattr(args, "resume_from_checkpoint", None), str):
            candidates.append(args.resume_from_checkpoint)
        candidates.append(os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"))
        for folder in candidates:
            if folder and os.path.isfile(os.path.join(folder, STATE_FILE)):
                return folder
        return None

    def _load(self, args, state) -> None:
        folder = self._checkpoint_dir(args, state)
        if folder is None:
            warnings.warn(
                f"resuming at step {state.global_step} without a saved TempBalance state ({STATE_FILE} "
                "not found in the checkpoint): the balancer starts afresh, measuring at the next step",
                RuntimeWarning,
                stacklevel=2,
            )
            return
        self.balancer.load_state_dict(torch.load(os.path.join(folder, STATE_FILE), weights_only=True))
        self._logged_recomputes = self.balancer.num_recomputes

    # ---------------------------------------------------------------------------------------------- running
    def on_epoch_end(self, args, state, control, **kwargs):
        if self.balancer is not None and self.balancer.config.interval_steps is None:
            self.balancer.epoch_end()

    def on_save(self, args, state, control, **kwargs):
        if self.balancer is None or not args.should_save:
            return
        folder = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
        if not os.path.isdir(folder):
            warnings.warn(
                f"checkpoint folder {folder} not found: TempBalance state not saved (hyperparameter "
                "search runs use their own folders)",
                RuntimeWarning,
                stacklevel=2,
            )
            return
        torch.save(self.balancer.state_dict(), os.path.join(folder, STATE_FILE))

    def pop_log_values(self) -> dict[str, float]:
        """Factors and alphas of a recompute not logged yet; {} otherwise."""
        tb = self.balancer
        if tb is None or tb.num_recomputes == self._logged_recomputes:
            return {}
        self._logged_recomputes = tb.num_recomputes
        return balancer_log_values(tb, self.log_mode)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.logs_via_trainer or logs is None:
            return
        values = self.pop_log_values()
        if values:
            logs.update(values)  # seen by the callbacks after this one
            if state.log_history and state.log_history[-1].get("step") == state.global_step:
                state.log_history[-1].update(values)

    def on_train_end(self, args, state, control, **kwargs):
        if self.balancer is not None:
            self.balancer.remove()


_OWN_GROUP_KEYS = ("params", "model", "optimizer_dict")


class TempBalanceTrainer(Trainer):
    """A ``transformers.Trainer`` with one optimizer param group per balanced unit and TempBalance running.

    >>> trainer = TempBalanceTrainer(model=model, args=args, train_dataset=data,
    ...                              tempbalance=TempBalanceConfig.preset("emnlp_glue"))  # doctest: +SKIP
    >>> trainer.train()  # doctest: +SKIP

    Parameters
    ----------
    *args, **kwargs
        As for ``Trainer``.
    tempbalance : TempBalanceConfig or dict, optional
        Balancer and unit settings (shared by the param groups and the balancer).
    tempbalance_log : {"units", "summary", None}
        What goes into the logs after each recompute.
    tempbalance_distributed : True, False or "auto"
        See :class:`TempBalanceCallback`.

    The optimizer class and its arguments come from ``args`` (``optim``, ``learning_rate``, ``adam_beta1`` ...
    ``optim_args``) or ``optimizer_cls_and_kwargs``, exactly as the Trainer would build them; only the
    grouping changes. Optimizers that build their own groups (GaLore, LOMO, layer-wise or factory optimizers
    such as Muon) cannot be balanced and raise a ValueError.
    """

    def __init__(
        self,
        *args,
        tempbalance: TempBalanceConfig | Mapping | None = None,
        tempbalance_log: str | None = "units",
        tempbalance_distributed: bool | str = "auto",
        **kwargs,
    ):
        self.tempbalance_config = _as_config(tempbalance, {})
        self.tempbalance = TempBalanceCallback(
            self.tempbalance_config, log=tempbalance_log, distributed=tempbalance_distributed
        )
        self.tempbalance.logs_via_trainer = True
        super().__init__(*args, **kwargs)
        self.add_callback(self.tempbalance)

    @property
    def balancer(self) -> TempBalance | None:
        """The running TempBalance (None before ``train()``)."""
        return self.tempbalance.balancer

    def create_optimizer(self, model=None):
        if self.optimizer is not None:
            return self._trainer_create_optimizer(model)
        opt_model = self.model if model is None else model
        cls_and_kwargs = getattr(self, "optimizer_cls_and_kwargs", None)
        if cls_and_kwargs is not None:
            optimizer_cls, optimizer_kwargs = cls_and_kwargs
        else:
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        optimizer_kwargs = dict(optimizer_kwargs)
        own = [key for key in _OWN_GROUP_KEYS if key in optimizer_kwargs]
        if _is_optimizer_factory(optimizer_cls) or own:
            raise ValueError(
                f"optim={self.args.optim!r} builds its own parameter groups, so TempBalance cannot give "
                "each unit its own learning rate; use a standard optimizer (adamw_torch, sgd, "
                "adafactor, ...) with TempBalanceTrainer"
            )
        base = unwrap_model(opt_model)
        decayed = set(self.get_decay_parameter_names(base))
        groups = param_groups(
            base,
            weight_decay=self.args.weight_decay,
            config=self.tempbalance_config,
            no_decay=lambda name, param: name not in decayed,
        )
        self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return self._trainer_create_optimizer(model)  # keeps the Trainer's own wrapping (SageMaker MP)

    def _trainer_create_optimizer(self, model):
        # transformers < 4.47 has create_optimizer(self) without the model argument
        return super().create_optimizer() if model is None else super().create_optimizer(model)

    def train(self, resume_from_checkpoint: str | bool | None = None, *args, **kwargs):
        checkpoint = resume_from_checkpoint
        if checkpoint is True:
            checkpoint = get_last_checkpoint(self.args.output_dir)
        self.tempbalance.resume_from = checkpoint if isinstance(checkpoint, str) else None
        return super().train(resume_from_checkpoint, *args, **kwargs)

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        logs.update(self.tempbalance.pop_log_values())
        return super().log(logs, *args, **kwargs)


def _is_optimizer_factory(optimizer_cls) -> bool:
    try:
        from transformers.trainer_optimizer import is_optimizer_factory
    except ImportError:  # transformers 4.x: no factories
        return False
    return bool(is_optimizer_factory(optimizer_cls))
