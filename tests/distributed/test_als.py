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
    ],
    ids=["cg-loss", "cholesky-ials"],
)
def test_fit_als_equals_single_process(client, extra):
    want = ALS(**_params(**extra), num_threads=1).fit(INTER)
    got = fit_als(ALS(**_params(**extra)), INTER, client=client, blocks=3)
    _assert_same_fit(got, want)
    users = INTER.users.ids_array
    np.testing.assert_array_equal(got.recommend(users, 5).ids, want.recommend(users, 5).ids)


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
    kept = client.run(lambda: len(distributed_als._KEPT))  # replicas dropped at the end
    assert not any(kept.values()), kept


def test_replicas_are_kept_evicted_and_forgotten():
    """Worker-side replica bookkeeping, in this process, in the order a fit keeps them
    (user half t: the items after t - 1; item half t: the users after t): the two newest
    iterations held on both sides stay, older ones go back to the pool, and nothing is
    kept for a fit that ended."""
    fit = "test-fit"
    shapes = {0: (3, 2), 1: (5, 2)}  # users, items

    def keep(side: int, it: int, name: str = fit) -> bool:
        matrix = np.full(shapes[side], it, np.float32)
        return distributed_als._keep((name, side, it), matrix, True)

    def pooled(side: int) -> int:
        return len(distributed_als._POOL.get(shapes[side], []))

    distributed_als._POOL.clear()
    assert keep(1, -1)  # user half 0: the initial item factors
    assert keep(0, 0)  # item half 0
    assert not keep(0, 0)  # another block task of the same worker
    assert distributed_als.replica_iterations(fit) == []
    assert keep(1, 0)  # user half 1: iteration 0 is complete
    assert keep(0, 1)
    assert distributed_als.replica_iterations(fit) == [0]
    assert keep(1, 1)  # iterations 0 and 1 complete: the items of -1 go
    assert distributed_als.replica_iterations(fit) == [0, 1]
    assert (pooled(0), pooled(1)) == (0, 1)
    assert keep(0, 2)
    assert keep(1, 2)  # 1 and 2 complete: both sides of iteration 0 go
    assert distributed_als.replica_iterations(fit) == [1, 2]
    assert (pooled(0), pooled(1)) == (1, 2)
    x, y = distributed_als.replica_factors(fit, 1)
    assert x.shape == shapes[0]
    assert y.shape == shapes[1]
    assert (x == 1).all()
    assert (y == 1).all()
    assert distributed_als.replica_factors(fit, 0) is None  # evicted
    distributed_als.forget_replicas(fit)
    assert distributed_als.replica_iterations(fit) == []
    assert (pooled(0), pooled(1)) == (2, 2)  # at most two per shape
    assert not keep(0, 3)  # the fit ended: a late task keeps nothing
    assert distributed_als.replica_iterations(fit) == []
    # Fits whose client never ended them: the oldest goes when a new one starts keeping.
    names = [f"orphan-{k}" for k in range(distributed_als._KEPT_FITS + 1)]
    for name in names:
        assert keep(0, 0, name)
    assert list(distributed_als._KEPT) == names[1:]
    for name in names:
        distributed_als.forget_replicas(name)
    assert not distributed_als._KEPT
    distributed_als._POOL.clear()
