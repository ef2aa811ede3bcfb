"""Block ALS on Dask: the single-process ALS of :mod:`tastebud.models.als`, one task per worker.

Layout (the block ALS of Spark MLlib; Das et al. 2017, "Distributed ALS on Spark"): the
interaction matrix is cut twice, into blocks of users (rows of ``C``) and blocks of items
(rows of ``C^T``). Each block is scattered once to the worker that owns it, with its factors.

Dask starts the work; it does not carry it. Each worker runs one long task (its *rank*) for
the whole fit, and the ranks talk to each other over plain TCP sockets (a full mesh, opened
through ``client.run`` on a free port of each worker's host, the way the Dask integrations
of LightGBM and XGBoost connect their workers):

* A half-iteration: each rank solves the rows of its blocks with the same C++ kernel as the
  single-process model (``als_solve``; one thread per row, so a row's result depends
  neither on the partitioning nor on the threads), writing straight into its copy of the
  full factor matrix, then sends those rows to every other rank and receives theirs into
  the same matrix (raw float bytes, no serialisation; ``recv_into`` the matrix itself).
  Every rank then holds the full new factors and computes ``w0 * Y^T Y`` from them exactly
  as ``ALS.fit`` does (one GEMM over the whole matrix; see ``_Rank._half``).
* Per iteration each rank logs a small event (its part of the training loss) through the
  scheduler; the client reports an iteration (loss, callback) once every rank has, and
  acknowledges it back. A rank starts iteration ``t`` only once the client reported
  ``t - 2``: the workers never wait for the client in a steady run, and never get more than
  two iterations ahead of it.

With the same seed the factors are those of ``ALS.fit`` (bit for bit when both use one BLAS
thread for the Gram matrix; the test asks 1e-4). Each task records where its time went
(``worker_timings``; see ``benchmarks/profile_distributed.py``).

Fault tolerance: every rank keeps two copies of each full factor matrix (buffer ``t % 2``
holds iteration ``t``), so it always holds the newest iteration it completed, which the
client has seen or is about to. If a worker is lost, the sockets to it close, the other
ranks stop, and the client goes on from the newest iteration that a surviving worker holds
and the client reported (or is reporting): the blocks are placed again on the workers alive
(interactions re-sent from the client) and a lost worker costs the iterations in flight.
The client also fetches the factors every ``checkpoint_every`` iterations: by default only
when the blocks sit on a single worker (whose copies would go with it) or with
``checkpoint_dir``, where it writes them (``.npz``, atomically), and a new ``fit_als`` call
on the same data and parameters resumes from the file (e.g. after the client process itself
died). The blocks keep their bounds, so the result is the same as without the failure.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import logging
import os
import queue
import secrets
import selectors
import socket
import ssl
import struct
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from tastebud import search
from tastebud._errors import FitError
from tastebud.distributed._cluster import session
from tastebud.distributed._common import check_num_threads, check_positive_int
from tastebud.models._factors import csr_parts
from tastebud.models.als import _gram_of, _loss_scale
from tastebud.models.base import as_interactions

__all__ = ["fit_als"]

_log = logging.getLogger("tastebud.distributed")
_CHECKPOINT = "als-checkpoint.npz"
_MAX_RETRIES = 3
#: seconds before a scatter to a worker that died unnoticed counts as lost (then retried)
_SCATTER_TIMEOUT = 60
#: seconds without news from the ranks after which the client asks the scheduler for their
#: events again
_SILENCE = 10.0


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


# --------------------------------------------------------------------------- worker state
#: Guards the per-process state below (the rank runs in a task thread; ``client.run``
#: functions in the worker's event loop).
_LOCK = threading.Lock()
#: (attempt, worker address) -> listening socket and TLS context, opened by
#: :func:`open_listener` before the ranks start (keyed by worker too: workers may share a
#: process, as with ``LocalCluster(processes=False)``)
_LISTENERS: dict[tuple[str, str], tuple[socket.socket, ssl.SSLContext | None]] = {}
#: fits that ended: a rank of theirs still running stops, and keeps nothing
_ENDED: deque[str] = deque(maxlen=256)
#: Fits whose factors a worker holds at most (a client that died never says it is done:
#: the oldest fit's copies go when a new fit starts).
_KEPT_FITS = 4
#: seconds a blocked socket call waits before it checks whether its attempt was abandoned
_POLL = 0.5
#: seconds a rank waits for the others to connect (a peer's worker may first have to finish
#: a task of an abandoned attempt)
_MESH_TIMEOUT = 300.0
#: seconds an accepted connection has to say hello (token and rank) before it is dropped
_HELLO_TIMEOUT = 2.0
_HELLO = struct.Struct("<32sq")  # token, rank
_HEADER = struct.Struct("<qqq")  # iteration, side, bytes that follow


class PeerLost(ConnectionError):
    """Another rank of the fit (``peer``, if known) closed its connection (its worker died
    or its task failed), or the client abandoned this attempt."""

    def __init__(self, message: str, peer: int | None = None) -> None:
        super().__init__(message)
        self.peer = peer


def _fit_of(attempt: str) -> str:
    return attempt.split(":", 1)[0]


class _Control:
    """What the client tells the ranks of one attempt, through a Dask ``Variable`` (the
    scheduler holds it; setting it never waits on a worker, even a dead one): how many
    iterations it has reported, or -1 once it abandoned the attempt. A client that died
    says nothing: the scheduler then releases its tasks, which the rank sees as its own
    task no longer wanted on this worker."""

    def __init__(self, attempt: str, reported: int, worker: Any = None, key: str = "") -> None:
        from distributed import Variable, get_client

        self.attempt, self.worker, self.key = attempt, worker, key
        self.var = Variable(_control_name(attempt), client=get_client())
        self.reported = reported
        self.read_at = time.monotonic()

    def check(self, force: bool = False) -> None:
        """Raise ``PeerLost`` if the attempt was abandoned, or this rank's task released
        (asks the scheduler at most every ``_POLL`` seconds unless ``force``)."""
        if _fit_of(self.attempt) in _ENDED:
            raise PeerLost(f"fit {_fit_of(self.attempt)} has ended")
        if self.worker is not None:
            task = self.worker.state.tasks.get(self.key)
            if task is None or task.state == "cancelled":
                raise PeerLost(f"task {self.key} was released (the client cancelled it or died)")
        if not force and time.monotonic() - self.read_at < _POLL:
            return
        value = int(self.var.get(timeout=_SCATTER_TIMEOUT))
        self.read_at = time.monotonic()
        if value < 0:
            raise PeerLost(f"attempt {self.attempt} was abandoned by the client")
        self.reported = max(self.reported, value)

    def wait_reported(self, need: int) -> float:
        """Wait until the client has reported ``need`` iterations (not in a steady run);
        returns the seconds spent sleeping for it."""
        pause, slept = 0.002, 0.0
        while self.reported < need:
            self.check(force=True)
            if self.reported < need:
                t0 = time.perf_counter()
                time.sleep(pause)
                slept += time.perf_counter() - t0
                pause = min(2 * pause, 0.1)
        return slept


def _control_name(attempt: str) -> str:
    return f"tastebud-als-control-{attempt}"


def _mesh_host(address: str) -> str:
    """The host a worker's rank listens on: the one its Dask address names."""
    from distributed.comm import get_address_host

    return "127.0.0.1" if address.startswith("inproc://") else get_address_host(address)


