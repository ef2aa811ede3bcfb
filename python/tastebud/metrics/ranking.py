"""Top-k ranking metrics over arrays of recommendations.

Inputs shared by every function

``recommended``
    ``(n_users, width)`` integer array of item indices, best first. ``-1`` marks an
    empty slot (padding for short lists); an empty slot keeps its rank position
    and never counts as a hit. Only the first ``k`` columns are evaluated; ``k``
    larger than ``width`` is allowed and treated as padding. An item may appear at
    most once in a row's evaluated prefix: a repeat raises ``ValueError``.
``relevant``
    ``(n_users, n_items)`` scipy.sparse matrix; stored non-zero entries are the
    relevant (test) items ``T_u``; their values are gains for graded NDCG. Values
    must be finite and ``>= 0`` (explicit zeros are ignored).

Users with no relevant item (``|T_u| = 0``) get NaN and are left out of the mean
(tastebud's evaluation protocol: metrics over users with test items); pass
``empty="zero"`` to score them 0 and count them instead.

The per-user work is one fused Numba pass (:func:`ranking_metrics`): every
public function here calls it, so asking for several metrics at once through
:func:`ranking_metrics` costs the same as asking for one.
"""

from __future__ import annotations

from typing import Any, Literal

import numba
import numpy as np

from tastebud.kernels import metrics as _k
from tastebud.metrics import _checks as _c

__all__ = [
    "RANKING_METRICS",
    "auc",
    "f1_at_k",
    "hit_rate_at_k",
    "map_at_k",
    "mrr_at_k",
    "ndcg_at_k",
    "precision_at_k",
    "ranking_metrics",
    "recall_at_k",
]

RANKING_METRICS = ("precision", "recall", "f1", "ndcg", "map", "mrr", "hit_rate")

Gains = Literal["binary", "graded"]
GainFunction = Literal["exponential", "linear"]
PrecisionDenominator = Literal["k", "returned"]
RecallDenominator = Literal["relevant", "min_k"]
Empty = Literal["nan", "zero"]

# The fused kernel uses n_items-sized marker arrays when
# n_items <= _MARKER_WORK_FACTOR * (nnz + n_users * k) + _MARKER_SLACK, else binary search.
_MARKER_WORK_FACTOR = 4
_MARKER_SLACK = 4096


def _components(
    recommended: Any, relevant: Any, k: int, gains: str, gain_function: str
) -> tuple[np.ndarray, int]:
    """Validate, then run the fused kernel. Returns the ``(n_users, 7)`` statistics."""
    k = _c.check_k(k)
    _c.check_choice(gains, "gains", ("binary", "graded"))
    _c.check_choice(gain_function, "gain_function", ("exponential", "linear"))
    rel = _c.check_csr(relevant, "relevant")
    n_users, n_items = rel.shape
    rec = _c.check_recommended(recommended, n_items, k, check_rows=False)
    if rec.shape[0] != n_users:
        raise ValueError(
            f"recommended has {rec.shape[0]} rows but relevant has {n_users} (n_users); "
            "they must match."
        )
    m = min(k, rec.shape[1])
    counts = np.diff(rel.indptr)
    max_nnz = int(counts.max()) if n_users else 0
    n_disc = max(m, min(k, max_nnz), 1)
    discounts = 1.0 / np.log2(np.arange(2, n_disc + 2, dtype=np.float64))
    if gains == "binary":
        mode, data = _k.GAIN_BINARY, np.empty(0, dtype=np.float64)
    else:
        mode = _k.GAIN_EXPONENTIAL if gain_function == "exponential" else _k.GAIN_LINEAR
        data = np.ascontiguousarray(rel.data, dtype=np.float64)
    out = np.empty((n_users, _k.N_RANKING_COLUMNS), dtype=np.float64)
    flags = np.zeros(n_users, dtype=np.int8)
    parallel = _c.use_parallel(n_users * max(m, 1))
    kernel = _k.ranking_components_parallel if parallel else _k.ranking_components_serial
    # One chunk per thread: each chunk owns two n_items marker arrays. Markers pay off
    # unless the catalogue dwarfs the work (then: binary search in the CSR row).
    n_chunks = numba.get_num_threads() if parallel else 1
    n_chunks = max(1, min(n_chunks, n_users))
    use_marker = n_items <= _MARKER_WORK_FACTOR * (rel.nnz + n_users * m) + _MARKER_SLACK
    kernel(
        rec, k, n_items, rel.indptr, rel.indices, data, mode, discounts, max_nnz, use_marker,
        n_chunks, out, flags,
    )  # fmt: skip
    if m:
        _c.raise_row_flags(rec, m, n_items, flags)
    return out, k


