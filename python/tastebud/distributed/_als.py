"""Block ALS on Dask: the single-process ALS of :mod:`tastebud.models.als`, one block per task.

Layout (the block ALS of Spark MLlib, Das et al. 2017 "Distributed ALS on Spark"): the
interaction matrix is cut twice, into blocks of users (rows of ``C``) and blocks of items
(rows of ``C^T``); both partitionings are scattered to the workers once and stay there. A
half-iteration broadcasts the fixed side's factors and its Gram matrix ``w0 * Y^T Y``
(small: ``n x f`` and ``f x f``), each worker solves its blocks with the same C++ kernel as
the single-process model (``als_solve``: per row, warm-started CG or Cholesky, one thread
per row so the result does not depend on the partitioning or the threads), and the client
gathers the solved blocks into the new factor matrix. With the same seed the factors are
those of ``ALS.fit``.

Fault tolerance: the client keeps the factors of the last completed half-iteration. If a
worker dies, the half-iteration in flight is redone from them (blocks lost with the worker
are scattered again), so a lost worker costs one half-iteration. With ``checkpoint_dir`` the
factors are also written there (``.npz``, atomically) after every half-iteration, and a new
``fit_als`` call on the same data and parameters resumes from the file (e.g. after the
client process itself died).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from tastebud import search
from tastebud._errors import FitError
from tastebud.distributed._cluster import session
from tastebud.distributed._common import check_num_threads, check_positive_int
from tastebud.models.base import as_interactions

__all__ = ["fit_als"]

_log = logging.getLogger("tastebud.distributed")
_CHECKPOINT = "als-checkpoint.npz"
_MAX_RETRIES = 3
#: seconds before a scatter to a worker that died unnoticed counts as lost (then retried)
_SCATTER_TIMEOUT = 60


def _balanced_bounds(indptr: np.ndarray, blocks: int) -> list[tuple[int, int]]:
    """Up to ``blocks`` contiguous row ranges with about equal numbers of entries."""
    n = indptr.size - 1
    if n == 0:
        return []
    targets = np.linspace(0, indptr[-1], blocks + 1)[1:-1]
    cuts = np.searchsorted(indptr, targets, side="left")
    edges = np.unique(np.concatenate([[0], np.clip(cuts, 0, n), [n]]))
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges) if b > a]


def _block_payload(matrix: sp.csr_matrix, reg: np.ndarray, a: int, b: int) -> dict[str, Any]:
    rows = matrix[a:b]
    return {
        "indptr": np.ascontiguousarray(rows.indptr, dtype=np.int64),
        "indices": np.ascontiguousarray(rows.indices, dtype=np.int32),
        "data": np.ascontiguousarray(rows.data, dtype=np.float32),
        "reg": np.ascontiguousarray(reg[a:b], dtype=np.float32),
    }


def _solve_block(
    block: dict[str, Any],
    fixed: dict[str, np.ndarray],
    warm: np.ndarray,
    alpha: float,
    w0: float,
    solver: int,
    cg_steps: int,
    num_threads: int,
) -> np.ndarray:
    """Worker task: new factors of one block's rows (CG warm-starts from ``warm``)."""
    out = np.array(warm, dtype=np.float32, order="C", copy=True)
    search._core().als_solve(
        block["indptr"], block["indices"], block["data"], fixed["factors"], fixed["gram"],
        block["reg"], out, alpha, w0, solver, cg_steps, num_threads,
    )  # fmt: skip
    return out


def _loss_block(
    block: dict[str, Any],
    fixed: dict[str, np.ndarray],
    solved: np.ndarray,
    alpha: float,
    w0: float,
    num_threads: int,
) -> float:
    """Worker task: the user block's part of ALS's training loss (as ``ALS._loss``)."""
    rows = search._core().als_loss(
        block["indptr"], block["indices"], block["data"], fixed["factors"], fixed["plain_gram"],
        block["reg"], np.ascontiguousarray(solved), alpha, w0, num_threads,
    )  # fmt: skip
    return float(rows.sum())