def _tls(worker: Any, listen: bool) -> ssl.SSLContext | None:
    """The worker's own TLS context (the cluster's CA, mutual authentication) if the
    cluster uses TLS: the ranks then speak TLS to each other too."""
    if not worker.address.startswith("tls://"):
        return None
    security = worker.security
    args = security.get_listen_args("worker") if listen else security.get_connection_args("worker")
    return args["ssl_context"]


def open_listener(attempt: str, dask_worker: Any = None) -> tuple[str, int]:
    """Worker function (``client.run``): listen for the other ranks of ``attempt`` on a free
    port of this worker's host; returns ``(host, port)``."""
    host = _mesh_host(dask_worker.address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, 0), family=family, backlog=128)
    sock.settimeout(_POLL)
    with _LOCK:
        _LISTENERS[(attempt, dask_worker.address)] = (sock, _tls(dask_worker, listen=True))
    return host, int(sock.getsockname()[1])


def forget_fit(fit: str) -> None:
    """Worker function: the fit ended; drop its factors, stop any rank of it still running."""
    with _LOCK:
        _ENDED.append(fit)
        for key in [k for k in _REPLICAS if k[0] == fit]:
            del _REPLICAS[key]
        listeners = [k for k in _LISTENERS if _fit_of(k[0]) == fit]
        socks = [_LISTENERS.pop(k)[0] for k in listeners]
    for sock in socks:
        sock.close()


class _Replica:
    """One fit's full factor matrices on this worker, two of each side: buffer ``t % 2``
    holds iteration ``t`` (so the newest complete iteration survives the next one)."""

    def __init__(self, shapes: list[tuple[int, int]], dtype: np.dtype) -> None:
        self.bufs = [[np.empty(shape, dtype), np.empty(shape, dtype)] for shape in shapes]
        #: iterations whose buffers hold both sides, complete
        self.complete: list[int] = []

    def begin(self, it: int) -> None:
        """Iteration ``it`` is about to overwrite the buffers of ``it - 2``."""
        with _LOCK:
            self.complete = [c for c in self.complete if c != it - 2]

    def finish(self, it: int) -> None:
        with _LOCK:
            self.complete = [c for c in self.complete if c == it - 1] + [it]

    def copies(self, it: int) -> tuple[np.ndarray, np.ndarray] | None:
        with _LOCK:  # held while copying: ``begin`` waits for it
            if it not in self.complete:
                return None
            return self.bufs[0][it % 2].copy(), self.bufs[1][it % 2].copy()


#: (fit, worker address) -> the factors of the fit's last rank on that worker
_REPLICAS: dict[tuple[str, str], _Replica] = {}


def _register(fit: str, worker: str, replica: _Replica) -> None:
    with _LOCK:
        if fit in _ENDED:
            raise PeerLost(f"fit {fit} has ended")
        key = (fit, worker)
        if key not in _REPLICAS and len({k[0] for k in _REPLICAS} | {fit}) > _KEPT_FITS:
            oldest = next(iter(_REPLICAS))[0]  # insertion order: the oldest fit
            for k in [k for k in _REPLICAS if k[0] == oldest]:
                del _REPLICAS[k]
        _REPLICAS[key] = replica


def _address(dask_worker: Any) -> str:
    return "" if dask_worker is None else str(dask_worker.address)


def replica_iterations(fit: str, dask_worker: Any = None) -> list[int]:
    """Worker function: the iterations of which this worker holds both sides' factors."""
    with _LOCK:
        replica = _REPLICAS.get((fit, _address(dask_worker)))
        return [] if replica is None else list(replica.complete)