def _derive(
    name: str,
    out: np.ndarray,
    k: int,
    precision_denominator: str,
    recall_denominator: str,
    map_denominator: str,
) -> np.ndarray:
    hits = out[:, _k.HITS]
    n_rel = out[:, _k.N_RELEVANT]
    with np.errstate(divide="ignore", invalid="ignore"):
        if name in ("precision", "f1"):
            if precision_denominator == "k":
                precision = hits / k
            else:
                returned = out[:, _k.RETURNED]
                precision = np.where(returned > 0, hits / np.maximum(returned, 1), 0.0)
            if name == "precision":
                return precision
        if name in ("recall", "f1"):
            denom = n_rel if recall_denominator == "relevant" else np.minimum(n_rel, k)
            recall = hits / denom
            if name == "recall":
                return recall
            total = precision + recall
            return np.where(hits > 0, 2.0 * precision * recall / np.where(total > 0, total, 1), 0.0)
        if name == "ndcg":
            return out[:, _k.DCG] / out[:, _k.IDCG]
        if name == "map":
            denom = n_rel if map_denominator == "relevant" else np.minimum(n_rel, k)
            return out[:, _k.AP_SUM] / denom
        if name == "mrr":
            return out[:, _k.RR].copy()
        if name == "hit_rate":
            return (hits > 0).astype(np.float64)
    raise AssertionError(name)  # pragma: no cover - names are checked by the caller


def ranking_metrics(
    recommended: Any,
    relevant: Any,
    k: int = 10,
    metrics: tuple[str, ...] | list[str] = (
        "precision",
        "recall",
        "ndcg",
        "map",
        "mrr",
        "hit_rate",
    ),
    *,
    gains: Gains = "binary",
    gain_function: GainFunction = "exponential",
    precision_denominator: PrecisionDenominator = "k",
    recall_denominator: RecallDenominator = "relevant",
    map_denominator: RecallDenominator = "min_k",
    empty: Empty = "nan",
) -> dict[str, np.ndarray]:
    r"""Several top-k ranking metrics per user, computed in one fused pass.

    For user :math:`u` with relevant set :math:`T_u`, top-k list :math:`L_u` and
    :math:`rel_i = 1` when the item at rank :math:`i` is in :math:`T_u`:

    - precision: :math:`P@k = \sum_{i \le k} rel_i / k`
    - recall: :math:`R@k = \sum_{i \le k} rel_i / |T_u|`
    - f1: :math:`2 \cdot P@k \cdot R@k / (P@k + R@k)` (0 without hits)
    - ndcg: :math:`DCG@k / IDCG@k`, :math:`DCG@k = \sum_{i \le k} g_i / \log_2(i+1)`,
      IDCG over the :math:`\min(k, |T_u|)` largest gains
    - map: :math:`AP@k = \sum_{i \le k} P@i \cdot rel_i / \min(k, |T_u|)`
    - mrr: :math:`1 / \mathrm{rank}` of the first relevant item in the top k, else 0
    - hit_rate: 1 if any of the top k is relevant, else 0

    Parameters
    ----------
    recommended : ndarray of int, shape (n_users, width)
        Item indices, best first; ``-1`` = empty slot. See the module docstring.
    relevant : scipy.sparse matrix, shape (n_users, n_items)
        Relevant items; stored values are gains (graded NDCG only).
    k : int, default 10
        Cut-off, ``>= 1``. ``k > width`` is allowed: missing slots are empty.
    metrics : sequence of str
        Any of ``"precision", "recall", "f1", "ndcg", "map", "mrr", "hit_rate"``.
    gains : {"binary", "graded"}, default "binary"
        NDCG gains: 1 for every relevant item, or the values of ``relevant``.
    gain_function : {"exponential", "linear"}, default "exponential"
        Graded gain of value :math:`v`: :math:`2^v - 1` (Burges; ranx ``ndcg_burges``)
        or :math:`v` (Järvelin; ranx ``ndcg``, scikit-learn ``ndcg_score``).
    precision_denominator : {"k", "returned"}, default "k"
        ``"k"``: hits / k even when the list is shorter or padded (what
        :mod:`tastebud.evaluation` uses).
        ``"returned"``: hits / number of non-empty slots among the first k (0 for an
        empty list), the convention of libraries that divide by the list length.
    recall_denominator : {"relevant", "min_k"}, default "relevant"
        ``"relevant"``: hits / :math:`|T_u|` (:mod:`tastebud.evaluation`, ranx).
        ``"min_k"``: hits / :math:`\min(k, |T_u|)` (a.k.a. "R-precision-style" recall of some
        libraries).
    map_denominator : {"min_k", "relevant"}, default "min_k"
        AP denominator: :math:`\min(k, |T_u|)` (:mod:`tastebud.evaluation`) or :math:`|T_u|`
        (ranx ``map``).
    empty : {"nan", "zero"}, default "nan"
        Value for users with :math:`|T_u| = 0`. NaN values are excluded from means.

    Returns
    -------
    dict of str to ndarray of float64, shape (n_users,)
        One per-user array per requested metric, in the requested order.

    Raises
    ------
    ValueError
        Bad ``k``, unknown metric or option, mismatched shapes, an item index outside
        ``[-1, n_items)``, a repeated item within a row, NaN/infinite/negative gains.
    TypeError
        ``recommended`` not an integer array or ``relevant`` not scipy.sparse.

    Notes
    -----
    Thread-safe: no global state is cached. Large inputs run in parallel over users.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> rec = np.array([[0, 1, 2]])
    >>> rel = sp.csr_array(np.array([[1, 0, 1, 0]]))
    >>> out = ranking_metrics(rec, rel, k=3, metrics=("precision", "ndcg"))
    >>> round(float(out["precision"][0]), 4), round(float(out["ndcg"][0]), 4)
    (0.6667, 0.9197)
    """
    if isinstance(metrics, str):
        metrics = (metrics,)
    unknown = [m for m in metrics if m not in RANKING_METRICS]
    if unknown or not metrics:
        raise ValueError(
            f"metrics must be a non-empty sequence of {', '.join(RANKING_METRICS)}; "
            f"got {list(metrics)!r}."
        )
    _c.check_choice(precision_denominator, "precision_denominator", ("k", "returned"))
    _c.check_choice(recall_denominator, "recall_denominator", ("relevant", "min_k"))
    _c.check_choice(map_denominator, "map_denominator", ("relevant", "min_k"))
    _c.check_choice(empty, "empty", ("nan", "zero"))
    out, k = _components(recommended, relevant, k, gains, gain_function)
    no_relevant = out[:, _k.N_RELEVANT] == 0
    result = {}
    for name in metrics:
        values = _derive(name, out, k, precision_denominator, recall_denominator, map_denominator)
        result[name] = _c.empty_rows_to(values, no_relevant, empty)
    return result


