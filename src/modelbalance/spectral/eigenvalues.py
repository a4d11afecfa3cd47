"""Eigenvalues of W^H W for stacks of matrices: Gram matrix of the smaller side plus a symmetric eigensolver.

Example
-------
>>> import torch
>>> from modelbalance.spectral.eigenvalues import esd
>>> w = torch.randn(3, 64, 32)                      # three 64 x 32 matrices
>>> esd(w).shape                                    # their 96 eigenvalues, pooled and sorted
(96,)

Why a Gram matrix: for W (n x m) the eigenvalues of the m x m (or n x n, whichever is smaller) Gram matrix are the
squared singular values, and a symmetric eigensolver on it is 2-4x cheaper than an SVD. In float32 the top half of
the spectrum agrees with a float64 SVD to ~1e-6 relative; eigenvalues below the Gram matrix's round-off level
(``max(n, m) * eps * lambda_max``) are set to exactly 0 and count as rank deficiency.

Scale: LAPACK's eigensolvers rescale a matrix whose norm is very large or small (for float32 tridiagonal norms
below ~3e-5, which weights with entries ~1e-3 reach) by a factor that is not a power of two, so the spectrum of
``c * W`` would not be exactly ``c**2`` times that of ``W``. Every stack is therefore first multiplied by the power
of two that puts its largest entry in [0.5, 1) (exact in binary floating point), and the eigenvalues are multiplied
back in float64. The decomposed matrix is then the same, bit for bit, for ``W`` and ``2**k * W`` (so alpha agrees to
the float64 fit's round-off), the Gram matrix's entries stay below its inner dimension (no overflow), and huge or
tiny but finite weights are measured in float32 like any others. The cost: one pass to find the largest entry, and
one scaled copy of the stack being decomposed (none when its largest entry is already in [0.5, 1)).

Where it runs: on the weights' own device. Half precision is upcast to float32 (``dtype=torch.float64`` for double).
On the CPU, real matrices go through LAPACK ``syrk`` (half the flops of a matmul) and ``syevd`` one at a time, which
beats torch's batched CPU path; elsewhere (CUDA, complex) the Gram matrices of up to ``batch_elements`` numbers are
stacked and decomposed in one batched ``torch.linalg.eigvalsh`` call.

Memory: besides one layer's matrices when they are not a view of the weights (LoRA effective weights, grouped or
transposed convs), the extra memory is bounded by the stacked Gram matrices of one batch, at most
``batch_elements`` numbers (default 2^24, 64 MiB in float32), plus the eigenvalues themselves.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .lapack import gram_eigenvalues

BATCH_ELEMENTS = 1 << 24


def compute_dtype(tensor_dtype: torch.dtype, dtype: torch.dtype = torch.float32) -> torch.dtype:
    """The dtype eigenvalues are computed in: at least float32, complex kept complex."""
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    if tensor_dtype.is_complex:
        return torch.complex128 if dtype == torch.float64 else torch.complex64
    return dtype


def power_of_two_normalized(mats: torch.Tensor, *, inplace: bool = False) -> tuple[torch.Tensor, int]:
    """``(mats * 2**-e, e)``, with ``e`` the power of two that puts the stack's largest magnitude in [0.5, 1);
    ``(mats, 0)`` for zero or non-finite weights (left for the caller to report). The eigenvalues of the
    result times ``4**e`` are those of ``mats``. ``inplace=True`` scales ``mats`` itself (pass it only for a
    tensor the caller owns, e.g. a fresh dtype conversion)."""
    if mats.numel() == 0:
        return mats, 0
    top = float(torch.linalg.vector_norm(mats, ord=math.inf))  # no temporary copy, unlike abs().amax()
    if not math.isfinite(top) or top == 0:
        return mats, 0
    e = math.frexp(top)[1]
    if e == 0:
        return mats, 0
    # 2**-e itself may not fit the dtype (float32 weights below ~1e-38 need 2**130): then two exact halves
    parts = [-e] if abs(e) <= 60 else [-e // 2, -e - (-e // 2)]
    out = mats if inplace else None
    for part in parts:
        out = mats * 2.0**part if out is None else out.mul_(2.0**part)
    return out, e


def to_normalized(mats: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, int]:
    """``mats`` in ``dtype``, scaled by :func:`power_of_two_normalized`: in place when the conversion copied,
    so the caller's tensor (often a view of the weights) is never modified."""
    converted = mats.to(dtype)
    return power_of_two_normalized(converted, inplace=converted is not mats)


