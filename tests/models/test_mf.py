"""Explicit rating models: kernels against references, planted-model accuracy, contract."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import tastebud
from tastebud import SVD, Baseline, ExplicitALS, SVDpp
from tastebud.data import Interactions, datasets, split
from tastebud.kernels import sgd
from tastebud.models.mf import _normal_init, _Ratings
from tests.models.contract import CONTRACT_CHECKS, run_check
from tests.reference import mf_reference as ref

# --------------------------------------------------------------------------- data
_SYN = datasets.synthetic(n_users=300, n_items=200, n_interactions=9000, random_state=0)
TRAIN, TEST = split.random_holdout(_SYN.ratings, random_state=0)


def planted(n_users=400, n_items=300, density=0.3, rank=4, noise=0.3, seed=0):
    """Ratings from a biased low-rank model plus Gaussian noise (continuous, unclipped)."""
    rng = np.random.default_rng(seed)
    s = (0.36 / rank) ** 0.25  # p . q has standard deviation ~0.6
    p = rng.normal(0, s, (n_users, rank))
    q = rng.normal(0, s, (n_items, rank))
    bu = rng.normal(0, 0.3, n_users)
    bi = rng.normal(0, 0.4, n_items)
    mask = rng.random((n_users, n_items)) < density
    u, i = np.nonzero(mask)
    r = 3.5 + bu[u] + bi[i] + np.einsum("ij,ij->i", p[u], q[i]) + rng.normal(0, noise, u.size)
    inter = Interactions.from_arrays(u, i, weights=r, allow_negative=True)
    return split.kfold(inter, 5, random_state=seed)[0]


P_TRAIN, P_TEST = planted()
NOISE = 0.3


def rmse(model, test):
    a = test.to_arrays()
    pred = model.predict(a["user"], a["item"], clip=False)
    return float(np.sqrt(np.mean((pred - a["weight"]) ** 2)))


# --------------------------------------------------------------------------- contract
FACTORIES = {
    "Baseline": lambda: Baseline(),
    "SVD": lambda: SVD(factors=8, epochs=10, random_state=0, num_threads=1),
    "SVDpp": lambda: SVDpp(factors=8, epochs=10, random_state=0, num_threads=1),
    "ExplicitALS": lambda: ExplicitALS(factors=8, iterations=5, random_state=0, num_threads=1),
}


@pytest.mark.parametrize("name", list(FACTORIES))
@pytest.mark.parametrize("check", CONTRACT_CHECKS, ids=lambda c: c.__name__)
def test_contract(check, name, tmp_path, request):
    if name == "ExplicitALS" and check.__name__ == "check_recommend_for_matches_known_user":
        # Principled exception: rating models read fold-in weights as ratings, and this check
        # passes a bare item list (every rating = 1, the worst), which ALS-WR's exact solve
        # answers by ranking the user's *dislikes* first. With the user's real ratings the
        # fold-in does match (test_fold_in_with_ratings_matches_known_user).
        request.applymarker(pytest.mark.xfail(strict=True, reason="weights are ratings"))
    run_check(check, FACTORIES[name], TRAIN, tmp_path)


@pytest.mark.parametrize("name", ["SVD", "SVDpp", "ExplicitALS"])
def test_fold_in_with_ratings_matches_known_user(name):
    model = FACTORIES[name]().fit(TRAIN)
    overlaps = []
    for u in range(15):
        row = TRAIN.matrix[u]
        history = dict(zip(TRAIN.items.ids(row.indices).tolist(), row.data.tolist(), strict=True))
        folded = model.recommend_for({"new": history}, k=10)
        known = model.recommend(TRAIN.users.ids_array[u], k=10)
        assert not set(folded.ids[0]) & set(history)
        overlaps.append(len(set(folded.ids[0]) & set(known.ids[0])) / 10)
    assert np.mean(overlaps) >= 0.5


# --------------------------------------------------------------------------- kernels
def _problem(draw_seed, n_users, n_items, nnz, factors, dtype):
    rng = np.random.default_rng(draw_seed)
    users = rng.integers(0, n_users, nnz).astype(np.int32)  # duplicates allowed
    items = rng.integers(0, n_items, nnz).astype(np.int32)
    ratings = rng.choice(np.array([1.0, 2.5, 5.0, 40.0, -7.0]), nnz).astype(dtype)
    P = rng.normal(0, 0.1, (n_users, factors)).astype(dtype)
    Q = rng.normal(0, 0.1, (n_items, factors)).astype(dtype)
    bu = rng.normal(0, 0.1, n_users).astype(dtype)
    bi = rng.normal(0, 0.1, n_items).astype(dtype)
    hp = np.array([3.0, 0.005, 0.004, 0.003, 0.002, 0.02, 0.03, 0.04, 0.05], dtype=dtype)
    return users, items, ratings, bu, bi, P, Q, hp


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n_users=st.integers(1, 6),
    n_items=st.integers(1, 6),
    nnz=st.integers(0, 25),
    factors=st.integers(0, 19),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_svd_epoch_matches_reference_exactly(seed, n_users, n_items, nnz, factors, dtype):
    prob = _problem(seed, n_users, n_items, nnz, factors, dtype)
    users, items, ratings, bu, bi, P, Q, hp = prob
    mine = [a.copy() for a in (bu, bi, P, Q)]
    theirs = [a.copy() for a in (bu, bi, P, Q)]
    for _ in range(3):  # a few epochs
        sse_k = sgd.svd_epoch_serial(users, items, ratings, 1, *mine, hp, True)
        sse_r = ref.svd_epoch(users, items, ratings, *theirs, hp)
        for a, b in zip(mine, theirs, strict=True):
            np.testing.assert_array_equal(a, b)
        assert sse_k == pytest.approx(sse_r, rel=1e-5)
    fast = [a.copy() for a in (bu, bi, P, Q)]
    sgd.svd_epoch_serial(users, items, ratings, 1, *fast, hp, False)
    ref.svd_epoch(users, items, ratings, *[a.copy() for a in (bu, bi, P, Q)], hp)
    exact = [a.copy() for a in (bu, bi, P, Q)]
    sgd.svd_epoch_serial(users, items, ratings, 1, *exact, hp, True)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    for a, b in zip(fast, exact, strict=True):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n_users=st.integers(1, 6),
    n_items=st.integers(1, 6),
    nnz=st.integers(0, 40),
    factors=st.sampled_from([0, 1, 5, 16, 20, 33, 50, 64, 100]),
    shuffle=st.booleans(),
)
def test_cpp_svd_epoch_matches_numba(seed, n_users, n_items, nnz, factors, shuffle):
    """The C++ epoch = shuffle_ratings + the Numba epoch (same order, rounding only)."""
    core = tastebud.search._core()
    users, items, ratings, bu, bi, P, Q, hp = _problem(
        seed, n_users, n_items, nnz, factors, np.float32
    )
    mine = [a.copy() for a in (users, items, ratings, bu, bi, P, Q)]
    theirs = [a.copy() for a in (users, items, ratings, bu, bi, P, Q)]
    s1 = np.array([seed], np.uint64)
    s2 = s1.copy()
    for _ in range(3):
        sse_c = core.svd_epoch(*mine, hp, s1 if shuffle else None, 1)
        if shuffle:
            sgd.shuffle_ratings(*theirs[:3], s2)
        sse_n = sgd.svd_epoch_serial(*theirs[:3], 1, *theirs[3:], hp, True)
        for a, b in zip(mine[:3], theirs[:3], strict=True):
            np.testing.assert_array_equal(a, b)  # the same permutation
        for a, b in zip(mine[3:], theirs[3:], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
        assert sse_c == pytest.approx(sse_n, rel=1e-4, abs=1e-6)
    assert s1[0] == s2[0]


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n_users=st.integers(1, 6),
    n_items=st.integers(1, 6),
    nnz=st.integers(0, 40),
    factors=st.sampled_from([0, 1, 5, 16, 17, 20, 33, 100, 130]),
    shuffle=st.booleans(),
    epochs=st.integers(0, 3),
)
def test_cpp_svd_fit_matches_numba_epochs(seed, n_users, n_items, nnz, factors, shuffle, epochs):
    """svd_fit = `epochs` x (shuffle_ratings + the exact Numba epoch), rounding only.

    svd_fit pads the factor rows to a multiple of 16 floats and writes the updates as
    ``a p + (lr err) q`` (``a = 1 - lr reg``): the same iterates as the reference's
    ``p + lr (err q - reg p)`` in exact arithmetic, so the comparison is to rounding; the
    visiting order (the shuffle's permutation) is the same exactly. The triples it gets are
    not modified (it shuffles a private copy).
    """
    core = tastebud.search._core()
    users, items, ratings, bu, bi, P, Q, hp = _problem(
        seed, n_users, n_items, nnz, factors, np.float32
    )
    original = [a.copy() for a in (users, items, ratings)]
    mine = [a.copy() for a in (bu, bi, P, Q)]
    theirs = [a.copy() for a in (users, items, ratings, bu, bi, P, Q)]
    s1 = np.array([seed], np.uint64)
    s2 = s1.copy()
    sse_c = core.svd_fit(users, items, ratings, *mine, hp, epochs, s1 if shuffle else None, 1)
    assert sse_c.dtype == np.float64
    assert sse_c.shape == (epochs,)
    for e in range(epochs):
        if shuffle:
            sgd.shuffle_ratings(*theirs[:3], s2)
        sse_n = sgd.svd_epoch_serial(*theirs[:3], 1, *theirs[3:], hp, True)
        assert sse_c[e] == pytest.approx(sse_n, rel=1e-4, abs=1e-6)
    for a, b in zip(mine, theirs[3:], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    for a, b in zip((users, items, ratings), original, strict=True):
        np.testing.assert_array_equal(a, b)
    assert s1[0] == s2[0]


_MASK = (1 << 64) - 1


def _splitmix(state: int) -> tuple[int, int]:
    """SplitMix64: (new state, output), as cpp/sgd.hpp and kernels/sgd.py compute it."""
    state = (state + 0x9E3779B97F4A7C15) & _MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return state, z ^ (z >> 31)


def _strata(counts: np.ndarray, parts: int, extra: int = 0) -> np.ndarray:
    """svd_strata: contiguous ranges of about equal cost (an index costs its ratings, plus
    ``extra`` when it has any), each cut at the index nearest its share (lower on a tie)."""
    cost = counts.astype(np.int64) + extra * (counts > 0)
    before = np.concatenate([[0], np.cumsum(cost)])
    n, total = counts.size, int(before[-1])
    out = np.zeros(n, np.int64)
    start = 0
    for p in range(1, parts + 1):
        end = n
        if p < parts:
            end = start
            while end < n and before[end] * parts < total * p:
                end += 1
            if (
                end > start
                and total * p - before[end - 1] * parts <= before[end] * parts - total * p
            ):
                end -= 1
        out[start:end] = p - 1
        start = end
    return out


#: cpp/sgd.hpp kSvdItemRowCost: an item's cost beyond its ratings in the item strata
_ITEM_ROW_COST = 2


@pytest.mark.parametrize(
    ("threads", "nnz", "n_items", "sparse_tail"),
    [(2, 9000, 50, False), (3, 13000, 50, False), (2, 9000, 3000, True), (3, 13000, 5000, True)],
)
def test_cpp_svd_fit_stratified_threads_replay_serially(threads, nnz, n_items, sparse_tail):
    """num_threads > 1 runs DSGD: replayed block by block with the exact Numba epoch.

    Blocks of one phase share no user and no item, so running them one after the other
    gives the same iterates as running them on parallel threads: the multi-threaded fit is
    a deterministic function of its inputs (rounding aside, as for one thread). With a
    sparse tail (most items of the upper half unrated) the item cost of the strata moves
    the cuts, and the item biases and rows sit at slots with gaps between strata.
    """
    core = tastebud.search._core()
    n_users = 70
    users, items, ratings, bu, bi, P, Q, hp = _problem(5, n_users, n_items, nnz, 12, np.float32)
    if sparse_tail:
        items = np.where(items < n_items // 2, items, items // 7 * 7).astype(np.int32)
        counts = np.bincount(items, minlength=n_items)
        assert (_strata(counts, threads) != _strata(counts, threads, _ITEM_ROW_COST)).any()
    ratings = np.clip(ratings, 1, 5)
    hp[0] = ratings.mean()
    mine = [a.copy() for a in (bu, bi, P, Q)]
    theirs = [a.copy() for a in (bu, bi, P, Q)]
    epochs, seed = 3, 1234
    state = np.array([seed], np.uint64)
    sse_c = core.svd_fit(users, items, ratings, *mine, hp, epochs, state, threads)
    again = [a.copy() for a in (bu, bi, P, Q)]
    core.svd_fit(users, items, ratings, *again, hp, epochs, np.array([seed], np.uint64), threads)
    for a, b in zip(mine, again, strict=True):
        np.testing.assert_array_equal(a, b)  # deterministic for a thread count

    T = threads
    us = _strata(np.bincount(users, minlength=n_users), T)
    its = _strata(np.bincount(items, minlength=n_items), T, _ITEM_ROW_COST)
    key = us[users] * T + its[items]
    order = np.argsort(key, kind="stable")
    bounds = np.searchsorted(key[order], np.arange(T * T + 1))
    blocks = [
        [a[order[bounds[b] : bounds[b + 1]]].copy() for a in (users, items, ratings)]
        for b in range(T * T)
    ]
    sm = seed
    epoch_seeds = []
    for _ in range(epochs):
        sm, out = _splitmix(sm)
        epoch_seeds.append(out)
    assert int(state[0]) == sm
    for e in range(epochs):
        total = 0.0
        for s in range(T):
            for a in range(T):
                b = a * T + (a + s) % T
                _, st = _splitmix(epoch_seeds[e] ^ ((0x9E3779B97F4A7C15 * (b + 1)) & _MASK))
                sgd.shuffle_ratings(*blocks[b], np.array([st], np.uint64))
                total += sgd.svd_epoch_serial(*blocks[b], 1, *theirs, hp, True)
        assert sse_c[e] == pytest.approx(total, rel=1e-4)
    for a, b in zip(mine, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def _by_user(users, items, ratings):
    order = np.argsort(users, kind="stable")
    return users[order].copy(), items[order].copy(), ratings[order].copy()


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n_users=st.integers(1, 9),
    n_items=st.integers(1, 5),
    nnz=st.integers(0, 60),
    factors=st.sampled_from([0, 1, 5, 16, 17, 100, 128, 130]),
    epochs=st.integers(0, 3),
    strong_decay=st.booleans(),
)
def test_cpp_svd_fit_users_order_matches_numba(
    seed, n_users, n_items, nnz, factors, epochs, strong_decay
):
    """order='users' = the Numba specification (users_order + the exact epoch), rounding only.

    Few items make lanes that hold the same item in one step frequent (the kernel then runs
    them one after the other). 0, 128 < factors and 1 - lr_pu reg_pu <= 1/2 (strong_decay)
    take the general path (the same order applied one rating at a time); the others take
    the lane kernel, which keeps each user row as a scale times a vector.
    """
    core = tastebud.search._core()
    users, items, ratings, bu, bi, P, Q, hp = _problem(
        seed, n_users, n_items, nnz, factors, np.float32
    )
    users, items, ratings = _by_user(users, items, ratings)
    if strong_decay:
        hp[3], hp[7] = 0.05, 10.0  # lr_pu, reg_pu: 1 - lr reg = 1/2
    original = [a.copy() for a in (users, items, ratings)]
    mine = [a.copy() for a in (bu, bi, P, Q)]
    theirs = [a.copy() for a in (bu, bi, P, Q)]
    s1 = np.array([seed], np.uint64)
    s2 = s1.copy()
    sse_c = core.svd_fit(users, items, ratings, *mine, hp, epochs, s1, 1, "users")
    sse_n = sgd.svd_users_epochs(users, items, ratings, epochs, *theirs, hp, s2, True)
    assert s1[0] == s2[0]
    np.testing.assert_allclose(sse_c, sse_n, rtol=1e-4, atol=1e-6)
    for a, b in zip(mine, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    for a, b in zip((users, items, ratings), original, strict=True):
        np.testing.assert_array_equal(a, b)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**40), n_seg=st.integers(0, 12), max_len=st.integers(1, 9))
def test_users_order_is_a_permutation_of_lanes_taking_turns(seed, n_seg, max_len):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, max_len + 1, n_seg)
    seg = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    out = np.full(seg[-1], -1, np.int64)
    sgd.users_order(seg, np.array([seed], np.uint64), out)
    np.testing.assert_array_equal(np.sort(out), np.arange(seg[-1]))
    owner = np.searchsorted(seg, out, side="right") - 1
    for s in range(n_seg):  # each segment: a rotation of its positions, in a row for its lane
        mine = out[owner == s] - seg[s]
        np.testing.assert_array_equal(mine, (mine[0] + np.arange(lengths[s])) % lengths[s])
    # while every lane holds a segment, consecutive steps hold SVD_LANES distinct segments
    lanes = sgd.SVD_LANES
    if n_seg >= lanes:
        first = owner[:lanes]
        assert len(set(first.tolist())) == lanes


def test_cpp_svd_fit_users_order_sorts_unsorted_triples():
    """Unsorted triples are grouped by user first (stable): the result is that of the
    triples sorted by user."""
    core = tastebud.search._core()
    users, items, ratings, bu, bi, P, Q, hp = _problem(3, 30, 20, 900, 12, np.float32)
    runs = []
    for triples in ((users, items, ratings), _by_user(users, items, ratings)):
        params = [a.copy() for a in (bu, bi, P, Q)]
        core.svd_fit(*triples, *params, hp, 2, np.array([9], np.uint64), 1, "users")
        runs.append(params)
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)


def _users_order_model(seg: np.ndarray, seed: int) -> list[int]:
    """users_order written out plainly (lists, no Numba), from its docstring."""
    state = np.array([seed], np.uint64)
    n_seg = seg.size - 1
    order = list(range(n_seg))
    for j in range(n_seg - 1, 0, -1):
        k = int(sgd._below(state, j + 1))
        order[j], order[k] = order[k], order[j]
    queue = iter(order)
    lanes: list[list[int] | None] = []

    def take() -> list[int] | None:
        s = next(queue, None)
        if s is None:
            return None
        m = int(seg[s + 1] - seg[s])
        start = int(sgd._below(state, m))
        return [int(seg[s]) + (start + t) % m for t in range(m)]

    lanes = [take() for _ in range(sgd.SVD_LANES)]
    out: list[int] = []
    while any(lane for lane in lanes):
        for lane in lanes:
            if lane:
                out.append(lane.pop(0))
        for j, lane in enumerate(lanes):
            if lane is not None and not lane:
                lanes[j] = take()
    return out


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**40), n_seg=st.integers(0, 10), max_len=st.integers(1, 7))
def test_users_order_matches_a_plain_model(seed, n_seg, max_len):
    lengths = np.random.default_rng(seed).integers(1, max_len + 1, n_seg)
    seg = np.concatenate([[5], 5 + np.cumsum(lengths)]).astype(np.int64)  # offset start
    out = np.empty(seg[-1] - seg[0], np.int64)
    sgd.users_order(seg, np.array([seed], np.uint64), out)
    assert out.tolist() == _users_order_model(seg, seed)


@pytest.mark.parametrize(("factors", "n_items"), [(16, 40), (100, 40), (16, 2), (100, 1)])
def test_cpp_svd_fit_users_order_renormalises_and_clashes(factors, n_items):
    """Lane kernel with a strong decay (1 - lr_pu reg_pu = 0.6: the lane scale falls below
    2^-16 and is folded back every ~22 ratings) and, with 1-2 items, lanes holding the same
    item in most steps; against the Numba specification."""
    core = tastebud.search._core()
    users, items, ratings, bu, bi, P, Q, hp = _problem(7, 4, n_items, 400, factors, np.float32)
    users, items, ratings = _by_user(users, items, ratings)
    hp[3], hp[7] = 0.05, 8.0  # lr_pu, reg_pu
    mine = [a.copy() for a in (bu, bi, P, Q)]
    theirs = [a.copy() for a in (bu, bi, P, Q)]
    sse_c = core.svd_fit(users, items, ratings, *mine, hp, 3, np.array([1], np.uint64), 1, "users")
    sse_n = sgd.svd_users_epochs(
        users, items, ratings, 3, *theirs, hp, np.array([1], np.uint64), True
    )
    np.testing.assert_allclose(sse_c, sse_n, rtol=1e-4)
    for a, b in zip(mine, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("threads", [2, 3])
def test_cpp_svd_fit_users_order_threads_deterministic_and_sorts(threads):
    core = tastebud.search._core()
    users, items, ratings, bu, bi, P, Q, hp = _problem(4, 60, 40, 9000, 20, np.float32)
    ratings = np.clip(ratings, 1, 5)
    runs = []
    for triples in ((users, items, ratings), _by_user(users, items, ratings), None):
        triples = triples or _by_user(users, items, ratings)
        params = [a.copy() for a in (bu, bi, P, Q)]
        core.svd_fit(*triples, *params, hp, 2, np.array([3], np.uint64), threads, "users")
        runs.append(params)
    for other in runs[1:]:
        for a, b in zip(runs[0], other, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("threads", "n_users", "n_items", "nnz"),
    [(1, 40, 30, 700), (2, 60, 40, 9000), (3, 50, 70, 13000), (2, 9, 3, 9000)],
)
def test_cpp_svd_fit_users_order_csr_runs_match_any_order(threads, n_users, n_items, nnz):
    """Triples in CSR order (by user, then item) are cut into blocks a user's run at a time;
    any other order a rating at a time. Triples interleaved across users, each user's
    ratings in the same relative order, must give the CSR order's result bit for bit."""
    core = tastebud.search._core()
    users, items, ratings, bu, bi, P, Q, hp = _problem(6, n_users, n_items, nnz, 17, np.float32)
    ratings = np.clip(ratings, 1, 5)
    csr = np.lexsort((items, users))
    users, items, ratings = users[csr], items[csr], ratings[csr]
    first = np.searchsorted(users, users)  # each rating's rank within its user
    mixed = np.lexsort((users, np.arange(nnz) - first))
    assert not np.all(np.diff(users[mixed]) >= 0)
    runs = []
    for order in (np.arange(nnz), mixed):
        params = [a.copy() for a in (bu, bi, P, Q)]
        core.svd_fit(users[order], items[order], ratings[order], *params, hp, 2,
                     np.array([5], np.uint64), threads, "users")  # fmt: skip
        runs.append(params)
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("threads", "nnz", "factors", "strong_decay"),
    [(2, 9000, 12, False), (3, 13000, 12, False), (2, 9000, 130, False), (3, 13000, 0, False),
     (2, 9000, 12, True)],
)  # fmt: skip
def test_cpp_svd_fit_users_order_threads_replay_serially(threads, nnz, factors, strong_decay):
    """num_threads > 1 with order='users': DSGD blocks, each following users_order (lane
    kernel, and the general path: 0 or 130 factors, 1 - lr_pu reg_pu <= 1/2)."""
    core = tastebud.search._core()
    n_users, n_items = 70, 50
    users, items, ratings, bu, bi, P, Q, hp = _problem(
        5, n_users, n_items, nnz, factors, np.float32
    )
    users, items, ratings = _by_user(users, items, np.clip(ratings, 1, 5))
    hp[0] = ratings.mean()
    if strong_decay:
        hp[3], hp[7] = 0.05, 10.0
    mine = [a.copy() for a in (bu, bi, P, Q)]
    theirs = [a.copy() for a in (bu, bi, P, Q)]
    epochs, seed = 3, 99
    state = np.array([seed], np.uint64)
    sse_c = core.svd_fit(users, items, ratings, *mine, hp, epochs, state, threads, "users")

    T = threads
    us = _strata(np.bincount(users, minlength=n_users), T)
    its = _strata(np.bincount(items, minlength=n_items), T, _ITEM_ROW_COST)
    key = us[users] * T + its[items]
    order = np.argsort(key, kind="stable")  # by block, then by user (users sorted)
    bounds = np.searchsorted(key[order], np.arange(T * T + 1))
    sm, prep = _splitmix(seed)
    epoch_seeds = []
    for _ in range(epochs):
        sm, out = _splitmix(sm)
        epoch_seeds.append(out)
    assert int(state[0]) == sm
    blocks = []
    for b in range(T * T):
        rows = order[bounds[b] : bounds[b + 1]]
        u = users[rows]
        seg = np.flatnonzero(np.diff(u, prepend=-1, append=-1)).astype(np.int64)
        perm = np.arange(rows.size, dtype=np.int64)
        sgd.shuffle_segments(perm, seg, np.array([sgd.block_stream(prep, b)], np.uint64))
        blocks.append((seg, [a[rows][perm] for a in (users, items, ratings)]))
    for e in range(epochs):
        total = 0.0
        for s in range(T):
            for a in range(T):
                b = a * T + (a + s) % T
                seg, triples = blocks[b]
                visit = np.empty(seg[-1], np.int64)
                stream = np.array([sgd.block_stream(epoch_seeds[e], b)], np.uint64)
                sgd.users_order(seg, stream, visit)
                total += sgd.svd_epoch_serial(*(t[visit] for t in triples), 1, *theirs, hp, True)
        assert sse_c[e] == pytest.approx(total, rel=1e-4)
    for a, b in zip(mine, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_cpp_svd_fit_threads_learn_and_reject_bad_input():
    core = tastebud.search._core()
    users, items, ratings, bu, bi, P, Q, hp = _problem(0, 50, 40, 3000, 8, np.float32)
    ratings = np.clip(ratings, 1, 5)
    hp[0] = ratings.mean()
    sse = core.svd_fit(users, items, ratings, bu, bi, P, Q, hp, 10, np.array([7], np.uint64), 2)
    assert np.isfinite(P).all()
    assert np.isfinite(Q).all()
    assert sse[-1] < sse[0]
    # One thread: deterministic.
    runs = []
    for _ in range(2):
        state = [a.copy() for a in _problem(0, 50, 40, 3000, 8, np.float32)[3:7]]
        core.svd_fit(users, items, ratings, *state, hp, 3, np.array([7], np.uint64), 1)
        runs.append(state)
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)
    bad_users = users.copy()
    bad_users[0] = 50
    with pytest.raises(ValueError, match="out of range"):
        core.svd_fit(bad_users, items, ratings, bu, bi, P, Q, hp, 1, None, 1)
    with pytest.raises(ValueError, match="hp"):
        core.svd_fit(users, items, ratings, bu, bi, P, Q, hp[:5].copy(), 1, None, 1)
    with pytest.raises(ValueError, match="epochs"):
        core.svd_fit(users, items, ratings, bu, bi, P, Q, hp, -1, None, 1)
    with pytest.raises(ValueError, match="same number of columns"):
        core.svd_fit(users, items, ratings, bu, bi, P, Q[:, :3].copy(), hp, 1, None, 1)
    with pytest.raises(TypeError):
        core.svd_fit(users.astype(np.int64), items, ratings, bu, bi, P, Q, hp, 1, None, 1)


