"""Neighbourhood collaborative filtering: item-kNN, user-kNN, kNN rating prediction, RP3beta.

All similarities come from one C++ kernel (``cpp/similarity.hpp``, ``sparse_knn``): a
multi-threaded row-by-row sparse product with a dense per-thread accumulator and a fused
top-k, so the n x n similarity matrix is never materialised; only the ``neighbors`` best
entries of each row are kept, as a CSR neighbour graph. Ranking scores are the sparse product
of a user's interactions with that graph, computed and reduced to the top-k in C++ as well.

References
----------
Sarwar et al. (2001) item-based CF; Deshpande & Karypis (2004) item-kNN top-N; Aiolli (2013)
asymmetric cosine; Koren (2010) baseline-based neighbourhood models (Surprise's KNNBaseline);
Paudel et al. (2017) RP3beta; Dacrema et al. (2019) the reproducibility study that tunes them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from tastebud import search
from tastebud.data import Interactions
from tastebud.models.base import Recommender

__all__ = [
    "Explanation",
    "ItemKNN",
    "KNNRating",
    "RP3beta",
    "UserKNN",
    "sparse_similarity",
    "weight_rows",
]

_KINDS = {
    "dot": 0,
    "cosine": 1,
    "asymmetric": 2,
    "jaccard": 3,
    "pearson": 4,
    "common_cosine": 5,
    "msd": 6,
}
_GLOBAL = ("dot", "cosine", "asymmetric", "jaccard")
_WEIGHTINGS = ("none", "tfidf", "bm25")


@functools.lru_cache(maxsize=1)
def _core() -> Any:
    from tastebud import _core as core

    return core


# --------------------------------------------------------------------------- validation
def _check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}; got {value!r}.")
    return str(value)


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= {minimum}; got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value}.")
    return int(value)


def _check_float(value: Any, name: str, minimum: float = 0.0, maximum: float = np.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number in [{minimum}, {maximum}]; got {value!r}.")
    if not (minimum <= float(value) <= maximum) or not np.isfinite(value):
        raise ValueError(f"{name} must be a number in [{minimum}, {maximum}]; got {value}.")
    return float(value)


def _csr32(matrix: Any, name: str = "matrix") -> sp.csr_matrix:
    """CSR float32 with int64 indptr / int32 indices, canonical (sorted, no duplicates)."""
    if not sp.issparse(matrix):
        raise TypeError(f"{name} must be a scipy.sparse matrix; got {type(matrix).__name__}.")
    csr = sp.csr_matrix(matrix, dtype=np.float32)
    if not csr.has_canonical_format:
        csr = csr.copy()
        csr.sum_duplicates()
    if csr.nnz and not np.isfinite(csr.data).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    return csr


def _parts(csr: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.ascontiguousarray(csr.indptr, dtype=np.int64),
        np.ascontiguousarray(csr.indices, dtype=np.int32),
        np.ascontiguousarray(csr.data, dtype=np.float32),
    )


# --------------------------------------------------------------------------- weighting
@dataclass(frozen=True)
class _WeightStats:
    """Training statistics a weighting needs to weight new rows the same way."""

    idf: np.ndarray | None  # per column
    avg_length: float


def _weight_stats(matrix: sp.csr_matrix, weighting: str) -> _WeightStats:
    if weighting == "none":
        return _WeightStats(None, 0.0)
    n_rows = matrix.shape[0]
    df = np.bincount(matrix.indices, minlength=matrix.shape[1]).astype(np.float64)
    idf = np.log(max(n_rows, 1)) - np.log1p(df)
    lengths = np.asarray(matrix.sum(axis=1), dtype=np.float64).ravel()
    return _WeightStats(idf, float(lengths.mean()) if lengths.size else 0.0)


def _apply_weighting(
    matrix: sp.csr_matrix, weighting: str, stats: _WeightStats, k1: float, b: float
) -> sp.csr_matrix:
    if weighting == "none":
        return matrix
    out = matrix.copy()
    cols = out.indices
    data = out.data.astype(np.float64)
    if weighting == "tfidf":
        out.data = (np.sqrt(data) * stats.idf[cols]).astype(np.float32)
        return out
    lengths = np.asarray(matrix.sum(axis=1), dtype=np.float64).ravel()
    avg = stats.avg_length if stats.avg_length > 0 else 1.0
    norm = (1.0 - b) + b * lengths / avg
    rows = np.repeat(np.arange(out.shape[0]), np.diff(out.indptr))
    out.data = (data * (k1 + 1.0) / (k1 * norm[rows] + data) * stats.idf[cols]).astype(np.float32)
    return out


def weight_rows(
    matrix: Any, weighting: str = "tfidf", *, k1: float = 1.2, b: float = 0.75
) -> sp.csr_matrix:
    """Weight a sparse matrix whose rows are the entities compared (documents) by TF-IDF or BM25.

    The definitions are implicit's ``tfidf_weight`` / ``bm25_weight`` applied to the rows:
    ``idf[c] = log(n_rows) - log1p(df[c])`` with ``df[c]`` the stored entries of column ``c``;
    TF-IDF weighs ``sqrt(x) * idf``; BM25 weighs
    ``x (k1 + 1) / (k1 ((1 - b) + b len_r / avg len) + x) * idf`` with ``len_r`` the row sum
    (Robertson & Zaragoza 2009). For item-item similarity the rows are items (``X.T``), so the
    idf is per user: users with many items carry less evidence.

    Parameters
    ----------
    matrix : scipy.sparse (n_rows, n_cols)
    weighting : {"none", "tfidf", "bm25"}
    k1, b : float
        BM25 term saturation and length normalisation.

    Returns
    -------
    scipy.sparse.csr_matrix (float32)
    """
    csr = _csr32(matrix)
    weighting = _check_choice(weighting, "weighting", _WEIGHTINGS)
    k1 = _check_float(k1, "k1")
    b = _check_float(b, "b", 0.0, 1.0)
    return _apply_weighting(csr, weighting, _weight_stats(csr, weighting), k1, b)


# --------------------------------------------------------------------------- the kernel
def _row_sq(m: sp.csr_matrix) -> np.ndarray:
    """Row sums of squares (float64) of a CSR matrix."""
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    return np.bincount(rows, weights=m.data.astype(np.float64) ** 2, minlength=m.shape[0])


def _knn(
    queries: sp.csr_matrix,
    targets: sp.csr_matrix,
    k: int,
    kind: str,
    *,
    alpha: float = 0.5,
    shrink: float = 0.0,
    min_support: int = 1,
    exclude_self: bool = False,
    num_threads: int = 0,
    targets_t: sp.csr_matrix | None = None,
    positive_only: bool = False,
) -> sp.csr_matrix:
    """Top-``k`` similarity rows between ``queries`` (nq x d) and ``targets`` (nt x d), as CSR.

    Inputs are assumed validated (canonical float32 CSR). Rows are computed in blocks so the
    padded (block x k) outputs stay bounded; entries are sorted by target index per row.
    """
    nq, d = queries.shape
    nt = targets.shape[0]
    k = int(min(k, max(nt, 1)))
    tt = targets_t if targets_t is not None else sp.csr_matrix(targets.T)
    tt_parts = _parts(tt)
    q_sq = t_sq = None
    if kind in ("cosine", "asymmetric", "jaccard"):
        t_sq = _row_sq(targets)
        q_sq = t_sq if queries is targets else _row_sq(queries)
    # rows are computed in blocks of bounded padded size and compacted to CSR in C++
    indptr, indices, data = _core().sparse_knn_csr(
        *_parts(queries),
        nq,
        *tt_parts,
        nt,
        d,
        q_sq,
        t_sq,
        _KINDS[kind],
        float(alpha),
        float(shrink),
        int(min_support),
        0 if exclude_self else -1,
        k,
        search.resolve_threads(num_threads),
        positive_only=positive_only,
    )
    out = sp.csr_matrix((data, indices, indptr), shape=(nq, nt))
    out.has_sorted_indices = True
    return out


def _symmetric(kind: str, alpha: float) -> bool:
    """Whether sim(a, b) == sim(b, a) bitwise for the kernel's formula of ``kind``."""
    return kind in ("dot", "cosine", "jaccard") or (kind == "asymmetric" and alpha == 0.5)


