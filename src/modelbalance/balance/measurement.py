"""Measuring the balanced layers: weight snapshots, the skip bound, and synchronous or background fits.

Example
-------
>>> import torch.nn as nn
>>> from modelbalance.spectral import FitConfig, extract_layers
>>> from modelbalance.balance.measurement import LayerMeasurer
>>> layers = extract_layers(nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 64)))
>>> measurer = LayerMeasurer(FitConfig(), metric="alpha")
>>> outcome = measurer.run(measurer.snapshot(layers), previous={})
>>> sorted(outcome.fits), outcome.skipped
(['0', '1'], [])

Determinism: a recompute works on a snapshot (a detached copy) of the layers' matrices taken at one optimizer
step; the result depends only on that snapshot and on the previous fits, never on when the computation
finishes. The balancer applies it at a fixed later step, so a background run equals a synchronous one.

The skip bound. With the tail starting at a fixed index i of the sorted spectrum (``xmin="fixed"``), Hill's
estimate is ``alpha = 1 + k / S``, ``S = sum_{j > i} 2 ln(s_j / s_i)`` over singular values ``s``. If the
weights move by ``dW`` since the last fit, Weyl's inequality puts every singular value within ``d = ||dW||_2``
of its old value (for pooled matrices, ``d`` is the largest of their spectral norms), so each term of ``S``
lies in ``[2 max(0, ln((s_j - d) / (s_i + d))), 2 ln((s_j + d) / (s_i - d))]``. That interval for ``S`` bounds
the new alpha; when the bound is within ``skip_tolerance`` of the old alpha, the layer keeps its old fit. The
engine fixes i among all eigenvalues, zeros included, so eigenvalues near its round-off floor that appear or
vanish do not move the tail; only the tail itself must stay above that floor. ``d`` is bounded without a
decomposition: a few power iterations give a lower bound (a quick "no"), ``||dW||_F`` and ``tr((dW^H
dW)^4)^(1/8)`` (two matrix products, at most ``rank^(1/8)`` above the truth) upper bounds. The bound is for
exact spectra; float32 fits carry ~1e-6 noise on alpha besides.

Frozen layers. A layer whose weights nothing trains (no ``requires_grad`` and no ``.grad``: the base weights
beside LoRA adapters, a frozen encoder) has the same spectrum at every recompute, so :class:`FrozenLayers` lets
the balancer fit it once and reuse that fit, exactly, for as long as it stays frozen and its weights' version
counters (bumped by every in-place change, ``load_state_dict`` included) stay the same. A saved state keeps a
fingerprint of those weights, so a resumed run reuses the fits only on the same weights. Writes through ``.data``
bypass the counters; after such a write, call :meth:`FrozenLayers.forget`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn

from ..spectral.powerlaw import fixed_xmin_index

__all__ = [
    "FrozenLayers",
    "LayerFit",
    "LayerMeasurer",
    "MeasureOutcome",
    "alpha_change_bound",
    "spectral_norm_bounds",
]

_FLOAT32_EPS = float(np.finfo(np.float32).eps)


@dataclass
class LayerFit:
    """What the balancer keeps of one layer's last fit."""

    alpha: float
    alpha_stderr: float
    alpha_relative: float
    alpha_farms: float
    status: str
    eigenvalues: np.ndarray | None = None  # the fitted spectrum, kept for the skip bound
    measured_step: int = -1

    def metric(self, name: str) -> float:
        return float(getattr(self, name))

    def to_state(self) -> dict:
        state = dict(self.__dict__)
        state["eigenvalues"] = (
            None
            if self.eigenvalues is None
            else torch.from_numpy(np.asarray(self.eigenvalues, dtype=np.float64))
        )
        return state

    @classmethod
    def from_state(cls, state: dict) -> LayerFit:
        state = dict(state)
        eigs = state.get("eigenvalues")
        state["eigenvalues"] = None if eigs is None else np.asarray(eigs, dtype=np.float64)
        return cls(**state)


