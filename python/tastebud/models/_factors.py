"""Helpers shared by the latent-factor models (ALS, BPR): validation, CSR plumbing, cosine."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from tastebud import search
from tastebud.data import Vocabulary
from tastebud.models.base import Recommendations, check_k

__all__ = [
    "check_float",
    "check_int",
    "core",
    "csr_parts",
    "replace_rows",
    "rows_for",
    "similar_by_cosine",
]


def core() -> Any:
    """The compiled extension (BLAS registered)."""
    return search._core()


def check_int(value: Any, name: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= {low}; got {value!r}.")
    if value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be an int {bound}; got {value}.")
    return int(value)


def check_float(value: Any, name: str, *, low: float = 0.0, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number; got {value!r}.")
    v = float(value)
    if not np.isfinite(v) or v < low or (strict and v == low):
        op = ">" if strict else ">="
        raise ValueError(f"{name} must be a finite number {op} {low}; got {value!r}.")
    return v


def csr_parts(matrix: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indptr int64, indices int32, data float32), contiguous, for the kernels."""
    return (
        np.ascontiguousarray(matrix.indptr, dtype=np.int64),
        np.ascontiguousarray(matrix.indices, dtype=np.int32),
        np.ascontiguousarray(matrix.data, dtype=np.float32),
    )


def check_weights(
    matrix: sp.csr_matrix, what: str = "interaction weights", *, reuse: bool = False
) -> sp.csr_matrix:
    """Finite, non-negative weights; explicit zeros dropped; sorted, duplicate-free CSR.

    With ``reuse=True`` a matrix that already has that form (float32 CSR, int32 indices,
    canonical, all weights finite and > 0) is returned as is instead of copied: the caller
    must then treat the result as read-only (ALS's fit does, to keep its peak memory low).
    """
    if (
        reuse
        and isinstance(matrix, (sp.csr_matrix, sp.csr_array))
        and matrix.dtype == np.float32
        and matrix.indices.dtype == np.int32
        and matrix.has_canonical_format
        and (matrix.nnz == 0 or (np.isfinite(matrix.data).all() and matrix.data.min() > 0))
    ):
        return matrix
    out = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    out.sum_duplicates()
    if out.nnz:
        if not np.isfinite(out.data).all():
            raise ValueError(f"{what} contain NaN or infinite values.")
        if (out.data < 0).any():
            raise ValueError(
                f"{what} must be >= 0 (a confidence 1 + alpha * r cannot be negative); "
                f"got minimum {out.data.min()}."
            )
    out.eliminate_zeros()
    out.sort_indices()
    return out


def rows_for(vocab: Vocabulary, interactions: Any, n_rows: int, what: str) -> sp.csr_matrix:
    """Rows (n_rows x len(vocab)) from a sparse matrix or a sequence of id lists / dicts.

    ``what`` names the rows for messages (e.g. "users").
    """
    n_cols = len(vocab)
    if sp.issparse(interactions):
        rows = sp.csr_matrix(interactions, dtype=np.float32)
        if rows.shape != (n_rows, n_cols):
            raise ValueError(
                f"interactions for {what} must have shape ({n_rows}, {n_cols}); got {rows.shape}."
            )
        return check_weights(rows)
    if isinstance(interactions, (str, bytes)) or not hasattr(interactions, "__len__"):
        raise TypeError(
            f"interactions for {what} must be a scipy sparse matrix or a sequence of id lists; "
            f"got {type(interactions).__name__}."
        )
    histories = list(interactions.values()) if isinstance(interactions, dict) else interactions
    if len(histories) != n_rows:
        raise ValueError(
            f"interactions must have one entry per {what[:-1]} ({n_rows}); got {len(histories)}."
        )
    indptr, cols, vals = [0], [], []
    for hist in histories:
        if isinstance(hist, dict):
            ids, w = list(hist.keys()), np.asarray(list(hist.values()), dtype=np.float32)
        else:
            ids, w = hist, None
        idx = vocab.index(ids)
        w = np.ones(idx.size, np.float32) if w is None else w
        if w.shape != idx.shape:
            raise ValueError("interaction weights must be given one per id.")
        cols.append(idx)
        vals.append(w)
        indptr.append(indptr[-1] + idx.size)
    rows = sp.csr_matrix(
        (
            np.concatenate(vals) if vals else np.empty(0, np.float32),
            np.concatenate(cols) if cols else np.empty(0, np.int64),
            np.asarray(indptr, dtype=np.int64),
        ),
        shape=(n_rows, n_cols),
    )
    return check_weights(rows)


