"""pytest-benchmark micro benchmarks of the ALS and BPR kernels over sizes.

Run with ``python -m pytest benchmarks/bench_als.py --benchmark-enable``; skipped otherwise
(``--benchmark-skip`` is in the default options). Peer comparisons: compare_peers.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from tastebud.models._factors import core, csr_parts

SIZES = [(1_000, 500, 20), (10_000, 5_000, 50), (50_000, 20_000, 50)]


def _problem(n: int, m: int, per_row: int, f: int = 64):
    rng = np.random.default_rng(0)
    cols = rng.integers(0, m, size=(n, per_row))
    rows = sp.csr_matrix(
        (np.ones(cols.size, np.float32), cols.ravel(), np.arange(0, cols.size + 1, per_row)),
        shape=(n, m),
    )
    rows.sum_duplicates()
    rows.sort_indices()
    y = (rng.random((m, f), dtype=np.float32) * 0.1).astype(np.float32)
    x = (rng.random((n, f), dtype=np.float32) * 0.1).astype(np.float32)
    return rows, x, y


@pytest.mark.parametrize(("n", "m", "per_row"), SIZES)
@pytest.mark.parametrize("solver", [0, 1], ids=["cg", "cholesky"])
def test_als_half_iteration(benchmark, n, m, per_row, solver):
    rows, x, y = _problem(n, m, per_row)
    gram = np.ascontiguousarray(y.T @ y)
    reg = np.full(n, 0.05, np.float32)
    parts = csr_parts(rows)
    benchmark(core().als_solve, *parts, y, gram, reg, x, 1.0, 1.0, solver, 3, 0)


@pytest.mark.parametrize(("n", "m", "per_row"), SIZES)
def test_bpr_epoch(benchmark, n, m, per_row):
    rows, x, y = _problem(n, m, per_row)
    indptr, indices, _ = csr_parts(rows)
    row_of = np.repeat(np.arange(n, dtype=np.int32), np.diff(indptr))
    bias = np.zeros(m, np.float32)
    benchmark(
        core().bpr_epoch, indptr, indices, row_of, x, y, bias, 0.05, 0.01, True, rows.nnz, 1, 0, 0
    )
