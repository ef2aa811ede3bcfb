"""Hybrid (feature-embedding factorization) and Blend: kernel vs numpy reference, contract,
planted structure, cold start, growth, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import tastebud
from tastebud import _core
from tastebud import metrics as M
from tastebud.data import Features, Interactions, datasets
from tastebud.models import Blend, Hybrid, Popularity
from tests.models.contract import CONTRACT_CHECKS, check_save_load_roundtrip, run_check, small_data
from tests.reference import hybrid_reference as ref

DATA, TRAIN, TEST = small_data()
LOSS_CODE = {"warp": 0, "bpr": 1, "logistic": 2}


def fast(**kw):
    params = dict(factors=16, epochs=8, num_threads=1, random_state=0)
    params.update(kw)
    return Hybrid(**params)


def fit_quiet(model, data, **kw):
    return model.fit(data, show_progress=False, **kw)


# ----------------------------------------------------------------------------- contract
@pytest.mark.parametrize("check", CONTRACT_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("loss", ["warp", "bpr"])
def test_contract(check, loss, tmp_path):
    run_check(check, lambda: fast(loss=loss), TRAIN, tmp_path)


# Blend's parameters hold model objects: a loaded blend holds equal-state copies of its
# components, which Recommender does not compare by value, so the contract's
# ``get_params() ==`` assertion cannot hold; test_blend_save_load covers the round trip.
BLEND_CHECKS = [c for c in CONTRACT_CHECKS if c is not check_save_load_roundtrip]


@pytest.mark.parametrize("check", BLEND_CHECKS, ids=lambda c: c.__name__)
def test_blend_contract(check, tmp_path):
    run_check(
        check,
        lambda: Blend({"hybrid": fast(epochs=5), "pop": Popularity()}, weights=[0.8, 0.2]),
        TRAIN,
        tmp_path,
    )


# ----------------------------------------------------------------------------- one SGD step
def _tiny(seed: int, f: int = 3):
    rng = np.random.default_rng(seed)
    n_users, n_items, n_uf, n_if = 3, 5, 5, 7
    X = np.zeros((n_users, n_uf))
    X[np.arange(n_users), np.arange(n_users)] = 1.0  # identity
    X[:, 3:] = rng.uniform(0.2, 1.5, (n_users, 2)) * (rng.random((n_users, 2)) < 0.7)
    Y = np.zeros((n_items, n_if))
    Y[np.arange(n_items), np.arange(n_items)] = 1.0
    Y[0, 5] = 0.7  # item 0 and 3 share feature 5? no: keep positive/negative disjoint
    Y[1, 6] = 1.3
    Y[2, 5] = 0.4
    P = {
        "U": rng.normal(0, 0.5, (n_uf, f)),
        "c": rng.normal(0, 0.5, n_uf),
        "V": rng.normal(0, 0.5, (n_if, f)),
        "d": rng.normal(0, 0.5, n_if),
    }
    positives = sp.csr_matrix(([1.0, 1.0, 1.0], ([0, 1, 2], [0, 1, 2])), shape=(n_users, n_items))
    return X, Y, P, positives


def _csr_tuple(dense):
    m = sp.csr_matrix(dense.astype(np.float32))
    return (m.indptr.astype(np.int64), m.indices.astype(np.int32), m.data.astype(np.float32))


def _kernel_step(X, Y, P, positives, kind, u, i, negatives, *, y=1.0, schedule=0, lr=0.05,
                 user_alpha=0.0, item_alpha=0.0, max_sampled=10):  # fmt: skip
    f = P["U"].shape[1]
    st_ = {}
    for side, e, b in (("user", "U", "c"), ("item", "V", "d")):
        emb = P[e].astype(np.float32).copy()
        bias = P[b].astype(np.float32).copy()
        init = 1.0 if schedule == 0 else 0.0
        st_[side] = (
            emb, bias, np.full_like(emb, init), np.full_like(bias, init),
            np.zeros_like(emb), np.zeros_like(bias),
        )  # fmt: skip
    trials = _core.hybrid_step(
        _csr_tuple(X), _csr_tuple(Y), positives.indptr.astype(np.int64),
        positives.indices.astype(np.int32), st_["user"], st_["item"], f,
        {"warp": 0, "bpr": 1, "logistic": 2}[kind], schedule, lr, 0.95, 1e-6,
        user_alpha, item_alpha, max_sampled, u, i, np.asarray(negatives, np.int64), y,
    )  # fmt: skip
    new = {"U": st_["user"][0], "c": st_["user"][1], "V": st_["item"][0], "d": st_["item"][1]}
    return trials, new, st_


@pytest.mark.parametrize("kind", ["bpr", "warp", "logistic"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reference_gradient_matches_finite_differences(kind, seed):
    X, Y, P, _ = _tiny(seed)
    kw = dict(y=0.0 if seed == 1 else 1.0, trials=2, user_alpha=0.03, item_alpha=0.05)
    u, i, j = 1, 1, 3
    if kind == "warp":  # make the margin violated, away from the hinge's kink
        P["d"][3] += 3.0
    analytic = ref.gradient(P, X, Y, kind, u, i, j, **kw)
    numeric = ref.numeric_gradient(lambda Q: ref.loss(Q, X, Y, kind, u, i, j, **kw), P)
    for name in P:
        np.testing.assert_allclose(analytic[name], numeric[name], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", ["bpr", "warp", "logistic"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_kernel_step_is_lr_times_gradient(kind, seed):
    """First adagrad step (accumulators at 1) moves every parameter by -lr * gradient."""
    X, Y, P, positives = _tiny(seed)
    u, i, j = 0, 0, 4
    y = float(seed % 2)
    if kind == "warp":
        P["d"][4] = P["d"][0] + 5.0  # violates the margin on the first draw
    lr, ua, ia = 0.05, 0.02, 0.04
    trials, new, _ = _kernel_step(X, Y, P, positives, kind, u, i, [j], y=y, lr=lr,
                                  user_alpha=ua, item_alpha=ia)  # fmt: skip
    G = ref.gradient(P, X, Y, kind, u, i, j, y=y, trials=1, user_alpha=ua, item_alpha=ia)
    # (float32 parameters: compare the update, not the parameters)
    for name in P:
        delta = new[name].astype(np.float64) - P[name].astype(np.float32).astype(np.float64)
        np.testing.assert_allclose(delta, -lr * G[name], rtol=2e-3, atol=2e-6)
    if kind == "warp":
        assert trials == 1


def test_kernel_adadelta_step():
    X, Y, P, positives = _tiny(5)
    u, i, j = 2, 2, 3
    _, new, st_ = _kernel_step(X, Y, P, positives, "bpr", u, i, [j], schedule=1)
    G = ref.gradient(P, X, Y, "bpr", u, i, j)
    for name, side, k in (("U", "user", 0), ("V", "item", 0), ("d", "item", 1)):
        zero = np.zeros_like(G[name])
        touched = G[name] != 0
        expect, eg2, _ = ref.adadelta(P[name], zero, zero, G[name], 0.95, 1e-6)
        np.testing.assert_allclose(new[name][touched], expect[touched], rtol=1e-3, atol=1e-6)
        np.testing.assert_allclose(st_[side][2 + k][touched], eg2[touched], rtol=1e-3)


@given(n_items=st.integers(2, 10**6), trials=st.integers(1, 1000))
@settings(max_examples=200, deadline=None)
def test_warp_rank_estimate(n_items, trials):
    assert _core.hybrid_warp_rank(n_items, trials) == ref.warp_rank(n_items, trials)


def test_warp_counts_trials_and_weights_by_rank():
    """Draws that do not violate the margin, or are positives of the user, count as trials;
    the update is log(floor((n_items - 1) / trials)) times the hinge gradient."""
    X, Y, P, positives = _tiny(0)
    u, i = 0, 0
    positives = sp.csr_matrix(([1.0, 1.0], ([0, 0], [0, 1])), shape=(3, 5))
    P["d"][:] = 0.0
    P["U"][:] = 0.0  # scores are item biases only
    P["d"][2] = -5.0  # item 2: no violation
    P["d"][1] = 3.0  # item 1: violates but is a positive of u
    P["d"][4] = 3.0  # item 4: the violator
    trials, new, _ = _kernel_step(X, Y, P, positives, "warp", u, i, [2, 1, 4, 3])
    assert trials == 3
    G = ref.gradient(P, X, Y, "warp", u, i, 4, trials=3)
    np.testing.assert_allclose(new["d"] - P["d"].astype(np.float32), -0.05 * G["d"], atol=1e-6)
    assert np.isclose(G["d"][0], -np.log((5 - 1) // 3 if (5 - 1) // 3 > 1 else 1))
    # no violator among the draws: no update, 0 returned
    trials, new, _ = _kernel_step(X, Y, P, positives, "warp", u, i, [2, 2])
    assert trials == 0
    np.testing.assert_array_equal(new["d"], P["d"].astype(np.float32))


@given(
    data=st.data(),
    n=st.integers(1, 6),
    m=st.integers(1, 12),
    how=st.sampled_from(["zscore", "minmax", "rank"]),
)
@settings(max_examples=150, deadline=None)
def test_blend_normalization_matches_reference(data, n, m, how):
    from tastebud.models.hybrid import _normalize

    values = data.draw(st.lists(st.integers(-3, 3), min_size=n * m, max_size=n * m))  # ties
    scale = data.draw(st.sampled_from([1.0, 1e-3, 1e6]))
    scores = np.asarray(values, dtype=np.float64).reshape(n, m) * scale
    cand = np.asarray(data.draw(st.lists(st.booleans(), min_size=n * m, max_size=n * m))).reshape(
        n, m
    )
    got = _normalize(scores, cand, how)
    np.testing.assert_allclose(got, ref.normalize(scores, cand, how), rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- quality
def _ndcg(model, train, test):
    users = np.flatnonzero(test.user_counts() > 0)
    recs = model.recommend_indices(users, 10)[0]
    return float(np.nanmean(M.ndcg_at_k(recs, test.matrix[users], 10, reduce="none")))


def _numpy_bpr(train, factors=16, epochs=15, lr=0.05, reg=0.002, seed=0):
    """Plain vectorised numpy BPR-MF with item biases (mini-batch SGD) as the reference."""
    rng = np.random.default_rng(seed)
    m = train.matrix
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    cols = m.indices
    U = rng.normal(0, 0.1, (m.shape[0], factors))
    V = rng.normal(0, 0.1, (m.shape[1], factors))
    b = np.zeros(m.shape[1])
    for _ in range(epochs):
        for batch in np.array_split(rng.permutation(rows.size), 100):
            u, i = rows[batch], cols[batch]
            j = rng.integers(0, m.shape[1], batch.size)
            x = np.einsum("ij,ij->i", U[u], V[i] - V[j]) + b[i] - b[j]
            g = 1.0 / (1.0 + np.exp(x))
            du = g[:, None] * (V[i] - V[j]) - reg * U[u]
            dvi = g[:, None] * U[u] - reg * V[i]
            dvj = -g[:, None] * U[u] - reg * V[j]
            np.add.at(U, u, lr * du)
            np.add.at(V, i, lr * dvi)
            np.add.at(V, j, lr * dvj)
            np.add.at(b, i, lr * g)
            np.add.at(b, j, -lr * g)
    return U, V, b


def test_identity_only_ranks_planted_structure_like_bpr():
    """With identity features only, Hybrid is MF: it matches a numpy BPR reference (within
    noise) and beats popularity by a clear margin on planted structure."""
    U, V, b = _numpy_bpr(TRAIN)
    users = np.flatnonzero(TEST.user_counts() > 0)
    recs = tastebud.search.topk(
        U[users].astype(np.float32),
        V.astype(np.float32),
        10,
        exclude=TRAIN.matrix[users],
        item_bias=b.astype(np.float32),
    )[0]
    bpr_ref = float(np.nanmean(M.ndcg_at_k(recs, TEST.matrix[users], 10, reduce="none")))
    pop = _ndcg(Popularity().fit(TRAIN), TRAIN, TEST)
    for loss in ("bpr", "warp"):
        model = fit_quiet(fast(loss=loss, epochs=20), TRAIN)
        got = _ndcg(model, TRAIN, TEST)
        assert got >= bpr_ref - 0.03, (loss, got, bpr_ref)
        assert got >= 1.15 * pop, (loss, got, pop)


@pytest.mark.parametrize("loss", ["logistic", "warp-kos"])
def test_other_losses_learn(loss):
    pop = _ndcg(Popularity().fit(TRAIN), TRAIN, TEST)
    epochs = 20 if loss == "logistic" else 150
    got = _ndcg(fit_quiet(fast(loss=loss, epochs=epochs), TRAIN), TRAIN, TEST)
    assert got > pop, (loss, got, pop)


def test_adadelta_learns():
    pop = _ndcg(Popularity().fit(TRAIN), TRAIN, TEST)
    got = _ndcg(fit_quiet(fast(learning_schedule="adadelta", epochs=15), TRAIN), TRAIN, TEST)
    assert got > pop


def _cold_split(seed: int = 0):
    data = datasets.synthetic(n_users=400, n_items=300, n_interactions=16000, random_state=seed)
    rng = np.random.default_rng(seed)
    n_items = data.interactions.n_items
    held = np.sort(rng.choice(n_items, n_items // 10, replace=False))
    arr = data.interactions.to_arrays()
    keep = ~np.isin(arr["item"], data.interactions.items.ids(held))
    warm_items = np.setdiff1d(data.interactions.items.ids_array, data.interactions.items.ids(held))
    train = Interactions.from_arrays(
        arr["user"][keep], arr["item"][keep], user_ids=data.interactions.users, item_ids=warm_items
    )
    held_m = data.interactions.matrix[:, held]
    users = np.flatnonzero(np.diff(held_m.indptr) > 0)
    return data, train, held, held_m[users], users


def test_cold_start_items_rank_above_random():
    data, train, held, relevant, users = _cold_split()
    model = fit_quiet(fast(epochs=15), train, item_features=data.item_features)
    new_items = data.item_features.align(data.interactions.items.ids(held))
    scores = model.score_items(new_items, train.users.ids(users))
    assert scores.shape == (users.size, held.size)
    recs = tastebud.search.topk(scores, k=10)[0]
    got = float(np.nanmean(M.ndcg_at_k(recs, relevant, 10, reduce="none")))
    rnd = tastebud.search.topk(
        np.random.default_rng(0).random(scores.shape).astype(np.float32), k=10
    )[0]
    base = float(np.nanmean(M.ndcg_at_k(rnd, relevant, 10, reduce="none")))
    assert got > 1.5 * base, (got, base)
    # a sparse matrix in the model's feature columns gives the same scores
    rows = model._feature_rows(new_items, "item")
    np.testing.assert_allclose(model.score_items(rows, train.users.ids(users)), scores)
    # deterministic
    again = fit_quiet(fast(epochs=15), train, item_features=data.item_features)
    np.testing.assert_array_equal(again.score_items(new_items, train.users.ids(users)), scores)


def test_cold_start_users_from_features_and_fold_in():
    data = DATA
    users = TRAIN.users.ids_array
    rng = np.random.default_rng(0)
    new = np.sort(rng.choice(users, 40, replace=False))
    arr = TRAIN.to_arrays()
    keep = ~np.isin(arr["user"], new)
    old_train = Interactions.from_arrays(arr["user"][keep], arr["item"][keep], item_ids=TRAIN.items)
    model = fit_quiet(fast(epochs=15), old_train, user_features=data.user_features)
    history = {
        u: TRAIN.items.ids(TRAIN.matrix[TRAIN.users.index(u)].indices).tolist()
        for u in new.tolist()
    }
    truth = TEST.matrix[TEST.users.index(new)]
    pop = Popularity().fit(old_train).recommend_for(history, k=10)
    folded = model.recommend_for(history, k=10)
    both = model.recommend_for(history, k=10, user_features=data.user_features)
    only = model.recommend_for(user_features=data.user_features.align(new), k=10)
    assert only.ids.shape == (40, 10)
    assert list(only.queries) == new.tolist()

    def ndcg(recs):
        return float(np.nanmean(M.ndcg_at_k(recs.indices, truth, 10, reduce="none")))

    assert ndcg(folded) > ndcg(pop), (ndcg(folded), ndcg(pop))
    assert ndcg(both) > ndcg(pop)
    seen = sp.csr_matrix(TRAIN.matrix[TRAIN.users.index(new)])
    for r in range(40):
        assert not set(folded.indices[r]) & set(seen[r].indices)


def test_fit_partial_grows_users_items_and_features():
    data = DATA
    arr = TRAIN.to_arrays()
    first = arr["item"] < 150
    part1 = Interactions.from_arrays(arr["user"][first], arr["item"][first])
    model = fit_quiet(fast(epochs=3), part1, item_features=data.item_features)
    n_feat = model.item_feature_names_.size
    emb_before = model.item_feature_emb_.copy()
    extra = Features.from_multilabel(
        data.interactions.items.ids_array, [["brand-new"]] * data.interactions.n_items
    )
    part2 = Interactions.from_arrays(
        np.concatenate([arr["user"][~first], [10_000, 10_000]]),
        np.concatenate([arr["item"][~first], [0, 1]]),
    )
    model.fit_partial(
        part2,
        item_features=Features.concat([data.item_features, extra]),
        epochs=2,
        show_progress=False,
    )
    assert len(model.items_) == TRAIN.n_items
    assert 10_000 in model.users_
    names = model.item_feature_names_.tolist()
    assert "brand-new" in names
    new_items = len(model.items_) - part1.n_items
    assert model.item_feature_names_.size == n_feat + new_items + 1
    assert model.item_feature_emb_.shape[0] == model.item_feature_names_.size
    assert not np.array_equal(model.item_feature_emb_[: emb_before.shape[0]], emb_before)
    assert model.epochs_done_ == 5
    recs = model.recommend(10_000, k=5)
    assert not {0, 1} & set(recs.ids[0].tolist())
    # seen_ is the union of both parts
    assert model.seen_.nnz == part1.nnz + part2.nnz


def test_similar_items_cosine_of_item_representations():
    model = fit_quiet(fast(), TRAIN)
    q = model._item_repr.astype(np.float64)
    unit = q / np.linalg.norm(q, axis=1, keepdims=True)
    sims = unit[3] @ unit.T
    sims[3] = -np.inf
    got = model.similar_items(TRAIN.items.ids_array[3], k=5)
    np.testing.assert_allclose(got.scores[0], np.sort(sims)[::-1][:5], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("loss", ["warp", "warp-kos"])
def test_epochs_in_one_call_equal_epoch_by_epoch(loss):
    """Training without a progress bar runs every epoch in one kernel call; with one thread it
    gives exactly the model of the epoch-by-epoch calls made for the progress bar."""
    a = fast(loss=loss, epochs=4).fit(TRAIN, item_features=DATA.item_features,
                                      show_progress=False)  # fmt: skip
    b = fast(loss=loss, epochs=4).fit(TRAIN, item_features=DATA.item_features, show_progress=True)
    np.testing.assert_array_equal(a.item_feature_emb_, b.item_feature_emb_)
    np.testing.assert_array_equal(a.user_feature_emb_, b.user_feature_emb_)
    assert a.epochs_done_ == b.epochs_done_ == 4


def test_threads_learn_like_one_thread():
    """Two Hogwild threads (each on its own block of users) rank about as well as one."""
    scores = []
    for threads in (1, 2):
        model = fast(epochs=10, num_threads=threads).fit(TRAIN, show_progress=False)
        recs = model.recommend_indices(np.arange(TRAIN.n_users), 10)[0]
        p = M.ranking_metrics(recs, TEST.matrix, k=10, metrics=("precision",))["precision"]
        scores.append(float(np.nanmean(p)))
    assert scores[1] > 0.8 * scores[0]


def test_save_load_keeps_features_and_continues(tmp_path):
    model = fit_quiet(
        fast(learning_schedule="adadelta", epochs=3), TRAIN, item_features=DATA.item_features
    )
    model.save(tmp_path / "h.tbud")
    loaded = tastebud.load(tmp_path / "h.tbud")
    new_items = DATA.item_features.align([0, 1, 2])
    np.testing.assert_allclose(
        loaded.score_items(new_items, [0, 1]), model.score_items(new_items, [0, 1]), rtol=1e-6
    )
    for m in (model, loaded):
        m.fit_partial(TRAIN, epochs=1, show_progress=False)
    np.testing.assert_array_equal(model.item_feature_emb_, loaded.item_feature_emb_)


# ----------------------------------------------------------------------------- blend
def test_blend_switch_and_weights(tmp_path):
    hybrid = fit_quiet(fast(), TRAIN)
    pop = Popularity().fit(TRAIN)
    counts = TRAIN.user_counts()
    below = int(np.median(counts))
    blend = Blend(
        {"cf": hybrid, "pop": pop},
        weights={"cf": 1.0, "pop": 0.0},
        switch={"model": "pop", "below": below},
    ).fit(TRAIN, refit=False)
    users = TRAIN.users.ids_array[:30]
    recs = blend.recommend(users, k=10)
    cold = counts[:30] < below
    np.testing.assert_array_equal(recs.ids[cold], pop.recommend(users[cold], k=10).ids)
    np.testing.assert_array_equal(recs.ids[~cold], hybrid.recommend(users[~cold], k=10).ids)
    # fit_weights: never worse than its start on the validation split, seeded
    start = Blend([hybrid, pop], weights=[0.0, 1.0]).fit(TRAIN, refit=False)
    before = M.ndcg_at_k(
        start.recommend_indices(np.flatnonzero(TEST.user_counts() > 0), 10)[0],
        TEST.matrix[TEST.user_counts() > 0],
        10,
    )
    start.fit_weights(TRAIN, TEST, k=10)
    assert start.validation_score_ >= before - 1e-9
    assert start.weights_[0] > 0
    np.testing.assert_allclose(start.weights_.sum(), 1.0)


def test_blend_save_load(tmp_path):
    blend = Blend({"cf": fast(), "pop": Popularity()}, normalization="rank").fit(TRAIN)
    blend.save(tmp_path / "b.tbud")
    loaded = tastebud.load(tmp_path / "b.tbud")
    assert isinstance(loaded, Blend)
    assert list(loaded.models) == ["cf", "pop"]
    assert loaded.models["cf"].get_params() == blend.models["cf"].get_params()
    users = TRAIN.users.ids_array[:20]
    np.testing.assert_array_equal(
        loaded.recommend(users, k=10).ids, blend.recommend(users, k=10).ids
    )
    np.testing.assert_allclose(loaded.weights_, blend.weights_)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"factors": 0}, "factors"),
        ({"loss": "hinge"}, "loss"),
        ({"learning_schedule": "sgd"}, "learning_schedule"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"rho": 1.5}, "rho"),
        ({"item_alpha": float("nan")}, "item_alpha"),
        ({"max_sampled": 0}, "max_sampled"),
        ({"loss": "warp-kos", "k": 6, "n": 5}, "k must be <= n"),
        ({"epochs": -1}, "epochs"),
        ({"num_threads": -2}, "num_threads"),
    ],
)
def test_bad_params(params, match):
    with pytest.raises(ValueError, match=match):
        fit_quiet(fast(**params), TRAIN)
    assert not fast(**params).is_fitted


def test_bad_input():
    with pytest.raises(TypeError, match="item_features must be"):
        fit_quiet(fast(), TRAIN, item_features=np.ones((3, 3)))
    with pytest.raises(ValueError, match="identity_features=False"):
        fit_quiet(fast(identity_features=False), TRAIN, item_features=DATA.item_features)
    with pytest.raises(TypeError, match="random_state"):
        fit_quiet(fast(random_state="x"), TRAIN)
    model = fit_quiet(fast(epochs=1), TRAIN, item_features=DATA.item_features)
    with pytest.raises(ValueError, match="columns"):
        model.score_items(sp.csr_matrix((2, 3)), [0])
    with pytest.raises(KeyError, match="unknown user"):
        model.score_items(DATA.item_features.align([0]), ["nobody"])
    with pytest.raises(ValueError, match="interactions and/or user_features"):
        model.recommend_for(k=5)
    with pytest.raises(ValueError, match="fold_in_epochs"):
        model.recommend_for({"a": [0]}, fold_in_epochs=-1)
    reserved = Features(sp.csr_matrix(np.ones((1, 1))), [0], ["__identity__=0"])
    with pytest.raises(ValueError, match="reserved"):
        fit_quiet(fast(), TRAIN, item_features=reserved)
    state = model._state("item")
    with pytest.raises(ValueError, match="float32"):
        _core.hybrid_epoch(
            (model.user_features_indptr_, model.user_features_indices_,
             model.user_features_data_),
            (model.item_features_indptr_, model.item_features_indices_,
             model.item_features_data_),
            np.zeros(len(model.users_) + 1, np.int64), np.zeros(0, np.int32),
            np.zeros(0, np.int32), model._state("user"),
            (state[0].astype(np.float64), *state[1:]), 16, 0, 0, 0.05, 0.95, 1e-6, 0.0, 0.0,
            10, 5, 10, 0, 0, 1,
        )  # fmt: skip


def test_blend_bad_input():
    with pytest.raises(TypeError, match="models must be"):
        Blend("hybrid").fit(TRAIN)
    with pytest.raises(ValueError, match="empty"):
        Blend([]).fit(TRAIN)
    with pytest.raises(TypeError, match="not a Recommender"):
        Blend({"x": object()}).fit(TRAIN)
    with pytest.raises(ValueError, match="one value per model"):
        Blend([Popularity()], weights=[1, 2]).fit(TRAIN)
    with pytest.raises(ValueError, match="weights must be finite"):
        Blend([Popularity()], weights=[-1]).fit(TRAIN)
    with pytest.raises(ValueError, match="normalization"):
        Blend([Popularity()], normalization="softmax").fit(TRAIN)
    with pytest.raises(KeyError, match="switch model"):
        Blend([Popularity()], switch={"model": "cf", "below": 3}).fit(TRAIN)
    other = Popularity().fit(Interactions.from_arrays([0], [0]))
    with pytest.raises(ValueError, match="other user/item vocabularies"):
        Blend([other]).fit(TRAIN, refit=False)
    blend = Blend([Popularity()]).fit(TRAIN)
    with pytest.raises(ValueError, match="metric"):
        blend.fit_weights(TRAIN, TEST, metric="auc")


# ----------------------------------------------------------------------------- identity dropout
def _drop_feature(Y, row, feature):
    Z = Y.copy()
    Z[row, feature] = 0.0
    return Z


@pytest.mark.parametrize("kind", ["bpr", "warp", "logistic"])
@pytest.mark.parametrize("schedule", [0, 1])
def test_kernel_step_with_dropped_identity_uses_only_the_side_features(kind, schedule):
    """A step with the positive's (and the negative's) identity feature dropped is the step of
    the model whose item rows lack those features: same updates of every other parameter, and
    the dropped features' embeddings, biases and optimiser state untouched."""
    X, Y, P, positives = _tiny(0)
    u, i, j = 1, 1, 2  # items 1 and 2 have side features 6 and 5 besides identities 1 and 2
    P["d"][2] = P["d"][1] + 5.0  # WARP: the negative violates the margin either way
    base = _kernel_step(X, _drop_feature(_drop_feature(Y, i, i), j, j), P, positives, kind,
                        u, i, [j], schedule=schedule, user_alpha=0.02, item_alpha=0.03)  # fmt: skip
    f = P["U"].shape[1]
    st_ = {}
    for side, e, b in (("user", "U", "c"), ("item", "V", "d")):
        emb, bias = P[e].astype(np.float32).copy(), P[b].astype(np.float32).copy()
        init = 1.0 if schedule == 0 else 0.0
        st_[side] = (emb, bias, np.full_like(emb, init), np.full_like(bias, init),
                     np.zeros_like(emb), np.zeros_like(bias))  # fmt: skip
    trials = _core.hybrid_step(
        _csr_tuple(X), _csr_tuple(Y), positives.indptr.astype(np.int64),
        positives.indices.astype(np.int32), st_["user"], st_["item"], f,
        {"warp": 0, "bpr": 1, "logistic": 2}[kind], schedule, 0.05, 0.95, 1e-6,
        0.02, 0.03, 10, u, i, np.asarray([j], np.int64), 1.0, skip_positive=i,
        skip_negative=j,
    )  # fmt: skip
    assert trials == base[0]
    for side in ("user", "item"):
        for got, want in zip(st_[side], base[2][side], strict=True):
            np.testing.assert_array_equal(got, want)
    # the dropped identities kept their values (the base model had no entries for them)
    for feat in (i, j) if kind != "logistic" else (i,):
        np.testing.assert_array_equal(st_["item"][0][feat], P["V"][feat].astype(np.float32))
        np.testing.assert_array_equal(st_["item"][2][feat], 1.0 if schedule == 0 else 0.0)