@dataclass
class MeasureOutcome:
    """Result of one recompute: the fit of every balanced layer (re-used ones included)."""

    step: int
    fits: dict[str, LayerFit]
    refit: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    references: dict[str, torch.Tensor] = field(default_factory=dict)  # snapshots of the refit layers

    def to_state(self) -> dict:
        return {
            "step": self.step,
            "fits": {k: v.to_state() for k, v in self.fits.items()},
            "refit": self.refit,
            "skipped": self.skipped,
            "references": self.references,
        }

    @classmethod
    def from_state(cls, state: dict) -> MeasureOutcome:
        return cls(
            state["step"],
            {k: LayerFit.from_state(v) for k, v in state["fits"].items()},
            list(state["refit"]),
            list(state["skipped"]),
            dict(state["references"]),
        )


def _alpha_interval(sigma_tail: np.ndarray, delta: float) -> tuple[float, float]:
    """Range of Hill's alpha over tails whose singular values each lie within ``delta`` of ``sigma_tail``."""
    s_i = sigma_tail[0]
    if not s_i > delta:
        return -math.inf, math.inf
    k = sigma_tail.size
    upper = 2.0 * (np.log(sigma_tail[1:] + delta) - math.log(s_i - delta)).sum()
    lower = (
        2.0
        * np.maximum(0.0, np.log(np.maximum(sigma_tail[1:] - delta, 1e-300)) - math.log(s_i + delta)).sum()
    )
    return 1.0 + k / upper, (1.0 + k / lower) if lower > 0 else math.inf


def alpha_change_bound(
    eigenvalues: np.ndarray, alpha: float, delta: float, big_side: int, xmin_pos: float
) -> float:
    """Largest possible |alpha' - alpha| when every singular value moves by at most ``delta``.

    ``eigenvalues``: the full fitted spectrum (any order, zeros included); ``alpha``: its fit with the tail
    starting at index ``int(N / xmin_pos)`` of all ``N`` sorted eigenvalues (the spectral engine's fixed rule,
    which counts zeros so that round-off zeros never move xmin). The tail must stay above the engine's
    round-off floor (``eps * big_side * lambda_max``). Returns inf when no bound holds.

    >>> eigs = np.array([0.5, 0.7, 1.0, 2.0, 4.0, 8.0])     # tail: 2, 4, 8 (from index 6 // 2)
    >>> alpha = 1 + 3 / (np.log(4 / 2) + np.log(8 / 2))   # Hill's estimate
    >>> alpha_change_bound(eigs, alpha, 0.0, 64, 2.0)
    0.0
    >>> 0 < alpha_change_bound(eigs, alpha, 1e-4, 64, 2.0) < 0.01
    True
    """
    if delta == 0:
        return 0.0
    sigma = np.sqrt(np.sort(np.asarray(eigenvalues, dtype=np.float64)))
    start = fixed_xmin_index(sigma.size, xmin_pos)
    if start > sigma.size - 2:
        return math.inf
    floor = (
        4.0 * _FLOAT32_EPS * big_side * (sigma[-1] + delta) ** 2
    )  # the engine's zeroing level, with margin
    if not (sigma[start] - delta) ** 2 > floor:
        return math.inf
    low, high = _alpha_interval(sigma[start:], delta)
    return float(max(high - alpha, alpha - low))


