"""Exact top-k search: the selection kernel under every ``recommend`` and ``similar_items``.

``topk`` takes either a dense score block or a pair of vector matrices. In the vector form the
scores are computed tile by tile (a BLAS sgemm per query-block x item-block tile) and reduced
into per-query heaps as each tile is produced, so ``n_queries x n_items`` is never held in
memory. Per-row exclusions (e.g. items a user has seen) and global allow/deny lists are
applied inside the kernel. Three metrics are supported (inner product, cosine, negated squared
Euclidean distance), and either side may be a scipy sparse matrix (e.g. TF-IDF rows).

``SimilarityIndex`` keeps (normalised) item vectors and their raw ids for repeated exact
queries, and saves to ``.npz`` + JSON (no pickle).
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

__all__ = [
    "METRICS",
    "SimilarityIndex",
    "as_exclusion_csr",
    "blas_single_thread",
    "normalize_rows",
    "resolve_threads",
    "row_sq_norms",
    "topk",
]

METRICS = ("dot", "cosine", "l2")
Metric = Literal["dot", "cosine", "l2"]


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

    # The controller only knows the BLAS libraries loaded when it is created: load scipy's
    # (the one the kernels call, through _core) first, or it would never be limited and the
    # kernels' OpenMP threads would oversubscribe the cores (measured: half the throughput).
    _core()
    return ThreadpoolController()


def blas_single_thread() -> Any:
    """Context manager limiting BLAS to one thread while tastebud's own threads run.

    tastebud's kernels call BLAS from several OpenMP threads at once; a threaded BLAS would
    oversubscribe the cores (and OpenBLAS serialises concurrent threaded calls).
    """
    return _blas_controller().limit(limits=1, user_api="blas")


def resolve_threads(num_threads: int) -> int:
    """``num_threads`` validated; 0 means all cores.

    At most ``max(64, 16 x cores)``: more threads than that cannot speed up a compute kernel,
    and OpenMP ends the whole process (no Python exception) when it cannot create them.
    """
    if isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)):
        raise TypeError(f"num_threads must be an int >= 0; got {num_threads!r}.")
    cores = os.cpu_count() or 1
    if num_threads < 0:
        raise ValueError(f"num_threads must be >= 0 (0 = all cores); got {num_threads}.")
    limit = max(64, 16 * cores)
    if num_threads > limit:
        raise ValueError(
            f"num_threads must be at most {limit} on this machine ({cores} cores); got "
            f"{num_threads}."
        )
    return int(num_threads) if num_threads else cores


def _float_matrix(x: Any, name: str, allow_neg_inf: bool = False) -> np.ndarray:
    if sp.issparse(x):
        raise TypeError(f"{name} must be a dense array; got a sparse matrix.")
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu" or arr.dtype.kind == "b":
        raise TypeError(f"{name} must hold real numbers; got dtype {arr.dtype}.")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D; got shape {arr.shape}.")
    with np.errstate(over="ignore"):  # overflow is detected (and reported) just below
        out = np.ascontiguousarray(arr, dtype=np.float32)
    if out.size and not np.isfinite(out).all():
        bad = ~np.isfinite(out)
        if allow_neg_inf:  # -inf given as such marks an excluded item; overflow is an error
            bad &= ~(np.isneginf(out) & np.isneginf(arr))
        if bad.any():
            what = "NaN or infinite values" + (" other than -inf" if allow_neg_inf else "")
            raise ValueError(f"{name} contains {what} (or overflows float32).")
    return out


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


#: Scores held per query block on the sparse path (float32 entries): 16M = 64 MB per worker.
_SPARSE_BLOCK_ELEMS = 1 << 24
_F32_MAX = float(np.finfo(np.float32).max)


def _check_metric(metric: Any) -> str:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {list(METRICS)}; got {metric!r}.")
    return str(metric)


def _float_input(x: Any, name: str) -> np.ndarray | sp.csr_matrix:
    """Dense C-contiguous float32, or a CSR float32 matrix for scipy sparse input."""
    if not sp.issparse(x):
        return _float_matrix(x, name)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D; got shape {x.shape}.")
    if x.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers; got dtype {x.dtype}.")
    csr = sp.csr_matrix(x, dtype=np.float32)
    if csr.nnz and not np.isfinite(csr.data).all():
        raise ValueError(f"{name} contains NaN or infinite values (or overflows float32).")
    return csr


def _row_scale(x: np.ndarray | sp.csr_matrix) -> np.ndarray:
    """Per-row max |value| (float64), used to compute norms without float32 overflow."""
    if sp.issparse(x):
        return np.asarray(abs(x).max(axis=1).toarray(), dtype=np.float64).ravel()
    if x.shape[1] == 0:
        return np.zeros(x.shape[0])
    return np.abs(x).max(axis=1).astype(np.float64)


def row_sq_norms(x: np.ndarray | sp.csr_matrix) -> np.ndarray:
    """Squared l2 norm of every row, in float64 (dense or CSR input)."""
    if sp.issparse(x):
        data = np.asarray(x.data, dtype=np.float64)
        row_of = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
        return np.bincount(row_of, weights=data * data, minlength=x.shape[0])
    out = np.empty(x.shape[0], dtype=np.float64)
    step = 65536
    for s in range(0, x.shape[0], step):
        blk = x[s : s + step].astype(np.float64)
        out[s : s + step] = np.einsum("ij,ij->i", blk, blk)
    return out


def normalize_rows(x: Any) -> np.ndarray | sp.csr_matrix:
    """Rows scaled to unit l2 norm; all-zero rows stay zero (so their cosine is 0).

    Parameters
    ----------
    x : array (n, d) or scipy sparse (n, d)
        Finite real values.

    Returns
    -------
    float32 ndarray or CSR matrix of the same shape (always a new array).

    Notes
    -----
    Rows are first divided by their largest absolute value, so rows whose squared norm would
    overflow float32 (values above ~1.8e19) are still normalised correctly.
    """
    arr = _float_input(x, "x")
    scale = _row_scale(arr)
    safe_scale = np.where(scale > 0, scale, 1.0)
    if sp.issparse(arr):
        scaled = sp.csr_matrix(sp.diags(1.0 / safe_scale) @ arr.astype(np.float64))
        norms = np.sqrt(row_sq_norms(scaled))
        inv = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0)
        return sp.csr_matrix(sp.diags(inv) @ scaled, dtype=np.float32)
    out = np.empty(arr.shape, dtype=np.float32)
    step = 65536
    for s in range(0, arr.shape[0], step):
        blk = arr[s : s + step].astype(np.float64) / safe_scale[s : s + step, None]
        norms = np.sqrt(np.einsum("ij,ij->i", blk, blk))
        inv = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0)
        out[s : s + step] = blk * inv[:, None]
    return out


def _block_sizes(n: int, m: int, threads: int) -> tuple[int, int]:
    """(query_block, item_block) for the dense kernel.

    A task scores ``query_block`` queries against the items ``item_block`` at a time; the tile
    (query_block x item_block float32) and the item block should stay in L2 cache. Query
    blocks are shrunk so every thread gets work when there are few queries.
    """
    query_block = 256
    while query_block > 16 and n < 2 * threads * query_block:
        query_block //= 2
    return query_block, 2048


def _pair_dots(q: Any, it: Any, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``q[rows[j]] . it[cols[j]]`` for every pair j, in float64."""
    out = np.empty(rows.size, dtype=np.float64)
    step = 1 << 16
    for s in range(0, rows.size, step):
        r, c = rows[s : s + step], cols[s : s + step]
        qa, ia = q[r], it[c]
        if sp.issparse(qa) and sp.issparse(ia):
            prod = qa.astype(np.float64).multiply(ia.astype(np.float64))
        elif sp.issparse(qa):
            prod = qa.astype(np.float64).multiply(np.asarray(ia, dtype=np.float64))
        elif sp.issparse(ia):
            prod = ia.astype(np.float64).multiply(np.asarray(qa, dtype=np.float64))
        else:
            out[s : s + step] = np.einsum("ij,ij->i", qa.astype(np.float64), ia.astype(np.float64))
            continue
        out[s : s + step] = np.asarray(prod.sum(axis=1)).ravel()
    return out


