"""Balanced units: which layers share one factor, and which parameters follow which unit.

Example
-------
>>> import torch.nn as nn
>>> from modelbalance.balance.units import plan_units
>>> model = nn.Sequential(nn.Linear(32, 64), nn.LayerNorm(64), nn.Linear(64, 64), nn.Linear(64, 2))
>>> plan = plan_units(model, unit="layer", exclude=())
>>> list(plan.units), plan.param_units["1.weight"]
(['0', '2', '3'], '0')

A unit is one layer (``unit="layer"`` and ``"type"``) or one block (``unit="block"``; see
:mod:`modelbalance.balance.blocks`). ``unit="auto"`` (the default) is "block" when blocks are detected (or the
``blocks=`` rule finds some) and they give balanced units, "layer" otherwise (an MLP, a plain CNN), and logs
which one it chose and why (logger ``modelbalance.balance``, level INFO). Units that share a parameter (the
query/key/value parts of ``nn.MultiheadAttention``, tied weights) are merged. Every parameter of the model is
assigned to a unit or to None (not balanced, factor 1):

1. parameters behind a balanced layer's matrices, and the other parameters of that layer's module (its bias);
2. with block units: everything else inside the block (LayerNorms, biases of unmeasured modules);
3. with layer units (``"layer"``, ``"type"``) and ``attach_norms``: a normalisation module follows the measured layer
   that precedes it under the same parent module (BatchNorm after its conv);
4. everything else (embeddings, heads, excluded layers, spectral convolutions when ``spectral_conv=False``,
   norms outside blocks): None.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch.nn as nn

from .blocks import BlockIndex
from .config import DEFAULT_HEAD_PATTERNS, UNITS

__all__ = ["Unit", "UnitPlan", "check_lora_delta_ranks", "plan_units"]

logger = logging.getLogger("modelbalance.balance")


@dataclass(frozen=True)
class Unit:
    """One balanced unit: the layers (``LayerWeight`` names) whose alphas are averaged into one factor."""

    name: str
    layers: tuple[str, ...]
    family: str  # units are mapped (compared) only within one family
    shapes: tuple[tuple[int, int], ...]
    num_params: int = 0  # trainable parameters assigned to the unit

    @property
    def log_aspect_ratio(self) -> float:
        """Mean log(long side / short side) of the unit's matrices."""
        return float(np.mean([np.log(max(r, c) / max(min(r, c), 1)) for r, c in self.shapes]))


@dataclass
class UnitPlan:
    """Result of :func:`plan_units`: units in model order, the balanced layers, and every parameter's unit.

    ``unit`` is the unit actually used ("block" or "layer" when "auto" was asked for); ``reason`` says why
    "auto" chose it ("" otherwise).
    """

    unit: str
    units: dict[str, Unit]
    layers: list  # spectral LayerWeight records of the balanced layers, in model order
    param_units: dict[str, str | None]  # canonical parameter name -> unit name or None
    excluded_layers: list[str] = field(default_factory=list)
    requested: str = ""  # the unit setting asked for ("auto", or the same as unit)
    reason: str = ""

    def layers_by_name(self) -> dict:
        return {layer.name: layer for layer in self.layers}


class _UnionFind:
    def __init__(self):
        self.parent: dict[str, str] = {}

    def find(self, key: str) -> str:
        self.parent.setdefault(key, key)
        while self.parent[key] != key:
            self.parent[key] = self.parent[self.parent[key]]
            key = self.parent[key]
        return key

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


def _common_prefix(names: Sequence[str]) -> str:
    if len(names) == 1:
        return names[0]
    split = [n.split(".") for n in names]
    common = []
    for parts in zip(*split, strict=False):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    return ".".join(common) if common else "+".join(names)


def _module_of(layer) -> str:
    """Module path of a layer (MultiheadAttention parts carry a '.q'/'.k'/'.v' suffix)."""
    return layer.name.rpartition(".")[0] if layer.kind == "mha_in_proj" else layer.name


def _is_norm(module: nn.Module) -> bool:
    return "Norm" in type(module).__name__


