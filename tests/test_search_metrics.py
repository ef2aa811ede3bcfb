"""Metrics (dot / cosine / l2), sparse inputs and SimilarityIndex of tastebud.search."""

import threading

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tastebud import search
from tastebud.search import SimilarityIndex, normalize_rows, topk
from tests.reference.search_reference import (
    normalize_reference,
    search_reference,
    similarity_reference,
)

METRICS = ["dot", "cosine", "l2"]
LAYOUTS = ["dense", "sparse_queries", "sparse_items", "both_sparse"]


def _layout(q, it, layout):
    if layout in ("sparse_queries", "both_sparse"):
        q = sp.csr_matrix(q)
    if layout in ("sparse_items", "both_sparse"):
        it = sp.csr_matrix(it)
    return q, it


def _csr(rows, m):
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    idx = np.concatenate([np.asarray(r, dtype=np.int64) for r in rows]) if rows else []
    return sp.csr_matrix((np.ones(len(idx), np.float32), idx, indptr), shape=(len(rows), m))


def assert_topk_close(idx, sc, ref_idx, ref_sc, full, tol=1e-5):
    """Same result up to float rounding: scores match the reference's, every returned item
    really has the score it was returned with, and only near-ties may be swapped."""
    np.testing.assert_array_equal(idx == -1, ref_idx == -1)
    valid = idx >= 0
    np.testing.assert_allclose(sc[valid], ref_sc[valid], rtol=tol, atol=tol)
    rows = np.nonzero(valid)[0]
    np.testing.assert_allclose(full[rows, idx[valid]], sc[valid], rtol=tol, atol=tol)
    for r in range(idx.shape[0]):
        got = idx[r][idx[r] >= 0]
        assert np.unique(got).size == got.size, "an item returned twice"


@st.composite
def metric_problems(draw):
    n = draw(st.integers(0, 12))
    m = draw(st.integers(1, 60))
    f = draw(st.integers(1, 6))
    # Integer values: dot products and l2 selection scores are exact, so ties are real ties;
    # zeros make zero vectors (cosine 0) and sparse rows common.
    values = st.integers(-2, 2).map(float)
    q = draw(arrays(np.float32, (n, f), elements=values))
    it = draw(arrays(np.float32, (m, f), elements=values))
    k = draw(st.integers(1, m + 3))
    excl = None
    if draw(st.booleans()):
        excl = [
            sorted(set(draw(st.lists(st.integers(0, m - 1), max_size=min(m, 10)))))
            for _ in range(n)
        ]
    allowed = draw(st.none() | arrays(np.bool_, (m,)))
    return q, it, k, excl, allowed


@settings(max_examples=120, deadline=None)
@given(
    metric_problems(),
    st.sampled_from(METRICS),
    st.sampled_from(LAYOUTS),
    st.sampled_from([1, 2]),
)
def test_metrics_match_brute_force(problem, metric, layout, threads):
    q, it, k, excl, allowed = problem
    qq, ii = _layout(q, it, layout)
    exclude = None if excl is None else _csr(excl, it.shape[0])
    idx, sc = topk(qq, ii, k, metric=metric, exclude=exclude, allow=allowed, num_threads=threads)
    assert idx.shape == sc.shape == (q.shape[0], k)
    assert idx.dtype == np.int64
    assert sc.dtype == np.float32
    ref_idx, ref_sc = search_reference(q, it, k, metric, excl, allowed)
    if metric == "cosine":
        assert_topk_close(idx, sc, ref_idx, ref_sc, similarity_reference(q, it, metric))
    else:  # exact integer arithmetic: identical indices (ties by lower index) and scores
        np.testing.assert_array_equal(idx, ref_idx)
        np.testing.assert_array_equal(sc, ref_sc.astype(np.float32))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_cosine_of_zero_vectors_is_zero(layout):
    q = np.array([[0.0, 0.0], [1.0, 0.0]], np.float32)
    it = np.array([[0.0, 0.0], [-1.0, 0.0], [0.0, 3.0], [2.0, 0.0]], np.float32)
    idx, sc = topk(*_layout(q, it, layout), 4, metric="cosine")
    # Zero query: every item scores 0, so ties give index order.
    assert idx[0].tolist() == [0, 1, 2, 3]
    np.testing.assert_array_equal(sc[0], 0.0)
    # The zero item scores 0 like the orthogonal one (lower index first), above -1.
    assert idx[1].tolist() == [3, 0, 2, 1]
    np.testing.assert_allclose(sc[1], [1.0, 0.0, 0.0, -1.0], atol=1e-7)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_k_larger_than_items_pads(metric, layout):
    q = np.array([[1.0, 2.0]], np.float32)
    it = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    idx, sc = topk(*_layout(q, it, layout), 5, metric=metric, exclude=[[1]])
    assert idx[0].tolist() == [0, -1, -1, -1, -1]
    assert np.isneginf(sc[0, 1:]).all()