def replace_rows(
    matrix: sp.csr_matrix, row_indices: np.ndarray, rows: sp.csr_matrix, n_rows: int
) -> sp.csr_matrix:
    """``matrix`` grown to ``n_rows`` rows with rows ``row_indices`` replaced by ``rows``."""
    coo = matrix.tocoo()
    keep = np.ones(n_rows, dtype=bool)
    keep[row_indices] = False
    mask = keep[coo.row]
    new = rows.tocoo()
    out = sp.csr_matrix(
        (
            np.concatenate([coo.data[mask], new.data]).astype(np.float32),
            (
                np.concatenate([coo.row[mask], row_indices[new.row]]),
                np.concatenate([coo.col[mask], new.col]),
            ),
        ),
        shape=(n_rows, matrix.shape[1]),
    )
    out.sum_duplicates()
    out.sort_indices()
    return out


def similar_by_cosine(
    vectors: np.ndarray, query: np.ndarray, k: int, vocab: Vocabulary
) -> Recommendations:
    """The ``k`` rows most cosine-similar to each query row (never the row itself)."""
    k = check_k(k, max(1, vectors.shape[0] - 1))
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    exclude = sp.csr_matrix(
        (np.ones(query.size, np.float32), query, np.arange(query.size + 1)),
        shape=(query.size, vectors.shape[0]),
    )
    idx, scores = search.topk(unit[query], unit, k, exclude=exclude)
    return Recommendations.from_indices(vocab.ids(query), vocab, idx, scores)


class PopularityFallback:
    """Mixin for factor models: users without interactions are ranked by item popularity.

    Such users have all-zero factors (no evidence about their taste), so their factor scores
    would all tie. Instead ``recommend``, ``recommend_for`` and ``score`` give them the number
    of training users of each item (``item_popularity_``), i.e. the Popularity baseline.
    """

    item_popularity_: np.ndarray
    seen_: sp.csr_matrix

    def _refresh_popularity(self) -> None:
        # In chunks: bincount converts its input to intp, which for all indices at once would
        # be the largest temporary of a fit (8 bytes per interaction).
        indices, n_items = self.seen_.indices, self.seen_.shape[1]
        counts = np.zeros(n_items, dtype=np.int64)
        step = 1 << 20
        for start in range(0, indices.size, step):
            counts += np.bincount(indices[start : start + step], minlength=n_items)
        self.item_popularity_ = counts.astype(np.float32)

    def _topk_rows(self, user_indices, rows, k, exclude, allow, deny, num_threads=0):  # type: ignore[no-untyped-def]
        empty = np.diff(rows.indptr) == 0
        parent = super()._topk_rows  # type: ignore[misc]
        if not empty.any():
            return parent(user_indices, rows, k, exclude, allow, deny, num_threads)
        n = rows.shape[0]
        out_idx = np.empty((n, k), dtype=np.int64)
        out_scores = np.empty((n, k), dtype=np.float32)
        for sel, fallback in ((np.flatnonzero(~empty), False), (np.flatnonzero(empty), True)):
            if not sel.size:
                continue
            excl = None if exclude is None else exclude[sel]
            if fallback:
                idx, sc = search.topk(
                    np.ones((sel.size, 1), np.float32),
                    self.item_popularity_.reshape(-1, 1),
                    k,
                    exclude=excl,
                    allow=allow,
                    deny=deny,
                    num_threads=num_threads,
                )
            else:
                users = None if user_indices is None else user_indices[sel]
                idx, sc = parent(users, rows[sel], k, excl, allow, deny, num_threads)
            out_idx[sel] = idx
            out_scores[sel] = sc
        return out_idx, out_scores

    def _score_pairs(self, uidx: np.ndarray, iidx: np.ndarray) -> np.ndarray:
        out = super()._score_pairs(uidx, iidx)  # type: ignore[misc]
        empty = np.diff(self.seen_.indptr)[uidx] == 0
        out[empty] = self.item_popularity_[iidx[empty]]
        return out
