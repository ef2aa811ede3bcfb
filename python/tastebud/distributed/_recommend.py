"""``recommend_all``: top-k lists for every user, scored on Dask workers."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from tastebud.distributed._cluster import session
from tastebud.distributed._common import (
    check_num_threads,
    check_positive_int,
    csr_from_payload,
    csr_payload,
    partition_bounds,
)
from tastebud.distributed._state import model_from_state, model_state, with_partition_rows
from tastebud.models.base import Recommendations, Recommender, check_k

__all__ = ["recommend_all"]


def _frame(user_ids: np.ndarray, model: Recommender, idx: np.ndarray, scores: np.ndarray) -> Any:
    frame = Recommendations.from_indices(user_ids, model.items_, idx, scores).to_frame()
    return frame.rename(columns={"query": "user"})


def _recommend_partition(
    state: dict[str, Any],
    part: dict[str, Any],
    k: int,
    exclude_seen: bool,
    allow: np.ndarray | None,
    deny: np.ndarray | None,
    num_threads: int,
) -> Any:
    """Worker task: the long-format recommendations of one user partition."""
    uidx = part["user_indices"]
    model = with_partition_rows(model_from_state(state), uidx, csr_from_payload(part["rows"]))
    idx, scores = model.recommend_indices(
        uidx, k, exclude_seen=exclude_seen, allow=allow, deny=deny, num_threads=num_threads
    )
    return _frame(part["user_ids"], model, idx, scores)


def recommend_all(
    model: Recommender,
    users: Any = None,
    k: int = 10,
    *,
    client: Any = None,
    partition_size: int = 50_000,
    exclude_seen: bool = True,
    items: Any = None,
    exclude: Any = None,
    num_threads: int = 1,
    path: str | os.PathLike[str] | None = None,
) -> Any:
    """Top-``k`` items for many users, scored in parallel on Dask workers.

    The fitted model's numpy state (vocabularies and learned arrays, see
    :func:`tastebud.distributed.model_state`) is broadcast to every worker once; users are
    cut into partitions of ``partition_size`` that each carry their own training rows, and
    each partition is scored on a worker by the same C++ top-k kernel as
    ``model.recommend``. The result is a Dask DataFrame, so it never has to fit in one
    process.

    Parameters
    ----------
    model : Recommender
        A fitted model whose class is importable on the workers. Every tastebud model
        except ``UserKNN``, ``KNNRating`` and ``Blend``, which read other users' training
        rows when they score a user (``TypeError``).
    users : array of raw user ids, optional
        Default: every user the model knows. Unknown ids raise ``KeyError``.
    k : int
        Items per user, in ``[1, n_items]``.
    client : distributed.Client, str or None
        A connected client, a scheduler address (``"tcp://host:8786"``: connected for this
        call and closed after) or None: a LocalCluster of 2 worker processes x 1 thread on
        127.0.0.1 is started for this call and shut down after.
    partition_size : int
        Users per partition (one task each).
    exclude_seen, items, exclude :
        As in ``Recommender.recommend``.
    num_threads : int
        Threads each task's kernel uses (0 = all cores of the worker's machine). Keep
        ``threads_per_worker * num_threads`` within a worker's cores.
    path : str or path-like, optional
        Write the result as a Parquet dataset (one file per partition) and return ``path``.

    Returns
    -------
    dask.dataframe.DataFrame or str
        Columns ``user`` (raw id), ``rank`` (1-based), ``item`` (raw id), ``score``; padding
        (users with fewer than ``k`` candidates) is dropped, as in
        ``Recommendations.to_frame``. Rows of a user are contiguous and in rank order;
        users appear in the order given. With a ``client`` the frame is lazy (computed on
        that client, e.g. by ``.to_parquet(path)`` or ``.compute()``); with ``client=None``
        or an address the cluster is gone when the call returns, so the result is computed
        during the call and held in this process (pass ``path`` for results larger than
        memory). With ``path``, the written path as a string.

    Examples
    --------
    >>> from distributed import Client                             # doctest: +SKIP
    >>> client = Client("tcp://scheduler-host:8786")               # doctest: +SKIP
    >>> recs = recommend_all(model, k=10, client=client)           # doctest: +SKIP
    >>> recs.to_parquet("s3://bucket/recs/")                       # doctest: +SKIP
    """
    import dask
    import dask.dataframe as dd

    if not isinstance(model, Recommender):
        raise TypeError(f"model must be a tastebud Recommender; got {type(model).__name__}.")
    model._check_fitted()
    k = check_k(k, len(model.items_))
    partition_size = check_positive_int(partition_size, "partition_size")
    num_threads = check_num_threads(num_threads)
    uidx = (
        np.arange(len(model.users_), dtype=np.int64) if users is None else model.users_.index(users)
    )
    allow, deny = model._candidate_lists(items, exclude)
    state = model_state(model)
    empty = np.empty((0, k), dtype=np.int64)
    meta = _frame(model.users_.ids(uidx[:0]), model, empty, empty.astype(np.float32))

    bounds = partition_bounds(uidx.size, partition_size)
    owned = client is None or isinstance(client, str)
    with session(client) as c:
        if bounds:
            state_future = c.scatter([state], broadcast=True, hash=False)[0]
            task = dask.delayed(_recommend_partition, pure=True)
            pieces = []
            for a, b in bounds:
                # One partition at a time: the client never holds a second copy of seen_.
                part = {
                    "user_indices": uidx[a:b],
                    "user_ids": model.users_.ids(uidx[a:b]),
                    "rows": csr_payload(model.seen_[uidx[a:b]]),
                }
                part_future = c.scatter([part], hash=False)[0]
                pieces.append(
                    task(state_future, part_future, k, bool(exclude_seen), allow, deny, num_threads)
                )
            frame = dd.from_delayed(pieces, meta=meta, verify_meta=False)
        else:
            frame = dd.from_pandas(meta, npartitions=1)
        if path is not None:
            frame.to_parquet(os.fspath(path), write_index=False)
            result: Any = os.fspath(path)
        elif owned:
            # The cluster closes with this block: materialise here.
            computed = frame.compute().reset_index(drop=True)
            result = dd.from_pandas(computed, npartitions=max(1, len(bounds)), sort=False)
        else:
            result = frame
    return result
