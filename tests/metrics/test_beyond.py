import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from tastebud import metrics as M
from tests.metrics._cases import Case, random_problem, ranking_cases
from tests.reference import metrics_reference as ref


@st.composite
def list_cases(draw):
    case = draw(ranking_cases(max_users=7))
    k = draw(st.one_of(st.none(), st.integers(1, case.recommended.shape[1] + 2)))
    return case, k


def test_textbook_coverage_gini_personalization():
    rec = np.array([[0, 1, 2], [0, 1, 3], [0, 4, -1]])
    assert M.catalog_coverage(rec, 10) == pytest.approx(5 / 10)
    assert M.catalog_coverage(rec, 10, k=1) == pytest.approx(1 / 10)
    # exposure counts: item0 3, item1 2, items 2,3,4 1, five zeros (n = 10, total 8)
    # sorted: 0,0,0,0,0,1,1,1,2,3 -> sum (2i-11) c_i = 1+3+5+2*7+3*9 = 50 -> 50/80
    assert M.gini(rec, 10) == pytest.approx(50 / 80)
    # overlaps: |{0,1}| = 2, |{0}| = 1, |{0}| = 1 over 3 pairs, k = 3
    assert M.personalization(rec) == pytest.approx(1 - (4 / 3) / 3)
    # identical lists -> 0, disjoint lists -> 1, one list -> undefined
    assert M.personalization(np.array([[1, 2], [1, 2]])) == 0.0
    assert M.personalization(np.array([[1, 2], [3, 4]])) == 1.0
    assert M.gini(np.array([[0], [1]]), 2) == 0.0
    assert math.isnan(M.gini(np.array([[-1]]), 3))


def test_textbook_novelty_and_diversity():
    pop = np.array([0.5, 0.25, 0.125, 1.0])
    rec = np.array([[0, 1, 2], [3, -1, -1], [-1, -1, -1]])
    np.testing.assert_allclose(M.novelty(rec, pop, reduce="none"), [2.0, 0.0, np.nan])
    assert M.novelty(rec, pop) == 1.0
    feats = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    # user 0 pairs: cos(0,1) = 0, cos(0,2) = cos(1,2) = 1/sqrt2 -> ILD = 1 - sqrt2/3
    # user 1 has one item -> NaN; zero feature row: cosine 0
    rec2 = np.array([[0, 1, 2], [3, -1, -1], [0, 3, -1]])
    np.testing.assert_allclose(
        M.intra_list_diversity(rec2, feats, reduce="none"), [1 - math.sqrt(2) / 3, np.nan, 1.0]
    )
    sparse = M.intra_list_diversity(rec2, sp.csr_array(feats), reduce="none")
    np.testing.assert_allclose(sparse, [1 - math.sqrt(2) / 3, np.nan, 1.0])


def test_popularity_share():
    inter = sp.csr_array(np.array([[1, 0, 3], [0, 0, 1], [2, 0, 0], [1, 0, 0]]))
    np.testing.assert_allclose(M.popularity_share(inter), [0.75, 0.0, 0.5])


def test_novelty_rejects_zero_popularity_of_a_recommended_item():
    with pytest.raises(ValueError, match=r"item_popularity is 0 for recommended item 1 \(row 0\)"):
        M.novelty(np.array([[0, 1]]), np.array([0.5, 0.0]))
    # an unrecommended item may have p = 0
    assert M.novelty(np.array([[0]]), np.array([0.5, 0.0])) == 1.0


def test_textbook_serendipity():
    rec = np.array([[0, 1, 2, 3], [0, 1, -1, -1], [4, 5, 6, 7]])
    rel = sp.csr_array(np.array([[1, 1, 0, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0, 0, 0], [0] * 8]))
    base = np.array([0, 4])  # the popularity list shared by everybody
    # user 0: relevant & not baseline = {1, 3} -> 2/4; user 1: {1} -> 1/4; user 2: no relevant
    np.testing.assert_allclose(M.serendipity(rec, rel, base, reduce="none"), [0.5, 0.25, np.nan])
    np.testing.assert_allclose(
        M.serendipity(rec, rel, base, denominator="returned", reduce="none"), [0.5, 0.5, np.nan]
    )
    per_user_base = np.array([[1, 3], [-1, -1], [4, 5]])
    np.testing.assert_allclose(
        M.serendipity(rec, rel, per_user_base, reduce="none", empty="zero"), [0.25, 0.5, 0.0]
    )


