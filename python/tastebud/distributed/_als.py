"""Block ALS on Dask: the single-process ALS of :mod:`tastebud.models.als`, one block per task.

Layout (the block ALS of Spark MLlib; Das et al. 2017, "Distributed ALS on Spark"): the
interaction matrix is cut twice, into blocks of users (rows of ``C``) and blocks of items
(rows of ``C^T``). Each block is scattered once to the worker that owns it and stays there.

The client only orchestrates futures; factors reach it only at checkpoints, in the background:

* A half-iteration is one task per block, pinned to the block's worker. Its arguments are
  the block's interactions (local), its own factors of two halves ago (local; the CG warm
  start) and *every* block state of the other side (futures: the worker fetches the ones
  it lacks straight from the workers that computed them, into a reused buffer), from which
  it assembles the fixed factor matrix ``Y`` and ``w0 * Y^T Y`` (one GEMM over the whole
  ``Y``, as ``ALS.fit`` does: see ``_solve_against``). It solves its rows with the same
  C++ kernel as the single-process model (``als_solve``; one thread per row, so a row's
  result does not depend on the partitioning or the threads) and returns its new state,
  which stays on that worker.
* The client submits whole iterations (one ahead of the one it waits for, and the next
  one before it fetches a checkpoint), so workers never wait on the client between
  half-iterations. Each task records where its time went (``worker_timings``; see
  ``benchmarks/profile_distributed.py``).

With the same seed the factors are those of ``ALS.fit`` (bit for bit when both use one BLAS
thread for the Gram matrix; the test asks 1e-4).

Fault tolerance: every worker keeps the full factor matrices it assembled for its own solves
(``_keep``: the other side's blocks, which it fetches anyway; the two newest iterations it
holds on both sides), so this costs no transfer and about two more copies of each factor
matrix per worker. If a worker is lost, the blocks are placed again on the workers still
alive (interactions re-sent from the client) and the fit goes on from the newest iteration
that the client saw finish and a surviving worker holds: a lost worker costs the iterations
in flight. The client also fetches the factors (while the workers already run the next
iteration) every ``checkpoint_every`` iterations: by default only when the blocks sit on a
single worker (whose copies would go with it) or with ``checkpoint_dir``, where it writes
them (``.npz``, atomically), and a new ``fit_als`` call on the same data and parameters
resumes from the file (e.g. after the client process itself died). The blocks keep their
bounds, so the result is the same as without the failure.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


# --------------------------------------------------------------------------- partitioning
def _balanced_bounds(indptr: np.ndarray, blocks: int, row_cost: int = 0) -> list[tuple[int, int]]:
    """Up to ``blocks`` contiguous row ranges of about equal cost.

    The cost of rows ``[a, b)`` is ``nnz + row_cost * rows``: a CG step costs about
    ``f^2 + 2 f nnz`` per row, so ``row_cost = f / 2`` balances solve time, not only entries.
    """
    n = indptr.size - 1
    if n == 0:
        return []
    cost = indptr.astype(np.float64) + row_cost * np.arange(n + 1, dtype=np.float64)
    targets = np.linspace(0, cost[-1], blocks + 1)[1:-1]
    cuts = np.searchsorted(cost, targets, side="left")
    edges = np.unique(np.concatenate([[0], np.clip(cuts, 0, n), [n]]))
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges) if b > a]


def _block_payload(matrix: sp.csr_matrix, reg: np.ndarray, a: int, b: int) -> dict[str, Any]:
    """Rows ``[a, b)`` as plain arrays (what is scattered; no sparse object is pickled)."""
    lo, hi = int(matrix.indptr[a]), int(matrix.indptr[b])
    return {
        "indptr": np.ascontiguousarray(matrix.indptr[a : b + 1] - lo, dtype=np.int64),
        "indices": np.ascontiguousarray(matrix.indices[lo:hi], dtype=np.int32),
        "data": np.ascontiguousarray(matrix.data[lo:hi], dtype=np.float32),
        "reg": np.ascontiguousarray(reg[a:b], dtype=np.float32),
    }


# --------------------------------------------------------------------------- worker tasks
#: A block's state: (factors (rows, f) float32, sum over its rows of
#: reg_row * |factors_row|^2 as a Python float, for the training loss).
State = tuple[np.ndarray, float]


def _state(factors: np.ndarray, reg: np.ndarray) -> State:
    norms = np.einsum("ij,ij->i", factors, factors, dtype=np.float64)
    return factors, float(reg.astype(np.float64) @ norms)


#: Per worker process: reusable buffers for the assembled fixed matrix, by shape. Reusing
#: them saves the first-touch page faults of a fresh 10-100 MB array every half-iteration.
_POOL: dict[tuple[int, int], list[np.ndarray]] = {}
_POOL_LOCK = threading.Lock()
_POOL_SHAPES = 4


@contextmanager
def _assemble(
    states: tuple[State, ...], keep: tuple[str, int, int] | None = None
) -> Iterator[np.ndarray]:
    """The full fixed factor matrix, from its blocks in order (valid inside the block).

    ``keep = (fit, side, iteration)``: afterwards the matrix is kept as this worker's
    replica of that side's factors after that iteration (see :func:`_keep`) instead of
    going back to the pool.
    """
    if len(states) == 1:
        yield states[0][0]
        if keep is not None:
            _keep(keep, states[0][0], pooled=False)
        return
    shape = (sum(s[0].shape[0] for s in states), states[0][0].shape[1])
    with _POOL_LOCK:
        free = _POOL.get(shape)
        buf = free.pop() if free else None
    if buf is None:
        buf = np.empty(shape, dtype=np.float32)
    kept = False
    try:
        np.concatenate([s[0] for s in states], out=buf)
        yield buf
        kept = keep is not None and _keep(keep, buf, pooled=True)
    finally:
        if not kept:
            _to_pool(buf)


def _to_pool(buf: np.ndarray) -> None:
    with _POOL_LOCK:
        shape = buf.shape
        if shape not in _POOL and len(_POOL) >= _POOL_SHAPES:
            _POOL.clear()  # another fit: forget the old shapes
        free = _POOL.setdefault(shape, [])
        if len(free) < 2:
            free.append(buf)


#: Per worker process, per fit: replicas of the factor matrices this worker assembled for
#: its solves (the other side's blocks, fetched anyway), as fit -> side -> iteration ->
#: (matrix, from the pool): a copy of the fit's state that cost no transfer, from which the
#: client goes on when another worker is lost (see ``_BlockALS._recover``). Kept: the two
#: newest iterations held on both sides and anything newer (the client sees an iteration
#: finish at most one iteration after the workers, so the older of the two is one it has
#: seen). That is about two more copies of each factor matrix per worker than the pool.
_KEPT: dict[str, dict[int, dict[int, tuple[np.ndarray, bool]]]] = {}
#: Fits whose replicas a worker holds at most (a client that died never says it is done:
#: the oldest fit's replicas go when a new fit starts keeping).
_KEPT_FITS = 4
#: Fits that ended: a task of theirs still running (one of an attempt abandoned after a
#: lost worker) keeps nothing.
_ENDED: deque[str] = deque(maxlen=256)


def _keep(keep: tuple[str, int, int], matrix: np.ndarray, pooled: bool) -> bool:
    """Keep ``matrix`` as the replica ``keep = (fit, side, iteration)``; whether it was
    taken (False: that replica is already kept, from another block task of this worker)."""
    fit, side, iteration = keep
    evicted: list[tuple[np.ndarray, bool]] = []
    with _POOL_LOCK:
        if fit in _ENDED:
            return False
        if fit not in _KEPT and len(_KEPT) >= _KEPT_FITS:
            oldest = next(iter(_KEPT))  # insertion order: the oldest fit
            evicted.extend(m for per_side in _KEPT.pop(oldest).values() for m in per_side.values())
        sides = _KEPT.setdefault(fit, {})
        kept = sides.setdefault(side, {})
        if iteration in kept:
            return False
        kept[iteration] = (matrix, pooled)
        both = _complete(sides)
        if len(both) >= 2:  # older than the two newest complete iterations: not needed
            for per_side in sides.values():
                for it in [it for it in per_side if it < both[-2]]:
                    evicted.append(per_side.pop(it))
    for old, was_pooled in evicted:
        if was_pooled:
            _to_pool(old)
    return True


def _complete(sides: dict[int, dict[int, Any]]) -> list[int]:
    """The iterations held on both sides, ascending."""
    return sorted(set(sides.get(0, {})) & set(sides.get(1, {})))


def replica_iterations(fit: str) -> list[int]:
    """Worker function: the iterations of which this worker holds both sides' factors."""
    with _POOL_LOCK:
        return _complete(_KEPT.get(fit, {}))


