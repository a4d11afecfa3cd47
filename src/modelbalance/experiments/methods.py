"""Training methods compared by the runner: baseline, TempBalance and its controls, layer-wise lr decay.

A method shapes the optimizer's param groups before training and may attach to the optimizer; the training loop
is the same for all. Registered names (``--methods``):

- ``baseline``: the same optimizer and scheduler, no balancing.
- ``tb``: TempBalance as in the PDE experiments of the EMNLP paper (sigmoid map of raw alpha, one factor per
  block, median tail, recomputed once per epoch); FNO spectral convolutions follow the config's ``spectral_conv``.
- ``tb_linear`` (linear map), ``tb_norm`` (factors normalised to mean 1), ``tb_rel`` (alpha relative to a
  same-shape random matrix), ``tb_farms`` (FARMS alpha), ``tb_type`` (same-role units compared).
- ``tb_frozen``: factors measured once at initialisation and kept (the paper's "fix metric" control).
- ``tb_shuffle``: placebo, the factors TB would use, permuted across units at each recompute (seeded).
- ``llrd``: layer-wise learning-rate decay, ``lr * decay ** depth`` counted in blocks from the top.
- ``tb_llrd``: TempBalance's factors on top of LLRD's per-depth rates (does the spectrum add to depth?).

Options from the config's ``method_options`` table are TempBalanceConfig fields (``mapping``, ``unit``, ``metric``,
``interval``, ...), the mapping's own (``s_min``, ``s_max``, ``temperature``, ``s1``, ``s2``) or ``strength`` (the
paper's single sigmoid knob: ``s_min = s_max = strength``). On text tasks the TB methods start from the EMNLP GLUE
preset instead of the PDE setting (the task says so through ``Task.tempbalance_preset``)::

    [method_options.tb_strong]
    base = "tb"
    s_min = 1.0
    s_max = 1.0
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from modelbalance.experiments.registry import METHODS


@dataclass(frozen=True)
class RunContext:
    """What a method may know about the run it is attached to.

    Examples
    --------
    >>> RunContext(seed=0, lr=1e-3, weight_decay=0.0, epochs=2, steps_per_epoch=4, total_steps=8).total_steps
    8
    """

    seed: int
    lr: float
    weight_decay: float
    epochs: int
    steps_per_epoch: int
    total_steps: int
    spectral_conv: bool = False
    probe: Callable[[torch.nn.Module], None] | None = None  # runs the model on one example batch, no grad
    preset: str | None = None  # the task's TempBalanceConfig preset (e.g. "emnlp_glue" for text fine-tuning)


def forward_order(model: torch.nn.Module, probe: Callable[[torch.nn.Module], None]) -> dict[str, int]:
    """Module name -> position of its first call during ``probe(model)`` (the order data flows through).

    Examples
    --------
    >>> model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
    >>> forward_order(model, lambda m: m(torch.zeros(1, 2)))
    {'': 0, '0': 1, '1': 2}
    """
    order: dict[str, int] = {}

    def record(name: str):
        def hook(_module, _args) -> None:  # must return None: a returned value would replace the inputs
            order.setdefault(name, len(order))

        return hook

    handles = [module.register_forward_pre_hook(record(name)) for name, module in model.named_modules()]
    try:
        probe(model)
    finally:
        for handle in handles:
            handle.remove()
    return order


class Attachment:
    """A method's hold on a running optimizer: :meth:`artifacts` for the run record, :meth:`remove` to detach."""

    def artifacts(self) -> dict[str, Any]:
        """JSON-ready extras stored with the run (e.g. factor history)."""
        return {}

    def remove(self) -> None:
        """Detach from the optimizer."""


class Method:
    """Base class: the baseline (plain param groups, nothing attached).

    Examples
    --------
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 1))
    >>> context = RunContext(seed=0, lr=1e-3, weight_decay=0.01, epochs=1, steps_per_epoch=1, total_steps=1)
    >>> [(g["name"], g["weight_decay"]) for g in Method().param_groups(model, context)]
    [('0', 0.01), ('0/no_decay', 0.0), ('1', 0.01), ('1/no_decay', 0.0)]
    """

    def param_groups(self, model: torch.nn.Module, context: RunContext) -> list[dict]:
        """Optimizer param groups (weight decay off for biases and norms); a group ``lr`` overrides the run's."""
        from modelbalance.balance.param_groups import param_groups

        return param_groups(model, weight_decay=context.weight_decay)

    def attach(
        self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, context: RunContext
    ) -> Attachment:
        """Hook into the optimizer before training starts."""
        return Attachment()


