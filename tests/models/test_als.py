import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from tastebud import ALS, FitError, Popularity
from tastebud.data import Interactions, datasets, split
from tastebud.evaluation import evaluate
from tastebud.models._factors import core, csr_parts
from tests.models.contract import CONTRACT_CHECKS, run_check, small_data
from tests.reference.als_reference import loss_rows, solve_rows

DATA, TRAIN, TEST = small_data()


def fast(**kw):
    params = {"factors": 8, "iterations": 6, "random_state": 0, "num_threads": 1}
    params.update(kw)
    return ALS(**params)


@pytest.mark.parametrize("check", CONTRACT_CHECKS, ids=lambda c: c.__name__)
def test_contract(check, tmp_path):
    run_check(check, fast, TRAIN, tmp_path)


@pytest.mark.parametrize("check", CONTRACT_CHECKS[:3], ids=lambda c: c.__name__)
def test_contract_cholesky(check, tmp_path):
    run_check(check, lambda: fast(solver="cholesky"), TRAIN, tmp_path)


def _random_problem(seed, n, m, f, density, alpha):
    rng = np.random.default_rng(seed)
    rows = sp.random(n, m, density=density, random_state=seed, format="csr", dtype=np.float32)
    rows.data = np.round(rows.data * 4).astype(np.float32)  # integer-valued, some zeros
    rows.eliminate_zeros()
    rows.sort_indices()
    y = rng.standard_normal((m, f)).astype(np.float32)
    return rows, y


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(0, 12),
    m=st.integers(1, 15),
    f=st.sampled_from([1, 3, 8, 32, 33, 64]),
    density=st.floats(0.0, 1.0),
    alpha=st.sampled_from([0.0, 1.0, 40.0]),
    w0=st.sampled_from([1.0, 0.1, 0.0]),
    solver=st.sampled_from([0, 1]),
)
def test_kernel_matches_numpy_solve(seed, n, m, f, density, alpha, w0, solver):
    rows, y = _random_problem(seed, n, m, f, density, alpha)
    reg = np.random.default_rng(seed).uniform(0.1, 2.0, n).astype(np.float32)
    gram = np.ascontiguousarray(w0 * (y.T @ y), dtype=np.float32)
    expected = solve_rows(rows, y, reg, alpha, w0)
    x = np.zeros((n, f), np.float32)
    # CG from zero with f steps is exact in exact arithmetic; Cholesky is exact.
    core().als_solve(*csr_parts(rows), y, gram, reg, x, alpha, w0, solver, 4 * f, 1)
    scale = 1.0 + np.abs(expected).max(initial=0.0)
    np.testing.assert_allclose(x, expected, atol=2e-3 * scale, rtol=2e-3)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), f=st.sampled_from([1, 5, 64]), w0=st.sampled_from([1.0, 0.3]))
def test_loss_kernel_matches_numpy(seed, f, w0):
    rows, y = _random_problem(seed, 9, 11, f, 0.4, 2.0)
    x = np.random.default_rng(seed + 1).standard_normal((9, f)).astype(np.float32)
    reg = np.full(9, 0.3, np.float32)
    got = core().als_loss(*csr_parts(rows), y, np.ascontiguousarray(y.T @ y), reg, x, 2.0, w0, 1)
    np.testing.assert_allclose(got, loss_rows(rows, x, y, reg, 2.0, w0), rtol=2e-3, atol=1e-2)


def test_loss_decreases_monotonically_with_cholesky():
    model = fast(solver="cholesky", iterations=10, calculate_training_loss=True)
    model.fit(TRAIN)
    loss = model.loss_history_
    assert loss.shape == (10,)
    assert np.all(np.diff(loss) <= 1e-7 * loss[:-1]), loss