def _epoch_state(model, dropout, identity):
    user = tuple(a.copy() for a in model._state("user"))
    item = tuple(a.copy() for a in model._state("item"))
    pos = model._positives_for_test
    row_of = np.repeat(np.arange(pos.shape[0], dtype=np.int32), np.diff(pos.indptr))
    _core.hybrid_epoch(
        (model.user_features_indptr_, model.user_features_indices_, model.user_features_data_),
        (model.item_features_indptr_, model.item_features_indices_, model.item_features_data_),
        pos.indptr.astype(np.int64), pos.indices.astype(np.int32), row_of, user, item,
        16, 0, 0, 0.05, 0.95, 1e-6, 0.0, 0.0, 10, 5, 10, 7, 0, 1, 2,
        identity_dropout=dropout, item_identity=identity,
    )  # fmt: skip
    return user + item


def test_identity_dropout_zero_is_the_plain_model():
    """p = 0 draws no random numbers: bit-identical to the kernel without dropout arguments."""
    model = fit_quiet(fast(epochs=1), TRAIN, item_features=DATA.item_features)
    model._positives_for_test = sp.csr_matrix(TRAIN.matrix)
    model._positives_for_test.sort_indices()
    identity = model._item_identity()
    assert (identity >= 0).all()
    names = model.item_feature_names_[identity]
    assert all(n.startswith("__identity__=") for n in names)
    plain = _epoch_state(model, 0.0, None)
    for got, want in zip(_epoch_state(model, 0.0, identity), plain, strict=True):
        np.testing.assert_array_equal(got, want)
    dropped = _epoch_state(model, 0.5, identity)
    assert any(not np.array_equal(a, b) for a, b in zip(dropped, plain, strict=True))
    # and through the model: identity_dropout=0.0 is the default model
    a = fit_quiet(fast(identity_dropout=0.0), TRAIN, item_features=DATA.item_features)
    b = fit_quiet(fast(), TRAIN, item_features=DATA.item_features)
    np.testing.assert_array_equal(a.item_feature_emb_, b.item_feature_emb_)
    np.testing.assert_array_equal(a.user_feature_emb_, b.user_feature_emb_)


