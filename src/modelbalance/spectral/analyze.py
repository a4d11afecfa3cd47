"""Layers -> eigenvalues -> fits: :func:`measure` for a list of layers, :func:`analyze` for a whole model.

Example
-------
>>> import torch.nn as nn
>>> import modelbalance
>>> model = nn.Sequential(nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
>>> report = modelbalance.analyze(model, progress=False)
>>> report.to_frame()[["name", "alpha", "status"]].shape
(2, 3)
"""

from __future__ import annotations

import math
import os
import warnings
from collections import defaultdict
from dataclasses import dataclass, field, fields

import numpy as np
import torch
from tqdm.auto import tqdm

from .eigenvalues import (
    BATCH_ELEMENTS,
    compute_dtype,
    esd_batches,
    gram,
    to_normalized,
    zero_roundoff,
)
from .lapack import gram_eigenvalues
from .matrices import CONV_SCALE, LayerWeight, extract_layers
from .metrics import spectrum_metrics
from .powerlaw import FitConfig, fit_power_law
from .reference import farms_eigenvalues, null_alpha

NAN = float("nan")
# the spectra bar shows only once the work has taken this long: no bar flashes past for a small model
PROGRESS_DELAY_S = 1.0


class NonFiniteWeightsError(ValueError):
    """A layer has NaN or Inf weights (``nonfinite="raise"``); ``layer`` names it."""

    def __init__(self, layer: str):
        super().__init__(f"layer {layer!r} has NaN or Inf weights; pass nonfinite='skip' to skip such layers")
        self.layer = layer


class EigensolverError(ValueError):
    """The eigensolver returned NaN or Inf for a layer with finite weights; ``layer`` names it."""

    def __init__(self, layer: str, dtype: torch.dtype):
        fix = "use dtype=torch.float64" if dtype == torch.float32 else "please report it, with the weights"
        super().__init__(
            f"layer {layer!r}: the eigensolver returned NaN or Inf eigenvalues in {dtype} for finite weights; {fix}"
        )
        self.layer = layer


GramOverflowError = EigensolverError  # its earlier name: the Gram matrix can no longer overflow