def _single(name: str, recommended: Any, relevant: Any, k: int, reduce: str, **kw: Any):
    _c.check_choice(reduce, "reduce", ("mean", "none"))
    values = ranking_metrics(recommended, relevant, k, (name,), **kw)[name]
    return _c.reduce_values(values, reduce)


_COMMON_DOC = """
    Parameters
    ----------
    recommended : ndarray of int, shape (n_users, width)
        Item indices, best first; ``-1`` = empty slot (padding).
    relevant : scipy.sparse matrix, shape (n_users, n_items)
        Relevant items per user (stored non-zeros).
    k : int, default 10
        Cut-off, ``>= 1``; ``k > width`` is treated as padding.
    reduce : {"mean", "none"}, default "mean"
        ``"mean"``: mean over users with at least one relevant item (float);
        ``"none"``: the per-user array (NaN for users without relevant items).
    empty : {"nan", "zero"}, default "nan"
        ``"zero"`` scores users without relevant items 0 and counts them in the mean.

    Returns
    -------
    float or ndarray of float64, shape (n_users,)

    Raises
    ------
    ValueError, TypeError
        See :func:`ranking_metrics`.
"""


def precision_at_k(
    recommended: Any,
    relevant: Any,
    k: int = 10,
    *,
    denominator: PrecisionDenominator = "k",
    reduce: _c.Reduce = "mean",
    empty: Empty = "nan",
) -> float | np.ndarray:
    r"""Precision at k: :math:`P@k = \frac{1}{k}\sum_{i=1}^{k} rel_i`.

    The denominator is the requested ``k`` even when a list is shorter than k or
    padded with -1 (as in :mod:`tastebud.evaluation`; ranx divides by ``k`` as well). With
    ``denominator="returned"`` it is the number of non-empty slots among the first
    ``k`` instead (0 for an empty list).
    """
    return _single(
        "precision", recommended, relevant, k, reduce, precision_denominator=denominator,
        empty=empty,
    )  # fmt: skip


