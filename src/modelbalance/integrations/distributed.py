"""torch.distributed (DDP, FSDP2, FSDP1): identical factors on every rank, each rank measuring its share.

Example (run with ``torchrun --nproc_per_node=2 train.py``)
-------
>>> import torch, torch.distributed as dist, modelbalance
>>> from torch.nn.parallel import DistributedDataParallel as DDP
>>> from modelbalance.integrations.distributed import shard_measurement
>>> dist.init_process_group("gloo")  # doctest: +SKIP
>>> ddp = DDP(net)  # doctest: +SKIP
>>> opt = torch.optim.AdamW(modelbalance.param_groups(net, weight_decay=0.01), lr=1e-4)  # doctest: +SKIP
>>> tb = modelbalance.TempBalance(net, opt)  # the unwrapped module  # doctest: +SKIP
>>> shard_measurement(tb)  # on every rank  # doctest: +SKIP

How it works. At each recompute every rank snapshots only the layers it owns (a fixed, cost-balanced
assignment computed identically on every rank), fits them, and the fits are exchanged with
``all_gather_object``. Every rank then holds the same fits, bit for bit, and maps them to factors with the
same code, so all ranks apply identical factors while the eigendecompositions cost about ``1 / world_size`` of
a single-process recompute.

Sharded weights. With FSDP2 (``fully_shard``) the parameters are DTensors: every rank builds each layer's
matrices and all-gathers them (``full_tensor()``), one layer at a time, and only the owner keeps its copy, so
the extra memory is one full layer plus the owned snapshots. The gathers are collectives and run in the
optimizer step pre-hook on the main thread, where every rank is at the same point. FSDP1
(``FullyShardedDataParallel``, which needs ``use_orig_params=True``) is supported by passing
``full_params=fsdp1_full_params(fsdp_model)``: the whole model is unsharded for the snapshot (memory: one full
copy of the model while measuring). Build ``param_groups`` and ``TempBalance`` inside
``FSDP.summon_full_params(fsdp_model)`` for FSDP1, so they see the real weight shapes.

The exchange uses its own gloo process group (created by :func:`shard_measurement`, a collective call), so it
is safe from the balancer's background thread (``asynchronous=True``) and never interleaves with NCCL traffic
of training.

With ``skip_tolerance > 0`` each owner keeps the reference weights of its own layers; ``tb.state_dict()`` then
holds only this rank's references. Save and load it per rank for an exact resume (saving rank 0's state only
is still correct: layers whose reference is missing are simply refit once).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import replace

import torch
import torch.distributed as dist
import torch.nn as nn

__all__ = ["ShardedMeasurer", "assign_layers", "fsdp1_full_params", "shard_measurement", "unwrap_model"]

ASSIGNMENTS = ("balanced", "round_robin")


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module ``param_groups`` was given: strips DDP / DataParallel and torch.compile wrappers.

    >>> import torch.nn as nn
    >>> net = nn.Linear(4, 4)
    >>> unwrap_model(nn.DataParallel(net)) is net
    True

    FSDP2 models are not wrappers and come back unchanged; FSDP1 wrappers are kept (see the module docstring).
    """
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):  # torch.compile
            model = model._orig_mod
        else:
            return model


def _cost(layer) -> float:
    """Relative cost of one layer's spectrum: Gram product plus eigensolver, per pooled matrix."""
    rows, cols = layer.matrix_shape
    small = min(rows, cols)
    return float(layer.num_matrices) * (rows * cols * small + small**3)


def assign_layers(layers: list, world_size: int, assignment: str = "balanced") -> list[int]:
    """Owner rank of each layer; the same on every rank (depends only on the layers' names, shapes and order).

    ``"round_robin"``: layer ``i`` goes to rank ``i % world_size``. ``"balanced"``: largest-cost-first greedy
    (each layer to the least loaded rank, ties to the lower rank), so ranks finish at about the same time.

    >>> from types import SimpleNamespace as L
    >>> layers = [L(matrix_shape=(64, 64), num_matrices=1), L(matrix_shape=(8, 8), num_matrices=1),
    ...           L(matrix_shape=(8, 8), num_matrices=1), L(matrix_shape=(64, 64), num_matrices=1)]
    >>> assign_layers(layers, 2), assign_layers(layers, 2, "round_robin")
    ([0, 0, 1, 1], [0, 1, 0, 1])
    """
    if assignment not in ASSIGNMENTS:
        raise ValueError(f"unknown assignment {assignment!r}; choose from {ASSIGNMENTS}")
    if not (isinstance(world_size, int) and world_size >= 1):
        raise ValueError(f"world_size must be a positive integer, got {world_size!r}")
    if assignment == "round_robin":
        return [i % world_size for i in range(len(layers))]
    owners = [0] * len(layers)
    load = [0.0] * world_size
    for i in sorted(range(len(layers)), key=lambda i: (-_cost(layers[i]), i)):
        rank = min(range(world_size), key=lambda r: (load[r], r))
        owners[i] = rank
        load[rank] += _cost(layers[i])
    return owners


