"""Beyond-accuracy metrics: coverage, novelty, diversity, personalization, Gini,
serendipity.

``recommended`` is the same ``(n_users, width)`` integer array as in
:mod:`tastebud.metrics.ranking` (``-1`` = empty slot; a repeated item within a
row raises ``ValueError``). ``k=None`` evaluates the whole width; an integer
``k`` evaluates the first ``k`` columns (``k > width`` = padding).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from tastebud.kernels import metrics as _k
from tastebud.metrics import _checks as _c

__all__ = [
    "catalog_coverage",
    "gini",
    "intra_list_diversity",
    "novelty",
    "personalization",
    "popularity_share",
    "serendipity",
]


def _prefix(recommended: Any, n_items: int, k: int | None) -> tuple[np.ndarray, int]:
    """Validated prefix ``[:, :min(k, width)]`` and the nominal list length (k or width)."""
    if k is not None:
        k = _c.check_k(k)
    rec = _c.check_recommended(recommended, n_items, k)
    length = rec.shape[1] if k is None else k
    return rec[:, : min(length, rec.shape[1])], length


def _exposure(rec: np.ndarray, n_items: int) -> np.ndarray:
    """Number of lists that contain each item (``c_i``)."""
    items = rec[rec >= 0]
    return np.bincount(items, minlength=n_items)


def catalog_coverage(recommended: Any, n_items: int, *, k: int | None = None) -> float:
    r"""Share of the catalogue recommended to at least one user.

    :math:`\mathrm{coverage} = |\bigcup_u L_u| / n_{items}`.

    Parameters
    ----------
    recommended : ndarray of int, shape (n_users, width)
        Item indices, ``-1`` = empty slot.
    n_items : int
        Catalogue size.
    k : int, optional
        Evaluate only the first ``k`` columns.

    Returns
    -------
    float in [0, 1]

    Raises
    ------
    ValueError
        Bad ``n_items``/``k``, item index outside ``[-1, n_items)``, repeated item.
    """
    n_items = _c.check_n_items(n_items)
    rec, _ = _prefix(recommended, n_items, k)
    return float(np.count_nonzero(_exposure(rec, n_items))) / n_items


def gini(recommended: Any, n_items: int, *, k: int | None = None) -> float:
    r"""Gini index of item exposure (0 = every item recommended equally often).

    With :math:`c_{(1)} \le \dots \le c_{(n)}` the exposure counts (number of lists
    containing the item) of all :math:`n = n_{items}` items, never-recommended
    items included:

    .. math:: G = \frac{\sum_{i=1}^{n} (2i - n - 1)\, c_{(i)}}{n \sum_{i} c_{(i)}}

    which lies in :math:`[0, 1 - 1/n]`. NaN when no item is recommended.

    Parameters
    ----------
    recommended : ndarray of int, shape (n_users, width)
    n_items : int
    k : int, optional

    Returns
    -------
    float
    """
    n_items = _c.check_n_items(n_items)
    rec, _ = _prefix(recommended, n_items, k)
    counts = np.sort(_exposure(rec, n_items)).astype(np.float64)
    total = counts.sum()
    if total == 0:
        return float("nan")
    ranks = np.arange(1, n_items + 1, dtype=np.float64)
    return float(np.dot(2.0 * ranks - n_items - 1.0, counts) / (n_items * total))


def popularity_share(interactions: Any, smoothing: float = 0.0) -> np.ndarray:
    r"""Share of users who interacted with each item, :math:`p(i) = |U_i| / n_{users}`.

    The input of :func:`novelty`. Any stored non-zero counts as an interaction. With
    ``smoothing`` :math:`s > 0`, :math:`p(i) = (|U_i| + s) / (n_{users} + s)` (additive
    smoothing), so items nobody interacted with (new items in a temporal split) get a small
    positive share instead of 0, for which novelty is undefined.

    Parameters
    ----------
    interactions : scipy.sparse matrix, shape (n_users, n_items)
    smoothing : float
        Pseudo-count added to every item (and to the number of users); 0 = raw shares.

    Returns
    -------
    ndarray of float64, shape (n_items,)
    """
    if not isinstance(interactions, (sp.spmatrix, sp.sparray)):
        raise TypeError(
            f"interactions must be a scipy.sparse matrix; got {type(interactions).__name__}."
        )
    csr = sp.csr_array(interactions)
    if not csr.has_canonical_format:
        csr = csr.copy()
        csr.sum_duplicates()
    n_users, n_items = csr.shape
    if n_users == 0:
        raise ValueError("interactions must have at least one user (row).")
    if isinstance(smoothing, bool) or not np.isfinite(smoothing) or smoothing < 0:
        raise ValueError(f"smoothing must be a finite number >= 0; got {smoothing!r}.")
    nz = csr.data != 0
    counts = np.bincount(csr.indices[nz], minlength=n_items)
    return (counts + float(smoothing)) / (float(n_users) + float(smoothing))


def novelty(
    recommended: Any,
    item_popularity: Any,
    *,
    k: int | None = None,
    reduce: _c.Reduce = "mean",
) -> float | np.ndarray:
    r"""Mean self-information of the recommended items.

    .. math:: \mathrm{novelty}_u = \frac{1}{|L_u|} \sum_{i \in L_u} -\log_2 p(i)

    with :math:`p(i)` the share of users who interacted with item :math:`i`
    (:func:`popularity_share`) and :math:`|L_u|` the non-empty slots of the list.

    Parameters
    ----------
    recommended : ndarray of int, shape (n_users, width)
    item_popularity : array_like of float, shape (n_items,)
        :math:`p(i)` in [0, 1]. Every *recommended* item needs :math:`p(i) > 0`
        (its self-information is otherwise infinite): ``ValueError`` names it.
    k : int, optional
    reduce : {"mean", "none"}, default "mean"
        Mean over users with a non-empty list, or per-user values (NaN for empty lists).

    Returns
    -------
    float or ndarray of float64, shape (n_users,)
    """
    _c.check_choice(reduce, "reduce", ("mean", "none"))
    p = np.asarray(item_popularity, dtype=np.float64)
    if p.ndim != 1 or p.size == 0:
        raise ValueError(
            f"item_popularity must be a non-empty 1-D array (n_items,); got shape {p.shape}."
        )
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("item_popularity must hold shares in [0, 1] (no NaN).")
    rec, _ = _prefix(recommended, p.size, k)
    valid = rec >= 0
    pr = p[np.where(valid, rec, 0)]
    zero = valid & (pr == 0)
    if zero.any():
        u, j = np.argwhere(zero)[0]
        raise ValueError(
            f"item_popularity is 0 for recommended item {int(rec[u, j])} (row {int(u)}); "
            "novelty needs p(i) > 0 for every recommended item."
        )
    info = np.where(valid, -np.log2(np.where(valid, pr, 1.0)), 0.0)
    n = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = info.sum(axis=1) / n
    values[n == 0] = np.nan
    return _c.reduce_values(values, reduce)


def intra_list_diversity(
    recommended: Any,
    item_features: Any,
    *,
    k: int | None = None,
    reduce: _c.Reduce = "mean",
) -> float | np.ndarray:
    r"""Intra-list diversity: one minus the mean pairwise cosine similarity of a list.

    .. math::

        ILD_u = 1 - \frac{1}{\binom{m}{2}} \sum_{i < j \in L_u} \cos(f_i, f_j)

    with :math:`m = |L_u|` (non-empty slots) and :math:`f_i` the feature row of
    item :math:`i`; the cosine with an all-zero row is 0. Computed without a pair
    loop: with unit rows :math:`\hat f_i` and :math:`S_u = \sum_{i \in L_u} \hat f_i`,
    :math:`\sum_{i<j} \cos = (\lVert S_u \rVert^2 - z_u)/2`, :math:`z_u` the number
    of items with a non-zero row.

    Parameters
    ----------
    recommended : ndarray of int, shape (n_users, width)
    item_features : ndarray or scipy.sparse matrix, shape (n_items, n_features)
    k : int, optional
    reduce : {"mean", "none"}, default "mean"
        Mean over users with at least two items, or per-user values (NaN below two).

    Returns
    -------
    float or ndarray of float64, shape (n_users,)
    """
    _c.check_choice(reduce, "reduce", ("mean", "none"))
    is_sparse = isinstance(item_features, (sp.spmatrix, sp.sparray))
    feats = (
        sp.csr_array(item_features, dtype=np.float64)
        if is_sparse
        else np.asarray(item_features, dtype=np.float64)
    )
    if feats.ndim != 2 or feats.shape[0] == 0:
        raise ValueError(
            f"item_features must be 2-D (n_items, n_features); got shape {feats.shape}."
        )
    data = feats.data if is_sparse else feats
    if not np.isfinite(data).all():
        raise ValueError("item_features must be finite (no NaN or inf).")
    n_items = feats.shape[0]
    rec, _ = _prefix(recommended, n_items, k)
    if is_sparse:
        norms = np.sqrt(np.asarray(feats.multiply(feats).sum(axis=1)).ravel())
    else:
        norms = np.linalg.norm(feats, axis=1)
    nonzero = norms > 0
    inv = np.where(nonzero, 1.0 / np.where(nonzero, norms, 1.0), 0.0)
    unit = sp.diags_array(inv) @ feats if is_sparse else feats * inv[:, None]
    n_users = rec.shape[0]
    valid = rec >= 0
    rows = np.repeat(np.arange(n_users), valid.sum(axis=1))
    cols = rec[valid]
    indicator = sp.csr_array((np.ones(cols.size), (rows, cols)), shape=(n_users, n_items))
    sums = indicator @ unit
    if is_sparse:
        sq = np.asarray(sums.multiply(sums).sum(axis=1)).ravel()
    else:
        sq = np.einsum("ij,ij->i", sums, sums)
    z = indicator @ nonzero.astype(np.float64)
    m = valid.sum(axis=1).astype(np.float64)
    pairs = m * (m - 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        values = 1.0 - (sq - z) / 2.0 / pairs
    values[m < 2] = np.nan
    return _c.reduce_values(values, reduce)


def personalization(
    recommended: Any,
    *,
    k: int | None = None,
    n_pairs: int | None = None,
    random_state: Any = None,
) -> float:
    r"""One minus the mean overlap of two users' lists, over all pairs of users.

    .. math::

        \mathrm{pers} = 1 - \frac{1}{\binom{n}{2}} \sum_{a < b} \frac{|L_a \cap L_b|}{k}

    with :math:`k` the list length (``k`` or the array width; padding counts as
    length, so lists of length k are the intended input). Exact in
    O(n_users · k): :math:`\sum_{a<b} |L_a \cap L_b| = \sum_i \binom{c_i}{2}` where
    :math:`c_i` is the number of lists containing item :math:`i`.

    Parameters
    ----------
    recommended : ndarray of int, shape (n_users, width)
        At least 2 rows.
    k : int, optional
    n_pairs : int, optional
        Estimate from ``n_pairs`` random pairs of distinct users instead (with
        replacement), e.g. to match a library that samples.
    random_state : int, numpy Generator or None
        Seed of the pair sampling.

    Returns
    -------
    float in [0, 1]
    """
    arr = np.asarray(recommended)
    n_items = int(arr.max()) + 1 if arr.size and arr.dtype.kind in "iu" else 1
    rec, length = _prefix(recommended, max(n_items, 1), k)
    n_users = rec.shape[0]
    if n_users < 2:
        raise ValueError(f"personalization needs at least 2 users (rows); got {n_users}.")
    if n_pairs is None:
        c = _exposure(rec, max(n_items, 1)).astype(np.float64)
        shared = float(np.sum(c * (c - 1) / 2))
        total_pairs = n_users * (n_users - 1) / 2
        return 1.0 - shared / (total_pairs * length)
    n_pairs = _c.check_k(n_pairs, "n_pairs")
    rng = np.random.default_rng(random_state)
    first = rng.integers(0, n_users, size=n_pairs)
    second = rng.integers(0, n_users - 1, size=n_pairs)
    second += second >= first
    sorted_lists = np.sort(rec, axis=1)
    out = np.empty(n_pairs, dtype=np.int64)
    parallel = _c.use_parallel(n_pairs * max(rec.shape[1], 1))
    kernel = _k.pair_overlap_parallel if parallel else _k.pair_overlap_serial
    kernel(sorted_lists, first, second, _c.n_chunks_for(n_pairs, parallel), out)
    return 1.0 - float(out.mean()) / length


def serendipity(
    recommended: Any,
    relevant: Any,
    baseline_recommended: Any,
    *,
    k: int | None = None,
    denominator: Literal["k", "returned"] = "k",
    reduce: _c.Reduce = "mean",
    empty: Literal["nan", "zero"] = "nan",
) -> float | np.ndarray:
    r"""Share of the list that is relevant *and* not recommended by a baseline.

    .. math::

        \mathrm{ser}_u = \frac{|\{i \in L_u : i \in T_u,\ i \notin B_u\}|}{k}

    with :math:`B_u` the baseline's list for the user (typically a popularity
    recommender), so :math:`\mathrm{ser}_u \le P@k`. ``denominator="returned"``
    divides by the non-empty slots :math:`|L_u|` instead.

    Parameters
    ----------
    recommended : ndarray of int, shape (n_users, width)
    relevant : scipy.sparse matrix, shape (n_users, n_items)
    baseline_recommended : ndarray of int, shape (n_users, width_b) or (width_b,)
        The baseline's lists (all columns used); a 1-D array is the same list for
        every user (e.g. the most popular items).
    k : int, optional
        Cut-off for ``recommended``; default its width.
    denominator : {"k", "returned"}, default "k"
    reduce : {"mean", "none"}, default "mean"
    empty : {"nan", "zero"}, default "nan"
        Users without relevant items: NaN (excluded from the mean) or 0.

    Returns
    -------
    float or ndarray of float64, shape (n_users,)
    """
    _c.check_choice(reduce, "reduce", ("mean", "none"))
    _c.check_choice(denominator, "denominator", ("k", "returned"))
    rel = _c.check_csr(relevant, "relevant")
    n_users, n_items = rel.shape
    rec, length = _prefix(recommended, n_items, k)
    if rec.shape[0] != n_users:
        raise ValueError(
            f"recommended has {rec.shape[0]} rows but relevant has {n_users}; they must match."
        )
    base = np.asarray(baseline_recommended)
    one_list = base.ndim == 1
    base = _c.check_recommended(
        base[None, :] if one_list else base, n_items, None, "baseline_recommended"
    )
    if not one_list and base.shape[0] != n_users:
        raise ValueError(
            f"baseline_recommended has {base.shape[0]} rows but relevant has {n_users}; "
            "pass one row per user or a 1-D list shared by all users."
        )
    base_sorted = np.sort(base, axis=1)
    if one_list:
        base_sorted = np.ascontiguousarray(np.broadcast_to(base_sorted, (n_users, base.shape[1])))
    out = np.empty(n_users, dtype=np.int64)
    parallel = _c.use_parallel(n_users * max(rec.shape[1], 1))
    kernel = _k.serendipity_counts_parallel if parallel else _k.serendipity_counts_serial
    kernel(
        np.ascontiguousarray(rec), rec.shape[1], rel.indptr, rel.indices, base_sorted,
        _c.n_chunks_for(n_users, parallel), out,
    )  # fmt: skip
    if denominator == "k":
        values = out / float(length)
    else:
        returned = (rec >= 0).sum(axis=1)
        values = np.where(returned > 0, out / np.maximum(returned, 1), 0.0)
    values = _c.empty_rows_to(values.astype(np.float64), np.diff(rel.indptr) == 0, empty)
    return _c.reduce_values(values, reduce)