def replica_factors(
    fit: str, iteration: int, dask_worker: Any = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """Worker function: copies of (user, item) factors after ``iteration`` (None if this
    worker no longer holds them)."""
    with _LOCK:
        replica = _REPLICAS.get((fit, _address(dask_worker)))
    return None if replica is None else replica.copies(iteration)


#: Per worker process: timings of the last half-iterations (see :func:`worker_timings`).
_TIMINGS: deque[dict[str, Any]] = deque(maxlen=4096)


def worker_timings(clear: bool = False) -> list[dict[str, Any]]:
    """Timings of this process's recent half-iterations (run on a worker via ``client.run``).

    One dict per half-iteration of a rank: ``tag`` (side, rank, iteration), wall-clock
    ``start``/``end`` (``time.time``, comparable across processes of one machine) and,
    measured with ``perf_counter`` (wall) and ``thread_time`` (CPU of the rank's thread),
    the phases ``wait`` (for the client's acknowledgement), ``solve`` (warm-start copy and
    the C++ kernel), ``exchange`` (sending this rank's rows and receiving the others':
    includes waiting for slower ranks) and ``gram``.
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


# --------------------------------------------------------------------------- the mesh
def _bytes(view: np.ndarray) -> memoryview:
    return memoryview(view).cast("B")


class _Mesh:
    """The sockets from one rank to every other rank of an attempt (rank ``i`` connects to
    the ranks below it and accepts the ones above), and the exchange of factor rows.

    An exchange runs in the rank's thread alone: non-blocking sockets and one selector, so
    that sending to and receiving from every peer proceed together without threads (a TLS
    socket must not be read and written by two threads at once)."""

    def __init__(
        self, control: _Control, rank: int, addresses: list[tuple[str, int]], token: bytes,
        worker: str = "", tls: ssl.SSLContext | None = None,
    ) -> None:  # fmt: skip
        self.control, self.rank, self.tls = control, rank, tls
        self.peers: dict[int, socket.socket] = {}
        #: peers whose TLS send waits for the socket to be readable (SSLWantReadError)
        self.send_wants_read: set[int] = set()
        with _LOCK:
            entry = _LISTENERS.pop((control.attempt, worker), None)
        if entry is None:  # abandoned, or the worker restarted since it was opened
            raise PeerLost(f"no listener for attempt {control.attempt} on this worker")
        listener, self.tls_server = entry
        try:
            deadline = time.monotonic() + _MESH_TIMEOUT
            for j in range(rank):
                self.peers[j] = self._connect(j, addresses[j], token, deadline)
            while len(self.peers) < len(addresses) - 1:
                self._accept(listener, token, deadline, len(addresses))
        except BaseException:
            self.close()
            raise
        finally:
            listener.close()
        for sock in self.peers.values():
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)

    def __enter__(self) -> _Mesh:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        for sock in self.peers.values():
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    # ------------------------------------------------------------ connecting
    def _waiting(self, deadline: float) -> None:
        self.control.check()
        if time.monotonic() > deadline:
            raise PeerLost(f"the other ranks of {self.control.attempt} did not connect in time")

    def _connect(
        self, peer: int, address: tuple[str, int], token: bytes, deadline: float
    ) -> socket.socket:
        """Connect to ``peer`` and say hello; retried until ``deadline`` (the peer's rank
        may not be accepting yet: a TLS handshake needs it to answer). A certificate that
        does not verify is a configuration error, raised at once."""
        while True:
            sock = None
            try:
                sock = socket.create_connection(tuple(address), timeout=_POLL)
                if self.tls is not None:
                    sock.settimeout(_HELLO_TIMEOUT)
                    sock = self.tls.wrap_socket(sock)  # the handshake, with the cluster's CA
                sock.settimeout(_HELLO_TIMEOUT)
                sock.sendall(_HELLO.pack(token, self.rank))
                return sock
            except ssl.SSLCertVerificationError as exc:
                sock.close()
                raise RuntimeError(
                    f"rank {self.rank} could not verify rank {peer}'s TLS certificate: {exc}"
                ) from exc
            except OSError as exc:
                if sock is not None:
                    sock.close()
                try:
                    self._waiting(deadline)
                except PeerLost as lost:
                    raise lost from exc  # says why the last try failed
                time.sleep(0.05)

    def _accept(self, listener: socket.socket, token: bytes, deadline: float, n: int) -> None:
        try:
            sock, _ = listener.accept()
        except TimeoutError:
            self._waiting(deadline)
            return
        hello_by = time.monotonic() + _HELLO_TIMEOUT
        try:
            sock.settimeout(_HELLO_TIMEOUT)
            if self.tls_server is not None:
                sock = self.tls_server.wrap_socket(sock, server_side=True)
            hello = bytearray(_HELLO.size)
            view, got = memoryview(hello), 0
            while got < len(hello):
                left = hello_by - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no hello in time")
                sock.settimeout(left)
                received = sock.recv_into(view[got:])
                if received == 0:
                    raise ConnectionError("closed before saying hello")
                got += received
            their_token, rank = _HELLO.unpack(hello)
        except OSError:  # a stranger, or a connector that gave up: it will retry
            sock.close()
            return
        if (
            not hmac.compare_digest(their_token, token)
            or not self.rank < rank < n
            or rank in self.peers
        ):
            sock.close()  # not one of this attempt's ranks
            return
        self.peers[rank] = sock

    # ------------------------------------------------------------ exchanging
    def exchange(
        self, buf: np.ndarray, side: int, it: int, ranges: dict[int, list[tuple[int, int]]]
    ) -> None:
        """Send this rank's rows of ``buf`` (``ranges[self.rank]``) to every other rank and
        receive theirs into ``buf``: afterwards ``buf`` is the same on every rank."""
        if not self.peers:
            return
        row = buf.shape[1] * buf.itemsize
        mine = [_bytes(buf[a:b]) for a, b in ranges[self.rank] if b > a]
        header = _HEADER.pack(it, side, sum(len(v) for v in mine))
        outgoing = {j: deque([memoryview(header), *mine]) for j in self.peers}
        heads = {j: bytearray(_HEADER.size) for j in self.peers}
        incoming = {j: deque([memoryview(heads[j])]) for j in self.peers}
        checked: set[int] = set()
        selector = selectors.DefaultSelector()
        try:
            for j, sock in self.peers.items():
                selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, j)
            while any(outgoing.values()) or any(incoming.values()):
                # A TLS socket may hold decrypted bytes that the selector cannot see.
                buffered = [j for j, q in incoming.items() if q and _pending(self.peers[j])]
                if buffered:
                    events = [(j, selectors.EVENT_READ) for j in buffered]
                else:
                    events = [(k.data, m) for k, m in selector.select(_POLL)]
                    if not events:
                        self.control.check()
                for j, mask in events:
                    send_on_read = j in self.send_wants_read and mask & selectors.EVENT_READ
                    if (mask & selectors.EVENT_WRITE or send_on_read) and outgoing[j]:
                        self.send_wants_read.discard(j)
                        self._move_some(j, outgoing[j], sending=True)
                    if mask & selectors.EVENT_READ and incoming[j]:
                        self._move_some(j, incoming[j], sending=False)
                        if not incoming[j] and j not in checked:  # the header is in
                            checked.add(j)
                            expected = (it, side, sum((b - a) * row for a, b in ranges[j]))
                            if _HEADER.unpack(heads[j]) != expected:
                                raise RuntimeError(
                                    f"rank {j} is out of step: sent {_HEADER.unpack(heads[j])}, "
                                    f"expected (iteration, side, bytes) {expected}"
                                )
                            incoming[j].extend(_bytes(buf[a:b]) for a, b in ranges[j] if b > a)
                    stalled = j in self.send_wants_read
                    reads = bool(incoming[j]) or stalled
                    writes = bool(outgoing[j]) and not stalled
                    wants = (selectors.EVENT_READ if reads else 0) | (
                        selectors.EVENT_WRITE if writes else 0
                    )
                    sock = self.peers[j]
                    if wants:
                        selector.modify(sock, wants, j)
                    elif sock in selector.get_map():
                        selector.unregister(sock)
        except BaseException:
            self.close()  # the other ranks see this rank go
            raise
        finally:
            selector.close()

    def _move_some(self, peer: int, queue_: deque[memoryview], sending: bool) -> None:
        """Send (or receive) what the socket to ``peer`` takes now of the first view."""
        sock = self.peers[peer]
        try:
            n = sock.send(queue_[0]) if sending else sock.recv_into(queue_[0])
        except ssl.SSLWantReadError:  # TLS: a send may need to read first (a key update)
            if sending:
                self.send_wants_read.add(peer)
            return
        except (BlockingIOError, ssl.SSLWantWriteError):
            return
        except OSError as exc:
            doing = "sending" if sending else "receiving"
            raise PeerLost(f"lost rank {peer} while {doing}: {exc!r}", peer) from exc
        if n == 0 and not sending:
            raise PeerLost(f"rank {peer} closed its connection", peer)
        queue_[0] = queue_[0][n:]
        if not len(queue_[0]):
            queue_.popleft()


def _pending(sock: socket.socket) -> int:
    """Decrypted bytes a TLS socket holds (0 for a plain socket)."""
    return sock.pending() if isinstance(sock, ssl.SSLSocket) else 0


# --------------------------------------------------------------------------- the rank task
def _fit_rank(
    spec: dict[str, Any], rank: int, addresses: list[tuple[str, int]], token: bytes,
    local: dict[str, Any],
) -> tuple[np.ndarray, np.ndarray] | None:  # fmt: skip
    """Worker task: one rank of a fit, for the whole fit. Returns the final (user, item)
    factors from rank 0, None from the others."""
    from distributed import get_worker

    worker = get_worker()
    control = _Control(spec["attempt"], spec["reported"], worker, _rank_key(spec["attempt"], rank))
    control.check(force=True)  # an attempt abandoned before this task started stops here
    ranked = _Rank(spec, rank, local, worker, control)
    tls = _tls(worker, listen=False)
    return ranked.run(_Mesh(control, rank, addresses, token, worker.address, tls))


def _rank_key(attempt: str, rank: int) -> str:
    return f"tastebud-als-{attempt}-rank{rank}"


class _Rank:
    """The iterations of one rank (see the module docstring)."""

    def __init__(
        self, spec: dict[str, Any], rank: int, local: dict[str, Any], worker: Any,
        control: _Control,
    ) -> None:  # fmt: skip
        self.s, self.rank, self.worker, self.control = spec, rank, worker, control
        self.replica = _Replica(spec["shapes"], np.dtype(spec["dtype"]))
        _register(spec["fit"], worker.address, self.replica)
        # side -> rank -> its row ranges, in block order
        self.ranges = [
            {r: [bd for bd, o in zip(bounds, owners, strict=True) if o == r]
             for r in range(spec["ranks"])}
            for bounds, owners in zip(spec["bounds"], spec["owners"], strict=True)
        ]  # fmt: skip
        self.blocks = local["blocks"]  # side -> own blocks' payloads, in block order
        self.factors = local["factors"]  # side -> own blocks' factors, in block order
        # This rank's blocks of a side run side by side on the worker's threads, as tasks
        # would; with one thread (or one block) in the rank's own thread.
        threads = min(max(len(b) for b in self.blocks), int(getattr(worker, "nthreads", 1)))
        self.pool = ThreadPoolExecutor(threads) if threads > 1 else None
        self.core = search._core()
        self.threads = search.resolve_threads(spec["params"][4])

    def run(self, mesh: _Mesh) -> tuple[np.ndarray, np.ndarray] | None:
        try:
            with mesh:
                return self._iterate(mesh)
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=False)

    def _iterate(self, mesh: _Mesh) -> tuple[np.ndarray, np.ndarray] | None:
        s = self.s
        start, iterations = s["start"], s["iterations"]
        bufs = self.replica.bufs
        # The factors the fit goes on from: this rank's blocks from the client, the items'
        # of the others over the mesh (the users' are not needed before they are solved).
        for side in (0, 1):
            for (a, b), rows in zip(self.ranges[side][self.rank], self.factors[side], strict=True):
                bufs[side][(start - 1) % 2][a:b] = rows
        self.factors = None
        y = bufs[1][(start - 1) % 2]
        mesh.exchange(y, 1, start - 1, self.ranges[1])
        gram = self._gram(y)
        began = time.perf_counter()
        for it in range(start, iterations):
            clock = _Clock()
            slept = self.control.wait_reported(it - 1)
            self.replica.begin(it)
            clock.lap("wait")
            x, gram = self._half(mesh, 0, it, gram, clock)
            y, gram = self._half(mesh, 1, it, gram, _Clock())
            self.replica.finish(it)
            # The iteration's time since the previous one ended, as ALS.fit's: all of this
            # rank's work and bookkeeping, but not the sleeps waiting for a slow client nor
            # the training loss (ALS.fit times it apart too).
            self._log(it, time.perf_counter() - began - slept, x, y, gram)
            began = time.perf_counter()
        if self.rank != 0:
            return None
        last = (iterations - 1) % 2
        return bufs[0][last], bufs[1][last]

    def _half(
        self, mesh: _Mesh, side: int, it: int, gram: np.ndarray, clock: _Clock
    ) -> tuple[np.ndarray, np.ndarray]:
        """Solve this rank's blocks of ``side`` against the other side's factors (whose
        ``Y^T Y`` is ``gram``), exchange them; returns the full new factors and their
        ``Y^T Y``."""
        alpha, w0, solver, cg_steps, num_threads = self.s["params"]
        bufs = self.replica.bufs[side]
        cur, prev = bufs[it % 2], bufs[(it - 1) % 2]
        fixed = self.replica.bufs[1 - side][(it if side == 1 else it - 1) % 2]
        scaled = np.ascontiguousarray(w0 * gram, dtype=cur.dtype)

        def solve(k: int) -> None:
            a, b = self.ranges[side][self.rank][k]
            block = self.blocks[side][k]
            np.copyto(cur[a:b], prev[a:b])  # CG warm-starts from the previous factors
            self.core.als_solve(
                block["indptr"], block["indices"], block["data"], fixed, scaled, block["reg"],
                cur[a:b], alpha, w0, solver, cg_steps, num_threads,
            )  # fmt: skip

        if self.pool is None:
            for k in range(len(self.blocks[side])):
                solve(k)
        else:
            list(self.pool.map(solve, range(len(self.blocks[side]))))
        clock.lap("solve")
        mesh.exchange(cur, side, it, self.ranges[side])
        clock.lap("exchange")
        gram = self._gram(cur)
        clock.lap("gram")
        clock.done((side, self.rank, it))
        return cur, gram

    def _gram(self, y: np.ndarray) -> np.ndarray:
        """``Y^T Y`` exactly as ALS.fit computes it (one GEMM over the whole matrix, its BLAS
        threads limited the same way): the first half-iterations, against tiny initial
        factors, amplify its rounding ~1e4-fold, so per-block partial sums (a different
        rounding) would not reproduce ALS.fit to 1e-4."""
        return _gram_of(y, 1.0, self.threads, y.dtype)

    def _log(self, it: int, seconds: float, x: np.ndarray, y: np.ndarray, gram: np.ndarray) -> None:
        """Tell the client (through the scheduler) that this rank finished iteration ``it``
        in ``seconds``, with its part of the training loss: its user blocks' rows (as
        ``ALS._loss``) and its item blocks' regularisation term."""
        loss = None
        if self.s["calculate_loss"]:
            alpha, w0, _, _, num_threads = self.s["params"]
            g = np.ascontiguousarray(gram, dtype=y.dtype)
            users = 0.0
            for (a, b), block in zip(self.ranges[0][self.rank], self.blocks[0], strict=True):
                rows = self.core.als_loss(
                    block["indptr"], block["indices"], block["data"], y, g, block["reg"],
                    x[a:b], alpha, w0, num_threads,
                )  # fmt: skip
                users += float(rows.sum())
            items = 0.0
            for (a, b), block in zip(self.ranges[1][self.rank], self.blocks[1], strict=True):
                norms = np.einsum("ij,ij->i", y[a:b], y[a:b], dtype=np.float64)
                items += float(block["reg"].astype(np.float64) @ norms)
            loss = [users, items]
        msg = {"attempt": self.s["attempt"], "it": it, "rank": self.rank, "loss": loss,
               "seconds": seconds}  # fmt: skip
        self.worker.log_event(self.s["topic"], msg)


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
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, directory / _CHECKPOINT)
        if os.name == "posix":  # the rename too (a crash may otherwise keep the older file)
            fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
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
    """A worker the fit runs on left the cluster."""