@METHODS.register("baseline", help="same optimizer and scheduler, no balancing")
def build_baseline() -> Method:
    return Method()


# ---------------------------------------------------------------------------------------------------- TempBalance
_MAPPING_KEYS = ("s_min", "s_max", "temperature", "s1", "s2", "base")
# The experiment setting of TB: the EMNLP paper's PDE runs (raw alpha, median tail, once per epoch).
TB_DEFAULTS: dict[str, Any] = {
    "mapping": "sigmoid",
    "unit": "block",
    "metric": "alpha",
    "xmin_pos": 2.0,
    "interval": "epoch",
    "recomputes_per_epoch": 1,
}


class ShuffledMapping:
    """Placebo mapping: the factors of ``base`` permuted across the units with a fitted alpha, anew per call.

    Called once per recompute (and family) by TempBalance, so the factor values stay TB's while the link between
    a unit's spectrum and its factor is cut. Seeded: the same seed gives the same permutations.

    Examples
    --------
    >>> shuffle = ShuffledMapping("linear", seed=0)
    >>> sorted(shuffle(np.array([2.0, 3.0, 4.0]), np.zeros(3)).tolist())
    [0.5, 1.0, 1.5]
    """

    def __init__(self, base: str = "sigmoid", *, seed: int = 0):
        self.base = base
        self.__name__ = f"shuffled_{base}"
        self._rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5A1F]))

    def __call__(self, alphas: np.ndarray, stderrs: np.ndarray, **options) -> np.ndarray:
        from modelbalance.balance.mappings import map_alphas

        factors = map_alphas(alphas, stderrs, mapping=self.base, options=options)
        fitted = np.flatnonzero(np.isfinite(np.asarray(alphas, dtype=float)))
        factors[fitted] = factors[self._rng.permutation(fitted)]
        return factors


