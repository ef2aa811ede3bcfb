"""Fixtures for the data-layer tests."""

from __future__ import annotations

import numpy as np
import pytest

from tastebud.data import Interactions


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture
def small(rng: np.random.Generator) -> Interactions:
    """~40 users x 30 items with distinct integer timestamps (a few users with < 5 events)."""
    n = 600
    users = rng.integers(0, 40, n)
    items = rng.integers(0, 30, n)
    weights = rng.integers(1, 6, n).astype(np.float64)
    timestamps = rng.permutation(n).astype(np.int64) * 10 + 1_000
    return Interactions.from_arrays(users, items, weights, timestamps, duplicates="max")
