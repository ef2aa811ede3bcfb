import numpy as np
import pytest
import scipy.sparse as sp

from tastebud import BPR, Popularity
from tastebud.data import Interactions, datasets, split
from tastebud.evaluation import evaluate
from tests.models.contract import CONTRACT_CHECKS, run_check, small_data

DATA, TRAIN, TEST = small_data()
# Planted structure with a clearer signal (noise 0.5) for the AUC checks.
PLANTED = datasets.synthetic(500, 200, 15_000, noise=0.5, random_state=1)
PTRAIN, PTEST = split.random_holdout(PLANTED.interactions, random_state=1)


def fast(**kw):
    params = {"factors": 16, "iterations": 30, "random_state": 0, "num_threads": 1}
    params.update(kw)
    return BPR(**params)


@pytest.mark.parametrize("check", CONTRACT_CHECKS, ids=lambda c: c.__name__)
def test_contract(check, tmp_path):
    run_check(check, fast, TRAIN, tmp_path)


def mean_auc(model, train, test):
    """Per-user AUC of held-out items against items the user never interacted with."""
    scores = model.user_factors_ @ model.item_factors_.T + model.item_bias_
    seen, held = train.matrix.toarray() > 0, test.matrix.toarray() > 0
    aucs = []
    for u in np.flatnonzero(held.any(axis=1)):
        pos, neg = scores[u, held[u]], scores[u, ~(held[u] | seen[u])]
        if neg.size:
            aucs.append((pos[:, None] > neg[None, :]).mean())
    return float(np.mean(aucs))


def test_auc_on_planted_data():
    model = fast(iterations=40).fit(PTRAIN)
    assert mean_auc(model, PTRAIN, PTEST) > 0.9
    assert model.accuracy_history_[-1] > model.accuracy_history_[0]


def test_beats_popularity_on_planted_data():
    data = datasets.synthetic(600, 300, 24_000, random_state=3)
    train, test = split.random_holdout(data.interactions, random_state=3)
    bpr = evaluate(fast(iterations=40), train, test, 10, verbose=False)
    pop = evaluate(Popularity(), train, test, 10, verbose=False)
    assert bpr["ndcg"] > 1.3 * pop["ndcg"], (bpr, pop)


def test_reproducible_with_one_thread():
    a, b = fast().fit(TRAIN), fast().fit(TRAIN)
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)
    np.testing.assert_array_equal(a.item_factors_, b.item_factors_)
    np.testing.assert_array_equal(a.item_bias_, b.item_bias_)
    c = fast(random_state=1).fit(TRAIN)
    assert not np.array_equal(a.item_factors_, c.item_factors_)


def test_small_catalogue_runs_one_thread():
    # 200 items x 16 factors is far below 1 MiB of item factors: Hogwild threads would only
    # fight over the same cache lines, so the epoch uses one thread and equals the serial fit
    a = fast(num_threads=2, iterations=40).fit(PTRAIN)
    b = fast(num_threads=1, iterations=40).fit(PTRAIN)
    np.testing.assert_array_equal(a.item_factors_, b.item_factors_)
    assert mean_auc(a, PTRAIN, PTEST) > 0.9


def test_multithreaded_hogwild_learns():
    # 4,096 items x 64 factors = 1 MiB per thread: two Hogwild threads, each drawing from its
    # own block of users; planted groups of users who like 64 items of their group's block
    rng = np.random.default_rng(0)
    n_users, n_items, groups = 400, 8192, 8
    rows, cols = [], []
    for u in range(n_users):
        g = u % groups
        items = rng.choice(64, 30, replace=False) + g * (n_items // groups)
        rows += [u] * 30
        cols += list(items)
    m = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_items))
    inter = Interactions.from_sparse(m)
    train, test = split.random_holdout(inter, random_state=0)
    two = BPR(factors=64, iterations=30, learning_rate=0.1, random_state=0, num_threads=2)
    one = BPR(factors=64, iterations=30, learning_rate=0.1, random_state=0, num_threads=1)
    two.fit(train)
    one.fit(train)
    assert not np.array_equal(two.item_factors_, one.item_factors_)  # the threaded path ran
    report = evaluate(two, train, test, k=10, metrics=("ndcg",), verbose=False)
    popular = evaluate(Popularity().fit(train), train, test, k=10, metrics=("ndcg",), verbose=False)
    assert report.means["ndcg"] > popular.means["ndcg"] + 0.05


