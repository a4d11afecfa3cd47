"""TempBalance: per-unit learning-rate (or weight-decay) factors from each unit's spectral alpha.

Example
-------
>>> import torch, torch.nn as nn
>>> from modelbalance.balance import TempBalance, param_groups
>>> model = nn.Sequential(*[nn.Linear(32, 32) for _ in range(3)])
>>> optimizer = torch.optim.SGD(param_groups(model, unit="layer"), lr=0.1)
>>> tb = TempBalance(model, optimizer, unit="layer", mapping="linear", interval=5)
>>> model(torch.randn(4, 32)).sum().backward(); optimizer.step()
>>> sorted(tb.factors)
['0', '1', '2']
"""

from __future__ import annotations

import logging
import math
import warnings
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn

from .composition import GroupScaler
from .config import TempBalanceConfig
from .factors import unit_factors, unit_metrics
from .history import HistoryWriters, fields, recompute_log_line, record, shape_driven, upgrade_record
from .measurement import BackgroundRunner, FrozenLayers, LayerFit, LayerMeasurer, MeasureOutcome
from .optimizer_groups import match_group_units, unwrap_optimizer, warn_if_inert
from .param_groups import plan_from_config
from .state import plain_state
from .units import check_lora_delta_ranks

__all__ = ["TempBalance"]

logger = logging.getLogger("modelbalance.balance")
_TARGET_KEYS = {"lr": ("lr",), "weight_decay": ("weight_decay",), "both": ("lr", "weight_decay")}


@dataclass
class _Pending:
    """A recompute whose factors take effect at ``apply_step`` (computed, or running in the background)."""

    apply_step: int
    measured_step: int
    outcome: MeasureOutcome | None = None
    future: Future | None = None
    reused: int = 0  # frozen layers that kept their fit (not in the outcome)
    measured: list = field(default_factory=list)  # the layers snapshotted
    keys: dict = field(default_factory=dict)  # their weights' keys at the snapshot, for the frozen ones

    def result(self) -> MeasureOutcome:
        if self.outcome is None:
            self.outcome = self.future.result()
            self.future = None
        return self.outcome


