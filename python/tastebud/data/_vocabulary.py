"""Raw-id <-> index maps (one ``Vocabulary`` per axis)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import numpy as np

__all__ = ["Vocabulary"]


def _as_id_array(ids: Any, name: str = "ids") -> np.ndarray:
    """Convert raw ids to a 1-D numpy array of integers or unicode strings (never objects)."""
    if isinstance(ids, np.ndarray):
        arr = ids
    elif isinstance(ids, (str, bytes, int, np.integer)):
        arr = np.asarray([ids])
    elif hasattr(ids, "__array__"):
        arr = np.asarray(ids)
    else:
        values = list(ids)
        arr = np.asarray(values)
        if arr.dtype.kind == "U" and not all(isinstance(x, str) for x in values):
            # np.asarray([1, "a"]) silently makes strings of the ints: refuse the mix.
            arr = np.asarray(values, dtype=object)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional; got shape {arr.shape}.")
    if arr.dtype.kind == "O":
        # Mixed python objects: strings or ints only.
        if all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in arr):
            arr = arr.astype(np.int64)
        elif all(isinstance(x, str) for x in arr):
            arr = arr.astype(str)
        else:
            raise TypeError(
                f"{name} must all be integers or all be strings; got mixed or other types."
            )
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind == "U":
        return arr
    if arr.dtype.kind == "S":
        return arr.astype(str)
    if (
        arr.dtype.kind == "f"
        and arr.size
        and np.all(np.isfinite(arr))
        and np.all(arr == np.round(arr))
    ):
        return arr.astype(np.int64)
    if arr.size == 0:
        return arr.astype(np.int64)
    raise TypeError(f"{name} must be integers or strings; got dtype {arr.dtype}.")


class Vocabulary:
    """An ordered set of raw ids (integers or strings) and their 0-based indices.

    Lookup is vectorized (binary search over a sorted copy), so mapping millions of ids
    costs no Python loop.

    Parameters
    ----------
    ids : array-like
        Unique raw ids, in index order.
    name : str
        What the ids are ("user", "item"), used in error messages.

    Thread-safety: read-only after construction; safe to share between threads.
    """

    def __init__(self, ids: Iterable[Any] | np.ndarray, name: str = "id") -> None:
        arr = _as_id_array(ids, f"{name} ids")
        self._ids = arr
        self.name = name
        self._order = np.argsort(arr, kind="stable")
        self._sorted = arr[self._order]
        if arr.size > 1 and np.any(self._sorted[1:] == self._sorted[:-1]):
            dup = self._sorted[1:][self._sorted[1:] == self._sorted[:-1]][:5]
            raise ValueError(f"{name} ids must be unique; duplicated: {list(dup.tolist())}.")

    @classmethod
    def from_values(cls, values: Any, name: str = "id") -> tuple[Vocabulary, np.ndarray]:
        """Build a vocabulary of the distinct values (sorted) and return the index of each value."""
        arr = _as_id_array(values, f"{name} ids")
        uniq, inverse = np.unique(arr, return_inverse=True)
        return cls(uniq, name=name), inverse.reshape(-1).astype(np.int64)

    @property
    def ids_array(self) -> np.ndarray:
        """All raw ids, in index order (read-only view)."""
        view = self._ids.view()
        view.flags.writeable = False
        return view

    @property
    def kind(self) -> str:
        """``"int"`` or ``"str"``."""
        return "str" if self._ids.dtype.kind == "U" else "int"

    def __len__(self) -> int:
        return int(self._ids.shape[0])

    def __contains__(self, raw_id: object) -> bool:
        return bool(self.index([raw_id], missing="negative")[0] >= 0)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return len(self) == len(other) and bool(np.array_equal(self._ids, other._ids))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        head = ", ".join(map(repr, self._ids[:3].tolist()))
        more = ", ..." if len(self) > 3 else ""
        return f"Vocabulary({self.name}, n={len(self)}: [{head}{more}])"

    def index(self, ids: Any, *, missing: Literal["error", "negative"] = "error") -> np.ndarray:
        """Map raw ids to indices (int64).

        Parameters
        ----------
        ids : scalar or array-like
            Raw ids.
        missing : {"error", "negative"}
            Unknown ids raise ``KeyError`` (naming up to 5 of them and the count) or map to -1.
        """
        query = _as_id_array(ids, f"{self.name} ids")
        if query.size == 0:
            return np.empty(0, dtype=np.int64)
        if len(self) == 0:
            pos = np.zeros(query.shape[0], dtype=np.int64)
            found = np.zeros(query.shape[0], dtype=bool)
        else:
            if (query.dtype.kind == "U") != (self._sorted.dtype.kind == "U"):
                found = np.zeros(query.shape[0], dtype=bool)
                pos = np.zeros(query.shape[0], dtype=np.int64)
            else:
                pos = np.searchsorted(self._sorted, query)
                pos = np.minimum(pos, len(self) - 1)
                found = self._sorted[pos] == query
        out = np.where(found, self._order[pos], -1).astype(np.int64)
        if missing == "error" and not found.all():
            bad = query[~found]
            shown = ", ".join(repr(x) for x in bad[:5].tolist())
            raise KeyError(f"unknown {self.name} id(s): {shown} ({bad.size} unknown in total)")
        if missing not in ("error", "negative"):
            raise ValueError(f"missing must be 'error' or 'negative'; got {missing!r}.")
        return out

    def ids(self, indices: Any) -> np.ndarray:
        """Map indices back to raw ids. Index -1 is not allowed here (see ``Recommendations``)."""
        idx = np.asarray(indices)
        if idx.dtype.kind not in "iu":
            raise TypeError(f"indices must be integers; got dtype {idx.dtype}.")
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"{self.name} index out of range [0, {len(self)}).")
        return self._ids[idx]

    def extend(self, new_ids: Any) -> tuple[Vocabulary, np.ndarray]:
        """Return a vocabulary with the unknown ``new_ids`` appended, and their indices."""
        query = _as_id_array(new_ids, f"{self.name} ids")
        idx = self.index(query, missing="negative")
        unknown = query[idx < 0]
        if unknown.size == 0:
            return self, idx
        _, first = np.unique(unknown, return_index=True)
        added = unknown[np.sort(first)]
        if len(self) and (added.dtype.kind == "U") != (self._ids.dtype.kind == "U"):
            raise TypeError(f"{self.name} ids mix integers and strings.")
        vocab = Vocabulary(np.concatenate([self._ids, added]) if len(self) else added, self.name)
        return vocab, vocab.index(query)
