import numpy as np
import pandas as pd
import pytest

pytest.importorskip("distributed")

from tastebud import Popularity
from tastebud import metrics as M
from tastebud._errors import NotFittedError
from tastebud.data import Interactions, datasets, split
from tastebud.distributed import evaluate, model_from_state, model_state, recommend_all
from tastebud.distributed._state import _build, with_partition_rows
from tastebud.evaluation import evaluate as evaluate_single
from tests.distributed._toy import ToyCooccurrence, ToyFactors


def _string_ids(inter: Interactions) -> Interactions:
    """The same interactions with string user and item ids (to exercise non-int columns)."""
    arrays = inter.to_arrays()
    return Interactions.from_arrays(
        np.char.add("u", arrays["user"].astype(str)),
        np.char.add("i", arrays["item"].astype(str)),
        weights=arrays["weight"],
    )


_DATA = datasets.synthetic(n_users=240, n_items=150, n_interactions=6000, random_state=3)
TRAIN, TEST = split.random_holdout(_DATA.interactions, random_state=3)
STRING_DATA = _string_ids(_DATA.interactions)


def _expected(model, users, k, **kwargs) -> pd.DataFrame:
    frame = model.recommend(users, k, **kwargs).to_frame().rename(columns={"query": "user"})
    return frame.reset_index(drop=True)


def _assert_frames_equal(got: pd.DataFrame, want: pd.DataFrame) -> None:
    got = got.reset_index(drop=True)
    assert list(got.columns) == ["user", "rank", "item", "score"]
    np.testing.assert_array_equal(got["user"].to_numpy(), want["user"].to_numpy())
    np.testing.assert_array_equal(got["rank"].to_numpy(), want["rank"].to_numpy())
    np.testing.assert_array_equal(got["item"].to_numpy(), want["item"].to_numpy())
    np.testing.assert_array_equal(got["score"].to_numpy(), want["score"].to_numpy())


