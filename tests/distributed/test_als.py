import os
import signal
import time

import numpy as np
import pytest

pytest.importorskip("distributed")

from tastebud.data import datasets
from tastebud.distributed import _als as distributed_als
from tastebud.distributed import fit_als, recommend_all
from tastebud.models.als import ALS
from tastebud.models.popularity import Popularity

DATA = datasets.synthetic(n_users=260, n_items=180, n_interactions=7000, random_state=5)
INTER = DATA.interactions


def _params(**extra):
    return {"factors": 8, "iterations": 4, "random_state": 7, **extra}


def _assert_same_fit(got: ALS, want: ALS) -> None:
    # Same kernel, same rows, same Gram matrix: equal to well within the 1e-4 promised.
    np.testing.assert_allclose(got.user_factors_, want.user_factors_, rtol=0, atol=1e-4)
    np.testing.assert_allclose(got.item_factors_, want.item_factors_, rtol=0, atol=1e-4)
    np.testing.assert_allclose(got.loss_history_, want.loss_history_, rtol=1e-6)
    np.testing.assert_array_equal(got.item_popularity_, want.item_popularity_)


@pytest.mark.parametrize(
    "extra",
    [
        {"solver": "cg", "calculate_training_loss": True},
        {"solver": "cholesky", "unobserved_weight": 0.5, "regularization_exponent": 1.0},
        {"dtype": "float64", "calculate_training_loss": True},
        {"iterations": 0},
    ],
    ids=["cg-loss", "cholesky-ials", "float64", "no-iterations"],
)
def test_fit_als_equals_single_process(client, extra):
    want = ALS(**_params(**extra), num_threads=1).fit(INTER)
    got = fit_als(ALS(**_params(**extra)), INTER, client=client, blocks=3)
    _assert_same_fit(got, want)
    users = INTER.users.ids_array
    np.testing.assert_array_equal(got.recommend(users, 5).ids, want.recommend(users, 5).ids)


def test_a_failed_rank_error_wins_over_the_lost_peers_it_caused():
    """When one rank fails (say, an error in its kernel), the others see their sockets close
    (PeerLost): the client raises that error, not a retry, and does not hold the failed
    rank's worker suspect (it closed its sockets itself). A peer lost without an error of its
    own is suspect (not used again in this fit); a worker that left is LostData."""

    class Future:
        def __init__(self, status, exc=None):
            self.status, self._exc = status, exc

        def exception(self):
            return self._exc

    class Client:
        def __init__(self, workers):
            self.workers = workers

        def nthreads(self):
            return dict.fromkeys(self.workers, 1)

    run = distributed_als._BlockALS.__new__(distributed_als._BlockALS)
    run.c, run.workers, run.suspects = Client(["w0", "w1"]), ["w0", "w1"], set()
    lost = distributed_als.PeerLost("rank 1 closed its connection", 1)
    with pytest.raises(ValueError, match="kernel"):
        run._watch([Future("error", lost), Future("error", ValueError("kernel"))])
    assert run.suspects == set()
    with pytest.raises(distributed_als.PeerLost):
        run._watch([Future("error", lost), Future("lost")])
    assert run.suspects == {"w1"}
    run.suspects = set()
    closed = distributed_als.PeerLost("rank 0 closed its connection", 0)
    with pytest.raises(distributed_als.PeerLost):  # both lost: only retryable errors
        run._watch([Future("error", lost), Future("error", closed)])
    assert run.suspects == set()
    run.c, run.suspects = Client(["w0"]), set()
    with pytest.raises(distributed_als.LostData, match="w1"):
        run._watch([Future("finished"), Future("pending")])
    assert run.suspects == {"w1"}
    run.c, run.suspects = Client(["w0", "w1"]), set()
    run._watch([Future("pending"), Future("finished")])  # all well: returns