@pytest.mark.parametrize("metric", METRICS)
def test_empty_sides(metric):
    idx, sc = topk(np.zeros((0, 3)), np.ones((4, 3)), 2, metric=metric)
    assert idx.shape == (0, 2)
    idx, sc = topk(np.ones((2, 3)), np.zeros((0, 3)), 2, metric=metric)
    assert (idx == -1).all()
    assert np.isneginf(sc).all()


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("threads", [1, 2])
def test_sparse_agrees_with_dense_tfidf_like(metric, threads, monkeypatch):
    rng = np.random.default_rng(7)
    # Small blocks: the sparse path runs many query blocks (and several workers).
    monkeypatch.setattr(search, "_SPARSE_BLOCK_ELEMS", 1000)
    q = sp.random(150, 80, density=0.08, format="csr", random_state=1, dtype=np.float32)
    it = sp.random(700, 80, density=0.05, format="csr", random_state=2, dtype=np.float32)
    seen = [rng.choice(700, size=5, replace=False) for _ in range(150)]
    full = similarity_reference(q, it, metric)
    ref_idx, ref_sc = search_reference(q, it, 10, metric, seen)
    for qq, ii in [(q, it), (q.toarray(), it), (q, it.toarray()), (q.toarray(), it.toarray())]:
        idx, sc = topk(qq, ii, 10, metric=metric, exclude=seen, num_threads=threads)
        assert_topk_close(idx, sc, ref_idx, ref_sc, full)
        for r in range(150):
            assert not set(idx[r]) & set(seen[r].tolist())


def test_l2_scores_are_exact_distances_sorted():
    rng = np.random.default_rng(0)
    q = (rng.standard_normal((40, 16)) * 3 + 10).astype(np.float32)
    it = (rng.standard_normal((2000, 16)) * 3 + 10).astype(np.float32)
    idx, sc = topk(q, it, 7, metric="l2")
    exact = -(((q[:, None, :].astype(np.float64) - it[idx]) ** 2).sum(-1))
    np.testing.assert_allclose(sc, exact, rtol=1e-6)
    assert (np.diff(sc, axis=1) <= 0).all()
    ref_idx, ref_sc = search_reference(q, it, 7, "l2")
    assert_topk_close(idx, sc, ref_idx, ref_sc, similarity_reference(q, it, "l2"), tol=1e-4)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_cosine_with_item_bias_and_deny(layout):
    q = np.array([[1.0, 0.0]], np.float32)
    it = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
    q, it = _layout(q, it, layout)
    idx, sc = topk(q, it, 3, metric="cosine", item_bias=np.array([0.0, 2.0, 0.0]), deny=[0])
    assert idx[0].tolist() == [1, 2, -1]
    np.testing.assert_allclose(sc[0, :2], [2.0, np.sqrt(0.5)], rtol=1e-6)