@pytest.mark.parametrize("factory", [ToyFactors, ToyCooccurrence, Popularity])
def test_recommend_all_equals_recommend_for_every_user(client, factory):
    model = factory().fit(STRING_DATA)
    got = recommend_all(model, k=7, client=client, partition_size=37)
    assert got.npartitions == -(-STRING_DATA.n_users // 37)
    _assert_frames_equal(
        client.compute(got).result(), _expected(model, STRING_DATA.users.ids_array, 7)
    )


def test_recommend_all_options_and_subset(client):
    model = ToyFactors().fit(TRAIN)
    users = TRAIN.users.ids_array[::-3]  # an arbitrary order is kept
    options = {
        "exclude_seen": False,
        "items": TRAIN.items.ids_array[:40],
        "exclude": TRAIN.items.ids_array[:3],
    }
    got = recommend_all(model, users, k=39, client=client, partition_size=25, **options)
    _assert_frames_equal(client.compute(got).result(), _expected(model, users, 39, **options))


def test_recommend_all_padding_is_dropped(client):
    # A user who has seen all but two items gets a list of two, like to_frame().
    inter = Interactions.from_arrays([0, 0, 0, 1], [0, 1, 2, 3])
    model = ToyFactors(factors=2).fit(inter)
    got = client.compute(recommend_all(model, k=4, client=client)).result()
    _assert_frames_equal(got, _expected(model, [0, 1], 4))
    assert (got["user"] == 0).sum() == 1


def test_recommend_all_to_parquet(client, tmp_path):
    model = ToyFactors().fit(STRING_DATA)
    out = recommend_all(model, k=5, client=client, partition_size=100, path=tmp_path / "recs")
    assert out == str(tmp_path / "recs")
    read = pd.read_parquet(out).sort_values(["user", "rank"], kind="stable")
    want = _expected(model, STRING_DATA.users.ids_array, 5).sort_values(
        ["user", "rank"], kind="stable"
    )
    _assert_frames_equal(read, want)


def test_recommend_all_by_scheduler_address(client):
    model = ToyFactors().fit(TRAIN)
    got = recommend_all(model, k=3, client=client.scheduler.address, partition_size=90)
    _assert_frames_equal(client.compute(got).result(), _expected(model, TRAIN.users.ids_array, 3))


def test_recommend_all_without_client_starts_a_local_cluster():
    inter = Interactions.from_arrays([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 3, 0])
    model = ToyFactors(factors=2).fit(inter)
    got = recommend_all(model, k=2, partition_size=2)
    assert got.npartitions == 2
    # The cluster is gone; the result was computed during the call and lives here.
    _assert_frames_equal(got.compute(), _expected(model, [0, 1, 2], 2))


def test_recommend_all_no_users(client):
    model = ToyFactors().fit(TRAIN)
    got = client.compute(recommend_all(model, [], k=3, client=client)).result()
    assert list(got.columns) == ["user", "rank", "item", "score"]
    assert len(got) == 0


def test_recommend_all_bad_input():
    model = ToyFactors().fit(TRAIN)
    with pytest.raises(NotFittedError):
        recommend_all(ToyFactors(), k=3, client="unused")
    with pytest.raises(TypeError, match="Recommender"):
        recommend_all(object(), k=3)
    with pytest.raises(ValueError, match="partition_size"):
        recommend_all(model, k=3, partition_size=0)
    with pytest.raises(ValueError, match="num_threads"):
        recommend_all(model, k=3, num_threads=-1)
    with pytest.raises(ValueError, match="k must be"):
        recommend_all(model, k=10_000)
    with pytest.raises(KeyError):
        recommend_all(model, ["nobody"], k=3)
    with pytest.raises(TypeError, match="client must be"):
        recommend_all(model, k=3, client=42)


def test_model_state_roundtrip_without_cluster():
    model = ToyFactors().fit(STRING_DATA)
    state = model_state(model)
    assert set(state["arrays"]) == {
        "vocab__users",
        "vocab__items",
        "state__user_factors_",
        "state__item_factors_",
        "state__item_bias_",
    }
    rebuilt = model_from_state(state)
    assert model_from_state(state) is rebuilt  # cached per process by the snapshot token
    assert rebuilt.get_params() == model.get_params()
    with pytest.raises(RuntimeError, match="seen_ is not shipped"):
        rebuilt.seen_[0]
    uidx = np.array([7, 3, 19, 3])
    local = with_partition_rows(rebuilt, uidx, model.seen_[uidx])
    a = model.recommend_indices(uidx, 5)
    b = local.recommend_indices(uidx, 5)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    users, items = model.users_.ids(uidx), model.items_.ids(np.array([1, 2, 3, 4]))
    np.testing.assert_array_equal(local.predict(users, items), model.predict(users, items))
    with pytest.raises(RuntimeError, match="only the rows of the task's own users"):
        local.recommend_indices([4], 5)
    assert rebuilt.seen_.shape == model.seen_.shape  # the cached model is left untouched


def test_model_state_unknown_class_is_refused():
    state = model_state(Popularity().fit(TRAIN))
    state["header"] = state["header"].replace('"Popularity"', '"NoSuchModel"')
    with pytest.raises(ValueError, match="not available on this worker"):
        _build(state)


ALL_METRICS = (
    "precision",
    "recall",
    "f1",
    "ndcg",
    "map",
    "mrr",
    "hit_rate",
    "coverage",
    "novelty",
    "gini",
    "mae",
    "rmse",
    "mse",
)


@pytest.mark.parametrize("partition_size", [1000, 31])
def test_evaluate_equals_single_process(client, partition_size):
    model = ToyFactors().fit(TRAIN)
    want = evaluate_single(model, TRAIN, TEST, 10, metrics=ALL_METRICS, verbose=False)
    got = evaluate(
        model, TRAIN, TEST, 10, metrics=ALL_METRICS, client=client,
        partition_size=partition_size, per_user=True,
    )  # fmt: skip
    assert list(got.means) == list(want.means)
    for metric, value in want.means.items():
        # Sums of partition sums vs one pairwise sum: equal up to rounding.
        assert got.means[metric] == pytest.approx(value, rel=1e-12, abs=1e-15), metric
    for metric in ("coverage", "gini"):
        assert got.means[metric] == want.means[metric]
    np.testing.assert_array_equal(got.users, want.users)
    for metric, values in want.per_user.items():
        np.testing.assert_array_equal(got.per_user[metric], values)


def test_evaluate_personalization_matches_metric(client):
    # (evaluation.evaluate itself is checked elsewhere; compare with the metric directly.)
    model = ToyFactors().fit(TRAIN)
    got = evaluate(model, TRAIN, TEST, 5, metrics=("personalization",), client=client)
    users = model.users_.index(TEST.users.ids(np.flatnonzero(TEST.user_counts() > 0)))
    recommended = model.recommend_indices(users, 5)[0]
    assert got.means["personalization"] == pytest.approx(M.personalization(recommended), rel=1e-12)
    assert got.per_user == {}


def test_evaluate_errors(client):
    model = ToyFactors().fit(TRAIN)
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate(model, TRAIN, TEST, metrics=("nope",), client=client)
    with pytest.raises(TypeError, match="predict"):
        evaluate(Popularity().fit(TRAIN), TRAIN, TEST, metrics=("mae",), client=client)
    with pytest.raises(TypeError, match="Interactions"):
        evaluate(model, TRAIN.matrix, TEST, client=client)


def test_recommend_all_hybrid_equals_recommend(client):
    """Hybrid's derived state (entity vectors) is rebuilt on the workers."""
    from tastebud import Hybrid

    model = Hybrid(factors=8, epochs=3, random_state=0, num_threads=1)
    model.fit(TRAIN, show_progress=False)
    got = recommend_all(model, k=5, client=client, partition_size=50)
    _assert_frames_equal(client.compute(got).result(), _expected(model, TRAIN.users.ids_array, 5))


def test_models_reading_other_users_rows_are_refused():
    from tastebud import Blend, ItemKNN, KNNRating, UserKNN

    ratings = datasets.synthetic(60, 40, 900, random_state=1).ratings
    for model in (
        UserKNN(neighbors=5).fit(TRAIN),
        KNNRating().fit(ratings),
        Blend([Popularity(), ItemKNN()]).fit(TRAIN),
    ):
        with pytest.raises(TypeError, match="other users' training rows"):
            model_state(model)