def test_fitted_model_serves_recommend_all(client):
    model = fit_als(ALS(**_params()), INTER, client=client)
    frame = client.compute(recommend_all(model, k=6, client=client, partition_size=70)).result()
    want = model.recommend(INTER.users.ids_array, 6).to_frame()
    np.testing.assert_array_equal(frame["item"].to_numpy(), want["item"].to_numpy())
    np.testing.assert_array_equal(frame["score"].to_numpy(), want["score"].to_numpy())


def test_checkpoint_resumes_after_the_client_dies(client, tmp_path):
    want = ALS(**_params(), num_threads=1).fit(INTER)

    def crash(iteration, seconds, loss):
        if iteration == 1:
            raise KeyboardInterrupt("driver dies after iteration 1")

    with pytest.raises(KeyboardInterrupt):  # checkpoints after iterations 1 and 3 only
        fit_als(
            ALS(**_params()), INTER, client=client, checkpoint_dir=tmp_path, checkpoint_every=2,
            callback=crash,
        )  # fmt: skip
    seen = []
    got = fit_als(
        ALS(**_params()), INTER, client=client, checkpoint_dir=tmp_path,
        callback=lambda it, s, loss: seen.append(it),
    )  # fmt: skip
    assert seen == [2, 3]  # resumed after the checkpointed iterations
    _assert_same_fit(got, want)
    with pytest.raises(ValueError, match="checkpoint of another fit"):
        fit_als(ALS(**_params(factors=4)), INTER, client=client, checkpoint_dir=tmp_path)


def test_fit_als_bad_input(client):
    with pytest.raises(TypeError, match=r"tastebud\.models\.ALS"):
        fit_als(Popularity(), INTER, client=client)
    with pytest.raises(ValueError, match="blocks"):
        fit_als(ALS(), INTER, client=client, blocks=0)
    with pytest.raises(ValueError, match="factors"):
        fit_als(ALS(factors=0), INTER, client=client)
    with pytest.raises(ValueError, match="checkpoint_every"):
        fit_als(ALS(), INTER, client=client, checkpoint_every=-1)
    with pytest.raises(ValueError, match="empty"):
        fit_als(ALS(), INTER.matrix * 0, client=client)


