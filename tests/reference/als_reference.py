"""Plain-numpy references for the ALS kernels (cpp/als.hpp)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def solve_rows(
    rows: sp.csr_matrix,
    fixed: np.ndarray,
    regularization: np.ndarray,
    alpha: float,
    unobserved_weight: float = 1.0,
) -> np.ndarray:
    """Exact per-row solve of (w0 YtY + Yt(Cu - w0)Y + lambda_u I) x = Yt Cu p, in float64.

    ``c_ui = 1 + alpha * r_ui`` on the stored entries, preference 1 there; rows with no
    entries get zeros.
    """
    y = fixed.astype(np.float64)
    f = y.shape[1]
    yty = unobserved_weight * (y.T @ y)
    out = np.zeros((rows.shape[0], f))
    for u in range(rows.shape[0]):
        start, stop = rows.indptr[u], rows.indptr[u + 1]
        if start == stop:
            continue
        cols = rows.indices[start:stop]
        c = 1.0 + alpha * rows.data[start:stop].astype(np.float64)
        yu = y[cols]
        a = yty + yu.T @ ((c - unobserved_weight)[:, None] * yu) + regularization[u] * np.eye(f)
        out[u] = np.linalg.solve(a, yu.T @ c)
    return out


def loss_rows(
    rows: sp.csr_matrix,
    x: np.ndarray,
    y: np.ndarray,
    regularization: np.ndarray,
    alpha: float,
    unobserved_weight: float = 1.0,
) -> np.ndarray:
    """Per-row loss sum_obs c (1 - xy)^2 + w0 sum_unobs (xy)^2 + lambda_u |x|^2, densely."""
    scores = x.astype(np.float64) @ y.astype(np.float64).T
    dense = rows.toarray()
    observed = dense > 0
    c = 1.0 + alpha * dense
    per_cell = np.where(observed, c * (1.0 - scores) ** 2, unobserved_weight * scores**2)
    return per_cell.sum(axis=1) + regularization * (x.astype(np.float64) ** 2).sum(axis=1)