def replica_factors(fit: str, iteration: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Worker function: this worker's copies of (user, item) factors after ``iteration``
    (None if it no longer holds them)."""
    with _POOL_LOCK:  # held while copying: an evicted replica goes back to the pool
        sides = _KEPT.get(fit, {})
        x, y = sides.get(0, {}).get(iteration), sides.get(1, {}).get(iteration)
        if x is None or y is None:
            return None
        return x[0].copy(), y[0].copy()


def forget_replicas(fit: str) -> None:
    """Worker function: drop the replicas of ``fit`` (the end of a fit)."""
    with _POOL_LOCK:
        _ENDED.append(fit)
        sides = _KEPT.pop(fit, {})
    for kept in sides.values():
        for matrix, pooled in kept.values():
            if pooled:
                _to_pool(matrix)


#: Per worker process: output buffers of block solves, by shape, reused once no one else
#: holds them (the worker released the state, no send in flight): a fresh 10-50 MB array
#: every half-iteration costs its first-touch page faults, more than the copy itself.
_OUT: dict[tuple[int, ...], list[np.ndarray]] = {}
_OUT_PER_SHAPE = 3


def _out_buffer(shape: tuple[int, ...]) -> np.ndarray:
    """A C-contiguous float32 array of ``shape`` that nothing else references."""
    with _POOL_LOCK:
        bufs = _OUT.get(shape)
        if bufs is None:
            if len(_OUT) >= 2 * _POOL_SHAPES:
                _OUT.clear()  # another fit: forget the old shapes (arrays in use live on)
            bufs = _OUT.setdefault(shape, [])
        for buf in bufs:
            # References: the list, the loop variable, getrefcount's argument. Any other
            # (the worker's data, a task argument, a memoryview being sent) keeps it busy.
            if sys.getrefcount(buf) <= 3:
                return buf
        buf = np.empty(shape, dtype=np.float32)
        if len(bufs) < _OUT_PER_SHAPE:
            bufs.append(buf)
        return buf


#: Per worker process: timings of the last block tasks (see :func:`worker_timings`).
_TIMINGS: deque[dict[str, Any]] = deque(maxlen=4096)


def worker_timings(clear: bool = False) -> list[dict[str, Any]]:
    """Timings of this process's recent block solves (run on a worker via ``client.run``).

    One dict per task: ``tag`` (side, block, iteration), wall-clock ``start``/``end``
    (``time.time``, comparable across processes of one machine) and, measured inside the
    task with ``perf_counter`` (wall) and ``thread_time`` (CPU of the task's thread: not
    the worker's event loop, which sends and receives blocks meanwhile), the phases ``assemble``
    (copying the fixed blocks into one matrix), ``gram``, ``copy`` (warm start) and
    ``solve`` (the C++ kernel).
    """
    out = list(_TIMINGS)
    if clear:
        _TIMINGS.clear()
    return out


class _Clock:
    """Wall and CPU seconds per phase, for :data:`_TIMINGS`."""

    def __init__(self) -> None:
        self.rec: dict[str, Any] = {"start": time.time()}
        self._w, self._c = time.perf_counter(), time.thread_time()

    def lap(self, name: str) -> None:
        w, c = time.perf_counter(), time.thread_time()
        self.rec[name] = w - self._w
        self.rec[name + "_cpu"] = c - self._c
        self._w, self._c = w, c

    def done(self, tag: Any) -> None:
        self.rec["end"] = time.time()
        self.rec["tag"] = tag
        _TIMINGS.append(self.rec)


def _solve_block(
    block: dict[str, np.ndarray], warm: State, params: tuple, *fixed: State, tag: Any = None,
    keep: tuple[str, int, int] | None = None,
) -> State:  # fmt: skip
    """Worker task: new state of one block (CG warm-starts from its previous factors).

    ``keep``: keep the assembled fixed matrix as a replica (see :func:`_keep`)."""
    alpha, w0, solver, cg_steps, num_threads = params
    clock = _Clock()
    with _assemble(fixed, keep) as y:
        clock.lap("assemble")
        state = _solve_against(block, warm, y, alpha, w0, solver, cg_steps, num_threads, clock)
    clock.done(tag)
    return state


def _solve_against(
    block: dict[str, np.ndarray], warm: State, y: np.ndarray, alpha: float, w0: float,
    solver: int, cg_steps: int, num_threads: int, clock: _Clock | None = None,
) -> State:  # fmt: skip
    # The Gram matrix exactly as ALS.fit computes it (one GEMM over the whole matrix): the
    # first half-iterations, against tiny initial factors, amplify its rounding ~1e4-fold,
    # so per-block partial sums (a different rounding) would not reproduce ALS.fit to 1e-4.
    gram = np.ascontiguousarray(w0 * (y.T @ y), dtype=np.float32)
    if clock is not None:
        clock.lap("gram")
    out = _out_buffer(warm[0].shape)
    np.copyto(out, warm[0])
    if clock is not None:
        clock.lap("copy")
    search._core().als_solve(
        block["indptr"], block["indices"], block["data"], y, gram, block["reg"], out, alpha,
        w0, solver, cg_steps, num_threads,
    )  # fmt: skip
    if clock is not None:
        clock.lap("solve")
    return _state(out, block["reg"])


def _loss_block(
    block: dict[str, np.ndarray], solved: State, params: tuple, *fixed: State
) -> tuple[float, float]:
    """Worker task: a user block's part of ALS's training loss (as ``ALS._loss``), and the
    item side's regularisation term (the same on every block; the client takes block 0's)."""
    alpha, w0, _, _, num_threads = params
    with _assemble(fixed) as y:
        rows = search._core().als_loss(
            block["indptr"], block["indices"], block["data"], y,
            np.ascontiguousarray(y.T @ y, dtype=np.float32), block["reg"], solved[0], alpha,
            w0, num_threads,
        )  # fmt: skip
    return float(rows.sum()), float(sum(s[1] for s in fixed))


# --------------------------------------------------------------------------- checkpoints
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
    """Load a matching checkpoint into ``x``/``y``; returns (completed iterations, losses)."""
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
        return int(meta["halves"]) // 2, [float(v) for v in npz["losses"]]


# --------------------------------------------------------------------------- failures
class LostData(RuntimeError):
    """Data an iteration depends on was lost with a worker."""


def _wait_watching(client: Any, tasks: list[Any], workers: set[str]) -> None:
    """Wait for ``tasks``, but raise ``LostData`` if one of ``workers`` goes away.

    Tasks are pinned to their block's worker and scattered data has no lineage: when a
    worker dies, tasks that need it can wait forever. Polling the scheduler's worker list
    turns that into an error the caller handles by going back to the last checkpoint.
    """
    from distributed import wait

    while True:
        try:
            wait(tasks, timeout=0.5)
        except TimeoutError:
            pass
        else:
            bad = [f for f in tasks if f.status != "finished"]
            if bad:
                bad[0].result()  # raises the task's error (or a cancellation)
                raise LostData(f"task {bad[0].key} ended as {bad[0].status!r}")
            return
        lost = workers - set(client.nthreads())
        if lost or any(f.status in ("lost", "cancelled") for f in tasks):
            raise LostData(f"worker(s) {sorted(lost)} left while an iteration was running")


def _retryable() -> tuple[type[BaseException], ...]:
    """Errors that mean "a worker or its data was lost", after which the fit goes back to
    its last checkpoint. Errors raised by the kernel itself (bad input) propagate."""
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


# --------------------------------------------------------------------------- driver
class _BlockALS:
    """The client side of one ``fit_als`` call: block placement, submission, checkpoints."""

    def __init__(self, client: Any, model: Any, cui: sp.csr_matrix, p: dict[str, Any],
                 blocks: int | None, num_threads: int, checkpoint_every: int | None,
                 directory: Path | None, fingerprint: str,
                 callback: Callable[[int, float, float | None], Any] | None) -> None:  # fmt: skip
        self.c = client
        self.p = p
        n, m = cui.shape
        f = p["factors"]
        ciu = cui.T.tocsr()
        ciu.sort_indices()
        # The initialisation of ALS._fit, draw for draw.
        rng = np.random.default_rng(model.random_state)
        self.x = (rng.random((n, f), dtype=np.float32) * 0.01).astype(np.float32)
        self.y = (rng.random((m, f), dtype=np.float32) * 0.01).astype(np.float32)
        reg_u = model._row_reg(np.diff(cui.indptr), m, p)
        reg_i = model._row_reg(np.diff(ciu.indptr), n, p)
        self.directory, self.fingerprint = directory, fingerprint
        self.done, self.losses = (
            (0, [])
            if directory is None
            else _read_checkpoint(directory, fingerprint, self.x, self.y)
        )
        #: iterations the client has seen finish on the workers, and of those the ones whose
        #: loss it recorded and callback it called (at most one fewer)
        self.finished = self.reported = self.done
        #: names this fit's replicas on the workers (see ``_keep``)
        self.fit_id = uuid.uuid4().hex
        slots = self._slots()
        n_blocks = blocks or len(slots)
        self.sides = [
            {"matrix": cui, "reg": reg_u, "factors": self.x,
             "bounds": _balanced_bounds(cui.indptr, n_blocks, f // 2)},
            {"matrix": ciu, "reg": reg_i, "factors": self.y,
             "bounds": _balanced_bounds(ciu.indptr, n_blocks, f // 2)},
        ]  # fmt: skip
        self.params = (p["alpha"], p["w0"], p["solver"], p["cg_steps"], num_threads)
        #: None: client checkpoints only with a checkpoint_dir, or when the blocks sit on a
        #: single worker (whose replicas would be lost with it); ``_place`` sets ``every``
        self.checkpoint_every = checkpoint_every
        self.every = 0
        self.callback = callback
        self.confidence = float(np.sum(1.0 + p["alpha"] * cui.data.astype(np.float64)))
        self.cells = n * m - cui.nnz
        self.workers: set[str] = set()
        #: the factor blocks of the last checkpoint, not yet copied into ``self.x``/``self.y``
        self.fetched: list[list[np.ndarray]] | None = None

    def _slots(self) -> list[str]:
        """One entry per worker thread (workers sorted by address): where blocks go."""
        nthreads = self.c.nthreads()
        if not nthreads:
            self.c.wait_for_workers(1, timeout=_SCATTER_TIMEOUT)
            nthreads = self.c.nthreads()
        slots = [[w] * max(1, int(t)) for w, t in sorted(nthreads.items())]
        # Interleave so that consecutive blocks go to different workers first.
        return [w for group in itertools.zip_longest(*slots) for w in group if w is not None]

    def _place(self) -> None:
        """Scatter every block's interactions and current state (from the client's factors
        of the last checkpoint) to the workers alive now."""
        self._materialise()
        slots = self._slots()
        self.workers = set(slots)
        for side in self.sides:
            side["owners"] = [slots[j % len(slots)] for j in range(len(side["bounds"]))]
        owners = {w for side in self.sides for w in side["owners"]}
        self.every = (
            self.checkpoint_every
            if self.checkpoint_every is not None
            else int(self.directory is not None or len(owners) < 2)
        )
        for side in self.sides:
            side["blocks"], side["states"] = [], []
            for (a, b), owner in zip(side["bounds"], side["owners"], strict=True):
                payload = _block_payload(side["matrix"], side["reg"], a, b)
                state = _state(np.array(side["factors"][a:b]), payload["reg"])
                futs = self.c.scatter(
                    [payload, state], workers=[owner], hash=False, timeout=_SCATTER_TIMEOUT
                )
                side["blocks"].append(futs[0])
                side["states"].append(futs[1])

    def _submit_half(self, which: int, fixed: list[Any], it: int) -> list[Any]:
        side = self.sides[which]
        # The fixed side's factors: the items after iteration it - 1 (user half), the users
        # after iteration it (item half); every worker keeps them as a replica.
        keep = (self.fit_id, 1 - which, it - 1 if which == 0 else it)
        side["states"] = [
            self.c.submit(
                _solve_block, block, state, self.params, *fixed, tag=(which, j, it), keep=keep,
                workers=[owner], allow_other_workers=False, pure=False,
            )
            for j, (block, state, owner) in enumerate(
                zip(side["blocks"], side["states"], side["owners"], strict=True)
            )
        ]  # fmt: skip
        return side["states"]

    def _submit_iteration(self, it: int) -> dict[str, Any]:
        xs = self._submit_half(0, self.sides[1]["states"], it)
        ys = self._submit_half(1, xs, it)
        loss = self._submit_loss(xs, ys) if self.p["calculate_loss"] else []
        return {"it": it, "xs": xs, "ys": ys, "loss": loss}

    def _submit_loss(self, xs: list[Any], ys: list[Any]) -> list[Any]:
        """The loss tasks of the user states ``xs`` against the item states ``ys``."""
        users = self.sides[0]
        return [
            self.c.submit(
                _loss_block, block, state, self.params, *ys,
                workers=[owner], allow_other_workers=False, pure=False,
            )
            for block, state, owner in zip(users["blocks"], xs, users["owners"], strict=True)
        ]  # fmt: skip

    def _materialise(self) -> None:
        """Copy the blocks of the last checkpoint into the client's factor matrices."""
        if self.fetched is None:
            return
        for side, blocks in zip(self.sides, self.fetched, strict=True):
            for (a, b), block in zip(side["bounds"], blocks, strict=True):
                side["factors"][a:b] = block
        self.fetched = None

    def _checkpoint(self, step: dict[str, Any]) -> None:
        """Fetch the factors of a finished iteration into the client's copy (and the file)."""
        # Everything is fetched before anything is written: a worker lost halfway through
        # must leave the previous checkpoint intact.
        # One gather: both workers send at once, in one round trip.
        states = self.c.gather(step["xs"] + step["ys"])
        k = len(step["xs"])
        # Kept as fetched (no copy into the client's full matrices, ~100 MB a time at
        # scale): copied only when needed (a file to write, blocks to place again, the end).
        self.fetched = [[s[0] for s in states[:k]], [s[0] for s in states[k:]]]
        self.done = step["it"] + 1  # before the file: a failed write must not undo this
        if self.directory is not None:
            self._materialise()
            _write_checkpoint(
                self.directory, self.fingerprint, 2 * self.done, self.x, self.y, self.losses
            )

    def _loss(self, parts: list[tuple[float, float]]) -> float:
        total = sum(v for v, _ in parts) + parts[0][1]
        return total / (self.confidence + self.p["w0"] * self.cells)

    def _report(self, it: int, seconds: float, loss: float | None) -> None:
        if loss is not None:
            self.losses.append(loss)
        self.reported = it + 1
        if self.callback is not None:
            self.callback(it, seconds, loss)

    def _report_recovered(self) -> None:
        """The iteration recovered from a replica before the client reported it: its loss,
        from the factors just placed, and its callback."""
        if self.reported >= self.done:
            return
        loss = None
        if self.p["calculate_loss"]:
            tasks = self._submit_loss(self.sides[0]["states"], self.sides[1]["states"])
            _wait_watching(self.c, tasks, self.workers)
            loss = self._loss(self.c.gather(tasks))
        self._report(self.done - 1, 0.0, loss)

    def _iterate(self) -> None:
        """Run from the last checkpoint to the end; raises a retryable error on a lost worker."""
        iterations = self.p["iterations"]
        self._place()
        self._report_recovered()
        pending: deque[dict[str, Any]] = deque()
        t0 = time.perf_counter()
        for it in range(self.done, min(self.done + 2, iterations)):
            pending.append(self._submit_iteration(it))
        while pending:
            step = pending.popleft()
            _wait_watching(self.c, step["xs"] + step["ys"] + step["loss"], self.workers)
            it = step["it"]
            self.finished = it + 1
            # Two iterations queued on the workers while this one's loss and checkpoint are
            # fetched: the fetch (~100 MB at scale) must not leave the workers idle.
            nxt = it + 2
            if nxt < iterations:
                pending.append(self._submit_iteration(nxt))
            loss = self._loss(self.c.gather(step["loss"])) if step["loss"] else None
            if it + 1 == iterations or (self.every and (it + 1) % self.every == 0):
                self._checkpoint(step)
            self._report(it, time.perf_counter() - t0, loss)
            t0 = time.perf_counter()

    def _recover(self) -> None:
        """After a lost worker: go on from the newest iteration whose factors (both sides)
        a surviving worker holds as replicas, if the client saw it finish and holds no
        newer factors of its own."""
        try:
            held = self.c.run(replica_iterations, self.fit_id, on_error="return")
            usable = sorted(
                ((it, w) for w, its in held.items() if isinstance(its, list) for it in its
                 if self.done <= it < self.finished),
                reverse=True,
            )  # fmt: skip
            for it, worker in usable:
                got = self.c.run(replica_factors, self.fit_id, it, workers=[worker])
                if got.get(worker) is not None:  # None: evicted since it was listed
                    x, y = got[worker]
                    break
            else:
                return
        except _retryable():
            return  # another worker lost meanwhile: the client's own factors it is
        self.x[...] = x
        self.y[...] = y
        self.fetched = None
        self.done = it + 1

    def _forget(self) -> None:
        # A worker that is gone (or just restarted) holds nothing: errors are ignored, and
        # never replace the error the fit may be ending with.
        try:
            self.c.run(forget_replicas, self.fit_id, on_error="ignore")
        except Exception as exc:  # cleanup only
            _log.debug("could not drop the fit's replicas on the workers: %r", exc)

    def run(self) -> None:
        try:
            self._run()
        finally:
            self._forget()

    def _run(self) -> None:
        retryable = _retryable()
        failures = 0
        while True:
            start = self.done
            try:
                self._iterate()
                self._materialise()
                return
            except retryable as exc:
                self._recover()
                failures = 0 if self.done > start else failures + 1
                if failures > _MAX_RETRIES:
                    raise
                _log.warning(
                    "ALS lost a worker or its data (%s: %s); going on at iteration %d "
                    "(0-based; %d failure(s) in a row without progress, at most %d).",
                    type(exc).__name__, exc, self.done, failures, _MAX_RETRIES,
                )  # fmt: skip
                # The iterations after the factors the fit goes on from are run again.
                self.finished = self.done
                self.reported = min(self.reported, self.done)
                self.losses = self.losses[: self.reported]
                for side in self.sides:
                    side["blocks"], side["states"] = [], []
                time.sleep(0.2 * failures)


