"""CPU eigenvalues of Gram matrices through LAPACK, in parallel across matrices.

Why not ``torch.linalg.eigvalsh`` on the CPU: on this class of machine (2 cores) LAPACK's ``syrk`` (half the flops
of a matmul) plus ``syevd`` is ~1.5x faster than torch's batched path, and the tridiagonal reduction inside
``syevd`` is memory-bound, so giving each core its own matrix beats splitting one matrix over both cores.
scipy's own LAPACK wrappers hold the GIL; this module calls the same OpenBLAS that scipy ships through ctypes,
which releases it, so a thread pool runs one matrix per core (with OpenBLAS pinned to one thread meanwhile).

The binding is checked once against ``scipy.linalg.lapack`` on a small matrix; if the library cannot be found or
disagrees, everything falls back to scipy's wrappers on one thread (same results, slower).
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

_ROW_MAJOR, _UPPER, _NO_TRANS, _TRANS = 101, 121, 111, 112
_lock = threading.Lock()
_binding: dict | None = None


def _load() -> dict:
    """Find scipy's bundled OpenBLAS (LP64) and bind syrk / syevd; {} when unavailable."""
    try:
        import scipy

        pattern = os.path.join(
            os.path.dirname(os.path.dirname(scipy.__file__)), "scipy.libs", "libscipy_openblas-*"
        )
        paths = [p for p in glob.glob(pattern) if "64_" not in os.path.basename(p)]
        if not paths:
            return {}
        lib = ctypes.CDLL(paths[0])
        out = {}
        for prefix, ctype in (("s", ctypes.c_float), ("d", ctypes.c_double)):
            syrk = getattr(lib, f"scipy_cblas_{prefix}syrk")
            syrk.restype = None
            syrk.argtypes = [
                ctypes.c_int,
                ctypes.c_int,
                ctypes.c_int,
                ctypes.c_int,
                ctypes.c_int,
                ctype,
                ctypes.c_void_p,
                ctypes.c_int,
                ctype,
                ctypes.c_void_p,
                ctypes.c_int,
            ]
            syevd = getattr(lib, f"scipy_LAPACKE_{prefix}syevd")
            syevd.restype = ctypes.c_int
            syevd.argtypes = [
                ctypes.c_int,
                ctypes.c_char,
                ctypes.c_char,
                ctypes.c_int,
                ctypes.c_void_p,
                ctypes.c_int,
                ctypes.c_void_p,
            ]
            out[prefix] = (syrk, syevd)
        return out if _self_test(out) else {}
    except (OSError, AttributeError, ImportError):
        return {}


def _ctypes_gram_eigs(binding: dict, mat: np.ndarray) -> np.ndarray:
    """Eigenvalues (ascending) of the smaller-side Gram matrix of one C-contiguous (r, c) matrix."""
    prefix = "d" if mat.dtype == np.float64 else "s"
    syrk, syevd = binding[prefix]
    r, c = mat.shape
    n, k, trans = (c, r, _TRANS) if c <= r else (r, c, _NO_TRANS)
    g = np.empty((n, n), dtype=mat.dtype)
    syrk(_ROW_MAJOR, _UPPER, trans, n, k, 1.0, mat.ctypes.data, c, 0.0, g.ctypes.data, n)
    return _ctypes_sym_eigs(binding, g)


def _ctypes_sym_eigs(binding: dict, g: np.ndarray) -> np.ndarray:
    """Eigenvalues (ascending) of a C-contiguous symmetric matrix, read from its upper triangle; overwrites g."""
    syevd = binding["d" if g.dtype == np.float64 else "s"][1]
    n = g.shape[0]
    w = np.empty(n, dtype=g.dtype)
    info = syevd(_ROW_MAJOR, b"N", b"U", n, g.ctypes.data, n, w.ctypes.data)
    if info != 0:
        w[:] = np.nan  # LAPACK failed (NaN input): the caller reports it
    return w


def _scipy_sym_eigs(g: np.ndarray) -> np.ndarray:
    from scipy.linalg import lapack

    syevd = lapack.dsyevd if g.dtype == np.float64 else lapack.ssyevd
    w, _, info = syevd(g, compute_v=0, lower=1, overwrite_a=1)  # C-order upper = Fortran-order lower
    return w if info == 0 else np.full(g.shape[0], np.nan, dtype=g.dtype)


def _scipy_gram_eigs(mat: np.ndarray) -> np.ndarray:
    from scipy.linalg import blas, lapack

    double = mat.dtype == np.float64
    syrk = blas.dsyrk if double else blas.ssyrk
    syevd = lapack.dsyevd if double else lapack.ssyevd
    r, c = mat.shape
    a = np.asfortranarray(mat.T)  # (c, r) Fortran order: a free view of a C-contiguous matrix
    g = syrk(1.0, a, trans=0 if c <= r else 1)
    w, _, info = syevd(g, compute_v=0, lower=0, overwrite_a=1)
    if info != 0:
        w = np.full(min(r, c), np.nan, dtype=mat.dtype)
    return w


def _self_test(binding: dict) -> bool:
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        for shape in ((7, 5), (5, 7)):
            m = np.ascontiguousarray(rng.standard_normal(shape).astype(dtype))
            if not np.allclose(_ctypes_gram_eigs(binding, m), _scipy_gram_eigs(m), rtol=1e-4, atol=1e-5):
                return False
    return True


def _binding_or_none() -> dict:
    global _binding
    with _lock:
        if _binding is None:
            _binding = _load()
    return _binding


def gram_eigenvalues(stacks, workers: int = 1, symmetric: bool = False):
    """Eigenvalues of W^T W for each (b, r, c) numpy stack produced by ``stacks`` (an iterable of callables).

    With ``symmetric=True`` the stacks already hold (b, s, s) Gram matrices (e.g. formed on a GPU) and only the
    eigensolver runs here.

    Yields one (b, min(r, c)) array per stack, in order (NaN rows where LAPACK failed, e.g. on NaN input). With
    ``workers > 1`` and the ctypes binding available, whole stacks are decomposed in parallel, one per worker,
    with OpenBLAS pinned to one thread; at most ``workers + 1`` stacks are materialised at a time.
    """
    from threadpoolctl import threadpool_limits

    binding = _binding_or_none()

    def run(make):
        return np.stack([_one(binding, m, symmetric) for m in make()])

    if not binding or workers <= 1:
        # One worker means one thread was asked for (torch.get_num_threads() == 1): keep OpenBLAS to it too.
        # Its default, a thread per core, oversubscribes a machine whose other cores are busy (a --threads 1
        # sweep with two workers on two cores): its threads spin-wait and a 384-wide syevd took 20x longer.
        with threadpool_limits(1, user_api="blas"):
            for make in stacks:
                yield run(make)
        return

    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
        pending = []
        for make in stacks:
            pending.append(pool.submit(run, make))
            if len(pending) > workers:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()


def _one(binding: dict, mat: np.ndarray, symmetric: bool = False) -> np.ndarray:
    if symmetric:
        g = np.array(mat, order="C", copy=True)  # syevd overwrites its input
        return _ctypes_sym_eigs(binding, g) if binding else _scipy_sym_eigs(g)
    mat = np.ascontiguousarray(mat)
    return _ctypes_gram_eigs(binding, mat) if binding else _scipy_gram_eigs(mat)