def test_cpp_svd_epoch_hogwild_learns_and_rejects_bad_input():
    core = tastebud.search._core()
    users, items, ratings, bu, bi, P, Q, hp = _problem(0, 50, 40, 3000, 8, np.float32)
    ratings = np.clip(ratings, 1, 5)
    hp[0] = ratings.mean()
    state = np.array([7], np.uint64)
    first = core.svd_epoch(users, items, ratings, bu, bi, P, Q, hp, state, 2)
    for _ in range(10):
        last = core.svd_epoch(users, items, ratings, bu, bi, P, Q, hp, state, 2)
    assert np.isfinite(P).all()
    assert last < first
    bad_users = users.copy()
    bad_users[0] = 50
    with pytest.raises(ValueError, match="out of range"):
        core.svd_epoch(bad_users, items, ratings, bu, bi, P, Q, hp, None, 1)
    with pytest.raises(ValueError, match="hp"):
        core.svd_epoch(users, items, ratings, bu, bi, P, Q, hp[:5].copy(), None, 1)
    with pytest.raises(ValueError, match="same number of columns"):
        core.svd_epoch(users, items, ratings, bu, bi, P, Q[:, :3].copy(), hp, None, 1)
    with pytest.raises(TypeError):
        core.svd_epoch(users.astype(np.int64), items, ratings, bu, bi, P, Q, hp, None, 1)


