"""The shared model-contract checks, run for every model family.

Each family's test module calls ``check_contract(factory)`` (or parametrizes over
``CONTRACT_CHECKS``) with a factory building an unfitted model with fast settings.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import pytest
import scipy.sparse as sp

import tastebud
from tastebud.data import datasets, split


def small_data(seed: int = 0):
    """A small synthetic split with planted structure (users and items are int ids)."""
    data = datasets.synthetic(n_users=300, n_items=200, n_interactions=9000, random_state=seed)
    train, test = split.random_holdout(data.interactions, random_state=seed)
    return data, train, test


def check_fit_returns_self(factory, train):
    model = factory()
    assert model.fit(train) is model


def check_batch_equals_single(factory, train):
    model = factory().fit(train)
    users = train.users.ids_array[:7]
    batch = model.recommend(users, k=5)
    for r, user in enumerate(users):
        single = model.recommend(user, k=5)
        np.testing.assert_array_equal(single.ids[0], batch.ids[r])
        np.testing.assert_allclose(single.scores[0], batch.scores[r], rtol=1e-5, atol=1e-6)


def check_exclusions(factory, train):
    model = factory().fit(train)
    users = train.users.ids_array[:20]
    recs = model.recommend(users, k=10)
    seen = train.matrix[train.users.index(users)]
    for r in range(len(users)):
        got = recs.indices[r][recs.indices[r] >= 0]
        assert not set(got) & set(seen[r].indices), "seen items must be excluded"
    allowed = train.items.ids_array[:15]
    recs = model.recommend(users, k=5, items=allowed, exclude_seen=False)
    assert set(recs.ids[recs.mask]) <= set(allowed.tolist())
    denied = recs.ids[0, :2]
    again = model.recommend(users[:1], k=5, exclude=denied, exclude_seen=False)
    assert not set(again.ids[0]) & set(denied.tolist())


def check_scores_sorted_and_consistent(factory, train):
    model = factory().fit(train)
    users = train.users.ids_array[:10]
    recs = model.recommend(users, k=8)
    s = recs.scores
    assert np.all(np.diff(np.where(recs.mask, s, -np.inf), axis=1) <= 1e-6)
    pair = model.score(np.repeat(users, 8)[recs.mask.ravel()], recs.ids[recs.mask])
    np.testing.assert_allclose(pair, s[recs.mask], rtol=1e-4, atol=1e-4)


def check_save_load_roundtrip(factory, train, tmp_path):
    model = factory().fit(train)
    path = tmp_path / "model.tbud"
    model.save(path)
    loaded = tastebud.load(path)
    assert type(loaded) is type(model)
    users = train.users.ids_array[:10]
    a, b = model.recommend(users, k=10), loaded.recommend(users, k=10)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)
    assert type(model).load(path).get_params() == model.get_params()


def check_concurrent_recommend(factory, train):
    model = factory().fit(train)
    users = train.users.ids_array
    expected = model.recommend(users, k=10).ids
    results, errors = [], []

    def work():
        try:
            results.append(model.recommend(users, k=10).ids)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for r in results:
        np.testing.assert_array_equal(r, expected)


def check_bad_input(factory, train):
    model = factory()
    with pytest.raises(tastebud.NotFittedError):
        model.recommend([0], k=5)
    model.fit(train)
    with pytest.raises(KeyError, match="unknown user"):
        model.recommend(["no such user"], k=5)
    with pytest.raises(ValueError, match="k must be"):
        model.recommend(train.users.ids_array[:1], k=train.n_items + 1)
    with pytest.raises(ValueError, match="k must be"):
        model.recommend(train.users.ids_array[:1], k=0)
    with pytest.raises(KeyError, match="unknown item"):
        model.recommend(train.users.ids_array[:1], k=3, items=[10**9])
    with pytest.raises(ValueError, match="empty"):
        factory().fit(sp.csr_matrix((3, 4), dtype=np.float32))


def check_recommend_for_matches_known_user(factory, train):
    """Fold-in of a training user's own history ranks like (or close to) its fitted row."""
    model = factory().fit(train)
    user = train.users.ids_array[0]
    history = train.items.ids(train.matrix[0].indices)
    folded = model.recommend_for({"new": list(history)}, k=10)
    assert folded.ids.shape == (1, 10)
    assert not set(folded.ids[0]) & set(history.tolist())
    known = model.recommend(user, k=10)
    overlap = len(set(folded.ids[0]) & set(known.ids[0])) / 10
    assert overlap >= 0.5


def check_deterministic(factory, train):
    a = factory().fit(train).recommend(train.users.ids_array[:20], k=10)
    b = factory().fit(train).recommend(train.users.ids_array[:20], k=10)
    np.testing.assert_array_equal(a.ids, b.ids)


CONTRACT_CHECKS: list[Callable] = [
    check_fit_returns_self,
    check_batch_equals_single,
    check_exclusions,
    check_scores_sorted_and_consistent,
    check_save_load_roundtrip,
    check_concurrent_recommend,
    check_bad_input,
    check_recommend_for_matches_known_user,
    check_deterministic,
]


def run_check(check, factory, train, tmp_path):
    if "tmp_path" in check.__code__.co_varnames[: check.__code__.co_argcount]:
        check(factory, train, tmp_path)
    else:
        check(factory, train)
