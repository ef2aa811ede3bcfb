"""Rating-prediction error metrics: MAE, MSE, RMSE.

Plain numpy (these are memory-bound reductions; a kernel would not be faster).
By default the error is pooled over all rating rows (micro average, as
scikit-learn and Surprise compute it). With ``users=`` the error is computed per
user and ``reduce="mean"`` averages users (macro average).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tastebud.metrics import _checks as _c

__all__ = ["mae", "mse", "rmse"]


def _errors(
    y_true: Any, y_pred: Any, users: Any, n_users: int | None
) -> tuple[np.ndarray, np.ndarray | None, int]:
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    for name, a in (("y_true", t), ("y_pred", p)):
        if a.ndim != 1:
            raise ValueError(f"{name} must be a 1-D array; got shape {a.shape}.")
        if a.dtype.kind not in "fiub":
            raise TypeError(f"{name} must be numeric; got dtype {a.dtype}.")
        if a.dtype.kind == "f" and np.isnan(a).any():
            raise ValueError(f"{name} must not contain NaN.")
    if t.shape != p.shape:
        raise ValueError(
            f"y_true and y_pred must have the same length; got {t.shape[0]} and {p.shape[0]}."
        )
    if t.size == 0:
        raise ValueError("y_true and y_pred must not be empty.")
    diff = t.astype(np.float64) - p.astype(np.float64)
    if not np.isfinite(diff).all():
        raise ValueError("y_true and y_pred must be finite.")
    if users is None:
        if n_users is not None:
            raise ValueError("n_users is only meaningful together with users=.")
        return diff, None, 0
    u = np.asarray(users)
    if u.shape != t.shape or u.dtype.kind not in "iu":
        raise ValueError(
            f"users must be a 1-D integer array with one user index per rating "
            f"({t.shape[0]}); got dtype {u.dtype} and shape {u.shape}."
        )
    if u.min() < 0:
        raise ValueError(f"users must be >= 0; got {u.min()}.")
    size = int(u.max()) + 1
    if n_users is not None:
        if int(n_users) < size:
            raise ValueError(f"users holds index {size - 1} but n_users is {n_users}.")
        size = int(n_users)
    return diff, u.astype(np.intp, copy=False), size


def _per_user(values: np.ndarray, users: np.ndarray, size: int) -> np.ndarray:
    counts = np.bincount(users, minlength=size).astype(np.float64)
    sums = np.bincount(users, weights=values, minlength=size)
    out = np.full(size, np.nan)
    has = counts > 0
    out[has] = sums[has] / counts[has]
    return out


_DOC = """
    Parameters
    ----------
    y_true, y_pred : array_like of float, shape (n_ratings,)
        True and predicted ratings. NaN (and ±inf) raise ``ValueError``.
    users : array_like of int, shape (n_ratings,), optional
        User index of each rating. If given, the error is computed per user.
    n_users : int, optional
        Length of the per-user result (default ``users.max() + 1``).
    reduce : {"mean", "none"}, default "mean"
        With ``users``: mean over users that have ratings (macro average) or the
        per-user array (NaN for users without ratings). Without ``users`` the pooled
        value is returned either way.

    Returns
    -------
    float or ndarray of float64, shape (n_users,)

    Raises
    ------
    ValueError
        Different lengths, empty input, NaN/inf, bad ``users``.
"""


def mse(
    y_true: Any,
    y_pred: Any,
    *,
    users: Any = None,
    n_users: int | None = None,
    reduce: _c.Reduce = "mean",
) -> float | np.ndarray:
    r"""Mean squared error :math:`\frac{1}{n}\sum_j (y_j - \hat y_j)^2`."""
    _c.check_choice(reduce, "reduce", ("mean", "none"))
    diff, u, size = _errors(y_true, y_pred, users, n_users)
    if u is None:
        return float(np.mean(diff * diff))
    return _c.reduce_values(_per_user(diff * diff, u, size), reduce)


def rmse(
    y_true: Any,
    y_pred: Any,
    *,
    users: Any = None,
    n_users: int | None = None,
    reduce: _c.Reduce = "mean",
) -> float | np.ndarray:
    r"""Root mean squared error :math:`\sqrt{\frac{1}{n}\sum_j (y_j - \hat y_j)^2}`.

    Per user (``users=``) it is the root of each user's MSE; the mean is the mean
    of those roots.
    """
    _c.check_choice(reduce, "reduce", ("mean", "none"))
    diff, u, size = _errors(y_true, y_pred, users, n_users)
    if u is None:
        return float(np.sqrt(np.mean(diff * diff)))
    return _c.reduce_values(np.sqrt(_per_user(diff * diff, u, size)), reduce)


def mae(
    y_true: Any,
    y_pred: Any,
    *,
    users: Any = None,
    n_users: int | None = None,
    reduce: _c.Reduce = "mean",
) -> float | np.ndarray:
    r"""Mean absolute error :math:`\frac{1}{n}\sum_j |y_j - \hat y_j|`."""
    _c.check_choice(reduce, "reduce", ("mean", "none"))
    diff, u, size = _errors(y_true, y_pred, users, n_users)
    if u is None:
        return float(np.mean(np.abs(diff)))
    return _c.reduce_values(_per_user(np.abs(diff), u, size), reduce)


for _f in (mse, rmse, mae):
    _f.__doc__ = (_f.__doc__ or "") + _DOC
del _f
