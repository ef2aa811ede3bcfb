import math
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from tastebud import metrics as M
from tests.metrics._cases import Case, random_problem, ranking_cases, to_csr
from tests.reference import metrics_reference as ref

ALL = ("precision", "recall", "f1", "ndcg", "map", "mrr", "hit_rate")
REFERENCE = {
    "precision": ref.precision,
    "recall": ref.recall,
    "f1": ref.f1,
    "ndcg": ref.ndcg,
    "map": ref.average_precision,
    "mrr": ref.reciprocal_rank,
    "hit_rate": ref.hit_rate,
}


def reference_values(case: Case, name: str, **kw) -> np.ndarray:
    f = REFERENCE[name]
    return np.array(
        [f(row, rel, case.k, **kw) for row, rel in zip(case.rows, case.rel, strict=True)]
    )


# ---------------------------------------------------------------------------
# hand-computed textbook examples
# ---------------------------------------------------------------------------


def test_textbook_binary_list_101():
    # list [a, b, c] with a and c relevant, |T| = 2, k = 3
    rec = np.array([[0, 1, 2]])
    rel = sp.csr_array(np.array([[1, 0, 1, 0]]))
    out = M.ranking_metrics(rec, rel, k=3, metrics=ALL)
    dcg = 1.0 + 1.0 / math.log2(4)  # 1.5
    idcg = 1.0 + 1.0 / math.log2(3)  # 1.6309297535714575
    assert out["ndcg"][0] == pytest.approx(dcg / idcg, abs=1e-15)
    assert out["ndcg"][0] == pytest.approx(0.9197207891481876, abs=1e-15)
    assert out["precision"][0] == pytest.approx(2 / 3)
    assert out["recall"][0] == 1.0
    assert out["f1"][0] == pytest.approx(0.8)
    assert out["map"][0] == pytest.approx((1 / 1 + 2 / 3) / 2)  # 0.8333...
    assert out["mrr"][0] == 1.0
    assert out["hit_rate"][0] == 1.0


def test_textbook_first_hit_at_rank_three_and_padding():
    # [x, y, hit, -1, -1] with |T| = 4, k = 5
    rec = np.array([[5, 6, 1, -1, -1]])
    rel = sp.csr_array(([1.0] * 4, ([0] * 4, [0, 1, 2, 3])), shape=(1, 8))
    assert M.precision_at_k(rec, rel, k=5) == pytest.approx(1 / 5)
    assert M.precision_at_k(rec, rel, k=5, denominator="returned") == pytest.approx(1 / 3)
    assert M.recall_at_k(rec, rel, k=5) == pytest.approx(1 / 4)
    assert M.recall_at_k(rec, rel, k=2, denominator="min_k") == 0.0
    assert M.mrr_at_k(rec, rel, k=5) == pytest.approx(1 / 3)
    assert M.mrr_at_k(rec, rel, k=2) == 0.0
    # AP@5 = P@3 / min(5, 4) = (1/3) / 4 ; ranx-style: / |T| = same here
    assert M.map_at_k(rec, rel, k=5) == pytest.approx(1 / 12)
    # NDCG@5 = (1/log2 4) / (1 + 1/log2 3 + 1/log2 4 + 1/log2 5)
    idcg = 1 + 1 / math.log2(3) + 0.5 + 1 / math.log2(5)
    assert M.ndcg_at_k(rec, rel, k=5) == pytest.approx(0.5 / idcg, abs=1e-15)


