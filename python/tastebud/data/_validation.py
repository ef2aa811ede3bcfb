"""Input checks shared by the data layer (private)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["as_timestamps", "as_weights", "check_fraction", "check_int", "describe"]


def describe(value: Any) -> str:
    """Short description of what arrived, for error messages."""
    if isinstance(value, np.ndarray):
        return f"array of dtype {value.dtype} and shape {value.shape}"
    return f"{type(value).__name__} {value!r}"[:120]


def _as_1d(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional; got shape {arr.shape}.")
    return arr


def as_weights(
    weights: Any, n: int, *, allow_negative: bool = False, name: str = "weights"
) -> np.ndarray:
    """Validate interaction weights and return them as float32.

    ``None`` means all ones. Non-numeric dtypes raise ``TypeError``; wrong length, NaN/inf
    and (unless ``allow_negative``) negative values raise ``ValueError``.
    """
    if weights is None:
        return np.ones(n, dtype=np.float32)
    arr = _as_1d(weights, name)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numeric (int, float or bool); got dtype {arr.dtype}.")
    if arr.shape[0] != n:
        raise ValueError(f"{name} must have one value per interaction ({n}); got {arr.shape[0]}.")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise ValueError(f"{name} must be finite; got {bad} NaN or infinite value(s).")
    big = float(np.finfo(np.float32).max)
    if arr.dtype.kind in "iuf" and arr.size and np.abs(arr).max() > big:
        raise ValueError(f"{name} must fit in float32; got values up to {np.abs(arr).max()!r}.")
    out = arr.astype(np.float32)
    if not allow_negative and out.size and out.min() < 0:
        raise ValueError(
            f"{name} must be non-negative (pass allow_negative=True for signed feedback); "
            f"got minimum {float(arr.min())!r}."
        )
    return out


def as_timestamps(timestamps: Any, n: int, *, name: str = "timestamps") -> np.ndarray | None:
    """Validate timestamps and return them as int64 (datetime64 becomes Unix seconds)."""
    if timestamps is None:
        return None
    arr = _as_1d(timestamps, name)
    if arr.shape[0] != n:
        raise ValueError(f"{name} must have one value per interaction ({n}); got {arr.shape[0]}.")
    kind = arr.dtype.kind
    if kind == "M":
        if np.isnat(arr).any():
            raise ValueError(f"{name} must not contain NaT; got {int(np.isnat(arr).sum())}.")
        return arr.astype("datetime64[s]").astype(np.int64)
    if kind in "iu":
        if kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
            raise ValueError(f"{name} must fit in int64; got {arr.max()!r}.")
        return arr.astype(np.int64)
    if kind == "f":
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} must be finite integers; got NaN or infinite values.")
        if not np.array_equal(arr, np.floor(arr)):
            raise ValueError(
                f"{name} must be integers (e.g. Unix seconds) or datetime64; "
                "got floats with a fractional part."
            )
        return arr.astype(np.int64)
    raise TypeError(f"{name} must be integers or datetime64; got dtype {arr.dtype}.")


def check_fraction(value: Any, name: str) -> float:
    """Check a fraction lies in the open interval (0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a float in (0, 1); got {describe(value)}.")
    if not 0.0 < float(value) < 1.0:
        raise ValueError(f"{name} must be a float in (0, 1); got {value!r}.")
    return float(value)


def check_int(value: Any, name: str, minimum: int) -> int:
    """Check ``value`` is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= {minimum}; got {describe(value)}.")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}.")
    return int(value)