def spectral_norm_bounds(
    delta: torch.Tensor, iterations: int = 4
) -> tuple[float, float, Callable[[], float]]:
    """Bounds on ``max_b ||delta[b]||_2`` for a (b, n, m) stack: (lower, cheap upper, tight upper thunk).

    ``lower``: the larger of ``||D||_F / sqrt(min(n, m))`` and ``||D v|| / ||v||`` after a few power
    iterations from a fixed start (any v gives a lower bound; matrix-vector products only). ``cheap upper =
    ||D||_F``. The thunk computes ``tr((D^H D)^4)^(1/8)`` (two batched matrix products) only when called.
    """
    work = delta.to(torch.complex64 if delta.is_complex() else torch.float32)
    # Normalise each matrix by its largest entry first: float32 squares of tiny updates would underflow.
    peak = work.abs().amax(dim=(-2, -1)).clamp_min(torch.finfo(torch.float32).tiny)  # (b,)
    unit = work / peak[:, None, None]
    unit_fro = torch.linalg.matrix_norm(unit, "fro")  # (b,), in [1, sqrt(n m)] for nonzero matrices
    fro_max = float((peak * unit_fro).max())
    rank = min(work.shape[-2:])

    def tight() -> float:
        scaled = unit / unit_fro.clamp_min(1.0)[:, None, None]  # Frobenius norm 1 (or 0)
        n, m = scaled.shape[-2:]
        g = scaled.mH @ scaled if n >= m else scaled @ scaled.mH
        g2 = g @ g
        trace4 = (g2.abs() ** 2).sum(dim=(-2, -1))  # tr(G^4) = ||G^2||_F^2 for Hermitian G
        # 1.001: slack for float32 round-off in the two products; never looser than the Frobenius bound.
        bound = float((peak * unit_fro * trace4.clamp_min(0) ** 0.125).max()) * 1.001
        return min(bound, fro_max)

    v = torch.randn(work.shape[0], work.shape[-1], 1, generator=torch.Generator().manual_seed(0))
    v = v.to(device=work.device, dtype=work.dtype)
    for _ in range(iterations):
        v = unit.mH @ (unit @ v)
        v = v / torch.linalg.vector_norm(v, dim=(-2, -1), keepdim=True).clamp_min(1e-30)
    gain = torch.linalg.vector_norm(unit @ v, dim=(-2, -1))  # ||D v|| for unit v, per matrix
    power = float((peak * gain).max()) * (1 - 1e-4)  # margin for float32 round-off
    return max(fro_max / math.sqrt(rank), power), fro_max, tight


@dataclass
class Snapshot:
    """Copies of the balanced layers' matrices taken at one step; ``copied`` marks copies still in flight."""

    layers: list
    copied: torch.cuda.Event | None = None

    def wait(self) -> None:
        if self.copied is not None:
            self.copied.synchronize()
            self.copied = None

    def __iter__(self):
        return iter(self.layers)


