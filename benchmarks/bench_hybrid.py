"""pytest-benchmark micro benchmarks of the hybrid model: one training epoch and fold-in.

Run: python -m pytest benchmarks/bench_hybrid.py --benchmark-only
(LightFM comparisons live in compare_peers.py hybrid; this file tracks tastebud's own speed.)
"""

import pytest

from tastebud import Hybrid
from tastebud.data import datasets


@pytest.fixture(scope="module", params=[(1_000, 500, 20_000), (10_000, 5_000, 500_000)])
def data(request):
    n_users, n_items, nnz = request.param
    return datasets.synthetic(n_users, n_items, nnz, random_state=0)


@pytest.mark.parametrize("loss", ["warp", "bpr", "logistic"])
@pytest.mark.parametrize("features", [False, True])
def test_hybrid_epoch(benchmark, data, loss, features):
    item_features = data.item_features if features else None

    def fit():
        return Hybrid(factors=64, loss=loss, epochs=1, num_threads=2).fit(
            data.interactions, item_features=item_features, show_progress=False
        )

    benchmark.pedantic(fit, rounds=3, iterations=1, warmup_rounds=1)


def test_hybrid_fold_in(benchmark, data):
    model = Hybrid(factors=64, epochs=2, num_threads=2).fit(data.interactions, show_progress=False)
    rows = data.interactions.matrix[:1000]
    benchmark(lambda: model.recommend_for(rows, k=10))
