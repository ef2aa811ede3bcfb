import numpy as np
import pytest

from tastebud import Popularity, metrics
from tastebud.data import Interactions, split
from tastebud.evaluation import _holm, compare, cross_validate, evaluate, paired_randomization_test
from tastebud.models.base import Recommender
from tests.models.contract import small_data

DATA, TRAIN, TEST = small_data()


class Oracle(Recommender):
    """Scores each user's test items highest: a model that must beat Popularity."""

    def __init__(self, test: object = None) -> None:
        self.test = test

    def _fit(self, interactions):
        pass

    def _score_block(self, user_indices, rows):
        return TEST.matrix[user_indices].toarray() + 1e-3 * np.arange(TEST.n_items)[::-1]


def test_evaluate_matches_metric_functions():
    model = Popularity().fit(TRAIN)
    report = evaluate(model, TRAIN, TEST, k=10, verbose=False)
    users = np.flatnonzero(TEST.user_counts() > 0)
    recs = model.recommend_indices(users, 10)[0]
    rel = TEST.matrix[users]
    assert report["precision"] == pytest.approx(metrics.precision_at_k(recs, rel, k=10))
    assert report["ndcg"] == pytest.approx(metrics.ndcg_at_k(recs, rel, k=10))
    assert report["coverage"] == pytest.approx(metrics.catalog_coverage(recs, TEST.n_items))
    assert report.per_user["recall"].shape == (users.size,)
    assert np.isnan(report.fit_seconds)  # came fitted
    assert "precision@10" in repr(report)


def test_evaluate_fits_unfitted_model_and_times_it():
    report = evaluate(Popularity(), TRAIN, TEST, verbose=False, metrics=("ndcg", "novelty", "gini"))
    assert report.fit_seconds >= 0
    assert set(report.means) == {"ndcg", "novelty", "gini"}


def test_compare_flags_a_real_difference_and_not_noise():
    result = compare({"pop": Popularity(), "oracle": Oracle()}, TRAIN, TEST, verbose=False)
    test = result.tests[("oracle", "ndcg")]
    assert test["difference"] > 0.3
    assert test["significant"]
    same = compare({"a": Popularity(), "b": Popularity()}, TRAIN, TEST, verbose=False)
    assert not same.tests[("b", "ndcg")]["significant"]
    assert "oracle" in repr(result)
    assert list(result.to_frame().index) == ["pop", "oracle"]


def test_cross_validate_ranking():
    scores = cross_validate(Popularity(), DATA.interactions, folds=3, verbose=False)
    assert scores["ndcg"].shape == (3,)
    assert np.all((scores["ndcg"] > 0) & (scores["ndcg"] < 1))


def test_randomization_test_and_holm():
    rng = np.random.default_rng(0)
    a = rng.normal(size=500)
    assert paired_randomization_test(a, a) == 1.0
    assert paired_randomization_test(a + 1.0, a) < 0.01
    np.testing.assert_allclose(_holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])


def test_bad_input():
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate(Popularity(), TRAIN, TEST, metrics=("bogus",), verbose=False)
    with pytest.raises(TypeError, match="Interactions"):
        evaluate(Popularity(), TRAIN.matrix, TEST, verbose=False)
    other = Interactions.from_arrays([0, 1], ["x", "y"])
    with pytest.raises(ValueError, match="item vocabulary"):
        evaluate(Popularity(), TRAIN, other, verbose=False)
    with pytest.raises(TypeError, match="predict"):
        evaluate(Popularity(), TRAIN, TEST, metrics=("rmse",), verbose=False)
    with pytest.raises(ValueError, match="at least one"):
        compare({}, TRAIN, TEST)
    tr, te = split.random_holdout(DATA.interactions, random_state=1)
    assert evaluate(Popularity(), tr, te, verbose=False)["precision"] > 0


class _FitCounter(Popularity):
    fits = 0

    def _fit(self, interactions):
        type(self).fits += 1
        super()._fit(interactions)


@pytest.mark.parametrize("k", [0, -1, TEST.n_items + 1, 2.5, True])
def test_bad_k_is_refused_before_fitting(k):
    _FitCounter.fits = 0
    with pytest.raises(ValueError, match="k must be"):
        evaluate(_FitCounter(), TRAIN, TEST, k=k, verbose=False)
    assert _FitCounter.fits == 0


def test_negative_test_weights_are_refused_before_fitting():
    arr = TEST.to_arrays()
    signed = Interactions.from_arrays(
        arr["user"], arr["item"], np.where(np.arange(arr["user"].size) % 2, 1.0, -1.0),
        user_ids=TEST.users, item_ids=TEST.items, allow_negative=True,
    )  # fmt: skip
    _FitCounter.fits = 0
    with pytest.raises(ValueError, match="negative weights"):
        evaluate(_FitCounter(), TRAIN, signed, verbose=False)
    assert _FitCounter.fits == 0


def test_novelty_is_defined_for_items_new_in_test():
    """Items without training interactions get the smoothed share (n_users + 1)^-1."""
    arr = TRAIN.to_arrays()
    newest = TEST.items.ids(TEST.matrix.indices[:1])[0]  # an item some test user has
    keep = arr["item"] != newest
    train = Interactions.from_arrays(
        arr["user"][keep], arr["item"][keep], user_ids=TRAIN.users, item_ids=TRAIN.items
    )
    model = Oracle().fit(train)  # recommends test items, whatever their popularity
    report = evaluate(model, train, TEST, k=10, verbose=False, metrics=("novelty",))
    users = np.flatnonzero(TEST.user_counts() > 0)
    recs = model.recommend_indices(users, 10)[0]
    p = (np.bincount(train.matrix.indices, minlength=train.n_items) + 1) / (train.n_users + 1)
    expected = np.mean([np.mean(-np.log2(p[r[r >= 0]])) for r in recs])
    assert report["novelty"] == pytest.approx(expected)
