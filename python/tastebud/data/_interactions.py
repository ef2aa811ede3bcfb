"""The ``Interactions`` container: a users x items CSR matrix plus raw-id vocabularies."""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import scipy.sparse as sp

from ._sorting import factorize, lexsort
from ._validation import as_timestamps, as_weights, check_int, describe
from ._vocabulary import Vocabulary, _as_id_array

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["Interactions"]

Duplicates = Literal["sum", "max", "last", "error"]
_DUPLICATE_RULES = ("sum", "max", "last", "error")
_INT32_MAX = np.iinfo(np.int32).max


def _readonly(arr: np.ndarray) -> np.ndarray:
    arr.flags.writeable = False
    return arr


def _csr_from_sorted(
    rows: np.ndarray, cols: np.ndarray, data: np.ndarray, shape: tuple[int, int]
) -> sp.csr_matrix:
    """Build a canonical CSR matrix from COO triplets already sorted by (row, col), no duplicates.

    The arrays are owned by the result and made read-only (``Interactions`` is immutable).
    """
    n_rows, n_cols = shape
    nnz = int(data.shape[0])
    index_dtype = np.int32 if max(nnz, n_cols, n_rows) <= _INT32_MAX else np.int64
    indptr = np.zeros(n_rows + 1, dtype=index_dtype)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    matrix = sp.csr_matrix(
        (np.ascontiguousarray(data, dtype=np.float32), cols.astype(index_dtype), indptr),
        shape=shape,
        copy=False,
    )
    matrix.has_canonical_format = True  # sorted indices, no duplicates: true by construction
    for arr in (matrix.data, matrix.indices, matrix.indptr):
        _readonly(arr)
    return matrix


def _assemble(
    rows: np.ndarray,
    cols: np.ndarray,
    weights: np.ndarray,
    timestamps: np.ndarray | None,
    shape: tuple[int, int],
    duplicates: str,
    row_name: str = "user",
    col_name: str = "item",
    row_ids: Vocabulary | None = None,
    col_ids: Vocabulary | None = None,
) -> tuple[sp.csr_matrix, np.ndarray | None]:
    """Sort triplets into CSR order and merge duplicate (row, col) pairs. Fully vectorized.

    Cost: one stable sort of an int64 key (skipped when the input is already in CSR order),
    then ``reduceat`` over the runs of equal keys.
    """
    if duplicates not in _DUPLICATE_RULES:
        raise ValueError(f"duplicates must be one of {_DUPLICATE_RULES}; got {duplicates!r}.")
    n = rows.shape[0]
    n_cols = shape[1]
    key = rows.astype(np.int64) * np.int64(max(n_cols, 1)) + cols
    if n > 1 and bool(np.all(key[1:] > key[:-1])):
        order = None  # already canonical (e.g. the output of ``to_arrays``): no sort needed
        skey = key
    else:
        if duplicates == "last" and timestamps is not None:
            order = lexsort([key, timestamps])  # stable: ties in time keep input order
        else:
            order = lexsort([key])
        skey = key[order]
    is_first = np.empty(n, dtype=bool)
    if n:
        is_first[0] = True
        np.not_equal(skey[1:], skey[:-1], out=is_first[1:])
    starts = np.flatnonzero(is_first)
    w = weights if order is None else weights[order]
    ts = None if timestamps is None else (timestamps if order is None else timestamps[order])
    if starts.shape[0] != n:
        if duplicates == "error":
            dup_keys = np.unique(skey[~is_first])
            r, c = np.divmod(dup_keys[:5], max(n_cols, 1))
            rid = r if row_ids is None else row_ids.ids(r)
            cid = c if col_ids is None else col_ids.ids(c)
            pairs = ", ".join(
                f"({a!r}, {b!r})" for a, b in zip(rid.tolist(), cid.tolist(), strict=True)
            )
            raise ValueError(
                f"duplicates='error' but {dup_keys.size} ({row_name}, {col_name}) pair(s) occur "
                f"more than once, e.g. {pairs}; use duplicates='sum', 'max' or 'last'."
            )
        if duplicates == "sum":
            w = np.add.reduceat(w.astype(np.float64), starts)
        elif duplicates == "max":
            w = np.maximum.reduceat(w, starts)
        if duplicates == "last":
            ends = np.empty_like(starts)
            ends[:-1] = starts[1:] - 1
            ends[-1] = n - 1
            w = w[ends]
            ts = None if ts is None else ts[ends]
        elif ts is not None:
            ts = np.maximum.reduceat(ts, starts)
        w = w.astype(np.float32)
        if not np.isfinite(w).all():
            raise ValueError("summed duplicate weights overflow float32.")
        skey = skey[starts]
    r, c = np.divmod(skey, max(n_cols, 1))
    matrix = _csr_from_sorted(r, c, w, shape)
    if ts is not None:
        ts = _readonly(np.array(ts, dtype=np.int64))
    return matrix, ts


