"""Exact top-k search: the selection kernel under every ``recommend`` and ``similar_items``.

``topk`` takes either a dense score block or a pair of factor matrices. In the factor form the
scores are computed tile by tile (a BLAS sgemm per query-block x item-block tile) and reduced
into per-query heaps as each tile is produced, so ``n_queries x n_items`` is never held in
memory. Per-row exclusions (e.g. items a user has seen) and global allow/deny lists are
applied inside the kernel.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["as_exclusion_csr", "topk"]


@functools.lru_cache(maxsize=1)
def _core() -> Any:
    """The compiled extension, with scipy's BLAS registered on first use."""
    from scipy.linalg import cython_blas

    from tastebud import _core as core

    core.set_blas(cython_blas.__pyx_capi__["sgemm"])
    return core


@functools.lru_cache(maxsize=1)
def _blas_controller() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def blas_single_thread() -> Any:
    """Context manager limiting BLAS to one thread while tastebud's own threads run.

    tastebud's kernels call BLAS from several OpenMP threads at once; a threaded BLAS would
    oversubscribe the cores (and OpenBLAS serialises concurrent threaded calls).
    """
    return _blas_controller().limit(limits=1, user_api="blas")


def resolve_threads(num_threads: int) -> int:
    """``num_threads`` validated; 0 means all cores."""
    if isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)):
        raise TypeError(f"num_threads must be an int >= 0; got {num_threads!r}.")
    if num_threads < 0:
        raise ValueError(f"num_threads must be >= 0 (0 = all cores); got {num_threads}.")
    return int(num_threads) if num_threads else (os.cpu_count() or 1)


def _float_matrix(x: Any, name: str) -> np.ndarray:
    if sp.issparse(x):
        raise TypeError(f"{name} must be a dense array; got a sparse matrix.")
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu" or arr.dtype.kind == "b":
        raise TypeError(f"{name} must hold real numbers; got dtype {arr.dtype}.")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D; got shape {arr.shape}.")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if arr.size and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values (or overflows float32).")
    return arr


def as_exclusion_csr(exclude: Any, n_rows: int, n_items: int) -> sp.csr_matrix | None:
    """Normalise per-row exclusions to a CSR with sorted int32 indices (values ignored).

    ``exclude`` may be None, a scipy sparse matrix of shape (n_rows, n_items), or a sequence of
    n_rows integer arrays of item indices.
    """
    if exclude is None:
        return None
    if sp.issparse(exclude):
        csr = sp.csr_matrix(exclude)
        if csr.shape != (n_rows, n_items):
            raise ValueError(f"exclude must have shape ({n_rows}, {n_items}); got {csr.shape}.")
    else:
        rows = list(exclude)
        if len(rows) != n_rows:
            raise ValueError(f"exclude must have one entry per query ({n_rows}); got {len(rows)}.")
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=n_rows)
        flat = (
            np.concatenate([np.asarray(r, dtype=np.int64).ravel() for r in rows])
            if rows
            else (np.empty(0, np.int64))
        )
        if flat.size and (flat.min() < 0 or flat.max() >= n_items):
            raise ValueError(f"exclude holds item indices outside [0, {n_items}).")
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        csr = sp.csr_matrix((np.ones(flat.size, np.float32), flat, indptr), shape=(n_rows, n_items))
        csr.sum_duplicates()
    if not csr.has_sorted_indices:
        csr = csr.copy()
        csr.sort_indices()
    return csr


def _allowed_mask(allow: Any, deny: Any, n_items: int) -> np.ndarray | None:
    if allow is None and deny is None:
        return None
    mask = np.ones(n_items, dtype=np.uint8)
    for name, value in (("allow", allow), ("deny", deny)):
        if value is None:
            continue
        idx = np.asarray(value)
        if idx.dtype == bool:
            if idx.shape != (n_items,):
                raise ValueError(f"boolean {name} mask must have shape ({n_items},).")
            idx = np.flatnonzero(idx)
        if idx.size and idx.dtype.kind not in "iu":
            raise TypeError(f"{name} must be item indices (integers); got dtype {idx.dtype}.")
        idx = idx.astype(np.int64).ravel()
        if idx.size and (idx.min() < 0 or idx.max() >= n_items):
            raise ValueError(f"{name} holds item indices outside [0, {n_items}).")
        if name == "allow":
            mask[:] = 0
            mask[idx] = 1
        else:
            mask[idx] = 0
    return mask