def _knn_symmetric(
    matrix: sp.csr_matrix,
    k: int,
    kind: str,
    *,
    alpha: float,
    shrink: float,
    min_support: int,
    exclude_self: bool,
    num_threads: int,
) -> sp.csr_matrix:
    """Top-``k`` self-similarity of the rows of ``matrix`` for a symmetric kind, each pair once.

    Same neighbour lists as ``_knn(matrix, matrix, ...)`` (similarities equal up to rounding):
    the C++ kernel computes only the pairs j > i of the sparse product and offers each to both
    rows' buffers. Not used by ``sparse_similarity`` any more: the row-wise kernel is faster on
    MovieLens-sized data at 1 and 2 threads and needs no per-thread n x k buffers.
    """
    n, d = matrix.shape
    xt = sp.csr_matrix(matrix.T)
    if not xt.has_sorted_indices:
        xt.sort_indices()
    sq = None
    if kind != "dot":
        sq = np.asarray(matrix.multiply(matrix).sum(axis=1), dtype=np.float64).ravel()
    idx, scores, counts = _core().sparse_knn_symmetric(
        *_parts(matrix),
        n,
        d,
        *_parts(xt),
        sq,
        _KINDS[kind],
        float(alpha),
        float(shrink),
        int(min_support),
        not exclude_self,
        k,
        True,
        num_threads,
    )
    mask = idx >= 0
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    out = sp.csr_matrix((scores[mask], idx[mask], indptr), shape=(n, n))
    out.has_sorted_indices = True
    return out


def sparse_similarity(
    matrix: Any,
    k: int = 100,
    *,
    similarity: str = "cosine",
    weighting: str = "none",
    alpha: float = 0.5,
    shrink: float = 0.0,
    min_support: int = 1,
    k1: float = 1.2,
    b: float = 0.75,
    exclude_self: bool = True,
    num_threads: int = 0,
) -> sp.csr_matrix:
    """The ``k`` most similar rows of every row of a sparse matrix, as a sparse neighbour graph.

    For item-item similarity pass ``X.T`` (items x users); for user-user pass ``X``.

    Parameters
    ----------
    matrix : scipy.sparse (n, d)
        Rows are the entities compared, columns the evidence (e.g. items x users).
    k : int
        Neighbours kept per row (``k >= n`` keeps every non-zero similarity).
    similarity : str
        ``"cosine"``: dot / (|a| |b| + shrink). ``"asymmetric"``: dot / (|a|^(2 alpha)
        |b|^(2 (1 - alpha)) + shrink) (Aiolli 2013; alpha = 0.5 is cosine). ``"jaccard"``:
        dot / (|a|^2 + |b|^2 - dot + shrink) (Tanimoto; Jaccard on binary data). ``"dot"``:
        the plain product (implicit's BM25Recommender). ``"pearson"``: Pearson correlation over
        the columns both rows have (Surprise's ``pearson``); ``"common_cosine"``: cosine over
        those columns (on centred data: adjusted cosine (Sarwar 2001) or Surprise's
        ``pearson_baseline``); ``"msd"``: 1 / (mean squared difference + 1) over them.
        The common-support kinds shrink by ``(n - 1) / (n - 1 + shrink)``, ``n`` the support.
    weighting : {"none", "tfidf", "bm25"}
        Row weighting first applied to ``matrix`` (see ``weight_rows``).
    alpha : float
        Asymmetric cosine exponent, in [0, 1].
    shrink : float
        Shrinkage term (>= 0).
    min_support : int
        Pairs sharing fewer columns are never neighbours.
    k1, b : float
        BM25 parameters.
    exclude_self : bool
        Leave a row out of its own neighbour list.
    num_threads : int
        0 = all cores.

    Returns
    -------
    scipy.sparse.csr_matrix (n, n), float32
        Row ``i`` holds up to ``k`` neighbours with non-zero, finite similarity; among equal
        similarities the lower index is kept. Indices are sorted within rows.

    Notes
    -----
    Cost is the number of multiply-adds of the sparse product ``A A^T`` plus a few operations
    per non-zero similarity: every row's candidates go through a top-k selection whose
    threshold is guessed from a sample of the row and verified afterwards (exact result, see
    ``cpp/similarity.hpp``). Memory is ``O(threads * n + n * k)``; rows are independent, so
    threads share no state. Thread-safe (releases the GIL).
    """
    csr = _csr32(matrix)
    k = _check_int(k, "k", 1)
    similarity = _check_choice(similarity, "similarity", tuple(_KINDS))
    weighting = _check_choice(weighting, "weighting", _WEIGHTINGS)
    alpha = _check_float(alpha, "alpha", 0.0, 1.0)
    shrink = _check_float(shrink, "shrink")
    min_support = _check_int(min_support, "min_support", 1)
    k1 = _check_float(k1, "k1")
    b = _check_float(b, "b", 0.0, 1.0)
    search.resolve_threads(num_threads)
    weighted = _apply_weighting(csr, weighting, _weight_stats(csr, weighting), k1, b)
    # The row-wise kernel (each row's full product, guess-and-verify top-k selection) is
    # faster than the pair-once symmetric kernel (``_knn_symmetric``) on MovieLens-like data
    # at 1 and 2 threads, and scales without per-thread n x k buffers, so it is used for all
    # kinds; ``_knn_symmetric`` stays available (same result) for callers that ask for it.
    return _knn(
        weighted,
        weighted,
        k,
        similarity,
        alpha=alpha,
        shrink=shrink,
        min_support=min_support,
        exclude_self=bool(exclude_self),
        num_threads=num_threads,
    )