def _as_vocabulary(ids: Any, name: str) -> Vocabulary:
    if isinstance(ids, Vocabulary):
        return ids
    return Vocabulary(ids, name=name)


class Interactions:
    """Immutable users x items interactions: a CSR matrix plus raw-id vocabularies.

    The matrix is ``scipy.sparse.csr_matrix`` of float32 in canonical form (sorted column
    indices, no duplicate entries); its ``data``, ``indices`` and ``indptr`` arrays are
    read-only, so an ``Interactions`` can be shared between models, splits and threads.
    Raw ids (ints or strings) live in two :class:`Vocabulary` objects; row ``u`` of the
    matrix is user ``users.ids_array[u]``.

    Build one with :meth:`from_arrays`, :meth:`from_frame`, :meth:`from_csv` or
    :meth:`from_sparse`; the constructor is for matrices already in index space.

    Parameters
    ----------
    matrix : scipy sparse matrix/array or 2-D ndarray
        Users x items weights; converted to canonical CSR float32 (duplicates summed).
    users, items : Vocabulary or array-like
        Raw ids of the rows and columns (lengths must match the matrix shape).
    timestamps : array-like of int, optional
        One int64 timestamp per stored entry, aligned with ``matrix.data`` after conversion
        to CSR; pass a canonical CSR matrix when giving timestamps.

    Thread-safety: immutable; all methods are safe to call from several threads.
    """

    __slots__ = ("_items", "_matrix", "_timestamps", "_users")

    def __init__(
        self,
        matrix: Any,
        users: Vocabulary | Any,
        items: Vocabulary | Any,
        timestamps: Any = None,
    ) -> None:
        users = _as_vocabulary(users, "user")
        items = _as_vocabulary(items, "item")
        csr, ts = _to_canonical(matrix, timestamps, allow_negative=True)
        if csr.shape != (len(users), len(items)):
            raise ValueError(
                f"matrix shape must be (n_users, n_items) = ({len(users)}, {len(items)}); "
                f"got {csr.shape}."
            )
        self._set(csr, users, items, ts)

    def _set(
        self,
        matrix: sp.csr_matrix,
        users: Vocabulary,
        items: Vocabulary,
        timestamps: np.ndarray | None,
    ) -> None:
        self._matrix = matrix
        self._users = users
        self._items = items
        self._timestamps = timestamps

    @classmethod
    def _from_parts(
        cls,
        matrix: sp.csr_matrix,
        users: Vocabulary,
        items: Vocabulary,
        timestamps: np.ndarray | None,
    ) -> Interactions:
        """Trusted constructor: ``matrix`` is canonical read-only CSR float32 (no checks)."""
        obj = cls.__new__(cls)
        obj._set(matrix, users, items, timestamps)
        return obj

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_arrays(
        cls,
        users: Any,
        items: Any,
        weights: Any = None,
        timestamps: Any = None,
        *,
        duplicates: Duplicates = "sum",
        allow_negative: bool = False,
        user_ids: Vocabulary | Any = None,
        item_ids: Vocabulary | Any = None,
    ) -> Interactions:
        """Build interactions from parallel arrays of raw ids.

        Parameters
        ----------
        users, items : array-like of int or str
            Raw user and item id of each interaction (same length, at least one).
        weights : array-like of float, optional
            Weight of each interaction (default 1.0). Must be finite, and non-negative
            unless ``allow_negative``. Entries with weight 0 are kept as stored entries.
        timestamps : array-like of int or datetime64, optional
            Event times. Integers (or integral floats) are kept as int64; datetime64 is
            converted to Unix seconds.
        duplicates : {"sum", "max", "last", "error"}
            How to merge repeated (user, item) pairs: sum or max of the weights, the last
            event (by timestamp if given, ties and no timestamps by input order), or raise.
            A merged pair's timestamp is the latest one.
        allow_negative : bool
            Accept negative weights (e.g. centred ratings, dislikes).
        user_ids, item_ids : Vocabulary or array-like, optional
            Fix the id space (and its order). Ids without interactions become empty rows /
            columns; ids outside it raise ``KeyError``. Default: the sorted distinct ids.

        Returns
        -------
        Interactions

        Raises
        ------
        ValueError
            Empty input, mismatched lengths, NaN/inf or negative weights, fractional
            timestamps, duplicates with ``duplicates="error"``.
        TypeError
            Non-numeric weights or timestamps, ids that are neither ints nor strings.
        KeyError
            An id missing from ``user_ids`` / ``item_ids``.

        Examples
        --------
        >>> inter = Interactions.from_arrays(["a", "a", "b"], [10, 20, 10])
        >>> inter.shape
        (2, 2)
        """
        u = _as_id_array(users, "users")
        i = _as_id_array(items, "items")
        if u.shape[0] != i.shape[0]:
            raise ValueError(
                f"users and items must have the same length; got {u.shape[0]} and {i.shape[0]}."
            )
        n = u.shape[0]
        if n == 0:
            raise ValueError("users and items must contain at least one interaction; got 0.")
        w = as_weights(weights, n, allow_negative=allow_negative)
        ts = as_timestamps(timestamps, n)
        if user_ids is None:
            uniq, rows = factorize(u)
            user_vocab = Vocabulary(uniq, "user")
        else:
            user_vocab = _as_vocabulary(user_ids, "user")
            rows = user_vocab.index(u)
        if item_ids is None:
            uniq, cols = factorize(i)
            item_vocab = Vocabulary(uniq, "item")
        else:
            item_vocab = _as_vocabulary(item_ids, "item")
            cols = item_vocab.index(i)
        matrix, ts = _assemble(
            rows,
            cols,
            w,
            ts,
            (len(user_vocab), len(item_vocab)),
            duplicates,
            row_ids=user_vocab,
            col_ids=item_vocab,
        )
        return cls._from_parts(matrix, user_vocab, item_vocab, ts)

    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        user: str = "user",
        item: str = "item",
        weight: str | None = None,
        timestamp: str | None = None,
        **kwargs: Any,
    ) -> Interactions:
        """Build interactions from a pandas DataFrame.

        Parameters
        ----------
        df : pandas.DataFrame
            One row per interaction.
        user, item : str
            Columns holding the raw user and item ids.
        weight, timestamp : str, optional
            Columns holding weights and timestamps (datetime columns become Unix seconds).
        **kwargs
            Passed to :meth:`from_arrays` (``duplicates``, ``allow_negative``, ``user_ids``,
            ``item_ids``).

        Returns
        -------
        Interactions

        Raises
        ------
        ImportError
            pandas is not installed.
        ValueError
            A named column is missing or holds missing values; see :meth:`from_arrays`.
        """
        pd = _import_pandas()
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"df must be a pandas DataFrame; got {describe(df)}.")
        cols: dict[str, Any] = {}
        for param, col in (
            ("user", user),
            ("item", item),
            ("weight", weight),
            ("timestamp", timestamp),
        ):
            if col is None:
                continue
            if col not in df.columns:
                raise ValueError(
                    f"{param}={col!r} is not a column of df; columns are {list(df.columns)}."
                )
            cols[param] = _series_to_numpy(df[col], pd, param)
        return cls.from_arrays(
            cols["user"], cols["item"], cols.get("weight"), cols.get("timestamp"), **kwargs
        )

    @classmethod
    def from_parquet(
        cls,
        path: str | os.PathLike[str],
        user: str = "user",
        item: str = "item",
        weight: str | None = None,
        timestamp: str | None = None,
        **kwargs: Any,
    ) -> Interactions:
        """Read interactions from a Parquet file or dataset directory.

        Only the named columns are read (Parquet is columnar, so wide files stay cheap).
        The columns then go through :meth:`from_frame`, with the same checks.

        Parameters
        ----------
        path : str or path-like
            A ``.parquet`` file, or a directory of them (as written by
            :meth:`to_parquet`, Dask or Spark).
        user, item : str
            Columns holding the raw user and item ids.
        weight, timestamp : str, optional
            Columns holding weights and timestamps.
        **kwargs
            Passed to :meth:`from_arrays`.

        Returns
        -------
        Interactions

        Raises
        ------
        ImportError
            pandas or pyarrow is not installed (``pip install tastebud[pandas]``).
        FileNotFoundError
            ``path`` does not exist.
        ValueError
            A named column is missing; see :meth:`from_frame`.
        """
        pd = _import_pandas()
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"no Parquet file or directory at {path!r}.")
        columns = [c for c in (user, item, weight, timestamp) if c is not None]
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:  # pragma: no cover - exercised only without pyarrow
            raise ImportError(
                "reading Parquet needs pyarrow; install it with `pip install tastebud[pandas]`."
            ) from exc
        names = pq.ParquetDataset(path).schema.names
        missing = [c for c in columns if c not in names]
        if missing:
            raise ValueError(f"columns {missing} are not in {path!r}; its columns are {names}.")
        df = pd.read_parquet(path, columns=columns, engine="pyarrow")
        return cls.from_frame(
            df, user=user, item=item, weight=weight, timestamp=timestamp, **kwargs
        )

    @classmethod
    def from_csv(
        cls,
        path: str | os.PathLike[str],
        user: str | int = "user",
        item: str | int = "item",
        weight: str | int | None = None,
        timestamp: str | int | None = None,
        sep: str = ",",
        *,
        header: bool = True,
        **kwargs: Any,
    ) -> Interactions:
        """Read interactions from a delimited text file.

        Uses pandas when installed (fast C parser), else the standard ``csv`` module.
        Id columns holding only integers become int ids, anything else string ids.

        Parameters
        ----------
        path : str or path-like
            File to read.
        user, item, weight, timestamp : str or int
            Column names (``header=True``) or 0-based column positions (``header=False``).
        sep : str
            Field separator.
        header : bool
            Whether the first line holds column names.
        **kwargs
            Passed to :meth:`from_arrays`.

        Returns
        -------
        Interactions
        """
        wanted = {"user": user, "item": item, "weight": weight, "timestamp": timestamp}
        wanted = {k: v for k, v in wanted.items() if v is not None}
        if not header and not all(isinstance(v, int) for v in wanted.values()):
            raise TypeError(
                "with header=False, user/item/weight/timestamp must be column positions (ints)."
            )
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - exercised only without pandas
            pd = None
        if pd is not None:
            df = pd.read_csv(
                path,
                sep=sep,
                header=0 if header else None,
                engine="python" if len(sep) > 1 else "c",
                dtype={v: str for k, v in wanted.items() if k in ("user", "item")},
            )
            arrays = {}
            for param, col in wanted.items():
                if col not in df.columns:
                    raise ValueError(
                        f"{param}={col!r} is not a column of {os.fspath(path)!r}; "
                        f"columns are {list(df.columns)}."
                    )
                arrays[param] = _series_to_numpy(df[col], pd, param)
        else:  # pragma: no cover - exercised only without pandas
            arrays = _read_csv_stdlib(path, wanted, sep, header)
        for param in ("user", "item"):
            arrays[param] = _parse_ids(np.asarray(arrays[param]).astype(str))
        for param in ("weight", "timestamp"):
            if param in arrays and arrays[param].dtype.kind in "OU":
                arrays[param] = _parse_numbers(arrays[param], param)
        return cls.from_arrays(
            arrays["user"],
            arrays["item"],
            arrays.get("weight"),
            arrays.get("timestamp"),
            **kwargs,
        )

    @classmethod
    def from_sparse(
        cls,
        matrix: Any,
        user_ids: Vocabulary | Any = None,
        item_ids: Vocabulary | Any = None,
        *,
        allow_negative: bool = False,
    ) -> Interactions:
        """Wrap a users x items matrix (any scipy sparse matrix/array, or a dense 2-D array).

        Stored zeros are dropped (as zeros in a dense array are); duplicate COO entries are
        summed.

        Parameters
        ----------
        matrix : scipy sparse matrix/array or 2-D ndarray
            Weights; must be finite (and non-negative unless ``allow_negative``).
        user_ids, item_ids : Vocabulary or array-like, optional
            Raw ids of the rows / columns; default ``0..n-1``.
        allow_negative : bool
            Accept negative weights.

        Returns
        -------
        Interactions
        """
        n_rows, n_cols = _shape_2d(matrix)
        users = _as_vocabulary(np.arange(n_rows) if user_ids is None else user_ids, "user")
        items = _as_vocabulary(np.arange(n_cols) if item_ids is None else item_ids, "item")
        if len(users) != n_rows:
            raise ValueError(f"user_ids must have one id per row ({n_rows}); got {len(users)}.")
        if len(items) != n_cols:
            raise ValueError(f"item_ids must have one id per column ({n_cols}); got {len(items)}.")
        csr, _ = _to_canonical(matrix, None, allow_negative=allow_negative, drop_zeros=True)
        return cls._from_parts(csr, users, items, None)

    # ------------------------------------------------------------------ properties
    @property
    def matrix(self) -> sp.csr_matrix:
        """Users x items CSR float32 matrix (canonical; its arrays are read-only)."""
        return self._matrix

    @property
    def users(self) -> Vocabulary:
        """Vocabulary of the user ids (rows)."""
        return self._users

    @property
    def items(self) -> Vocabulary:
        """Vocabulary of the item ids (columns)."""
        return self._items

    @property
    def timestamps(self) -> np.ndarray | None:
        """int64 timestamps aligned with ``matrix.data`` (CSR order), or None."""
        return self._timestamps

    @property
    def n_users(self) -> int:
        """Number of users (rows), including users with no interactions."""
        return int(self._matrix.shape[0])

    @property
    def n_items(self) -> int:
        """Number of items (columns), including items with no interactions."""
        return int(self._matrix.shape[1])

    @property
    def nnz(self) -> int:
        """Number of stored (user, item) interactions."""
        return int(self._matrix.nnz)

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_users, n_items)``."""
        return (self.n_users, self.n_items)

    def __len__(self) -> int:
        return self.nnz

    def __repr__(self) -> str:
        ts = ", timestamps" if self._timestamps is not None else ""
        return f"Interactions(n_users={self.n_users}, n_items={self.n_items}, nnz={self.nnz}{ts})"

    def user_counts(self) -> np.ndarray:
        """Number of interactions of each user (int64, length ``n_users``)."""
        return np.diff(self._matrix.indptr).astype(np.int64)

    def item_counts(self) -> np.ndarray:
        """Number of interactions of each item (int64, length ``n_items``)."""
        return np.bincount(self._matrix.indices, minlength=self.n_items).astype(np.int64)

    def row_indices(self) -> np.ndarray:
        """User index of every stored entry, in CSR order (int64, length ``nnz``)."""
        return np.repeat(np.arange(self.n_users, dtype=np.int64), self.user_counts())

    # ------------------------------------------------------------------ export
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Return the interactions as arrays in CSR order (by user index, then item index).

        Returns
        -------
        dict of str to ndarray
            ``user`` and ``item`` (raw ids), ``weight`` (float32) and, when present,
            ``timestamp`` (int64).
        """
        out = {
            "user": self._users.ids(self.row_indices()),
            "item": self._items.ids(np.asarray(self._matrix.indices, dtype=np.int64)),
            "weight": np.array(self._matrix.data, dtype=np.float32),
        }
        if self._timestamps is not None:
            out["timestamp"] = np.array(self._timestamps)
        return out

    def to_frame(self) -> pd.DataFrame:
        """Return a pandas DataFrame with columns user, item, weight (and timestamp).

        Raises
        ------
        ImportError
            pandas is not installed.
        """
        pd = _import_pandas()
        return pd.DataFrame(self.to_arrays())

    def to_parquet(self, path: str | os.PathLike[str]) -> None:
        """Write the interactions as one Parquet file (columns of :meth:`to_arrays`).

        :meth:`from_parquet` reads it back; raw ids keep their type. Users and items
        without any interaction are not stored (the file holds events, not vocabularies).
        """
        self.to_frame().to_parquet(os.fspath(path), engine="pyarrow", index=False)

    # ------------------------------------------------------------------ derived
    def _take(self, mask: np.ndarray) -> Interactions:
        """Keep the stored entries where ``mask`` (length nnz, CSR order) is True."""
        m = self._matrix
        rows = self.row_indices()[mask]
        matrix = _csr_from_sorted(
            rows, np.asarray(m.indices)[mask], np.asarray(m.data)[mask], m.shape
        )
        ts = None if self._timestamps is None else _readonly(self._timestamps[mask])
        return Interactions._from_parts(matrix, self._users, self._items, ts)

    def with_matrix(self, matrix: Any, timestamps: Any = None) -> Interactions:
        """Same vocabularies, new matrix (and timestamps aligned with its CSR order).

        Parameters
        ----------
        matrix : scipy sparse matrix/array or 2-D ndarray
            Shape must be ``(n_users, n_items)``.
        timestamps : array-like of int, optional
            One per stored entry of ``matrix`` in CSR order.

        Returns
        -------
        Interactions
        """
        return Interactions(matrix, self._users, self._items, timestamps)

    def binarize(self, threshold: float | None = None) -> Interactions:
        """Keep interactions with weight >= ``threshold`` (> 0 when None), all set to 1.0.

        Parameters
        ----------
        threshold : float, optional
            Minimum weight kept (e.g. 4.0 for "liked" ratings).

        Returns
        -------
        Interactions
            Same vocabularies; timestamps kept for the surviving entries.
        """
        data = np.asarray(self._matrix.data)
        if threshold is None:
            mask = data > 0
        else:
            if not np.isfinite(threshold):
                raise ValueError(f"threshold must be a finite number; got {threshold!r}.")
            mask = data >= threshold
        out = self._take(mask)
        ones = _readonly(np.ones(out.nnz, dtype=np.float32))
        m = out._matrix
        matrix = sp.csr_matrix((ones, m.indices, m.indptr), shape=m.shape, copy=False)
        matrix.has_canonical_format = True
        return Interactions._from_parts(matrix, self._users, self._items, out._timestamps)

    def filter(
        self,
        min_user_interactions: int = 1,
        min_item_interactions: int = 1,
        *,
        iterative: bool = False,
        compact: bool = False,
    ) -> Interactions:
        """Drop interactions of users and items with too few interactions.

        Parameters
        ----------
        min_user_interactions, min_item_interactions : int
            Users / items with fewer interactions lose all of them.
        iterative : bool
            Repeat until both thresholds hold for everyone left (the "k-core").
            Otherwise a single pass: both counts are taken on the input.
        compact : bool
            If False (default) the vocabularies are unchanged, so indices still align with
            the input (filtered users/items become empty rows/columns). If True, ids left
            without interactions are removed from the vocabularies.

        Returns
        -------
        Interactions
        """
        min_u = check_int(min_user_interactions, "min_user_interactions", 0)
        min_i = check_int(min_item_interactions, "min_item_interactions", 0)
        cur = self
        while True:
            keep_u = cur.user_counts() >= min_u
            keep_i = cur.item_counts() >= min_i
            mask = keep_u[cur.row_indices()] & keep_i[np.asarray(cur._matrix.indices)]
            if mask.all():
                break
            cur = cur._take(mask)
            if not iterative:
                break
        if compact:
            cur = cur._compact()
        return cur

    def _compact(self) -> Interactions:
        u_keep = np.flatnonzero(self.user_counts() > 0)
        i_keep = np.flatnonzero(self.item_counts() > 0)
        new_col = np.full(self.n_items, -1, dtype=np.int64)
        new_col[i_keep] = np.arange(i_keep.size)
        new_row = np.full(self.n_users, -1, dtype=np.int64)
        new_row[u_keep] = np.arange(u_keep.size)
        matrix = _csr_from_sorted(
            new_row[self.row_indices()],
            new_col[np.asarray(self._matrix.indices)],
            np.array(self._matrix.data),
            (u_keep.size, i_keep.size),
        )
        users = Vocabulary(self._users.ids(u_keep), self._users.name)
        items = Vocabulary(self._items.ids(i_keep), self._items.name)
        return Interactions._from_parts(matrix, users, items, self._timestamps)

    def select_users(self, user_indices: Any, *, keep_vocabulary: bool = False) -> Interactions:
        """Interactions of a subset of users.

        Parameters
        ----------
        user_indices : array-like of int
            Row indices (not raw ids; use ``users.index(ids)``), distinct.
        keep_vocabulary : bool
            If False (default) the result has one row per selected user, in the given order,
            and a user vocabulary of just those ids. If True the user vocabulary (and so every
            row index) is unchanged and the other users' rows are emptied.

        Returns
        -------
        Interactions
            Item vocabulary unchanged.
        """
        idx = np.asarray(user_indices)
        if idx.ndim == 0:
            idx = idx.reshape(1)
        if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
            raise TypeError(f"user_indices must be a 1-D array of ints; got {describe(idx)}.")
        idx = idx.astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_users):
            raise IndexError(
                f"user_indices must lie in [0, {self.n_users}); got {idx.min()}..{idx.max()}."
            )
        if np.unique(idx).size != idx.size:
            raise ValueError("user_indices must be distinct.")
        if keep_vocabulary:
            sel = np.zeros(self.n_users, dtype=bool)
            sel[idx] = True
            return self._take(sel[self.row_indices()])
        indptr = np.asarray(self._matrix.indptr, dtype=np.int64)
        counts = indptr[idx + 1] - indptr[idx]
        # Positions of the selected rows' entries, row by row, without a Python loop.
        starts = np.repeat(indptr[idx] - np.cumsum(counts) + counts, counts)
        pos = starts + np.arange(int(counts.sum()), dtype=np.int64)
        rows = np.repeat(np.arange(idx.size, dtype=np.int64), counts)
        matrix = _csr_from_sorted(
            rows,
            np.asarray(self._matrix.indices)[pos],
            np.asarray(self._matrix.data)[pos],
            (idx.size, self.n_items),
        )
        ts = None if self._timestamps is None else _readonly(self._timestamps[pos])
        users = Vocabulary(self._users.ids(idx), self._users.name)
        return Interactions._from_parts(matrix, users, self._items, ts)


