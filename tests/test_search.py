import threading

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tastebud.search import topk
from tests.reference.topk_reference import topk_reference

# Integer-valued floats make ties common; large magnitudes exercise extreme values.
_values = st.one_of(
    st.integers(-3, 3).map(float),
    st.floats(
        -float(np.finfo(np.float32).max),
        float(np.finfo(np.float32).max),
        allow_nan=False,
        allow_infinity=False,
        width=32,
    ),
)


@st.composite
def score_problems(draw):
    n = draw(st.integers(0, 6))
    m = draw(st.integers(1, 40))
    scores = draw(arrays(np.float32, (n, m), elements=_values))
    k = draw(st.integers(1, m + 5))
    excl = [sorted(set(draw(st.lists(st.integers(0, m - 1), max_size=m)))) for _ in range(n)]
    use_excl = draw(st.booleans())
    allowed = draw(st.none() | arrays(np.bool_, (m,)))
    return scores, k, excl if use_excl else None, allowed


def _csr(rows, m):
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    idx = np.concatenate([np.asarray(r, dtype=np.int64) for r in rows]) if rows else []
    return sp.csr_matrix((np.ones(len(idx), np.float32), idx, indptr), shape=(len(rows), m))


@settings(max_examples=200, deadline=None)
@given(score_problems(), st.sampled_from([1, 2]))
def test_score_block_matches_reference(problem, threads):
    scores, k, excl, allowed = problem
    _n, m = scores.shape
    exclude = None if excl is None else _csr(excl, m)
    idx, sc = topk(scores, k=k, exclude=exclude, allow=allowed, num_threads=threads)
    ref_idx, ref_sc = topk_reference(scores, k, excl, allowed)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_array_equal(sc, ref_sc)


@st.composite
def factor_problems(draw):
    n = draw(st.integers(1, 30))
    m = draw(st.integers(1, 300))
    f = draw(st.integers(1, 8))
    q = draw(arrays(np.float32, (n, f), elements=st.integers(-2, 2).map(float)))
    it = draw(arrays(np.float32, (m, f), elements=st.integers(-2, 2).map(float)))
    k = draw(st.integers(1, m + 3))
    excl = [
        sorted(set(draw(st.lists(st.integers(0, m - 1), max_size=min(m, 20))))) for _ in range(n)
    ]
    return q, it, k, excl


@settings(max_examples=150, deadline=None)
@given(factor_problems(), st.booleans())
def test_factor_form_matches_reference(problem, with_bias):
    # Integer inputs make every dot product exact, so ties are real ties in both paths.
    q, it, k, excl = problem
    bias = np.arange(it.shape[0], dtype=np.float32) % 3 if with_bias else None
    idx, sc = topk(q, it, k, exclude=_csr(excl, it.shape[0]), item_bias=bias, num_threads=2)
    full = q @ it.T + (bias if bias is not None else 0)
    ref_idx, ref_sc = topk_reference(full, k, excl)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_array_equal(sc, ref_sc)


def test_factor_form_spans_many_blocks():
    rng = np.random.default_rng(3)
    q = rng.standard_normal((300, 16)).astype(np.float32)
    it = rng.standard_normal((5000, 16)).astype(np.float32)
    seen = sp.random(300, 5000, density=0.02, format="csr", random_state=4)
    idx, sc = topk(q, it, 20, exclude=seen)
    full = q @ it.T
    rows = [seen[r].indices for r in range(300)]
    ref_idx, ref_sc = topk_reference(full, 20, rows)
    # BLAS and numpy may round differently in the last bit: compare scores, then indices.
    np.testing.assert_allclose(sc, ref_sc, rtol=1e-5, atol=1e-5)
    assert (idx == ref_idx).mean() > 0.99
    for r in range(300):
        assert not set(idx[r]) & set(rows[r])


def test_doc_example_and_padding():
    idx, sc = topk(np.array([[0.1, 0.9, 0.5]]), k=5, exclude=[[2]])
    assert idx.tolist() == [[1, 0, -1, -1, -1]]
    assert np.isneginf(sc[0, 2:]).all()


def test_all_excluded_row_is_all_padding():
    idx, _sc = topk(np.ones((2, 3)), k=2, exclude=[[0, 1, 2], []])
    assert idx[0].tolist() == [-1, -1]
    assert idx[1].tolist() == [0, 1]