# --------------------------------------------------------------------------- explanations
@dataclass(frozen=True)
class Explanation:
    """Why a model scored ``item`` for ``user``: the contributions that add up to the score.

    Attributes
    ----------
    user, item : raw ids
    score : float
        The model's score (``recommend`` / ``score``; a rating for ``KNNRating``).
    ids : ndarray
        Raw ids of the contributors, largest contribution first: the user's items
        (item-based models) or the neighbour users (user-based models).
    contributions : float ndarray
        Their contributions; for item-based scoring ``weight * similarity``.
    kind : str
        ``"item"`` or ``"user"``: what ``ids`` are.
    """

    user: Any
    item: Any
    score: float
    ids: np.ndarray
    contributions: np.ndarray
    kind: str

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame({self.kind: self.ids, "contribution": self.contributions})


def _sorted_explanation(
    user: Any, item: Any, score: float, ids: np.ndarray, contrib: np.ndarray, kind: str
) -> Explanation:
    order = np.lexsort((np.arange(contrib.size), -contrib))
    return Explanation(
        user, item, float(score), ids[order], contrib[order].astype(np.float64), kind
    )


# --------------------------------------------------------------------------- graph models
class _GraphRecommender(Recommender):
    """Models scoring ``scores = Q . M`` with sparse Q and M (fused sparse product + top-k)."""

    _fitted_arrays: ClassVar[tuple[str, ...]] = (
        "similarity_indptr_",
        "similarity_indices_",
        "similarity_data_",
    )

    num_threads: int

    def _store_graph(self, graph: sp.csr_matrix) -> None:
        self.similarity_indptr_ = graph.indptr.astype(np.int64)
        self.similarity_indices_ = graph.indices.astype(np.int32)
        self.similarity_data_ = graph.data.astype(np.float32)
        self.__dict__.pop("_graph_cache", None)

    @property
    def similarity_(self) -> sp.csr_matrix:
        """The neighbour graph as a CSR matrix (built once from the stored arrays)."""
        cached = self.__dict__.get("_graph_cache")
        if cached is None or cached[0] is not self.similarity_data_:
            n = self.similarity_indptr_.size - 1
            graph = sp.csr_matrix(
                (self.similarity_data_, self.similarity_indices_, self.similarity_indptr_),
                shape=(n, n),
            )
            cached = (self.similarity_data_, graph)
            self.__dict__["_graph_cache"] = cached
        return cached[1]

    # subclasses: (queries for these users) and the matrix they multiply
    def _queries(self, user_indices: np.ndarray | None, rows: sp.csr_matrix) -> sp.csr_matrix:
        raise NotImplementedError

    def _right(self) -> sp.csr_matrix:
        raise NotImplementedError

    def _score_block(self, user_indices: np.ndarray | None, rows: sp.csr_matrix) -> np.ndarray:
        q = self._queries(user_indices, rows)
        return np.asarray((q @ self._right()).toarray(), dtype=np.float32)

    def _topk_rows(
        self,
        user_indices: np.ndarray | None,
        rows: sp.csr_matrix,
        k: int,
        exclude: sp.csr_matrix | None,
        allow: np.ndarray | None,
        deny: np.ndarray | None,
        num_threads: int = 0,
    ) -> tuple[np.ndarray, np.ndarray]:
        q = _csr32(self._queries(user_indices, rows), "queries")
        right = self._right()
        n_items = right.shape[1]
        excl = search.as_exclusion_csr(exclude, q.shape[0], n_items)
        mask = search._allowed_mask(allow, deny, n_items)
        threads = search.resolve_threads(num_threads or getattr(self, "num_threads", 0))
        return _core().sparse_score_topk(
            *_parts(q),
            q.shape[0],
            *_parts(right),
            right.shape[0],
            n_items,
            int(k),
            None if excl is None else excl.indptr.astype(np.int64),
            None if excl is None else excl.indices.astype(np.int32),
            mask,
            threads,
        )