def test_fold_in_is_deterministic_and_close_to_training():
    model = fast(iterations=40).fit(PTRAIN)
    rows = PTRAIN.matrix[:20]
    a = model._user_embeddings(None, rows)
    b = model._user_embeddings(None, rows)
    np.testing.assert_array_equal(a, b)
    # fold-in ranks a training user's held-out items about as well as the trained vector
    scores = a @ model.item_factors_.T + model.item_bias_
    trained = model.user_factors_[:20] @ model.item_factors_.T + model.item_bias_
    held, seen = PTEST.matrix[:20].toarray() > 0, rows.toarray() > 0
    for s, name in ((scores, "fold-in"), (trained, "trained")):
        aucs = [
            (s[u, held[u]][:, None] > s[u, ~(held[u] | seen[u])][None, :]).mean()
            for u in range(20)
            if held[u].any() and not (held[u] | seen[u]).all()
        ]
        assert np.mean(aucs) > 0.85, name


def test_no_item_bias_and_no_verification():
    model = fast(item_bias=False, verify_negative=False).fit(PTRAIN)
    np.testing.assert_array_equal(model.item_bias_, 0.0)
    assert model._item_bias() is None
    assert mean_auc(model, PTRAIN, PTEST) > 0.85


def test_users_without_interactions_get_popularity():
    inter = Interactions.from_arrays(
        [0, 0, 1, 1, 2, 2, 3], [0, 1, 1, 2, 1, 3, 1], user_ids=[0, 1, 2, 3, 4]
    )
    model = fast(factors=2, iterations=3).fit(inter)
    np.testing.assert_array_equal(model.user_factors_[4], 0.0)
    assert model.recommend(4, k=4).ids[0, 0] == 1


def test_callback():
    seen = []
    fast(iterations=3).fit(TRAIN, callback=lambda e, s, acc: seen.append((e, 0 <= acc <= 1)))
    assert seen == [(0, True), (1, True), (2, True)]


def test_similar_users():
    model = fast().fit(TRAIN)
    sims = model.similar_users(TRAIN.users.ids_array[:2], k=3)
    assert sims.ids.shape == (2, 3)


def test_bad_input():
    with pytest.raises(ValueError, match="factors"):
        BPR(factors=0).fit(TRAIN)
    with pytest.raises(ValueError, match="learning_rate"):
        BPR(learning_rate=0).fit(TRAIN)
    with pytest.raises(ValueError, match="regularization"):
        BPR(regularization=-1).fit(TRAIN)
    with pytest.raises(TypeError, match="item_bias"):
        BPR(item_bias="yes").fit(TRAIN)
    with pytest.raises(ValueError, match="empty"):
        BPR().fit(sp.csr_matrix((4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"negative|>= 0"):
        BPR().fit(sp.csr_matrix(np.array([[1.0, -1.0]], np.float32)))
    with pytest.raises(ValueError, match="NaN"):
        BPR().fit(sp.csr_matrix(np.array([[1.0, np.nan]], np.float32)))


def test_fold_in_does_not_depend_on_batch_position():
    """A new user's stream is seeded by its items, not by its row in the call."""
    model = fast(iterations=10).fit(PTRAIN)
    items = PTRAIN.items.ids_array
    alone = model.recommend_for({"new": items[[3, 17, 40]].tolist()}, k=5)
    batch = model.recommend_for(
        {"other": items[[1, 2]].tolist(), "new": items[[3, 17, 40]].tolist()}, k=5
    )
    np.testing.assert_array_equal(batch.ids[1], alone.ids[0])
    np.testing.assert_array_equal(batch.scores[1], alone.scores[0])
