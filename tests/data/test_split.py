"""Tests of the train/test splits: partition, alignment, sizes, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tastebud.data import Interactions, split


def records(inter: Interactions) -> np.ndarray:
    """(user index, item index, weight, timestamp) rows, sorted, for multiset comparisons."""
    m = inter.matrix
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    ts = inter.timestamps if inter.timestamps is not None else np.zeros(m.nnz, np.int64)
    out = np.column_stack([rows, m.indices, m.data.astype(np.float64), ts])
    return out[np.lexsort(out.T[::-1])]


def assert_partition(inter: Interactions, train: Interactions, test: Interactions) -> None:
    for part in (train, test):
        assert part.users is inter.users
        assert part.items is inter.items
    assert train.nnz + test.nnz == inter.nnz
    both = np.concatenate([records(train), records(test)])
    np.testing.assert_array_equal(both[np.lexsort(both.T[::-1])], records(inter))
    # disjoint (user, item) pairs
    assert train.matrix.multiply(test.matrix).nnz == 0


interaction_sets = st.builds(
    lambda seed, n, nu, ni: _make(seed, n, nu, ni),
    st.integers(0, 2**31),
    st.integers(1, 300),
    st.integers(1, 25),
    st.integers(1, 40),
)


def _make(seed: int, n: int, n_users: int, n_items: int) -> Interactions:
    r = np.random.default_rng(seed)
    ts = r.integers(0, 50, n)  # many ties on purpose
    return Interactions.from_arrays(
        r.integers(0, n_users, n), r.integers(0, n_items, n), r.integers(1, 5, n), ts
    )


def expected_holdout_sizes(counts, fraction, minimum):
    n = np.floor(fraction * counts + 0.5).astype(int)
    n = np.minimum(np.maximum(n, 1), np.maximum(counts - 1, 1))
    return np.where(counts >= minimum, n, 0)


@settings(max_examples=40, deadline=None)
@given(interaction_sets, st.floats(0.05, 0.95), st.integers(2, 8), st.integers(0, 1000))
def test_random_holdout_properties(inter, fraction, minimum, seed):
    train, test = split.random_holdout(inter, fraction, min_interactions=minimum, random_state=seed)
    assert_partition(inter, train, test)
    counts = inter.user_counts()
    np.testing.assert_array_equal(
        test.user_counts(), expected_holdout_sizes(counts, fraction, minimum)
    )
    _, test2 = split.random_holdout(inter, fraction, min_interactions=minimum, random_state=seed)
    np.testing.assert_array_equal(records(test), records(test2))


def test_random_holdout_is_random(small):
    _, a = split.random_holdout(small, random_state=1)
    _, b = split.random_holdout(small, random_state=2)
    assert (a.matrix != b.matrix).nnz > 0
    # every user with >= 5 interactions has at least one test and one train interaction
    train, test = split.random_holdout(small)
    big = small.user_counts() >= 5
    assert np.all(test.user_counts()[big] >= 1)
    assert np.all(train.user_counts()[big] >= 1)
    assert np.all(test.user_counts()[~big] == 0)


@settings(max_examples=40, deadline=None)
@given(interaction_sets, st.integers(1, 4), st.integers(2, 6))
def test_last_n_properties(inter, n, minimum):
    train, test = split.last_n(inter, n, min_interactions=minimum)
    assert_partition(inter, train, test)
    counts = inter.user_counts()
    expected = np.where(counts >= minimum, np.minimum(n, counts - 1), 0)
    np.testing.assert_array_equal(test.user_counts(), expected)
    # reference: per user, the test entries are the latest by (timestamp, item index)
    m, ts = inter.matrix, inter.timestamps
    test_set = set(zip(*test.matrix.nonzero(), strict=True))
    for u in range(inter.n_users):
        lo, hi = m.indptr[u], m.indptr[u + 1]
        order = sorted(range(lo, hi), key=lambda p: (ts[p], m.indices[p]))
        latest = {(u, int(m.indices[p])) for p in order[len(order) - expected[u] :]}
        assert latest == {pair for pair in test_set if pair[0] == u}


def test_leave_last_out(small):
    train, test = split.leave_last_out(small)
    assert_partition(small, train, test)
    counts = small.user_counts()
    np.testing.assert_array_equal(test.user_counts(), (counts >= 3).astype(int))


@settings(max_examples=30, deadline=None)
@given(interaction_sets, st.floats(0.05, 0.95))
def test_temporal_properties(inter, fraction):
    train, test = split.temporal(inter, fraction=fraction)
    assert_partition(inter, train, test)
    if train.nnz and test.nnz:
        assert train.timestamps.max() < test.timestamps.min()
    assert test.nnz >= max(1, int(np.floor(fraction * inter.nnz + 0.5)))


def test_temporal_cutoff(small):
    cut = int(np.median(small.timestamps))
    train, test = split.temporal(small, cutoff=cut)
    assert_partition(small, train, test)
    assert np.all(test.timestamps >= cut)
    assert np.all(train.timestamps < cut)
    dt = np.datetime64(cut, "s")
    _, test_dt = split.temporal(small, cutoff=dt)
    np.testing.assert_array_equal(records(test_dt), records(test))


@settings(max_examples=30, deadline=None)
@given(interaction_sets, st.integers(2, 6), st.integers(0, 1000))
def test_kfold_partitions(inter, folds, seed):
    if inter.nnz < folds:
        with pytest.raises(ValueError, match="folds must be at most"):
            split.kfold(inter, folds, random_state=seed)
        return
    pairs = split.kfold(inter, folds, random_state=seed)
    assert len(pairs) == folds
    tests = []
    for train, test in pairs:
        assert_partition(inter, train, test)
        tests.append(records(test))
    sizes = [t.shape[0] for t in tests]
    assert max(sizes) - min(sizes) <= 1
    every = np.concatenate(tests)
    np.testing.assert_array_equal(every[np.lexsort(every.T[::-1])], records(inter))
    again = split.kfold(inter, folds, random_state=seed)
    for (_, a), (_, b) in zip(pairs, again, strict=True):
        np.testing.assert_array_equal(records(a), records(b))


def test_split_validation(small):
    no_time = Interactions.from_arrays([1, 2, 3], [1, 2, 3])
    with pytest.raises(ValueError, match="temporal needs timestamps"):
        split.temporal(no_time, fraction=0.5)
    with pytest.raises(ValueError, match="last_n needs timestamps"):
        split.leave_last_out(no_time)
    with pytest.raises(ValueError, match="exactly one of cutoff= and fraction="):
        split.temporal(small)
    with pytest.raises(ValueError, match="exactly one of cutoff= and fraction="):
        split.temporal(small, cutoff=1, fraction=0.5)
    with pytest.raises(ValueError, match=r"test_fraction must be a float in \(0, 1\); got 1.5"):
        split.random_holdout(small, 1.5)
    with pytest.raises(TypeError, match="test_fraction must be a float"):
        split.random_holdout(small, "0.2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fraction must be a float in"):
        split.temporal(small, fraction=0.0)
    with pytest.raises(ValueError, match="min_interactions must be an int >= 2; got 1"):
        split.random_holdout(small, min_interactions=1)
    with pytest.raises(ValueError, match="folds must be an int >= 2; got 1"):
        split.kfold(small, 1)
    with pytest.raises(ValueError, match="n must be an int >= 1; got 0"):
        split.last_n(small, 0)
    with pytest.raises(TypeError, match="inter must be an Interactions"):
        split.random_holdout(small.matrix)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="random_state must be"):
        split.kfold(small, random_state="x")  # type: ignore[arg-type]


def test_temporal_cutoff_accepts_datetime_and_timestamp(small):
    import datetime

    import pandas as pd

    cut = int(np.median(small.timestamps))
    _, expected = split.temporal(small, cutoff=cut)
    as_datetime = datetime.datetime.fromtimestamp(cut, tz=datetime.timezone.utc)
    for value in (
        as_datetime,  # aware: converted to UTC
        as_datetime.replace(tzinfo=None),  # naive: taken as UTC, like the timestamps
        pd.Timestamp(cut, unit="s"),
    ):
        _, test = split.temporal(small, cutoff=value)
        np.testing.assert_array_equal(records(test), records(expected))