class LayerMeasurer:
    """Fits the balanced layers' spectra on a weight snapshot, re-using fits the skip bound certifies."""

    def __init__(
        self, fit, *, metric: str = "alpha_relative", min_eigs: int = 10, skip_tolerance: float = 0.0
    ):
        self.fit = fit
        self.metric = metric
        self.min_eigs = min_eigs
        self.skip_tolerance = skip_tolerance

    @torch.no_grad()
    def snapshot(self, layers: list, device: torch.device | str | None = None) -> Snapshot:
        """Detached copies of the layers' matrices (scale applied), on ``device`` (default: where they are).

        Copies from a GPU to the CPU go to pinned memory without blocking; :meth:`Snapshot.wait` (called by
        :meth:`run`) waits for them.
        """
        device = None if device is None else torch.device(device)
        out, pending = [], False
        for layer in layers:
            mats = layer.matrices().detach()
            if device is None or mats.device == device:
                copy = mats.clone()
            elif device.type == "cpu" and mats.is_cuda:
                copy = torch.empty(mats.shape, dtype=mats.dtype, pin_memory=True)
                copy.copy_(mats, non_blocking=True)
                pending = True
            else:
                copy = mats.to(device, copy=True)
            out.append(layer.with_matrices(copy))
        copied = None
        if pending:
            copied = torch.cuda.Event()
            copied.record()
        return Snapshot(out, copied)

    @torch.no_grad()
    def run(
        self,
        snapshot: Snapshot,
        previous: dict[str, LayerFit],
        references: dict[str, torch.Tensor] | None = None,
        step: int = -1,
    ) -> MeasureOutcome:
        """Fit every layer of ``snapshot``, except those whose previous fit the skip bound certifies."""
        from ..spectral import measure

        snapshot.wait()
        references = references or {}
        fits: dict[str, LayerFit] = {}
        to_fit, skipped = [], []
        for layer in snapshot:
            old = previous.get(layer.name)
            if (
                old is not None
                and layer.name in references
                and self._unchanged(layer, old, references[layer.name])
            ):
                fits[layer.name] = old
                skipped.append(layer.name)
            else:
                to_fit.append(layer)
        keep = self.skip_tolerance > 0
        specs = (
            measure(
                to_fit,
                fit=self.fit,
                relative=self.metric == "alpha_relative",
                farms=self.metric == "alpha_farms",
                min_eigs=self.min_eigs,
                nonfinite="skip",
                keep_eigenvalues=keep,
            )
            if to_fit
            else []
        )
        new_refs = {}
        for layer, spec in zip(to_fit, specs, strict=True):
            fit = LayerFit(
                spec.alpha,
                spec.alpha_stderr,
                spec.alpha_relative,
                spec.alpha_farms,
                spec.status,
                measured_step=step,
            )
            if keep and spec.eigenvalues is not None and math.isfinite(spec.alpha):
                fit.eigenvalues = np.sort(np.asarray(spec.eigenvalues, dtype=np.float64))
                new_refs[layer.name] = layer.matrices()
            fits[layer.name] = fit
        ordered = {layer.name: fits[layer.name] for layer in snapshot}
        return MeasureOutcome(step, ordered, [layer.name for layer in to_fit], skipped, new_refs)

    def _unchanged(self, layer, old: LayerFit, reference: torch.Tensor) -> bool:
        if self.skip_tolerance <= 0 or old.eigenvalues is None:
            return False
        current = layer.matrices()
        if current.shape != reference.shape:
            return False
        reference = reference.to(current.device)
        big = max(layer.matrix_shape)
        lower, cheap, tight = spectral_norm_bounds(current - reference)

        def bound(delta: float) -> float:
            return alpha_change_bound(old.eigenvalues, old.alpha, delta, big, self.fit.xmin_pos)

        if bound(lower) > self.skip_tolerance:
            return False  # even the exact spectral norm could not certify it: refit without more work
        if bound(cheap) <= self.skip_tolerance:
            return True
        return bound(tight()) <= self.skip_tolerance


def _version_key(tensor: torch.Tensor) -> tuple[int, int] | None:
    """Identity of a tensor's current values: storage address and in-place version (None if unreadable)."""
    local = getattr(tensor, "_local_tensor", tensor)  # a DTensor's shard on this rank
    try:
        return local.data_ptr(), local._version
    except (RuntimeError, AttributeError):
        return None


def _fingerprint(tensor: torch.Tensor) -> list[float] | None:
    """Float64 sum and norm of a tensor's values, to check saved fits against loaded weights (None if unreadable)."""
    local = getattr(tensor, "_local_tensor", tensor)
    try:
        return [
            float(torch.sum(local, dtype=torch.float64)),
            float(torch.linalg.vector_norm(local, dtype=torch.float64)),
        ]
    except (RuntimeError, TypeError):
        return None