@settings(deadline=None, max_examples=80)
@given(args=list_cases())
def test_list_metrics_match_reference(args):
    case, k = args
    rows, n_items = case.rows, case.n_items
    width = case.recommended.shape[1]
    assert M.catalog_coverage(case.recommended, n_items, k=k) == pytest.approx(
        ref.catalog_coverage(rows, n_items, k), abs=1e-12
    )
    g = M.gini(case.recommended, n_items, k=k)
    want = ref.gini(rows, n_items, k)
    assert (math.isnan(g) and math.isnan(want)) or g == pytest.approx(want, abs=1e-12)
    if len(rows) >= 2:
        length = width if k is None else k
        if length > 0:
            assert M.personalization(case.recommended, k=k) == pytest.approx(
                ref.personalization(rows, length), abs=1e-12
            )
    pop = np.linspace(0.05, 1.0, n_items)
    np.testing.assert_allclose(
        M.novelty(case.recommended, pop, k=k, reduce="none"),
        [ref.novelty(r, pop, k) for r in rows], atol=1e-12,
    )  # fmt: skip
    rng = np.random.default_rng(len(rows) * 100 + n_items)
    feats = rng.integers(-1, 2, size=(n_items, 3)).astype(np.float64)  # zero rows and ties
    np.testing.assert_allclose(
        M.intra_list_diversity(case.recommended, feats, k=k, reduce="none"),
        [ref.intra_list_diversity(r, feats.tolist(), k) for r in rows], atol=1e-12,
    )  # fmt: skip
    np.testing.assert_allclose(
        M.intra_list_diversity(case.recommended, sp.csr_array(feats), k=k, reduce="none"),
        [ref.intra_list_diversity(r, feats.tolist(), k) for r in rows], atol=1e-12,
    )  # fmt: skip


@settings(deadline=None, max_examples=60)
@given(case=ranking_cases(), data=st.data())
def test_serendipity_matches_reference(case: Case, data):
    n_items = case.n_items
    base = [data.draw(st.sets(st.integers(0, n_items - 1), max_size=4)) for _ in case.rows]
    width = max(len(b) for b in base)
    base_arr = np.full((len(base), width), -1, dtype=np.int64)
    for u, b in enumerate(base):
        base_arr[u, : len(b)] = sorted(b, reverse=True)
    got = M.serendipity(case.recommended, case.relevant, base_arr, k=case.k, reduce="none")
    want = [
        ref.serendipity(r, rel, b, case.k)
        for r, rel, b in zip(case.rows, case.rel, base, strict=True)
    ]
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_sampled_personalization_matches_reference_sampling_distribution(rng, monkeypatch):
    from tastebud.metrics import _checks

    rec, _ = random_problem(rng, 300, 40, 10, 1)
    exact = M.personalization(rec)
    assert exact == pytest.approx(ref.personalization(rec.tolist(), 10), abs=1e-12)
    sampled = M.personalization(rec, n_pairs=20_000, random_state=3)
    assert sampled == pytest.approx(exact, abs=0.01)
    assert sampled == M.personalization(rec, n_pairs=20_000, random_state=3)
    monkeypatch.setattr(_checks, "PARALLEL_MIN_WORK", 0)
    assert M.personalization(rec, n_pairs=20_000, random_state=3) == sampled
    assert ref.personalization_sampled(rec.tolist(), 10, 20_000, 3) == pytest.approx(
        exact, abs=0.01
    )


def test_parallel_beyond_kernels_equal_serial(rng, monkeypatch):
    from tastebud.metrics import _checks

    rec, rel = random_problem(rng, 500, 80, 12, 10)
    base = rng.permutation(80)[:10]
    monkeypatch.setattr(_checks, "PARALLEL_MIN_WORK", 0)
    par = M.serendipity(rec, rel, base, reduce="none")
    monkeypatch.setattr(_checks, "PARALLEL_MIN_WORK", 10**12)
    np.testing.assert_array_equal(par, M.serendipity(rec, rel, base, reduce="none"))


def test_beyond_validation_messages():
    with pytest.raises(ValueError, match="n_items must be an int >= 1"):
        M.catalog_coverage(np.array([[0]]), 0)
    with pytest.raises(ValueError, match=r"in \[-1, 3\)"):
        M.gini(np.array([[0, 3]]), 3)
    with pytest.raises(ValueError, match="at least 2 users"):
        M.personalization(np.array([[0, 1]]))
    with pytest.raises(ValueError, match="item_popularity must hold shares"):
        M.novelty(np.array([[0]]), np.array([1.5]))
    with pytest.raises(ValueError, match="item_features must be finite"):
        M.intra_list_diversity(np.array([[0, 1]]), np.array([[np.nan], [1.0]]))
    with pytest.raises(ValueError, match="baseline_recommended has 1 rows"):
        M.serendipity(np.array([[0], [1]]), sp.csr_array((2, 3)), np.array([[0]]))
    with pytest.raises(ValueError, match="baseline_recommended must not repeat"):
        M.serendipity(np.array([[0]]), sp.csr_array((1, 3)), np.array([1, 1]))
    with pytest.raises(TypeError, match=r"interactions must be a scipy\.sparse"):
        M.popularity_share(np.ones((2, 2)))


def test_popularity_share_smoothing():
    m = sp.csr_matrix(np.array([[1, 0, 0], [1, 1, 0]], dtype=np.float32))
    np.testing.assert_allclose(M.popularity_share(m), [1.0, 0.5, 0.0])
    np.testing.assert_allclose(M.popularity_share(m, smoothing=1.0), [3 / 3, 2 / 3, 1 / 3])
    with pytest.raises(ValueError, match="smoothing"):
        M.popularity_share(m, smoothing=-1.0)
