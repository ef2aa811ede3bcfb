import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from tastebud import metrics as M
from tests.metrics._cases import Case, random_problem, ranking_cases, to_csr
from tests.reference import metrics_reference as ref

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


@settings(deadline=None, max_examples=60)
@given(pairs=st.lists(st.tuples(finite, finite), min_size=1, max_size=30))
def test_rating_metrics_match_reference(pairs):
    t = [a for a, _ in pairs]
    p = [b for _, b in pairs]
    assert M.mse(t, p) == pytest.approx(ref.mse(t, p), rel=1e-12, abs=1e-9)
    assert M.rmse(t, p) == pytest.approx(ref.rmse(t, p), rel=1e-12, abs=1e-9)
    assert M.mae(t, p) == pytest.approx(ref.mae(t, p), rel=1e-12, abs=1e-9)


def test_rating_metrics_agree_with_sklearn(rng):
    metrics = pytest.importorskip("sklearn.metrics")
    t = rng.integers(1, 6, size=1000).astype(np.float64)
    p = t + rng.normal(0, 0.7, size=1000)
    assert M.mse(t, p) == pytest.approx(metrics.mean_squared_error(t, p), abs=1e-9)
    assert M.rmse(t, p) == pytest.approx(math.sqrt(metrics.mean_squared_error(t, p)), abs=1e-9)
    assert M.mae(t, p) == pytest.approx(metrics.mean_absolute_error(t, p), abs=1e-9)


def test_rating_per_user():
    t = np.array([1.0, 2.0, 3.0, 5.0])
    p = np.array([2.0, 2.0, 1.0, 5.0])
    users = np.array([0, 0, 2, 2])
    np.testing.assert_allclose(M.mae(t, p, users=users, reduce="none"), [0.5, np.nan, 1.0])
    np.testing.assert_allclose(M.mse(t, p, users=users, n_users=4, reduce="none"),
                               [0.5, np.nan, 2.0, np.nan])  # fmt: skip
    np.testing.assert_allclose(M.rmse(t, p, users=users, reduce="none"),
                               [math.sqrt(0.5), np.nan, math.sqrt(2.0)])  # fmt: skip
    assert M.mae(t, p, users=users) == pytest.approx(0.75)  # macro: users averaged
    assert M.mae(t, p) == pytest.approx(0.75)


@pytest.mark.parametrize("bad", [[1.0, np.nan], [np.nan, 1.0]])
def test_rating_rejects_nan(bad):
    with pytest.raises(ValueError, match="must not contain NaN"):
        M.rmse(bad, [1.0, 2.0])
    with pytest.raises(ValueError, match="must not contain NaN"):
        M.mae([1.0, 2.0], bad)


def test_rating_validation_messages():
    with pytest.raises(ValueError, match="same length; got 2 and 3"):
        M.mse([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="must not be empty"):
        M.mse([], [])
    with pytest.raises(ValueError, match="1-D array"):
        M.mae(np.ones((2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="must be finite"):
        M.mse([np.inf], [1.0])
    with pytest.raises(ValueError, match="users must be a 1-D integer array"):
        M.mse([1.0], [1.0], users=[0.5])
    with pytest.raises(ValueError, match="but n_users is 1"):
        M.mse([1.0, 1.0], [1.0, 1.0], users=[0, 3], n_users=1)
    with pytest.raises(ValueError, match="reduce must be one of"):
        M.mse([1.0], [1.0], reduce="sum")


# ---------------------------------------------------------------------------
# confusion
# ---------------------------------------------------------------------------


def test_confusion_textbook():
    # 6 items; item 5 excluded (seen). list [0, 1, 5] -> 5 dropped; relevant {0, 2, 5}
    rec = np.array([[0, 1, 5]])
    rel = sp.csr_array(np.array([[1, 0, 1, 0, 0, 1]]))
    excl = sp.csr_array(np.array([[0, 0, 0, 0, 0, 1]]))
    c = M.confusion_at_k(rec, rel, 6, k=3, exclude=excl)
    assert (c.tp[0], c.fp[0], c.fn[0], c.tn[0]) == (1, 1, 1, 2)
    assert c.precision[0] == 0.5
    assert c.recall[0] == 0.5
    assert c.miss_rate[0] == 0.5
    assert c.fallout[0] == pytest.approx(1 / 3)
    assert c.accuracy[0] == pytest.approx(3 / 5)
    no_ex = M.confusion_at_k(rec, rel, k=3)
    assert (no_ex.tp[0], no_ex.fp[0], no_ex.fn[0], no_ex.tn[0]) == (2, 1, 1, 2)
    means = no_ex.mean()
    assert set(means) == {"precision", "recall", "fallout", "miss_rate", "accuracy"}
    assert means["precision"] == pytest.approx(2 / 3)


@settings(deadline=None, max_examples=80)
@given(case=ranking_cases(), data=st.data())
def test_confusion_matches_reference(case: Case, data):
    excluded = [data.draw(st.sets(st.integers(0, case.n_items - 1))) for _ in case.rows]
    exclude = to_csr([dict.fromkeys(e, 1.0) for e in excluded], case.n_items)
    c = M.confusion_at_k(case.recommended, case.relevant, case.n_items, k=case.k, exclude=exclude)
    got = np.stack([c.tp, c.fp, c.fn, c.tn], axis=1)
    want = [
        ref.confusion(r, rel, case.k, case.n_items, e)
        for r, rel, e in zip(case.rows, case.rel, excluded, strict=True)
    ]
    np.testing.assert_array_equal(got, np.asarray(want, dtype=np.int64).reshape(-1, 4))
    assert (got.sum(axis=1) == case.n_items - np.array([len(e) for e in excluded])).all()


def test_confusion_parallel_equals_serial_and_matches_precision(rng, monkeypatch):
    from tastebud.metrics import _checks

    rec, rel = random_problem(rng, 400, 60, 10, 8)
    monkeypatch.setattr(_checks, "PARALLEL_MIN_WORK", 0)
    par = M.confusion_at_k(rec, rel, k=10)
    monkeypatch.setattr(_checks, "PARALLEL_MIN_WORK", 10**12)
    ser = M.confusion_at_k(rec, rel, k=10)
    for f in ("tp", "fp", "fn", "tn"):
        np.testing.assert_array_equal(getattr(par, f), getattr(ser, f))
    # full lists of length k: confusion precision == precision@k, recall == recall@k
    np.testing.assert_allclose(par.precision, M.precision_at_k(rec, rel, 10, reduce="none"))
    np.testing.assert_allclose(par.recall, M.recall_at_k(rec, rel, 10, reduce="none"))


def test_confusion_validation():
    rel = sp.csr_array((2, 5))
    with pytest.raises(ValueError, match="n_items is 4 but relevant has 5 columns"):
        M.confusion_at_k(np.array([[0], [1]]), rel, 4)
    with pytest.raises(ValueError, match=r"exclude must have 5 columns \(n_items\)"):
        M.confusion_at_k(np.array([[0], [1]]), rel, exclude=sp.csr_array((2, 4)))