def test_cg_with_many_steps_matches_cholesky():
    exact = fast(solver="cholesky", iterations=4, factors=6).fit(TRAIN)
    cg = fast(solver="cg", cg_steps=30, iterations=4, factors=6).fit(TRAIN)
    np.testing.assert_allclose(cg.user_factors_, exact.user_factors_, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(cg.item_factors_, exact.item_factors_, rtol=1e-4, atol=1e-4)


def test_fold_in_reproduces_training_factors():
    model = fast(solver="cholesky", iterations=3).fit(TRAIN)
    users = TRAIN.users.ids_array[:25]
    rows = TRAIN.matrix[TRAIN.users.index(users)]
    # recommend_for solves against the final item factors: equal to re-solving the users.
    folded = model._user_embeddings(None, rows)
    reg = np.full(rows.shape[0], model.regularization, np.float32)
    np.testing.assert_allclose(
        folded, solve_rows(rows, model.item_factors_, reg, model.alpha), atol=1e-4, rtol=1e-3
    )
    # a training user's own factors are such a solve when the item factors are final:
    before = model.user_factors_.copy()
    model.partial_fit_users(users, rows)
    np.testing.assert_allclose(model.user_factors_[: len(users)], folded, atol=1e-6)
    # and after convergence the fitted factors are reproduced by fold-in
    conv = fast(solver="cholesky", iterations=60, factors=4, regularization=1.0).fit(TRAIN)
    np.testing.assert_allclose(
        conv._user_embeddings(None, rows), conv.user_factors_[: len(users)], atol=2e-3
    )
    assert before.shape == model.user_factors_.shape


def test_beats_popularity_on_planted_data():
    data = datasets.synthetic(600, 300, 24_000, random_state=3)
    train, test = split.random_holdout(data.interactions, random_state=3)
    als = evaluate(fast(factors=16, iterations=10), train, test, 10, verbose=False)
    pop = evaluate(Popularity(), train, test, 10, verbose=False)
    assert als["ndcg"] > 1.3 * pop["ndcg"], (als, pop)


def test_rendle_options_and_frequency_regularization():
    base = fast(unobserved_weight=0.2, regularization_exponent=1.0, regularization=0.001)
    model = base.fit(TRAIN)
    assert np.isfinite(model.user_factors_).all()
    rows = TRAIN.matrix[:5]
    n_u = np.diff(rows.indptr)
    reg = (0.001 * (n_u + 0.2 * TRAIN.n_items) ** 1.0).astype(np.float32)
    np.testing.assert_allclose(
        model._user_embeddings(None, rows),
        solve_rows(rows, model.item_factors_, reg, 1.0, 0.2),
        atol=1e-4,
        rtol=1e-3,
    )


def test_deterministic_and_thread_independent():
    a = fast(num_threads=1).fit(TRAIN)
    b = fast(num_threads=2).fit(TRAIN)
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)
    np.testing.assert_array_equal(a.item_factors_, b.item_factors_)


def test_users_without_interactions_get_popularity():
    inter = Interactions.from_arrays(
        [0, 0, 1, 1, 2, 2, 3], [0, 1, 1, 2, 1, 3, 1], user_ids=[0, 1, 2, 3, 4]
    )
    model = fast(factors=2, iterations=3).fit(inter)
    np.testing.assert_array_equal(model.user_factors_[4], 0.0)
    recs = model.recommend(4, k=4)
    assert recs.ids[0, 0] == 1  # the most popular item
    np.testing.assert_allclose(recs.scores[0], [4, 1, 1, 1])
    np.testing.assert_allclose(model.score(4, [1, 3]), [4, 1])
    new = model.recommend_for([[]], k=2)
    assert new.ids[0, 0] == 1


def test_bad_input():
    with pytest.raises(ValueError, match="factors"):
        ALS(factors=0).fit(TRAIN)
    with pytest.raises(TypeError, match="factors"):
        ALS(factors=2.5).fit(TRAIN)
    with pytest.raises(ValueError, match="alpha"):
        ALS(alpha=-1).fit(TRAIN)
    with pytest.raises(ValueError, match="unobserved_weight"):
        ALS(unobserved_weight=-0.1).fit(TRAIN)
    with pytest.raises(ValueError, match="regularization"):
        ALS(regularization=float("nan")).fit(TRAIN)
    with pytest.raises(ValueError, match="solver"):
        ALS(solver="lu").fit(TRAIN)
    with pytest.raises(ValueError, match="cg_steps"):
        ALS(cg_steps=0).fit(TRAIN)
    with pytest.raises(ValueError, match="empty"):
        ALS().fit(sp.csr_matrix((4, 3), dtype=np.float32))
    neg = sp.csr_matrix(np.array([[1.0, -2.0], [0.0, 1.0]], np.float32))
    with pytest.raises(ValueError, match=r"negative|>= 0"):
        fast().fit(neg)
    nan = sp.csr_matrix(np.array([[1.0, np.nan], [0.0, 1.0]], np.float32))
    with pytest.raises(ValueError, match="NaN"):
        fast().fit(nan)
    model = fast().fit(TRAIN)
    with pytest.raises(ValueError, match=">= 0"):
        model.recommend_for(sp.csr_matrix(-np.ones((1, TRAIN.n_items), np.float32)))


def test_fit_error_on_divergence(monkeypatch):
    class Diverging:
        def als_solve(self, *args):
            args[6][:] = np.nan  # the solved factors

    model = fast()
    monkeypatch.setattr("tastebud.models.als.core", Diverging)
    with pytest.raises(FitError):
        model.fit(TRAIN)