def plan_units(
    model: nn.Module,
    *,
    unit: str = "auto",
    blocks: str | Callable[[str], str | None] | None = None,
    exclude: Sequence[str] = DEFAULT_HEAD_PATTERNS,
    exclude_first_last: bool = False,
    attach_norms: bool = True,
    balance_outside_blocks: bool = False,
    lora: str = "effective",
    spectral_conv: bool = True,
    layers: list | None = None,
) -> UnitPlan:
    """Group the measurable layers of ``model`` into balanced units (see the module docstring).

    ``layers`` (spectral ``LayerWeight`` records) defaults to ``extract_layers(model, lora=lora,
    spectral_conv=spectral_conv)``. Units without a trainable parameter are dropped.
    """
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}; choose from {UNITS}")
    options = dict(
        blocks=blocks,
        exclude=exclude,
        exclude_first_last=exclude_first_last,
        attach_norms=attach_norms,
        balance_outside_blocks=balance_outside_blocks,
        lora=lora,
        spectral_conv=spectral_conv,
        layers=layers,
    )
    if unit != "auto":
        plan = _plan(model, unit=unit, **options)
        plan.requested = unit
        return plan
    plan = _plan(model, unit="block", **options)
    if plan.units:
        names = list(plan.units)
        shown = ", ".join(names) if len(names) <= 3 else f"{names[0]}, {names[1]}, ..., {names[-1]}"
        how = "found by blocks=" if blocks is not None else "detected"
        plan.reason = (
            f"{len(names)} block(s) {how} ({shown}), holding {len(plan.layers)} balanced layer(s): one "
            f"factor per block"
        )
    else:
        plan = _plan(model, unit="layer", **options)
        if blocks is not None:
            plan.reason = f"blocks={blocks!r} matched no balanced layer: one factor per layer"
        else:
            plan.reason = (
                f"no repeated blocks (transformer layers, ResNet stages, FNO blocks) detected in "
                f"{type(model).__name__}: one factor per layer ({len(plan.units)} unit(s))"
            )
    plan.requested = "auto"
    logger.info("unit='auto' chose unit=%r: %s", plan.unit, plan.reason)
    return plan


