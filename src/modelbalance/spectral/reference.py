"""Shape-corrected alphas: a random-matrix null reference per shape, and FARMS.

A Hill fit at a fixed quantile mostly measures a matrix's aspect ratio until training moves the spectrum far from
random: a Gaussian 64 x 64 matrix gives alpha ~2.1 at the median, a 32 x 64 one ~3. Two corrections:

- :func:`null_alpha`: the mean alpha, under the same fit, of Gaussian matrices of the same shape, count (pooled
  kernel positions / modes) and field (real or complex). ``alpha_relative = alpha - null_alpha`` is then ~0 for a
  layer still at its random-matrix spectrum whatever its shape, and negative as training grows a heavy tail. The
  reference is sampled (finite-size effects matter for small matrices, which the Marchenko-Pastur limit misses)
  with a fixed seed per key, so it is deterministic, and cached per (shape, count, field, fit) in memory and on disk.
- :func:`farms_eigenvalues`: FARMS (Hu et al., ICML 2025), "fixed-aspect-ratio matrix sampling": the ESDs of many
  square submatrices (side ``min(n, m) // 2``, windows on a half-overlapping grid, at most ``max_windows`` per
  matrix, evenly spread) are pooled and fitted, so every layer is read at aspect ratio 1.

Example
-------
>>> from modelbalance.spectral.reference import null_alpha
>>> from modelbalance.spectral.powerlaw import FitConfig
>>> round(null_alpha((64, 64), 1, False, FitConfig()).mean, 1)
2.2
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .eigenvalues import BATCH_ELEMENTS, esd
from .powerlaw import FitConfig, fit_power_law

_TARGET_EIGS = 2048  # eigenvalues sampled per reference (at least 3 matrices): ~1% standard error on the mean


@dataclass(frozen=True)
class NullReference:
    mean: float
    std: float
    samples: int


def _seed(*key) -> int:
    return int.from_bytes(hashlib.sha256(repr(key).encode()).digest()[:8], "little") & ((1 << 63) - 1)


def cache_dir() -> Path:
    """Where modelbalance caches things: $MODELBALANCE_CACHE, else ~/.cache/modelbalance."""
    return Path(os.environ.get("MODELBALANCE_CACHE") or Path.home() / ".cache" / "modelbalance")


_DISK_VERSION = 1
_disk: dict[str, list] | None = None


def _disk_path() -> Path:
    return cache_dir() / f"null_alpha_v{_DISK_VERSION}.json"


def _disk_get(key: str):
    global _disk
    if _disk is None:
        try:
            _disk = json.loads(_disk_path().read_text())
        except (OSError, ValueError):
            _disk = {}
    return _disk.get(key)


def _disk_put(key: str, value: NullReference) -> None:
    if _disk is None:
        _disk_get(key)
    _disk[key] = [value.mean, value.std, value.samples]
    try:  # best effort: a read-only home must not break analysis
        path = _disk_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(_disk))
        os.replace(tmp, path)
    except OSError:
        pass


@functools.lru_cache(maxsize=1024)
def _null_alpha(rows: int, cols: int, count: int, is_complex: bool, fit_key: tuple) -> NullReference:
    key = repr((rows, cols, count, is_complex, fit_key, _TARGET_EIGS))
    hit = _disk_get(key)
    if hit is not None:
        return NullReference(float(hit[0]), float(hit[1]), int(hit[2]))
    fit = FitConfig(*fit_key)
    per_sample = count * min(rows, cols)
    samples = int(min(64, max(3, math.ceil(_TARGET_EIGS / max(per_sample, 1)))))
    gen = torch.Generator().manual_seed(_seed(rows, cols, count, is_complex, fit_key))
    dtype = torch.complex64 if is_complex else torch.float32
    alphas = []
    for _ in range(samples):
        mats = torch.randn(count, rows, cols, generator=gen, dtype=dtype)
        result = fit_power_law(esd(mats), config=fit)
        if result.ok:
            alphas.append(result.alpha)
    if not alphas:
        ref = NullReference(float("nan"), float("nan"), 0)
    else:
        arr = np.asarray(alphas)
        ref = NullReference(
            float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else float("nan"), arr.size
        )
    _disk_put(key, ref)
    return ref


def null_alpha(shape: tuple[int, int], count: int, is_complex: bool, fit: FitConfig) -> NullReference:
    """Mean and spread of alpha for ``count`` pooled Gaussian matrices of ``shape`` under ``fit``.

    Cached in memory and on disk (``cache_dir()/null_alpha_v1.json``): each key is sampled once per machine.
    """
    rows, cols = sorted(int(s) for s in shape)  # the ESD of W and W^T is the same
    return _null_alpha(rows, cols, int(count), bool(is_complex), fit.key())


def _grid(length: int, side: int) -> list[int]:
    """Window starts on a half-overlapping grid that reaches the end of the dimension."""
    if side >= length:
        return [0]
    starts = list(range(0, length - side + 1, max(1, side // 2)))
    if starts[-1] != length - side:
        starts.append(length - side)
    return starts


def _thin(starts: list[int], count: int) -> list[int]:
    if len(starts) <= count:
        return starts
    idx = np.linspace(0, len(starts) - 1, count).round().astype(int)
    return [starts[i] for i in idx]


def farms_eigenvalues(
    mats: torch.Tensor,
    dtype: torch.dtype = torch.float32,
    max_windows: int = 64,
    batch_elements: int = BATCH_ELEMENTS,
) -> np.ndarray:
    """Pooled eigenvalues of square submatrices (side min(n, m) // 2) of every matrix in a (b, n, m) stack.

    The windows are copied and decomposed a few at a time, at most ``batch_elements`` numbers per batch (or one
    window of the stack when that alone is larger), so memory stays bounded whatever the layer's size.
    """
    n, m = mats.shape[-2:]
    side = max(2, min(n, m) // 2)
    rows, cols = _grid(n, side), _grid(m, side)
    if len(rows) * len(cols) > max_windows:
        shrink = math.sqrt(max_windows / (len(rows) * len(cols)))
        rows = _thin(rows, max(1, int(len(rows) * shrink)))
        cols = _thin(cols, max(1, max_windows // len(rows)))
    windows = [(r, c) for r in rows for c in cols]
    per_batch = max(1, batch_elements // max(1, mats.shape[0] * side * side))
    parts = []
    for lo in range(0, len(windows), per_batch):
        blocks = [mats[:, r : r + side, c : c + side] for r, c in windows[lo : lo + per_batch]]
        parts.append(esd(torch.cat(blocks, dim=0), dtype=dtype))
    return np.sort(np.concatenate(parts))