@dataclass
class LayerSpectrum:
    """Everything measured for one layer. ``alpha`` is the raw PL_Alpha_Hill; NaN with a ``status`` when unfit."""

    name: str
    module_type: str
    kind: str
    param_names: tuple[str, ...]
    matrix_shape: tuple[int, int]
    num_matrices: int
    num_eigs: int
    aspect_ratio: float
    alpha: float = NAN
    alpha_stderr: float = NAN
    xmin: float = NAN
    num_tail: int = 0
    ks_distance: float = NAN
    alpha_null: float = NAN
    alpha_relative: float = NAN
    alpha_farms: float = NAN
    spectral_norm: float = NAN
    log_spectral_norm: float = NAN
    frobenius_norm: float = NAN
    stable_rank: float = NAN
    alpha_weighted: float = NAN
    entropy: float = NAN
    num_nonzero: int = 0
    status: str = "ok"
    eigenvalues: np.ndarray | None = field(default=None, repr=False)

    def as_record(self) -> dict:
        """A flat dict of the scalar fields (no eigenvalues), for tables and JSON."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "eigenvalues"}
        out["param_names"] = ";".join(self.param_names)
        out["matrix_shape"] = "x".join(str(s) for s in self.matrix_shape)
        return out


def _new_spectrum(layer: LayerWeight) -> LayerSpectrum:
    rows, cols = layer.matrix_shape
    return LayerSpectrum(
        name=layer.name,
        module_type=layer.module_type,
        kind=layer.kind,
        param_names=layer.param_names,
        matrix_shape=(rows, cols),
        num_matrices=layer.num_matrices,
        num_eigs=layer.num_eigenvalues,
        aspect_ratio=max(rows, cols) / max(min(rows, cols), 1),
    )


def _check_finite(layer: LayerWeight, mats: torch.Tensor, nonfinite: str, spec: LayerSpectrum) -> bool:
    """False (and a status) for NaN/Inf weights when skipping; raises by default. True when all finite."""
    if bool(torch.isfinite(mats).all()):
        return True
    if nonfinite == "raise":
        raise NonFiniteWeightsError(layer.name)
    warnings.warn(f"skipping layer {layer.name!r}: NaN or Inf weights", stacklevel=4)
    spec.status = "skipped: NaN or Inf weights"
    return False


def _fit_into(
    spec: LayerSpectrum,
    eigs: np.ndarray,
    fit: FitConfig,
    min_eigs: int,
    relative: bool,
    keep: bool,
    dtype: torch.dtype,
) -> None:
    # Eigenvalues closer than this (relative to the largest) are equal up to round-off: the Gram matrix's
    # (~eps * longer side), and at least ~tens of eps from merely storing the matrix in the compute dtype.
    flat_rtol = torch.finfo(dtype).eps * max(64, *spec.matrix_shape)
    nonzero = int((eigs > 0).sum())
    spec.eigenvalues = eigs if keep else None
    if spec.num_eigs < min_eigs:
        spec.status = f"too few eigenvalues ({spec.num_eigs} < min_eigs={min_eigs})"
    elif nonzero == 0:
        spec.status = "zero matrix: all eigenvalues are 0"
    elif nonzero < min_eigs:
        spec.status = (
            f"rank-deficient: {nonzero} nonzero eigenvalues of {spec.num_eigs} (< min_eigs={min_eigs})"
        )
    else:
        result = fit_power_law(eigs, config=fit)
        spec.status = result.status
        if result.ok and eigs[-1] - result.xmin <= flat_rtol * eigs[-1]:
            # e.g. an orthogonal matrix: a tail flat up to round-off would give an enormous, meaningless alpha
            spec.status = "constant spectrum: tail eigenvalues equal up to round-off"
        elif result.ok:
            spec.alpha, spec.alpha_stderr, spec.xmin = result.alpha, result.alpha_stderr, result.xmin
            spec.num_tail, spec.ks_distance = result.num_tail, result.ks_distance
    for key, value in spectrum_metrics(eigs, spec.alpha).items():
        setattr(spec, key, value)
    # A numeric xmin is in the units of these weights; the Gaussian null has other units, so no comparison.
    if relative and math.isfinite(spec.alpha) and isinstance(fit.xmin, str):
        ref = null_alpha(spec.matrix_shape, spec.num_matrices, spec.kind == "spectral_conv", fit)
        spec.alpha_null = ref.mean
        spec.alpha_relative = spec.alpha - ref.mean


def _refit_in_float64(layer, spec, fit, min_eigs, relative, keep) -> None:
    """Full rank but ill-conditioned, or truly rank-deficient? The float32 Gram matrix cannot tell: its
    round-off (~eps32 * n * lambda_max) zeroes the lower spectrum. float64 can, down to the noise of storing the
    weights (singular values perturbed by ~eps_storage * sigma_max, so eigenvalues below ~eps_storage^2 * n *
    lambda_max mean nothing). Weights stored in 16 bits are noisier than float32's Gram round-off: nothing to
    gain, so they keep the float32 verdict."""
    mats = layer.matrices()
    storage = mats.real.dtype if mats.is_complex() else mats.dtype
    if torch.finfo(storage).eps > torch.finfo(torch.float32).eps:
        return
    per_matrix = esd_batches(mats, dtype=torch.float64).double().cpu().numpy()
    top = per_matrix.max(axis=-1, keepdims=True)
    noise = torch.finfo(storage).eps ** 2 * 64 * max(layer.matrix_shape) * top
    eigs = np.sort(np.where(per_matrix > noise, per_matrix, 0.0).reshape(-1))
    _fit_into(spec, eigs, fit, min_eigs, relative, keep, torch.float64)


def _use_host(layer: LayerWeight, eigensolver: str) -> bool:
    if layer.is_complex or layer.device.type == "cpu" or eigensolver == "device":
        return False
    return eigensolver == "host" or (min(layer.matrix_shape) >= 128 and (os.cpu_count() or 1) >= 4)


def _farms_into(spec: LayerSpectrum, mats: torch.Tensor, fit: FitConfig, dtype: torch.dtype) -> None:
    result = fit_power_law(farms_eigenvalues(mats, dtype=dtype), config=fit)
    spec.alpha_farms = result.alpha


def measure(
    layers: list[LayerWeight],
    *,
    fit: FitConfig | None = None,
    dtype: torch.dtype = torch.float32,
    relative: bool = True,
    farms: bool = False,
    min_eigs: int = 10,
    nonfinite: str = "raise",
    progress: bool = False,
    keep_eigenvalues: bool = False,
    batch_elements: int = BATCH_ELEMENTS,
    eigensolver: str = "auto",
) -> list[LayerSpectrum]:
    """Eigenvalues, power-law fit and metrics of each layer, in the order given.

    Parameters
    ----------
    layers : list of LayerWeight
        From :func:`modelbalance.spectral.extract_layers`.
    fit : FitConfig
        How xmin is chosen (default: fixed at the median, xmin_pos=2).
    dtype : torch.float32 or torch.float64
        Precision of the eigensolver (half precision weights are upcast). In float32, a layer whose fit lands on
        eigenvalues below round-off (an ill-conditioned or rank-deficient matrix) is decomposed again in
        float64, so the status it gets is float64's verdict.
    relative : bool
        Also report ``alpha_relative = alpha - alpha_null`` against same-shape Gaussian matrices (cached).
        Not defined (NaN) for a numeric ``fit.xmin``, which has the units of the weights being measured.
    farms : bool
        Also compute the FARMS alpha (costs one more decomposition per layer, on submatrices).
    min_eigs : int
        Layers with fewer eigenvalues (or fewer nonzero ones) get alpha NaN and a status saying so.
    nonfinite : {"raise", "skip"}
        NaN/Inf weights raise a ValueError naming the layer, or the layer is skipped with a warning.
    keep_eigenvalues : bool
        Keep each layer's sorted eigenvalues on the result (needed for ESD plots).
    eigensolver : {"auto", "device", "host"}
        Where the eigenvalues of accelerator-resident (real) weights are computed: "device" (batched
        ``torch.linalg.eigvalsh`` there), "host" (Gram matrix on the device, LAPACK on the host's cores in
        parallel), or "auto": host when the Gram matrix is at least 128 wide and the host has 4+ cores.
        CPU weights always use LAPACK; complex weights always use the device.
    """
    fit = fit or FitConfig()
    if eigensolver not in ("auto", "device", "host"):
        raise ValueError(f"eigensolver must be 'auto', 'device' or 'host', got {eigensolver!r}")
    if nonfinite not in ("raise", "skip"):
        raise ValueError(f"nonfinite must be 'raise' or 'skip', got {nonfinite!r}")
    if min_eigs < 2:
        raise ValueError(f"min_eigs must be at least 2, got {min_eigs}")
    compute_dtype(torch.float32, dtype)  # validates dtype up front
    specs = [_new_spectrum(layer) for layer in layers]
    bar = tqdm(
        total=len(layers),
        desc="spectra",
        unit="layer",
        disable=not progress,
        leave=False,
        delay=PROGRESS_DELAY_S,
    )

    def finish(i: int, per_matrix: np.ndarray | torch.Tensor) -> None:
        layer, spec = layers[i], specs[i]
        finite = (
            bool(torch.isfinite(per_matrix).all())
            if isinstance(per_matrix, torch.Tensor)
            else bool(np.isfinite(per_matrix).all())
        )
        if not finite:
            # NaN/Inf weights propagate into the Gram matrix; only now pay for a full check of the weights.
            if not _check_finite(layer, layer.matrices(), nonfinite, spec):
                bar.update()
                return
            raise EigensolverError(layer.name, dtype)
        # Round-off level of the dtype the eigenvalues were computed in, so before any upcast to float64.
        per_matrix = zero_roundoff(per_matrix, max(layer.matrix_shape))
        if isinstance(per_matrix, torch.Tensor):
            per_matrix = per_matrix.double().cpu().numpy()
        # Back to the weights' own scale, in float64 (exact: a power of two; finite for any float32 weights).
        eigs = np.ldexp(np.sort(per_matrix.reshape(-1).astype(np.float64)), 2 * exponents.pop(i, 0))
        _fit_into(spec, eigs, fit, min_eigs, relative, keep_eigenvalues, dtype)
        if dtype == torch.float32 and spec.status.startswith("rank-deficient"):
            _refit_in_float64(layer, spec, fit, min_eigs, relative, keep_eigenvalues)
        if farms:
            _farms_into(spec, layer.matrices(), fit, dtype)
        bar.update()

    # Empty matrices (a dimension of 0) have no eigenvalues to compute: reported as too few, not decomposed.
    empty = [i for i, layer in enumerate(layers) if layer.num_eigenvalues == 0]
    for i in empty:
        _fit_into(specs[i], np.empty(0), fit, min_eigs, relative, keep_eigenvalues, dtype)
        bar.update()

    # CPU, real: LAPACK per matrix, one layer per core (see spectral/lapack.py).
    cpu = [
        i
        for i, layer in enumerate(layers)
        if layer.device.type == "cpu" and not layer.is_complex and i not in empty
    ]
    # Every stack is first scaled by a power of two (see spectral/eigenvalues.py); its exponent is kept per layer
    # until finish() scales the eigenvalues back.
    exponents: dict[int, int] = {}
    target = compute_dtype(torch.float32, dtype)

    def normalized(i: int) -> torch.Tensor:
        scaled, exponents[i] = to_normalized(layers[i].matrices(), target)
        return scaled

    makers = [lambda i=i: normalized(i).numpy() for i in cpu]
    for i, per_matrix in zip(cpu, gram_eigenvalues(makers, workers=max(1, torch.get_num_threads()))):
        finish(i, per_matrix)

    # Accelerators, real weights, eigensolver on the host: the Gram matrix is formed on the device (cheap there),
    # copied to the host and decomposed by LAPACK, one matrix per CPU core. GPU symmetric eigensolvers are slow
    # for the few-hundred-wide matrices of typical layers, and this also keeps the GPU free for training.
    on_cpu = set(cpu)
    host = [
        i
        for i, layer in enumerate(layers)
        if i not in empty and i not in on_cpu and _use_host(layer, eigensolver)
    ]
    host_makers = [lambda i=i: gram(normalized(i)).cpu().numpy() for i in host]
    host_workers = max(1, os.cpu_count() or 1)
    for i, per_matrix in zip(host, gram_eigenvalues(host_makers, workers=host_workers, symmetric=True)):
        finish(i, per_matrix)

    # Accelerators and complex weights: Gram matrices of equal size are stacked and decomposed in one call.
    batched: dict[tuple, list[int]] = defaultdict(list)
    done = on_cpu | set(empty) | set(host)
    for i, layer in enumerate(layers):
        if i not in done:
            side = min(layer.matrix_shape)
            batched[(side, layer.device, layer.is_complex)].append(i)
    for (side, _, _), idx in batched.items():
        per_batch = max(1, batch_elements // (side * side))
        grams, owners = [], []
        for pos, i in enumerate(idx):
            mats = layers[i].matrices()
            scaled, exponents[i] = to_normalized(mats, compute_dtype(mats.dtype, dtype))
            g = gram(scaled)
            grams.append(g)
            owners.append((i, g.shape[0]))
            if sum(x.shape[0] for x in grams) >= per_batch or pos == len(idx) - 1:
                eigs = torch.linalg.eigvalsh(torch.cat(grams))
                for j, count in owners:
                    finish(j, eigs[:count])
                    eigs = eigs[count:]
                grams, owners = [], []
    bar.close()
    return specs


def analyze(
    model: torch.nn.Module,
    *,
    include=None,
    exclude=None,
    types=None,
    lora: str = "effective",
    embeddings: bool = False,
    spectral_conv: bool = True,
    conv_scale: float = CONV_SCALE,
    xmin="fixed",
    xmin_pos: float = 2.0,
    fit: FitConfig | None = None,
    dtype: torch.dtype = torch.float32,
    relative: bool = True,
    farms: bool = False,
    min_eigs: int = 10,
    nonfinite: str = "raise",
    progress: bool = True,
    layers: list[LayerWeight] | None = None,
    eigensolver: str = "auto",
):
    """Layer-wise spectral analysis of ``model``: a :class:`~modelbalance.spectral.report.SpectralReport`.

    Layer selection (``include``, ``exclude``, ``types``, ``lora``, ``embeddings``, ``spectral_conv``,
    ``conv_scale``) is documented in :func:`~modelbalance.spectral.matrices.extract_layers`; the fit and
    measurement options (``xmin``, ``xmin_pos``, ``dtype``, ``relative``, ``farms``, ``min_eigs``, ``nonfinite``,
    ``eigensolver``) in :func:`measure`. ``layers`` skips extraction (e.g. for a bare state dict).
    """
    from .report import SpectralReport

    fit = fit or FitConfig(xmin=xmin, xmin_pos=xmin_pos)
    if layers is None:
        layers = extract_layers(
            model,
            include=include,
            exclude=exclude,
            types=types,
            lora=lora,
            embeddings=embeddings,
            spectral_conv=spectral_conv,
            conv_scale=conv_scale,
        )
    with torch.no_grad():
        specs = measure(
            layers,
            fit=fit,
            dtype=dtype,
            relative=relative,
            farms=farms,
            min_eigs=min_eigs,
            nonfinite=nonfinite,
            progress=progress,
            keep_eigenvalues=True,
            eigensolver=eigensolver,
        )
    settings = dict(
        xmin=fit.xmin,
        xmin_pos=fit.xmin_pos,
        dtype=str(dtype).replace("torch.", ""),
        min_eigs=min_eigs,
        relative=relative,
        farms=farms,
    )
    return SpectralReport(specs, settings)