# ---------------------------------------------------------------------- helpers
def _import_pandas() -> Any:
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - exercised only without pandas
        raise ImportError(
            "this feature needs pandas; install it with `pip install tastebud[pandas]`."
        ) from exc
    return pd


def _series_to_numpy(series: Any, pd: Any, param: str) -> np.ndarray:
    if series.isna().any():
        raise ValueError(
            f"column for {param} ({series.name!r}) has {int(series.isna().sum())} missing values."
        )
    dtype = series.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
        return series.to_numpy()
    if pd.api.types.is_string_dtype(dtype) and param in ("user", "item"):
        return series.to_numpy(dtype=str)
    return series.to_numpy()


def _parse_ids(values: np.ndarray) -> np.ndarray:
    """Text ids: int64 when every value is a canonical integer literal, else str.

    Canonical means the integer prints back as the same text, so ids such as ``"007"`` and
    ``"7"`` (or ISBNs with a leading zero, ``"+7"``, ``" 7"``) stay distinct strings instead
    of being merged into one integer id.
    """
    try:
        parsed = values.astype(np.int64)
    except (ValueError, OverflowError):
        return values
    if not np.array_equal(parsed.astype(str), np.asarray(values, dtype=str)):
        return values
    return parsed


def _parse_numbers(values: np.ndarray, param: str) -> np.ndarray:
    try:
        return np.asarray(values).astype(np.float64)
    except ValueError as exc:
        raise ValueError(f"{param} column must be numeric; {exc}.") from None