def _is_dtensor(tensor) -> bool:
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # pragma: no cover - torch without DTensor
        return False
    return isinstance(tensor, DTensor)


def fsdp1_full_params(fsdp_model: nn.Module) -> Callable[[], contextlib.AbstractContextManager]:
    """For FSDP1: a context factory unsharding ``fsdp_model``'s parameters (read-only) while the balancer
    measures.

    >>> full = fsdp1_full_params(fsdp_model)  # doctest: +SKIP
    >>> shard_measurement(tb, full_params=full)  # doctest: +SKIP
    """
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    if not isinstance(fsdp_model, FSDP):
        raise TypeError(
            f"fsdp1_full_params needs the FullyShardedDataParallel root, got {type(fsdp_model).__name__}"
        )
    if not getattr(fsdp_model, "_use_orig_params", False):
        raise ValueError(
            "FSDP1 needs use_orig_params=True for TempBalance: with flat parameters the model's "
            "original weight tensors do not exist, so per-layer spectra and per-unit groups cannot be "
            "formed"
        )
    return lambda: FSDP.summon_full_params(fsdp_model, writeback=False, recurse=True)


class _JoinedSnapshot:
    """Several per-layer snapshots of the wrapped measurer, seen as one (iterable, with ``wait()``)."""

    def __init__(self, parts: list, names: list[str]):
        self.parts = parts
        self.layers = [layer for part in parts for layer in part]
        self.names = names  # every layer of this recompute, whoever measures it

    def wait(self) -> None:
        for part in self.parts:
            if hasattr(part, "wait"):
                part.wait()

    def __iter__(self):
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)


class ShardedMeasurer:
    """A ``LayerMeasurer`` split across ranks: owners fit their layers, everyone receives every fit.

    Use through :func:`shard_measurement`. Same interface as
    :class:`~modelbalance.balance.measurement.LayerMeasurer` (``snapshot(layers)``, ``run(snapshot, previous,
    references, step)``), so the balancer's synchronous and background paths work unchanged.

    Attributes
    ----------
    owners : dict
        Layer name -> owning rank.
    measured : list of str
        Names of the layers this rank fitted itself at the last recompute (refits only, no skipped layers).
    """

    def __init__(
        self,
        inner,
        layers: list,
        *,
        rank: int,
        world_size: int,
        group=None,
        collective_weights=False,
        full_params: Callable[[], contextlib.AbstractContextManager] | None = None,
        assignment: str = "balanced",
    ):
        self.inner = inner
        self.rank = rank
        self.world_size = world_size
        self.group = group
        self.collective_weights = collective_weights
        self.full_params = full_params
        self.order = [layer.name for layer in layers]
        self.owners = dict(zip(self.order, assign_layers(layers, world_size, assignment), strict=True))
        self.measured: list[str] = []

    def __getattr__(self, name):  # fit, metric, min_eigs, skip_tolerance: the wrapped measurer's settings
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def mine(self, name: str) -> bool:
        return self.owners.get(name) == self.rank

    def common(self, names: list[str]) -> list[str]:
        """The names that every rank lists (a collective): ranks must agree on which frozen fits they reuse,
        since the snapshot gathers weights layer by layer in one shared order."""
        gathered: list = [None] * self.world_size
        dist.all_gather_object(gathered, list(names), group=self.group)
        shared = set.intersection(*(set(g) for g in gathered))
        return [name for name in names if name in shared]

    @torch.no_grad()
    def snapshot(self, layers: list, *args, **kwargs):
        """Copies of this rank's layers, taken by the wrapped measurer (``*args``: its options, e.g. device).

        Sharded (DTensor) weights are gathered one layer at a time on every rank, in the same order, and only
        the owner hands the full matrices to the wrapped measurer's ``snapshot``.
        """
        unknown = [layer.name for layer in layers if layer.name not in self.owners]
        if unknown:
            raise RuntimeError(
                f"ShardedMeasurer was built for other layers (e.g. {unknown[:3]}); call "
                "shard_measurement(tb) again after changing the balancer's plan"
            )
        context = self.full_params() if self.full_params is not None else contextlib.nullcontext()
        names = [layer.name for layer in layers]
        with context:
            if not self.collective_weights:
                part = self.inner.snapshot(
                    [layer for layer in layers if self.mine(layer.name)], *args, **kwargs
                )
                return _JoinedSnapshot([part], names)
            parts = []
            for layer in layers:
                mats = layer.matrices()  # may itself communicate (DTensor ops): every rank, same order
                if _is_dtensor(mats):
                    mats = mats.full_tensor()
                if self.mine(layer.name):
                    full = replace(layer, scale=1.0, _build=lambda mats=mats: mats)
                    parts.append(self.inner.snapshot([full], *args, **kwargs))
                del mats
            return _JoinedSnapshot(parts, names)

    def run(self, snapshot, previous: dict, references: dict | None = None, step: int = -1):
        """Fit this rank's snapshot, then exchange fits: every rank returns the outcome for all layers."""
        from ..balance.measurement import MeasureOutcome

        local = self.inner.run(snapshot, previous, references, step)
        self.measured = list(local.refit)
        payload = (local.fits, local.refit, local.skipped)
        gathered: list = [None] * self.world_size
        dist.all_gather_object(gathered, payload, group=self.group)
        fits, refit, skipped = {}, set(), set()
        for rank_fits, rank_refit, rank_skipped in gathered:
            fits.update(rank_fits)
            refit.update(rank_refit)
            skipped.update(rank_skipped)
        requested = set(snapshot.names)  # frozen layers that kept their fit are left out
        order = [name for name in self.order if name in requested]
        missing = [name for name in order if name not in fits]
        if missing:
            raise RuntimeError(
                f"no rank measured {missing[:3]}: the ranks disagree on the balanced layers "
                "(every rank must build the same model and TempBalance settings)"
            )
        ordered = {name: fits[name] for name in order}
        return MeasureOutcome(
            step,
            ordered,
            [n for n in order if n in refit],
            [n for n in order if n in skipped],
            local.references,
        )


