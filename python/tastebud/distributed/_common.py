"""Helpers shared by the distributed entry points: partitioning and argument checks."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = [
    "check_num_threads",
    "check_positive_int",
    "csr_from_payload",
    "csr_payload",
    "partition_bounds",
]


def check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an int >= 1; got {value!r}.")
    return int(value)


#: Threads per task: an absolute bound only (the workers may have more cores than this
#: machine, so the client cannot check against their cores).
_MAX_TASK_THREADS = 4096


def check_num_threads(value: Any) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or not 0 <= value <= _MAX_TASK_THREADS
    ):
        raise ValueError(
            f"num_threads must be an int in [0, {_MAX_TASK_THREADS}] (0 = all cores); "
            f"got {value!r}."
        )
    return int(value)


def partition_bounds(n: int, partition_size: int) -> list[tuple[int, int]]:
    """Contiguous ``[start, stop)`` slices of ``n`` rows, ``partition_size`` rows each."""
    return [(s, min(n, s + partition_size)) for s in range(0, n, partition_size)]


def csr_payload(matrix: sp.csr_matrix) -> dict[str, Any]:
    """A CSR matrix as plain arrays (what travels to a worker)."""
    return {
        "data": matrix.data,
        "indices": matrix.indices,
        "indptr": matrix.indptr,
        "shape": (int(matrix.shape[0]), int(matrix.shape[1])),
    }


def csr_from_payload(payload: dict[str, Any]) -> sp.csr_matrix:
    return sp.csr_matrix(
        (payload["data"], payload["indices"], payload["indptr"]), shape=tuple(payload["shape"])
    )
