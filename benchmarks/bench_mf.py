"""Micro benchmarks of the explicit rating models (pytest-benchmark).

Run with ``python -m pytest benchmarks/bench_mf.py --benchmark-enable``. Synthetic ratings
from ``datasets.synthetic`` at sizes spanning an order of magnitude; the peer comparison on
MovieLens lives in ``compare_peers.py rating``.
"""

from __future__ import annotations

import pytest

from tastebud import SVD, Baseline, ExplicitALS, SVDpp
from tastebud.data import datasets

SIZES = {"20k": (1000, 500, 20_000), "200k": (5000, 2000, 200_000)}
MODELS = {
    "Baseline": lambda: Baseline(),
    "SVD": lambda: SVD(random_state=0),
    "SVD order=ratings": lambda: SVD(random_state=0, order="ratings"),
    "SVDpp": lambda: SVDpp(random_state=0),
    "ExplicitALS": lambda: ExplicitALS(factors=32, iterations=5, random_state=0),
}
_DATA: dict[str, object] = {}


def _ratings(size: str):
    if size not in _DATA:
        n_users, n_items, nnz = SIZES[size]
        _DATA[size] = datasets.synthetic(n_users, n_items, nnz, random_state=0).ratings
    return _DATA[size]


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("name", list(MODELS))
def test_fit(benchmark, name, size):
    data = _ratings(size)
    MODELS[name]().fit(data)  # load the cached kernels outside the timing
    benchmark.pedantic(lambda: MODELS[name]().fit(data), rounds=3, iterations=1)


@pytest.mark.parametrize("name", ["SVD", "SVDpp"])
def test_predict(benchmark, name):
    data = _ratings("200k")
    model = MODELS[name]().fit(data)
    arrays = data.to_arrays()
    benchmark(model.predict, arrays["user"], arrays["item"])