def test_svd_cpp_and_numba_kernels_agree():
    class NumbaSVD(SVD):
        _kernel = "numba"

    for shuffle, order in itertools.product((True, False), ("users", "ratings")):
        kw = {"factors": 20, "epochs": 5, "shuffle": shuffle, "order": order, "random_state": 4}
        a = SVD(**kw).fit(P_TRAIN)
        b = NumbaSVD(**kw).fit(P_TRAIN)
        np.testing.assert_allclose(a.user_factors_, b.user_factors_, rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(a.item_factors_, b.item_factors_, rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(a.training_loss_, b.training_loss_, rtol=1e-4)


def test_svd_epoch_parallel_runs_and_learns():
    users, items, ratings, bu, bi, P, Q, hp = _problem(0, 50, 40, 3000, 8, np.float32)
    ratings = np.clip(ratings, 1, 5)
    hp[0] = ratings.mean()
    first = sgd.svd_epoch_parallel(users, items, ratings, 2, bu, bi, P, Q, hp, False)
    for _ in range(10):
        last = sgd.svd_epoch_parallel(users, items, ratings, 2, bu, bi, P, Q, hp, False)
    assert np.isfinite(P).all()
    assert last < first


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**63 - 1), n=st.integers(0, 40))
def test_shufflers_permute(seed, n):
    state = np.array([seed], dtype=np.uint64)
    u = np.arange(n, dtype=np.int32)
    i = u + 100
    r = u.astype(np.float32) * 2
    sgd.shuffle_ratings(u, i, r, state)
    assert sorted(u.tolist()) == list(range(n))
    np.testing.assert_array_equal(i, u + 100)  # triples stay together
    np.testing.assert_array_equal(r, u * 2)
    # segments shuffle within their bounds only
    vals = np.arange(n, dtype=np.int64)
    cuts = np.unique(np.r_[0, np.random.default_rng(seed % 1000).integers(0, n + 1, 3), n])
    sgd.shuffle_segments(vals, cuts.astype(np.int64), state)
    for lo, hi in itertools.pairwise(cuts):
        assert sorted(vals[lo:hi].tolist()) == list(range(lo, hi))