class _ItemGraph(_GraphRecommender):
    """scores = X_u . S, S the item-item neighbour graph (row i: the neighbours of item i)."""

    def _queries(self, user_indices: np.ndarray | None, rows: sp.csr_matrix) -> sp.csr_matrix:
        return rows

    def _right(self) -> sp.csr_matrix:
        return self.similarity_

    def _similar_items_indices(
        self, item_indices: np.ndarray, k: int, allow: np.ndarray | None, deny: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.items_)
        eye = sp.csr_matrix(
            (
                np.ones(item_indices.size, np.float32),
                item_indices,
                np.arange(item_indices.size + 1),
            ),
            shape=(item_indices.size, n),
        )
        return self._topk_rows(None, eye, k, eye, allow, deny)

    def explain(self, user: Any, item: Any) -> Explanation:
        """Which of the user's training items contributed how much to the score of ``item``.

        Each contribution is ``weight(user, j) * similarity(j, item)``; they sum to the score.
        """
        self._check_fitted()
        u = int(self.users_.index(user)[0])
        i = int(self.items_.index(item)[0])
        row = self.seen_[u]
        sim_col = np.asarray(self.similarity_[row.indices][:, i].toarray()).ravel()
        contrib = row.data.astype(np.float64) * sim_col
        keep = contrib != 0
        return _sorted_explanation(
            user,
            item,
            float(contrib.sum()),
            self.items_.ids(row.indices[keep]),
            contrib[keep],
            "item",
        )


def _check_common(model: Any) -> tuple[int, int]:
    neighbors = _check_int(model.neighbors, "neighbors", 1)
    threads = search.resolve_threads(model.num_threads)
    return neighbors, threads


class ItemKNN(_ItemGraph):
    """Item-based top-N recommender: score(u, j) = sum over the user's items i of x_ui S_ij.

    S keeps the ``neighbors`` most similar items of every item (Deshpande & Karypis 2004;
    implicit's ItemItemRecommender). With ``similarity="cosine"`` this is implicit's
    CosineRecommender; ``weighting="bm25", similarity="dot"`` is its BM25Recommender;
    ``weighting="tfidf"`` with cosine its TFIDFRecommender.

    Parameters
    ----------
    neighbors : int
        Neighbours kept per item.
    similarity : {"cosine", "asymmetric", "jaccard", "dot", "pearson", "common_cosine", "msd"}
        See ``sparse_similarity``.
    weighting : {"none", "tfidf", "bm25"}
        Weighting of the items x users matrix before the similarity (idf per user).
    alpha : float
        Asymmetric cosine exponent.
    shrink : float
        Similarity shrinkage.
    min_support : int
        Minimum number of common users for two items to be neighbours.
    k1, b : float
        BM25 parameters (implicit's defaults).
    include_self : bool
        Keep each item in its own neighbour list, as implicit does (it then takes one of the
        ``neighbors`` slots). Off by default: an item's own similarity only adds to items the
        user has already seen.
    num_threads : int
        0 = all cores.

    Notes
    -----
    The neighbour graph is stored as CSR arrays (``similarity_indptr_``, ``similarity_indices_``,
    ``similarity_data_``). New users (``recommend_for``) need only their interactions.
    Thread-safety: every method but ``fit`` may run concurrently.
    """

    def __init__(
        self,
        neighbors: int = 100,
        similarity: str = "cosine",
        weighting: str = "none",
        alpha: float = 0.5,
        shrink: float = 0.0,
        min_support: int = 1,
        k1: float = 1.2,
        b: float = 0.75,
        include_self: bool = False,
        num_threads: int = 0,
    ) -> None:
        self.neighbors = neighbors
        self.similarity = similarity
        self.weighting = weighting
        self.alpha = alpha
        self.shrink = shrink
        self.min_support = min_support
        self.k1 = k1
        self.b = b
        self.include_self = include_self
        self.num_threads = num_threads

    def _fit(self, interactions: Interactions) -> None:
        neighbors, threads = _check_common(self)
        graph = sparse_similarity(
            interactions.matrix.T,
            neighbors,
            similarity=self.similarity,
            weighting=self.weighting,
            alpha=self.alpha,
            shrink=self.shrink,
            min_support=self.min_support,
            k1=self.k1,
            b=self.b,
            exclude_self=not self.include_self,
            num_threads=threads,
        )
        self._store_graph(graph)


class RP3beta(_ItemGraph):
    """RP3beta (Paudel et al. 2017): a 3-step random walk item similarity with popularity penalty.

    ``W_ij = sum_u P_iu[i, u]^alpha P_ui[u, j]^alpha / pop_j^beta`` with ``P_ui`` the
    row-normalised users x items matrix (user -> item transitions), ``P_iu`` the row-normalised
    items x users matrix, ``pop_j`` the number of users of item ``j``; each row keeps its
    ``neighbors`` largest entries (self excluded), and ``score(u, j) = sum_i x_ui W_ij``.
    ``beta = 0`` is P3alpha (Cooper et al. 2014). Strong in Dacrema et al.'s reproducibility
    study (2019), native in none of the usual libraries; computed by the same sparse kernel
    as ``ItemKNN`` (a plain dot product on the transition matrices).

    Parameters
    ----------
    neighbors : int
        Neighbours kept per item.
    alpha : float
        Exponent on the transition probabilities (> 0).
    beta : float
        Popularity penalty exponent (>= 0).
    normalize : bool
        Row-normalise W after pruning (Dacrema et al.'s ``normalize_similarity``).
    num_threads : int
        0 = all cores.
    """

    def __init__(
        self,
        neighbors: int = 100,
        alpha: float = 1.0,
        beta: float = 0.6,
        normalize: bool = False,
        num_threads: int = 0,
    ) -> None:
        self.neighbors = neighbors
        self.alpha = alpha
        self.beta = beta
        self.normalize = normalize
        self.num_threads = num_threads

    def _fit(self, interactions: Interactions) -> None:
        neighbors, threads = _check_common(self)
        alpha = _check_float(self.alpha, "alpha", 1e-12)
        beta = _check_float(self.beta, "beta")
        x = interactions.matrix
        if x.nnz and x.data.min() < 0:
            raise ValueError("RP3beta needs non-negative interaction weights.")

        def row_normalise(m: sp.csr_matrix) -> sp.csr_matrix:
            out = sp.csr_matrix(m, dtype=np.float64, copy=True)
            sums = np.asarray(out.sum(axis=1)).ravel()
            inv = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
            out.data *= np.repeat(inv, np.diff(out.indptr))
            if alpha != 1.0:
                out.data **= alpha
            return out

        p_ui = row_normalise(x)
        p_iu = row_normalise(sp.csr_matrix(x.T))
        pop = np.diff(sp.csc_matrix(x).indptr).astype(np.float64)
        penalty = np.divide(1.0, pop**beta, out=np.zeros_like(pop), where=pop > 0)
        p_ui_scaled = sp.csr_matrix(p_ui.multiply(penalty[None, :]), dtype=np.float32)
        graph = _knn(
            _csr32(p_iu),
            _csr32(sp.csr_matrix(p_ui_scaled.T)),
            neighbors,
            "dot",
            exclude_self=True,
            num_threads=threads,
            targets_t=_csr32(p_ui_scaled),
        )
        if self.normalize:
            sums = np.asarray(graph.sum(axis=1)).ravel()
            inv = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
            graph.data = (graph.data * np.repeat(inv, np.diff(graph.indptr))).astype(np.float32)
        self._store_graph(graph)