def test_textbook_graded_ndcg():
    # gains of the ranked items: 3, 2, 3, 0, 1, 2 (Wikipedia's DCG example)
    rec = np.array([[0, 1, 2, 3, 4, 5]])
    gains = [3.0, 2.0, 3.0, 0.0, 1.0, 2.0]
    rel = sp.csr_array(np.array([gains]))
    linear = M.ndcg_at_k(rec, rel, k=6, gains="graded", gain_function="linear")
    # DCG = 3 + 2/log2 3 + 3/2 + 0 + 1/log2 6 + 2/log2 7 = 6.861126688593502
    # IDCG (3, 3, 2, 2, 1) = 3 + 3/log2 3 + 2/2 + 2/log2 5 + 1/log2 6 = 7.1409951840957
    assert linear == pytest.approx(0.9608081943360617, abs=1e-14)  # Wikipedia: 0.961
    exp = M.ndcg_at_k(rec, rel, k=6, gains="graded")
    dcg = 7 + 3 / math.log2(3) + 7 / 2 + 1 / math.log2(6) + 3 / math.log2(7)
    idcg = 7 + 7 / math.log2(3) + 3 / 2 + 3 / math.log2(5) + 1 / math.log2(6)
    assert exp == pytest.approx(dcg / idcg, abs=1e-14)
    # binary treats every stored gain as 1 (the 0 is not stored: not relevant)
    binary = M.ndcg_at_k(rec, rel, k=6)
    assert binary == pytest.approx(
        (1 + 1 / math.log2(3) + 0.5 + 1 / math.log2(6) + 1 / math.log2(7))
        / sum(1 / math.log2(i + 1) for i in range(1, 6)),
        abs=1e-14,
    )


def test_ideal_dcg_uses_min_k_relevant():
    # 5 relevant items, k = 2, both slots hit: NDCG = 1 even though |T| > k
    rec = np.array([[0, 1]])
    rel = sp.csr_array(np.ones((1, 5)))
    assert M.ndcg_at_k(rec, rel, k=2) == 1.0
    assert M.map_at_k(rec, rel, k=2) == 1.0
    assert M.map_at_k(rec, rel, k=2, denominator="relevant") == pytest.approx(2 / 5)
    assert M.recall_at_k(rec, rel, k=2) == pytest.approx(2 / 5)
    assert M.recall_at_k(rec, rel, k=2, denominator="min_k") == 1.0


def test_k_larger_than_width_is_padding():
    rec = np.array([[0, 1]])
    rel = sp.csr_array(np.array([[1, 1, 1, 0]]))
    assert M.precision_at_k(rec, rel, k=10) == pytest.approx(2 / 10)
    assert M.ndcg_at_k(rec, rel, k=10) == pytest.approx(
        (1 + 1 / math.log2(3)) / (1 + 1 / math.log2(3) + 0.5)
    )