class TempBalanceMethod(Method):
    """TempBalance with the experiment defaults :data:`TB_DEFAULTS`, overridable by ``options``.

    Examples
    --------
    >>> method = TempBalanceMethod(mapping="linear", s1=0.8, s2=1.2)
    >>> method.config.mapping, method.config.mapping_options
    ('linear', {'s1': 0.8, 's2': 1.2})
    """

    def __init__(self, *, shuffle: bool = False, **options):
        from modelbalance.balance.config import TempBalanceConfig

        if "strength" in options:  # the paper's single knob: s_min = s_max = strength (sigmoid map)
            strength = options.pop("strength")
            if not isinstance(strength, (int, float)) or not strength > 0:
                raise ValueError(f"TempBalance strength must be a positive number, got {strength!r}")
            options.setdefault("s_min", float(strength))
            options.setdefault("s_max", float(strength))
        self.user_options = dict(options)
        self.shuffle_requested = bool(shuffle)
        options = {**TB_DEFAULTS, **options}
        mapping_options = dict(options.pop("mapping_options", {}))
        mapping_options.update({k: options.pop(k) for k in _MAPPING_KEYS if k in options})
        self.shuffle = bool(shuffle)
        self.explicit_spectral_conv = "spectral_conv" in options
        known = {f.name for f in dataclasses.fields(TempBalanceConfig)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown TempBalance option(s) {unknown}; see TempBalanceConfig.help()")
        # validate now (before any training), including the mapping options
        self.config = TempBalanceConfig(**options, mapping_options=mapping_options)
        from modelbalance.balance.mappings import map_alphas

        map_alphas([2.0, 3.0, 4.0], [0.1, 0.1, 0.1], mapping=self.config.mapping, options=mapping_options)

    def for_preset(self, preset: str | None) -> TempBalanceMethod:
        """This method rebuilt on a task's preset (e.g. the EMNLP GLUE setting for text), the user's options
        on top; itself when there is no preset."""
        if preset is None:
            return self
        from modelbalance.balance.config import TempBalanceConfig

        base = TempBalanceConfig.preset(preset)
        fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
        fields.pop("steps_per_epoch", None)
        user = dict(self.user_options)
        mapping_options = {**fields.pop("mapping_options", {}), **dict(user.pop("mapping_options", {}))}
        mapping_options.update({k: user.pop(k) for k in _MAPPING_KEYS if k in user})
        method = TempBalanceMethod(
            shuffle=self.shuffle_requested, **{**fields, **user}, mapping_options=mapping_options
        )
        method.explicit_spectral_conv = "spectral_conv" in self.user_options
        return method

    def run_config(self, context: RunContext):
        """The TempBalanceConfig of one run: the task's preset, the epoch length, the experiment's spectral
        switch, the placebo."""
        if context.preset is not None:
            return self.for_preset(context.preset).run_config(replace(context, preset=None))
        changes: dict[str, Any] = {"steps_per_epoch": context.steps_per_epoch}
        if not self.explicit_spectral_conv:
            changes["spectral_conv"] = context.spectral_conv
        if self.shuffle:
            changes["mapping"] = ShuffledMapping(self.config.mapping, seed=context.seed)
        return self.config.replace(**changes)

    def param_groups(self, model: torch.nn.Module, context: RunContext) -> list[dict]:
        from modelbalance.balance.param_groups import param_groups

        return param_groups(model, weight_decay=context.weight_decay, config=self.run_config(context))

    def attach(self, model, optimizer, context) -> Attachment:
        from modelbalance.balance.tempbalance import TempBalance

        return _TempBalanceAttachment(TempBalance(model, optimizer, self.run_config(context)))


class _TempBalanceAttachment(Attachment):
    _HISTORY_COLUMNS = ("recompute", "step", "unit", "alpha", "factor")

    def __init__(self, balancer):
        self.balancer = balancer

    def artifacts(self) -> dict[str, Any]:
        history = [{k: row.get(k) for k in self._HISTORY_COLUMNS} for row in self.balancer.history]
        return {
            "tb_units": len(self.balancer.factors),
            "tb_recomputes": self.balancer.num_recomputes,
            "tb_factors": {k: float(v) for k, v in self.balancer.factors.items()},
            "tb_history": history,
        }

    def remove(self) -> None:
        self.balancer.remove()


def _register_tb(name: str, help: str, **variant):
    @METHODS.register(name, help=help)
    def build(**options) -> TempBalanceMethod:
        return TempBalanceMethod(**{**variant, **options})

    return build


_register_tb("tb", "TempBalance: sigmoid map of raw alpha, block units, once per epoch")
_register_tb("tb_linear", "TempBalance with the linear map (NeurIPS)", mapping="linear")
_register_tb("tb_norm", "TempBalance with factors normalised to mean 1", normalize="mean")
_register_tb("tb_rel", "TempBalance on alpha relative to a same-shape random matrix", metric="alpha_relative")
_register_tb("tb_farms", "TempBalance on FARMS alpha", metric="alpha_farms")
_register_tb("tb_type", "TempBalance comparing same-role layers (unit='type')", unit="type")
_register_tb("tb_frozen", "control: TB factors measured at initialisation and kept", fix_metric=True)
_register_tb("tb_shuffle", "placebo: TB's factors shuffled across units at each recompute", shuffle=True)


# ---------------------------------------------------------------------------------------------------- LLRD
class LayerwiseDecayMethod(Method):
    """Layer-wise learning-rate decay: parameters ``d`` blocks below the top train at ``lr * decay ** d``.

    Depth 0 is everything after the last block (the head / projection), block k of L (in model order) has depth
    L - k + 1, and parameters before the first block (embedding / lifting) have depth L + 1.

    Examples
    --------
    >>> LayerwiseDecayMethod(decay=0.5).decay
    0.5
    """

    def __init__(self, *, decay: float = 0.8, blocks: str | None = None):
        if not 0 < decay <= 1:
            raise ValueError(f"llrd decay must lie in (0, 1], got {decay}")
        self.decay = float(decay)
        self.blocks = blocks

    def depths(
        self, model: torch.nn.Module, probe: Callable[[torch.nn.Module], None] | None = None
    ) -> dict[str, int]:
        """Depth from the top of every trainable parameter, by name.

        With ``probe`` (a call of the model on example data) parameters are ordered by when their module first
        runs, since registration order need not be the data's order (neuraloperator's FNO registers its
        lifting layer after its blocks); without it, by ``named_parameters()`` order.
        """
        from modelbalance.balance.param_groups import param_groups

        unit_of = {}
        for group in param_groups(model, unit="block", blocks=self.blocks, exclude=()):
            for param in group["params"]:
                unit_of[id(param)] = group["unit"]
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if probe is not None:
            called = forward_order(model, probe)

            def first_call(param_name: str) -> float:
                module = param_name.rpartition(".")[0]
                while module not in called and module:
                    module = module.rpartition(".")[0]
                return called.get(module, float("inf"))

            named.sort(key=lambda item: first_call(item[0]))  # stable: ties keep registration order
        units = [unit_of.get(id(p)) for _, p in named]
        order = list(dict.fromkeys(u for u in units if u is not None))
        if not order:
            raise ValueError(
                f"llrd found no blocks in {type(model).__name__}; pass blocks=<regex> in its options"
            )
        block_depth = {unit: len(order) - k for k, unit in enumerate(order)}  # the last block has depth 1
        last_block_param = max(i for i, unit in enumerate(units) if unit is not None)
        depths, current = {}, len(order) + 1  # before the first block: below every block
        for i, ((name, _), unit) in enumerate(zip(named, units)):
            if unit is not None:
                current = block_depth[unit]
            elif i > last_block_param:
                current = 0
            depths[name] = current
        return depths

    def param_groups(self, model: torch.nn.Module, context: RunContext) -> list[dict]:
        depths = self.depths(model, context.probe)
        groups: dict[str, dict] = {}
        for name, param in model.named_parameters():
            if not param.requires_grad:
                continue
            depth = depths[name]
            decayed = param.ndim > 1
            key = f"depth{depth}" + ("" if decayed else "/no_decay")
            if key not in groups:
                groups[key] = {
                    "params": [],
                    "name": key,
                    "lr": context.lr * self.decay**depth,
                    "weight_decay": context.weight_decay if decayed else 0.0,
                }
            groups[key]["params"].append(param)
        return list(groups.values())


@METHODS.register("llrd", help="layer-wise learning-rate decay (decay ** depth from the top, per block)")
def build_llrd(**options) -> LayerwiseDecayMethod:
    return LayerwiseDecayMethod(**options)


class TempBalanceOverDecayMethod(TempBalanceMethod):
    """TempBalance attached to LLRD's param groups: a block trains at ``lr * decay ** depth * factor``.

    Separates the spectral signal from depth: where TB's factors merely rise towards the top block, LLRD already
    does that, and only what the spectra add beyond depth can make this beat ``llrd``. ``decay`` (and ``blocks``,
    given to both) are LLRD's options, everything else TempBalance's.

    Examples
    --------
    >>> method = TempBalanceOverDecayMethod(decay=0.7)
    >>> method.llrd.decay, method.config.unit
    (0.7, 'block')
    """

    def __init__(self, *, decay: float = 0.8, **options):
        self.llrd = LayerwiseDecayMethod(decay=decay, blocks=options.get("blocks"))
        super().__init__(**options)

    def param_groups(self, model: torch.nn.Module, context: RunContext) -> list[dict]:
        """LLRD's groups (one per depth and decay setting), each split by TempBalance unit where it holds more
        than one (an FNO block's depth holds balanced skip weights and unbalanced spectral weights): one group
        takes one factor. The units are the balancer's own plan, so the split matches what it checks."""
        from modelbalance.balance.param_groups import UNBALANCED, plan_from_config

        unit_of = plan_from_config(model, self.run_config(context)).param_units
        names = {id(p): n for n, p in model.named_parameters()}
        groups = []
        for group in self.llrd.param_groups(model, context):
            by_unit: dict[str | None, list] = {}
            for param in group["params"]:
                by_unit.setdefault(unit_of.get(names[id(param)]), []).append(param)
            for unit, params in by_unit.items():
                name = group["name"] if len(by_unit) == 1 else f"{group['name']}/{unit or UNBALANCED}"
                groups.append({**group, "params": params, "name": name})
        return groups


@METHODS.register("tb_llrd", help="TempBalance's factors on top of layer-wise lr decay (LLRD's groups)")
def build_tb_llrd(**options) -> TempBalanceOverDecayMethod:
    return TempBalanceOverDecayMethod(**options)