def test_identity_dropout_is_deterministic_and_never_drops_identity_only_items():
    a = fit_quiet(fast(identity_dropout=0.3), TRAIN, item_features=DATA.item_features)
    b = fit_quiet(fast(identity_dropout=0.3), TRAIN, item_features=DATA.item_features)
    np.testing.assert_array_equal(a.item_feature_emb_, b.item_feature_emb_)
    # without side features there is nothing to drop to: p = 1 is the plain model
    c = fit_quiet(fast(identity_dropout=1.0), TRAIN)
    d = fit_quiet(fast(), TRAIN)
    np.testing.assert_array_equal(c.item_feature_emb_, d.item_feature_emb_)


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan"), float("inf"), "0.2", True])
def test_identity_dropout_bad_values(p):
    with pytest.raises(ValueError, match="identity_dropout"):
        fit_quiet(fast(identity_dropout=p), TRAIN)


def test_identity_dropout_improves_cold_start_items():
    """On synthetic data with informative item features, BPR with identity dropout 0.3 ranks
    held-out items (scored from their features alone) better than without (mean NDCG@10 over
    three deterministic splits). The gain is data dependent (on ml-100k, WARP, p is chosen on a
    validation split: benchmarks/compare_peers.py hybrid)."""
    gains = []
    for seed in (0, 1, 2):
        data, train, held, relevant, users = _cold_split(seed)
        new_items = data.item_features.align(data.interactions.items.ids(held))
        ndcg = []
        for p in (0.0, 0.3):
            model = fit_quiet(
                fast(epochs=15, loss="bpr", identity_dropout=p), train,
                item_features=data.item_features,
            )  # fmt: skip
            recs = tastebud.search.topk(model.score_items(new_items, train.users.ids(users)), k=10)
            ndcg.append(float(np.nanmean(M.ndcg_at_k(recs[0], relevant, 10, reduce="none"))))
        gains.append(ndcg[1] - ndcg[0])
    assert np.mean(gains) > 0.003, gains


