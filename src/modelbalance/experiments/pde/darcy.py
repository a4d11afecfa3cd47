"""Steady 2D Darcy flow ``-div(a grad u) = f`` on the unit square with ``u = 0`` on the boundary.

Usage::

    import numpy as np
    from modelbalance.experiments.pde.darcy import solve_darcy

    a = np.ones((2, 33, 33))           # (batch, s, s) coefficient at the grid nodes
    u = solve_darcy(a, forcing=1.0)    # (batch, s, s), zero on the boundary nodes

Grid: ``s x s`` nodes ``(x_i, y_j) = (i h, j h)`` with ``h = 1 / (s - 1)``, arrays indexed ``[i, j]`` (x
first), boundary nodes included, as in the FNO / PDEBench Darcy data where input and output share one grid.

Discretisation: the standard 5-point finite-volume stencil; the flux between neighbouring nodes uses the
harmonic mean of their coefficients, ``2 a_p a_q / (a_p + a_q)``, which is what makes jumps of a
piecewise-constant ``a`` behave like resistances in series. It is second-order accurate for smooth ``a`` and
``u`` (checked on a manufactured solution in the tests). One sparse direct solve (SuperLU) per sample.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

__all__ = ["solve_darcy", "darcy_matrix"]


def darcy_matrix(coeff: np.ndarray) -> sp.csc_matrix:
    """Sparse matrix of ``-div(a grad .)`` on the interior nodes for one coefficient field ``coeff`` (s, s).

    Usage: ``A = darcy_matrix(np.ones((17, 17)))``; then ``A @ u[1:-1, 1:-1].ravel()`` approximates
    ``-div(a grad u)`` at the interior nodes.

    Unknowns are the ``(s - 2)^2`` interior nodes in row-major ``[i, j]`` order; boundary values are zero.
    """
    a = np.asarray(coeff, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] < 3:
        raise ValueError(
            f"darcy_matrix: coefficient must be a square (s, s) array with s >= 3, got {a.shape}"
        )
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise ValueError("darcy_matrix: coefficient must be finite and > 0 everywhere")
    s = a.shape[0]
    m = s - 2
    inv_h2 = float((s - 1) ** 2)
    # Harmonic means on the faces between nodes: along x (i, i+1) and along y (j, j+1).
    face_x = 2.0 * a[:-1, :] * a[1:, :] / (a[:-1, :] + a[1:, :])  # (s-1, s)
    face_y = 2.0 * a[:, :-1] * a[:, 1:] / (a[:, :-1] + a[:, 1:])  # (s, s-1)
    west = face_x[:-1, 1:-1]  # face (i-1/2, j) for interior i, j: (m, m)
    east = face_x[1:, 1:-1]  # face (i+1/2, j)
    south = face_y[1:-1, :-1]  # face (i, j-1/2)
    north = face_y[1:-1, 1:]  # face (i, j+1/2)
    diag = (west + east + south + north).ravel()
    # Neighbours in j (offset +-1 in row-major order) exist only inside a row of the interior block.
    off_j = north.copy()
    off_j[:, -1] = 0.0
    off_i = east[:-1, :]  # coupling (i, j) <-> (i+1, j): (m-1, m)
    matrix = sp.diags(
        [diag, -off_j.ravel()[:-1], -off_j.ravel()[:-1], -off_i.ravel(), -off_i.ravel()],
        [0, 1, -1, m, -m],
        shape=(m * m, m * m),
        format="csc",
    )
    return matrix * inv_h2


def solve_darcy(coeff: np.ndarray, forcing: float | np.ndarray = 1.0) -> np.ndarray:
    """Solve ``-div(a grad u) = f``, ``u = 0`` on the boundary, for each coefficient field in ``coeff``.

    Usage: ``u = solve_darcy(np.full((4, 65, 65), 3.0), forcing=1.0)``.

    Parameters
    ----------
    coeff : array (batch, s, s) or (s, s)
        Positive coefficient ``a`` at the grid nodes (see the module docstring for the grid).
    forcing : float or array broadcastable to (batch, s, s)
        Right-hand side ``f`` at the nodes (only interior values are used). PDEBench and FNO use ``f = 1``.

    Returns
    -------
    array of the shape of ``coeff``, float64, with zeros on the boundary nodes.
    """
    a = np.asarray(coeff, dtype=np.float64)
    squeeze = a.ndim == 2
    a = a[None] if squeeze else a
    if a.ndim != 3:
        raise ValueError(f"solve_darcy: coefficient must have shape (batch, s, s), got {np.shape(coeff)}")
    try:
        f = np.broadcast_to(np.asarray(forcing, dtype=np.float64), a.shape)
    except ValueError:
        raise ValueError(
            f"solve_darcy: forcing of shape {np.shape(forcing)} does not broadcast to {a.shape}"
        ) from None
    u = np.zeros_like(a)
    for b in range(a.shape[0]):
        matrix = darcy_matrix(a[b])
        rhs = f[b, 1:-1, 1:-1].ravel()
        u[b, 1:-1, 1:-1] = spla.spsolve(matrix, rhs).reshape(a.shape[1] - 2, a.shape[2] - 2)
    return u[0] if squeeze else u