def test_callback_and_progress():
    seen = []
    fast(calculate_training_loss=True, iterations=3, show_progress=False).fit(
        TRAIN, callback=lambda it, sec, loss: seen.append((it, sec >= 0, loss))
    )
    assert [s[0] for s in seen] == [0, 1, 2]
    assert all(s[1] and s[2] > 0 for s in seen)


def test_partial_fit_grows_model():
    model = fast().fit(TRAIN)
    n_users, n_items = len(model.users_), len(model.items_)
    items = TRAIN.items.ids_array
    model.partial_fit_users([10**6, TRAIN.users.ids_array[0]], [list(items[:5]), list(items[3:9])])
    assert len(model.users_) == n_users + 1
    assert model.user_factors_.shape == (n_users + 1, 8)
    assert model.seen_.shape == (n_users + 1, n_items)
    assert set(model.seen_[0].indices) == set(range(3, 9))
    recs = model.recommend(10**6, k=5)
    assert not set(recs.ids[0]) & set(items[:5].tolist())
    users = TRAIN.users.ids_array
    model.partial_fit_items([10**7], [list(users[:30])])
    assert model.item_factors_.shape == (n_items + 1, 8)
    assert model.seen_.shape == (n_users + 1, n_items + 1)
    assert model.seen_[:, n_items].nnz == 30
    assert np.abs(model.item_factors_[n_items]).sum() > 0
    with pytest.raises(KeyError):
        model.partial_fit_users([1], [["no such item"]])
    with pytest.raises(ValueError, match="duplicates"):
        model.partial_fit_users([1, 1], [[items[0]], [items[1]]])


def test_explain_sums_to_folded_score():
    model = fast(factors=6).fit(TRAIN)
    user, item = TRAIN.users.ids_array[3], TRAIN.items.ids_array[7]
    exp = model.explain(user, item)
    row = TRAIN.matrix[3]
    assert set(exp.items.tolist()) == set(TRAIN.items.ids(row.indices).tolist())
    assert np.all(np.diff(exp.contributions) <= 0)
    folded = model._user_embeddings(None, row)[0]
    assert exp.score == pytest.approx(float(folded @ model.item_factors_[7]), rel=1e-3, abs=1e-4)


def test_similar_users_and_items():
    model = fast().fit(TRAIN)
    sims = model.similar_users(TRAIN.users.ids_array[:3], k=4)
    assert sims.ids.shape == (3, 4)
    assert not any(TRAIN.users.ids_array[r] in sims.ids[r] for r in range(3))
    unit = model.user_factors_ / np.linalg.norm(model.user_factors_, axis=1, keepdims=True)
    best = np.argsort(-(unit[1:] @ unit[0]))[0] + 1
    assert sims.indices[0, 0] == best
    assert model.similar_items(TRAIN.items.ids_array[:2], k=3).ids.shape == (2, 3)


