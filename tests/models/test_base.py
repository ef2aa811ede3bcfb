"""Save/load safety and the Recommendations object."""

import json

import numpy as np
import pytest

import tastebud
from tastebud import Popularity
from tastebud.models.base import _HEADER_KEY, FORMAT_VERSION, Recommendations
from tests.models.contract import small_data

_, TRAIN, _TEST = small_data()


def _rewrite(path, out, **changes):
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(arrays[_HEADER_KEY].tobytes())
    header.update(changes.pop("header", {}))
    arrays[_HEADER_KEY] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    arrays.update(changes)
    np.savez(out, **arrays)
    return out


def test_load_refuses_newer_format_other_class_and_junk(tmp_path):
    path = tmp_path / "pop.tbud"
    Popularity().fit(TRAIN).save(path)
    newer = _rewrite(path, tmp_path / "newer.npz", header={"format_version": FORMAT_VERSION + 1})
    with pytest.raises(ValueError, match="upgrade tastebud"):
        tastebud.load(newer)
    unknown = _rewrite(path, tmp_path / "unknown.npz", header={"class": "os.system"})
    with pytest.raises(ValueError, match="unknown model class"):
        tastebud.load(unknown)
    params = _rewrite(path, tmp_path / "params.npz", header={"params": {"evil": 1}})
    with pytest.raises(ValueError, match="parameters"):
        tastebud.load(params)
    bad_shape = _rewrite(path, tmp_path / "shape.npz", state__item_scores_=np.ones(3, np.float32))
    with pytest.raises(ValueError, match="item_scores_"):
        tastebud.load(bad_shape)
    junk = tmp_path / "junk.tbud"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a tastebud model"):
        tastebud.load(junk)
    plain = tmp_path / "plain.npz"
    np.savez(plain, x=np.ones(3))
    with pytest.raises(ValueError, match="no header"):
        tastebud.load(plain)


def test_load_never_unpickles(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, **{_HEADER_KEY: np.array([{"a": 1}], dtype=object)})
    with pytest.raises(ValueError):
        tastebud.load(path)


def test_class_specific_load_checks_class(tmp_path):
    from tastebud.models.base import Recommender

    class Other(Recommender):
        def _fit(self, interactions):
            pass

    path = tmp_path / "pop.tbud"
    Popularity().fit(TRAIN).save(path)
    with pytest.raises(TypeError, match="not a Other"):
        Other.load(path)


def test_unfitted_save_raises(tmp_path):
    with pytest.raises(tastebud.NotFittedError):
        Popularity().save(tmp_path / "x.tbud")


def test_params_roundtrip_and_errors():
    model = Popularity(weighting="weight")
    assert model.get_params() == {"weighting": "weight", "half_life": None}
    model.set_params(half_life=3.0)
    assert model.half_life == 3.0
    with pytest.raises(ValueError, match="no parameter"):
        model.set_params(bogus=1)
    assert "Popularity(" in repr(model)


def test_recommendations_padding_and_frame():
    from tastebud.data import Vocabulary

    items = Vocabulary(["a", "b", "c"], "item")
    recs = Recommendations.from_indices(
        np.array(["u"]), items, np.array([[2, -1]]), np.array([[1.0, -np.inf]], np.float32)
    )
    assert recs.ids.tolist() == [["c", ""]]
    assert recs.mask.tolist() == [[True, False]]
    frame = recs.to_frame()
    assert frame.to_dict("list") == {"query": ["u"], "rank": [1], "item": ["c"], "score": [1.0]}
    assert len(recs) == 1
    assert "Recommendations(n=1, k=2)" in repr(recs)


def test_recommend_for_inputs():
    model = Popularity().fit(TRAIN)
    items = TRAIN.items.ids_array
    as_dict = model.recommend_for({"a": list(items[:3])}, k=5)
    as_list = model.recommend_for([list(items[:3])], k=5)
    weighted = model.recommend_for({"a": {items[0]: 2.0, items[1]: 1.0, items[2]: 1.0}}, k=5)
    np.testing.assert_array_equal(as_dict.ids, as_list.ids)
    np.testing.assert_array_equal(as_dict.ids, weighted.ids)
    with pytest.raises(KeyError, match="unknown item"):
        model.recommend_for({"a": [10**9]}, k=5)
    ignored = model.recommend_for({"a": [10**9, items[0]]}, k=5, unknown_items="ignore")
    assert items[0] not in ignored.ids[0]
    with pytest.raises(ValueError, match="unknown_items"):
        model.recommend_for({"a": [items[0]]}, k=5, unknown_items="maybe")
    import scipy.sparse as sp

    with pytest.raises(ValueError, match="columns"):
        model.recommend_for(sp.csr_matrix((1, 3)), k=5)