def test_normalize_rows_handles_huge_and_zero_rows():
    x = np.array([[3e30, 4e30], [0.0, 0.0], [1.0, 0.0]], np.float32)
    out = normalize_rows(x)
    np.testing.assert_allclose(out, [[0.6, 0.8], [0, 0], [1, 0]], rtol=1e-6)
    out_sp = normalize_rows(sp.csr_matrix(x))
    assert sp.issparse(out_sp)
    assert out_sp.dtype == np.float32
    np.testing.assert_allclose(out_sp.toarray(), out, rtol=1e-6)
    rng = np.random.default_rng(1)
    y = rng.standard_normal((20, 5))
    np.testing.assert_allclose(normalize_rows(y), normalize_reference(y), rtol=1e-6)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: topk(np.ones((1, 3)), k=1, metric="cosine"), ValueError, "vector form"),
        (lambda: topk(np.ones((1, 2)), np.ones((3, 2)), 1, metric="ip"), ValueError, "metric"),
        (
            lambda: topk(np.ones((1, 2)), np.ones((3, 2)), 1, metric="l2", item_bias=np.ones(3)),
            ValueError,
            "item_bias",
        ),
        (
            lambda: topk(sp.csr_matrix(np.array([[np.nan, 1.0]])), np.ones((3, 2)), 1),
            ValueError,
            "NaN",
        ),
        (
            lambda: topk(np.ones((1, 2)), sp.csr_matrix(np.ones((3, 4))), 1),
            ValueError,
            "columns",
        ),
        (
            lambda: topk(np.ones((1, 2)), np.full((3, 2), 1e30, np.float32), 1, metric="l2"),
            ValueError,
            "too large",
        ),
    ],
)
def test_bad_metric_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_sparse_binding_rejects_malformed_csr():
    core = search._core()
    ip = np.array([0, 1], np.int64)
    ix = np.array([0], np.int32)
    data = np.ones(1, np.float32)
    ok = core.topk_sparse(ip, ix, data, 1, ip, ix, data, 1, None, 1, None, None, None, 1)
    assert ok[0].tolist() == [[0]]
    with pytest.raises(ValueError, match="out of range"):
        core.topk_sparse(
            ip, np.array([3], np.int32), data, 1, ip, ix, data, 1, None, 1, None, None, None, 1
        )
    with pytest.raises(ValueError, match="item\\^T index out of range"):
        core.topk_sparse(
            ip, ix, data, 1, ip, np.array([5], np.int32), data, 1, None, 1, None, None, None, 1
        )
    with pytest.raises(ValueError, match="indptr"):
        core.topk_sparse(
            np.array([0, 2], np.int64), ix, data, 1, ip, ix, data, 1, None, 1, None, None, None, 1
        )
    with pytest.raises(TypeError):
        core.topk_sparse(
            ip, ix, data.astype(np.float64), 1, ip, ix, data, 1, None, 1, None, None, None, 1
        )


# --------------------------------------------------------------------------- SimilarityIndex
@pytest.mark.parametrize("metric", METRICS)
def test_index_matches_topk_and_roundtrips(metric, tmp_path):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((300, 12)).astype(np.float32)
    b = rng.standard_normal((200, 12)).astype(np.float32)
    b[5] = 0.0
    q = rng.standard_normal((25, 12)).astype(np.float32)
    index = SimilarityIndex(metric, num_threads=1)
    index.add(a, ids=[f"a{i}" for i in range(300)])
    index.add(sp.csr_matrix(b), ids=[f"b{i}" for i in range(200)])
    assert len(index) == 500
    assert index.dim == 12
    ids, scores = index.query(q, k=8)
    items = np.concatenate([a, b])
    ref_idx, ref_sc = search_reference(q, items, 8, metric)
    np.testing.assert_allclose(scores, ref_sc, rtol=1e-4, atol=1e-5)
    assert (ids == index.ids[ref_idx]).mean() > 0.95
    path = tmp_path / "index.npz"
    index.save(path)
    loaded = SimilarityIndex.load(path)
    assert loaded.metric == metric
    assert len(loaded) == 500
    ids2, scores2 = loaded.query(q, k=8)
    np.testing.assert_array_equal(ids2, ids)
    np.testing.assert_array_equal(scores2, scores)
    # sparse queries give the same answer
    _ids3, scores3 = index.query(sp.csr_matrix(q), k=8)
    np.testing.assert_allclose(scores3, scores, rtol=1e-4, atol=1e-5)