class TempBalance:
    """Layer-wise learning-rate balancing (TempBalance) for any PyTorch optimizer and scheduler.

    >>> import torch, torch.nn as nn, modelbalance.balance as mb
    >>> model = nn.Sequential(*[nn.Linear(32, 32) for _ in range(3)])
    >>> opt = torch.optim.AdamW(mb.param_groups(model, weight_decay=0.01, unit="layer"), lr=1e-3)
    >>> tb = mb.TempBalance(model, opt, unit="layer", interval=10)   # the training loop does not change

    Every ``interval`` optimizer steps it measures each unit's alpha (:mod:`modelbalance.spectral`) and maps
    the alphas to factors (larger alpha, i.e. less trained, gives a larger factor). During each
    ``optimizer.step()`` every param group's learning rate is multiplied by its unit's factor, through
    optimizer step hooks: a step pre-hook scales it and a post-hook restores the value the scheduler set, so
    schedulers only ever see the unscaled learning rate and compose exactly.

    Timing: a recompute at step ``s`` (``s = start_step + k * interval``, or an ``epoch_end()`` call after
    ``s`` steps) measures the weights as they are before update ``s`` and its factors first act in update
    ``s + apply_delay`` (0 by default, 1 with ``asynchronous=True``). With the background thread the main thread
    only copies the matrices and waits at ``s + apply_delay`` if the fits are not done, so a run depends on
    the seed and the settings, never on thread timing. Outside ``optimizer.step()`` the groups hold the
    unscaled values (what ``optimizer.state_dict()`` saves); ``remove()`` detaches the hooks, e.g. from a
    training callback.

    Mixed precision: ``torch.amp.GradScaler`` skips ``optimizer.step()`` when gradients overflow, so the hooks
    do not run and ``step_count`` (the recompute clock) counts applied updates only; a scheduler stepped every
    iteration runs ahead of it by the number of skipped steps.

    Parameters
    ----------
    model : nn.Module
        The model whose parameters ``optimizer`` trains.
    optimizer : torch.optim.Optimizer
        Built from :func:`~modelbalance.balance.param_groups` (same unit settings), or from the user's own
        groups as long as no group mixes parameters of two units (or of a unit and unbalanced parameters).
        Every trainable parameter of a balanced unit must be in some group. Wrappers exposing ``.optimizer``
        are unwrapped.
    config : TempBalanceConfig, optional
        All settings (fields documented in :class:`TempBalanceConfig`; paper settings via
        ``TempBalanceConfig.preset``).
    summary_writer : optional
        An object with ``add_scalar(tag, value, step)`` (e.g. a TensorBoard ``SummaryWriter``) to log to.
    **options
        Config fields given directly, overriding ``config``: ``mapping="sigmoid"``, ``unit="auto"``,
        ``interval=10``, ``metric="alpha_relative"``, ``target="lr"``, ``asynchronous=False``, ...

    Attributes
    ----------
    factors : dict
        Current factor per unit (keys: unit names, the ``"name"`` of the groups ``param_groups`` builds).
    alphas : dict
        The (smoothed) alpha behind each factor; NaN where none could be fit.
    history : list of dict
        One record per unit and recompute (``history_frame()`` gives a DataFrame): ``recompute``, ``step``,
        ``unit``, ``factor``, ``lr``, ..., the metric's value under its own name (e.g. ``alpha_relative``,
        with ``_measured`` and ``_stderr`` variants), ``metric`` (that name) and ``alpha`` (the same value,
        whichever metric it is).
    step_count : int
        Optimizer steps taken since construction; the balancer's only clock.
    measurer : LayerMeasurer
        Snapshots and fits the layers at each recompute. Replaceable (e.g. by
        :func:`modelbalance.integrations.distributed.shard_measurement`): ``snapshot(layers, device)`` returns an
        object with ``wait()``; ``run(snapshot, previous, references, step)`` returns a ``MeasureOutcome`` for the
        snapshot's layers. A measurer shared by several processes also needs ``common(names)``: the names every
        process lists, so that all of them leave the same frozen layers out of the snapshot.
    frozen_layers : FrozenLayers
        Layers nothing trains (LoRA's frozen base layers, a frozen encoder: no ``requires_grad``, no ``.grad``)
        are fit once and keep that fit while their weights stay the same
        (:class:`~modelbalance.balance.measurement.FrozenLayers`); ``frozen_layers.forget()`` refits them, e.g.
        after writing their weights through ``.data``.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer,
        config: TempBalanceConfig | None = None,
        *,
        summary_writer=None,
        **options,
    ):
        config = config or TempBalanceConfig()
        self.config = config.replace(**options) if options else config
        self.config.check_runnable()
        self.model = model
        self.optimizer = unwrap_optimizer(optimizer)
        self.plan = plan_from_config(model, self.config)
        if self.config.lora == "delta":
            check_lora_delta_ranks(
                model, self.plan, self.config.min_eigs, xmin=self.config.xmin, xmin_pos=self.config.xmin_pos
            )
        if not self.plan.units:
            raise ValueError(
                f"unit={self.config.unit!r} found no balanced units in {type(model).__name__}"
                + (
                    " (no blocks detected: pass blocks=<regex> or use unit='auto' or 'layer')"
                    if self.config.unit == "block"
                    else " (no trainable nn.Linear / conv / spectral-conv weights outside the excluded layers)"
                )
            )
        unit_setting = repr(self.plan.unit) + (" chosen by 'auto'" if self.plan.requested == "auto" else "")
        self._group_units = match_group_units(self.model, self.optimizer, self.plan, unit_setting)
        self.measurer = LayerMeasurer(
            self.config.fit_config(),
            metric=self.config.metric,
            min_eigs=self.config.min_eigs,
            skip_tolerance=self.config.skip_tolerance,
        )
        self.frozen_layers = FrozenLayers(model, self.plan.layers)
        self._runner = BackgroundRunner() if self.config.asynchronous else None
        self._measure_device = torch.device("cpu") if self.config.measure_device == "cpu" else None
        self._scaler = GroupScaler(_TARGET_KEYS[self.config.target])
        self._writers = HistoryWriters(
            self.config.log_csv, self.config.tensorboard_dir, summary_writer, metric=self.config.metric
        )

        self.step_count = 0
        self.num_recomputes = 0
        self.factors: dict[str, float] = {name: 1.0 for name in self.plan.units}
        self.alphas: dict[str, float] = {name: math.nan for name in self.plan.units}
        self.history: list[dict] = []
        self._last_recompute_step: int | None = None
        self._pending: _Pending | None = None
        self._fits: dict[str, LayerFit] = {}
        self._references: dict[str, torch.Tensor] = {}
        self._ema: dict[str, float] = {}
        self._first_factors: dict[str, float] | None = None
        self._warned_nan: set[str] = set()
        self._shape_logged = False

        self._hooks = [
            self.optimizer.register_step_pre_hook(self._before_step),
            self.optimizer.register_step_post_hook(self._after_step),
        ]
        warn_if_inert(self.optimizer.param_groups, self._group_units, self.config.target)

    def _before_step(self, optimizer, args, kwargs):
        groups = self.optimizer.param_groups
        if len(groups) != len(self._group_units):
            raise RuntimeError(
                f"the optimizer has {len(groups)} param groups, TempBalance was built for "
                f"{len(self._group_units)}; build TempBalance after the last add_param_group"
            )
        self._scaler.restore(groups)  # only does something when the previous step raised
        self._advance(self._due(self.step_count))
        self._scaler.scale(groups, [self.factors[u] if u is not None else 1.0 for u in self._group_units])

    def _after_step(self, optimizer, args, kwargs):
        self._scaler.restore(self.optimizer.param_groups)
        self.step_count += 1

    def _due(self, step: int, requested: bool = False) -> bool:
        """Whether a recompute starts at ``step``: each interval from start_step, or on ``epoch_end``."""
        if self.config.fix_metric and self._last_recompute_step is not None:
            return False
        if step < self.config.start_step or step == self._last_recompute_step:
            return False
        if requested:
            return True
        interval = self.config.interval_steps
        if interval is None:  # epoch_end() drives recomputes; the first one happens at start_step
            return self._last_recompute_step is None
        return (step - self.config.start_step) % interval == 0

    def _advance(self, recompute: bool) -> None:
        step = self.step_count
        if self._pending is not None and (step >= self._pending.apply_step or recompute):
            self._apply(self._pending)  # early only when a new recompute must start (epoch_end between)
        if recompute:
            self._begin_recompute(step)
        if self._pending is not None and step >= self._pending.apply_step:
            self._apply(self._pending)

    def epoch_end(self) -> None:
        """Call at the end of each epoch (``interval="epoch"``): requests a recompute at the current step."""
        self._advance(self._due(self.step_count, requested=True))

    def _begin_recompute(self, step: int) -> None:
        self._last_recompute_step = step
        reused = self.frozen_layers.reusable(self.plan.layers, self._fits)
        common = getattr(self.measurer, "common", None)  # a sharded measurer: the ranks must agree
        reused = set(common(reused) if common is not None else reused)
        layers = [layer for layer in self.plan.layers if layer.name not in reused]
        keys = self.frozen_layers.keys(layers)  # before the copy: what the snapshot reads
        snapshot = self.measurer.snapshot(layers, self._measure_device)
        previous, references = dict(self._fits), dict(self._references)
        pending = _Pending(
            step + self.config.effective_apply_delay,
            step,
            reused=len(reused),
            measured=[layer.name for layer in layers],
            keys=keys,
        )
        if self._runner is None:
            pending.outcome = self.measurer.run(snapshot, previous, references, step)
        else:
            pending.future = self._runner.submit(
                lambda: self.measurer.run(snapshot, previous, references, step), snapshot
            )
        self._pending = pending

    def _apply(self, pending: _Pending) -> None:
        outcome = pending.result()
        self._pending = None
        self._fits.update(outcome.fits)  # the outcome holds the layers measured; frozen ones kept their fit
        # Only now, with the fits in: a fit that failed leaves no key behind.
        self.frozen_layers.commit(pending.measured, pending.keys)
        self._references.update(outcome.references)
        for name in pending.keys:  # a frozen layer is reused, not bounded: its snapshot copy is not needed
            self._references.pop(name, None)
        units = list(self.plan.units.values())
        measured, stderrs = unit_metrics(units, self._fits, self.config.metric)
        used = np.array([self._smooth(unit.name, value) for unit, value in zip(units, measured, strict=True)])
        factors = unit_factors(units, used, stderrs, self.config)
        self.factors = {unit.name: float(f) for unit, f in zip(units, factors, strict=True)}
        self.alphas = {unit.name: float(a) for unit, a in zip(units, used, strict=True)}
        self.num_recomputes += 1
        self._warn_nan(units, used, self._fits)
        self._report(units, used, measured, stderrs, outcome, pending.reused)

    def _smooth(self, unit: str, value: float) -> float:
        """EMA of a unit's alpha across recomputes; NaN measurements leave the average alone."""
        if self.config.ema == 0 or not math.isfinite(value):
            return value
        old = self._ema.get(unit)
        self._ema[unit] = value if old is None else self.config.ema * old + (1 - self.config.ema) * value
        return self._ema[unit]

    def _warn_nan(self, units, used, fits) -> None:
        for unit, value in zip(units, used, strict=True):
            if math.isnan(value) and unit.name not in self._warned_nan:
                self._warned_nan.add(unit.name)
                reasons = sorted({fits[name].status for name in unit.layers})
                warnings.warn(
                    f"TempBalance: unit {unit.name!r} has no {self.config.metric} ({'; '.join(reasons)}); "
                    "it keeps factor 1",
                    RuntimeWarning,
                    stacklevel=2,
                )

    def _report(self, units, used, measured, stderrs, outcome: MeasureOutcome, reused: int) -> None:
        base = {}
        for group, unit in zip(self.optimizer.param_groups, self._group_units, strict=True):
            if unit is not None and unit not in base:
                base[unit] = (group.get("lr"), group.get("weight_decay"))
        refit = set(outcome.refit)
        rows = []
        for unit, value, raw, err in zip(units, used, measured, stderrs, strict=True):
            factor = self.factors[unit.name]
            lr, wd = base.get(unit.name, (None, None))
            scale_lr = self.config.target in ("lr", "both")
            scale_wd = self.config.target in ("weight_decay", "both")
            rows.append(
                record(
                    self.config.metric,
                    float(value),
                    float(raw),
                    float(err),
                    recompute=self.num_recomputes - 1,
                    step=self.step_count,
                    measured_step=outcome.step,
                    unit=unit.name,
                    family=unit.family,
                    factor=factor,
                    lr=None if lr is None else float(lr) * (factor if scale_lr else 1.0),
                    weight_decay=None if wd is None else float(wd) * (factor if scale_wd else 1.0),
                    layers_refit=sum(name in refit for name in unit.layers),
                )
            )
        if self.config.keep_history:
            self.history.extend(rows)
        self._writers.write(rows)
        logger.info(
            recompute_log_line(self.step_count, rows, len(outcome.refit), len(outcome.skipped), reused)
        )
        self._check_shape_driven(units)

    def _check_shape_driven(self, units) -> None:
        current = np.array([self.factors[u.name] for u in units])
        if self._first_factors is None:
            self._first_factors = {u.name: self.factors[u.name] for u in units}
            return
        if self._shape_logged or not self.config.shape_check:
            return
        first = np.array([self._first_factors[u.name] for u in units])
        aspect = np.array([u.log_aspect_ratio for u in units])
        corr = shape_driven(current, first, aspect)
        if corr is not None:
            self._shape_logged = True
            advice = (
                "metric='alpha_relative' corrects for shape"
                if self.config.metric != "alpha_relative"
                else "metric='alpha_relative' did not remove the shape dependence here"
            )
            logger.warning(
                "TempBalance: the factors are essentially a function of layer shape (corr with log aspect "
                "ratio %.2f) and have barely changed since the first recompute: the balancer acts as a fixed"
                " shape-based learning-rate map, not as spectral feedback (%s)",
                corr,
                advice,
            )

    def group_factors(self) -> dict[str, float]:
        """Factor of every optimizer param group, keyed by the group's ``"name"`` (or ``"group<i>"``)."""
        return {
            group.get("name", f"group{i}"): (self.factors[u] if u is not None else 1.0)
            for i, (group, u) in enumerate(zip(self.optimizer.param_groups, self._group_units, strict=True))
        }

    def history_frame(self):
        """``history`` as a pandas DataFrame (one row per unit and recompute).

        The metric's columns carry its name: ``alpha_relative``, ``alpha_relative_measured`` (before
        smoothing) and ``alpha_relative_stderr`` with the default metric; ``metric`` names it in every row.
        """
        import pandas as pd

        return pd.DataFrame(self.history, columns=list(fields(self.config.metric)))

    def state_dict(self) -> dict:
        """The balancer's own state (no model, no optimizer), like a torch lr scheduler's ``state_dict``.

        A background recompute in flight is waited for and saved as pending, so resuming is exact.
        """
        pending = None
        if self._pending is not None:
            pending = {
                "apply_step": self._pending.apply_step,
                "measured_step": self._pending.measured_step,
                "outcome": self._pending.result().to_state(),
                "reused": self._pending.reused,
            }
        return plain_state(
            {
                "units": list(self.plan.units),
                "step_count": self.step_count,
                "num_recomputes": self.num_recomputes,
                "last_recompute_step": self._last_recompute_step,
                "factors": dict(self.factors),
                "alphas": dict(self.alphas),
                "ema": dict(self._ema),
                "fits": {name: fit.to_state() for name, fit in self._fits.items()},
                "references": dict(self._references),
                "frozen_layers": self.frozen_layers.state(
                    None
                    if self._pending is None
                    else {name: self._pending.keys.get(name) for name in self._pending.measured}
                ),
                "pending": pending,
                "first_factors": None if self._first_factors is None else dict(self._first_factors),
                "warned_nan": sorted(self._warned_nan),
                "shape_logged": self._shape_logged,
                "history": [dict(row) for row in self.history],
            }
        )

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` saved (the units must be the same)."""
        if list(state["units"]) != list(self.plan.units):
            raise ValueError(
                f"state_dict was saved for units {state['units'][:3]}..., this balancer has "
                f"{list(self.plan.units)[:3]}...: different model or unit settings"
            )
        self.step_count = int(state["step_count"])
        self.num_recomputes = int(state["num_recomputes"])
        self._last_recompute_step = state["last_recompute_step"]
        self.factors = {k: float(v) for k, v in state["factors"].items()}
        self.alphas = {k: float(v) for k, v in state["alphas"].items()}
        self._ema = dict(state["ema"])
        self._fits = {name: LayerFit.from_state(fit) for name, fit in state["fits"].items()}
        self._references = dict(state["references"])
        pending = state["pending"]
        self._pending = (
            None
            if pending is None
            else _Pending(
                pending["apply_step"],
                pending["measured_step"],
                MeasureOutcome.from_state(pending["outcome"]),
                reused=int(pending.get("reused", 0)),
            )
        )
        # States saved before frozen-layer reuse have no "frozen_layers" entry: their frozen layers are refit once.
        self.frozen_layers.restore(dict(state.get("frozen_layers", {})))
        self._first_factors = None if state["first_factors"] is None else dict(state["first_factors"])
        self._warned_nan = set(state["warned_nan"])
        self._shape_logged = bool(state["shape_logged"])
        # States saved before metric names stored the metric as "alpha", "alpha_measured", "alpha_stderr".
        self.history = [upgrade_record(row, self.config.metric) for row in state["history"]]

    def remove(self) -> None:
        """Detach from the optimizer (remove the hooks) and stop the background worker."""
        for handle in self._hooks:
            handle.remove()
        self._hooks = []
        self._scaler.restore(self.optimizer.param_groups)
        if self._runner is not None:
            self._runner.shutdown()
        self._writers.close()

    def __repr__(self) -> str:
        return (
            f"TempBalance(units={len(self.plan.units)}, unit={self.plan.unit!r}, "
            f"mapping={self.config.mapping!r}, metric={self.config.metric!r}, step_count={self.step_count})"
        )