def _fingerprint(model: Any, cui: sp.csr_matrix) -> str:
    h = hashlib.sha256()
    params = {k: v for k, v in model.get_params().items() if k not in ("num_threads",)}
    params.pop("show_progress", None)
    h.update(json.dumps(params, sort_keys=True).encode())
    h.update(np.asarray(cui.shape, dtype=np.int64).tobytes())
    for arr in (cui.indptr, cui.indices, cui.data):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _write_checkpoint(
    directory: Path, fingerprint: str, halves: int, x: np.ndarray, y: np.ndarray, losses: list
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    meta = json.dumps({"fingerprint": fingerprint, "halves": halves})
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(
                fh,
                meta=np.frombuffer(meta.encode(), dtype=np.uint8),
                user_factors=x,
                item_factors=y,
                losses=np.asarray(losses, dtype=np.float64),
            )
        os.replace(tmp, directory / _CHECKPOINT)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_checkpoint(
    directory: Path, fingerprint: str, x: np.ndarray, y: np.ndarray
) -> tuple[int, list[float]]:
    """Load a matching checkpoint into ``x``/``y``; returns (completed halves, losses)."""
    path = directory / _CHECKPOINT
    if not path.exists():
        return 0, []
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(npz["meta"].tobytes().decode())
        if meta.get("fingerprint") != fingerprint:
            raise ValueError(
                f"{os.fspath(path)!r} is a checkpoint of another fit (different data or "
                "parameters); use another checkpoint_dir or delete it."
            )
        x[...] = npz["user_factors"]
        y[...] = npz["item_factors"]
        return int(meta["halves"]), [float(v) for v in npz["losses"]]


class LostData(RuntimeError):
    """Data a half-iteration depends on was lost with a worker."""


def _gather_watching(client: Any, tasks: list[Any], workers: set[str]) -> list[Any]:
    """``client.gather(tasks)``, but raise ``LostData`` if one of ``workers`` goes away.

    Scattered data has no lineage: when the worker holding it dies, tasks that need it can
    wait forever. Polling the scheduler's worker list turns that into an error the caller
    handles by redoing the half-iteration.
    """
    from distributed import wait

    while True:
        try:
            wait(tasks, timeout=0.5)
        except TimeoutError:
            pass
        else:
            return client.gather(tasks)
        lost = workers - set(client.nthreads())
        if lost or any(f.status in ("lost", "cancelled") for f in tasks):
            raise LostData(f"worker(s) {sorted(lost)} left while a half-iteration was running")


def _retryable() -> tuple[type[BaseException], ...]:
    """Errors that mean "a worker or its data was lost", after which a half-iteration is redone.

    Errors raised by the kernel itself (bad input) are not among them and propagate.
    """
    import asyncio

    from distributed.client import FutureCancelledError

    import distributed

    plural = getattr(distributed.client, "FuturesCancelledError", FutureCancelledError)
    return (
        LostData,
        distributed.KilledWorker,
        FutureCancelledError,
        plural,
        asyncio.CancelledError,
        distributed.comm.CommClosedError,
        OSError,
        TimeoutError,
    )


def fit_als(
    model: Any,
    interactions: Any,
    *,
    client: Any = None,
    blocks: int | None = None,
    num_threads: int = 1,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    callback: Callable[[int, float, float | None], Any] | None = None,
) -> Any:
    """Fit a :class:`tastebud.models.ALS` on a Dask cluster (block ALS); returns the model.

    Parameters
    ----------
    model : tastebud.models.ALS
        Unfitted or fitted (refitted from scratch); its hyperparameters are used as given
        (``num_threads`` is replaced by the ``num_threads`` here, per task).
    interactions : Interactions or scipy.sparse matrix
        Users x items weights, as for ``ALS.fit``.
    client : distributed.Client, str or None
        See :func:`tastebud.distributed.recommend_all`.
    blocks : int, optional
        Blocks per side (user blocks and item blocks, balanced by number of interactions).
        Default: twice the number of workers.
    num_threads : int
        Threads of each block solve (0 = all cores of the worker's machine).
    checkpoint_dir : str or path-like, optional
        Write the factors after every half-iteration and resume from them when the same fit
        (same data and parameters) is started again.
    callback : callable, optional
        ``callback(iteration, seconds, loss)`` after each iteration, as for ``ALS.fit``.

    Returns
    -------
    ALS
        The same ``model``, fitted: factors equal (to float rounding of the Gram matrix) to
        ``ALS(same parameters).fit(interactions)``; a plain tastebud model (save, recommend,
        :func:`recommend_all` work as usual).
    """
    from tastebud.models.als import ALS

    if not isinstance(model, ALS):
        raise TypeError(f"model must be a tastebud.models.ALS; got {type(model).__name__}.")
    num_threads = check_num_threads(num_threads)
    if blocks is not None:
        blocks = check_positive_int(blocks, "blocks")
    p = model._checked()
    data = as_interactions(interactions)
    from tastebud.models._factors import check_weights

    cui = check_weights(data.matrix)
    if cui.nnz == 0:
        raise ValueError("interactions are empty: every weight is zero.")
    ciu = cui.T.tocsr()
    ciu.sort_indices()
    n, m = cui.shape
    f = p["factors"]
    # The initialisation of ALS._fit, draw for draw.
    rng = np.random.default_rng(model.random_state)
    x = (rng.random((n, f), dtype=np.float32) * 0.01).astype(np.float32)
    y = (rng.random((m, f), dtype=np.float32) * 0.01).astype(np.float32)
    reg_u = model._row_reg(np.diff(cui.indptr), m, p)
    reg_i = model._row_reg(np.diff(ciu.indptr), n, p)
    directory = None if checkpoint_dir is None else Path(checkpoint_dir)
    fingerprint = _fingerprint(model, cui)
    halves, losses = (
        (0, []) if directory is None else _read_checkpoint(directory, fingerprint, x, y)
    )
    retryable = _retryable()
    blas_limit = search._blas_controller().limit(limits=p["threads"], user_api="blas")
    confidence = float(np.sum(1.0 + p["alpha"] * cui.data.astype(np.float64)))

    with session(client) as c, blas_limit:
        n_blocks = blocks or max(1, 2 * len(c.scheduler_info().get("workers", {})))
        sides = [
            {"matrix": cui, "reg": reg_u, "bounds": _balanced_bounds(cui.indptr, n_blocks)},
            {"matrix": ciu, "reg": reg_i, "bounds": _balanced_bounds(ciu.indptr, n_blocks)},
        ]
        for side in sides:
            side["futures"] = [None] * len(side["bounds"])
            side["warm"] = [None] * len(side["bounds"])

        def block_future(side: dict[str, Any], j: int) -> Any:
            fut = side["futures"][j]
            if fut is None or fut.status != "finished":
                a, b = side["bounds"][j]
                payload = _block_payload(side["matrix"], side["reg"], a, b)
                fut = c.scatter([payload], hash=False, timeout=_SCATTER_TIMEOUT)[0]
                side["futures"][j] = fut
            return fut

        def forget_lost() -> None:
            """After a failure: drop every warm start (they are re-sent from the client's
            factors, cutting any lineage to lost data) and every block no live worker holds."""
            alive = set(c.nthreads())
            for side in sides:
                side["warm"] = [None] * len(side["bounds"])
                known = [f for f in side["futures"] if f is not None and f.status == "finished"]
                try:
                    holders = c.who_has(known) if known else {}
                except Exception:  # a future was cancelled meanwhile: re-send every block
                    holders = {}
                side["futures"] = [
                    f if f is not None and set(holders.get(f.key, ())) & alive else None
                    for f in side["futures"]
                ]

        def warm_future(side: dict[str, Any], j: int, current: np.ndarray) -> Any:
            """The block's current factors on the cluster (last result, else scattered)."""
            fut = side["warm"][j]
            if fut is None or fut.status != "finished":
                a, b = side["bounds"][j]
                fut = c.scatter([current[a:b]], hash=False, timeout=_SCATTER_TIMEOUT)[0]
                side["warm"][j] = fut
            return fut

        def half_iteration(which: int) -> None:
            side = sides[which]
            solved, fixed = (x, y) if which == 0 else (y, x)
            gram = np.ascontiguousarray(p["w0"] * (fixed.T @ fixed), dtype=np.float32)
            for attempt in range(_MAX_RETRIES + 1):
                try:
                    workers = set(c.nthreads())
                    # One copy scattered; workers fetch it from each other once each. (A
                    # broadcast scatter can block on a worker that died unnoticed.)
                    fixed_f = c.scatter(
                        [{"factors": fixed, "gram": gram}], hash=False, timeout=_SCATTER_TIMEOUT
                    )[0]
                    tasks = []
                    for j in range(len(side["bounds"])):
                        tasks.append(
                            c.submit(
                                _solve_block,
                                block_future(side, j),
                                fixed_f,
                                warm_future(side, j, solved),
                                p["alpha"],
                                p["w0"],
                                p["solver"],
                                p["cg_steps"],
                                num_threads,
                                pure=False,
                            )
                        )
                    results = _gather_watching(c, tasks, workers)
                except retryable as exc:
                    if attempt == _MAX_RETRIES:
                        raise
                    # A worker was lost: redo this half-iteration from the client's factors.
                    _log.warning(
                        "ALS half-iteration %d failed (%s: %s); redoing it from the last "
                        "factors (retry %d of %d).",
                        halves, type(exc).__name__, exc, attempt + 1, _MAX_RETRIES,
                    )  # fmt: skip
                    forget_lost()
                    continue
                for (a, b), block in zip(side["bounds"], results, strict=True):
                    solved[a:b] = block
                side["warm"] = tasks
                return

        def training_loss() -> float:
            plain = np.ascontiguousarray(y.T @ y, dtype=np.float32)
            for attempt in range(_MAX_RETRIES + 1):
                try:
                    workers = set(c.nthreads())
                    fixed_f = c.scatter(
                        [{"factors": y, "plain_gram": plain}], hash=False, timeout=_SCATTER_TIMEOUT
                    )[0]
                    tasks = [
                        c.submit(
                            _loss_block,
                            block_future(sides[0], j),
                            fixed_f,
                            warm_future(sides[0], j, x),
                            p["alpha"],
                            p["w0"],
                            num_threads,
                            pure=False,
                        )
                        for j in range(len(sides[0]["bounds"]))
                    ]
                    total = sum(_gather_watching(c, tasks, workers))
                    break
                except retryable:
                    if attempt == _MAX_RETRIES:
                        raise
                    forget_lost()
            total += float(reg_i @ np.einsum("ij,ij->i", y, y, dtype=np.float64))
            return total / (confidence + p["w0"] * (n * m - cui.nnz))

        t0 = time.perf_counter()
        while halves < 2 * p["iterations"]:
            half_iteration(halves % 2)
            halves += 1
            if halves % 2 == 0:
                loss = None
                if model.calculate_training_loss:
                    loss = training_loss()
                    losses.append(loss)
            if directory is not None:
                _write_checkpoint(directory, fingerprint, halves, x, y, losses)
            if halves % 2 == 0:
                if callback is not None:
                    callback(halves // 2 - 1, time.perf_counter() - t0, loss)
                t0 = time.perf_counter()

    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise FitError("ALS produced NaN or infinite factors: lower alpha or raise regularization.")
    model.users_ = data.users
    model.items_ = data.items
    model.seen_ = cui
    model.user_factors_ = x
    model.item_factors_ = y
    model.loss_history_ = np.asarray(losses, dtype=np.float64)
    model._refresh_popularity()
    return model
