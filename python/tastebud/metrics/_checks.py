"""Input validation and small shared helpers for :mod:`tastebud.metrics`.

Everything a kernel relies on is checked here, vectorized, before any kernel
runs: shapes, dtypes, index ranges, duplicates, NaN.
"""

from __future__ import annotations

import numbers
from typing import Any, Literal

import numba
import numpy as np
import scipy.sparse as sp

from tastebud.kernels import metrics as _k

Reduce = Literal["mean", "none"]

# Below this many (user × list slot) cells the serial kernel is used: thread
# start-up costs more than the work. Tests lower it to exercise both paths.
PARALLEL_MIN_WORK = 50_000


def use_parallel(work: int) -> bool:
    """Whether a kernel over ``work`` cells should use its ``parallel=True`` twin."""
    return work >= PARALLEL_MIN_WORK and numba.get_num_threads() > 1


def n_chunks_for(n_rows: int, parallel: bool) -> int:
    """Chunks to split ``n_rows`` into (several per thread for load balance)."""
    if not parallel:
        return 1
    return max(1, min(n_rows, 8 * numba.get_num_threads()))


def check_k(k: Any, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"{name} must be an int >= 1; got {k!r}.")
    return int(k)


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}.")
    return value


def check_recommended(
    recommended: Any,
    n_items: int,
    k: int | None,
    name: str = "recommended",
    *,
    check_rows: bool = True,
) -> np.ndarray:
    """Validate a ``(n_users, width)`` integer array of item indices.

    Returns a C-contiguous int32/int64 array. Only the evaluated prefix
    ``[:, :min(k, width)]`` is checked for range (``-1 <= v < n_items``) and
    duplicates (``k=None`` means the whole width). ``check_rows=False`` skips those
    two checks for callers whose kernel does them (then call :func:`raise_row_flags`).
    """
    if isinstance(recommended, (sp.spmatrix, sp.sparray)):
        raise TypeError(f"{name} must be a dense 2-D integer array; got a sparse matrix.")
    arr = np.asarray(recommended)
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (n_users, k); got {arr.ndim}-D "
            f"array of shape {arr.shape}."
        )
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must be an integer array of item indices; got dtype {arr.dtype}.")
    if arr.dtype not in (np.int32, np.int64):
        if arr.size and np.issubdtype(arr.dtype, np.unsignedinteger) and arr.max() > 2**62:
            raise ValueError(f"{name} holds item indices outside [-1, {n_items}).")
        arr = arr.astype(np.int64)
    arr = np.ascontiguousarray(arr)
    width = arr.shape[1] if k is None else min(k, arr.shape[1])
    if arr.shape[0] == 0 or width == 0 or not check_rows:
        return arr
    parallel = use_parallel(arr.shape[0] * width)
    flags = np.empty(arr.shape[0], dtype=np.int8)
    kernel = _k.validate_rows_parallel if parallel else _k.validate_rows_serial
    kernel(arr, width, n_items, n_chunks_for(arr.shape[0], parallel), flags)
    raise_row_flags(arr, width, n_items, flags, name)
    return arr


def raise_row_flags(
    arr: np.ndarray, width: int, n_items: int, flags: np.ndarray, name: str = "recommended"
) -> None:
    """Raise the ``ValueError`` for the first row flagged 1 (range) or 2 (duplicate)."""
    bad = np.flatnonzero(flags)
    if bad.size:
        u = int(bad[0])
        row = arr[u, :width]
        if flags[u] == 1:
            v = int(row[(row < -1) | (row >= n_items)][0])
            raise ValueError(
                f"{name} must hold item indices in [-1, {n_items}) (-1 = padding); "
                f"row {u} holds {v} ({bad.size} bad row(s) in total)."
            )
        vals, counts = np.unique(row[row >= 0], return_counts=True)
        raise ValueError(
            f"{name} must not repeat an item within a row; row {u} lists item "
            f"{int(vals[counts > 1][0])} more than once ({bad.size} bad row(s) in total)."
        )


def check_csr(
    matrix: Any,
    name: str,
    shape: tuple[int | None, int | None] = (None, None),
) -> sp.csr_array:
    """Return a canonical CSR copy-if-needed: sorted unique indices, finite values
    ``>= 0`` and no explicit zeros (an explicit zero is not relevant)."""
    if not isinstance(matrix, (sp.spmatrix, sp.sparray)):
        raise TypeError(
            f"{name} must be a scipy.sparse matrix of shape (n_users, n_items); "
            f"got {type(matrix).__name__}."
        )
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be 2-D; got shape {matrix.shape}.")
    for axis, (want, got) in enumerate(zip(shape, matrix.shape, strict=True)):
        if want is not None and want != got:
            what = "n_users" if axis == 0 else "n_items"
            raise ValueError(
                f"{name} must have {want} {'rows' if axis == 0 else 'columns'} ({what}); "
                f"got shape {matrix.shape}."
            )
    csr = sp.csr_array(matrix)  # no copy when already CSR
    data = csr.data
    if data.dtype.kind not in "biuf":
        raise TypeError(f"{name} values must be numeric; got dtype {data.dtype}.")
    # one pass each for the common (clean) case; diagnose only on failure
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        if np.isnan(data).any():
            raise ValueError(f"{name} values (gains) must not be NaN.")
        raise ValueError(f"{name} values (gains) must be finite.")
    has_zero = False
    if data.dtype.kind in "if" and not (data > 0).all():
        if (data < 0).any():
            raise ValueError(f"{name} values (gains) must be >= 0; got {data.min()}.")
        has_zero = True
    elif data.dtype.kind in "bu":
        has_zero = not data.all()
    if not csr.has_canonical_format:
        csr = csr.copy()
        csr.sum_duplicates()
    if has_zero:
        csr = csr.copy()
        csr.eliminate_zeros()
    return csr


def check_n_items(n_items: Any) -> int:
    if isinstance(n_items, bool) or not isinstance(n_items, numbers.Integral) or n_items < 1:
        raise ValueError(f"n_items must be an int >= 1; got {n_items!r}.")
    return int(n_items)


def reduce_values(values: np.ndarray, reduce: str) -> float | np.ndarray:
    """``"none"``: the per-user array; ``"mean"``: mean over the non-NaN entries
    (NaN when there are none — no warning)."""
    check_choice(reduce, "reduce", ("mean", "none"))
    if reduce == "none":
        return values
    valid = values[~np.isnan(values)]
    return float(valid.mean()) if valid.size else float("nan")


def empty_rows_to(values: np.ndarray, empty_mask: np.ndarray, empty: str) -> np.ndarray:
    """Apply the empty-user rule: ``"nan"`` (excluded from means) or ``"zero"``."""
    check_choice(empty, "empty", ("nan", "zero"))
    if empty_mask.any():
        values[empty_mask] = np.nan if empty == "nan" else 0.0
    return values