def _retryable() -> tuple[type[BaseException], ...]:
    """Errors that mean "a worker or its data was lost", after which the fit goes on from
    the newest factors still held. Errors raised by the kernel itself (bad input) propagate."""
    import asyncio

    from distributed.client import FutureCancelledError

    import distributed

    plural = getattr(distributed.client, "FuturesCancelledError", FutureCancelledError)
    return (
        LostData,
        PeerLost,
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
    """The client side of one ``fit_als`` call: placement, reports, checkpoints, recovery."""

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
        x = rng.random((n, f), dtype=np.float32)
        x *= np.float32(0.01)
        y = rng.random((m, f), dtype=np.float32)
        y *= np.float32(0.01)
        self.x, self.y = x.astype(p["dtype"], copy=False), y.astype(p["dtype"], copy=False)
        reg_u = model._row_reg(np.diff(cui.indptr), m, p)
        reg_i = model._row_reg(np.diff(ciu.indptr), n, p)
        self.model, self.reg = model, (reg_u, reg_i)
        self.directory, self.fingerprint = directory, fingerprint
        #: iterations whose factors the client holds (in x/y and the checkpoint file)
        self.done, self.losses = (
            (0, [])
            if directory is None
            else _read_checkpoint(directory, fingerprint, self.x, self.y)
        )
        #: iterations whose loss the client recorded and callback it called
        self.reported = self.done
        #: names this fit on the workers (its factors, its events)
        self.fit_id = uuid.uuid4().hex
        self.topic = f"tastebud-als-{self.fit_id}"
        self.attempts = 0
        #: workers that a rank lost its connection to, or that left: not used again
        self.suspects: set[str] = set()
        n_blocks = blocks or len(self._slots())
        self.sides = [
            {"matrix": cui, "reg": reg_u, "bounds": _balanced_bounds(cui.indptr, n_blocks, f // 2)},
            {"matrix": ciu, "reg": reg_i, "bounds": _balanced_bounds(ciu.indptr, n_blocks, f // 2)},
        ]  # fmt: skip
        self.params = (p["alpha"], p["w0"], p["solver"], p["cg_steps"], num_threads)
        #: None: client checkpoints only with a checkpoint_dir, or when the blocks sit on a
        #: single worker (whose copies would be lost with it); ``_place`` sets ``every``
        self.checkpoint_every = checkpoint_every
        self.every = 0
        self.callback = callback
        self.loss_scale = _loss_scale(cui.data, n * m, p)
        self.workers: list[str] = []
        #: the last error raised by the caller's callback or a checkpoint write
        self.own_error: BaseException | None = None
        #: the Dask Variable through which the client talks to the ranks of each attempt
        self.control: Any = None
        self.controls: list[Any] = []
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()

    def _slots(self) -> list[str]:
        """One entry per worker thread (workers sorted by address): where blocks go."""
        nthreads = self._healthy()
        if not nthreads:
            self.c.wait_for_workers(len(self.suspects) + 1, timeout=_SCATTER_TIMEOUT)
            nthreads = self._healthy()
        slots = [[w] * max(1, int(t)) for w, t in sorted(nthreads.items())]
        # Interleave so that consecutive blocks go to different workers first.
        return [w for group in itertools.zip_longest(*slots) for w in group if w is not None]

    def _place(self, futures: list[Any]) -> None:
        """Scatter every block's interactions and factors (the client's, of iteration
        ``done - 1``) to the workers alive now and start one rank on each (into
        ``futures``: filled as they are submitted, so that a failure halfway stops them)."""
        self.control = None
        slots = self._slots()
        self.workers = sorted(set(slots))
        rank_of = {w: r for r, w in enumerate(self.workers)}
        owners = [
            [rank_of[slots[j % len(slots)]] for j in range(len(side["bounds"]))]
            for side in self.sides
        ]
        used = {r for side in owners for r in side}
        self.every = (
            self.checkpoint_every
            if self.checkpoint_every is not None
            else int(self.directory is not None or len(used) < 2)
        )
        self.attempts += 1
        attempt = f"{self.fit_id}:{self.attempts}"
        self.attempt = attempt
        listening = self.c.run(open_listener, attempt, workers=self.workers)
        from distributed import Variable

        self.control = Variable(_control_name(attempt), client=self.c)
        self.control.set(self.reported)
        self.controls.append(self.control)
        spec = {
            "fit": self.fit_id, "attempt": attempt, "topic": self.topic,
            "ranks": len(self.workers), "start": self.done, "iterations": self.p["iterations"],
            "reported": self.reported, "calculate_loss": self.p["calculate_loss"],
            "params": self.params, "dtype": np.dtype(self.p["dtype"]).name,
            "shapes": [self.x.shape, self.y.shape], "owners": owners,
            "bounds": [side["bounds"] for side in self.sides],
        }  # fmt: skip
        addresses = [listening[w] for w in self.workers]
        token = secrets.token_bytes(32)
        factors = (self.x, self.y)
        locals_ = []
        for r in range(len(self.workers)):
            local: dict[str, list[list[Any]]] = {"blocks": [[], []], "factors": [[], []]}
            for which, side in enumerate(self.sides):
                for (a, b), owner in zip(side["bounds"], owners[which], strict=True):
                    if owner == r:
                        payload = _block_payload(side["matrix"], side["reg"], a, b)
                        local["blocks"][which].append(payload)
                        local["factors"][which].append(factors[which][a:b])  # sent, not copied
            locals_.append(local)

        def scatter(r: int) -> Any:
            [held] = self.c.scatter(
                [locals_[r]], workers=[self.workers[r]], hash=False, timeout=_SCATTER_TIMEOUT
            )
            return held

        # To every worker at once: the client's sends overlap the workers' receives.
        with ThreadPoolExecutor(len(self.workers)) as pool:
            held = list(pool.map(scatter, range(len(self.workers))))
        for r, worker in enumerate(self.workers):
            futures.append(
                self.c.submit(
                    _fit_rank, spec, r, addresses, token, held[r], workers=[worker],
                    allow_other_workers=False, pure=False, key=_rank_key(attempt, r),
                )
            )  # fmt: skip

    def _loss(self, parts: list[list[float]]) -> float:
        total = sum(u for u, _ in parts) + sum(i for _, i in parts)
        return total / self.loss_scale

    def _report(self, it: int, seconds: float, loss: float | None) -> None:
        if loss is not None:
            self.losses.append(loss)
        self.reported = it + 1
        if self.callback is not None:
            self._own(self.callback, it, seconds, loss)

    def _own(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run the caller's code (the callback) or a file write: what it raises ends the fit
        as it is, never taken for a lost worker (an ``OSError`` would look like one)."""
        try:
            return function(*args)
        except BaseException as exc:
            self.own_error = exc
            raise

    def _full_loss(self) -> float | None:
        """The training loss of the client's factors, as ``ALS.fit`` computes it."""
        if not self.p["calculate_loss"]:
            return None
        cui = self.sides[0]["matrix"]
        return self.model._loss(csr_parts(cui), self.x, self.y, *self.reg, self.loss_scale, self.p)

    def _checkpoint(
        self, it: int, losses: list[float], factors: tuple[np.ndarray, np.ndarray] | None = None
    ) -> None:
        """Take the factors after iteration ``it`` (from rank 0's worker unless given) as the
        client's copy, and write the file with ``losses`` (up to ``it``). The ranks cannot
        overwrite them before the client has reported ``it``."""
        if factors is None:
            got = self.c.run(replica_factors, self.fit_id, it, workers=[self.workers[0]])
            factors = got[self.workers[0]]
            if factors is None:
                raise LostData(f"the factors of iteration {it} are gone from rank 0")
        self.x, self.y = factors
        self.done = it + 1  # before the file: a failed write must not undo this
        if self.directory is not None:
            self._own(
                _write_checkpoint, self.directory, self.fingerprint, 2 * self.done, self.x,
                self.y, losses,
            )  # fmt: skip

    def _iterate(self) -> None:
        """Run from the client's factors to the end; raises a retryable error on a lost
        worker."""
        iterations = self.p["iterations"]
        if self.reported < self.done:  # recovered an iteration before it was reported
            self._report(self.done - 1, 0.0, self._full_loss())
        if self.done >= iterations:
            return
        futures: list[Any] = []
        try:
            self._place(futures)
            self._follow(futures, iterations)
        except BaseException:
            self._abandon(futures)
            raise

    def _follow(self, futures: list[Any], iterations: int) -> None:
        """Report the ranks' iterations as they come, until the last one."""
        arrived: dict[int, dict[int, Any]] = {}
        ranks = len(self.workers)
        watched = heard = time.monotonic()
        replayed = False
        while self.reported < iterations:
            try:
                msg = self.events.get(timeout=0.1)
            except queue.Empty:
                msg = None
            if msg is not None and msg["attempt"] == self.attempt and msg["it"] >= self.reported:
                arrived.setdefault(msg["it"], {})[msg["rank"]] = msg
                heard = time.monotonic()
            while len(arrived.get(self.reported, ())) == ranks:
                it = self.reported
                parts = list(arrived.pop(it).values())
                loss = self._loss([m["loss"] for m in parts]) if self.p["calculate_loss"] else None
                # the iteration's wall time on the workers (as ALS.fit's), not the client's
                seconds = max(m["seconds"] for m in parts)
                losses = self.losses + ([] if loss is None else [loss])
                if it + 1 == iterations:
                    self._checkpoint(it, losses, self._result(futures))
                elif self.every and (it + 1) % self.every == 0:
                    self._checkpoint(it, losses)
                self._report(it, seconds, loss)
                self.control.set(self.reported)
            if msg is None and time.monotonic() - watched > 0.5:
                watched = time.monotonic()
                self._watch(futures)
                ended = all(f.status == "finished" for f in futures)
                if ended and replayed:
                    raise RuntimeError("the ranks ended without reporting every iteration")
                # Events still on their way, or lost (a subscription is not renewed when
                # the client reconnects): the scheduler keeps them all.
                if ended or time.monotonic() - heard > _SILENCE:
                    replayed, heard = ended, time.monotonic()
                    for _, event in self.c.get_events(self.topic):
                        self.events.put(event)

    def _result(self, futures: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        """Rank 0's result (the final factors), watching for lost workers meanwhile."""
        from distributed import wait

        while True:
            try:
                wait(futures[0], timeout=0.5)
            except TimeoutError:
                self._watch(futures)
                continue
            self._watch(futures)
            return futures[0].result()

    def _watch(self, futures: list[Any]) -> None:
        """Raise the error a rank ended with (preferring one that is not about a lost peer,
        which the others see when any rank fails), or ``LostData`` for a lost worker."""
        ended = ("finished", "error", "cancelled", "lost")
        alive = set(self.c.nthreads())
        lost = sorted(set(self.workers) - alive)
        if not lost and not any(f.status in ended[1:] for f in futures):  # none failed
            return
        self.suspects.update(lost)
        from distributed import wait

        retryable = _retryable()
        errors = [f.exception() for f in futures if f.status == "error"]
        # The other ranks of workers still alive end soon after (their sockets closed),
        # unless a rank failed before its mesh was up: then its own error is the cause.
        running = [
            f for f, w in zip(futures, self.workers, strict=True)
            if w in alive and f.status not in ended
        ]  # fmt: skip
        if running and all(isinstance(e, retryable) for e in errors):
            try:
                wait(running, timeout=10)
            except TimeoutError:
                pass
            errors = [f.exception() for f in futures if f.status == "error"]
        # A rank that lost its connection names the peer. Suspect it only if that peer did
        # not end with an error of its own (a rank that fails closes its sockets, so its
        # peers name it although its worker is fine): a worker that died, or one the
        # scheduler has not dropped yet (calls to it would wait out a timeout).
        self.suspects.update(
            self.workers[e.peer]
            for e in errors
            if isinstance(e, PeerLost) and e.peer is not None
            and futures[e.peer].status != "error"
        )  # fmt: skip
        for exc in errors:
            if not isinstance(exc, retryable):
                raise exc
        if errors:
            raise errors[0]
        raise LostData(f"worker(s) {lost} left while the fit was running")

    def _healthy(self) -> dict[str, int]:
        """The workers alive and not suspect, with their threads."""
        return {w: t for w, t in self.c.nthreads().items() if w not in self.suspects}

    def _abandon(self, futures: list[Any]) -> None:
        """Stop the ranks of the current attempt (those still running stop at their next
        check) and release their data."""
        try:
            if self.control is not None:
                self.control.set(-1)
            if futures:
                self.c.cancel(futures)
        except Exception as exc:  # cleanup only: never hide the error the attempt ended with
            _log.debug("could not stop the ranks of %s: %r", self.attempt, exc)

    def _recover(self) -> None:
        """After a lost worker: go on from the newest iteration whose factors (both sides)
        a surviving worker holds, if the client reported it (or is about to: the next
        one) and holds no newer factors of its own."""
        try:
            held = self.c.run(replica_iterations, self.fit_id, workers=list(self._healthy()),
                              on_error="return")  # fmt: skip
            usable = sorted(
                ((it, w) for w, its in held.items() if isinstance(its, list) for it in its
                 if self.done <= it <= self.reported),
                reverse=True,
            )  # fmt: skip
        except _retryable():
            return  # another worker lost meanwhile: the client's own factors it is
        for it, worker in usable:
            try:
                got = self.c.run(replica_factors, self.fit_id, it, workers=[worker])
            except _retryable():
                continue  # that worker went too: the next candidate
            if got.get(worker) is not None:  # None: overwritten since it was listed
                self.x, self.y = got[worker]
                self.done = it + 1
                return

    def _forget(self) -> None:
        # A worker that is gone (or just restarted) holds nothing: errors are ignored, and
        # never replace the error the fit may be ending with.
        try:
            self.c.unsubscribe_topic(self.topic)
            for control in self.controls:
                control.delete()
            self.c.run(forget_fit, self.fit_id, workers=list(self._healthy()), on_error="ignore")
        except Exception as exc:  # cleanup only
            _log.debug("could not drop the fit's factors on the workers: %r", exc)

    def run(self) -> None:
        self.c.subscribe_topic(self.topic, lambda event: self.events.put(event[1]))
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
                return
            except retryable as exc:
                if exc is self.own_error:
                    raise
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
                self.reported = min(self.reported, self.done)
                self.losses = self.losses[: self.reported]
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
        Blocks per side (user blocks and item blocks, balanced by solve cost), dealt to the
        workers in turn. Default: one per worker thread. Each worker runs one task (a *rank*)
        for the whole fit, which solves its blocks (side by side on the worker's threads)
        and exchanges the solved rows with the other ranks directly (see Notes).
    num_threads : int
        Threads of each block solve (0 = all cores of the worker's machine).
    checkpoint_every : int, optional
        Also fetch the factors to the client every this many iterations, and write them to
        ``checkpoint_dir`` if given; 0: only at the end. Default: every iteration with a
        ``checkpoint_dir`` or when all blocks sit on one worker, else only at the end. A
        lost worker does not need them: every rank holds the whole factors of its last
        iterations (two copies of each factor matrix per worker) and the fit goes on from a
        surviving one, which costs the iterations in flight. Client checkpoints matter when
        every worker is lost at once, or the client.
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
        :func:`recommend_all` work as usual). ``callback``'s seconds are the iteration's wall
        time on the workers (0.0 for an iteration recovered from a worker's copy after a
        failure, before the client had reported it).

    Notes
    -----
    The ranks connect to each other over TCP, each listening on a free port of the host in
    its worker's Dask address (as the Dask integrations of LightGBM and XGBoost do), so the
    workers must be able to reach each other on any port, as Dask's own worker-to-worker
    transfers need. A connection is accepted only with the fit's random 32-byte token. On a
    ``tls://`` cluster the ranks use TLS with the workers' own certificates (mutual, the
    cluster's CA); on other transports the factor rows travel as raw, unencrypted floats.
    Each fit holds one thread of every worker for its whole run: two fits at once on
    one-thread workers can wait on each other (a rank gives up after 5 minutes).
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
