"""ContentBased: contract, agreement with the textbook recipe, cold start, new items."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import tastebud
from tastebud import ContentBased
from tastebud.data import Features, Interactions
from tests.models.contract import CONTRACT_CHECKS, run_check, small_data
from tests.reference.search_reference import content_scores_reference

DATA, TRAIN, TEST = small_data()


@pytest.mark.parametrize("check", CONTRACT_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("popularity_weight", [0.0, 2.0])
def test_contract(check, popularity_weight, tmp_path):
    run_check(
        check,
        lambda: ContentBased(
            popularity_weight=popularity_weight, num_threads=1, item_features=DATA.item_features
        ),
        TRAIN,
        tmp_path,
    )


@st.composite
def content_problems(draw):
    n_users = draw(st.integers(1, 6))
    n_items = draw(st.integers(2, 15))
    n_feats = draw(st.integers(1, 6))
    feats = draw(arrays(np.float32, (n_items, n_feats), elements=st.sampled_from([0.0, 1.0, 3.0])))
    w = draw(arrays(np.float32, (n_users, n_items), elements=st.sampled_from([0.0, 1.0, 4.0, 5.0])))
    w[:, 0] = np.where(w[:, 0] == 0, 1.0, w[:, 0])  # every user has an interaction
    return feats, w


@settings(max_examples=60, deadline=None)
@given(
    content_problems(),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.sampled_from([0.0, 1.5]),
)
def test_scores_match_textbook_recipe(problem, idf, sublinear_tf, centering, popularity_weight):
    feats, w = problem
    n_users, n_items = w.shape
    inter = Interactions.from_sparse(sp.csr_matrix(w))
    features = Features(feats, np.arange(n_items), [f"f{j}" for j in range(feats.shape[1])])
    model = ContentBased(
        idf=idf,
        sublinear_tf=sublinear_tf,
        centering=centering,
        popularity_weight=popularity_weight,
        num_threads=1,
    ).fit(inter, item_features=features)
    counts = (w != 0).sum(axis=0)
    ref = content_scores_reference(
        feats,
        w,
        idf=idf,
        sublinear_tf=sublinear_tf,
        centering=centering,
        popularity_weight=popularity_weight,
        item_counts=counts,
    )
    users = np.arange(n_users)
    pairs = model.score(np.repeat(users, n_items), np.tile(np.arange(n_items), n_users))
    np.testing.assert_allclose(pairs.reshape(n_users, n_items), ref, rtol=1e-4, atol=1e-5)
    recs = model.recommend(users, k=n_items, exclude_seen=False)
    np.testing.assert_allclose(
        recs.scores, np.take_along_axis(ref, recs.indices, 1), rtol=1e-4, atol=1e-5
    )
    assert (np.diff(recs.scores, axis=1) <= 1e-6).all()


def _catalog():
    # Items 0-2 are "space", 3-4 "romance"; item 5 (space) and 6 (romance) have no interactions.
    ids = ["a", "b", "c", "d", "e", "new_space", "new_romance"]
    genres = ["space", "space", "space|robots", "romance", "romance", "space|robots", "romance"]
    features = Features.from_multilabel(ids, genres, sep="|")
    inter = Interactions.from_arrays(
        ["u1", "u2", "u2", "u3", "u3"],
        ["c", "d", "e", "a", "b"],
        item_ids=ids,
    )
    return inter, features


def test_cold_start_items_are_recommended():
    inter, features = _catalog()
    model = ContentBased(num_threads=1).fit(inter, item_features=features)
    recs = model.recommend(["u1", "u2"], k=2)
    assert recs.ids[0, 0] == "new_space"  # space + robots like c, never interacted with
    assert "new_romance" in recs.ids[1].tolist()
    # With a popularity prior, cold items rank by content among themselves.
    prior = ContentBased(popularity_weight=1.0, num_threads=1).fit(inter, item_features=features)
    cold = prior.recommend(["u1"], k=2, items=["new_space", "new_romance"])
    assert cold.ids[0].tolist() == ["new_space", "new_romance"]


def test_similar_items_by_profile():
    inter, features = _catalog()
    model = ContentBased(num_threads=1).fit(inter, item_features=features)
    sim = model.similar_items(["c", "d"], k=2)
    assert sim.ids[0, 0] == "new_space"  # identical features
    np.testing.assert_allclose(sim.scores[0, 0], 1.0, rtol=1e-6)
    assert "c" not in sim.ids[0].tolist()
    assert set(sim.ids[1].tolist()) == {"e", "new_romance"}


def test_score_items_for_brand_new_items():
    inter, features = _catalog()
    for weight in (0.0, 2.0):
        model = ContentBased(popularity_weight=weight, num_threads=1).fit(
            inter, item_features=features
        )
        new = Features.from_multilabel(
            ["x", "y", "z"], ["space|robots", "romance|unknown-genre", ""], sep="|"
        )
        scores = model.score_items(["u1", "u2"], new)
        assert scores.shape == (2, 3)
        assert scores.dtype == np.float32
        # x looks exactly like new_space (no interactions): same score as the in-model item.
        np.testing.assert_allclose(
            scores[:, 0], model.score(["u1", "u2"], ["new_space", "new_space"]), rtol=1e-5
        )
        # an unknown feature is ignored; an item without features scores 0
        np.testing.assert_allclose(
            scores[:, 1], model.score(["u1", "u2"], ["new_romance", "new_romance"]), rtol=1e-5
        )
        np.testing.assert_array_equal(scores[:, 2], 0.0)


def test_centering_uses_ratings():
    features = Features.from_multilabel([0, 1, 2, 3], ["x", "y", "x", "y"])
    ratings = Interactions.from_arrays(
        [0, 0, 1], [0, 1, 0], weights=[5.0, 1.0, 5.0], item_ids=[0, 1, 2, 3]
    )
    centred = ContentBased(centering=True, num_threads=1).fit(ratings, item_features=features)
    # user 0 loved x and disliked y: y-like item 3 scores below 0, x-like item 2 above.
    s = centred.score([0, 0], [2, 3])
    assert s[0] > 0 > s[1]
    plain = ContentBased(num_threads=1).fit(ratings, item_features=features)
    assert plain.score([0], [3])[0] > 0
    # user 1 has a single rating: centring would empty it, so raw weights are kept.
    np.testing.assert_allclose(centred.score([1], [2]), [1.0], rtol=1e-6)


def test_features_missing_for_some_items_and_constructor_data(tmp_path):
    inter, features = _catalog()
    partial = Features.from_multilabel(["a", "c", "zzz"], ["space", "space", "other"])
    model = ContentBased(item_features=partial, num_threads=1).fit(inter)
    assert model.score(["u1"], ["d"])[0] == 0.0  # no features: cosine 0
    assert "item_features" not in model.get_params()
    assert "item_features" not in repr(model)
    # fit(item_features=...) overrides the constructor's data
    model.fit(inter, item_features=features)
    assert model.score(["u2"], ["new_romance"])[0] > 0.9
    path = tmp_path / "content.tbud"
    model.save(path)
    loaded = tastebud.load(path)
    assert loaded.item_features is None
    np.testing.assert_array_equal(loaded.feature_names_, model.feature_names_)
    np.testing.assert_allclose(
        loaded.score_items(["u1"], features), model.score_items(["u1"], features)
    )
    with pytest.raises(ValueError, match="item_features"):
        model.set_params(item_features=features)


@pytest.mark.parametrize(
    ("kwargs", "fit_kwargs", "error", "match"),
    [
        ({}, {}, ValueError, "needs item features"),
        ({}, {"item_features": "genres"}, TypeError, "tastebud.Features"),
        ({"popularity_weight": -1.0}, None, ValueError, "popularity_weight"),
        ({"popularity_weight": "big"}, None, TypeError, "popularity_weight"),
        ({"idf": 1}, None, TypeError, "idf must be a bool"),
        ({"num_threads": -2}, None, ValueError, "num_threads"),
    ],
)
def test_bad_parameters(kwargs, fit_kwargs, error, match):
    inter, features = _catalog()
    model = ContentBased(**kwargs)
    with pytest.raises(error, match=match):
        model.fit(inter, **({"item_features": features} if fit_kwargs is None else fit_kwargs))
    assert not model.is_fitted


def test_score_items_rejects_non_features():
    inter, features = _catalog()
    model = ContentBased(num_threads=1).fit(inter, item_features=features)
    with pytest.raises(TypeError, match="Features"):
        model.score_items(["u1"], np.ones((1, 3)))
    with pytest.raises(KeyError, match="unknown user"):
        model.score_items(["nobody"], features)


def test_planted_structure_beats_random():
    from tastebud.evaluation import evaluate

    model = ContentBased(num_threads=1, item_features=DATA.item_features)
    report = evaluate(model, TRAIN, TEST, 10, metrics=("precision",), verbose=False)
    random_precision = TEST.nnz / (TEST.n_users * TEST.n_items)  # expected for random lists
    assert report["precision"] > 2 * random_precision, (report, random_precision)