def recall_at_k(
    recommended: Any,
    relevant: Any,
    k: int = 10,
    *,
    denominator: RecallDenominator = "relevant",
    reduce: _c.Reduce = "mean",
    empty: Empty = "nan",
) -> float | np.ndarray:
    r"""Recall at k: :math:`R@k = \frac{1}{|T_u|}\sum_{i=1}^{k} rel_i`.

    ``denominator="relevant"`` (default) divides by :math:`|T_u|` (:mod:`tastebud.evaluation`,
    ranx);
    ``denominator="min_k"`` divides by :math:`\min(k, |T_u|)` so a perfect list
    scores 1 even when :math:`|T_u| > k` (the convention of some libraries).
    """
    return _single(
        "recall", recommended, relevant, k, reduce, recall_denominator=denominator, empty=empty
    )


def f1_at_k(
    recommended: Any,
    relevant: Any,
    k: int = 10,
    *,
    reduce: _c.Reduce = "mean",
    empty: Empty = "nan",
) -> float | np.ndarray:
    r"""F1 at k: :math:`F1@k = \frac{2 \cdot P@k \cdot R@k}{P@k + R@k}`, 0 without hits.

    Per user, with :math:`P@k = hits/k` and :math:`R@k = hits/|T_u|`; the mean is the
    mean of per-user F1 values (not F1 of mean precision and recall).
    """
    return _single("f1", recommended, relevant, k, reduce, empty=empty)


def ndcg_at_k(
    recommended: Any,
    relevant: Any,
    k: int = 10,
    *,
    gains: Gains = "binary",
    gain_function: GainFunction = "exponential",
    reduce: _c.Reduce = "mean",
    empty: Empty = "nan",
) -> float | np.ndarray:
    r"""Normalized discounted cumulative gain at k.

    .. math::

        DCG@k = \sum_{i=1}^{k} \frac{g_i}{\log_2(i + 1)}, \qquad
        NDCG@k = \frac{DCG@k}{IDCG@k}

    where :math:`g_i` is the gain of the item at rank :math:`i` (0 if not relevant)
    and :math:`IDCG@k` is the DCG of the :math:`\min(k, |T_u|)` largest gains of
    :math:`T_u` in decreasing order. ``gains="binary"``: :math:`g = 1` for every
    relevant item. ``gains="graded"``: :math:`g = 2^v - 1`
    (``gain_function="exponential"``, Burges; ranx ``ndcg_burges``) or :math:`g = v`
    (``"linear"``, Järvelin; ranx ``ndcg``, scikit-learn ``ndcg_score``) for the
    stored value :math:`v`.
    """
    return _single(
        "ndcg", recommended, relevant, k, reduce, gains=gains, gain_function=gain_function,
        empty=empty,
    )  # fmt: skip


def map_at_k(
    recommended: Any,
    relevant: Any,
    k: int = 10,
    *,
    denominator: RecallDenominator = "min_k",
    reduce: _c.Reduce = "mean",
    empty: Empty = "nan",
) -> float | np.ndarray:
    r"""Mean average precision at k.

    :math:`AP@k = \frac{1}{\min(k, |T_u|)} \sum_{i=1}^{k} P@i \cdot rel_i` (as in
    :mod:`tastebud.evaluation`);
    MAP@k is its mean over users. ``denominator="relevant"`` divides by
    :math:`|T_u|` instead (ranx ``map@k``, trec_eval).
    """
    return _single(
        "map", recommended, relevant, k, reduce, map_denominator=denominator, empty=empty
    )


def mrr_at_k(
    recommended: Any,
    relevant: Any,
    k: int = 10,
    *,
    reduce: _c.Reduce = "mean",
    empty: Empty = "nan",
) -> float | np.ndarray:
    r"""Mean reciprocal rank at k: :math:`RR@k = 1/\min\{i \le k : rel_i = 1\}`, 0 if none."""
    return _single("mrr", recommended, relevant, k, reduce, empty=empty)


def hit_rate_at_k(
    recommended: Any,
    relevant: Any,
    k: int = 10,
    *,
    reduce: _c.Reduce = "mean",
    empty: Empty = "nan",
) -> float | np.ndarray:
    r"""Hit rate at k: :math:`HR@k = \mathbb{1}[\sum_{i=1}^{k} rel_i > 0]`."""
    return _single("hit_rate", recommended, relevant, k, reduce, empty=empty)


