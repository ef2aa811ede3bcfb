import numpy as np
import pytest

from tastebud import Popularity
from tastebud.data import Interactions
from tests.models.contract import CONTRACT_CHECKS, run_check, small_data

_, TRAIN, TEST = small_data()


@pytest.mark.parametrize("check", CONTRACT_CHECKS, ids=lambda c: c.__name__)
def test_contract(check, tmp_path):
    run_check(check, lambda: Popularity(), TRAIN, tmp_path)


def test_counts_distinct_users_and_weights():
    inter = Interactions.from_arrays(
        ["a", "a", "b", "c"], ["x", "y", "y", "z"], weights=[5.0, 1.0, 1.0, 1.0]
    )
    by_users = Popularity().fit(inter)
    np.testing.assert_array_equal(by_users.item_scores_, [1, 2, 1])
    by_weight = Popularity(weighting="weight").fit(inter)
    np.testing.assert_array_equal(by_weight.item_scores_, [5, 2, 1])
    recs = by_users.recommend("c", k=2)
    assert recs.ids.tolist() == [["y", "x"]]  # z seen; tie x/z broken by lower index


def test_recency_half_life():
    inter = Interactions.from_arrays([0, 1, 2, 3], [0, 0, 1, 1], timestamps=[0, 0, 100, 100])
    model = Popularity(half_life=50).fit(inter)
    np.testing.assert_allclose(model.item_scores_, [0.5, 2.0], rtol=1e-6)
    with pytest.raises(ValueError, match="timestamps"):
        Popularity(half_life=10).fit(Interactions.from_arrays([0], [0]))
    with pytest.raises(ValueError, match="half_life"):
        Popularity(half_life=-1).fit(inter)
    with pytest.raises(ValueError, match="weighting"):
        Popularity(weighting="x").fit(inter)


def test_no_item_similarity():
    model = Popularity().fit(TRAIN)
    with pytest.raises(TypeError, match="similarity"):
        model.similar_items(TRAIN.items.ids_array[:1])


def test_half_life_accepts_numpy_reals():
    inter = Interactions.from_arrays([0, 1, 2, 3], [0, 0, 1, 1], timestamps=[0, 0, 100, 100])
    want = Popularity(half_life=50).fit(inter).item_scores_
    for half_life in (np.float32(50), np.float64(50), np.int64(50)):
        got = Popularity(half_life=half_life).fit(inter).item_scores_
        np.testing.assert_allclose(got, want, rtol=1e-6)
    for bad in (True, np.bool_(True), np.float32(0), np.float64("nan"), "50"):
        with pytest.raises(ValueError, match="half_life"):
            Popularity(half_life=bad).fit(inter)
