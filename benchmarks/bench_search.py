"""Micro benchmarks of tastebud.search (pytest-benchmark).

Run: ``python -m pytest benchmarks/bench_search.py --benchmark-only`` (sizes span orders of
magnitude; peer comparisons live in ``compare_peers.py search``).
"""

import numpy as np
import pytest
import scipy.sparse as sp

from tastebud.search import SimilarityIndex, topk

SIZES = [(1_000, 10_000), (10_000, 100_000)]


def _data(n, m, f=64):
    rng = np.random.default_rng(0)
    return (
        rng.standard_normal((n, f), dtype=np.float32),
        rng.standard_normal((m, f), dtype=np.float32),
    )


@pytest.mark.parametrize("metric", ["dot", "cosine", "l2"])
@pytest.mark.parametrize(("n", "m"), SIZES)
def test_dense_topk(benchmark, n, m, metric):
    q, it = _data(n, m)
    benchmark(topk, q, it, 10, metric=metric)


@pytest.mark.parametrize(("n", "m"), SIZES)
def test_dense_topk_with_exclusions(benchmark, n, m):
    q, it = _data(n, m)
    seen = sp.random(n, m, density=100 / m, format="csr", random_state=0)
    benchmark(topk, q, it, 10, exclude=seen)


@pytest.mark.parametrize(("n", "m"), SIZES)
def test_index_query(benchmark, n, m):
    q, it = _data(n, m)
    index = SimilarityIndex("cosine")
    index.add(it)
    benchmark(index.query, q, 10)


@pytest.mark.parametrize(("n", "m", "f"), [(2_000, 10_000, 2_000), (10_000, 100_000, 20_000)])
def test_sparse_tfidf_topk(benchmark, n, m, f):
    q = sp.random(n, f, density=10 / f, format="csr", random_state=1, dtype=np.float32)
    it = sp.random(m, f, density=10 / f, format="csr", random_state=2, dtype=np.float32)
    benchmark(topk, q, it, 10, metric="cosine")