@pytest.mark.parametrize(
    ("noticed", "every", "loss"),
    [(False, None, False), (True, None, False), (False, 1, False), (False, None, True)],
    ids=["at-once", "after-scheduler-noticed", "client-checkpoints", "with-loss"],
)
def test_worker_killed_mid_fit_gives_the_same_result(client, noticed, every, loss):
    """SIGKILL one worker process between iterations (its blocks and factor states are
    lost): the fit places the blocks again on the workers alive, goes on from the factors
    the surviving worker holds (or the client's checkpoint) and ends with the
    single-process result. "at-once" continues immediately (the iteration in flight
    fails); "after-scheduler-noticed" waits until the scheduler dropped the worker.
    Iteration 0 never runs again: the fit did not start over."""
    client.wait_for_workers(2, timeout=300)
    params = _params(iterations=5, calculate_training_loss=loss)
    want = ALS(**params, num_threads=1).fit(INTER)
    killed = []
    seen = []

    def kill_one(iteration, seconds, loss):
        seen.append(iteration)
        if iteration == 1 and not killed:
            address, pid = sorted(client.run(os.getpid).items())[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(address)
            while noticed and address in client.nthreads():
                time.sleep(0.05)

    got = fit_als(
        ALS(**params), INTER, client=client, blocks=4, checkpoint_every=every,
        callback=kill_one,
    )  # fmt: skip
    assert killed
    assert seen.count(0) == 1, seen
    assert sorted(set(seen)) == list(range(5)), seen  # every iteration reported
    _assert_same_fit(got, want)
    client.wait_for_workers(2, timeout=300)  # the nanny restarts it; leave the cluster whole
    kept = client.run(lambda: len(distributed_als._REPLICAS))  # dropped at the end
    assert not any(kept.values()), kept


def test_replicas_hold_the_newest_complete_iterations():
    """Worker-side bookkeeping of a rank's factors, in this process: buffer ``t % 2`` holds
    iteration ``t``; starting iteration ``t`` gives up ``t - 2``; copies are copies; a fit
    that ended keeps nothing and stops a late rank; the oldest orphan fit goes first."""
    fit = "test-fit"
    replica = distributed_als._Replica([(3, 2), (5, 2)], np.dtype(np.float32))
    distributed_als._register(fit, "", replica)  # "": no worker (the replica functions' default)
    assert distributed_als.replica_iterations(fit) == []
    for it in range(4):
        replica.begin(it)
        assert it - 2 not in distributed_als.replica_iterations(fit)
        replica.bufs[0][it % 2][:] = it
        replica.bufs[1][it % 2][:] = 10 + it
        replica.finish(it)
        assert distributed_als.replica_iterations(fit) == [max(0, it - 1), it][-min(it + 1, 2) :]
    x, y = distributed_als.replica_factors(fit, 2)
    assert x.shape == (3, 2)
    assert y.shape == (5, 2)
    assert (x == 2).all()
    assert (y == 12).all()
    x[:] = -1  # a copy: the worker's buffers are untouched
    assert (replica.bufs[0][0] == 2).all()
    replica.begin(4)  # overwrites the buffers of iteration 2
    assert distributed_als.replica_iterations(fit) == [3]
    assert distributed_als.replica_factors(fit, 2) is None
    distributed_als.forget_fit(fit)
    assert distributed_als.replica_iterations(fit) == []
    with pytest.raises(distributed_als.PeerLost, match="ended"):
        distributed_als._register(fit, "", replica)  # a late rank of the ended fit
    names = [f"orphan-{k}" for k in range(distributed_als._KEPT_FITS + 1)]
    for name in names:
        distributed_als._register(name, "", distributed_als._Replica([(1, 1)] * 2, np.float32))
    assert [fit for fit, _ in distributed_als._REPLICAS] == names[1:]
    for name in names:
        distributed_als.forget_fit(name)
    assert not distributed_als._REPLICAS


class _FakeControl:
    """Stands in for the client's ``Variable`` (the mesh only calls ``check``)."""

    def __init__(self, attempt: str) -> None:
        self.attempt = attempt
        self.abandoned = False

    def check(self, force: bool = False) -> None:
        if self.abandoned:
            raise distributed_als.PeerLost("abandoned")


WORKER = "tcp://127.0.0.1:1"  # the address the fake workers of the mesh tests have


def _listen(attempt: str, n: int) -> list[tuple[str, int]]:
    class Worker:
        address = WORKER

    return [distributed_als.open_listener(f"{attempt}:{r}", dask_worker=Worker()) for r in range(n)]


def test_mesh_exchanges_rows_and_rejects_strangers():
    """Three ranks in threads of this process: a connection with a wrong token (or none)
    is dropped without disturbing the mesh, and after each exchange every rank's matrix
    holds every rank's rows (blocks interleaved as the client places them)."""
    import socket
    import threading

    n, attempt, token = 3, "mesh-test", b"k" * 32
    addresses = _listen(attempt, n)
    stranger = socket.create_connection(addresses[0])  # before any rank: must be ignored
    stranger.sendall(b"x" * 40)
    silent = socket.create_connection(addresses[1])  # says nothing: must not block rank 1
    bounds = [(0, 3), (3, 4), (4, 9), (9, 11), (11, 12)]
    owners = [0, 1, 2, 0, 1]
    ranges = {r: [b for b, o in zip(bounds, owners, strict=True) if o == r] for r in range(n)}
    bufs = [np.full((12, 5), -1.0, np.float32) for _ in range(n)]
    errors = []

    def rank(r: int) -> None:
        try:
            control = _FakeControl(f"{attempt}:{r}")
            with distributed_als._Mesh(control, r, addresses, token, WORKER) as mesh:
                for it, side in [(0, 0), (0, 1), (1, 0)]:
                    for a, b in ranges[r]:
                        bufs[r][a:b] = 100 * it + 10 * side + np.arange(a, b)[:, None]
                    mesh.exchange(bufs[r], side, it, ranges)
                    with lock:
                        seen[r].append(bufs[r].copy())
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    lock = threading.Lock()
    seen = {r: [] for r in range(n)}
    threads = [threading.Thread(target=rank, args=(r,)) for r in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    stranger.close()
    silent.close()
    assert not errors, errors
    for k, (it, side) in enumerate([(0, 0), (0, 1), (1, 0)]):
        want = 100 * it + 10 * side + np.broadcast_to(np.arange(12)[:, None], (12, 5))
        for r in range(n):
            np.testing.assert_array_equal(seen[r][k], want)


def test_mesh_reports_a_lost_peer():
    """A rank whose peer closes its sockets mid-fit raises PeerLost naming that peer (the
    client's cue to recover), and a rank waiting on a peer that never comes stops when the
    client abandons the attempt."""
    import threading

    attempt, token = "mesh-lost", b"t" * 32
    addresses = _listen(attempt, 2)
    buf = [np.zeros((4, 2), np.float32) for _ in range(2)]
    ranges = {0: [(0, 2)], 1: [(2, 4)]}
    caught = []

    def first() -> None:
        with distributed_als._Mesh(
            _FakeControl(f"{attempt}:0"), 0, addresses, token, WORKER
        ) as mesh:
            try:
                mesh.exchange(buf[0], 0, 0, ranges)
            except distributed_als.PeerLost as exc:
                caught.append(exc)

    t = threading.Thread(target=first)
    t.start()
    peer = distributed_als._Mesh(_FakeControl(f"{attempt}:1"), 1, addresses, token, WORKER)
    peer.close()  # dies before sending anything
    t.join(timeout=30)
    assert len(caught) == 1, caught
    assert caught[0].peer == 1

    control = _FakeControl("mesh-alone:0")
    lonely = _listen("mesh-alone", 2)
    control.abandoned = True  # rank 1 never connects; the client gives up
    with pytest.raises(distributed_als.PeerLost, match="abandoned"):
        distributed_als._Mesh(control, 0, lonely, token, WORKER)
    distributed_als.forget_fit("mesh-alone")  # closes the other listener
    assert not [k for k in distributed_als._LISTENERS if k[0].startswith("mesh-")]


def test_on_a_tls_cluster_the_ranks_speak_tls():
    """On a cluster that uses TLS the ranks wrap their sockets with the workers' own TLS
    contexts (the cluster's CA, both sides authenticated): a plain connection, even with
    the right token, is dropped; the fit itself gives the single-process result."""
    import socket
    import threading

    from distributed.security import Security

    import distributed

    security = Security.temporary()

    class Worker:
        address = "tls://127.0.0.1:1"

    Worker.security = security
    attempt, token = "mesh-tls", b"s" * 32
    addresses = [
        distributed_als.open_listener(f"{attempt}:{r}", dask_worker=Worker()) for r in range(2)
    ]
    plain = socket.create_connection(addresses[0])
    plain.sendall(token + (1).to_bytes(8, "little"))  # a well-formed hello, without TLS
    bufs = [np.zeros((4, 3), np.float32) for _ in range(2)]
    ranges = {0: [(0, 1), (3, 4)], 1: [(1, 3)]}
    errors = []

    def rank(r: int) -> None:
        try:
            tls = distributed_als._tls(Worker(), listen=False)
            control = _FakeControl(f"{attempt}:{r}")
            mesh = distributed_als._Mesh(control, r, addresses, token, Worker.address, tls)
            with mesh:
                assert all(hasattr(s, "cipher") for s in mesh.peers.values())  # SSL sockets
                for a, b in ranges[r]:
                    bufs[r][a:b] = r + 1
                mesh.exchange(bufs[r], 0, 0, ranges)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    plain.close()
    assert not errors, errors
    for r in range(2):
        np.testing.assert_array_equal(bufs[r][:, 0], [1, 2, 2, 1])

    from tastebud.distributed import local_cluster

    want = ALS(**_params(), num_threads=1).fit(INTER)
    with (
        local_cluster(n_workers=2, threads_per_worker=1, security=security) as cluster,
        distributed.Client(cluster, security=security, set_as_default=False) as tls_client,
    ):
        assert all(w.startswith("tls://") for w in tls_client.nthreads())
        got = fit_als(ALS(**_params()), INTER, client=tls_client)
    _assert_same_fit(got, want)


def test_errors_of_the_callers_code_are_not_taken_for_a_lost_worker(client, tmp_path, caplog):
    """An exception from the callback or from writing the checkpoint file ends the fit as
    it is (an OSError or TimeoutError would otherwise look like a lost worker, and the fit
    would silently go on without the callback or the file)."""
    calls = []

    def fails(iteration, seconds, loss):
        calls.append(iteration)
        raise TimeoutError("the caller's own timeout")

    with caplog.at_level("WARNING", logger="tastebud.distributed"):
        with pytest.raises(TimeoutError, match="caller's own"):
            fit_als(ALS(**_params()), INTER, client=client, callback=fails)
        blocker = tmp_path / "a-file"
        blocker.write_text("not a directory")
        with pytest.raises(OSError):
            fit_als(ALS(**_params()), INTER, client=client, checkpoint_dir=blocker / "sub")
    assert calls == [0]
    assert not [r for r in caplog.records if "lost a worker" in r.getMessage()]


def test_ranks_stop_when_the_client_process_dies(client, tmp_path):
    """The client process is killed mid-fit (no chance to clean up): the scheduler releases
    its tasks and the ranks stop on their own, so the next fit (here resuming from the
    checkpoint the dead client wrote) gets the workers."""
    import subprocess
    import sys
    import textwrap

    child = textwrap.dedent(f"""
        import os, signal
        import distributed
        from tastebud.data import datasets
        from tastebud.distributed import fit_als
        from tastebud.models.als import ALS

        inter = datasets.synthetic(
            n_users=260, n_items=180, n_interactions=7000, random_state=5).interactions

        def die(iteration, seconds, loss):
            if iteration == 1:
                os.kill(os.getpid(), signal.SIGKILL)

        with distributed.Client({client.scheduler.address!r}) as c:
            fit_als(ALS(**{_params(iterations=6)!r}), inter, client=c,
                    checkpoint_dir={str(tmp_path)!r}, callback=die)
    """)
    done = subprocess.run([sys.executable, "-c", child], timeout=120, check=False)
    assert done.returncode == -signal.SIGKILL
    assert (tmp_path / "als-checkpoint.npz").exists()

    def executing(dask_worker):
        return [str(ts.key) for ts in dask_worker.state.executing]

    deadline = time.monotonic() + 30
    while any(client.run(executing).values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(client.run(executing).values())
    seen = []
    got = fit_als(
        ALS(**_params(iterations=6)), INTER, client=client, checkpoint_dir=tmp_path,
        callback=lambda it, s, loss: seen.append(it),
    )  # fmt: skip
    assert seen == [2, 3, 4, 5]
    _assert_same_fit(got, ALS(**_params(iterations=6), num_threads=1).fit(INTER))


def test_workers_in_one_process():
    """``LocalCluster(processes=False)``: the workers share a process (and its listeners and
    factor copies, keyed by worker address)."""
    import dask

    import distributed
    from tastebud.distributed import local_cluster

    want = ALS(**_params(), num_threads=1).fit(INTER)
    # The ranks' worker clients (for the client's acknowledgements) run in this process and
    # make themselves the default scheduler, as any worker client does; restored after.
    with (
        dask.config.set(scheduler=dask.config.get("scheduler", None)),
        local_cluster(n_workers=2, threads_per_worker=1, processes=False) as cluster,
        distributed.Client(cluster, set_as_default=False) as threads_client,
    ):
        assert len(threads_client.nthreads()) == 2
        got = fit_als(ALS(**_params()), INTER, client=threads_client, blocks=3)
    _assert_same_fit(got, want)


def test_mesh_accepts_every_rank_of_a_large_mesh():
    """The acceptor checks a hello's rank against the number of ranks (a mesh of 64 here),
    whatever the size of the hello."""
    import socket

    _listen("mesh-big", 1)
    listener, _ = distributed_als._LISTENERS.pop(("mesh-big:0", WORKER))
    mesh = distributed_als._Mesh.__new__(distributed_als._Mesh)
    mesh.control, mesh.rank, mesh.peers, mesh.tls_server = _FakeControl("mesh-big:0"), 0, {}, None
    token = b"b" * 32
    with listener:
        for rank in (41, 63):
            with socket.create_connection(listener.getsockname()) as hello:
                hello.sendall(distributed_als._HELLO.pack(token, rank))
                mesh._accept(listener, token, time.monotonic() + 10, 64)
            assert rank in mesh.peers
        mesh.close()


def test_tls_mesh_with_a_late_rank_and_a_bad_certificate():
    """TLS: a rank that starts after the handshake timeout is still connected to (the
    connector retries), megabytes of rows cross intact; a certificate from another CA fails
    at once with a clear error instead of waiting out the mesh deadline."""
    import threading

    from distributed.security import Security

    def worker(security):
        return type("W", (), {"address": "tls://127.0.0.1:1", "security": security})()

    def run(attempt, securities, delays, rows=4096):
        addresses = [
            distributed_als.open_listener(f"{attempt}:{r}", dask_worker=worker(sec))
            for r, sec in enumerate(securities)
        ]
        ranges = {0: [(0, rows // 3)], 1: [(rows // 3, rows)]}
        bufs = [np.zeros((rows, 64), np.float32) for _ in range(2)]
        controls = [_FakeControl(f"{attempt}:{r}") for r in range(2)]
        errors = {}

        def rank(r):
            time.sleep(delays[r])
            try:
                tls = distributed_als._tls(worker(securities[r]), listen=False)
                with distributed_als._Mesh(
                    controls[r], r, addresses, b"t" * 32, "tls://127.0.0.1:1", tls
                ) as mesh:
                    for a, b in ranges[r]:
                        bufs[r][a:b] = np.arange(a, b)[:, None] + 0.5
                    mesh.exchange(bufs[r], 0, 0, ranges)
            except BaseException as exc:  # surfaced below
                errors[r] = exc
                for control in controls:  # what the client does on a rank's error
                    control.abandoned = True

        threads = [threading.Thread(target=rank, args=(r,)) for r in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        return bufs, errors

    security = Security.temporary()
    late = distributed_als._HELLO_TIMEOUT + 0.5
    bufs, errors = run("tls-late", [security, security], [late, 0.0])
    assert not errors, errors
    want = np.broadcast_to(np.arange(4096)[:, None] + 0.5, (4096, 64))
    for buf in bufs:
        np.testing.assert_array_equal(buf, want)

    t0 = time.monotonic()
    _, errors = run("tls-badcert", [security, Security.temporary()], [0.0, 0.0])
    assert time.monotonic() - t0 < 30
    assert isinstance(errors.get(1), RuntimeError), errors  # the connector, at once
    assert "certificate" in str(errors[1])


def test_callback_seconds_are_the_workers_time_not_the_clients(client):
    """A slow callback holds the ranks back (they never run more than two iterations
    ahead of the client); the seconds reported are still the iterations' work, as ALS.fit
    reports them, not the time spent waiting for the client."""
    seconds = []

    def slow(iteration, s, loss):
        seconds.append(s)
        time.sleep(0.3)

    got = fit_als(ALS(**_params(iterations=5)), INTER, client=client, callback=slow)
    assert len(seconds) == 5
    assert max(seconds) < 0.2, seconds
    _assert_same_fit(got, ALS(**_params(iterations=5), num_threads=1).fit(INTER))