def test_users_without_relevant_items_are_nan_and_excluded():
    rec = np.array([[0, 1], [0, 1], [2, 3]])
    rel = sp.csr_array(np.array([[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]))
    per_user = M.precision_at_k(rec, rel, k=2, reduce="none")
    np.testing.assert_array_equal(per_user, [0.5, np.nan, np.nan])
    assert M.precision_at_k(rec, rel, k=2) == 0.5
    assert M.precision_at_k(rec, rel, k=2, empty="zero") == pytest.approx(0.5 / 3)
    zero = M.ranking_metrics(rec, rel, k=2, metrics=ALL, empty="zero")
    for name in ALL:
        assert zero[name][1] == 0.0
        assert zero[name][2] == 0.0
    empty = sp.csr_array((3, 4))
    assert math.isnan(M.ndcg_at_k(rec, empty, k=2))
    assert M.ndcg_at_k(rec, empty, k=2, empty="zero") == 0.0


def test_explicit_zero_is_not_relevant():
    rel = sp.csr_array(([0.0, 1.0], ([0, 0], [0, 1])), shape=(1, 3))
    assert rel.nnz == 2
    rec = np.array([[0, 1]])
    assert M.recall_at_k(rec, rel, k=2) == 1.0
    assert M.precision_at_k(rec, rel, k=2) == 0.5


def test_unsorted_and_duplicate_csr_entries_are_canonicalised():
    rel = sp.csr_array(
        (np.array([1.0, 1.0, 2.0]), np.array([3, 1, 3]), np.array([0, 3])), shape=(1, 5)
    )
    assert not rel.has_canonical_format
    out = M.ranking_metrics(np.array([[3, 0, 1]]), rel, k=3, metrics=("ndcg", "recall"))
    # item 3 has gain 1 + 2 = 3 after summing duplicates; binary recall counts it once
    assert out["recall"][0] == 1.0
    graded = M.ndcg_at_k(np.array([[3, 0, 1]]), rel, k=3, gains="graded")
    assert graded == pytest.approx((7 + 1 / 2) / (7 + 1 / math.log2(3)))


def test_reduce_none_returns_per_user_and_accepts_csr_matrix_and_int32():
    rec = np.array([[0, 1], [1, 0]], dtype=np.int32)
    rel = sp.csr_matrix(np.array([[1, 0], [1, 0]]))
    vals = M.mrr_at_k(rec, rel, k=2, reduce="none")
    assert vals.dtype == np.float64
    np.testing.assert_array_equal(vals, [1.0, 0.5])
    assert M.mrr_at_k(rec, rel, k=2) == 0.75
    assert M.mrr_at_k(rec.astype(np.uint16), rel.tocoo(), k=2) == 0.75


# ---------------------------------------------------------------------------
# property tests against the plain-Python reference
# ---------------------------------------------------------------------------


@settings(deadline=None, max_examples=150)
@given(case=ranking_cases())
def test_binary_metrics_match_reference(case: Case):
    out = M.ranking_metrics(case.recommended, case.relevant, case.k, ALL)
    for name in ALL:
        np.testing.assert_allclose(out[name], reference_values(case, name), rtol=1e-12, atol=1e-12)


@settings(deadline=None, max_examples=60)
@given(case=ranking_cases())
def test_denominator_options_match_reference(case: Case):
    np.testing.assert_allclose(
        M.precision_at_k(case.recommended, case.relevant, case.k, denominator="returned",
                         reduce="none"),
        reference_values(case, "precision", denominator="returned"), atol=1e-12,
    )  # fmt: skip
    np.testing.assert_allclose(
        M.recall_at_k(case.recommended, case.relevant, case.k, denominator="min_k",
                      reduce="none"),
        reference_values(case, "recall", denominator="min_k"), atol=1e-12,
    )  # fmt: skip
    np.testing.assert_allclose(
        M.map_at_k(case.recommended, case.relevant, case.k, denominator="relevant",
                   reduce="none"),
        reference_values(case, "map", denominator="relevant"), atol=1e-12,
    )  # fmt: skip


@settings(deadline=None, max_examples=100)
@given(case=ranking_cases(graded=True), gain_function=st.sampled_from(["exponential", "linear"]))
def test_graded_ndcg_matches_reference(case: Case, gain_function: str):
    got = M.ndcg_at_k(
        case.recommended, case.relevant, case.k, gains="graded", gain_function=gain_function,
        reduce="none",
    )  # fmt: skip
    want = reference_values(case, "ndcg", gains="graded", gain_function=gain_function)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@settings(deadline=None, max_examples=40)
@given(case=ranking_cases())
def test_mean_is_mean_over_users_with_relevant_items(case: Case):
    want = reference_values(case, "ndcg")
    got = M.ndcg_at_k(case.recommended, case.relevant, case.k)
    if np.isnan(want).all():
        assert math.isnan(got)
    else:
        assert got == pytest.approx(np.nanmean(want), abs=1e-12)


def test_single_metric_functions_equal_fused(rng):
    rec, rel = random_problem(rng, 50, 40, 12, 8)
    fused = M.ranking_metrics(rec, rel, 10, ALL)
    singles = {
        "precision": M.precision_at_k, "recall": M.recall_at_k, "f1": M.f1_at_k,
        "ndcg": M.ndcg_at_k, "map": M.map_at_k, "mrr": M.mrr_at_k, "hit_rate": M.hit_rate_at_k,
    }  # fmt: skip
    for name, f in singles.items():
        np.testing.assert_array_equal(f(rec, rel, 10, reduce="none"), fused[name])
        assert f(rec, rel, 10) == pytest.approx(fused[name].mean())


@pytest.mark.parametrize("graded", [False, True])
def test_parallel_kernel_equals_serial(rng, monkeypatch, graded):
    from tastebud.metrics import _checks

    rec, rel = random_problem(rng, 300, 60, 15, 10)
    rec[rng.random(rec.shape) < 0.1] = -1
    if graded:
        rel.data = rng.integers(1, 4, size=rel.nnz).astype(np.float64)
    gains = "graded" if graded else "binary"
    monkeypatch.setattr(_checks, "PARALLEL_MIN_WORK", 0)
    par = M.ranking_metrics(rec, rel, 12, ALL, gains=gains)
    monkeypatch.setattr(_checks, "PARALLEL_MIN_WORK", 10**12)
    ser = M.ranking_metrics(rec, rel, 12, ALL, gains=gains)
    for name in ALL:
        np.testing.assert_array_equal(par[name], ser[name])


@pytest.mark.parametrize("graded", [False, True])
def test_binary_search_path_equals_marker_path(rng, monkeypatch, graded):
    from tastebud.metrics import ranking

    rec, rel = random_problem(rng, 200, 70, 15, 12)
    rec[rng.random(rec.shape) < 0.1] = -1
    if graded:
        rel.data = rng.integers(1, 4, size=rel.nnz).astype(np.float64)
    gains = "graded" if graded else "binary"
    marker = M.ranking_metrics(rec, rel, 12, ALL, gains=gains)
    monkeypatch.setattr(ranking, "_MARKER_WORK_FACTOR", 0)
    monkeypatch.setattr(ranking, "_MARKER_SLACK", -1)
    search = M.ranking_metrics(rec, rel, 12, ALL, gains=gains)
    for name in ALL:
        np.testing.assert_array_equal(marker[name], search[name])
    bad = rec.copy()
    bad[7, 3] = bad[7, 1] = 5
    with pytest.raises(ValueError, match="row 7 lists item 5 more than once"):
        M.ranking_metrics(bad, rel, 12)
    bad[7, 3] = 70
    with pytest.raises(ValueError, match="row 7 holds 70"):
        M.ranking_metrics(bad, rel, 12)


# ---------------------------------------------------------------------------
# peers
# ---------------------------------------------------------------------------


def _ranx_evaluate(ranx, qrels, run, metrics):
    # ranx's own kernels emit NumbaTypeSafetyWarning while they compile: not ours to fix
    import numba

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", numba.NumbaTypeSafetyWarning)
        return ranx.evaluate(qrels, run, metrics)


def _ranx_objects(recommended, relevant):
    ranx = pytest.importorskip("ranx")
    csr = sp.csr_array(relevant)
    qrels = {}
    run = {}
    for u in range(csr.shape[0]):
        row = slice(csr.indptr[u], csr.indptr[u + 1])
        qrels[f"u{u}"] = {
            f"i{i}": int(g) for i, g in zip(csr.indices[row], csr.data[row], strict=True)
        }
        items = [int(i) for i in recommended[u] if i >= 0]
        run[f"u{u}"] = {f"i{i}": float(len(items) - r) for r, i in enumerate(items)}
    return ranx, ranx.Qrels(qrels), ranx.Run(run)


@pytest.mark.parametrize("k", [1, 5, 10])
def test_binary_metrics_agree_with_ranx(rng, k):
    rec, rel = random_problem(rng, 200, 50, 15, 12)
    ranx, qrels, run = _ranx_objects(rec, rel)
    names = {
        "precision": f"precision@{k}", "recall": f"recall@{k}", "ndcg": f"ndcg@{k}",
        "mrr": f"mrr@{k}", "hit_rate": f"hit_rate@{k}", "map": f"map@{k}",
    }  # fmt: skip
    theirs = _ranx_evaluate(ranx, qrels, run, list(names.values()))
    ours = M.ranking_metrics(rec, rel, k, tuple(names), map_denominator="relevant")
    for name, ranx_name in names.items():
        assert ours[name].mean() == pytest.approx(theirs[ranx_name], abs=1e-9), name


@pytest.mark.parametrize(
    ("gain_function", "ranx_metric"), [("linear", "ndcg"), ("exponential", "ndcg_burges")]
)
def test_graded_ndcg_agrees_with_ranx(rng, gain_function, ranx_metric):
    rec, rel = random_problem(rng, 150, 40, 12, 10)
    rel.data = rng.integers(1, 5, size=rel.nnz).astype(np.float64)
    ranx, qrels, run = _ranx_objects(rec, rel)
    theirs = _ranx_evaluate(ranx, qrels, run, f"{ranx_metric}@10")
    ours = M.ndcg_at_k(rec, rel, 10, gains="graded", gain_function=gain_function)
    assert ours == pytest.approx(theirs, abs=1e-9)


def test_graded_ndcg_agrees_with_sklearn(rng):
    metrics = pytest.importorskip("sklearn.metrics")
    n_users, n_items = 80, 30
    scores = rng.random((n_users, n_items))
    gains = rng.integers(0, 4, size=(n_users, n_items)) * (rng.random((n_users, n_items)) < 0.3)
    gains[gains.sum(axis=1) == 0, 0] = 2  # sklearn scores all-zero rows as 0; we skip them
    rec = np.argsort(-scores, axis=1)[:, :10]
    rel = sp.csr_array(gains.astype(np.float64))
    for k in (3, 10):
        theirs = metrics.ndcg_score(gains, scores, k=k)
        ours = M.ndcg_at_k(rec, rel, k, gains="graded", gain_function="linear")
        assert ours == pytest.approx(theirs, abs=1e-9)


# ---------------------------------------------------------------------------
# AUC
# ---------------------------------------------------------------------------


def test_auc_textbook():
    scores = np.array([[0.9, 0.5, 0.4, 0.1], [1.0, 1.0, 0.0, 0.0]])
    rel = sp.csr_array(np.array([[1, 0, 1, 0], [1, 0, 0, 0]]))
    # user 0: pairs (0.9>0.5, 0.9>0.1, 0.4<0.5, 0.4>0.1) = 3/4; user 1: (tie, >, >) = 2.5/3
    np.testing.assert_allclose(M.auc(scores, rel, reduce="none"), [0.75, 2.5 / 3])
    excl = sp.csr_array(np.array([[0, 1, 0, 0], [0, 0, 0, 0]]))
    np.testing.assert_allclose(M.auc(scores, rel, exclude=excl, reduce="none"), [1.0, 2.5 / 3])


@settings(deadline=None, max_examples=80)
@given(data=st.data())
def test_auc_matches_reference(data):
    n_users = data.draw(st.integers(1, 5))
    n_items = data.draw(st.integers(1, 10))
    score_vals = st.integers(-3, 3).map(float)  # integer-valued floats: many ties
    scores = np.array(
        [[data.draw(score_vals) for _ in range(n_items)] for _ in range(n_users)]
    ).reshape(n_users, n_items)
    rel = [data.draw(st.sets(st.integers(0, n_items - 1))) for _ in range(n_users)]
    exc = [data.draw(st.sets(st.integers(0, n_items - 1))) for _ in range(n_users)]
    got = M.auc(
        scores, to_csr([dict.fromkeys(r, 1.0) for r in rel], n_items),
        exclude=to_csr([dict.fromkeys(e, 1.0) for e in exc], n_items), reduce="none",
    )  # fmt: skip
    want = [ref.auc(list(scores[u]), rel[u], exc[u]) for u in range(n_users)]
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_auc_agrees_with_sklearn(rng):
    metrics = pytest.importorskip("sklearn.metrics")
    scores = rng.integers(0, 5, size=(40, 25)).astype(np.float32)  # ties
    truth = rng.random((40, 25)) < 0.2
    truth[:, 0] = True
    truth[:, 1] = False
    ours = M.auc(scores, sp.csr_array(truth.astype(np.float64)), reduce="none")
    theirs = [metrics.roc_auc_score(truth[u], scores[u]) for u in range(40)]
    np.testing.assert_allclose(ours, theirs, atol=1e-9)


def test_sampled_auc_is_deterministic_and_close_to_exact(rng, monkeypatch):
    from tastebud.metrics import _checks

    monkeypatch.setattr(_checks, "PARALLEL_MIN_WORK", 0)
    scores = rng.random((400, 300))
    truth = (rng.random((400, 300)) < 0.05) | (np.arange(300) == 0)
    rel = sp.csr_array(truth.astype(np.float64))
    exclude = sp.csr_array((rng.random((400, 300)) < 0.3).astype(np.float64))
    exact = M.auc(scores, rel, exclude=exclude)
    a = M.auc(scores, rel, exclude=exclude, n_negatives=200, random_state=7, reduce="none")
    monkeypatch.setattr(_checks, "PARALLEL_MIN_WORK", 10**12)  # serial: same stream per user
    b = M.auc(scores, rel, exclude=exclude, n_negatives=200, random_state=7, reduce="none")
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(
        a, M.auc(scores, rel, exclude=exclude, n_negatives=200, random_state=8, reduce="none")
    )
    assert np.nanmean(a) == pytest.approx(exact, abs=0.01)


def test_sampled_auc_never_draws_relevant_or_excluded_items():
    # negatives allowed: only item 3 (score 0); everything else is positive or excluded
    scores = np.array([[5.0, 4.0, 9.0, 0.0, 9.0, 9.0]])
    rel = sp.csr_array(np.array([[1, 1, 0, 0, 0, 0]]))
    excl = sp.csr_array(np.array([[0, 0, 1, 0, 1, 1]]))
    assert M.auc(scores, rel, exclude=excl, n_negatives=50, random_state=0) == 1.0
    # no negative at all -> NaN for that user
    excl_all = sp.csr_array(np.array([[0, 0, 1, 1, 1, 1]]))
    assert math.isnan(M.auc(scores, rel, exclude=excl_all, n_negatives=5, random_state=0))
    assert math.isnan(M.auc(scores, rel, exclude=excl_all))


@settings(deadline=None, max_examples=40)
@given(data=st.data())
def test_sampled_auc_draws_uniformly_from_negatives(data):
    """Negatives score their index, the one positive t + 0.5, excluded items +100.
    Drawing an excluded or relevant item would lower the AUC; with uniform draws the
    sampled AUC estimates |{negatives <= t}| / |negatives|."""
    n_items = data.draw(st.integers(2, 30))
    (p,) = data.draw(st.sets(st.integers(0, n_items - 1), min_size=1, max_size=1))
    exc_items = data.draw(st.sets(st.integers(0, n_items - 1), max_size=n_items)) - {p}
    t = data.draw(st.integers(0, n_items))
    negatives = [i for i in range(n_items) if i != p and i not in exc_items]
    scores = np.arange(n_items, dtype=np.float64)[None, :]
    scores[0, sorted(exc_items)] = 100.0
    scores[0, p] = t + 0.5
    rel = to_csr([{p: 1.0}], n_items)
    exc = to_csr([dict.fromkeys(exc_items, 1.0)], n_items)
    value = M.auc(scores, rel, exclude=exc, n_negatives=20_000, random_state=1)
    if not negatives:
        assert math.isnan(value)
    else:
        expected = sum(1 for i in negatives if i <= t) / len(negatives)
        assert value == pytest.approx(expected, abs=0.02)
        assert value == M.auc(scores, rel, exclude=exc, n_negatives=20_000, random_state=1)