def shard_measurement(
    tb,
    *,
    group=None,
    assignment: str = "balanced",
    full_params: Callable[[], contextlib.AbstractContextManager] | None = None,
):
    """Split ``tb``'s spectral measurement across the ranks of ``group``, sharing the fits (on every rank).

    Parameters
    ----------
    tb : TempBalance
        Built on every rank from the same model and settings (pass the unwrapped module:
        :func:`unwrap_model`).
    group : ProcessGroup, optional
        The ranks that train this model (default: the world). A dedicated gloo group over the same ranks is
        created for exchanging fits (a collective call: every rank of the default group must call this, in the
        same order).
    assignment : {"balanced", "round_robin"}
        How layers are split across ranks (:func:`assign_layers`).
    full_params : callable returning a context manager, optional
        Unshards the weights during the snapshot (FSDP1: :func:`fsdp1_full_params`). Not needed for DDP or
        FSDP2.

    Returns
    -------
    ShardedMeasurer
        Now the balancer's measurer; ``owners`` says which rank fits which layer.
    """
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            "shard_measurement needs an initialised torch.distributed process group "
            "(torch.distributed.init_process_group, e.g. under torchrun)"
        )
    inner = getattr(tb, "measurer", None)
    if inner is None or not hasattr(inner, "run") or not hasattr(inner, "snapshot"):
        raise TypeError(f"shard_measurement needs a modelbalance TempBalance, got {type(tb).__name__}")
    if isinstance(inner, ShardedMeasurer):
        inner = inner.inner
    ranks = dist.get_process_group_ranks(group) if group is not None else list(range(dist.get_world_size()))
    exchange = dist.new_group(ranks=ranks, backend="gloo")
    if dist.get_rank() not in ranks:
        raise ValueError(
            f"rank {dist.get_rank()} is not in the given group {ranks}: it cannot balance that model"
        )
    collective = any(_is_dtensor(p) for p in tb.model.parameters())
    measurer = ShardedMeasurer(
        inner,
        tb.plan.layers,
        rank=dist.get_rank(exchange),
        world_size=len(ranks),
        group=exchange,
        collective_weights=collective,
        full_params=full_params,
        assignment=assignment,
    )
    tb.measurer = measurer
    return measurer


def maybe_shard_measurement(tb, distributed: bool | str = "auto", **options):
    """:func:`shard_measurement` when ``distributed`` is True, or "auto" and more than one rank is running."""
    if distributed not in (True, False, "auto"):
        raise ValueError(f"distributed must be True, False or 'auto', got {distributed!r}")
    if distributed is False:
        return None
    running = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    if distributed == "auto" and not running:
        return None
    return shard_measurement(tb, **options)
