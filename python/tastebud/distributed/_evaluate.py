"""``evaluate`` on Dask: the metrics of :func:`tastebud.evaluation.evaluate`, reduced exactly.

Each user partition returns *sums and counts* (never means): per ranking metric the sum of
the non-NaN per-user values and their number, the item exposure counts of the lists
(``c_i``, number of lists containing item ``i``; coverage, Gini and personalization are
functions of their sum), novelty's per-user sum and count, and the rating errors' sums. The
client adds them up, so the result is the single-process one up to floating-point summation
order (partition sums are correctly rounded with ``math.fsum``; integer counts are exact).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from tastebud import metrics as M
from tastebud.data import Interactions
from tastebud.distributed._cluster import session
from tastebud.distributed._common import (
    check_num_threads,
    check_positive_int,
    csr_from_payload,
    csr_payload,
    partition_bounds,
)
from tastebud.distributed._state import model_from_state, model_state, with_partition_rows
from tastebud.evaluation import (
    _BEYOND,
    _RANKING,
    _RATING,
    DEFAULT_METRICS,
    Report,
    _check_split,
    _fitted,
)
from tastebud.models.base import Recommender, check_k

__all__ = ["evaluate"]


def _sum_count(values: np.ndarray) -> tuple[float, int]:
    ok = values[~np.isnan(values)]
    return math.fsum(ok.tolist()), int(ok.size)


def _evaluate_partition(
    state: dict[str, Any],
    part: dict[str, Any],
    k: int,
    ranking: tuple[str, ...],
    exposure: bool,
    popularity: np.ndarray | None,
    rating: bool,
    per_user: bool,
    num_threads: int,
) -> dict[str, Any]:
    """Worker task: sums and counts of one partition of evaluated users."""
    uidx = part["user_indices"]
    model = with_partition_rows(model_from_state(state), uidx, csr_from_payload(part["seen"]))
    out: dict[str, Any] = {}
    if ranking or exposure or popularity is not None:
        # What the single-process evaluate asks: recommend_indices(users, k), seen excluded.
        recommended = model.recommend_indices(uidx, k, num_threads=num_threads)[0]
    if ranking:
        values = M.ranking_metrics(
            recommended, csr_from_payload(part["relevant"]), k=k, metrics=ranking
        )
        out["ranking"] = {m: _sum_count(values[m]) for m in ranking}
        if per_user:
            out["per_user"] = {m: values[m] for m in ranking}
    if exposure:
        out["exposure"] = np.bincount(
            recommended[recommended >= 0], minlength=len(model.items_)
        ).astype(np.int64)
    if popularity is not None:
        out["novelty"] = _sum_count(M.novelty(recommended, popularity, reduce="none"))
    if rating:
        truth = part["truth"]
        if truth.size:
            predicted = model.predict(part["rating_users"], part["rating_items"])  # type: ignore[attr-defined]
            diff = np.asarray(truth, np.float64) - np.asarray(predicted, np.float64)
            if not np.isfinite(diff).all():
                raise ValueError("y_true and y_pred must be finite.")
            out["rating"] = (
                math.fsum(np.abs(diff).tolist()),
                math.fsum((diff * diff).tolist()),
                int(diff.size),
            )
        else:
            out["rating"] = (0.0, 0.0, 0)
    return out


def _gini(counts: np.ndarray) -> float:
    """``tastebud.metrics.gini`` from the exposure counts (same formula)."""
    n_items = counts.size
    c = np.sort(counts).astype(np.float64)
    total = c.sum()
    if total == 0:
        return float("nan")
    ranks = np.arange(1, n_items + 1, dtype=np.float64)
    return float(np.dot(2.0 * ranks - n_items - 1.0, c) / (n_items * total))


def _personalization(counts: np.ndarray, n_users: int, k: int) -> float:
    """``tastebud.metrics.personalization`` (exact form) from the exposure counts."""
    if n_users < 2:
        raise ValueError(f"personalization needs at least 2 users (rows); got {n_users}.")
    c = counts.astype(np.float64)
    shared = float(np.sum(c * (c - 1) / 2))
    return 1.0 - shared / (n_users * (n_users - 1) / 2 * k)


def evaluate(
    model: Recommender,
    train: Interactions,
    test: Interactions,
    k: int = 10,
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    client: Any = None,
    partition_size: int = 50_000,
    num_threads: int = 1,
    per_user: bool = False,
    refit: bool = False,
    name: str | None = None,
) -> Report:
    """:func:`tastebud.evaluation.evaluate`, with the users scored on Dask workers.

    The model state is broadcast once; evaluated users (those with test items) are cut into
    partitions of ``partition_size``, each shipped with its training rows (excluded from
    the lists) and test rows. Every partition returns sums and counts, which the client
    adds: means over users are exact (not means of partition means), coverage/Gini/
    personalization come from the summed item exposure counts (the union of the lists'
    item sets and its multiplicities).

    Parameters
    ----------
    model, train, test, k, metrics, refit, name :
        As in :func:`tastebud.evaluation.evaluate` (an unfitted model is fitted here, in
        this process). Rating metrics (mae, rmse, mse) need a model with ``predict``.
    client : distributed.Client, str or None
        See :func:`tastebud.distributed.recommend_all`.
    partition_size : int
        Evaluated users per task.
    num_threads : int
        Threads each task's top-k kernel uses (0 = all cores of the worker's machine).
    per_user : bool
        Also gather the per-user ranking values into ``Report.per_user`` (needed by paired
        significance tests; O(users) memory on the client). Default: only the means.

    Returns
    -------
    Report
        ``means`` equal to the single-process ``evaluate`` up to floating-point summation
        order (relative difference around 1e-15). ``recommend_seconds`` is the wall time of
        the distributed pass.
    """
    _check_split(train, test)
    metrics = tuple(metrics)
    unknown = [m for m in metrics if m not in _RANKING | _BEYOND | _RATING]
    if unknown:
        raise ValueError(
            f"unknown metric(s) {unknown}; choose from {sorted(_RANKING | _BEYOND | _RATING)}."
        )
    partition_size = check_positive_int(partition_size, "partition_size")
    num_threads = check_num_threads(num_threads)
    model, fit_seconds = _fitted(model, train, refit)
    label = name or type(model).__name__
    k = check_k(k, len(model.items_))

    test_counts = test.user_counts()
    eval_users = np.flatnonzero(test_counts > 0)
    raw_users = test.users.ids(eval_users)
    model_users = model.users_.index(raw_users, missing="negative")
    if (model_users < 0).any():
        raise KeyError(
            f"{int((model_users < 0).sum())} test users are unknown to the model; evaluate "
            "new users with recommend_for instead."
        )
    if model.items_ != test.items:
        raise ValueError("the model was fitted on a different item vocabulary than test.")
    ranking = tuple(m for m in metrics if m in _RANKING)
    beyond = [m for m in metrics if m in _BEYOND]
    rating = [m for m in metrics if m in _RATING]
    if rating and not hasattr(model, "predict"):
        raise TypeError(f"{label} has no predict(): rating metrics need a rating model.")
    exposure = bool({"coverage", "gini", "personalization"} & set(beyond))
    # As tastebud.evaluate: add-one smoothed training popularity (new items stay defined).
    popularity = M.popularity_share(train.matrix, smoothing=1.0) if "novelty" in beyond else None
    lists_needed = bool(ranking or beyond)

    parts = []
    for a, b in partition_bounds(eval_users.size, partition_size):
        part: dict[str, Any] = {
            "user_indices": model_users[a:b],
            "seen": csr_payload(model.seen_[model_users[a:b]]),
        }
        if lists_needed:
            part["relevant"] = csr_payload(test.matrix[eval_users[a:b]])
        if rating:
            rows = test.matrix[eval_users[a:b]]
            counts = np.diff(rows.indptr)
            part["rating_users"] = np.repeat(raw_users[a:b], counts)
            part["rating_items"] = test.items.ids(rows.indices)
            part["truth"] = rows.data
        parts.append(part)

    means: dict[str, float] = {}
    sums = {m: 0.0 for m in ranking}
    counts_ = dict.fromkeys(ranking, 0)
    exposure_counts = np.zeros(test.n_items, dtype=np.int64)
    novelty_sum, novelty_n = 0.0, 0
    rating_abs, rating_sq, rating_n = 0.0, 0.0, 0
    per_user_values: list[dict[str, np.ndarray]] = [{} for _ in parts]

    t0 = time.perf_counter()
    with session(client) as c:
        from distributed import as_completed

        if parts:
            state_future = c.scatter([model_state(model)], broadcast=True, hash=False)[0]
            pop_future = None if popularity is None else c.scatter([popularity], broadcast=True)[0]
            part_futures = c.scatter(parts, hash=False)
            futures = [
                c.submit(
                    _evaluate_partition,
                    state_future,
                    pf,
                    k,
                    ranking,
                    exposure,
                    pop_future,
                    bool(rating),
                    per_user,
                    num_threads,
                    pure=False,
                )
                for pf in part_futures
            ]
            position = {f.key: i for i, f in enumerate(futures)}
            # Reduce as results arrive: the client holds one partition's result at a time.
            for future, result in as_completed(futures, with_results=True):
                for m, (s, n) in result.get("ranking", {}).items():
                    sums[m] = math.fsum((sums[m], s))
                    counts_[m] += n
                if "exposure" in result:
                    exposure_counts += result["exposure"]
                if "novelty" in result:
                    novelty_sum = math.fsum((novelty_sum, result["novelty"][0]))
                    novelty_n += result["novelty"][1]
                if "rating" in result:
                    a_, s_, n_ = result["rating"]
                    rating_abs = math.fsum((rating_abs, a_))
                    rating_sq = math.fsum((rating_sq, s_))
                    rating_n += n_
                if per_user:
                    per_user_values[position[future.key]] = result.get("per_user", {})
    recommend_seconds = time.perf_counter() - t0

    for m in ranking:
        means[m] = sums[m] / counts_[m] if counts_[m] else float("nan")
    for m in beyond:
        if m == "coverage":
            means[m] = float(np.count_nonzero(exposure_counts)) / test.n_items
        elif m == "gini":
            means[m] = _gini(exposure_counts)
        elif m == "personalization":
            means[m] = _personalization(exposure_counts, eval_users.size, k)
        elif m == "novelty":
            means[m] = novelty_sum / novelty_n if novelty_n else float("nan")
    if rating:
        if rating_n == 0:
            raise ValueError("y_true and y_pred must not be empty.")
        for m in rating:
            mse = rating_sq / rating_n
            means[m] = {"mae": rating_abs / rating_n, "mse": mse, "rmse": math.sqrt(mse)}[m]
    per_user_out: dict[str, np.ndarray] = {}
    if per_user and ranking:
        per_user_out = {
            m: np.concatenate([p[m] for p in per_user_values]) if parts else np.empty(0, np.float64)
            for m in ranking
        }
    return Report(label, k, means, per_user_out, raw_users, fit_seconds, recommend_seconds)
