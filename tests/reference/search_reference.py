"""Plain numpy references for the metric / sparse paths of tastebud.search (no blocking)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def dense(x):
    """A float64 ndarray copy of a dense or scipy sparse matrix."""
    return np.asarray(x.toarray() if sp.issparse(x) else x, dtype=np.float64)


def normalize_reference(x):
    """Rows divided by their l2 norm (float64); zero rows stay zero."""
    x = dense(x)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def similarity_reference(queries, items, metric):
    """The full (n, m) float64 score matrix of a metric: dot, cosine (0 for zero vectors) or
    negated squared Euclidean distance."""
    q, it = dense(queries), dense(items)
    if metric == "dot":
        return q @ it.T
    if metric == "cosine":
        return normalize_reference(q) @ normalize_reference(it).T
    if metric == "l2":
        diff = q[:, None, :] - it[None, :, :]
        return -np.einsum("ijk,ijk->ij", diff, diff)
    raise ValueError(metric)


def search_reference(queries, items, k, metric, exclude_rows=None, allowed=None):
    """Exact top-k by brute force: argsort of the float64 scores, ties by lower index."""
    full = similarity_reference(queries, items, metric)
    n = full.shape[0]
    out_idx = np.full((n, k), -1, dtype=np.int64)
    out_sc = np.full((n, k), -np.inf, dtype=np.float64)
    for r in range(n):
        valid = np.ones(full.shape[1], dtype=bool)
        if exclude_rows is not None:
            valid[list(exclude_rows[r])] = False
        if allowed is not None:
            valid &= allowed
        cand = np.flatnonzero(valid)
        order = np.lexsort((cand, -full[r, cand]))
        chosen = cand[order][:k]
        out_idx[r, : chosen.size] = chosen
        out_sc[r, : chosen.size] = full[r, chosen]
    return out_idx, out_sc