def gram(mats: torch.Tensor) -> torch.Tensor:
    """(b, n, m) -> (b, s, s) Hermitian Gram matrices of the smaller side s = min(n, m)."""
    n, m = mats.shape[-2:]
    return mats.mH @ mats if n >= m else mats @ mats.mH


def zero_roundoff(eigs, big_side: int):
    """Clamp negatives and eigenvalues at or below the Gram matrix's round-off level (per row) to 0.

    Works on torch tensors and numpy arrays of shape (..., s).
    """
    if isinstance(eigs, np.ndarray):
        eigs = np.maximum(eigs, 0)
        top = eigs.max(axis=-1, keepdims=True)
        return np.where(eigs > np.finfo(eigs.dtype).eps * big_side * top, eigs, 0)
    eigs = eigs.clamp_min(0)
    top = eigs.max(dim=-1, keepdim=True).values
    return torch.where(eigs > torch.finfo(eigs.dtype).eps * big_side * top, eigs, torch.zeros_like(eigs))


def esd_batches(
    mats: torch.Tensor, dtype: torch.dtype = torch.float32, batch_elements: int = BATCH_ELEMENTS
) -> torch.Tensor:
    """Per-matrix eigenvalues of W^H W, ascending: (b, n, m) -> (b, min(n, m)), in the compute dtype's real type.

    Computed on ``mats.device``; the result stays there. Eigenvalues beyond float32's range (weights above ~1e19
    or below ~1e-19) over- or underflow here; :func:`esd` returns float64 and keeps them.
    """
    eigs, exponent = _normalized_esd_batches(mats, dtype, batch_elements)
    return torch.ldexp(eigs, torch.tensor(2 * exponent, device=eigs.device)) if exponent else eigs


def _normalized_esd_batches(
    mats: torch.Tensor, dtype: torch.dtype, batch_elements: int
) -> tuple[torch.Tensor, int]:
    """Eigenvalues of ``mats * 2**-e`` (see :func:`power_of_two_normalized`) and ``e``."""
    if mats.dim() != 3:
        raise ValueError(f"expected a (batch, rows, cols) tensor, got shape {tuple(mats.shape)}")
    target = compute_dtype(mats.dtype, dtype)
    n, m = mats.shape[-2:]
    s = min(n, m)
    mats, exponent = to_normalized(mats, target)
    if mats.device.type == "cpu" and not mats.is_complex():
        stack = mats.numpy()
        eigs = torch.from_numpy(next(gram_eigenvalues([lambda: stack])))
    else:
        per_batch = max(1, batch_elements // max(s * s, 1))
        parts = []
        for lo in range(0, mats.shape[0], per_batch):
            g = gram(mats[lo : lo + per_batch])
            parts.append(torch.linalg.eigvalsh(g))
        eigs = torch.cat(parts)
    return zero_roundoff(eigs, max(n, m)), exponent


def esd(
    mats: torch.Tensor, dtype: torch.dtype = torch.float32, batch_elements: int = BATCH_ELEMENTS
) -> np.ndarray:
    """Pooled, sorted (ascending) eigenvalues of all matrices in a (b, n, m) stack, as float64 numpy."""
    eigs, exponent = _normalized_esd_batches(mats, dtype, batch_elements)
    return np.ldexp(np.sort(eigs.reshape(-1).double().cpu().numpy()), 2 * exponent)