class UserKNN(_GraphRecommender):
    """User-based top-N recommender: score(u, j) = sum over neighbour users v of S_uv x_vj.

    S keeps the ``neighbors`` most similar training users of every user (Herlocker et al.
    1999; Resnick et al. 1994). A new user (``recommend_for``) is compared with every training
    user by the same kernel, then scored the same way.

    Parameters
    ----------
    neighbors : int
        Neighbour users kept per user.
    similarity, weighting, alpha, shrink, min_support, k1, b
        As in ``ItemKNN``; the weighting treats users as documents and items as terms
        (idf per item), with training statistics reused for new users.
    num_threads : int
        0 = all cores.
    """

    _needs_all_training_rows = True  # neighbours' rows are read at scoring time
    _fitted_arrays: ClassVar[tuple[str, ...]] = (
        *_GraphRecommender._fitted_arrays,
        "idf_",
    )

    def __init__(
        self,
        neighbors: int = 100,
        similarity: str = "cosine",
        weighting: str = "none",
        alpha: float = 0.5,
        shrink: float = 0.0,
        min_support: int = 1,
        k1: float = 1.2,
        b: float = 0.75,
        num_threads: int = 0,
    ) -> None:
        self.neighbors = neighbors
        self.similarity = similarity
        self.weighting = weighting
        self.alpha = alpha
        self.shrink = shrink
        self.min_support = min_support
        self.k1 = k1
        self.b = b
        self.num_threads = num_threads

    def _fit(self, interactions: Interactions) -> None:
        neighbors, threads = _check_common(self)
        _check_choice(self.weighting, "weighting", _WEIGHTINGS)
        _check_choice(self.similarity, "similarity", tuple(_KINDS))
        x = interactions.matrix
        stats = _weight_stats(x, self.weighting)
        self.idf_ = stats.idf
        self.avg_length_ = stats.avg_length
        graph = sparse_similarity(
            x,
            neighbors,
            similarity=self.similarity,
            weighting=self.weighting,
            alpha=self.alpha,
            shrink=self.shrink,
            min_support=self.min_support,
            k1=self.k1,
            b=self.b,
            exclude_self=True,
            num_threads=threads,
        )
        self._store_graph(graph)

    def _extra_state(self) -> dict[str, Any]:
        return {"avg_length": self.avg_length_}

    def _set_extra_state(self, state: dict[str, Any]) -> None:
        self.avg_length_ = float(state.get("avg_length", 0.0))

    def _weighted_train(self) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        cached = self.__dict__.get("_train_cache")
        if cached is None or cached[0] is not self.seen_:
            stats = _WeightStats(self.idf_, self.avg_length_)
            w = _apply_weighting(_csr32(self.seen_), self.weighting, stats, self.k1, self.b)
            cached = (self.seen_, w, _csr32(sp.csr_matrix(w.T)))
            self.__dict__["_train_cache"] = cached
        return cached[1], cached[2]

    def _queries(self, user_indices: np.ndarray | None, rows: sp.csr_matrix) -> sp.csr_matrix:
        if user_indices is not None:
            return self.similarity_[user_indices]
        train_w, train_wt = self._weighted_train()
        stats = _WeightStats(self.idf_, self.avg_length_)
        q = _apply_weighting(_csr32(rows), self.weighting, stats, self.k1, self.b)
        return _knn(
            q,
            train_w,
            _check_int(self.neighbors, "neighbors", 1),
            self.similarity,
            alpha=self.alpha,
            shrink=self.shrink,
            min_support=self.min_support,
            num_threads=self.num_threads,
            targets_t=train_wt,
        )

    def _right(self) -> sp.csr_matrix:
        return self.seen_

    def _similar_items_indices(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("UserKNN has no item similarity: use ItemKNN for similar_items.")

    def explain(self, user: Any, item: Any) -> Explanation:
        """Which neighbour users contributed how much: ``similarity(user, v) * x_v,item``."""
        self._check_fitted()
        u = int(self.users_.index(user)[0])
        i = int(self.items_.index(item)[0])
        sim = self.similarity_[u]
        x_col = np.asarray(self.seen_[sim.indices][:, i].toarray()).ravel()
        contrib = sim.data.astype(np.float64) * x_col
        keep = contrib != 0
        return _sorted_explanation(
            user,
            item,
            float(contrib.sum()),
            self.users_.ids(sim.indices[keep]),
            contrib[keep],
            "user",
        )


# --------------------------------------------------------------------------- rating kNN
_RATING_SIMS = ("msd", "cosine", "pearson", "pearson_baseline")
_ESTIMATORS = ("basic", "means", "baseline")
#: (user, item) pairs per KNNRating scoring block (~2M: a few tens of MB of temporaries)
_PAIRS_PER_BLOCK = 2**21


def als_baselines(
    matrix: sp.csr_matrix,
    global_mean: float,
    *,
    iterations: int = 10,
    reg_users: float = 15.0,
    reg_items: float = 10.0,
) -> tuple[np.ndarray, np.ndarray]:
    """User and item biases by alternating least squares (Koren 2010, Surprise's ``als``).

    Each epoch sets ``b_i = sum_u (r_ui - mu - b_u) / (reg_items + |U_i|)`` then
    ``b_u = sum_i (r_ui - mu - b_i) / (reg_users + |I_u|)``, as Surprise's
    ``baseline_als`` (items first).
    """
    r = _csr32(matrix, "matrix")
    n_u, n_i = r.shape
    bu, bi = _core().als_baselines(
        *_parts(r),
        n_u,
        n_i,
        float(global_mean),
        int(iterations),
        float(reg_users),
        float(reg_items),
    )
    return bu, bi


class KNNRating(Recommender):
    """Neighbourhood rating prediction: Surprise's KNNBasic / KNNWithMeans / KNNBaseline.

    For a pair (u, i), item-based (``user_based=False``): among the items j the user rated,
    the ``k`` most similar to i with positive similarity give

    * ``basic``:    r̂ = Σ s_ij r_uj / Σ s_ij
    * ``means``:    r̂ = μ_i + Σ s_ij (r_uj − μ_j) / Σ s_ij
    * ``baseline``: r̂ = b_ui + Σ s_ij (r_uj − b_uj) / Σ s_ij, b_ui = μ + b_u + b_i (ALS biases)

    (Koren 2010, eq. 3; user-based swaps the roles). With fewer than ``min_k`` usable
    neighbours the correction term is dropped (``basic`` falls back to the global mean), as
    in Surprise. Predictions are clipped to the training rating range.

    Parameters
    ----------
    k : int
        Neighbours used per prediction (Surprise's ``k``, default 40).
    min_k : int
        Minimum usable neighbours for the neighbourhood term.
    user_based : bool
        Similarities between users (True) or items (False, the default here).
    estimator : {"basic", "means", "baseline"}
    similarity : {"msd", "cosine", "pearson", "pearson_baseline"}
        Surprise's definitions, all over the common support: ``pearson_baseline`` is the
        shrunk correlation of baseline residuals.
    shrink : float, optional
        Shrinkage ``(n - 1) / (n - 1 + shrink)``; None = Surprise's (100 for
        ``pearson_baseline``, none otherwise).
    min_support : int
        Pairs with fewer common ratings are not neighbours.
    max_neighbors : int, optional
        Neighbours stored per item (user); None keeps every positive similarity, exactly like
        Surprise's full matrix; a bound saves memory on large catalogues at a small accuracy
        cost (a user's rated items outside i's stored list are then ignored).
    baseline_iterations, reg_users, reg_items : as in ``als_baselines`` (Surprise's defaults).
    num_threads : int
        0 = all cores.

    Notes
    -----
    ``predict(users, items)`` takes raw ids and returns ratings clipped to the training
    range. ``recommend`` and ``score`` use the unclipped estimate r̂: clipping would tie every
    item estimated beyond the top of the scale, and ties are broken by item index.
    """

    _needs_all_training_rows = True  # neighbours' rows are read at scoring time
    _fitted_arrays: ClassVar[tuple[str, ...]] = (
        "similarity_indptr_",
        "similarity_indices_",
        "similarity_data_",
        "user_bias_",
        "item_bias_",
        "means_",
    )

    def __init__(
        self,
        k: int = 40,
        min_k: int = 1,
        user_based: bool = False,
        estimator: str = "baseline",
        similarity: str = "pearson_baseline",
        shrink: float | None = None,
        min_support: int = 1,
        max_neighbors: int | None = None,
        baseline_iterations: int = 10,
        reg_users: float = 15.0,
        reg_items: float = 10.0,
        num_threads: int = 0,
    ) -> None:
        self.k = k
        self.min_k = min_k
        self.user_based = user_based
        self.estimator = estimator
        self.similarity = similarity
        self.shrink = shrink
        self.min_support = min_support
        self.max_neighbors = max_neighbors
        self.baseline_iterations = baseline_iterations
        self.reg_users = reg_users
        self.reg_items = reg_items
        self.num_threads = num_threads

    # ----------------------------------------------------------------- fitting
    def _needs_baseline(self) -> bool:
        return self.estimator == "baseline" or self.similarity == "pearson_baseline"

    def _fit(self, interactions: Interactions) -> None:
        _check_int(self.k, "k", 1)
        _check_int(self.min_k, "min_k", 0)
        _check_choice(self.estimator, "estimator", _ESTIMATORS)
        _check_choice(self.similarity, "similarity", _RATING_SIMS)
        if self.shrink is not None:
            _check_float(self.shrink, "shrink")
        min_support = _check_int(self.min_support, "min_support", 1)
        if self.max_neighbors is not None:
            _check_int(self.max_neighbors, "max_neighbors", 1)
        iters = _check_int(self.baseline_iterations, "baseline_iterations", 0)
        reg_u = _check_float(self.reg_users, "reg_users")
        reg_i = _check_float(self.reg_items, "reg_items")
        threads = search.resolve_threads(self.num_threads)
        r = _csr32(interactions.matrix)
        self.global_mean_ = float(r.data.mean(dtype=np.float64))
        self.rating_range_ = (float(r.data.min()), float(r.data.max()))
        if self._needs_baseline():
            bu, bi = als_baselines(
                r, self.global_mean_, iterations=iters, reg_users=reg_u, reg_items=reg_i
            )
        else:
            bu, bi = np.zeros(r.shape[0]), np.zeros(r.shape[1])
        self.user_bias_ = bu.astype(np.float64)
        self.item_bias_ = bi.astype(np.float64)
        # entities x context, rows = the entities compared
        ent = _csr32(r.T) if not self.user_based else r
        counts = np.diff(ent.indptr)
        rows_of = np.repeat(np.arange(ent.shape[0]), counts)
        sums = np.bincount(rows_of, weights=ent.data.astype(np.float64), minlength=ent.shape[0])
        means = np.full(ent.shape[0], self.global_mean_)
        has = counts > 0  # entities without ratings fall back to the global mean
        means[has] = sums[has] / counts[has]
        self.means_ = means
        values = ent
        kind = {"msd": "msd", "cosine": "common_cosine", "pearson": "pearson"}.get(
            self.similarity, "common_cosine"
        )
        if self.similarity == "pearson_baseline":
            values = ent.copy()
            values.data = (ent.data - self._baseline_of(ent)).astype(np.float32)
        shrink = self.shrink
        if shrink is None:
            shrink = 100.0 if self.similarity == "pearson_baseline" else 0.0
        n = ent.shape[0]
        keep = n if self.max_neighbors is None else int(self.max_neighbors)
        graph = _knn(
            values,
            values,
            keep,
            kind,
            shrink=float(shrink),
            min_support=min_support,
            exclude_self=True,
            num_threads=threads,
            positive_only=True,  # only positive similarities are ever used (as Surprise)
        )
        self.similarity_indptr_ = graph.indptr.astype(np.int64)
        self.similarity_indices_ = graph.indices.astype(np.int32)
        self.similarity_data_ = graph.data.astype(np.float32)
        self.__dict__.pop("_cache", None)

    def _baseline_of(self, ent: sp.csr_matrix) -> np.ndarray:
        """mu + b_u + b_i of each stored entry of an entity-rows CSR (items x users, item-based)."""
        rows = np.repeat(np.arange(ent.shape[0]), np.diff(ent.indptr))
        cols = ent.indices
        if self.user_based:
            bu, bi = self.user_bias_[rows], self.item_bias_[cols]
        else:
            bi, bu = self.item_bias_[rows], self.user_bias_[cols]
        return self.global_mean_ + bu + bi

    def _extra_state(self) -> dict[str, Any]:
        return {"global_mean": self.global_mean_, "rating_range": list(self.rating_range_)}

    def _set_extra_state(self, state: dict[str, Any]) -> None:
        self.global_mean_ = float(state["global_mean"])
        self.rating_range_ = tuple(float(v) for v in state["rating_range"])

    # ----------------------------------------------------------------- prediction core
    def _graph(self) -> sp.csr_matrix:
        n = self.similarity_indptr_.size - 1
        return sp.csr_matrix(
            (self.similarity_data_, self.similarity_indices_, self.similarity_indptr_),
            shape=(n, n),
        )

    def _residual_context(self, ratings: sp.csr_matrix, user_bias: np.ndarray) -> sp.csr_matrix:
        """Context rows (y -> rated x' with residual) for users x items ``ratings``."""
        r = _csr32(ratings)
        rows = np.repeat(np.arange(r.shape[0]), np.diff(r.indptr))
        cols = r.indices
        data = r.data.astype(np.float64)
        if self.estimator == "means":
            data = data - (self.means_[rows] if self.user_based else self.means_[cols])
        elif self.estimator == "baseline":
            data = data - (self.global_mean_ + user_bias[rows] + self.item_bias_[cols])
        ctx = r.copy()
        ctx.data = data.astype(np.float32)
        if self.user_based:  # context rows are items, entries the users who rated them
            ctx = _csr32(sp.csr_matrix(ctx.T))
        ctx.sort_indices()
        return ctx

    def _train_context(self) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        cached = self.__dict__.get("_cache")
        if cached is None or cached[0] is not self.seen_:
            cached = (
                self.seen_,
                self._residual_context(self.seen_, self.user_bias_),
                self._graph(),
            )
            self.__dict__["_cache"] = cached
        return cached[1], cached[2]

    def _new_user_bias(self, rows: sp.csr_matrix) -> np.ndarray:
        if not self._needs_baseline():
            return np.zeros(rows.shape[0])
        coo = rows.tocoo()
        dev = coo.data - self.global_mean_ - self.item_bias_[coo.col]
        return np.bincount(coo.row, weights=dev, minlength=rows.shape[0]) / (
            float(self.reg_users) + np.diff(rows.indptr)
        )

    @property
    def _batch_size(self) -> int:  # type: ignore[misc, override]
        """Users per dense block: a block makes several arrays of ``users x n_items`` pairs
        (int64 indices, float64 estimates), so keep it near ``_PAIRS_PER_BLOCK`` pairs."""
        n_items = len(self.items_) if self.is_fitted else 1
        return max(1, min(1024, _PAIRS_PER_BLOCK // max(1, n_items)))

    def _clip(self, est: np.ndarray) -> np.ndarray:
        lo, hi = self.rating_range_
        return np.clip(est, lo, hi)

    def _estimate(
        self,
        uidx: np.ndarray,
        iidx: np.ndarray,
        rows: sp.csr_matrix | None = None,
        user_bias: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(unclipped rating estimates, neighbours used) of pairs; ``rows`` given: new users."""
        if rows is None:
            ctx, graph = self._train_context()
            bu = self.user_bias_
        else:
            bu = user_bias
            ctx = self._residual_context(rows, bu)
            graph = self._train_context()[1]
        if self.user_based and rows is not None:
            # compare the new users with the training users
            graph = self._new_user_graph(rows, bu)
            ctx = self._train_context()[0]
        x, y = (uidx, iidx) if self.user_based else (iidx, uidx)
        part, used = _core().knn_predict(
            np.ascontiguousarray(x, dtype=np.int64),
            np.ascontiguousarray(y, dtype=np.int64),
            *_parts(graph),
            graph.shape[0],
            graph.shape[1],
            *_parts(ctx),
            ctx.shape[0],
            int(self.k),
            search.resolve_threads(self.num_threads),
        )
        ok = used >= max(int(self.min_k), 1)
        if self.estimator == "basic":
            est = np.where(ok, part, self.global_mean_)
        else:
            if self.estimator == "means":
                if self.user_based and rows is not None:
                    r = _csr32(rows)
                    cnt = np.diff(r.indptr)
                    sums = np.bincount(
                        np.repeat(np.arange(r.shape[0]), cnt), weights=r.data, minlength=r.shape[0]
                    )
                    new_means = np.where(cnt > 0, sums / np.maximum(cnt, 1), self.global_mean_)
                    base = new_means[x]
                else:
                    base = self.means_[x]
            else:
                base = self.global_mean_ + bu[uidx] + self.item_bias_[iidx]
            est = base + np.where(ok, part, 0.0)
        return est, used

    def _new_user_graph(self, rows: sp.csr_matrix, bu: np.ndarray) -> sp.csr_matrix:
        r = _csr32(rows)
        kind = {"msd": "msd", "cosine": "common_cosine", "pearson": "pearson"}.get(
            self.similarity, "common_cosine"
        )
        train = _csr32(self.seen_)
        q = r
        if self.similarity == "pearson_baseline":
            q = r.copy()
            rr = np.repeat(np.arange(r.shape[0]), np.diff(r.indptr))
            q.data = (r.data - (self.global_mean_ + bu[rr] + self.item_bias_[r.indices])).astype(
                np.float32
            )
            train = train.copy()
            tr = np.repeat(np.arange(train.shape[0]), np.diff(train.indptr))
            train.data = (
                train.data
                - (self.global_mean_ + self.user_bias_[tr] + self.item_bias_[train.indices])
            ).astype(np.float32)
        shrink = self.shrink
        if shrink is None:
            shrink = 100.0 if self.similarity == "pearson_baseline" else 0.0
        keep = train.shape[0] if self.max_neighbors is None else int(self.max_neighbors)
        graph = _knn(
            q,
            train,
            keep,
            kind,
            shrink=float(shrink),
            min_support=int(self.min_support),
            num_threads=self.num_threads,
        )
        graph.data[graph.data < 0] = 0
        graph.eliminate_zeros()
        graph.sort_indices()
        return _csr32(graph)

    # ----------------------------------------------------------------- public
    def predict(self, users: Any, items: Any) -> np.ndarray:
        """Predicted ratings of (user, item) pairs given as raw ids (scalars broadcast).

        Returns float64 ratings clipped to the training range. Unknown ids raise ``KeyError``.
        Thread-safe.
        """
        self._check_fitted()
        uidx = self.users_.index(users)
        iidx = self.items_.index(items)
        uidx, iidx = _broadcast_pairs(uidx, iidx)
        return self._clip(self._estimate(uidx, iidx)[0])

    def _score_pairs(self, uidx: np.ndarray, iidx: np.ndarray) -> np.ndarray:
        # ranking score: the unclipped estimate (see Notes)
        return self._estimate(uidx, iidx)[0].astype(np.float32)

    def _score_block(self, user_indices: np.ndarray | None, rows: sp.csr_matrix) -> np.ndarray:
        n, m = rows.shape[0], len(self.items_)
        uidx = np.repeat(np.arange(n), m)
        iidx = np.tile(np.arange(m), n)
        if user_indices is not None:
            est = self._estimate(np.asarray(user_indices)[uidx], iidx)[0]
        else:
            bu = self._new_user_bias(_csr32(rows))
            est = self._estimate(uidx, iidx, rows=rows, user_bias=bu)[0]
        return est.reshape(n, m).astype(np.float32)

    def _similar_items_indices(
        self, item_indices: np.ndarray, k: int, allow: np.ndarray | None, deny: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.user_based:
            raise TypeError("a user-based KNNRating has no item similarity.")
        graph = self._train_context()[1]
        block = graph[item_indices].toarray().astype(np.float32)
        exclude = [np.asarray([i]) for i in item_indices]
        return search.topk(block, k=k, exclude=exclude, allow=allow, deny=deny)

    def explain(self, user: Any, item: Any) -> Explanation:
        """The neighbours used for the prediction of (user, item) and their share of it.

        Item-based: the user's rated items (ids) among the ``k`` most similar to ``item``;
        user-based: the neighbour users who rated ``item``. Each contribution is
        ``s * residual / Σ s`` so they add up to the neighbourhood term; ``score`` is the
        (clipped) prediction.
        """
        self._check_fitted()
        u = int(self.users_.index(user)[0])
        i = int(self.items_.index(item)[0])
        ctx, graph = self._train_context()
        x, y = (u, i) if self.user_based else (i, u)
        srow, crow = graph[x], ctx[y]
        common, a_pos, b_pos = np.intersect1d(srow.indices, crow.indices, return_indices=True)
        sims = srow.data[a_pos].astype(np.float64)
        res = crow.data[b_pos].astype(np.float64)
        pos = sims > 0
        common, sims, res = common[pos], sims[pos], res[pos]
        order = np.lexsort((common, -sims))[: int(self.k)]
        common, sims, res = common[order], sims[order], res[order]
        contrib = sims * res / sims.sum() if sims.size else sims
        vocab = self.users_ if self.user_based else self.items_
        score = float(self._clip(self._estimate(np.asarray([u]), np.asarray([i]))[0])[0])
        return _sorted_explanation(
            user, item, score, vocab.ids(common), contrib, "user" if self.user_based else "item"
        )


def _broadcast_pairs(uidx: np.ndarray, iidx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if uidx.size == 1 and iidx.size > 1:
        uidx = np.repeat(uidx, iidx.size)
    if iidx.size == 1 and uidx.size > 1:
        iidx = np.repeat(iidx, uidx.size)
    if uidx.size != iidx.size:
        raise ValueError(
            f"users and items must have the same length; got {uidx.size} and {iidx.size}."
        )
    return uidx, iidx