def topk(
    queries: Any,
    items: Any = None,
    k: int = 10,
    *,
    exclude: Any = None,
    allow: Any = None,
    deny: Any = None,
    item_bias: Any = None,
    num_threads: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best items of each row, best first: ``(indices, scores)``.

    Parameters
    ----------
    queries : array (n, f) or (n, m)
        Query vectors when ``items`` is given; otherwise a dense score block whose row ``r``
        holds the score of every item for query ``r``.
    items : array (m, f), optional
        Item vectors. Scores are ``queries @ items.T`` (+ ``item_bias``), computed in blocks.
    k : int
        How many items per row (>= 1). ``k`` larger than the number of candidates is allowed:
        the rows are padded.
    exclude : scipy sparse (n, m) or sequence of index arrays, optional
        Per-row items never returned (e.g. items the user has already seen).
    allow, deny : index arrays or boolean masks of length m, optional
        Global candidate restriction, applied to every row.
    item_bias : array (m,), optional
        Added to every score of the item (factor form only).
    num_threads : int
        Threads to use; 0 = all cores.

    Returns
    -------
    indices : int64 array (n, k)
        Item indices, best first; ties are broken by the lower index. Padded with -1.
    scores : float32 array (n, k)
        Their scores; padding is ``-inf``.

    Notes
    -----
    Items scoring ``-inf`` are treated as excluded. Inputs are converted to C-contiguous
    float32 (a copy if they are not already). NaN or infinite inputs raise ``ValueError``.

    Thread-safety: safe to call concurrently from several threads (releases the GIL).

    Examples
    --------
    >>> import numpy as np
    >>> from tastebud.search import topk
    >>> idx, scores = topk(np.array([[0.1, 0.9, 0.5]]), k=2)
    >>> idx.tolist()
    [[1, 2]]
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an int >= 1; got {k!r}.")
    if k < 1:
        raise ValueError(f"k must be >= 1; got {k}.")
    threads = resolve_threads(num_threads)
    q = _float_matrix(queries, "queries" if items is not None else "scores")
    n = q.shape[0]
    if items is None:
        if item_bias is not None:
            raise ValueError("item_bias needs the factor form (queries and items).")
        m = q.shape[1]
    else:
        it = _float_matrix(items, "items")
        if it.shape[1] != q.shape[1]:
            raise ValueError(
                f"queries have {q.shape[1]} columns but items have {it.shape[1]}; they must match."
            )
        m = it.shape[0]
    excl = as_exclusion_csr(exclude, n, m)
    indptr = excl.indptr.astype(np.int64) if excl is not None else None
    indices = excl.indices.astype(np.int32) if excl is not None else None
    mask = _allowed_mask(allow, deny, m)
    core = _core()
    if items is None:
        return core.topk_scores(q, int(k), indptr, indices, mask, threads)
    bias = None
    if item_bias is not None:
        bias = np.ascontiguousarray(item_bias, dtype=np.float32)
        if bias.shape != (m,):
            raise ValueError(f"item_bias must have shape ({m},); got {bias.shape}.")
        if not np.isfinite(bias).all():
            raise ValueError("item_bias contains NaN or infinite values.")
    if n == 0 or m == 0:
        return (
            np.full((n, int(k)), -1, dtype=np.int64),
            np.full((n, int(k)), -np.inf, dtype=np.float32),
        )
    with blas_single_thread():
        return core.topk_dot(q, it, bias, int(k), indptr, indices, mask, threads)
