import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import tastebud
from tastebud import DataWarning, Item2Vec
from tastebud.data import Interactions, Sequences
from tastebud.kernels import item2vec as kernels
from tastebud.models.item2vec import _splitmix_seed, keep_probabilities
from tests.models.contract import CONTRACT_CHECKS, run_check, small_data
from tests.reference import item2vec_reference as ref

_, TRAIN, TEST = small_data()


def fast(**kw):
    params = {"factors": 16, "epochs": 3, "num_threads": 1, "random_state": 0}
    params.update(kw)
    return Item2Vec(**params)


@pytest.mark.parametrize("check", CONTRACT_CHECKS, ids=lambda c: c.__name__)
def test_contract(check, tmp_path):
    run_check(check, lambda: fast(), TRAIN, tmp_path)


# ----------------------------------------------------------------------------- kernels
def test_splitmix_matches_reference():
    state = np.array([_splitmix_seed(7, 0)], dtype=np.uint64)
    rng = ref.SplitMix64(int(state[0]))
    got = [int(kernels._next(state)) for _ in range(5)]
    assert got == [rng.next() for _ in range(5)]
    assert int(state[0]) == rng.state


@settings(max_examples=40, deadline=None)
@given(
    f=st.integers(1, 17),
    n_items=st.integers(2, 8),
    n_ctx=st.integers(1, 6),
    negatives=st.integers(0, 4),
    lr=st.floats(1e-3, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_centre_step_matches_reference(f, n_items, n_ctx, negatives, lr, seed):
    """Injected negatives (with duplicates and hits on the centre) and duplicate contexts."""
    rng = np.random.default_rng(seed)
    in_vecs = rng.standard_normal((n_items, f)).astype(np.float32)
    out_vecs = rng.standard_normal((n_items, f)).astype(np.float32)
    contexts = rng.integers(0, n_items, n_ctx)
    targets = rng.integers(0, n_items, negatives + 1)
    a_in, a_out = in_vecs.copy(), out_vecs.copy()
    ref.sgns_centre(a_in, a_out, contexts, targets, lr)
    x = np.empty((n_ctx, f), np.float32)
    y = np.empty((negatives + 1, f), np.float32)
    g = np.empty((n_ctx, negatives + 1), np.float32)
    kernels.sgns_centre(
        in_vecs, out_vecs, contexts.astype(np.int64), n_ctx, targets.astype(np.int64),
        negatives + 1, lr, x, y, g,
    )  # fmt: skip
    np.testing.assert_allclose(in_vecs, a_in, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out_vecs, a_out, rtol=1e-5, atol=1e-5)


def test_centre_step_hand_computed():
    """f=1: one context, target with label 1, one negative with label 0."""
    in_vecs = np.array([[1.0], [0.0], [0.0]], np.float32)
    out_vecs = np.array([[0.0], [2.0], [-1.0]], np.float32)
    x = np.empty((1, 1), np.float32)
    y = np.empty((2, 1), np.float32)
    g = np.empty((1, 2), np.float32)
    kernels.sgns_centre(in_vecs, out_vecs, np.array([0]), 1, np.array([1, 2]), 2, 0.5, x, y, g)
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    g_pos = (1 - sig(2.0)) * 0.5
    g_neg = (0 - sig(-1.0)) * 0.5
    np.testing.assert_allclose(in_vecs[0, 0], 1 + g_pos * 2 + g_neg * -1, rtol=1e-6)
    np.testing.assert_allclose(out_vecs[1, 0], 2 + g_pos * 1, rtol=1e-6)
    np.testing.assert_allclose(out_vecs[2, 0], -1 + g_neg * 1, rtol=1e-6)


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.integers(1, 30), elements=st.sampled_from([0.0, 0.5, 1.0, 3.0, 1e6])))
def test_alias_table_is_exact(weights):
    if weights.sum() == 0:
        weights[0] = 1.0
    threshold, alias = kernels.alias_table(weights)
    p = ref.alias_probabilities(threshold, alias)
    np.testing.assert_allclose(p, weights / weights.sum(), atol=1e-8)
    assert np.all(p[weights == 0] == 0), "zero-weight items must never be drawn"