def _exact_l2(
    q: Any, it: Any, idx: np.ndarray, item_sq: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Exact negated squared distances of the selected pairs, rows re-sorted best first."""
    n, k = idx.shape
    valid = idx >= 0
    rows = np.nonzero(valid)[0]
    cols = idx[valid]
    scores = np.full((n, k), -np.inf, dtype=np.float32)
    if rows.size:
        if sp.issparse(q) or sp.issparse(it):
            d = row_sq_norms(q)[rows] + item_sq[cols] - 2.0 * _pair_dots(q, it, rows, cols)
        else:
            d = np.empty(rows.size, dtype=np.float64)
            step = 1 << 16
            for s in range(0, rows.size, step):
                diff = q[rows[s : s + step]].astype(np.float64) - it[cols[s : s + step]]
                d[s : s + step] = np.einsum("ij,ij->i", diff, diff)
        scores[valid] = -np.maximum(d, 0.0) + 0.0  # + 0.0 turns -0.0 into 0.0
    tie = np.where(valid, idx, np.iinfo(np.int64).max)
    order = np.lexsort((tie, -scores.astype(np.float64)), axis=-1)
    return np.take_along_axis(idx, order, 1), np.take_along_axis(scores, order, 1)


def _sparse_topk(
    q: Any,
    it: Any,
    k: int,
    bias: np.ndarray | None,
    excl: sp.csr_matrix | None,
    mask: np.ndarray | None,
    threads: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k when either side is sparse.

    Sparse items are never densified: the C++ kernel ``topk_sparse`` (cpp/dense_search.hpp)
    walks the items' transposed CSR for each query row. Sparse queries against dense items:
    blocks of ``rows`` queries are scored with one scipy product (sparse x dense^T) into a
    dense ``rows x m`` tile, which ``topk_scores`` reduces; blocks run on ``threads`` workers.
    """
    n, m = q.shape[0], it.shape[0]
    core = _core()
    if sp.issparse(it):
        # Sparse items: C++ inverted-index kernel (queries as CSR; dense queries are simply
        # CSR rows with every feature), one m-float accumulator per thread, fused selection.
        qc = sp.csr_matrix(q, dtype=np.float32)
        tc = sp.csr_matrix(it.T, dtype=np.float32)
        return core.topk_sparse(
            qc.indptr.astype(np.int64),
            qc.indices.astype(np.int32),
            np.ascontiguousarray(qc.data, dtype=np.float32),
            int(q.shape[1]),
            tc.indptr.astype(np.int64),
            tc.indices.astype(np.int32),
            np.ascontiguousarray(tc.data, dtype=np.float32),
            int(m),
            bias,
            int(k),
            None if excl is None else excl.indptr.astype(np.int64),
            None if excl is None else excl.indices.astype(np.int32),
            mask,
            threads,
        )
    it_t = np.ascontiguousarray(it.T)
    rows = int(max(1, min(n, _SPARSE_BLOCK_ELEMS // max(m, 1))))
    starts = list(range(0, n, rows))
    out_idx = np.empty((n, k), dtype=np.int64)
    out_sc = np.empty((n, k), dtype=np.float32)

    def block(start: int) -> None:
        stop = min(n, start + rows)
        tile = np.ascontiguousarray(q[start:stop] @ it_t, dtype=np.float32)
        if bias is not None:
            tile += bias
        if excl is not None:
            sub = excl[start:stop]
            ip, ix = sub.indptr.astype(np.int64), sub.indices.astype(np.int32)
        else:
            ip = ix = None
        idx, sc = core.topk_scores(tile, int(k), ip, ix, mask, 1 if workers > 1 else threads)
        out_idx[start:stop] = idx
        out_sc[start:stop] = sc

    workers = min(threads, len(starts))
    if workers > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(block, starts))
    else:
        for s in starts:
            block(s)
    return out_idx, out_sc


def _vector_topk(
    q: Any,
    it: Any,
    k: int,
    *,
    metric: str,
    excl: sp.csr_matrix | None,
    mask: np.ndarray | None,
    bias: np.ndarray | None,
    threads: int,
    item_sq: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of validated queries against validated, already metric-prepared items.

    For ``metric="cosine"`` both sides must already be normalised (callers do it); ``"l2"``
    selects with ``q.x - |x|^2/2`` (same order as ``-|q - x|^2``: ``|q|^2`` is constant per
    query) through the item-bias path, then recomputes exact distances for the k returned.
    """
    n, m = q.shape[0], it.shape[0]
    if n == 0 or m == 0:
        return (
            np.full((n, k), -1, dtype=np.int64),
            np.full((n, k), -np.inf, dtype=np.float32),
        )
    if metric == "l2":
        if item_sq is None:
            item_sq = row_sq_norms(it)
        half = -0.5 * item_sq
        if half.size and not np.abs(half).max() <= _F32_MAX:
            raise ValueError("items have squared norms too large for float32 (l2 metric).")
        bias = half.astype(np.float32)
    indptr = excl.indptr.astype(np.int64) if excl is not None else None
    indices = excl.indices.astype(np.int32) if excl is not None else None
    if sp.issparse(q) or sp.issparse(it):
        idx, sc = _sparse_topk(q, it, k, bias, excl, mask, threads)
    else:
        qb, ib = _block_sizes(n, m, threads)
        with blas_single_thread():
            idx, sc = _core().topk_dot(q, it, bias, int(k), indptr, indices, mask, threads, qb, ib)
    if metric == "l2":
        assert item_sq is not None
        idx, sc = _exact_l2(q, it, idx, item_sq)
    return idx, sc


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an int >= 1; got {k!r}.")
    if k < 1:
        raise ValueError(f"k must be >= 1; got {k}.")
    if k >= 2**31:
        raise ValueError(f"k must be < 2^31; got {k}.")
    return int(k)


def topk(
    queries: Any,
    items: Any = None,
    k: int = 10,
    *,
    metric: Metric = "dot",
    exclude: Any = None,
    allow: Any = None,
    deny: Any = None,
    item_bias: Any = None,
    num_threads: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best items of each row, best first: ``(indices, scores)``.

    Parameters
    ----------
    queries : array (n, f) or (n, m), or scipy sparse (n, f)
        Query vectors when ``items`` is given; otherwise a dense score block whose row ``r``
        holds the score of every item for query ``r``.
    items : array (m, f) or scipy sparse (m, f), optional
        Item vectors, scored against the queries with ``metric`` in blocks: dense x dense
        runs tile by tile in C++ (BLAS sgemm + fused selection); when either side is sparse
        (e.g. TF-IDF rows), blocks of queries are scored with a scipy sparse product and
        reduced by the same C++ selection, so the item side is never densified.
    k : int
        How many items per row (>= 1). ``k`` larger than the number of candidates is allowed:
        the rows are padded.
    metric : {"dot", "cosine", "l2"}
        ``"dot"``: inner product. ``"cosine"``: inner product of l2-normalised rows; the cosine
        of a zero vector (query or item) is defined as 0. ``"l2"``: the nearest items by
        squared Euclidean distance; scores are the negated squared distances (best = largest
        = closest). Only for the vector form.
    exclude : scipy sparse (n, m) or sequence of index arrays, optional
        Per-row items never returned (e.g. items the user has already seen).
    allow, deny : index arrays or boolean masks of length m, optional
        Global candidate restriction, applied to every row.
    item_bias : array (m,), optional
        Added to every score of the item (vector form, ``"dot"`` and ``"cosine"``).
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
    In a score block, ``-inf`` marks an excluded item (it is never returned). Dense inputs are
    converted to C-contiguous float32 (a copy if they are not already). NaN, ``+inf``, values
    that overflow float32, and any infinite vector input raise ``ValueError``.

    ``metric="l2"`` ranks by ``q.x - |x|^2 / 2``, which orders items exactly like
    ``-|q - x|^2`` for a fixed query, so the blocked kernel's item-bias path does the work with
    no ``n x m`` distance matrix (as faiss's IndexFlatL2 does). The distances of the ``k``
    returned items are then recomputed exactly (float64) and the rows re-sorted by them; as in
    faiss, two items whose distances differ by less than float32 rounding of the selection
    score may swap in or out at the k-th place.

    ``metric="cosine"`` normalises copies of both sides on every call; to query the same items
    repeatedly, keep them normalised in a ``SimilarityIndex``.

    Thread-safety: safe to call concurrently from several threads (releases the GIL).

    Examples
    --------
    >>> import numpy as np
    >>> from tastebud.search import topk
    >>> idx, scores = topk(np.array([[0.1, 0.9, 0.5]]), k=2)
    >>> idx.tolist()
    [[1, 2]]
    >>> idx, scores = topk(np.array([[0.0, 0.0]]), np.array([[1.0, 1.0], [3.0, 0.0]]), 1,
    ...                    metric="l2")
    >>> idx.tolist(), scores.tolist()
    ([[0]], [[-2.0]])
    """
    k = _check_k(k)
    metric = _check_metric(metric)
    threads = resolve_threads(num_threads)
    if items is None:
        if metric != "dot":
            raise ValueError(
                f"metric={metric!r} needs the vector form (queries and items); a score block "
                "is already scores."
            )
        if item_bias is not None:
            raise ValueError("item_bias needs the vector form (queries and items).")
        q = _float_matrix(queries, "scores", allow_neg_inf=True)
        n, m = q.shape
        excl = as_exclusion_csr(exclude, n, m)
        indptr = excl.indptr.astype(np.int64) if excl is not None else None
        indices = excl.indices.astype(np.int32) if excl is not None else None
        mask = _allowed_mask(allow, deny, m)
        return _core().topk_scores(q, k, indptr, indices, mask, threads)
    q = _float_input(queries, "queries")
    it = _float_input(items, "items")
    if it.shape[1] != q.shape[1]:
        raise ValueError(
            f"queries have {q.shape[1]} columns but items have {it.shape[1]}; they must match."
        )
    n, m = q.shape[0], it.shape[0]
    excl = as_exclusion_csr(exclude, n, m)
    mask = _allowed_mask(allow, deny, m)
    bias = None
    if item_bias is not None:
        if metric == "l2":
            raise ValueError("item_bias is not supported with metric='l2'.")
        bias = np.ascontiguousarray(item_bias, dtype=np.float32)
        if bias.shape != (m,):
            raise ValueError(f"item_bias must have shape ({m},); got {bias.shape}.")
        if not np.isfinite(bias).all():
            raise ValueError("item_bias contains NaN or infinite values.")
    if metric == "cosine":
        q, it = normalize_rows(q), normalize_rows(it)
    return _vector_topk(q, it, k, metric=metric, excl=excl, mask=mask, bias=bias, threads=threads)


_INDEX_FORMAT = "tastebud.SimilarityIndex"
_INDEX_VERSION = 1


class SimilarityIndex:
    """Exact similarity search over a growing set of item vectors with raw ids.

    Holds the item vectors (l2-normalised for ``metric="cosine"``, with their squared norms
    for ``"l2"``) so repeated queries pay no preparation, and answers with raw ids. Search is
    exact (brute force, blocked C++ kernel): no training, no approximation.

    Parameters
    ----------
    metric : {"cosine", "dot", "l2"}
        Similarity (see :func:`topk`). Cosine of a zero vector is 0; ``"l2"`` scores are
        negated squared Euclidean distances.
    num_threads : int
        Threads per query call; 0 = all cores.

    Notes
    -----
    Thread-safety: ``query`` may run concurrently from several threads; ``add`` must not run
    at the same time as any other call.

    ``add`` appends by concatenation (O(total size) copy per call): add in large batches.

    Examples
    --------
    >>> import numpy as np
    >>> index = SimilarityIndex("cosine")
    >>> index.add(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), ids=["a", "b", "c"])
    >>> ids, scores = index.query(np.array([[2.0, 0.1]]), k=2)
    >>> ids.tolist()
    [['a', 'c']]
    """

    def __init__(self, metric: Metric = "cosine", *, num_threads: int = 0) -> None:
        self.metric = _check_metric(metric)
        resolve_threads(num_threads)
        self.num_threads = num_threads
        self._vectors: np.ndarray | None = None
        self._ids: Any = None  # Vocabulary
        self._sq_norms: np.ndarray | None = None

    # ----------------------------------------------------------------- properties
    @property
    def dim(self) -> int | None:
        """Vector dimension (None while empty and never added to)."""
        return None if self._vectors is None else int(self._vectors.shape[1])

    def __len__(self) -> int:
        return 0 if self._vectors is None else int(self._vectors.shape[0])

    @property
    def ids(self) -> np.ndarray:
        """Raw ids of the stored vectors, in insertion order (read-only)."""
        if self._ids is None:
            return np.empty(0, dtype=np.int64)
        return self._ids.ids_array

    @property
    def vectors(self) -> np.ndarray:
        """The stored vectors (normalised for cosine), read-only float32 (n, dim)."""
        if self._vectors is None:
            return np.empty((0, 0), dtype=np.float32)
        view = self._vectors.view()
        view.flags.writeable = False
        return view

    def __repr__(self) -> str:
        return f"SimilarityIndex(metric={self.metric!r}, n={len(self)}, dim={self.dim})"

    # ----------------------------------------------------------------- building
    def add(self, vectors: Any, ids: Any = None) -> None:
        """Append item vectors.

        Parameters
        ----------
        vectors : array (n, dim) or scipy sparse (n, dim)
            Finite values; sparse input is densified (the index stores dense rows; for
            sparse items without densifying, call :func:`topk` directly).
        ids : array-like of n distinct ints or strings, optional
            Raw ids; default: consecutive integers continuing from the current size. Ids must
            not repeat ones already stored, and must be of the same kind (int/str).

        Raises
        ------
        ValueError
            Wrong dimension, non-finite values, or duplicate ids.
        TypeError
            Ids of another kind than the stored ones.
        """
        from tastebud.data import Vocabulary

        arr = _float_input(vectors, "vectors")
        if sp.issparse(arr):
            arr = np.ascontiguousarray(arr.toarray(), dtype=np.float32)
        if self._vectors is not None and arr.shape[1] != self._vectors.shape[1]:
            raise ValueError(
                f"vectors must have {self._vectors.shape[1]} columns (the index dimension); "
                f"got {arr.shape[1]}."
            )
        n_old = len(self)
        if ids is None:
            if self._ids is not None and self._ids.kind == "str":
                raise TypeError("ids are required: the index holds string ids.")
            new_ids = np.arange(n_old, n_old + arr.shape[0], dtype=np.int64)
        else:
            new_ids = Vocabulary(ids, "item").ids_array
            if new_ids.shape[0] != arr.shape[0]:
                raise ValueError(
                    f"ids must have one entry per vector ({arr.shape[0]}); got {new_ids.shape[0]}."
                )
        if self._ids is not None and len(self._ids) and new_ids.size:
            if (new_ids.dtype.kind == "U") != (self._ids.kind == "str"):
                raise TypeError(
                    f"ids must be {'strings' if self._ids.kind == 'str' else 'integers'} like "
                    "the ones already stored."
                )
        old = self.ids
        all_ids = np.concatenate([old, new_ids]) if old.size else new_ids
        vocab = Vocabulary(all_ids, "item")  # raises ValueError on duplicates
        if self.metric == "cosine":
            arr = normalize_rows(arr)
        sq = row_sq_norms(arr) if self.metric == "l2" else None
        if sq is not None and sq.size and not 0.5 * sq.max() <= _F32_MAX:
            raise ValueError("vectors have squared norms too large for float32 (l2 metric).")
        if self._vectors is None:
            self._vectors = np.ascontiguousarray(arr, dtype=np.float32)
            self._sq_norms = sq
        else:
            self._vectors = np.concatenate([self._vectors, arr])
            if sq is not None:
                assert self._sq_norms is not None
                self._sq_norms = np.concatenate([self._sq_norms, sq])
        self._ids = vocab

    # ----------------------------------------------------------------- querying
    def query(
        self, vectors: Any, k: int = 10, *, exclude: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar stored items of each query vector: ``(ids, scores)``.

        Parameters
        ----------
        vectors : array (n, dim) or scipy sparse (n, dim)
            Query vectors (normalised here for cosine).
        k : int
            Results per query (>= 1). Beyond the number of candidates, rows are padded with
            id -1 (integer ids) or "" (string ids) and score ``-inf``.
        exclude : sequence of n collections of raw ids, optional
            Per-query ids never returned (e.g. the query item itself, items already seen).

        Returns
        -------
        ids : ndarray (n, k)
            Raw ids, best first (ties: earlier-added item first).
        scores : float32 ndarray (n, k)

        Raises
        ------
        KeyError
            An excluded id is not in the index.
        """
        k = _check_k(k)
        q = _float_input(vectors, "vectors")
        if self._vectors is None or self._ids is None:
            raise ValueError("the index is empty: add vectors before querying.")
        if q.shape[1] != self._vectors.shape[1]:
            raise ValueError(
                f"query vectors must have {self._vectors.shape[1]} columns; got {q.shape[1]}."
            )
        n = q.shape[0]
        excl = None
        if exclude is not None:
            rows = list(exclude)
            if len(rows) != n:
                raise ValueError(f"exclude must have one entry per query ({n}); got {len(rows)}.")
            excl = as_exclusion_csr([self._ids.index(r) for r in rows], n, len(self))
        if self.metric == "cosine":
            q = normalize_rows(q)
        idx, scores = _vector_topk(
            q,
            self._vectors,
            k,
            metric=self.metric,
            excl=excl,
            mask=None,
            bias=None,
            threads=resolve_threads(self.num_threads),
            item_sq=self._sq_norms,
        )
        raw = self._ids.ids_array
        fill: Any = "" if raw.dtype.kind == "U" else -1
        out = np.full(idx.shape, fill, dtype=raw.dtype)
        valid = idx >= 0
        out[valid] = raw[idx[valid]]
        return out, scores

    # ----------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the index to one ``.npz`` file (arrays + JSON header; no pickle), atomically."""
        header = {
            "format": _INDEX_FORMAT,
            "format_version": _INDEX_VERSION,
            "metric": self.metric,
            "num_threads": self.num_threads,
        }
        arrays = {
            "header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
            "vectors": self._vectors if self._vectors is not None else np.empty((0, 0), np.float32),
            "ids": self.ids,
            "empty": np.asarray(self._vectors is None),
        }
        path = Path(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SimilarityIndex:
        """Read an index written by :meth:`save` (``allow_pickle=False``: no code runs)."""
        try:
            npz = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise ValueError(f"{os.fspath(path)!r} is not a SimilarityIndex file: {exc}") from exc
        with npz:
            if "header" not in npz.files:
                raise ValueError(f"{os.fspath(path)!r} is not a SimilarityIndex file.")
            try:
                header = json.loads(npz["header"].tobytes().decode())
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ValueError(f"{os.fspath(path)!r} has a corrupt header.") from exc
            if not isinstance(header, dict) or header.get("format") != _INDEX_FORMAT:
                raise ValueError(f"{os.fspath(path)!r} is not a SimilarityIndex file.")
            version = header.get("format_version")
            if not isinstance(version, int) or version > _INDEX_VERSION:
                raise ValueError(
                    f"{os.fspath(path)!r} has format version {version}; this tastebud reads up "
                    f"to {_INDEX_VERSION}."
                )
            index = cls(header["metric"], num_threads=int(header.get("num_threads", 0)))
            if not bool(npz["empty"]):
                vectors = np.ascontiguousarray(npz["vectors"], dtype=np.float32)
                ids = npz["ids"]
                if vectors.ndim != 2 or ids.shape != (vectors.shape[0],):
                    raise ValueError(f"{os.fspath(path)!r} is inconsistent: ids vs vectors.")
                if not np.isfinite(vectors).all():
                    raise ValueError(f"{os.fspath(path)!r} holds non-finite vectors.")
                from tastebud.data import Vocabulary

                index._vectors = vectors
                index._ids = Vocabulary(ids, "item")
                index._sq_norms = row_sq_norms(vectors) if index.metric == "l2" else None
        return index