def _read_csv_stdlib(
    path: str | os.PathLike[str], wanted: Mapping[str, str | int], sep: str, header: bool
) -> dict[str, np.ndarray]:  # pragma: no cover - exercised only without pandas
    with open(path, newline="", encoding="utf-8") as fh:
        if len(sep) == 1:
            rows = list(csv.reader(fh, delimiter=sep))
        else:
            rows = [line.rstrip("\r\n").split(sep) for line in fh if line.strip()]
    names = rows[0] if header else list(range(len(rows[0]) if rows else 0))
    body = rows[1:] if header else rows
    table = np.array(body, dtype=str)
    out = {}
    for param, col in wanted.items():
        if col not in names:
            raise ValueError(f"{param}={col!r} is not a column of {os.fspath(path)!r}.")
        out[param] = table[:, names.index(col)]
    return out


def _shape_2d(matrix: Any) -> tuple[int, int]:
    if sp.issparse(matrix):
        shape = matrix.shape
    else:
        arr = np.asarray(matrix)
        shape = arr.shape
    if len(shape) != 2:
        raise ValueError(f"matrix must be two-dimensional; got shape {tuple(shape)}.")
    return int(shape[0]), int(shape[1])


def _to_canonical(
    matrix: Any,
    timestamps: Any,
    *,
    allow_negative: bool,
    drop_zeros: bool = False,
) -> tuple[sp.csr_matrix, np.ndarray | None]:
    """Validate a matrix and convert it to canonical read-only CSR float32 (copying)."""
    shape = _shape_2d(matrix)
    if sp.issparse(matrix):
        if matrix.dtype.kind not in "biuf":
            raise TypeError(f"matrix must hold numbers; got dtype {matrix.dtype}.")
        csr = sp.csr_matrix(matrix)
        if timestamps is not None and not csr.has_canonical_format:
            raise ValueError(
                "timestamps need a canonical CSR matrix (sorted indices, no duplicates) so "
                "that they align with its entries; call matrix.sum_duplicates() first."
            )
        rows = np.repeat(np.arange(shape[0], dtype=np.int64), np.diff(csr.indptr))
        cols = np.asarray(csr.indices, dtype=np.int64)
        data = np.asarray(csr.data)
    else:
        arr = np.asarray(matrix)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"matrix must hold numbers; got dtype {arr.dtype}.")
        if timestamps is not None:
            raise ValueError("timestamps can only accompany a sparse matrix.")
        rows, cols = np.nonzero(arr)
        data = arr[rows, cols]
    weights = as_weights(data, data.shape[0], allow_negative=allow_negative, name="matrix values")
    ts = as_timestamps(timestamps, weights.shape[0])
    if drop_zeros:
        nz = weights != 0
        if not nz.all():
            rows, cols, weights = rows[nz], cols[nz], weights[nz]
    return _assemble(rows, cols, weights, ts, shape, "sum", "row", "column")
