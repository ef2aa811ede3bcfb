"""Train/test splits of :class:`~tastebud.data.Interactions`.

Every split returns ``(train, test)`` sharing the input's vocabularies (so user and item
indices align across both and with the input) and partitions the stored interactions:
each one, with its weight and timestamp, lands in exactly one of ``train`` and ``test``.
All splits are vectorized (sorts and ranks over the CSR arrays, no per-user loop).
"""

from __future__ import annotations

import datetime
from typing import Any

import numpy as np

from ._interactions import Interactions
from ._sorting import lexsort
from ._validation import as_timestamps, check_fraction, check_int, describe

__all__ = ["kfold", "last_n", "leave_last_out", "random_holdout", "temporal"]


def _check_interactions(inter: Any) -> Interactions:
    if not isinstance(inter, Interactions):
        raise TypeError(f"inter must be an Interactions; got {describe(inter)}.")
    return inter


def _rng(random_state: Any) -> np.random.Generator:
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None or (
        isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool)
    ):
        return np.random.default_rng(random_state)
    raise TypeError(
        f"random_state must be an int, None or a numpy Generator; got {describe(random_state)}."
    )


def _split(inter: Interactions, test_mask: np.ndarray) -> tuple[Interactions, Interactions]:
    return inter._take(~test_mask), inter._take(test_mask)


