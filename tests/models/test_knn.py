"""Tests of the sparse kNN kernel and the neighbourhood models (ItemKNN, UserKNN, RP3beta,
KNNRating) against the plain-numpy references in tests/reference/knn_reference.py."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import tastebud
from tastebud import ItemKNN, KNNRating, RP3beta, UserKNN
from tastebud.data import Interactions, datasets
from tastebud.models.knn import sparse_similarity, weight_rows
from tests.models.contract import CONTRACT_CHECKS, run_check, small_data
from tests.reference import knn_reference as ref

_, TRAIN, TEST = small_data()
KINDS = ["cosine", "dot", "asymmetric", "jaccard", "pearson", "common_cosine", "msd"]


def _rows_as_dicts(graph: sp.csr_matrix) -> list[dict[int, float]]:
    graph = graph.tocsr()
    return [
        dict(zip(graph[i].indices.tolist(), graph[i].data.tolist(), strict=True))
        for i in range(graph.shape[0])
    ]


def _assert_same_graph(got: sp.csr_matrix, want: list[dict[int, float]], atol=1e-5) -> None:
    rows = _rows_as_dicts(got)
    assert len(rows) == len(want)
    # values zero up to rounding may be kept (tiny) or dropped (exactly 0) on either side
    rows = [{j: v for j, v in r.items() if abs(v) >= 1e-9} for r in rows]
    want = [{j: v for j, v in r.items() if abs(v) >= 1e-9} for r in want]
    for i, (g, w) in enumerate(zip(rows, want, strict=True)):
        # the kth value may tie with others: compare the sorted values, and the keys where
        # the value is strictly above the kth
        gv, wv = sorted(g.values(), reverse=True), sorted(w.values(), reverse=True)
        np.testing.assert_allclose(gv, wv, rtol=1e-4, atol=atol, err_msg=f"row {i}")
        if wv:
            cut = wv[-1] + 1e-4 * max(1.0, abs(wv[-1]))
            assert {j for j, v in w.items() if v > cut} <= set(g), f"row {i}"


# ----------------------------------------------------------------------------- kernel
sparse_matrices = st.builds(
    lambda a: sp.csr_matrix(a),
    arrays(
        np.float32,
        st.tuples(st.integers(0, 9), st.integers(0, 7)),
        elements=st.sampled_from([0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 0.5, 5.0, -1.0]),
    ),
)


@settings(max_examples=60, deadline=None)
@given(
    x=sparse_matrices,
    kind=st.sampled_from(KINDS),
    k=st.integers(1, 12),
    shrink=st.sampled_from([0.0, 0.0, 1.5]),
    min_support=st.integers(1, 3),
    alpha=st.sampled_from([0.5, 0.2, 0.9]),
    exclude_self=st.booleans(),
)
def test_sparse_similarity_matches_dense_reference(
    x, kind, k, shrink, min_support, alpha, exclude_self
):
    if kind in ("asymmetric", "cosine") and x.nnz and (x.data < 0).any():
        x = abs(x)  # norms of signed rows are fine, but pow() of them is not the point here
    if kind == "asymmetric":
        x = abs(x)
    got = sparse_similarity(
        x,
        k,
        similarity=kind,
        alpha=alpha,
        shrink=shrink,
        min_support=min_support,
        exclude_self=exclude_self,
        num_threads=2,
    )
    assert got.shape == (x.shape[0], x.shape[0])
    assert got.has_sorted_indices
    sim, _ = ref.similarity_dense(
        x.toarray(), x.toarray(), kind, alpha=alpha, shrink=shrink, min_support=min_support
    )
    sim = sim.astype(np.float32).astype(np.float64)
    # a similarity that is zero up to rounding (e.g. Pearson's n sum(ab) - sum(a) sum(b)
    # cancelling) may come out as exactly 0 (never kept) on one side only
    sim[np.abs(sim) < 1e-9] = 0.0
    _assert_same_graph(got, ref.topk_rows(sim, k, exclude_self))


@settings(max_examples=30, deadline=None)
@given(x=sparse_matrices, weighting=st.sampled_from(["tfidf", "bm25"]), k=st.integers(1, 12))
def test_weightings_match_implicit_definitions(x, weighting, k):
    x = abs(x)
    dense_w = ref.weight_rows_dense(x.toarray(), weighting)
    np.testing.assert_allclose(weight_rows(x, weighting).toarray(), dense_w, rtol=1e-5, atol=1e-6)
    got = sparse_similarity(x, k, similarity="dot", weighting=weighting, exclude_self=False)
    sim, _ = ref.similarity_dense(dense_w, dense_w, "dot")
    _assert_same_graph(got, ref.topk_rows(sim, k, False), atol=1e-4)


def test_empty_rows_columns_and_k_beyond_n():
    x = sp.csr_matrix(
        np.array([[1, 0, 0, 2], [0, 0, 0, 0], [1, 0, 0, 1], [0, 0, 0, 0], [0, 0, 3, 0]], np.float32)
    )
    g = sparse_similarity(x, 50)
    assert g.shape == (5, 5)
    assert g[1].nnz == 0
    assert g[3].nnz == 0
    assert g[4].nnz == 0
    assert g[0].indices.tolist() == [2]
    assert g[2].indices.tolist() == [0]
    empty = sparse_similarity(sp.csr_matrix((0, 3), dtype=np.float32), 5)
    assert empty.shape == (0, 0)


def test_ties_keep_lower_index_and_threads_agree():
    x = sp.csr_matrix(np.ones((4, 6), np.float32))
    g = sparse_similarity(x.T, 2, num_threads=1)
    assert next(sorted(g[i].indices.tolist()) for i in range(6)) == [1, 2]
    big = datasets.synthetic(200, 120, 4000, random_state=3).interactions.matrix
    a = sparse_similarity(big.T, 10, num_threads=1)
    b = sparse_similarity(big.T, 10, num_threads=2)
    assert (a != b).nnz == 0


def test_matches_implicit_cosine_when_installed():
    nn = pytest.importorskip("implicit.nearest_neighbours")
    x = datasets.synthetic(150, 80, 2500, random_state=1).interactions.matrix
    model = nn.CosineRecommender(K=10, num_threads=1)
    with warnings.catch_warnings():  # implicit warns about its own internal COO -> CSR
        warnings.simplefilter("ignore")
        model.fit(sp.csr_matrix(x), show_progress=False)
    got = sparse_similarity(x.T, 10, exclude_self=False, num_threads=1)
    theirs = model.similarity.tocsr()
    same = 0
    for i in range(x.shape[1]):
        a = np.sort(got[i].data)[::-1]
        b = np.sort(theirs[i].data)[::-1]
        same += bool(a.size == b.size and np.allclose(a, b, rtol=1e-5))
    assert same / x.shape[1] >= 0.98


def _exact_topk(sim: np.ndarray, k: int, exclude_diagonal: bool) -> list[list[int]]:
    """Per row: indices of the k best non-zero entries (ties: lower index), numpy-vectorised."""
    out = []
    for i in range(sim.shape[0]):
        row = sim[i]
        cand = np.flatnonzero(row != 0)
        if exclude_diagonal:
            cand = cand[cand != i]
        order = np.lexsort((cand, -row[cand]))[:k]
        out.append(cand[order].tolist())
    return out


def _neighbour_lists(graph: sp.csr_matrix) -> list[list[int]]:
    """Per row: the neighbour indices best first (ties: lower index)."""
    rows = []
    for i in range(graph.shape[0]):
        idx, val = graph[i].indices, graph[i].data
        rows.append(idx[np.lexsort((idx, -val))].tolist())
    return rows


@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    layout=st.sampled_from(["dense", "medium", "one_column"]),
    kind=st.sampled_from(["dot", "cosine", "jaccard"]),
    k=st.integers(1, 64),
    threads=st.sampled_from([1, 2]),
)
def test_row_kernel_long_rows_match_reference(seed, layout, kind, k, threads):
    """Rows with >= 1024 candidates (the sampled guess-and-verify threshold), through both the
    dense-scan and the touched-list paths, on small integer values (many exact ties)."""
    rng = np.random.default_rng(seed)
    if layout == "one_column":  # 1200 rows sharing column 0 only: touched-list path, long rows
        n, d = 2600, 4
        rows = np.concatenate([np.arange(1200), rng.integers(1200, n, 300)])
        cols = np.concatenate([np.zeros(1200, int), rng.integers(1, d, 300)])
    else:
        n, d = 1100, 40 if layout == "dense" else 12
        nnz = 18000 if layout == "dense" else 2500
        rows, cols = rng.integers(0, n, nnz), rng.integers(0, d, nnz)
    vals = rng.integers(1, 4, rows.size).astype(np.float32)
    x = sp.csr_matrix((vals, (rows, cols)), shape=(n, d))
    x.sum_duplicates()
    got = sparse_similarity(x, k, similarity=kind, num_threads=threads)
    dense = x.toarray().astype(np.float64)
    sim, _ = ref.similarity_dense(dense, dense, kind)
    sim = sim.astype(np.float32).astype(np.float64)
    if kind == "dot":  # integer dot products: exact, so the lists must be identical
        assert _neighbour_lists(got) == _exact_topk(sim, k, True)
    else:
        want = _exact_topk(sim, k, True)
        lists = _neighbour_lists(got)
        for i in range(n):
            gv = np.sort(got[i].data)[::-1]
            wv = np.sort(sim[i, want[i]])[::-1]
            np.testing.assert_allclose(gv, wv, rtol=1e-5, err_msg=f"row {i}")
            if wv.size:
                cut = wv[-1] * (1 + 1e-5)
                assert {j for j in want[i] if sim[i, j] > cut} <= set(lists[i]), f"row {i}"


def test_row_kernel_threshold_guess_too_high_falls_back():
    """The sampled threshold guess lands on the only two large values: fewer than k
    candidates pass it, so the row is selected again exactly."""
    n, k = 2560, 10
    col0 = np.ones(n, np.float32)
    col0[[5, 15]] = 9.0  # two of the sampled positions (t * n / 256 + 5)
    x = sp.csr_matrix(col0[:, None])
    got = sparse_similarity(x, k, similarity="dot", num_threads=1)
    assert _neighbour_lists(got)[0] == [5, 15, 1, 2, 3, 4, 6, 7, 8, 9]
    assert _neighbour_lists(got)[5] == [15, 0, 1, 2, 3, 4, 6, 7, 8, 9]


@settings(max_examples=25, deadline=None)
@given(x=sparse_matrices, kind=st.sampled_from(["cosine", "dot", "jaccard"]), k=st.integers(1, 12))
def test_symmetric_kernel_equals_row_kernel(x, kind, k):
    from tastebud.models.knn import _knn_symmetric

    x = abs(x)
    got = (
        _knn_symmetric(
            sp.csr_matrix(x, dtype=np.float32),
            int(min(k, max(x.shape[0], 1))),
            kind,
            alpha=0.5,
            shrink=0.0,
            min_support=1,
            exclude_self=True,
            num_threads=2,
        )
        if x.shape[0]
        else sp.csr_matrix((0, 0), dtype=np.float32)
    )
    want = sparse_similarity(x, k, similarity=kind, num_threads=1)
    assert got.shape == want.shape
    _assert_same_graph(got, _rows_as_dicts(want))


@settings(max_examples=40, deadline=None)
@given(
    x=sparse_matrices,
    kind=st.sampled_from(["cosine", "pearson", "common_cosine", "msd", "dot"]),
    k=st.integers(1, 12),
)
def test_positive_only_keeps_the_positive_part(x, kind, k):
    from tastebud.models.knn import _csr32, _knn

    x = _csr32(x)
    got = _knn(x, x, k, kind, exclude_self=True, num_threads=2, positive_only=True)
    sim, _ = ref.similarity_dense(x.toarray(), x.toarray(), kind)
    sim = sim.astype(np.float32).astype(np.float64)
    sim[sim < 1e-9] = 0.0  # negative, or zero up to rounding
    _assert_same_graph(got, ref.topk_rows(sim, k, True))
    assert (got.data > 0).all()


def test_bad_input():
    x = sp.csr_matrix(np.eye(3, dtype=np.float32))
    with pytest.raises(ValueError, match="similarity must be one of"):
        sparse_similarity(x, 2, similarity="euclid")
    with pytest.raises(ValueError, match="k must be"):
        sparse_similarity(x, 0)
    with pytest.raises(ValueError, match="weighting must be"):
        sparse_similarity(x, 2, weighting="idf")
    with pytest.raises(ValueError, match="alpha"):
        sparse_similarity(x, 2, alpha=2.0)
    with pytest.raises(TypeError, match=r"scipy\.sparse"):
        sparse_similarity(np.eye(3), 2)
    bad = x.copy()
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        sparse_similarity(bad, 2)
    with pytest.raises(ValueError, match="neighbors"):
        ItemKNN(neighbors=0).fit(TRAIN)
    with pytest.raises(ValueError, match="similarity"):
        ItemKNN(similarity="nope").fit(TRAIN)


# ----------------------------------------------------------------------------- models
FACTORIES = {
    "ItemKNN": lambda: ItemKNN(neighbors=30, num_threads=1),
    "ItemKNN-bm25": lambda: ItemKNN(
        neighbors=30, similarity="dot", weighting="bm25", num_threads=1
    ),
    "UserKNN": lambda: UserKNN(neighbors=30, num_threads=1),
    "RP3beta": lambda: RP3beta(neighbors=30, num_threads=1),
}


@pytest.mark.parametrize("name", list(FACTORIES))
@pytest.mark.parametrize("check", CONTRACT_CHECKS, ids=lambda c: c.__name__)
def test_contract(check, name, tmp_path):
    run_check(check, FACTORIES[name], TRAIN, tmp_path)


@pytest.mark.parametrize("check", CONTRACT_CHECKS, ids=lambda c: c.__name__)
def test_contract_knn_rating(check, tmp_path):
    run_check(check, lambda: KNNRating(k=20, num_threads=1), RATING_TRAIN, tmp_path)


def test_item_knn_scores_match_reference():
    model = ItemKNN(neighbors=20, num_threads=2).fit(TRAIN)
    s = model.similarity_.toarray()
    users = TRAIN.users.ids_array[:25]
    x = TRAIN.matrix[TRAIN.users.index(users)].toarray()
    want = ref.item_knn_scores(x, s)
    recs = model.recommend(users, k=10)
    for r in range(len(users)):
        masked = np.where(x[r] > 0, -np.inf, want[r])
        np.testing.assert_allclose(recs.scores[r], np.sort(masked)[::-1][:10], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        model.score(np.repeat(users[:1], 5), TRAIN.items.ids_array[:5]), want[0, :5], rtol=1e-5
    )


def test_item_knn_fills_with_zero_scores_and_pads():
    inter = Interactions.from_arrays([0, 0, 1, 1, 2], [0, 1, 1, 2, 3])
    model = ItemKNN(neighbors=5).fit(inter)
    recs = model.recommend(2, k=3)
    # item 3's only user has no other items: nothing touched, all candidates score 0
    assert recs.indices[0].tolist() == [0, 1, 2]
    np.testing.assert_array_equal(recs.scores[0], [0, 0, 0])
    recs = model.recommend(0, k=4, items=[0, 2])
    assert recs.indices[0].tolist() == [2, -1, -1, -1]
    assert recs.mask[0].tolist() == [True, False, False, False]


def test_similar_items_and_explain():
    model = ItemKNN(neighbors=15, num_threads=1).fit(TRAIN)
    item = TRAIN.items.ids_array[3]
    sims = model.similar_items(item, k=5)
    assert item not in sims.ids[0]
    row = model.similarity_[3]
    best = row.indices[np.lexsort((row.indices, -row.data))][:5]
    np.testing.assert_array_equal(sims.indices[0], best)
    user = TRAIN.users.ids_array[0]
    rec = model.recommend(user, k=1)
    exp = model.explain(user, rec.ids[0, 0])
    assert exp.kind == "item"
    assert np.isclose(exp.score, rec.scores[0, 0], rtol=1e-5)
    assert np.isclose(exp.contributions.sum(), exp.score, rtol=1e-5)
    assert set(exp.ids) <= set(TRAIN.items.ids(TRAIN.matrix[0].indices).tolist())
    assert np.all(np.diff(exp.contributions) <= 0)
    with pytest.raises(KeyError):
        model.explain("nobody", item)


def test_user_knn_reference_and_explain():
    model = UserKNN(neighbors=10, num_threads=1).fit(TRAIN)
    x = TRAIN.matrix.toarray()
    sim, _ = ref.similarity_dense(x, x, "cosine")
    want_graph = ref.topk_rows(sim.astype(np.float32).astype(np.float64), 10, True)
    _assert_same_graph(model.similarity_, want_graph)
    scores = model.similarity_.toarray() @ x
    recs = model.recommend(TRAIN.users.ids_array[:5], k=5)
    for r in range(5):
        masked = np.where(x[r] > 0, -np.inf, scores[r])
        np.testing.assert_allclose(recs.scores[r], np.sort(masked)[::-1][:5], rtol=1e-5)
    exp = model.explain(TRAIN.users.ids_array[0], recs.ids[0, 0])
    assert exp.kind == "user"
    assert np.isclose(exp.contributions.sum(), recs.scores[0, 0])


def test_rp3beta_graph_matches_definition():
    model = RP3beta(neighbors=8, alpha=0.8, beta=0.4, num_threads=1).fit(TRAIN)
    x = TRAIN.matrix.toarray().astype(np.float64)
    p_ui = x / np.maximum(x.sum(1, keepdims=True), 1e-300)
    p_iu = x.T / np.maximum(x.T.sum(1, keepdims=True), 1e-300)
    pop = (x > 0).sum(0).astype(np.float64)
    w = (p_iu**0.8) @ (p_ui**0.8) / np.where(pop > 0, pop**0.4, np.inf)[None, :]
    _assert_same_graph(model.similarity_, ref.topk_rows(w, 8, True), atol=1e-6)
    with pytest.raises(ValueError, match="beta"):
        RP3beta(beta=-1).fit(TRAIN)


def test_planted_structure_beats_popularity():
    data = datasets.synthetic(400, 150, 12000, random_state=5)
    from tastebud.data import split
    from tastebud.evaluation import evaluate

    train, test = split.random_holdout(data.interactions, random_state=5)
    pop = evaluate(tastebud.Popularity(), train, test, k=10, verbose=False)["ndcg"]
    for model in (ItemKNN(neighbors=50), UserKNN(neighbors=50), RP3beta(neighbors=50)):
        assert evaluate(model, train, test, k=10, verbose=False)["ndcg"] > pop


# ----------------------------------------------------------------------------- KNNRating
RATINGS = datasets.synthetic(250, 120, 6000, random_state=2).ratings
RATING_TRAIN, RATING_TEST = __import__("tastebud.data.split", fromlist=["kfold"]).kfold(
    RATINGS, 5, random_state=0
)[0]


def _dense_rating_reference(
    model: KNNRating, train: Interactions, uidx, iidx, clip: bool = True
) -> np.ndarray:
    """KNNRating predictions recomputed densely from the model's biases and definitions
    (``clip=False``: the raw estimates, before clipping to the rating range)."""
    r = train.matrix.toarray().astype(np.float64)
    rated = r != 0
    mu = r[rated].mean()
    bu, bi = model.user_bias_, model.item_bias_
    ent, ent_rated = (r, rated) if model.user_based else (r.T, rated.T)
    kind = {"msd": "msd", "cosine": "common_cosine", "pearson": "pearson"}.get(
        model.similarity, "common_cosine"
    )
    values = ent
    if model.similarity == "pearson_baseline":
        base = mu + bu[:, None] + bi[None, :]
        values = np.where(ent_rated, ent - (base if model.user_based else base.T), 0.0)
    shrink = (
        model.shrink
        if model.shrink is not None
        else (100.0 if model.similarity == "pearson_baseline" else 0.0)
    )
    # common-support similarities need the rated pattern (values may be 0 after centring)
    sim = np.zeros((ent.shape[0], ent.shape[0]))
    for a in range(ent.shape[0]):
        for c in range(ent.shape[0]):
            if a == c:
                continue
            both = ent_rated[a] & ent_rated[c]
            n = both.sum()
            if n < model.min_support or n == 0:
                continue
            p, q = values[a, both], values[c, both]
            if kind == "pearson":
                p0, q0 = p - p.mean(), q - q.mean()
                den = np.sqrt((p0**2).sum() * (q0**2).sum())
                v = (p0 * q0).sum() / den if den > 1e-9 else 0.0
            elif kind == "msd":
                v = 1 / (((p - q) ** 2).mean() + 1)
            else:
                den = np.sqrt((p**2).sum() * (q**2).sum())
                v = (p * q).sum() / den if den > 0 else 0.0
            if shrink > 0:
                v *= (n - 1) / (n - 1 + shrink)
            sim[a, c] = v
    sim = sim.astype(np.float32).astype(np.float64)
    means = np.where(
        ent_rated.any(1), (ent * ent_rated).sum(1) / np.maximum(ent_rated.sum(1), 1), mu
    )
    out = []
    for u, i in zip(uidx, iidx, strict=True):
        x, y = (u, i) if model.user_based else (i, u)
        ctx_rated = rated[:, y] if model.user_based else rated[y]
        raw = r[:, y] if model.user_based else r[y]
        if model.estimator == "basic":
            res = raw
        elif model.estimator == "means":
            res = raw - means
        else:
            base = mu + bu + bi[i] if model.user_based else mu + bu[u] + bi
            res = raw - base
        part, used = ref.knn_rating_estimate(sim[x], res, ctx_rated, model.k)
        ok = used >= max(model.min_k, 1)
        if model.estimator == "basic":
            est = part if ok else mu
        elif model.estimator == "means":
            est = means[x] + (part if ok else 0)
        else:
            est = mu + bu[u] + bi[i] + (part if ok else 0)
        out.append(np.clip(est, r[rated].min(), r[rated].max()) if clip else est)
    return np.asarray(out)


@pytest.mark.parametrize(
    ("estimator", "similarity", "user_based"),
    [
        ("baseline", "pearson_baseline", False),
        ("baseline", "pearson_baseline", True),
        ("means", "pearson", False),
        ("basic", "msd", True),
        ("means", "cosine", True),
        ("basic", "cosine", False),
    ],
)
def test_knn_rating_matches_dense_reference(estimator, similarity, user_based):
    small = datasets.synthetic(60, 40, 900, random_state=4).ratings
    model = KNNRating(
        k=7, min_k=2, estimator=estimator, similarity=similarity, user_based=user_based
    ).fit(small)
    rng = np.random.default_rng(0)
    uidx = rng.integers(0, 60, 80)
    iidx = rng.integers(0, 40, 80)
    got = model.predict(small.users.ids(uidx), small.items.ids(iidx))
    want = _dense_rating_reference(model, small, uidx, iidx)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@settings(max_examples=40, deadline=None)
@given(
    r=arrays(
        np.float32,
        st.tuples(st.integers(1, 8), st.integers(1, 7)),
        elements=st.sampled_from([0.0, 0.0, 1.0, 2.5, 3.0, 5.0]),
    ),
    iterations=st.integers(0, 4),
    reg_users=st.sampled_from([0.0, 1.0, 15.0]),
    reg_items=st.sampled_from([0.5, 10.0]),
)
def test_als_baselines_kernel_matches_dense_reference(r, iterations, reg_users, reg_items):
    from tastebud.models.knn import als_baselines

    rated = r != 0
    mu = float(r[rated].mean()) if rated.any() else 0.0
    bu, bi = als_baselines(
        sp.csr_matrix(r), mu, iterations=iterations, reg_users=reg_users, reg_items=reg_items
    )
    rr = r.astype(np.float64)
    wu, wi = np.zeros(r.shape[0]), np.zeros(r.shape[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        for _ in range(iterations):
            wi = np.where(rated, rr - mu - wu[:, None], 0).sum(0) / (reg_items + rated.sum(0))
            wu = np.where(rated, rr - mu - wi[None, :], 0).sum(1) / (reg_users + rated.sum(1))
    np.testing.assert_allclose(bu, wu, atol=1e-9)
    np.testing.assert_allclose(bi, wi, atol=1e-9)


def test_knn_rating_baselines_match_surprise_definition():
    model = KNNRating().fit(RATING_TRAIN)
    r = RATING_TRAIN.matrix.toarray().astype(np.float64)
    rated = r != 0
    mu = r[rated].mean()
    bu, bi = np.zeros(r.shape[0]), np.zeros(r.shape[1])
    for _ in range(10):
        bi = np.where(rated, r - mu - bu[:, None], 0).sum(0) / (10 + rated.sum(0))
        bu = np.where(rated, r - mu - bi[None, :], 0).sum(1) / (15 + rated.sum(1))
    np.testing.assert_allclose(model.user_bias_, bu, atol=1e-9)
    np.testing.assert_allclose(model.item_bias_, bi, atol=1e-9)


def test_knn_rating_accuracy_and_explain():
    model = KNNRating(k=20).fit(RATING_TRAIN)
    users = RATING_TEST.users.ids(RATING_TEST.row_indices())
    items = RATING_TEST.items.ids(RATING_TEST.matrix.indices)
    truth = RATING_TEST.matrix.data
    pred = model.predict(users, items)
    lo, hi = RATING_TRAIN.matrix.data.min(), RATING_TRAIN.matrix.data.max()
    assert pred.min() >= lo
    assert pred.max() <= hi
    rmse = np.sqrt(np.mean((pred - truth) ** 2))
    base = np.sqrt(np.mean((RATING_TRAIN.matrix.data.mean() - truth) ** 2))
    assert rmse < base
    exp = model.explain(users[0], items[0])
    assert exp.kind == "item"
    assert len(exp.ids) <= 20
    assert np.isclose(exp.score, pred[0])
    with pytest.raises(KeyError):
        model.predict(["nobody"], items[:1])
    with pytest.raises(ValueError, match="estimator"):
        KNNRating(estimator="svd").fit(RATING_TRAIN)


def test_knn_rating_with_unrated_trailing_items():
    m = sp.csr_matrix(np.array([[4, 2, 0], [3, 5, 0], [1, 0, 0]], np.float32))
    inter = Interactions.from_sparse(m)
    for estimator in ("basic", "means", "baseline"):
        model = KNNRating(k=5, estimator=estimator, similarity="cosine").fit(inter)
        pred = model.predict([0, 1], [2, 2])
        assert np.isfinite(pred).all()


def test_knn_rating_recommend_ranks_by_unclipped_estimate():
    """Estimates beyond the top of the scale keep their order in recommend (clipping would
    tie them at the maximum, broken by item index); predict stays clipped."""
    small = datasets.synthetic(60, 40, 900, random_state=4).ratings
    model = KNNRating(k=7, min_k=2).fit(small)
    lo, hi = model.rating_range_
    n_items = len(small.items)
    checked = 0
    for u in range(len(small.users)):
        raw = _dense_rating_reference(model, small, np.full(n_items, u), np.arange(n_items), False)
        unseen = raw[small.matrix[u].toarray().ravel() == 0]
        if np.unique(unseen[unseen > hi + 1e-3].round(3)).size < 3:
            continue  # wants several unseen items estimated above the scale, all different
        checked += 1
        rec = model.recommend(small.users.ids([u]), k=5)
        want = np.sort(unseen)[::-1][:5]
        np.testing.assert_allclose(rec.scores[0], want, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(raw[rec.indices[0]], want, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(
            model.score(small.users.ids([u]), small.items.ids(rec.indices[0])), rec.scores[0]
        )
        pred = model.predict(small.users.ids([u]), small.items.ids(np.arange(n_items)))
        np.testing.assert_allclose(pred, np.clip(raw, lo, hi), rtol=1e-4, atol=1e-4)
    assert checked > 0  # the data must reach beyond the scale


@pytest.mark.parametrize("user_based", [False, True])
def test_knn_rating_blocks_scale_with_catalogue(monkeypatch, user_based):
    """Users per scoring block shrink with the catalogue (bounded temporaries), and the
    block size does not change any result."""
    from tastebud.models import knn

    small = datasets.synthetic(60, 40, 900, random_state=4).ratings
    model = KNNRating(k=7, user_based=user_based, similarity="cosine").fit(small)
    users = small.users.ids_array
    new = sp.csr_matrix(small.matrix[:9])
    default = model.recommend(users, k=6)
    default_new = model.recommend_for(new, k=6)
    default_pairs = model.score(users, small.items.ids_array[np.arange(60) % 40])
    assert model._batch_size == 1024

    sizes: list[int] = []
    block = KNNRating._score_block

    def spy(self, user_indices, rows):
        sizes.append(rows.shape[0])
        return block(self, user_indices, rows)

    monkeypatch.setattr(KNNRating, "_score_block", spy)
    monkeypatch.setattr(knn, "_PAIRS_PER_BLOCK", 3 * 40 + 5)  # 3 users per block
    assert model._batch_size == 3
    small_blocks = model.recommend(users, k=6)
    small_new = model.recommend_for(new, k=6)
    small_pairs = model.score(users, small.items.ids_array[np.arange(60) % 40])
    assert max(sizes) == 3
    np.testing.assert_array_equal(small_blocks.ids, default.ids)
    np.testing.assert_array_equal(small_blocks.scores, default.scores)
    np.testing.assert_array_equal(small_new.ids, default_new.ids)
    np.testing.assert_array_equal(small_new.scores, default_new.scores)
    np.testing.assert_array_equal(small_pairs, default_pairs)
    monkeypatch.setattr(knn, "_PAIRS_PER_BLOCK", 7)  # fewer pairs than items: one user
    assert model._batch_size == 1