def test_index_exclude_padding_and_default_ids(tmp_path):
    index = SimilarityIndex("dot")
    index.add(np.array([[1.0], [3.0], [2.0]]))
    index.add(np.array([[5.0]]))
    assert index.ids.tolist() == [0, 1, 2, 3]
    ids, scores = index.query(np.array([[1.0], [-1.0]]), k=6, exclude=[[3, 1], []])
    assert ids.tolist() == [[2, 0, -1, -1, -1, -1], [0, 2, 1, 3, -1, -1]]
    assert np.isneginf(scores[0, 2:]).all()
    with pytest.raises(KeyError, match="unknown item"):
        index.query(np.array([[1.0]]), k=1, exclude=[[99]])
    with pytest.raises(ValueError, match="one entry per query"):
        index.query(np.array([[1.0]]), k=1, exclude=[[1], [2]])
    empty = SimilarityIndex("l2")
    path = tmp_path / "empty.npz"
    empty.save(path)
    assert len(SimilarityIndex.load(path)) == 0


def test_index_string_ids_pad_with_empty_string():
    index = SimilarityIndex("cosine")
    index.add(np.eye(2), ids=["x", "y"])
    ids, _ = index.query(np.array([[0.0, 1.0]]), k=3)
    assert ids.tolist() == [["y", "x", ""]]


def test_index_bad_input(tmp_path):
    with pytest.raises(ValueError, match="metric"):
        SimilarityIndex("manhattan")
    index = SimilarityIndex()
    with pytest.raises(ValueError, match="empty"):
        index.query(np.ones((1, 2)), k=1)
    index.add(np.ones((2, 3)), ids=[1, 2])
    with pytest.raises(ValueError, match="3 columns"):
        index.add(np.ones((1, 4)))
    with pytest.raises(ValueError, match="unique"):
        index.add(np.ones((1, 3)), ids=[2])
    with pytest.raises(TypeError, match="integers"):
        index.add(np.ones((1, 3)), ids=["a"])
    with pytest.raises(ValueError, match="one entry per vector"):
        index.add(np.ones((2, 3)), ids=[7])
    with pytest.raises(ValueError, match="NaN"):
        index.add(np.array([[np.nan, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="3 columns"):
        index.query(np.ones((1, 2)), k=1)
    with pytest.raises(ValueError, match="k must be"):
        index.query(np.ones((1, 3)), k=0)
    assert len(index) == 2  # failed adds changed nothing
    bad = tmp_path / "bad.npz"
    np.savez(bad, something=np.ones(2))
    with pytest.raises(ValueError, match="not a SimilarityIndex"):
        SimilarityIndex.load(bad)
    other = tmp_path / "other.npz"
    other.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a SimilarityIndex"):
        SimilarityIndex.load(other)


def test_index_concurrent_queries():
    rng = np.random.default_rng(5)
    index = SimilarityIndex("cosine", num_threads=1)
    index.add(rng.standard_normal((3000, 8)))
    q = rng.standard_normal((100, 8))
    expected = index.query(q, k=10)[0]
    results = []

    def work():
        results.append(index.query(q, k=10)[0])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        np.testing.assert_array_equal(r, expected)


def test_blas_limit_covers_scipy_blas_even_before_first_kernel_call():
    # Regression: the threadpoolctl controller must be created after scipy's BLAS (the one the
    # kernels call) is loaded, or the limit silently misses it (oversubscription, ~2x slower).
    import subprocess
    import sys

    code = (
        "from tastebud.search import _core, blas_single_thread\n"
        "from threadpoolctl import threadpool_info\n"
        "with blas_single_thread():\n"
        "    _core()  # loads the BLAS the kernels call, if not loaded yet\n"
        "    info = [d for d in threadpool_info() if d['user_api'] == 'blas']\n"
        "    assert info and all(d['num_threads'] == 1 for d in info), info\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