class FrozenLayers:
    """Which balanced layers can keep their last fit because nothing has changed their weights since.

    >>> import torch.nn as nn
    >>> from modelbalance.spectral import extract_layers
    >>> model = nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 64))
    >>> model[0].requires_grad_(False)
    Linear(in_features=64, out_features=64, bias=True)
    >>> layers = extract_layers(model)
    >>> frozen = FrozenLayers(model, layers)
    >>> keys = frozen.keys(layers)                      # at a snapshot: the frozen layers' weights
    >>> frozen.commit([layer.name for layer in layers], keys)  # once their fits are in
    >>> frozen.reusable(layers, fits={"0": None, "1": None})
    ['0']

    A layer is reusable when it has a fit and every parameter it reads is frozen now (``requires_grad`` off and no
    ``.grad``: no optimizer steps it, fused or not) and has the storage and version counter it had when that
    fit's snapshot was taken. Never reused: LoRA layers (adapter state and merges live outside their weights'
    counters) and parametrized weights (their buffers, e.g. a pruning mask, are not covered).
    """

    def __init__(self, model: nn.Module, layers: list):
        params = dict(model.named_parameters(remove_duplicate=False))
        self._sources: dict[str, list[torch.Tensor] | None] = {}
        for layer in layers:
            names = tuple(layer.param_names)
            ok = (
                bool(names)
                and layer.kind != "lora"
                and all(n in params and ".parametrizations." not in f".{n}" for n in names)
            )
            self._sources[layer.name] = [params[n] for n in names] if ok else None
        self._versions: dict[str, tuple] = {}

    def _frozen(self, name: str) -> bool:
        sources = self._sources.get(name)
        return sources is not None and all(not t.requires_grad and t.grad is None for t in sources)

    def _key(self, name: str) -> tuple | None:
        keys = tuple(_version_key(t) for t in self._sources[name])
        return None if any(k is None for k in keys) else keys

    def _fingerprints(self, name: str) -> list[list[float]] | None:
        prints = [_fingerprint(t) for t in self._sources[name]]
        return None if any(p is None for p in prints) else prints

    def _valid(self, name: str, key: tuple | None) -> bool:
        return key is not None and self._frozen(name) and self._key(name) == key

    def keys(self, layers: list) -> dict[str, tuple]:
        """The current weight keys of the frozen ones among ``layers`` (taken with their snapshot)."""
        out = {}
        for layer in layers:
            if self._frozen(layer.name):
                key = self._key(layer.name)
                if key is not None:
                    out[layer.name] = key
        return out

    def commit(self, measured: list[str], keys: dict[str, tuple]) -> None:
        """The fits of ``measured`` are in: remember the keys of their snapshot (frozen layers only)."""
        for name in measured:
            self._versions.pop(name, None)
            if name in keys:
                self._versions[name] = keys[name]

    def reusable(self, layers: list, fits: dict) -> list[str]:
        """Names of the layers among ``layers`` whose fit in ``fits`` still describes their weights."""
        return [
            layer.name
            for layer in layers
            if layer.name in fits and self._valid(layer.name, self._versions.get(layer.name))
        ]

    def state(self, pending: dict[str, tuple] | None = None) -> dict[str, list]:
        """Fingerprints of the frozen layers whose fit (committed, or in ``pending``) matches their weights now."""
        out = {}
        for name in self._sources:
            key = (pending or {}).get(name, self._versions.get(name))
            prints = self._fingerprints(name) if self._valid(name, key) else None
            if prints is not None:
                out[name] = prints
        return out

    def restore(self, state: dict[str, list]) -> None:
        """Trust the saved fits of frozen layers whose weights still have the saved fingerprints.

        Weights changed later (e.g. loading the model's state after the balancer's) are refit at the next
        recompute.
        """
        self._versions = {}
        for name, prints in state.items():
            if self._frozen(name) and self._fingerprints(name) == [list(p) for p in prints]:
                key = self._key(name)
                if key is not None:
                    self._versions[name] = key

    def forget(self) -> None:
        """Refit every layer at the next recompute (after changing frozen weights through ``.data``)."""
        self._versions = {}


class BackgroundRunner:
    """One worker thread running recomputes; on CUDA it works on a side stream after the snapshot copies."""

    def __init__(self):
        self._pool: ThreadPoolExecutor | None = None
        self._streams: dict[torch.device, torch.cuda.Stream] = {}

    def submit(self, job: Callable[[], MeasureOutcome], snapshot: Snapshot) -> Future:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tempbalance")
        devices = {
            mats.device for mats in (layer.matrices() for layer in snapshot) if mats.device.type == "cuda"
        }
        if not devices:
            return self._pool.submit(job)
        device = next(iter(devices))
        ready = torch.cuda.Event()
        ready.record(torch.cuda.current_stream(device))
        side = self._streams.setdefault(device, torch.cuda.Stream(device))
        for layer in snapshot:
            layer.matrices().record_stream(side)  # keep the copies alive for the side stream's kernels

        def on_side_stream() -> MeasureOutcome:
            with torch.cuda.stream(side):
                side.wait_event(ready)
                outcome = job()
            side.synchronize()
            return outcome

        return self._pool.submit(on_side_stream)

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