def test_shuffle_is_deterministic_and_moves():
    a = np.arange(1000, dtype=np.int64)
    b = a.copy()
    sgd.shuffle_segments(a, np.array([0, 1000]), np.array([7], np.uint64))
    sgd.shuffle_segments(b, np.array([0, 1000]), np.array([7], np.uint64))
    np.testing.assert_array_equal(a, b)
    assert (a != np.arange(1000)).mean() > 0.9


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n_users=st.integers(1, 5),
    n_items=st.integers(1, 6),
    density=st.floats(0.0, 1.0),
    factors=st.integers(1, 6),
)
def test_svdpp_epoch_matches_surprise_algorithm(seed, n_users, n_items, density, factors):
    """The O(|N(u)|) kernel equals Surprise's O(|N(u)|^2) loop up to rounding (float64)."""
    rng = np.random.default_rng(seed)
    dense = rng.random((n_users, n_items)) < density
    m = sp.csr_matrix(dense * rng.integers(1, 6, dense.shape).astype(np.float64))
    indptr = m.indptr.astype(np.int64)
    indices = m.indices.astype(np.int32)
    ratings = m.data.astype(np.float64)
    P = rng.normal(0, 0.1, (n_users, factors))
    Q = rng.normal(0, 0.1, (n_items, factors))
    Y = rng.normal(0, 0.1, (n_items, factors))
    bu, bi = np.zeros(n_users), np.zeros(n_items)
    hp = np.array([3.0, 0.007, 0.006, 0.005, 0.004, 0.02, 0.03, 0.04, 0.05, 0.05, 0.5, 1.0])
    user_order = rng.permutation(n_users).astype(np.int64)
    positions = np.arange(ratings.size, dtype=np.int64)
    sgd.shuffle_segments(positions, indptr, np.array([seed], np.uint64))
    sqrt_n = np.sqrt(np.diff(indptr).astype(np.float64))
    mine = [a.copy() for a in (bu, bi, P, Q, Y)]
    theirs = [a.copy() for a in (bu, bi, P, Q, Y)]
    for _ in range(3):
        sgd.svdpp_epoch_serial(
            indptr, indices, ratings, sqrt_n, user_order, positions, 1, *mine, hp, True
        )
        ref.svdpp_epoch(indptr, indices, ratings, user_order, positions, *theirs, hp)
    for a, b in zip(mine, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n_rows=st.integers(1, 6),
    n_cols=st.integers(1, 8),
    k=st.integers(1, 6),
    reg=st.sampled_from([1e-3, 0.05, 10.0]),
)
def test_als_solve_matches_numpy(seed, n_rows, n_cols, k, reg):
    rng = np.random.default_rng(seed)
    dense = rng.random((n_rows, n_cols)) < 0.6
    m = sp.csr_matrix(dense * rng.normal(0, 2, dense.shape))
    m.data[m.data == 0] = 1.0
    Y = rng.normal(0, 1, (n_cols, k)).astype(np.float32)
    targets = m.data.astype(np.float32)
    out = np.full((n_rows, k), np.nan, dtype=np.float32)
    sgd.als_solve_serial(
        m.indptr.astype(np.int64), m.indices.astype(np.int32), targets, Y, reg, 1, out
    )
    expected = ref.als_solve(m.indptr, m.indices, targets, Y, reg)
    np.testing.assert_allclose(out, expected, rtol=2e-4, atol=2e-4)
    par = np.full_like(out, np.nan)
    sgd.als_solve_parallel(
        m.indptr.astype(np.int64), m.indices.astype(np.int32), targets, Y, reg, 3, par
    )
    np.testing.assert_array_equal(par, out)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n_rows=st.integers(1, 7),
    n_cols=st.integers(1, 9),
    k=st.sampled_from([1, 2, 3, 5, 8, 17]),
    reg=st.sampled_from([1e-3, 0.05, 10.0]),
    biased=st.booleans(),
    density=st.sampled_from([0.0, 0.3, 0.9]),
)
def test_cpp_explicit_als_solve_matches_numpy(seed, n_rows, n_cols, k, reg, biased, density):
    """The C++ ALS-WR half-iteration against the numpy normal equations (empty rows -> 0)."""
    core = tastebud.search._core()
    rng = np.random.default_rng(seed)
    dense = rng.random((n_rows, n_cols)) < density
    values = rng.choice(np.array([1.0, 3.0, 5.0, 1e3, -2.0]), dense.shape)
    m = sp.csr_matrix(dense * values)
    indptr, indices = m.indptr.astype(np.int64), m.indices.astype(np.int32)
    ratings = m.data.astype(np.float32)
    Y = rng.normal(0, 1, (n_cols, k)).astype(np.float32)
    other = rng.normal(0, 0.5, n_cols).astype(np.float32)
    mu = np.float32(3.5)
    X = np.full((n_rows, k), np.nan, np.float32)
    own = np.full(n_rows, np.nan, np.float32)
    if biased:
        core.explicit_als_solve(indptr, indices, ratings, Y, other, mu, reg, X, own, 1)
        feats = np.hstack([Y, np.ones((n_cols, 1), np.float32)])
        targets = ratings.astype(np.float64) - mu - other[indices]
        expected = ref.als_solve(indptr, indices, targets, feats, reg)
        np.testing.assert_allclose(X, expected[:, :k], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(own, expected[:, k], rtol=1e-4, atol=1e-4)
    else:
        core.explicit_als_solve(indptr, indices, ratings, Y, None, 0.0, reg, X, None, 1)
        expected = ref.als_solve(indptr, indices, ratings, Y, reg)
        np.testing.assert_allclose(X, expected, rtol=1e-4, atol=1e-4)
    # Rows are solved independently: the thread count changes nothing.
    X3 = np.full_like(X, np.nan)
    own3 = np.full_like(own, np.nan)
    if biased:
        core.explicit_als_solve(indptr, indices, ratings, Y, other, mu, reg, X3, own3, 3)
        np.testing.assert_array_equal(own3, own)
    else:
        core.explicit_als_solve(indptr, indices, ratings, Y, None, 0.0, reg, X3, None, 3)
    np.testing.assert_array_equal(X3, X)


def test_cpp_explicit_als_solve_rejects_bad_input():
    core = tastebud.search._core()
    indptr = np.array([0, 2, 3], np.int64)
    indices = np.array([0, 2, 1], np.int32)
    ratings = np.array([1, 2, 3], np.float32)
    Y = np.ones((3, 4), np.float32)
    X = np.zeros((2, 4), np.float32)
    b3, b2 = np.zeros(3, np.float32), np.zeros(2, np.float32)
    core.explicit_als_solve(indptr, indices, ratings, Y, b3, 1.0, 0.1, X, b2, 1)
    with pytest.raises(ValueError, match="reg"):
        core.explicit_als_solve(indptr, indices, ratings, Y, None, 0.0, 0.0, X, None, 1)
    with pytest.raises(ValueError, match="both"):
        core.explicit_als_solve(indptr, indices, ratings, Y, b3, 0.0, 0.1, X, None, 1)
    with pytest.raises(ValueError, match="X must be"):
        core.explicit_als_solve(indptr, indices, ratings, Y, None, 0.0, 0.1, X[:1], None, 1)
    with pytest.raises(ValueError, match="n_cols"):
        core.explicit_als_solve(indptr, indices, ratings, Y, b2, 0.0, 0.1, X, b2, 1)
    bad = indices.copy()
    bad[0] = 3
    with pytest.raises(ValueError):
        core.explicit_als_solve(indptr, bad, ratings, Y, None, 0.0, 0.1, X, None, 1)
    with pytest.raises(TypeError):
        core.explicit_als_solve(indptr, indices, ratings.astype(np.float64), Y, None, 0.0, 0.1,
                                X, None, 1)  # fmt: skip


# --------------------------------------------------------------------------- normal_fill
@pytest.mark.parametrize("seed", [0, 7, 2**63 - 1])
def test_normal_fill_is_standard_normal(seed):
    """The ziggurat draws against scipy's normal law: KS, moments and both tails."""
    from scipy import stats

    core = tastebud.search._core()
    x = np.empty(1_000_000, np.float32)
    core.normal_fill(x, 0.0, 1.0, seed, 2)
    assert stats.kstest(x, "norm").pvalue > 1e-3
    assert abs(x.mean()) < 5e-3
    assert abs(x.std() - 1) < 5e-3
    assert abs(stats.skew(x)) < 0.02
    assert abs(stats.kurtosis(x)) < 0.05
    # The tail beyond r = 3.4426 comes from the exact tail sampler, the wedges from their test:
    # their frequencies must match the law's (binomial 5-sigma bands).
    for edge in (1.0, 2.5, 3.442619855899, 4.0):
        p = 2 * stats.norm.sf(edge)
        seen = np.mean(np.abs(x) > edge)
        assert abs(seen - p) < 5 * np.sqrt(p * (1 - p) / x.size) + 1e-7, edge
    assert np.mean(x > 0) == pytest.approx(0.5, abs=5 * 0.5 / np.sqrt(x.size))
    # Neighbouring draws are uncorrelated (the layer index and value use different bits).
    assert abs(np.corrcoef(x[:-1], x[1:])[0, 1]) < 5 / np.sqrt(x.size)


def test_normal_fill_depends_on_seed_only():
    core = tastebud.search._core()
    a, b, c = (np.empty((300, 70), np.float32) for _ in range(3))
    core.normal_fill(a, 1.5, 0.25, 11, 1)
    core.normal_fill(b, 1.5, 0.25, 11, 2)
    core.normal_fill(c, 1.5, 0.25, 12, 2)
    np.testing.assert_array_equal(a, b)  # same values for any thread count
    assert not np.array_equal(a, c)
    assert abs(a.mean() - 1.5) < 0.01
    assert abs(a.std() - 0.25) < 0.01
    # A prefix of a longer fill is the shorter fill (chunks are drawn per position).
    d = np.empty(100, np.float32)
    core.normal_fill(d, 1.5, 0.25, 11, 1)
    np.testing.assert_array_equal(d, a.ravel()[:100])
    z = np.empty(5, np.float32)
    core.normal_fill(z, 2.0, 0.0, 3, 1)
    np.testing.assert_array_equal(z, 2.0)
    core.normal_fill(np.empty(0, np.float32), 0.0, 1.0, 3, 1)  # empty is fine


def test_normal_fill_rejects_bad_input():
    core = tastebud.search._core()
    with pytest.raises(TypeError):
        core.normal_fill(np.empty(4, np.float64), 0.0, 1.0, 1, 1)
    with pytest.raises(ValueError, match="std"):
        core.normal_fill(np.empty(4, np.float32), 0.0, -1.0, 1, 1)
    with pytest.raises(ValueError, match="finite"):
        core.normal_fill(np.empty(4, np.float32), np.nan, 1.0, 1, 1)
    frozen = np.empty(4, np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        core.normal_fill(frozen, 0.0, 1.0, 1, 1)


# --------------------------------------------------------------------------- models vs refs
def test_svd_model_matches_reference_unshuffled():
    """SVD(shuffle=False) = Surprise's loop: same init draws, user-major order, float32."""
    model = SVD(factors=5, epochs=3, shuffle=False, random_state=3).fit(TRAIN)
    d = _Ratings(TRAIN, None)
    rng = np.random.default_rng(3)
    P, Q = _normal_init(rng, (d.n_users, d.n_items), 5, 0.0, 0.1, 1)
    bu, bi = np.zeros(d.n_users, np.float32), np.zeros(d.n_items, np.float32)
    hp = np.array([d.mean, 0.005, 0.005, 0.005, 0.005, 0.02, 0.02, 0.02, 0.02], np.float32)
    for _ in range(3):
        ref.svd_epoch(d.users, d.items, d.ratings, bu, bi, P, Q, hp)
    np.testing.assert_allclose(model.user_factors_, P, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.item_factors_, Q, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.user_bias_, bu, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.item_bias_, bi, rtol=1e-4, atol=1e-5)


def test_baseline_als_matches_surprise_loops():
    model = Baseline(method="als").fit(TRAIN)
    d = _Ratings(TRAIN, None)
    bu, bi = ref.baseline_als(d.users, d.items, d.ratings, d.n_users, d.n_items, 10, 15, 10)
    np.testing.assert_allclose(model.user_bias_, bu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.item_bias_, bi, rtol=1e-5, atol=1e-6)


def test_baseline_sgd_matches_reference_unshuffled():
    model = Baseline(method="sgd", epochs=4, shuffle=False).fit(TRAIN)
    d = _Ratings(TRAIN, None)
    bu, bi = np.zeros(d.n_users, np.float32), np.zeros(d.n_items, np.float32)
    hp = np.array([d.mean, 0.005, 0.005, 0, 0, 0.02, 0.02, 0, 0], np.float32)
    empty_p, empty_q = np.zeros((d.n_users, 0), np.float32), np.zeros((d.n_items, 0), np.float32)
    for _ in range(4):
        ref.svd_epoch(d.users, d.items, d.ratings, bu, bi, empty_p, empty_q, hp)
    np.testing.assert_allclose(model.user_bias_, bu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.item_bias_, bi, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- accuracy
def test_planted_model_rmse_approaches_noise():
    base = rmse(Baseline().fit(P_TRAIN), P_TEST)
    results = {
        "SVD": SVD(factors=4, epochs=60, learning_rate=0.01, regularization=0.05),
        "SVDpp": SVDpp(factors=4, epochs=40, learning_rate=0.01, regularization=0.05),
        "ExplicitALS": ExplicitALS(factors=4, iterations=10, regularization=0.05),
    }
    assert base > 0.6  # the biases alone cannot explain the planted interactions
    for name, model in results.items():
        value = rmse(model.set_params(random_state=1).fit(P_TRAIN), P_TEST)
        assert value < 1.2 * NOISE, (name, value, base)


def test_hogwild_threads_match_serial_quality():
    serial = SVD(factors=8, epochs=30, learning_rate=0.01, random_state=1).fit(P_TRAIN)
    hog = SVD(factors=8, epochs=30, learning_rate=0.01, random_state=1, num_threads=2)
    hog.fit(P_TRAIN)
    assert abs(rmse(hog, P_TEST) - rmse(serial, P_TEST)) < 0.02
    # Stratified (DSGD) threads write disjoint rows: deterministic for a thread count.
    again = SVD(factors=8, epochs=30, learning_rate=0.01, random_state=1, num_threads=2)
    again.fit(P_TRAIN)
    np.testing.assert_array_equal(again.user_factors_, hog.user_factors_)
    np.testing.assert_array_equal(again.item_bias_, hog.item_bias_)
    pp = SVDpp(factors=8, epochs=10, random_state=1, num_threads=2).fit(P_TRAIN)
    assert rmse(pp, P_TEST) < rmse(Baseline().fit(P_TRAIN), P_TEST)
    als1 = ExplicitALS(factors=4, iterations=3, random_state=1).fit(P_TRAIN)
    als2 = ExplicitALS(factors=4, iterations=3, random_state=1, num_threads=2).fit(P_TRAIN)
    np.testing.assert_allclose(als1.user_factors_, als2.user_factors_, rtol=1e-5, atol=1e-6)


def test_deterministic_with_seed():
    for make in (
        lambda: SVD(factors=4, epochs=3, random_state=5),
        lambda: SVDpp(factors=4, epochs=3, random_state=5),
        lambda: Baseline(method="sgd", epochs=3, random_state=5),
    ):
        a, b = make().fit(TRAIN), make().fit(TRAIN)
        np.testing.assert_array_equal(a.user_factors_, b.user_factors_)
        np.testing.assert_array_equal(a.item_bias_, b.item_bias_)


# --------------------------------------------------------------------------- predict
def test_predict_unknown_rule_and_clip():
    inter = Interactions.from_arrays(
        ["a", "a", "b", "c"], ["x", "y", "x", "z"], weights=[5.0, 3.0, 4.0, 1.0]
    )
    model = SVD(factors=3, epochs=5, random_state=0).fit(inter)
    mu = model.global_mean_
    bu = dict(zip(model.users_.ids_array, model.user_bias_, strict=True))
    bi = dict(zip(model.items_.ids_array, model.item_bias_, strict=True))
    got = model.predict(["new", "a", "new"], ["x", "nope", "nope"], clip=False)
    np.testing.assert_allclose(got, [mu + bi["x"], mu + bu["a"], mu], rtol=1e-6)
    with pytest.raises(KeyError, match="new"):
        model.predict(["new"], ["x"], unknown="error")
    full = model.predict("a", ["x", "y", "z"], clip=False)
    uvec = model.user_factors_[model.users_.index(["a"])[0]]
    qs = model.item_factors_[model.items_.index(["x", "y", "z"])]
    expected = mu + bu["a"] + model.item_bias_[model.items_.index(["x", "y", "z"])] + qs @ uvec
    np.testing.assert_allclose(full, expected, rtol=1e-5)
    assert model.predict("a", ["x", "y", "z"]).max() <= 5.0
    assert model.predict("a", ["x", "y", "z"], clip=(2.0, 2.5)).max() <= 2.5
    assert model.predict("a", "x").dtype == np.float32
    with pytest.raises(ValueError, match="unknown"):
        model.predict("a", "x", unknown="zero")
    with pytest.raises(ValueError, match="same length"):
        model.predict(["a", "b"], ["x", "y", "z"])


def test_ids_without_training_ratings_are_unknown():
    """k-fold keeps full vocabularies: users with no training rating fall back to biases."""
    inter = Interactions.from_arrays([0, 0, 1, 2], [0, 1, 1, 2], weights=[5.0, 3.0, 4.0, 2.0])
    train, _ = split.kfold(inter, 2, random_state=1)[0]
    for model in (SVD(factors=3, epochs=3, random_state=0), SVDpp(factors=3, epochs=3)):
        model.fit(train)
        counts = np.diff(model.seen_.indptr)
        assert np.all(model.user_factors_[counts == 0] == 0)
        assert np.all(model.user_bias_[counts == 0] == 0)


def test_ranking_matches_predicted_rating_order():
    model = SVDpp(factors=6, epochs=5, random_state=0).fit(TRAIN)
    user = TRAIN.users.ids_array[3]
    recs = model.recommend(user, k=20, exclude_seen=False)
    pred = model.predict(np.repeat(user, 20), recs.ids[0], clip=False)
    assert np.all(np.diff(pred) <= 1e-4)
    shift = pred - recs.scores[0]  # mu + b_u: constant for the user
    np.testing.assert_allclose(shift, shift[0], atol=1e-4)


def test_save_load_keeps_predictions(tmp_path):
    models = (
        SVDpp(factors=4, epochs=3, random_state=0),
        ExplicitALS(factors=3),
        SVD(factors=4, epochs=3, order="ratings", random_state=0),
    )
    for model in models:
        model.fit(TRAIN)
        model.save(tmp_path / "m.tbud")
        loaded = tastebud.load(tmp_path / "m.tbud")
        assert loaded.get_params() == model.get_params()
        users, items = TRAIN.users.ids_array[:30], TRAIN.items.ids_array[:30]
        np.testing.assert_array_equal(model.predict(users, items), loaded.predict(users, items))


def test_unbiased_svd_predicts_dot_or_mean():
    model = SVD(factors=4, epochs=5, biased=False, random_state=0).fit(TRAIN)
    assert np.all(model.user_bias_ == 0)
    u, i = TRAIN.users.ids_array[0], TRAIN.items.ids_array[0]
    ui, ii = model.users_.index([u])[0], model.items_.index([i])[0]
    dot = model.user_factors_[ui] @ model.item_factors_[ii]
    assert model.predict(u, i, clip=False)[0] == pytest.approx(dot, rel=1e-5)
    assert model.predict("x", i, clip=False)[0] == pytest.approx(model.global_mean_)


# --------------------------------------------------------------------------- bad input
def test_bad_input():
    with pytest.raises(ValueError, match="finite"):
        Interactions.from_arrays([0, 1], [0, 1], weights=[1.0, np.nan])

    class Fake:  # a matrix that bypassed Interactions' own checks
        matrix = sp.csr_matrix(np.array([[1.0, np.nan]], dtype=np.float32))

    with pytest.raises(ValueError, match="NaN"):
        _Ratings(Fake(), None)
    Fake.matrix = sp.csr_matrix(np.array([[1.0, 2.0]], dtype=np.float64))
    with pytest.raises(TypeError, match="float32"):
        _Ratings(Fake(), None)
    with pytest.raises(ValueError, match="rating_scale"):
        SVD(rating_scale=(1, 4)).fit(TRAIN)  # synthetic ratings reach 5
    with pytest.raises(ValueError, match="low < high"):
        SVD(rating_scale=(5, 1)).fit(TRAIN)
    with pytest.raises(TypeError, match="rating_scale"):
        Baseline(rating_scale="1-5").fit(TRAIN)
    with pytest.raises(ValueError, match="empty"):
        SVD().fit(sp.csr_matrix((3, 4), dtype=np.float32))
    with pytest.raises(TypeError, match="interactions"):
        SVD().fit([[1, 2]])
    with pytest.raises(TypeError, match="factors"):
        SVD(factors=2.5).fit(TRAIN)
    with pytest.raises(ValueError, match="epochs"):
        SVD(epochs=0).fit(TRAIN)
    with pytest.raises(ValueError, match="learning_rate"):
        SVD(learning_rate=-1).fit(TRAIN)
    with pytest.raises(ValueError, match="reg_qi"):
        SVD(reg_qi=float("nan")).fit(TRAIN)
    with pytest.raises(TypeError, match="lr_yj"):
        SVDpp(lr_yj="fast").fit(TRAIN)
    with pytest.raises(TypeError, match="shuffle"):
        SVD(shuffle="yes").fit(TRAIN)
    for order in ("user", "Users"):
        with pytest.raises(ValueError, match="order"):
            SVD(order=order).fit(TRAIN)
    for order in (1, None):
        with pytest.raises(TypeError, match="order"):
            SVD(order=order).fit(TRAIN)
    core = tastebud.search._core()
    u, i, r, bu, bi, P, Q, hp = _problem(0, 3, 3, 10, 4, np.float32)
    with pytest.raises(ValueError, match="order"):
        core.svd_fit(u, i, r, bu, bi, P, Q, hp, 1, None, 1, "items")
    with pytest.raises(TypeError, match="random_state"):
        SVD(random_state="seed").fit(TRAIN)
    with pytest.raises(ValueError, match="num_threads"):
        SVD(num_threads=-2).fit(TRAIN)
    with pytest.raises(ValueError, match="method"):
        Baseline(method="newton").fit(TRAIN)
    with pytest.raises(ValueError, match="regularization"):
        ExplicitALS(regularization=0).fit(TRAIN)
    with pytest.raises(TypeError, match="similarity"):
        Baseline().fit(TRAIN).similar_items(TRAIN.items.ids_array[:1])
    with pytest.raises(tastebud.NotFittedError):
        SVD().predict([0], [0])


def test_divergence_raises_fit_error():
    with pytest.raises(tastebud.FitError, match="diverged"):
        SVD(factors=4, epochs=30, learning_rate=5.0, random_state=0).fit(P_TRAIN)


def test_fold_in_without_regularization_is_finite():
    """regularization=0: a new user with fewer ratings than factors has a singular system;
    the fold-in's ridge floor gives the smallest-norm least-squares fit, not NaN."""
    model = SVD(factors=8, epochs=5, regularization=0.0, random_state=0).fit(TRAIN)
    items = TRAIN.items.ids_array
    recs = model.recommend_for({"new": {items[0]: 5.0, items[1]: 3.0}}, k=3)
    assert np.isfinite(recs.scores).all()
    p = model._fold_in(sp.csr_matrix(([5.0, 3.0], ([0, 0], [0, 1])), shape=(1, TRAIN.n_items)))
    assert np.isfinite(p).all()
    assert np.abs(p).max() > 0
