"""Input checks of the compiled kernels (tastebud._core), called directly: a malformed
argument must raise before the kernel reads or writes anything (no crash, no silent copy)."""

import numpy as np
import pytest

import tastebud.search

C = tastebud.search._core()
E64 = np.zeros(1, np.int64)
BAD_INDPTR = np.array([0, 1 << 40, 4], np.int64)  # ends right, but jumps far past indices


def _ints(n):
    return np.zeros(n, np.int32)


def test_csr_checks_reject_an_indptr_that_leaves_the_indices_first():
    """Every CSR validator checks that indptr never decreases before it walks a row."""
    ind, dat = _ints(4), np.ones(4, np.float32)
    scores = np.ones((2, 3), np.float32)
    calls = {
        "exclusions": lambda: C.topk_scores(scores, 2, BAD_INDPTR, ind, None, 1),
        "ALS": lambda: C.als_baselines(BAD_INDPTR, ind, dat, 2, 3, 3.0, 1, 1.0, 1.0),
        "kNN": lambda: C.sparse_knn_csr(
            BAD_INDPTR, ind, dat, 3, BAD_INDPTR, ind, dat, 3, 2, None, None, 0, 0.5, 0.0, 1, -1,
            2, 1,
        ),
        "hybrid": lambda: C.hybrid_fold_in(
            np.zeros((3, 2), np.float32), np.zeros(3, np.float32), BAD_INDPTR, ind,
            np.zeros((2, 2), np.float32), 2, 0, 0.05, 0.0, 10, 1, 1,
        ),
    }  # fmt: skip
    for name, call in calls.items():  # before the fix: a read far past `ind` (segfault)
        with pytest.raises(ValueError, match="indptr") as caught:
            call()
        assert caught.type is ValueError, name


def test_exclusion_indices_must_be_one_dimensional():
    with pytest.raises(ValueError, match="1-D"):
        C.topk_scores(
            np.ones((1, 3), np.float32), 2, np.array([0, 3]), np.zeros((3, 1), np.int32), None, 1
        )


def test_arrays_updated_in_place_are_never_converted_copies():
    ip, ind = np.array([0, 2], np.int64), np.array([0, 1], np.int32)
    row_of = np.zeros(2, np.int32)
    U, V = np.full((1, 2), 0.1, np.float32), np.full((3, 2), 0.1, np.float32)
    frozen = np.zeros(3, np.float32)
    frozen.flags.writeable = False
    for bias, message in (
        (frozen, "writeable"),
        (np.zeros(6, np.float32)[::2], "C-contiguous"),
        (np.zeros(3, np.float16), "C-contiguous"),
    ):
        with pytest.raises(ValueError, match=message):
            C.bpr_epoch(ip, ind, row_of, U, V, bias, 0.5, 0.0, True, 100, 1, 0, 1)
    assert not frozen.any()
    Y, X = np.ones((3, 2), np.float32), np.zeros((2, 2), np.float32)
    with pytest.raises(ValueError, match="own_bias"):
        C.explicit_als_solve(
            np.array([0, 1, 2], np.int64), ind, np.ones(2, np.float32), Y,
            np.zeros(3, np.float32), 0.0, 0.1, X, np.zeros(4, np.float32)[::2], 1,
        )  # fmt: skip
    u, i, r = np.zeros(2, np.int32), np.zeros(2, np.int32), np.ones(2, np.float32)
    P, Q = np.zeros((1, 2), np.float32), np.zeros((1, 2), np.float32)
    with pytest.raises(ValueError, match="shuffle_state"):
        C.svd_fit(u, i, r, np.zeros(1, np.float32), np.zeros(1, np.float32), P, Q,
                  np.zeros(9, np.float32), 1, np.array([5], np.uint32), 1)  # fmt: skip


def test_warp_rank_and_blas_capsule_are_checked():
    with pytest.raises(ValueError, match="trials"):
        C.hybrid_warp_rank(10, 0)
    with pytest.raises(ValueError, match="trials"):
        C.hybrid_warp_rank(-10, 3)
    assert C.hybrid_warp_rank(10, 3) == 3
    from scipy.linalg import cython_blas

    with pytest.raises(ValueError, match="sgemm"):
        C.set_blas(cython_blas.__pyx_capi__["dgemm"])
    C.set_blas(cython_blas.__pyx_capi__["sgemm"])  # the right one is still accepted


def test_thread_count_and_k_are_bounded():
    from tastebud.search import resolve_threads, topk

    with pytest.raises(ValueError, match="at most"):
        resolve_threads(100_000)
    with pytest.raises(ValueError, match="k must"):
        topk(np.ones((1, 3)), k=2**31)