def _tail_mask(inter: Interactions, n_test_per_user: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Mask of the last ``n_test_per_user[u]`` entries of each user when sorted by ``key``.

    One stable sort by (user, key), ties in ``key`` kept in CSR order (by item index). Users
    stay contiguous, so the rank of a sorted entry within its user is its position minus
    ``indptr[user]``.
    """
    rows = inter.row_indices()
    indptr = np.asarray(inter.matrix.indptr, dtype=np.int64)
    counts = np.diff(indptr)
    order = lexsort([rows, key])
    sorted_rows = rows[order]
    rank = np.arange(rows.size, dtype=np.int64) - indptr[sorted_rows]
    mask = np.zeros(rows.size, dtype=bool)
    mask[order] = rank >= (counts - n_test_per_user)[sorted_rows]
    return mask


def random_holdout(
    inter: Interactions,
    test_fraction: float = 0.2,
    *,
    min_interactions: int = 5,
    random_state: int | np.random.Generator | None = 42,
) -> tuple[Interactions, Interactions]:
    """Per-user random holdout (the split of tastebud's evaluation protocol and benchmarks).

    Each user with at least ``min_interactions`` interactions puts
    ``max(1, round(test_fraction * n_u))`` random ones in test (rounding half up), but at
    most ``n_u - 1`` so every such user keeps one training interaction. Users with fewer
    interactions keep all of them in train.

    Parameters
    ----------
    inter : Interactions
        Data to split.
    test_fraction : float
        In (0, 1).
    min_interactions : int
        At least 2.
    random_state : int, Generator or None
        Seed; the same seed gives the same split.

    Returns
    -------
    train, test : Interactions
        Same vocabularies as ``inter``.

    Examples
    --------
    >>> from tastebud.data import datasets
    >>> data = datasets.synthetic(200, 100, 5000)
    >>> train, test = random_holdout(data.interactions)
    >>> train.nnz + test.nnz == data.interactions.nnz
    True
    """
    inter = _check_interactions(inter)
    frac = check_fraction(test_fraction, "test_fraction")
    min_n = check_int(min_interactions, "min_interactions", 2)
    rng = _rng(random_state)
    counts = inter.user_counts()
    n_test = np.floor(frac * counts + 0.5).astype(np.int64)
    n_test = np.clip(n_test, 1, np.maximum(counts - 1, 1))
    n_test[counts < min_n] = 0
    keys = rng.integers(0, 1 << 30, inter.nnz, dtype=np.int64)
    return _split(inter, _tail_mask(inter, n_test, keys))


def _time_value(value: Any, name: str) -> int:
    if hasattr(value, "to_datetime64"):  # pandas.Timestamp
        value = value.to_datetime64()
    elif isinstance(value, datetime.datetime):  # naive: taken as UTC, as timestamps are
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        value = np.datetime64(value, "us")
    if isinstance(value, np.datetime64):
        value = np.asarray([value])
    arr = as_timestamps(np.asarray(value).reshape(-1), 1, name=name)
    return int(arr[0])  # type: ignore[index]


def _require_timestamps(inter: Interactions, split_name: str) -> np.ndarray:
    if inter.timestamps is None:
        raise ValueError(
            f"{split_name} needs timestamps, but these interactions have none; build them with "
            "timestamps=... or use random_holdout / kfold."
        )
    return inter.timestamps


def temporal(
    inter: Interactions,
    *,
    cutoff: Any = None,
    fraction: float | None = None,
) -> tuple[Interactions, Interactions]:
    """Global time split: interactions at or after a cutoff time go to test.

    Give exactly one of ``cutoff`` and ``fraction``.

    Parameters
    ----------
    inter : Interactions
        Must have timestamps.
    cutoff : int or numpy.datetime64, optional
        Interactions with ``timestamp >= cutoff`` form the test set (datetime64 is compared
        in Unix seconds, like ``from_arrays`` stores it).
    fraction : float, optional
        In (0, 1): the cutoff is the timestamp of the ``round(fraction * nnz)``-th latest
        interaction; interactions tied with it all go to test, so the test share can be a
        little larger than ``fraction``.

    Returns
    -------
    train, test : Interactions

    Raises
    ------
    ValueError
        No timestamps, or not exactly one of ``cutoff`` / ``fraction``.
    """
    inter = _check_interactions(inter)
    ts = _require_timestamps(inter, "temporal")
    if (cutoff is None) == (fraction is None):
        raise ValueError(
            "give exactly one of cutoff= and fraction=; got "
            f"cutoff={cutoff!r}, fraction={fraction!r}."
        )
    if cutoff is not None:
        cut = _time_value(cutoff, "cutoff")
    else:
        frac = check_fraction(fraction, "fraction")
        n_test = max(1, int(np.floor(frac * ts.size + 0.5)))
        n_test = min(n_test, ts.size)
        cut = int(np.partition(ts, ts.size - n_test)[ts.size - n_test])
    return _split(inter, ts >= cut)


def last_n(
    inter: Interactions, n: int = 1, *, min_interactions: int = 2
) -> tuple[Interactions, Interactions]:
    """Per-user split: each user's latest ``n`` interactions go to test.

    Order is by timestamp, ties broken by item index (the higher index counts as later).
    Only users with at least ``min_interactions`` interactions contribute to test, and each
    keeps at least one training interaction (so at most ``n_u - 1`` go to test).

    Parameters
    ----------
    inter : Interactions
        Must have timestamps.
    n : int
        At least 1.
    min_interactions : int
        At least 2.

    Returns
    -------
    train, test : Interactions
    """
    inter = _check_interactions(inter)
    ts = _require_timestamps(inter, "last_n")
    n = check_int(n, "n", 1)
    min_n = check_int(min_interactions, "min_interactions", 2)
    counts = inter.user_counts()
    n_test = np.minimum(n, counts - 1)
    n_test[counts < min_n] = 0
    return _split(inter, _tail_mask(inter, n_test, ts))


def leave_last_out(
    inter: Interactions, min_interactions: int = 3
) -> tuple[Interactions, Interactions]:
    """Leave-last-out: each user's latest interaction is the test set.

    Same as ``last_n(inter, 1, min_interactions=min_interactions)``.

    Returns
    -------
    train, test : Interactions
    """
    return last_n(inter, 1, min_interactions=min_interactions)


def kfold(
    inter: Interactions,
    folds: int = 5,
    *,
    random_state: int | np.random.Generator | None = 42,
) -> list[tuple[Interactions, Interactions]]:
    """K-fold split of the interactions (rows), e.g. for rating prediction.

    A random permutation of the interactions is dealt round-robin into ``folds`` groups
    (sizes differ by at most one); fold ``k`` tests on group ``k`` and trains on the rest.

    Parameters
    ----------
    inter : Interactions
        Data to split.
    folds : int
        Between 2 and ``nnz``.
    random_state : int, Generator or None
        Seed.

    Returns
    -------
    list of (train, test)
        ``folds`` pairs; every interaction is in exactly one test set.
    """
    inter = _check_interactions(inter)
    k = check_int(folds, "folds", 2)
    if k > inter.nnz:
        raise ValueError(
            f"folds must be at most the number of interactions ({inter.nnz}); got {k}."
        )
    rng = _rng(random_state)
    perm = rng.permutation(inter.nnz)
    fold_of = np.empty(inter.nnz, dtype=np.int64)
    fold_of[perm] = np.arange(inter.nnz) % k
    return [_split(inter, fold_of == f) for f in range(k)]