# --------------------------------------------------------------------------- failed fits
def _other_items(inter):
    """The same interactions under other item ids (a refit that changes the vocabulary)."""
    from tastebud.data import Interactions

    coo = inter.matrix.tocoo()
    return Interactions.from_arrays(
        inter.users.ids(coo.row), inter.items.ids(coo.col) + 10_000, weights=coo.data
    )


def _rating_data():
    from tastebud.data import datasets

    return datasets.synthetic(n_users=100, n_items=80, n_interactions=2000, random_state=0).ratings


def _failing_refits():
    from tastebud import ALS, SVD, ItemKNN
    from tastebud._errors import FitError

    ratings = _rating_data()
    return [
        # (model, training data, bad parameters, expected error)
        pytest.param(
            lambda: ALS(factors=4, iterations=3, random_state=0, num_threads=1),
            TRAIN,
            {"iterations": -1},
            ValueError,
            id="ALS",
        ),
        pytest.param(
            lambda: ItemKNN(neighbors=20, num_threads=1),
            TRAIN,
            {"neighbors": 0},
            ValueError,
            id="ItemKNN",
        ),
        # SVD diverges after its factors are assigned: the failure comes late in _fit
        pytest.param(
            lambda: SVD(factors=4, epochs=5, random_state=0, num_threads=1),
            ratings,
            {"learning_rate": 50.0, "epochs": 30},
            FitError,
            id="SVD",
        ),
    ]


@pytest.mark.parametrize(("factory", "data", "bad", "error"), _failing_refits())
def test_failed_refit_keeps_previous_model(factory, data, bad, error):
    model = factory().fit(data)
    users = data.users.ids_array[:5]
    before = model.recommend(users, k=5)
    params = model.get_params()
    model.set_params(**bad)
    state = dict(model.__dict__)
    with pytest.raises(error):
        model.fit(_other_items(data))
    assert model.__dict__.keys() == state.keys()
    assert all(model.__dict__[name] is value for name, value in state.items())
    assert model.items_ == data.items
    model.set_params(**params)
    after = model.recommend(users, k=5)
    np.testing.assert_array_equal(after.ids, before.ids)
    np.testing.assert_array_equal(after.scores, before.scores)


@pytest.mark.parametrize(("factory", "data", "bad", "error"), _failing_refits())
def test_failed_first_fit_leaves_model_unfitted(factory, data, bad, error):
    model = factory().set_params(**bad)
    with pytest.raises(error):
        model.fit(data)
    assert not model.is_fitted
    assert not [name for name in vars(model) if name.endswith("_")]
    with pytest.raises(tastebud.NotFittedError):
        model.recommend(data.users.ids_array[:1], k=5)


def test_svd_failed_refit_keeps_predictions():
    from tastebud import SVD
    from tastebud._errors import FitError

    ratings = _rating_data()
    model = SVD(factors=4, epochs=5, random_state=0, num_threads=1).fit(ratings)
    users, items = ratings.users.ids_array[:10], ratings.items.ids_array[:10]
    before = model.predict(users, items)
    model.set_params(learning_rate=50.0, epochs=30)
    with pytest.raises(FitError):
        model.fit(ratings)
    np.testing.assert_array_equal(model.predict(users, items), before)


# --------------------------------------------------------------------------- saving params
def test_save_numpy_scalar_params(tmp_path):
    from tastebud import ALS, BPR

    for model, plain in [
        (
            ALS(factors=np.int64(4), regularization=np.float32(0.1), iterations=np.int32(3)),
            {"factors": 4, "regularization": float(np.float32(0.1)), "iterations": 3},
        ),
        (
            BPR(factors=np.int64(4), item_bias=np.bool_(False), iterations=np.int64(2)),
            {"factors": 4, "item_bias": False, "iterations": 2},
        ),
    ]:
        model.set_params(random_state=np.int64(0), num_threads=1).fit(TRAIN)
        path = tmp_path / f"{type(model).__name__}.tbud"
        model.save(path)
        loaded = tastebud.load(path)
        params = loaded.get_params()
        for name, value in {**plain, "random_state": 0}.items():
            assert params[name] == value, name
            assert type(params[name]) is type(value), name
        users = TRAIN.users.ids_array[:5]
        want, got = model.recommend(users, k=5), loaded.recommend(users, k=5)
        np.testing.assert_array_equal(got.ids, want.ids)
        np.testing.assert_array_equal(got.scores, want.scores)


def test_save_generator_random_state_warns(tmp_path):
    from tastebud import SVD

    ratings = _rating_data()
    model = SVD(factors=4, epochs=3, random_state=np.random.default_rng(0)).fit(ratings)
    path = tmp_path / "svd.tbud"
    with pytest.warns(UserWarning, match="Generator.*not reproduce"):
        model.save(path)
    loaded = tastebud.load(path)
    assert loaded.random_state is None
    users = ratings.users.ids_array[:5]
    np.testing.assert_array_equal(loaded.recommend(users, k=5).ids, model.recommend(users, k=5).ids)
