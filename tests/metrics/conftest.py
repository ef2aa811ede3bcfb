import numpy as np
import pytest

from tastebud.metrics import _checks


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240611)


@pytest.fixture
def force_parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Route every call through the ``parallel=True`` kernels."""
    monkeypatch.setattr(_checks, "PARALLEL_MIN_WORK", 0)