def test_alias_draws_follow_the_table():
    weights = np.array([1.0, 0.0, 2.0, 5.0])
    threshold, alias = kernels.alias_table(weights)
    rng = ref.SplitMix64(3)
    draws = np.array([ref.alias_draw(rng, threshold, alias) for _ in range(20000)])
    freq = np.bincount(draws, minlength=4) / draws.size
    np.testing.assert_allclose(freq, weights / weights.sum(), atol=0.015)
    assert freq[1] == 0


def test_keep_probabilities_match_word2vec():
    counts = np.array([0, 1, 10, 1000, 50000])
    np.testing.assert_allclose(
        keep_probabilities(counts, 1e-3), ref.keep_probabilities(counts, 1e-3)
    )
    assert np.all(keep_probabilities(counts, 0.0) == 1.0)


@settings(max_examples=40, deadline=None)
@given(
    f=st.integers(1, 17),
    n_items=st.integers(2, 8),
    n_ctx=st.integers(1, 5),
    negatives=st.integers(0, 4),
    lr=st.floats(1e-3, 1.0),
    max_dot=st.sampled_from([0.0, 0.5, 6.0]),
    scale=st.sampled_from([0.1, 1.0, 4.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_pair_steps_match_reference(f, n_items, n_ctx, negatives, lr, max_dot, scale, seed):
    """Per-pair steps of one centre: duplicate contexts and negatives, negatives hitting the
    centre or the context, saturated dot products (skipped with ``max_dot > 0``)."""
    rng = np.random.default_rng(seed)
    in_vecs = (scale * rng.standard_normal((n_items, f))).astype(np.float32)
    out_vecs = (scale * rng.standard_normal((n_items, f))).astype(np.float32)
    contexts = rng.integers(0, n_items, n_ctx)
    centre = int(rng.integers(0, n_items))
    noise = rng.integers(0, n_items, (n_ctx, max(negatives, 1)))
    a_in, a_out = in_vecs.copy(), out_vecs.copy()
    for r in range(n_ctx):
        targets = np.concatenate([[centre], noise[r, :negatives]])
        ref.sgns_pair(a_in, a_out, int(contexts[r]), targets, lr, max_dot)
    work = np.empty((2, f), np.float32)
    kernels.sgns_pairs(
        in_vecs, out_vecs, contexts, n_ctx, centre, noise, negatives, lr, max_dot, work
    )
    np.testing.assert_allclose(in_vecs, a_in, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out_vecs, a_out, rtol=1e-4, atol=1e-4)


def test_pair_step_hand_computed():
    """f=1, sequential as in word2vec: the second target sees no change of ``in``; the skip
    rule drops a saturated target."""
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    in_vecs = np.array([[1.0], [0.0], [0.0], [0.0]], np.float32)
    out_vecs = np.array([[0.0], [2.0], [-1.0], [7.0]], np.float32)
    work = np.empty((2, 1), np.float32)
    ctx = np.array([0])
    kernels.sgns_pairs(in_vecs, out_vecs, ctx, 1, 1, np.array([[2, 3]]), 2, 0.5, 6.0, work)
    g_pos = (1 - sig(2.0)) * 0.5
    g_neg = (0 - sig(-1.0)) * 0.5
    np.testing.assert_allclose(in_vecs[0, 0], 1 + g_pos * 2 + g_neg * -1, rtol=1e-6)
    np.testing.assert_allclose(out_vecs[1, 0], 2 + g_pos * 1, rtol=1e-6)
    np.testing.assert_allclose(out_vecs[2, 0], -1 + g_neg * 1, rtol=1e-6)
    assert out_vecs[3, 0] == 7.0  # dot 7 >= max_dot 6: skipped, as in gensim
    kernels.sgns_pairs(in_vecs, out_vecs, ctx, 1, 3, np.array([[3]]), 0, 0.5, 0.0, work)
    assert out_vecs[3, 0] > 7.0  # max_dot=0: always updated (word2vec.c)


def _tiny_interactions():
    rng = np.random.default_rng(5)
    users, items, ts = [], [], []
    for u in range(6):
        chosen = rng.choice(9, size=rng.integers(2, 8), replace=False)
        users += [u] * chosen.size
        items += chosen.tolist()
        ts += rng.integers(0, 5, chosen.size).tolist()  # ties in time on purpose
    return Interactions.from_arrays(users, items, timestamps=ts)


@pytest.mark.parametrize(
    ("mode", "subsample", "negatives", "window", "update", "max_dot"),
    [
        ("sequence", 0.0, 3, 2, "window", 0.0),
        ("sequence", 0.2, 2, 3, "window", 6.0),
        ("basket", 0.1, 4, 5, "window", 0.0),
        ("sequence", 0.0, 3, 2, "pair", 6.0),
        ("sequence", 0.2, 2, 3, "pair", 0.0),
        ("basket", 0.1, 4, 5, "pair", 0.3),
    ],
)
def test_fit_replays_reference(mode, subsample, negatives, window, update, max_dot):
    """The whole training run (subsampling, window draws, negatives, lr decay) replayed."""
    inter = _tiny_interactions()
    model = Item2Vec(
        factors=5, window=window, negatives=negatives, subsample=subsample, epochs=3,
        learning_rate=0.2, min_learning_rate=0.01, mode=mode, num_threads=1, random_state=11,
        update=update, max_dot=max_dot, init_range=0.7,
    ).fit(inter)  # fmt: skip
    seqs = Sequences.from_interactions(inter)
    counts = np.bincount(seqs.items, minlength=inter.n_items)
    np.testing.assert_array_equal(model.item_counts_, counts)
    rng = np.random.default_rng(11)
    # uniform(-init_range, init_range) / factors (gensim 4's range with init_range=1)
    in_vecs = (rng.random((inter.n_items, 5), dtype=np.float32) * 2 - 1) * np.float32(0.7 / 5)
    out_vecs = np.zeros_like(in_vecs)
    threshold, alias = kernels.alias_table(counts.astype(np.float64) ** 0.75)
    ref.train(
        seqs.items, seqs.indptr, in_vecs, out_vecs, threshold, alias,
        ref.keep_probabilities(counts, subsample), window, negatives, mode == "basket",
        0.2, 0.01, 3, _splitmix_seed(11, 0), update == "pair", max_dot,
    )  # fmt: skip
    np.testing.assert_allclose(model.item_vectors_, in_vecs, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(model.context_vectors_, out_vecs, rtol=1e-4, atol=1e-6)
    assert np.abs(out_vecs).sum() > 0  # something was learned


# ----------------------------------------------------------------------------- quality
def _cluster_sequences(n_clusters=5, per_cluster=12, n_users=300, seed=0):
    """Each user consumes 8 items of one cluster (random order): planted co-occurrence."""
    rng = np.random.default_rng(seed)
    users, items, ts = [], [], []
    for u in range(n_users):
        c = u % n_clusters
        chosen = c * per_cluster + rng.choice(per_cluster, 8, replace=False)
        users += [u] * 8
        items += chosen.tolist()
        ts += list(range(8))
    return Interactions.from_arrays(users, items, timestamps=ts), per_cluster


@pytest.mark.parametrize(("mode", "threads"), [("sequence", 1), ("basket", 1), ("sequence", 2)])
def test_planted_clusters_are_recovered(mode, threads):
    inter, per = _cluster_sequences()
    # every item is "frequent" in 2400 events, so word2vec's subsampling would discard ~70%
    # of them: switch it off for this tiny corpus
    model = Item2Vec(
        factors=16, epochs=10, mode=mode, subsample=0, num_threads=threads, random_state=1
    )
    model.fit(inter)
    recs = model.similar_items(inter.items.ids_array, k=5)
    same = (recs.ids // per) == (inter.items.ids_array[:, None] // per)
    assert same.mean() >= 0.95


def test_recency_order_matters():
    inter, per = _cluster_sequences()
    model = Item2Vec(factors=16, epochs=10, subsample=0, num_threads=1, popularity_weight=0.0)
    model.fit(inter)
    # a session drifting from cluster 0 to cluster 3: the recent cluster wins
    session = [0, 1, 2, 3 * per, 3 * per + 1]
    recs = model.recommend_for([session], k=5)
    assert np.all(recs.ids[0] // per == 3)
    flat = model.set_params(recency_decay=1.0, history=None).recommend_for([session[::-1]], k=5)
    again = model.recommend_for([session], k=5)
    np.testing.assert_array_equal(flat.ids, again.ids)  # equal weights: order irrelevant


def test_recommend_for_ordered_history_equals_known_user():
    model = fast().fit(TRAIN)
    seqs = Sequences.from_interactions(TRAIN)
    for u in range(5):
        hist = TRAIN.items.ids(seqs[u]).tolist()
        folded = model.recommend_for({"s": hist}, k=10)
        known = model.recommend(TRAIN.users.ids_array[seqs.users[u]], k=10)
        np.testing.assert_array_equal(folded.ids, known.ids)
        np.testing.assert_allclose(folded.scores, known.scores, rtol=1e-5, atol=1e-6)


def test_session_inputs_agree():
    model = fast().fit(TRAIN)
    seqs = Sequences.from_interactions(TRAIN)
    sub = TRAIN.select_users([0, 1, 2])
    a = model.recommend_for(sub, k=5)
    b = model.recommend_for([TRAIN.items.ids(seqs[i]).tolist() for i in range(3)], k=5)
    c = model.recommend_for(Sequences.from_interactions(sub), k=5)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.ids, c.ids)
    d = model.recommend_for(sp.csr_matrix(TRAIN.matrix[:3]), k=5)  # unordered rows
    assert d.ids.shape == (3, 5)


def test_popularity_weight_blends_counts():
    model = fast(popularity_weight=0.0).fit(TRAIN)
    assert model._item_bias() is None
    big = model.set_params(popularity_weight=1e4)
    recs = big.recommend(TRAIN.users.ids_array[:3], k=5, exclude_seen=False)
    order = np.argsort(-np.log1p(model.item_counts_), kind="stable")[:5]
    assert set(recs.indices[0]) == set(order)


@pytest.mark.parametrize("scoring", ["context", "input"])
def test_scoring_matches_numpy(scoring):
    """recommend_for = cosine of the recency-weighted mean of unit input vectors with each
    item's unit output (``context``) or input vector, plus the popularity blend."""
    model = fast(scoring=scoring, popularity_weight=0.3, recency_decay=0.7).fit(TRAIN)
    seqs = Sequences.from_interactions(TRAIN)
    hist = seqs[3][-4:]
    recs = model.recommend_for([TRAIN.items.ids(hist).tolist()], k=6)

    def unit(v):
        return v / np.linalg.norm(v, axis=-1, keepdims=True)

    ages = np.arange(hist.size)[::-1]
    mean = unit(((0.7**ages)[:, None] * unit(model.item_vectors_[hist])).sum(axis=0))
    cands = model.context_vectors_ if scoring == "context" else model.item_vectors_
    lc = np.log1p(model.item_counts_)
    expected = unit(cands) @ mean + 0.3 * lc / lc.max()
    expected[hist] = -np.inf
    np.testing.assert_allclose(recs.scores[0], np.sort(expected)[::-1][:6], rtol=1e-4, atol=1e-5)


def test_similar_items_ignore_scoring():
    a = fast(scoring="context").fit(TRAIN)
    b = a.set_params(scoring="input")
    ids = TRAIN.items.ids_array[:3]
    first = a.set_params(scoring="context").similar_items(ids, k=4)
    second = b.similar_items(ids, k=4)
    np.testing.assert_array_equal(first.ids, second.ids)
    u = a.item_vectors_ / np.linalg.norm(a.item_vectors_, axis=1, keepdims=True)
    np.testing.assert_allclose(first.scores[0][0], np.sort(np.delete(u @ u[0], 0))[-1], rtol=1e-5)


# ----------------------------------------------------------------------------- errors
def test_unknown_and_empty_sessions():
    model = fast().fit(TRAIN)
    with pytest.raises(KeyError, match="unknown item"):
        model.recommend_for([[10**9]], k=3)
    pop = model.recommend_for([[10**9], []], k=3, unknown_items="ignore")
    top = np.argsort(-model.item_counts_, kind="stable")[:3]
    np.testing.assert_array_equal(pop.indices, [top, top])
    pad = model.recommend_for([[10**9]], k=3, unknown_items="ignore", empty="pad")
    assert np.all(pad.indices == -1)
    assert np.all(np.isneginf(pad.scores))
    with pytest.raises(ValueError, match="empty must be"):
        model.recommend_for([[1]], k=3, empty="nope")
    with pytest.raises(TypeError, match="sequence of item ids"):
        model.recommend_for(["abc"], k=3)
    with pytest.raises(TypeError, match="not a string"):
        model.recommend_for("abc", k=3)
    with pytest.raises(TypeError, match="ordered sequences"):
        model.recommend_for([{1: 1.0}], k=3)
    with pytest.raises(TypeError, match="list of item-id sequences"):
        model.recommend_for(3, k=3)


@pytest.mark.parametrize(
    ("param", "value", "exc"),
    [
        ("factors", 0, ValueError),
        ("factors", 2.5, TypeError),
        ("window", 0, ValueError),
        ("negatives", -1, ValueError),
        ("subsample", -0.1, ValueError),
        ("learning_rate", 0.0, ValueError),
        ("learning_rate", float("nan"), ValueError),
        ("min_learning_rate", 1.0, ValueError),
        ("epochs", 0, ValueError),
        ("min_count", 0, ValueError),
        ("mode", "bag", ValueError),
        ("update", "batch", ValueError),
        ("scoring", "output", ValueError),
        ("max_dot", -1.0, ValueError),
        ("init_range", 0.0, ValueError),
        ("history", 0, ValueError),
        ("recency_decay", 0.0, ValueError),
        ("recency_decay", 1.5, ValueError),
        ("popularity_weight", -1.0, ValueError),
        ("num_threads", -1, ValueError),
        ("random_state", "x", TypeError),
        ("session_gap", -5, ValueError),
    ],
)
def test_bad_parameters(param, value, exc):
    with pytest.raises(exc, match=param if param != "session_gap" else "session_gap"):
        fast(**{param: value}).fit(TRAIN)


def test_min_count_reports_dropped_items():
    inter = Interactions.from_arrays(
        [0, 0, 0, 1, 1, 2, 2], ["a", "b", "c", "a", "b", "a", "d"], timestamps=[1, 2, 3, 1, 2, 1, 2]
    )
    with pytest.warns(DataWarning, match="min_count=2"):
        model = fast(min_count=2).fit(inter)
    assert sorted(inter.items.ids(model.dropped_items_).tolist()) == ["c", "d"]
    assert not model.item_vectors_[model.dropped_items_].any()
    recs = model.recommend_for([["c", "d"]], k=2)  # only vector-less items: popularity
    assert recs.ids.tolist() == [["a", "b"]]


def test_no_timestamps_warns_in_sequence_mode():
    m = sp.random(20, 15, density=0.3, format="csr", random_state=0, dtype=np.float32)
    with pytest.warns(DataWarning, match="timestamps"):
        fast().fit(m)
    fast(mode="basket").fit(m)  # no warning


def test_deterministic_and_threads(tmp_path):
    a = fast().fit(TRAIN)
    b = fast().fit(TRAIN)
    np.testing.assert_array_equal(a.item_vectors_, b.item_vectors_)
    c = fast(num_threads=2).fit(TRAIN)
    assert np.isfinite(c.item_vectors_).all()
    # private-copy training (the default for small catalogues) is reproducible per thread count
    np.testing.assert_array_equal(fast(num_threads=2).fit(TRAIN).item_vectors_, c.item_vectors_)
    a.save(tmp_path / "m.tbud")
    loaded = tastebud.load(tmp_path / "m.tbud")
    np.testing.assert_array_equal(loaded.user_sequence_items_, a.user_sequence_items_)
    np.testing.assert_array_equal(loaded.dropped_items_, a.dropped_items_)


def test_hogwild_path_for_large_catalogues(monkeypatch):
    from tastebud.models import item2vec as i2v

    monkeypatch.setattr(i2v, "_LOCAL_COPY_BYTES", 0)
    model = fast(num_threads=2).fit(TRAIN)
    assert np.isfinite(model.item_vectors_).all()
    assert np.abs(model.item_vectors_).max() > 0


def test_session_gap_cuts_training_windows():
    """Training on sessions cut at a pause equals training on one user per session."""
    rng = np.random.default_rng(0)
    users, split_users, items, ts = [], [], [], []
    for u in range(50):
        users += [u] * 10
        split_users += [2 * u] * 5 + [2 * u + 1] * 5
        items += rng.choice(30, 10, replace=False).tolist()
        ts += [0, 1, 2, 3, 4, 1000, 1001, 1002, 1003, 1004]
    items[0] = 29  # same item vocabulary for both
    inter = Interactions.from_arrays(users, items, timestamps=ts)
    split = Interactions.from_arrays(split_users, items, timestamps=ts)
    assert np.array_equal(inter.items.ids_array, split.items.ids_array)
    gap = fast(session_gap=100).fit(inter)
    reference = fast().fit(split)
    np.testing.assert_array_equal(gap.item_vectors_, reference.item_vectors_)
    assert not np.array_equal(fast().fit(inter).item_vectors_, gap.item_vectors_)
    # recommend still uses each user's whole history (both sessions)
    assert gap.user_sequence_indptr_[1] == 10


@pytest.mark.parametrize("popularity_weight", [0.0, 0.5])
def test_known_user_without_history_gets_the_empty_session_fallback(popularity_weight):
    """A known user with no history ranks like ``recommend_for([[]])``: by popularity, with
    scores log1p(n_i) / log1p(max n) in [0, 1] (not raw counts), and ``score`` agrees."""
    rng = np.random.default_rng(3)
    users = rng.integers(0, 40, 700)
    items = rng.zipf(1.5, 700) % 30
    inter = Interactions.from_arrays(
        users, items, timestamps=np.arange(700), user_ids=np.arange(41)
    )
    assert inter.matrix[40].nnz == 0  # user 40 is known but has no history
    model = fast(popularity_weight=popularity_weight).fit(inter)
    known = model.recommend(40, k=8)
    anonymous = model.recommend_for([[]], k=8)
    np.testing.assert_array_equal(known.ids, anonymous.ids)
    np.testing.assert_array_equal(known.scores, anonymous.scores)
    counts = model.item_counts_
    np.testing.assert_array_equal(known.indices[0], np.argsort(-counts, kind="stable")[:8])
    share = np.log1p(counts) / np.log1p(counts.max())
    np.testing.assert_allclose(known.scores[0], share[known.indices[0]], rtol=1e-6)
    np.testing.assert_allclose(model.score(40, known.ids[0]), known.scores[0], rtol=1e-6)
