"""EASE against its closed form computed densely with numpy."""

from __future__ import annotations

import numpy as np
import pytest

from tastebud import EASE
from tastebud.models.ease import ease_memory_gb
from tests.models.contract import CONTRACT_CHECKS, run_check, small_data

_, TRAIN, TEST = small_data()


@pytest.mark.parametrize("check", CONTRACT_CHECKS, ids=lambda c: c.__name__)
def test_contract(check, tmp_path):
    run_check(check, lambda: EASE(regularization=50.0, num_threads=1), TRAIN, tmp_path)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_matches_closed_form(dtype):
    model = EASE(regularization=30.0, dtype=dtype).fit(TRAIN)
    x = TRAIN.matrix.toarray().astype(np.float64)
    g = x.T @ x + 30.0 * np.eye(x.shape[1])
    p = np.linalg.inv(g)
    b = np.eye(x.shape[1]) - p / np.diag(p)[None, :]
    np.testing.assert_allclose(np.diag(b), 0, atol=1e-12)
    tol = 2e-4 if dtype == "float32" else 1e-6
    np.testing.assert_allclose(model.weights_.T, b, atol=tol)
    users = TRAIN.users.ids_array[:5]
    recs = model.recommend(users, k=5)
    scores = x[:5] @ b
    for r in range(5):
        want = np.sort(np.where(x[r] > 0, -np.inf, scores[r]))[::-1][:5]
        np.testing.assert_allclose(recs.scores[r], want, rtol=1e-3, atol=tol * 10)


def test_memory_guard_says_how_much():
    need = ease_memory_gb(TRAIN.n_items, "float64")
    with pytest.raises(MemoryError, match=r"needs about .* GB for 200 items"):
        EASE(dtype="float64", max_memory_gb=need / 2).fit(TRAIN)
    assert ease_memory_gb(100_000, "float32") == pytest.approx(120.0)


def test_bad_parameters():
    with pytest.raises(ValueError, match="regularization"):
        EASE(regularization=0).fit(TRAIN)
    with pytest.raises(TypeError, match="regularization"):
        EASE(regularization="a").fit(TRAIN)
    with pytest.raises(ValueError, match="dtype"):
        EASE(dtype="float16").fit(TRAIN)
    with pytest.raises(ValueError, match="max_memory_gb"):
        EASE(max_memory_gb=-1).fit(TRAIN)


def test_num_threads_reaches_topk(monkeypatch):
    from tastebud import search

    seen = []
    topk = search.topk

    def spy(*args, **kwargs):
        seen.append(kwargs.get("num_threads"))
        return topk(*args, **kwargs)

    model = EASE(regularization=50.0, num_threads=1).fit(TRAIN)
    monkeypatch.setattr(search, "topk", spy)
    users = TRAIN.users.ids_array[:3]
    model.recommend(users, k=5)
    model.recommend_for([list(TRAIN.items.ids_array[:3])], k=5)
    assert seen == [1, 1]
    model.recommend_indices([0, 1], k=5, num_threads=2)  # an explicit count wins
    assert seen == [1, 1, 2]