for _f in (precision_at_k, recall_at_k, f1_at_k, ndcg_at_k, map_at_k, mrr_at_k, hit_rate_at_k):
    _f.__doc__ = (_f.__doc__ or "") + _COMMON_DOC
del _f


def auc(
    scores: Any,
    relevant: Any,
    *,
    exclude: Any = None,
    n_negatives: int | None = None,
    random_state: Any = None,
    reduce: _c.Reduce = "mean",
) -> float | np.ndarray:
    r"""Area under the ROC curve per user, from full score rows.

    .. math::

        AUC_u = \frac{1}{|T_u| \, |N_u|} \sum_{p \in T_u} \sum_{n \in N_u}
        \left(\mathbb{1}[s_p > s_n] + \tfrac12 \mathbb{1}[s_p = s_n]\right)

    Positives :math:`T_u` are the relevant items; negatives :math:`N_u` are all
    other items not in ``exclude`` (typically the training items). A relevant item
    that is also excluded stays a positive. Ties count one half, as in
    scikit-learn's ``roc_auc_score``.

    Parameters
    ----------
    scores : ndarray of float, shape (n_users, n_items)
        Model scores for every item (higher = better). NaN is rejected; ±inf is allowed.
    relevant : scipy.sparse matrix, shape (n_users, n_items)
        Positives.
    exclude : scipy.sparse matrix, shape (n_users, n_items), optional
        Items that are neither positive nor negative (e.g. already seen).
    n_negatives : int, optional
        If given, :math:`N_u` is replaced by ``n_negatives`` items drawn uniformly
        with replacement from :math:`N_u` (sampled AUC, O(n_negatives) per user).
    random_state : int, numpy Generator or None
        Seed of the negative sampling. Results do not depend on the thread count.
    reduce : {"mean", "none"}, default "mean"
        Mean over users with a defined AUC (NaN per user when :math:`T_u` or
        :math:`N_u` is empty), or the per-user array.

    Returns
    -------
    float or ndarray of float64, shape (n_users,)

    Raises
    ------
    ValueError
        Shapes differ, NaN in ``scores``, bad gains, ``n_negatives < 1``.
    TypeError
        ``scores`` not a float array or a sparse argument that is not sparse.
    """
    _c.check_choice(reduce, "reduce", ("mean", "none"))
    s = np.asarray(scores)
    if s.ndim != 2:
        raise ValueError(
            f"scores must be a 2-D array of shape (n_users, n_items); got shape {s.shape}."
        )
    if s.dtype.kind not in "fiub":
        raise TypeError(f"scores must be a numeric array; got dtype {s.dtype}.")
    if s.dtype not in (np.float32, np.float64):
        s = s.astype(np.float64)
    s = np.ascontiguousarray(s)
    if np.isnan(s).any():
        raise ValueError("scores must not contain NaN.")
    rel = _c.check_csr(relevant, "relevant", s.shape)
    ex = _c.check_csr(exclude, "exclude", s.shape) if exclude is not None else None
    if ex is None:
        ex_indptr = np.zeros(s.shape[0] + 1, dtype=rel.indptr.dtype)
        ex_indices = np.empty(0, dtype=rel.indices.dtype)
    else:
        ex_indptr, ex_indices = ex.indptr, ex.indices
    n_users = s.shape[0]
    max_nnz = int(np.diff(rel.indptr).max()) if n_users else 0
    out = np.empty(n_users, dtype=np.float64)
    if n_negatives is None:
        parallel = _c.use_parallel(s.size)
        kernel = _k.auc_full_parallel if parallel else _k.auc_full_serial
        kernel(
            s, rel.indptr, rel.indices, ex_indptr, ex_indices, max_nnz,
            _c.n_chunks_for(n_users, parallel), out,
        )  # fmt: skip
    else:
        n_neg = _c.check_k(n_negatives, "n_negatives")
        seed = int(np.random.default_rng(random_state).integers(0, 2**63 - 1))
        parallel = _c.use_parallel(n_users * n_neg)
        kernel = _k.auc_sampled_parallel if parallel else _k.auc_sampled_serial
        kernel(
            s, rel.indptr, rel.indices, ex_indptr, ex_indices, n_neg, seed, max_nnz,
            _c.n_chunks_for(n_users, parallel), out,
        )  # fmt: skip
    return _c.reduce_values(out, reduce)