def _plan(
    model: nn.Module,
    *,
    unit: str,
    blocks,
    exclude: Sequence[str],
    exclude_first_last: bool,
    attach_norms: bool,
    balance_outside_blocks: bool,
    lora: str,
    spectral_conv: bool,
    layers: list | None,
) -> UnitPlan:
    withheld: set[str] = set()
    if layers is None:
        from ..spectral import extract_layers

        # Spectral convolutions are always listed: with spectral_conv=False they are withheld like excluded
        # layers, so their weights keep the base learning rate instead of inheriting their block's factor
        # (the paper's FNO setting balances only the linear / 1x1-conv layers).
        layers = extract_layers(model, lora=lora, spectral_conv=True)
        if not spectral_conv:
            withheld = {layer.name for layer in layers if layer.kind == "spectral_conv"}
    exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)
    index = BlockIndex(model, blocks)
    params = dict(model.named_parameters())
    canonical = _canonical_names(model)

    excluded = {layer.name for layer in layers if any(re.search(p, layer.name) for p in exclude)} | withheld
    if lora == "delta":
        # A LoRA layer's spectrum is then its update B A; a frozen layer's would be its pretrained W, another
        # quantity, which never changes: averaged into a unit it would pin the unit's alpha. Such layers are not
        # measured at all (dropped, not excluded: an excluded layer sharing a frozen weight with a LoRA base
        # layer would unbalance that LoRA layer too).
        trainable_names = {n for n, p in params.items() if p.requires_grad}
        layers = [
            layer
            for layer in layers
            if layer.kind == "lora" or any(canonical.get(n, n) in trainable_names for n in layer.param_names)
        ]
    if exclude_first_last and layers:
        excluded |= {layers[0].name, layers[-1].name}

    # Initial unit key per layer; None = not balanced.
    keys: dict[str, str | None] = {}
    for layer in layers:
        if layer.name in excluded:
            keys[layer.name] = None
        elif unit == "block":
            block = index.block_of(layer.name)
            keys[layer.name] = (
                block if block is not None else (layer.name if balance_outside_blocks else None)
            )
        else:
            keys[layer.name] = layer.name

    # Merge units sharing a parameter; a parameter shared with an unbalanced layer unbalances the whole group.
    groups = _UnionFind()
    owner: dict[str, str] = {}
    unbalanced_roots: set[str] = set()
    for layer in layers:
        key = keys[layer.name]
        node = f"unit:{key}" if key is not None else f"none:{layer.name}"
        groups.find(node)
        for name in layer.param_names:
            pname = canonical.get(name, name)
            if pname in owner:
                groups.union(owner[pname], node)
            else:
                owner[pname] = node
    for layer in layers:
        if keys[layer.name] is None:
            unbalanced_roots.add(groups.find(f"none:{layer.name}"))

    members: dict[str, list] = {}
    for layer in layers:
        key = keys[layer.name]
        node = f"unit:{key}" if key is not None else f"none:{layer.name}"
        root = groups.find(node)
        if root in unbalanced_roots:
            keys[layer.name] = None
            continue
        members.setdefault(root, []).append(layer)

    root_keys: dict[str, list[str]] = {}
    for layer in layers:
        if keys[layer.name] is not None:
            root = groups.find(f"unit:{keys[layer.name]}")
            if keys[layer.name] not in root_keys.setdefault(root, []):
                root_keys[root].append(keys[layer.name])
    unit_of_layer: dict[str, str | None] = {layer.name: None for layer in layers}
    unit_layers: dict[str, list] = {}
    for root, group_layers in members.items():
        name = _common_prefix(root_keys[root])
        unit_layers[name] = group_layers
        for layer in group_layers:
            unit_of_layer[layer.name] = name

    param_units = _assign_params(model, layers, unit_of_layer, unit, index, attach_norms, canonical)
    trainable = {n: p.numel() for n, p in params.items() if p.requires_grad}
    counts: dict[str, int] = {}
    for pname, uname in param_units.items():
        if uname is not None and pname in trainable:
            counts[uname] = counts.get(uname, 0) + trainable[pname]

    units: dict[str, Unit] = {}
    for name, group_layers in unit_layers.items():
        if counts.get(name, 0) == 0:  # nothing trainable: nothing a factor could act on
            for layer in group_layers:
                unit_of_layer[layer.name] = None
            continue
        shapes = tuple(tuple(layer.matrix_shape) for layer in group_layers)
        if unit == "type":
            family = index.role_of(name) + " " + ",".join(f"{r}x{c}" for r, c in shapes)
        else:
            family = ""
        units[name] = Unit(name, tuple(layer.name for layer in group_layers), family, shapes, counts[name])
    param_units = {p: (u if u in units else None) for p, u in param_units.items()}
    balanced = [layer for layer in layers if unit_of_layer[layer.name] in units]
    return UnitPlan(unit, units, balanced, param_units, sorted(excluded))


def _canonical_names(model: nn.Module) -> dict[str, str]:
    """Every parameter alias -> the name ``model.named_parameters()`` reports for that tensor."""
    first: dict[int, str] = {}
    out: dict[str, str] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        out[name] = first.setdefault(id(param), name)
    return out


def _assign_params(
    model, layers, unit_of_layer, unit, index, attach_norms, canonical
) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for layer in layers:
        for name in layer.param_names:
            out.setdefault(canonical.get(name, name), unit_of_layer[layer.name])
    module_units: dict[str, str | None] = {}
    for layer in layers:
        module_units.setdefault(_module_of(layer), unit_of_layer[layer.name])
    block_units = {}
    if unit == "block":
        for layer in layers:
            if unit_of_layer[layer.name] is not None:
                block_units.setdefault(index.block_of(layer.name), unit_of_layer[layer.name])
    norm_units = _norms_following_layers(model, module_units) if attach_norms and unit != "block" else {}

    for name, _ in model.named_parameters():
        if name in out:
            continue
        module = name.rpartition(".")[0]
        out[name] = _unit_by_ancestry(module, module_units, block_units, norm_units, index)
    return out


