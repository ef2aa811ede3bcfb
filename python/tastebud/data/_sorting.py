"""Fast sorting helpers for the data layer (private).

numpy's ``np.sort`` of int64 is vectorized (SIMD) and several times faster than
``np.argsort``/``np.lexsort`` on CPUs without AVX-512. :func:`lexsort` therefore packs each
key together with the running position into one int64, sorts that, and unpacks the
permutation: an LSD radix-style lexsort made of one ``np.sort`` per key. Each pass is stable
because the position is the low part of the packed value.
"""

from __future__ import annotations

import numpy as np

__all__ = ["factorize", "lexsort"]


def _bits(n: int) -> int:
    return max(int(n).bit_length(), 1)


def lexsort(keys: list[np.ndarray]) -> np.ndarray:
    """Stable permutation sorting by ``keys`` (first key most significant), like
    ``np.lexsort(keys[::-1])``. Keys are integer arrays; ties keep input order."""
    n = int(keys[0].shape[0]) if keys else 0
    if n == 0:
        return np.empty(0, dtype=np.int64)
    order = np.arange(n, dtype=np.int64)
    pos_bits = _bits(n - 1)
    for key in reversed(keys):
        k = np.asarray(key, dtype=np.int64)[order]
        lo = int(k.min())
        span = int(k.max()) - lo
        if _bits(span) + pos_bits > 63:
            return np.lexsort([np.asarray(x) for x in reversed(keys)]).astype(np.int64)
        packed = ((k - lo) << pos_bits) | np.arange(n, dtype=np.int64)
        packed.sort()
        order = order[packed & ((1 << pos_bits) - 1)]
    return order


def factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct values and the index of each value in them (int64).

    Same result as ``np.unique(values, return_inverse=True)`` but O(n + range) for integer
    arrays with a moderate range (a presence table) and sort + binary search otherwise.
    """
    if values.size and values.dtype.kind in "iu":
        lo = int(values.min())
        span = int(values.max()) - lo
        if span <= max(2 * values.size, 1 << 20):
            shifted = values - lo
            present = np.bincount(shifted, minlength=span + 1) > 0
            uniq = np.flatnonzero(present).astype(np.int64) + lo
            table = np.cumsum(present, dtype=np.int64) - 1
            return uniq, table[shifted]
        s = np.sort(values)
        keep = np.empty(s.size, dtype=bool)
        keep[0] = True
        np.not_equal(s[1:], s[:-1], out=keep[1:])
        uniq = s[keep]
        return uniq, np.searchsorted(uniq, values).astype(np.int64)
    uniq, inverse = np.unique(values, return_inverse=True)
    return uniq, inverse.reshape(-1).astype(np.int64)