def fit_als(
    model: Any,
    interactions: Any,
    *,
    client: Any = None,
    blocks: int | None = None,
    num_threads: int = 1,
    checkpoint_every: int | None = None,
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
        Blocks per side (user blocks and item blocks, balanced by solve cost). Default: one
        per worker thread, each pinned to its worker.
    num_threads : int
        Threads of each block solve (0 = all cores of the worker's machine).
    checkpoint_every : int, optional
        Also fetch the factors to the client every this many iterations (overlapped with
        the next iteration), and write them to ``checkpoint_dir`` if given; 0: only at the
        end. Default: every iteration with a ``checkpoint_dir`` or when all blocks sit on
        one worker, else only at the end. A lost worker does not need them: every worker
        keeps the factors it fetched for its own solves (no extra transfer; about two more
        copies of each factor matrix per worker) and the fit goes on from the newest
        iteration a surviving worker holds, which costs the iterations in flight. Client
        checkpoints matter when every worker holding blocks is lost at once, or the client.
    checkpoint_dir : str or path-like, optional
        Write the factors there at every client checkpoint and resume from them when the
        same fit (same data and parameters) is started again.
    callback : callable, optional
        ``callback(iteration, seconds, loss)`` after each iteration, as for ``ALS.fit``.

    Returns
    -------
    ALS
        The same ``model``, fitted: factors equal (to float rounding of the Gram matrix) to
        ``ALS(same parameters).fit(interactions)``; a plain tastebud model (save, recommend,
        :func:`recommend_all` work as usual).
    """
    from tastebud.models._factors import check_weights
    from tastebud.models.als import ALS

    if not isinstance(model, ALS):
        raise TypeError(f"model must be a tastebud.models.ALS; got {type(model).__name__}.")
    num_threads = check_num_threads(num_threads)
    if blocks is not None:
        blocks = check_positive_int(blocks, "blocks")
    if checkpoint_every is not None and (
        isinstance(checkpoint_every, bool)
        or not isinstance(checkpoint_every, (int, np.integer))
        or checkpoint_every < 0
    ):
        raise ValueError(f"checkpoint_every must be None or an int >= 0; got {checkpoint_every!r}.")
    p = dict(model._checked())
    p["calculate_loss"] = bool(model.calculate_training_loss)
    data = as_interactions(interactions)
    cui = check_weights(data.matrix)
    if cui.nnz == 0:
        raise ValueError("interactions are empty: every weight is zero.")
    directory = None if checkpoint_dir is None else Path(checkpoint_dir)
    fingerprint = "" if directory is None else _fingerprint(model, cui)
    blas_limit = search._blas_controller().limit(limits=p["threads"], user_api="blas")

    with session(client) as c, blas_limit:
        run = _BlockALS(
            c, model, cui, p, blocks, num_threads,
            None if checkpoint_every is None else int(checkpoint_every), directory,
            fingerprint, callback,
        )  # fmt: skip
        run.run()
    x, y = run.x, run.y
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise FitError("ALS produced NaN or infinite factors: lower alpha or raise regularization.")
    model.users_ = data.users
    model.items_ = data.items
    model.seen_ = cui
    model.user_factors_ = x
    model.item_factors_ = y
    model.loss_history_ = np.asarray(run.losses, dtype=np.float64)
    model._refresh_popularity()
    return model
