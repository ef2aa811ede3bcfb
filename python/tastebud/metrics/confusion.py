"""Per-user confusion matrix of a top-k list against the relevant items."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tastebud.kernels import metrics as _k
from tastebud.metrics import _checks as _c

__all__ = ["ConfusionAtK", "confusion_at_k"]


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(num.shape, np.nan)
    has = den > 0
    out[has] = num[has] / den[has]
    return out


@dataclass(frozen=True)
class ConfusionAtK:
    """Per-user counts (int64 arrays of shape ``(n_users,)``) and derived rates.

    Rates are NaN where their denominator is 0.

    Attributes
    ----------
    tp, fp, fn, tn : ndarray of int64
        True/false positives/negatives per user.
    """

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    tn: np.ndarray

    @property
    def precision(self) -> np.ndarray:
        r""":math:`TP / (TP + FP)` — over the returned (non-excluded) items."""
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> np.ndarray:
        r""":math:`TP / (TP + FN)` (true-positive rate)."""
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def fallout(self) -> np.ndarray:
        r""":math:`FP / (FP + TN)` (false-positive rate)."""
        return _ratio(self.fp, self.fp + self.tn)

    @property
    def miss_rate(self) -> np.ndarray:
        r""":math:`FN / (TP + FN)` (false-negative rate)."""
        return _ratio(self.fn, self.tp + self.fn)

    @property
    def accuracy(self) -> np.ndarray:
        r""":math:`(TP + TN) / (TP + FP + FN + TN)`."""
        return _ratio(self.tp + self.tn, self.tp + self.fp + self.fn + self.tn)

    def mean(self) -> dict[str, float]:
        """Mean of every rate over the users where its denominator is non-zero (NaN if none).

        Precision, fallout and accuracy are defined for users without relevant items (their
        precision is 0), so they count here, whereas :func:`precision_at_k` and the other
        ranking metrics skip such users; to compare the two, keep only the users with
        relevant items (e.g. ``ConfusionAtK(*(a[mask] for a in (c.tp, c.fp, c.fn, c.tn)))``
        with ``mask = (c.tp + c.fn) > 0``).
        """
        return {
            name: _c.reduce_values(getattr(self, name), "mean")
            for name in ("precision", "recall", "fallout", "miss_rate", "accuracy")
        }


def confusion_at_k(
    recommended: Any,
    relevant: Any,
    n_items: int | None = None,
    *,
    k: int = 10,
    exclude: Any = None,
) -> ConfusionAtK:
    r"""Per-user TP, FP, FN, TN of the top-k list over the catalogue minus excluded items.

    For user :math:`u` with universe :math:`U_u = \{0..n_{items}-1\} \setminus E_u`
    (:math:`E_u` = ``exclude`` row, e.g. training items), list :math:`L'_u = L_u \cap U_u`
    (first k, empty slots dropped) and relevant set :math:`T'_u = T_u \cap U_u`:

    .. math::

        TP = |L' \cap T'|,\quad FP = |L'| - TP,\quad FN = |T'| - TP,\quad
        TN = |U_u| - TP - FP - FN

    Derived rates (properties of the result): precision :math:`TP/(TP+FP)`, recall
    :math:`TP/(TP+FN)`, fallout :math:`FP/(FP+TN)`, miss rate :math:`FN/(TP+FN)`,
    accuracy :math:`(TP+TN)/|U_u|`. Note this precision divides by the returned
    length, unlike :func:`~tastebud.metrics.precision_at_k` (which divides by k).

    Parameters
    ----------
    recommended : ndarray of int, shape (n_users, width)
        Item indices, ``-1`` = empty slot; no repeated item within the first k.
    relevant : scipy.sparse matrix, shape (n_users, n_items)
    n_items : int, optional
        Catalogue size; defaults to ``relevant.shape[1]`` and must equal it if given.
    k : int, default 10
    exclude : scipy.sparse matrix, shape (n_users, n_items), optional
        Items removed from each user's universe (and from their list and relevant set).

    Returns
    -------
    ConfusionAtK

    Raises
    ------
    ValueError
        Mismatched shapes or ``n_items``, bad ``k``, out-of-range or repeated items.
    """
    k = _c.check_k(k)
    rel = _c.check_csr(relevant, "relevant")
    n_users, n_rel_items = rel.shape
    if n_items is not None and _c.check_n_items(n_items) != n_rel_items:
        raise ValueError(
            f"n_items is {n_items} but relevant has {n_rel_items} columns; they must match."
        )
    rec = _c.check_recommended(recommended, n_rel_items, k)
    if rec.shape[0] != n_users:
        raise ValueError(
            f"recommended has {rec.shape[0]} rows but relevant has {n_users}; they must match."
        )
    if exclude is None:
        ex_indptr = np.zeros(n_users + 1, dtype=rel.indptr.dtype)
        ex_indices = np.empty(0, dtype=rel.indices.dtype)
    else:
        ex = _c.check_csr(exclude, "exclude", rel.shape)
        ex_indptr, ex_indices = ex.indptr, ex.indices
    out = np.empty((n_users, 4), dtype=np.int64)
    parallel = _c.use_parallel(n_users * max(min(k, rec.shape[1]), 1))
    kernel = _k.confusion_counts_parallel if parallel else _k.confusion_counts_serial
    kernel(
        rec, k, rel.indptr, rel.indices, ex_indptr, ex_indices, n_rel_items,
        _c.n_chunks_for(n_users, parallel), out,
    )  # fmt: skip
    return ConfusionAtK(
        tp=out[:, 0].copy(), fp=out[:, 1].copy(), fn=out[:, 2].copy(), tn=out[:, 3].copy()
    )
