"""pytest-benchmark micro benchmarks of the sparse kNN kernels (run with --benchmark-only).

Sizes span orders of magnitude; data is synthetic (benchmarks/compare_peers.py has the peer
comparison on MovieLens).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from tastebud import ItemKNN
from tastebud.models.knn import sparse_similarity


def _matrix(n_users: int, n_items: int, nnz: int, seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    pop = (np.arange(n_items) + 10.0) ** -0.9
    rows = rng.integers(0, n_users, nnz)
    cols = rng.choice(n_items, size=nnz, p=pop / pop.sum())
    m = sp.csr_matrix((np.ones(nnz, np.float32), (rows, cols)), shape=(n_users, n_items))
    m.sum_duplicates()
    m.data[:] = 1
    return m


SIZES = [(1_000, 500, 20_000), (10_000, 5_000, 200_000), (50_000, 20_000, 1_000_000)]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}-{s[2]}")
@pytest.mark.parametrize("similarity", ["cosine", "pearson"])
def test_sparse_similarity(benchmark, size, similarity):
    x = _matrix(*size)
    benchmark(sparse_similarity, x.T, 100, similarity=similarity, num_threads=0)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}-{s[2]}")
def test_item_knn_recommend_all(benchmark, size):
    x = _matrix(*size)
    model = ItemKNN(neighbors=100).fit(x)
    users = np.arange(x.shape[0])
    benchmark(model.recommend_indices, users, 10)
