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


def content_scores_reference(
    item_features,
    rows,
    *,
    idf=True,
    sublinear_tf=True,
    centering=False,
    popularity_weight=0.0,
    item_counts=None,
):
    """ContentBased scores by the textbook recipe, dense numpy, one user at a time.

    ``item_features``: items x features values; ``rows``: users x items weights;
    ``item_counts``: training users per item (for the popularity prior).
    """
    x = dense(item_features)
    n_items = x.shape[0]
    tf = np.where(x > 0, 1.0 + np.log(np.where(x > 0, x, 1.0)), x) if sublinear_tf else x
    df = (x != 0).sum(axis=0)
    weights = np.log((1.0 + n_items) / (1.0 + df)) + 1.0 if idf else np.ones(x.shape[1])
    profiles = normalize_reference(tf * weights)
    w = dense(rows)
    users = []
    for u in range(w.shape[0]):
        row = w[u].copy()
        nz = row != 0
        if centering and nz.any():
            centred = row[nz] - row[nz].mean()
            if np.abs(centred).sum() > 0:
                row[nz] = centred
        profile = row @ profiles
        # cancellation to rounding noise counts as an empty profile (documented in the model)
        if np.linalg.norm(profile) <= 1e-6 * (np.abs(row) @ np.linalg.norm(profiles, axis=1)):
            profile = np.zeros_like(profile)
        users.append(profile)
    scores = normalize_reference(np.array(users).reshape(w.shape[0], -1)) @ profiles.T
    if popularity_weight:
        counts = np.asarray(item_counts, dtype=np.float64)
        scores = scores * ((1.0 + counts) / (1.0 + counts.max())) ** popularity_weight
    return scores
