"""Tests of ``Interactions``: construction, validation, export and derived views."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from tastebud.data import Interactions, Vocabulary

pd = pytest.importorskip("pandas")


def dense_reference(users, items, weights):
    """Dense users x items sums over sorted distinct ids (plain numpy)."""
    uu, ui = np.unique(users, return_inverse=True)
    iu, ii = np.unique(items, return_inverse=True)
    out = np.zeros((uu.size, iu.size))
    np.add.at(out, (ui.ravel(), ii.ravel()), weights)
    return uu, iu, out


def assert_canonical(inter: Interactions) -> None:
    m = inter.matrix
    assert isinstance(m, sp.csr_matrix)
    assert m.dtype == np.float32
    assert m.shape == (len(inter.users), len(inter.items))
    for r in range(m.shape[0]):
        row = m.indices[m.indptr[r] : m.indptr[r + 1]]
        assert np.all(np.diff(row) > 0)  # sorted, no duplicates
    if inter.timestamps is not None:
        assert inter.timestamps.dtype == np.int64
        assert inter.timestamps.shape == (m.nnz,)


# ------------------------------------------------------------------ construction
def test_from_arrays_basic_strings():
    inter = Interactions.from_arrays(["b", "a", "b"], ["x", "y", "y"], [1.0, 2.0, 3.0])
    assert inter.shape == (2, 2)
    assert inter.users.ids_array.tolist() == ["a", "b"]
    assert inter.items.ids_array.tolist() == ["x", "y"]
    assert inter.users.name == "user"
    assert inter.items.name == "item"
    np.testing.assert_array_equal(inter.matrix.toarray(), [[0, 2], [1, 3]])
    assert inter.nnz == len(inter) == 3
    assert inter.timestamps is None
    assert_canonical(inter)
    assert "n_users=2" in repr(inter)


def test_matrix_is_read_only():
    inter = Interactions.from_arrays([1, 2], [3, 4])
    with pytest.raises(ValueError, match="read-only"):
        inter.matrix.data[0] = 5
    with pytest.raises(ValueError, match="read-only"):
        inter.matrix.indices[0] = 1


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 6), st.integers(-3, 4), st.integers(0, 9)), min_size=1, max_size=60
    )
)
def test_round_trip_sums_duplicates(triples):
    users = np.array([t[0] for t in triples])
    items = np.array([t[1] for t in triples])
    weights = np.array([t[2] for t in triples], dtype=np.float64)
    inter = Interactions.from_arrays(users, items, weights)
    assert_canonical(inter)
    uu, iu, ref = dense_reference(users, items, weights)
    np.testing.assert_array_equal(inter.users.ids_array, uu)
    np.testing.assert_array_equal(inter.items.ids_array, iu)
    # every (user, item) pair present once, summed
    arrays = inter.to_arrays()
    back = np.zeros_like(ref)
    back[inter.users.index(arrays["user"]), inter.items.index(arrays["item"])] = arrays["weight"]
    np.testing.assert_allclose(back, ref)
    pairs = {(u, i) for u, i in zip(users.tolist(), items.tolist(), strict=True)}
    assert inter.nnz == len(pairs)
    # counts against numpy references
    present = np.zeros(ref.shape, dtype=bool)
    present[inter.users.index(users), inter.items.index(items)] = True
    np.testing.assert_array_equal(inter.user_counts(), present.sum(1))
    np.testing.assert_array_equal(inter.item_counts(), present.sum(0))
    # round trip through arrays is the identity
    again = Interactions.from_arrays(arrays["user"], arrays["item"], arrays["weight"])
    assert (again.matrix != inter.matrix).nnz == 0
    assert again.users == inter.users
    assert again.items == inter.items


def test_duplicates_rules():
    u = [1, 1, 1, 2]
    i = [5, 5, 5, 5]
    w = [1.0, 3.0, 2.0, 4.0]
    ts = [30, 10, 20, 5]
    s = Interactions.from_arrays(u, i, w, ts, duplicates="sum")
    np.testing.assert_array_equal(s.matrix.data, [6.0, 4.0])
    np.testing.assert_array_equal(s.timestamps, [30, 5])  # merged pair: latest time
    m = Interactions.from_arrays(u, i, w, ts, duplicates="max")
    np.testing.assert_array_equal(m.matrix.data, [3.0, 4.0])
    np.testing.assert_array_equal(m.timestamps, [30, 5])
    last = Interactions.from_arrays(u, i, w, ts, duplicates="last")
    np.testing.assert_array_equal(last.matrix.data, [1.0, 4.0])  # weight at ts=30
    np.testing.assert_array_equal(last.timestamps, [30, 5])
    last_order = Interactions.from_arrays(u, i, w, duplicates="last")
    np.testing.assert_array_equal(last_order.matrix.data, [2.0, 4.0])  # input order
    tied = Interactions.from_arrays(u, i, w, [7, 7, 7, 1], duplicates="last")
    np.testing.assert_array_equal(tied.matrix.data, [2.0, 4.0])  # time tie: input order
    with pytest.raises(ValueError, match=r"duplicates='error'.*\(1, 5\)"):
        Interactions.from_arrays(u, i, w, duplicates="error")
    with pytest.raises(ValueError, match="duplicates must be one of"):
        Interactions.from_arrays(u, i, w, duplicates="mean")  # type: ignore[arg-type]


def test_fixed_id_space():
    users = Vocabulary(["c", "a", "b"], "user")
    inter = Interactions.from_arrays(["a", "c"], [1, 2], user_ids=users, item_ids=[2, 1, 9])
    assert inter.users is users
    assert inter.items.ids_array.tolist() == [2, 1, 9]
    np.testing.assert_array_equal(inter.matrix.toarray(), [[1, 0, 0], [0, 1, 0], [0, 0, 0]])
    with pytest.raises(KeyError, match=r"unknown user id.*'z'"):
        Interactions.from_arrays(["z"], [1], user_ids=users)
    with pytest.raises(KeyError, match=r"unknown item id.*7"):
        Interactions.from_arrays(["a"], [7], item_ids=[1, 2])


def test_timestamps_kinds():
    ts = Interactions.from_arrays([1, 2], [1, 2], timestamps=np.array([1.0, 2.0]))
    assert ts.timestamps.dtype == np.int64
    dt = np.array(["2020-01-01T00:00:00", "2020-01-02T00:00:00"], dtype="datetime64[ns]")
    inter = Interactions.from_arrays([1, 2], [1, 2], timestamps=dt)
    np.testing.assert_array_equal(inter.timestamps, [1577836800, 1577923200])
    with pytest.raises(ValueError, match=r"timestamps must be integers.*fractional"):
        Interactions.from_arrays([1, 2], [1, 2], timestamps=[1.5, 2.0])
    with pytest.raises(TypeError, match="timestamps must be integers or datetime64; got dtype"):
        Interactions.from_arrays([1, 2], [1, 2], timestamps=["a", "b"])
    with pytest.raises(ValueError, match="timestamps must have one value per interaction"):
        Interactions.from_arrays([1, 2], [1, 2], timestamps=[1])
    with pytest.raises(ValueError, match="NaT"):
        Interactions.from_arrays([1], [1], timestamps=np.array(["NaT"], dtype="datetime64[s]"))
    with pytest.raises(ValueError, match="finite"):
        Interactions.from_arrays([1], [1], timestamps=[np.nan])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"users": [1, 2], "items": [1]}, ValueError, "same length; got 2 and 1"),
        ({"users": [], "items": []}, ValueError, "at least one interaction"),
        ({"weights": [1.0, np.nan]}, ValueError, "weights must be finite"),
        ({"weights": [1.0, np.inf]}, ValueError, "weights must be finite"),
        ({"weights": [1.0, -1.0]}, ValueError, "non-negative.*allow_negative"),
        ({"weights": ["a", "b"]}, TypeError, "weights must be numeric.*dtype <U1"),
        ({"weights": [1.0]}, ValueError, r"one value per interaction \(2\); got 1"),
        ({"weights": [1e39, 1.0]}, ValueError, "float32"),
        ({"users": [1, "a"], "items": [1, 2]}, TypeError, "integers or all be strings"),
        ({"users": [[1, 2]], "items": [1]}, ValueError, "one-dimensional"),
    ],
)
def test_from_arrays_validation(kwargs, error, match):
    args = {"users": [1, 2], "items": [3, 4], "weights": None}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        Interactions.from_arrays(args["users"], args["items"], args["weights"])


def test_allow_negative_and_zero_weights():
    inter = Interactions.from_arrays([1, 2, 3], [1, 1, 1], [-1.0, 0.0, 2.0], allow_negative=True)
    np.testing.assert_array_equal(inter.matrix.data, [-1.0, 0.0, 2.0])  # zeros kept as entries


# ------------------------------------------------------------------ other sources
def test_from_frame_and_to_frame():
    df = pd.DataFrame(
        {
            "uid": ["u2", "u1", "u1"],
            "iid": [10, 10, 11],
            "r": [4.0, 3.0, 5.0],
            "t": pd.to_datetime(["2021-01-01", "2021-01-02", "2021-01-03"], utc=True),
        }
    )
    inter = Interactions.from_frame(df, user="uid", item="iid", weight="r", timestamp="t")
    assert inter.users.ids_array.tolist() == ["u1", "u2"]
    out = inter.to_frame()
    assert list(out.columns) == ["user", "item", "weight", "timestamp"]
    assert out["user"].tolist() == ["u1", "u1", "u2"]
    assert out["timestamp"].tolist() == [1609545600, 1609632000, 1609459200]
    with pytest.raises(ValueError, match=r"weight='rating' is not a column of df"):
        Interactions.from_frame(df, user="uid", item="iid", weight="rating")
    with pytest.raises(ValueError, match="missing values"):
        Interactions.from_frame(pd.DataFrame({"user": [1, None], "item": [1, 2]}))
    with pytest.raises(TypeError, match="pandas DataFrame"):
        Interactions.from_frame({"user": [1], "item": [2]})  # type: ignore[arg-type]


def test_from_csv(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("user,item,rating,ts\n1,a,3.5,100\n2,b,4,200\n1,b,1,300\n")
    inter = Interactions.from_csv(path, weight="rating", timestamp="ts")
    assert inter.users.ids_array.tolist() == [1, 2]
    assert inter.items.ids_array.tolist() == ["a", "b"]
    np.testing.assert_array_equal(inter.matrix.toarray(), [[3.5, 1.0], [0.0, 4.0]])
    np.testing.assert_array_equal(inter.timestamps, [100, 300, 200])
    tsv = tmp_path / "u.data"
    tsv.write_text("1\t7\t5\t10\n2\t7\t3\t20\n")
    inter = Interactions.from_csv(tsv, 0, 1, 2, 3, sep="\t", header=False)
    assert inter.shape == (2, 1)
    with pytest.raises(ValueError, match="is not a column"):
        Interactions.from_csv(path, user="who")
    with pytest.raises(TypeError, match="column positions"):
        Interactions.from_csv(tsv, header=False)


def test_from_sparse():
    dense = np.array([[0, 2, 0], [1, 0, 0]], dtype=np.int64)
    inter = Interactions.from_sparse(dense)
    assert inter.users.ids_array.tolist() == [0, 1]
    np.testing.assert_array_equal(inter.matrix.toarray(), dense)
    coo = sp.coo_array(([1.0, 2.0, 0.0], ([0, 0, 1], [1, 1, 0])), shape=(2, 3))
    inter = Interactions.from_sparse(coo, user_ids=["a", "b"], item_ids=["x", "y", "z"])
    np.testing.assert_array_equal(inter.matrix.toarray(), [[0, 3, 0], [0, 0, 0]])
    assert inter.nnz == 1  # duplicates summed, stored zero dropped
    with pytest.raises(ValueError, match="non-negative"):
        Interactions.from_sparse(-dense)
    assert Interactions.from_sparse(-dense, allow_negative=True).nnz == 2
    with pytest.raises(ValueError, match="must be finite"):
        Interactions.from_sparse(sp.csr_matrix(np.array([[np.nan, 1.0]])))
    with pytest.raises(ValueError, match=r"user_ids must have one id per row \(2\); got 3"):
        Interactions.from_sparse(dense, user_ids=[1, 2, 3])
    with pytest.raises(ValueError, match="two-dimensional"):
        Interactions.from_sparse(np.ones(3))
    with pytest.raises(TypeError, match="matrix must hold numbers"):
        Interactions.from_sparse(np.array([["a"]]))


# ------------------------------------------------------------------ derived views
def test_binarize(small):
    b = small.binarize(3)
    keep = small.matrix.data >= 3
    assert b.nnz == int(keep.sum())
    assert np.all(b.matrix.data == 1.0)
    np.testing.assert_array_equal(b.timestamps, small.timestamps[keep])
    assert b.users is small.users
    assert small.binarize().nnz == small.nnz
    with pytest.raises(ValueError, match="threshold must be a finite"):
        small.binarize(np.nan)


def test_filter(small):
    f = small.filter(min_user_interactions=15, min_item_interactions=18)
    assert f.users is small.users
    uc, ic = small.user_counts(), small.item_counts()
    expected = small.matrix.toarray() * (uc >= 15)[:, None] * (ic >= 18)[None, :]
    np.testing.assert_array_equal(f.matrix.toarray(), expected)
    core = small.filter(15, 18, iterative=True, compact=True)
    assert np.all(core.user_counts() >= 15)
    assert np.all(core.item_counts() >= 18)
    assert len(core.users) < len(small.users)
    assert set(core.users.ids_array.tolist()) <= set(small.users.ids_array.tolist())
    with pytest.raises(ValueError, match="min_user_interactions must be an int >= 0"):
        small.filter(-1)


def test_with_matrix(small):
    m = small.matrix.copy()
    m.data[:] = 2.0
    other = small.with_matrix(m, small.timestamps)
    assert other.users is small.users
    np.testing.assert_array_equal(other.timestamps, small.timestamps)
    with pytest.raises(ValueError, match="matrix shape must be"):
        small.with_matrix(sp.csr_matrix((2, 2)))
    with pytest.raises(ValueError, match="one value per interaction"):
        small.with_matrix(m, small.timestamps[:-1])


def test_select_users(small):
    idx = np.array([5, 2, 9])
    sub = small.select_users(idx)
    assert sub.users.ids_array.tolist() == small.users.ids(idx).tolist()
    np.testing.assert_array_equal(sub.matrix.toarray(), small.matrix.toarray()[idx])
    ref_ts = np.concatenate(
        [small.timestamps[small.matrix.indptr[r] : small.matrix.indptr[r + 1]] for r in idx]
    )
    np.testing.assert_array_equal(sub.timestamps, ref_ts)
    keep = small.select_users(idx, keep_vocabulary=True)
    assert keep.users is small.users
    expected = np.zeros(small.shape)
    expected[idx] = small.matrix.toarray()[idx]
    np.testing.assert_array_equal(keep.matrix.toarray(), expected)
    with pytest.raises(IndexError, match="user_indices must lie in"):
        small.select_users([1000])
    with pytest.raises(ValueError, match="distinct"):
        small.select_users([1, 1])


def test_parquet_round_trip_keeps_ids_weights_and_timestamps(tmp_path):
    inter = Interactions.from_arrays(
        np.array(["u2", "u1", "u2", "u3"]),
        np.array([10, 30, 20, 10]),
        np.array([1.0, 2.5, 3.0, 0.5]),
        np.array([5, 1, 7, 3]),
    )
    path = tmp_path / "events.parquet"
    inter.to_parquet(path)
    back = Interactions.from_parquet(path, weight="weight", timestamp="timestamp")
    assert back.users == inter.users
    assert back.items == inter.items
    assert (back.matrix != inter.matrix).nnz == 0
    np.testing.assert_array_equal(back.timestamps, inter.timestamps)


def test_parquet_reads_only_named_columns_and_a_directory(tmp_path):
    frame = pd.DataFrame(
        {"uid": [1, 1, 2], "iid": [7, 8, 7], "noise": ["a", "b", "c"], "w": [1.0, 2.0, 3.0]}
    )
    folder = tmp_path / "dataset"
    folder.mkdir()
    frame.iloc[:2].to_parquet(folder / "part-0.parquet", index=False)
    frame.iloc[2:].to_parquet(folder / "part-1.parquet", index=False)
    inter = Interactions.from_parquet(folder, user="uid", item="iid", weight="w")
    assert inter.shape == (2, 2)
    assert inter.matrix.sum() == pytest.approx(6.0)


def test_parquet_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="no Parquet"):
        Interactions.from_parquet(tmp_path / "missing.parquet")
    path = tmp_path / "x.parquet"
    pd.DataFrame({"user": [1], "thing": [2]}).to_parquet(path, index=False)
    with pytest.raises(ValueError, match=r"\['item'\].*columns are"):
        Interactions.from_parquet(path)
    pd.DataFrame({"user": [1, None], "item": [2, 3]}).to_parquet(path, index=False)
    with pytest.raises(ValueError, match="user"):
        Interactions.from_parquet(path)


def test_from_csv_keeps_ids_with_leading_zeros_distinct(tmp_path):
    """Ids that only parse as the same integer ("007" and "7") stay distinct strings."""
    path = tmp_path / "z.csv"
    path.write_text("user,item,rating\n007,0440234743,5\n7,0440234743,3\n1,ABC,4\n")
    inter = Interactions.from_csv(path, weight="rating")
    assert inter.n_users == 3
    assert sorted(inter.users.ids_array.tolist()) == ["007", "1", "7"]
    assert "0440234743" in inter.items.ids_array.tolist()
    assert inter.matrix.sum() == 12.0  # nothing merged
    plain = tmp_path / "p.csv"
    plain.write_text("user,item\n1,10\n-2,20\n")
    ids = Interactions.from_csv(plain).users.ids_array
    assert ids.dtype.kind == "i"  # canonical integer literals still become ints
    assert sorted(ids.tolist()) == [-2, 1]
