import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tastebud.data import Interactions, Sequences


def test_orders_by_time_then_item_index():
    inter = Interactions.from_arrays(
        ["u", "u", "u", "v", "v"], ["c", "a", "b", "x", "a"], timestamps=[5, 9, 5, 1, 0]
    )
    seqs = Sequences.from_interactions(inter)
    assert len(seqs) == 2
    # u: c@5 and b@5 tie -> lower item index first (b < c), then a@9
    assert seqs.to_lists() == [["b", "c", "a"], ["a", "x"]]
    assert seqs.users.tolist() == inter.users.index(["u", "v"]).tolist()
    assert seqs.timestamps.tolist() == [5, 5, 9, 0, 1]
    np.testing.assert_array_equal(seqs[1], inter.items.index(["a", "x"]))
    np.testing.assert_array_equal(seqs[-1], seqs[1])
    assert seqs.lengths().tolist() == [3, 2]
    assert seqs.n_events == 5
    assert repr(seqs) == "Sequences(n_sequences=2, n_events=5)"
    assert [s.tolist() for s in seqs] == [seqs[0].tolist(), seqs[1].tolist()]


def test_session_gap_and_min_length():
    inter = Interactions.from_arrays(
        [0] * 6 + [1] * 2, [1, 2, 3, 4, 5, 6, 1, 2], timestamps=[0, 10, 100, 105, 500, 511, 0, 3]
    )
    seqs = Sequences.from_interactions(inter, session_gap=10)
    # gaps of exactly 10 stay in the session; 90, 395 and 11 cut
    assert seqs.to_lists() == [[1, 2], [3, 4], [5], [6], [1, 2]]
    assert seqs.users.tolist() == [0, 0, 0, 0, 1]
    long = Sequences.from_interactions(inter, session_gap=10, min_length=2)
    assert long.to_lists() == [[1, 2], [3, 4], [1, 2]]
    assert long.users.tolist() == [0, 0, 1]
    assert long.timestamps.tolist() == [0, 10, 100, 105, 0, 3]


def test_without_timestamps_uses_item_order():
    inter = Interactions.from_arrays([0, 0, 1], [3, 1, 2])
    assert Sequences.from_interactions(inter).to_lists() == [[1, 3], [2]]
    with pytest.raises(ValueError, match="session_gap needs"):
        Sequences.from_interactions(inter, session_gap=5)


def test_empty_users_and_bad_input():
    full = Interactions.from_arrays([0, 1, 2], [0, 1, 1], timestamps=[1, 2, 3])
    inter = full.select_users([0, 2], keep_vocabulary=True)  # user index 1 has no events
    seqs = Sequences.from_interactions(inter)
    assert seqs.users.tolist() == [0, 2]
    assert seqs.to_lists() == [[0], [1]]
    with pytest.raises(TypeError, match="Interactions"):
        Sequences.from_interactions([[1, 2]])
    with pytest.raises(ValueError, match="session_gap"):
        Sequences.from_interactions(inter, session_gap=-1)
    with pytest.raises(TypeError, match="session_gap"):
        Sequences.from_interactions(inter, session_gap="1h")
    with pytest.raises(ValueError, match="min_length"):
        Sequences.from_interactions(inter, min_length=0)
    with pytest.raises(IndexError, match="sequence index"):
        seqs[5]
    with pytest.raises(TypeError, match="sequence index"):
        seqs[1.0]


@settings(max_examples=60, deadline=None)
@given(
    events=st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 12), st.integers(0, 50)),
        min_size=1,
        max_size=60,
    ),
    gap=st.one_of(st.none(), st.integers(0, 20)),
    min_length=st.integers(1, 3),
)
def test_properties(events, gap, min_length):
    users, items, ts = map(list, zip(*events, strict=True))
    inter = Interactions.from_arrays(users, items, timestamps=ts, duplicates="last")
    seqs = Sequences.from_interactions(inter, session_gap=gap, min_length=min_length)
    lengths = seqs.lengths()
    assert np.all(lengths >= min_length)
    assert seqs.indptr[0] == 0
    assert seqs.indptr[-1] == seqs.items.size == seqs.timestamps.size
    by_user: dict[int, list[tuple[int, int]]] = {}
    for s in range(len(seqs)):
        a, b = seqs.indptr[s], seqs.indptr[s + 1]
        t, it = seqs.timestamps[a:b], seqs.items[a:b]
        # ordered by (time, item index)
        key = list(zip(t.tolist(), it.tolist(), strict=True))
        assert key == sorted(key)
        if gap is not None:
            assert np.all(np.diff(t) <= gap)
        by_user.setdefault(int(seqs.users[s]), []).extend(key)
    # sessions of a user are consecutive and separated by more than the gap
    if gap is not None and min_length == 1:
        for s in range(1, len(seqs)):
            if seqs.users[s] == seqs.users[s - 1]:
                gap_between = seqs.timestamps[seqs.indptr[s]] - seqs.timestamps[seqs.indptr[s] - 1]
                assert gap_between > gap
    assert np.all(np.diff(seqs.users) >= 0)
    if min_length == 1:  # nothing dropped: every interaction appears exactly once
        rows = inter.row_indices()
        expected = {
            (int(u), int(t), int(i))
            for u, t, i in zip(rows, inter.timestamps, inter.matrix.indices, strict=True)
        }
        got = {(u, t, i) for u, pairs in by_user.items() for t, i in pairs}
        assert got == expected
        assert seqs.n_events == inter.nnz