# ----------------------------------------------------------------- float64 and long rows
@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(0, 10),
    m=st.integers(1, 14),
    f=st.sampled_from([1, 4, 32, 64, 128]),
    density=st.floats(0.0, 1.0),
    alpha=st.sampled_from([0.0, 1.0, 40.0]),
    w0=st.sampled_from([1.0, 0.1, 0.0]),
    solver=st.sampled_from([0, 1]),
)
def test_kernel_float64_matches_numpy_tightly(seed, n, m, f, density, alpha, w0, solver):
    rows, y32 = _random_problem(seed, n, m, f, density, alpha)
    y = y32.astype(np.float64)
    reg = np.random.default_rng(seed).uniform(0.1, 2.0, n).astype(np.float32)
    gram = np.ascontiguousarray(w0 * (y.T @ y))
    expected = solve_rows(rows, y, reg, alpha, w0)
    x = np.zeros((n, f), np.float64)
    core().als_solve(*csr_parts(rows), y, gram, reg, x, alpha, w0, solver, 4 * f, 1)
    assert x.dtype == np.float64
    scale = 1.0 + np.abs(expected).max(initial=0.0)
    # float32 needs 2e-3 here; double precision agrees to ~1e-12 (CG: 4f steps from zero).
    np.testing.assert_allclose(x, expected, atol=1e-7 * scale, rtol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("f", [32, 64, 128])
def test_kernel_long_rows_and_blocks(dtype, f):
    """Rows longer than the gather buffer (4096 entries) and of every length mod 4 agree."""
    rng = np.random.default_rng(f)
    m = 4200
    lengths = [4200, 4097, 4096, 5, 6, 7, 8, 1, 0]
    indices = np.concatenate([np.sort(rng.choice(m, k, replace=False)) for k in lengths])
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    data = rng.integers(1, 4, indices.size).astype(np.float32)
    rows = sp.csr_matrix((data, indices, indptr), shape=(len(lengths), m))
    y = (rng.standard_normal((m, f)) / np.sqrt(f)).astype(dtype)
    reg = np.full(len(lengths), 0.5, np.float32)
    gram = np.ascontiguousarray(0.5 * (y.T @ y), dtype=dtype)
    expected = solve_rows(rows, y, reg, 0.5, 0.5)
    x = np.zeros((len(lengths), f), dtype)
    core().als_solve(*csr_parts(rows), y, gram, reg, x, 0.5, 0.5, 0, 2 * f, 1)
    tol = 2e-3 if dtype == np.float32 else 1e-8
    np.testing.assert_allclose(x, expected, atol=tol * (1 + np.abs(expected).max()), rtol=tol)


def test_loss_kernel_float64():
    rows, y32 = _random_problem(3, 9, 11, 64, 0.4, 2.0)
    y = y32.astype(np.float64)
    x = np.random.default_rng(4).standard_normal((9, 64))
    reg = np.full(9, 0.3, np.float32)
    got = core().als_loss(*csr_parts(rows), y, np.ascontiguousarray(y.T @ y), reg, x, 2.0, 0.5, 1)
    np.testing.assert_allclose(got, loss_rows(rows, x, y, reg, 2.0, 0.5), rtol=1e-10)


def test_float64_model(tmp_path):
    model = fast(factors=16, dtype="float64", iterations=4).fit(TRAIN)
    assert model.user_factors_.dtype == np.float64 == model.item_factors_.dtype
    single = fast(factors=16, iterations=4).fit(TRAIN)
    assert single.user_factors_.dtype == np.float32
    # Same start and algorithm: the two precisions agree to float32 rounding drift.
    np.testing.assert_allclose(model.item_factors_, single.item_factors_, atol=2e-2)
    users = TRAIN.users.ids_array[:5]
    recs = model.recommend(users, k=5)
    assert recs.scores.dtype == np.float32
    path = tmp_path / "als64.tbud"
    model.save(path)
    loaded = ALS.load(path)
    assert loaded.dtype == "float64"
    assert loaded.user_factors_.dtype == np.float64
    np.testing.assert_array_equal(loaded.user_factors_, model.user_factors_)
    np.testing.assert_array_equal(loaded.recommend(users, k=5).ids, recs.ids)
    # Fold-in and partial updates stay in float64.
    new = model.recommend_for([list(TRAIN.items.ids_array[:3])], k=3)
    assert new.ids.shape == (1, 3)
    model.partial_fit_users([10**9], [list(TRAIN.items.ids_array[:4])])
    assert model.user_factors_.dtype == np.float64


def test_float64_cg_matches_cholesky_closer_than_float32():
    gaps = {}
    for dtype in ("float32", "float64"):
        cg = fast(factors=8, iterations=3, cg_steps=40, dtype=dtype).fit(TRAIN)
        exact = fast(factors=8, iterations=3, solver="cholesky", dtype=dtype).fit(TRAIN)
        gaps[dtype] = np.abs(cg.user_factors_ - exact.user_factors_).max()
    assert gaps["float64"] < 1e-6
    assert gaps["float64"] <= gaps["float32"]


@pytest.mark.parametrize("bad", ["float16", np.float64, "double", 64])
def test_bad_dtype(bad):
    with pytest.raises(ValueError, match="dtype"):
        fast(dtype=bad).fit(TRAIN)


@pytest.mark.parametrize("family", ["ALS", "BPR"])
def test_zero_weight_is_no_interaction_in_recommend_for(family):
    """Weight 0 means no interaction: the popularity fallback applies and the item stays a
    candidate (it is not excluded as seen)."""
    from tastebud import BPR

    if family == "ALS":
        model = fast().fit(TRAIN)
    else:
        model = BPR(factors=8, iterations=3, random_state=0, num_threads=1).fit(TRAIN)
    empty = model.recommend_for([[]], k=10)
    top = empty.ids[0, 0]  # the most popular item
    zero = model.recommend_for([{top: 0.0}], k=10)
    np.testing.assert_array_equal(zero.ids, empty.ids)
    np.testing.assert_array_equal(zero.scores, empty.scores)
    # a zero next to a real interaction changes nothing either, and the item is not excluded
    other = TRAIN.items.ids_array[-1]
    mixed = model.recommend_for([{top: 0.0, other: 1.0}], k=10)
    plain = model.recommend_for([[other]], k=10)
    np.testing.assert_array_equal(mixed.ids, plain.ids)
    # sparse input: explicit zeros dropped without touching the caller's matrix
    rows = sp.csr_matrix(
        ([0.0], ([0], [model.items_.index(top)[0]])), shape=(1, TRAIN.n_items), dtype=np.float32
    )
    np.testing.assert_array_equal(model.recommend_for(rows, k=10).ids, empty.ids)
    assert rows.nnz == 1
