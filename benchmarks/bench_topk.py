"""pytest-benchmark micro benchmarks of the top-k kernel.

Run: python -m pytest benchmarks/bench_topk.py --benchmark-only
(peer comparisons live in compare_peers.py; this file tracks tastebud's own speed over sizes).
"""

import numpy as np
import pytest
import scipy.sparse as sp

from tastebud.search import topk


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(0)


@pytest.mark.parametrize("n_items", [1_000, 50_000, 1_000_000])
@pytest.mark.parametrize("exclusions", [False, True])
def test_topk_factor_form(benchmark, rng, n_items, exclusions):
    n_queries = max(200, 20_000_000 // n_items)
    q = rng.standard_normal((n_queries, 64), dtype=np.float32)
    it = rng.standard_normal((n_items, 64), dtype=np.float32)
    seen = None
    if exclusions:
        per = min(100, n_items // 2)
        cols = np.sort(rng.integers(0, n_items, size=(n_queries, per)), axis=1)
        seen = sp.csr_matrix(
            (np.ones(cols.size, np.float32), cols.ravel(), np.arange(0, cols.size + 1, per)),
            shape=(n_queries, n_items),
        )
        seen.sum_duplicates()
    benchmark(topk, q, it, 10, exclude=seen)


@pytest.mark.parametrize("n_items", [1_000, 100_000])
def test_topk_score_block(benchmark, rng, n_items):
    scores = rng.standard_normal((2_000_000 // n_items * 10, n_items), dtype=np.float32)
    benchmark(topk, scores, k=10)