def test_fold_in_does_not_depend_on_batch_position():
    """A new user's stream is seeded by its items, not by its row in the call."""
    model = fit_quiet(fast(epochs=5), TRAIN)
    items = TRAIN.items.ids_array
    alone = model.recommend_for({"new": items[[3, 17, 40]].tolist()}, k=5)
    batch = model.recommend_for(
        {"other": items[[1, 2]].tolist(), "new": items[[3, 17, 40]].tolist()}, k=5
    )
    np.testing.assert_array_equal(batch.ids[1], alone.ids[0])
    np.testing.assert_allclose(batch.scores[1], alone.scores[0], rtol=1e-6)


def test_failed_refit_keeps_previous_model(monkeypatch):
    model = fit_quiet(fast(epochs=3), TRAIN)
    before = model.recommend(TRAIN.users.ids_array[:5], k=5)

    def boom(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(model, "_train", boom)
    arr = TRAIN.to_arrays()
    other = Interactions.from_arrays(arr["user"][::2], arr["item"][::2])
    with pytest.raises(RuntimeError, match="interrupted"):
        model.fit(other)
    monkeypatch.undo()
    after = model.recommend(TRAIN.users.ids_array[:5], k=5)
    np.testing.assert_array_equal(after.ids, before.ids)
    np.testing.assert_array_equal(after.scores, before.scores)
    assert model.items_ == TRAIN.items


def test_blend_failed_refit_keeps_blend_and_components():
    from tastebud import ItemKNN

    blend = Blend({"pop": Popularity(), "knn": ItemKNN(neighbors=20)}).fit(TRAIN)
    before = blend.recommend(TRAIN.users.ids_array[:5], k=5)
    arr = TRAIN.to_arrays()
    other = Interactions.from_arrays(arr["user"][::2], arr["item"][::2])
    blend.models["knn"].set_params(neighbors=-1)  # Popularity refits, then ItemKNN fails
    with pytest.raises(ValueError, match="neighbors"):
        blend.fit(other)
    blend.models["knn"].set_params(neighbors=20)
    after = blend.recommend(TRAIN.users.ids_array[:5], k=5)
    np.testing.assert_array_equal(after.ids, before.ids)
    np.testing.assert_array_equal(after.scores, before.scores)
    assert blend.models["pop"].items_ == TRAIN.items
