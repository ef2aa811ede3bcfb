"""pytest-benchmark micro benchmarks of Item2Vec (skipped by default: run with
``python -m pytest benchmarks/bench_item2vec.py --benchmark-enable``).

Sizes span two orders of magnitude of events; synthetic data only. The side-by-side
comparison with gensim lives in ``compare_peers.py item2vec``.
"""

from __future__ import annotations

import numpy as np
import pytest

from tastebud import Item2Vec
from tastebud.data import Sequences, datasets


@pytest.fixture(scope="module", params=[10_000, 100_000, 1_000_000], ids=lambda n: f"events={n}")
def interactions(request):
    n = request.param
    return datasets.synthetic(
        n_users=max(200, n // 50), n_items=max(100, n // 100), n_interactions=n, random_state=0
    ).interactions


@pytest.mark.parametrize("threads", [1, 2])
def test_fit(benchmark, interactions, threads):
    Item2Vec(factors=64, epochs=1, num_threads=threads).fit(interactions)  # JIT warm-up
    model = benchmark.pedantic(
        lambda: Item2Vec(factors=64, epochs=5, num_threads=threads).fit(interactions),
        rounds=3,
        iterations=1,
    )
    assert np.isfinite(model.item_vectors_).all()


def test_recommend(benchmark, interactions):
    model = Item2Vec(factors=64, epochs=1).fit(interactions)
    users = interactions.users.ids_array[:1000]
    recs = benchmark(lambda: model.recommend(users, k=10))
    assert recs.ids.shape == (users.size, 10)


def test_recommend_for_sessions(benchmark, interactions):
    model = Item2Vec(factors=64, epochs=1).fit(interactions)
    seqs = Sequences.from_interactions(interactions)
    sessions = [model.items_.ids(seqs[i][-5:]).tolist() for i in range(min(1000, len(seqs)))]
    recs = benchmark(lambda: model.recommend_for(sessions, k=10))
    assert recs.ids.shape == (len(sessions), 10)