def test_deny_list_and_allow_list():
    scores = np.array([[5.0, 4.0, 3.0, 2.0]])
    assert topk(scores, k=2, deny=[0])[0].tolist() == [[1, 2]]
    assert topk(scores, k=2, allow=[3, 2])[0].tolist() == [[2, 3]]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"k": 0}, ValueError, "k must be >= 1"),
        ({"k": 2.0}, TypeError, "k must be an int"),
        ({"k": 1, "num_threads": -1}, ValueError, "num_threads"),
        ({"k": 1, "exclude": [[0]]}, ValueError, "one entry per query"),
        ({"k": 1, "exclude": [[7], [0]]}, ValueError, "outside"),
        ({"k": 1, "deny": [9]}, ValueError, "outside"),
        ({"k": 1, "allow": np.ones(2, bool)}, ValueError, "boolean allow"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        topk(np.zeros((2, 3), np.float32), **kwargs)


def test_bad_arrays():
    with pytest.raises(ValueError, match="NaN"):
        topk(np.array([[np.nan, 1.0]]), k=1)
    with pytest.raises(ValueError, match="NaN"):
        topk(np.ones((1, 2)), np.array([[np.inf, 0.0]]), k=1)
    with pytest.raises(ValueError, match="2-D"):
        topk(np.ones(3), k=1)
    with pytest.raises(ValueError, match="columns"):
        topk(np.ones((1, 2)), np.ones((3, 4)), k=1)
    with pytest.raises(TypeError, match="real numbers"):
        topk(np.array([["a", "b"]]), k=1)
    with pytest.raises(TypeError, match="sparse"):
        topk(sp.eye(3, format="csr"), k=1)
    with pytest.raises(ValueError, match="shape"):
        topk(np.ones((1, 2)), np.ones((3, 2)), k=1, item_bias=np.ones(2))
    with pytest.raises(ValueError, match="shape"):
        topk(np.ones((2, 3)), k=1, exclude=sp.eye(3, format="csr"))


def test_binding_rejects_unsorted_or_out_of_range_exclusions():
    from tastebud.search import _core

    core = _core()
    scores = np.zeros((1, 3), np.float32)
    with pytest.raises(ValueError, match="sorted"):
        core.topk_scores(scores, 1, np.array([0, 2]), np.array([2, 1], np.int32), None, 1)
    with pytest.raises(ValueError, match="out of range"):
        core.topk_scores(scores, 1, np.array([0, 1]), np.array([5], np.int32), None, 1)
    with pytest.raises(TypeError):
        core.topk_scores(scores.astype(np.float64), 1, None, None, None, 1)


def test_concurrent_calls_agree():
    rng = np.random.default_rng(0)
    q = rng.standard_normal((200, 8)).astype(np.float32)
    it = rng.standard_normal((3000, 8)).astype(np.float32)
    expected = topk(q, it, 10)[0]
    results = []

    def work():
        results.append(topk(q, it, 10, num_threads=1)[0])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        np.testing.assert_array_equal(r, expected)


@settings(max_examples=150, deadline=None)
@given(factor_problems(), st.integers(1, 9), st.integers(1, 64), st.sampled_from([1, 2, 3]))
def test_blocking_and_item_splits_match_reference(problem, query_block, item_block, threads):
    """Tiny tiles force many item tiles and the split-and-merge path over items."""
    from tastebud.search import _core, as_exclusion_csr, blas_single_thread

    q, it, k, excl = problem
    csr = as_exclusion_csr(excl, q.shape[0], it.shape[0])
    with blas_single_thread():
        idx, sc = _core().topk_dot(
            q,
            it,
            None,
            k,
            csr.indptr.astype(np.int64),
            csr.indices.astype(np.int32),
            None,
            threads,
            query_block,
            item_block,
        )
    ref_idx, ref_sc = topk_reference(q @ it.T, k, excl)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_array_equal(sc, ref_sc)


def test_topk_score_block_treats_minus_inf_as_excluded():
    from tastebud.search import topk

    idx, scores = topk(np.array([[1.0, -np.inf, 0.5], [-np.inf, -np.inf, 2.0]]), k=3)
    np.testing.assert_array_equal(idx, [[0, 2, -1], [2, -1, -1]])
    assert np.isneginf(scores[0, 2])
    for bad in (np.nan, np.inf, -1e300):  # -1e300 overflows float32 to -inf: an error
        with pytest.raises(ValueError, match="NaN or infinite"):
            topk(np.array([[1.0, bad, 0.5]]), k=2)
    with pytest.raises(ValueError, match="NaN or infinite"):  # vectors: no infinities at all
        topk(np.array([[1.0, -np.inf]]), np.ones((3, 2)), k=2)