def _unit_by_ancestry(module, module_units, block_units, norm_units, index) -> str | None:
    path = module
    while True:
        if path in module_units:
            return module_units[path]
        if path in norm_units:
            return norm_units[path]
        if not path:
            break
        path = path.rpartition(".")[0]
    if block_units:
        block = index.block_of(module)
        if block is not None:
            return block_units.get(block)
    return None


def _norms_following_layers(model: nn.Module, module_units: dict[str, str | None]) -> dict[str, str | None]:
    """Norm module path -> unit of the measured layer just before it under the same parent."""
    out: dict[str, str | None] = {}
    last_layer_in: dict[str, str] = {}  # parent path -> most recent measured layer module under it
    for path, module in model.named_modules():
        parent = path.rpartition(".")[0]
        if path in module_units:
            last_layer_in[parent] = path
        elif _is_norm(module) and parent in last_layer_in:
            out[path] = module_units[last_layer_in[parent]]
    return out


def check_lora_delta_ranks(
    model: nn.Module, plan: UnitPlan, min_eigs: int, *, xmin: str | float, xmin_pos: float
) -> None:
    """With ``lora="delta"``, refuse plans whose LoRA updates can never be fit, warn when some units cannot be.

    The update ``scaling * B A`` of a rank-r adapter on an N-eigenvalue matrix has at most r nonzero eigenvalues.
    A fit needs at least ``min_eigs`` of them, and with ``xmin="fixed"`` the tail (the top N - floor(N / xmin_pos)
    of all N eigenvalues, zeros counted as the papers count them) must lie among the nonzero ones: r >= N -
    floor(N / xmin_pos), e.g. 128 for a 384-wide layer at xmin_pos 1.5. Below that the alpha is NaN at every
    recompute, and a unit made only of such layers keeps factor 1 forever.

    Raises
    ------
    ValueError
        No unit holds a layer that can be fit: TempBalance would balance nothing.
    """
    from ..spectral.matrices import lora_update_rank
    from ..spectral.powerlaw import fixed_xmin_index

    needed, ranks = {}, {}
    for layer in plan.layers:
        if layer.kind == "lora":
            n_eigs = min(layer.matrix_shape)
            rank = lora_update_rank(model.get_submodule(layer.name))
            ranks[layer.name] = rank if rank is not None else n_eigs
            tail = n_eigs - fixed_xmin_index(n_eigs, xmin_pos) if xmin == "fixed" else 0
            needed[layer.name] = max(min_eigs, tail)
    short = {name: r for name, r in ranks.items() if r < needed[name]}
    blind = [u.name for u in plan.units.values() if all(name in short for name in u.layers)]
    if not blind:
        return
    worst = max(short.values())
    need = min(needed[name] for name in short)
    advice = (
        "use lora='effective' (the spectrum of W + scaling * B A), adapters of larger rank, xmin='ks' or 'peak' "
        "(tails drawn from the nonzero eigenvalues only) or a smaller min_eigs (a tail of a few eigenvalues is a "
        "very noisy fit)"
    )
    reason = f"fewer nonzero eigenvalues than the fit needs ({need}: min_eigs={min_eigs}" + (
        f", and with xmin='fixed' the top 1/{xmin_pos:g} of the spectrum must be nonzero)"
        if xmin == "fixed"
        else ")"
    )
    if len(blind) == len(plan.units):
        raise ValueError(
            f"lora='delta': every balanced unit holds only LoRA updates of rank <= {worst}, {reason}, so no alpha "
            "can ever be fit and TempBalance would balance nothing; " + advice
        )
    shown = ", ".join(blind[:3]) + (", ..." if len(blind) > 3 else "")
    warnings.warn(
        f"lora='delta': {len(blind)} of {len(plan.units)} units ({shown}) hold only LoRA updates of rank <= "
        f"{worst}, {reason}: their alpha is always NaN and their factor stays 1; " + advice,
        stacklevel=3,
    )
