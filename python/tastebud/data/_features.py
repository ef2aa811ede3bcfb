"""``Features``: sparse side information (item or user attributes) aligned to a vocabulary."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from ._interactions import _as_vocabulary, _assemble, _csr_from_sorted, _readonly
from ._validation import as_weights, describe
from ._vocabulary import Vocabulary, _as_id_array

__all__ = ["Features"]


def _names_array(names: Any) -> np.ndarray:
    arr = np.asarray(names, dtype=str) if len(names) else np.empty(0, dtype="<U1")
    return _readonly(arr)


def _entity_vocab(ids: Any) -> Vocabulary:
    return _as_vocabulary(ids, "entity")


def _check_len(values: Any, n: int, name: str) -> None:
    if len(values) != n:
        raise ValueError(f"{name} must have one entry per id ({n}); got {len(values)}.")


class Features:
    """Sparse features of a set of entities (items or users).

    Row ``e`` of :attr:`matrix` describes entity ``ids.ids_array[e]``; column ``f`` is the
    feature named ``names[f]``. Build with the ``from_*`` classmethods; align to a model's
    item vocabulary with :meth:`align`.

    Parameters
    ----------
    matrix : scipy sparse matrix/array or 2-D ndarray
        Entities x features values (finite); stored as canonical CSR float32.
    ids : Vocabulary or array-like
        Entity ids, one per row.
    names : array-like of str
        Feature names, one per column, distinct.

    Thread-safety: immutable; safe to share between threads.
    """

    __slots__ = ("_ids", "_matrix", "_names")

    def __init__(self, matrix: Any, ids: Vocabulary | Any, names: Any) -> None:
        ids = _entity_vocab(ids)
        names = _names_array(list(names) if not isinstance(names, np.ndarray) else names)
        if sp.issparse(matrix):
            coo = sp.coo_matrix(matrix)
            rows, cols, data = coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data
            shape = coo.shape
        else:
            arr = np.asarray(matrix)
            if arr.ndim != 2:
                raise ValueError(f"matrix must be two-dimensional; got shape {arr.shape}.")
            rows, cols = np.nonzero(arr)
            data, shape = arr[rows, cols], arr.shape
        if np.asarray(data).dtype.kind not in "biuf":
            raise TypeError(f"matrix must hold numbers; got dtype {np.asarray(data).dtype}.")
        if shape != (len(ids), names.shape[0]):
            raise ValueError(
                f"matrix shape must be (n_ids, n_names) = ({len(ids)}, {names.shape[0]}); "
                f"got {tuple(shape)}."
            )
        if np.unique(names).size != names.size:
            raise ValueError("feature names must be distinct.")
        weights = as_weights(data, len(data), allow_negative=True, name="feature values")
        csr, _ = _assemble(rows, cols, weights, None, shape, "sum", "id", "feature")
        self._matrix, self._ids, self._names = csr, ids, names

    @classmethod
    def _from_parts(cls, matrix: sp.csr_matrix, ids: Vocabulary, names: np.ndarray) -> Features:
        obj = cls.__new__(cls)
        obj._matrix, obj._ids, obj._names = matrix, ids, names
        return obj

    @classmethod
    def _from_coo(
        cls,
        ids: Vocabulary,
        rows: np.ndarray,
        cols: np.ndarray,
        values: np.ndarray,
        names: np.ndarray,
    ) -> Features:
        csr, _ = _assemble(
            rows.astype(np.int64),
            cols.astype(np.int64),
            values.astype(np.float32),
            None,
            (len(ids), names.shape[0]),
            "sum",
            "id",
            "feature",
        )
        return cls._from_parts(csr, ids, _names_array(names))

    # ------------------------------------------------------------------ properties
    @property
    def matrix(self) -> sp.csr_matrix:
        """Entities x features CSR float32 matrix (canonical, read-only arrays)."""
        return self._matrix

    @property
    def ids(self) -> Vocabulary:
        """Vocabulary of the entities (rows)."""
        return self._ids

    @property
    def names(self) -> np.ndarray:
        """Feature names (str array, read-only), one per column."""
        return self._names

    @property
    def n_features(self) -> int:
        """Number of features (columns)."""
        return int(self._matrix.shape[1])

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_entities, n_features)``."""
        return (int(self._matrix.shape[0]), int(self._matrix.shape[1]))

    def __len__(self) -> int:
        return int(self._matrix.shape[0])

    def __repr__(self) -> str:
        head = ", ".join(map(repr, self._names[:3].tolist()))
        more = ", ..." if self.n_features > 3 else ""
        return (
            f"Features(n_ids={len(self)}, n_features={self.n_features}, nnz={self._matrix.nnz}, "
            f"names=[{head}{more}])"
        )

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_multilabel(
        cls, ids: Any, labels: Sequence[Any], *, sep: str | None = None, prefix: str = ""
    ) -> Features:
        """One binary column per distinct label.

        Parameters
        ----------
        ids : array-like or Vocabulary
            Entity ids (distinct), one per entry of ``labels``.
        labels : sequence
            Per entity, a list of labels, or (with ``sep``) one string such as
            ``"Action|Comedy"``. Empty strings/lists and None mean no label.
        sep : str, optional
            Separator splitting string labels.
        prefix : str
            Prepended to every feature name (e.g. ``"genre="``).

        Returns
        -------
        Features
            Columns sorted by label.

        Examples
        --------
        >>> f = Features.from_multilabel([1, 2], ["Action|Comedy", "Drama"], sep="|")
        >>> f.names.tolist()
        ['Action', 'Comedy', 'Drama']
        """
        vocab = _entity_vocab(ids)
        _check_len(labels, len(vocab), "labels")
        rows: list[int] = []
        flat: list[str] = []
        for r, entry in enumerate(labels):  # loop over entities (not interactions)
            if entry is None or (isinstance(entry, float) and np.isnan(entry)):
                continue
            if isinstance(entry, str):
                if sep is None:
                    parts = [entry]
                else:
                    parts = entry.split(sep)
            else:
                parts = list(entry)
            for p in parts:
                if not isinstance(p, str):
                    raise TypeError(f"labels must be strings; got {describe(p)} for entry {r}.")
                p = p.strip()
                if p:
                    rows.append(r)
                    flat.append(p)
        label_vocab, cols = Vocabulary.from_values(np.asarray(flat, dtype=str), "label")
        names = np.char.add(prefix, label_vocab.ids_array.astype(str)) if flat else np.empty(0, str)
        values = np.ones(len(rows), dtype=np.float32)
        out = cls._from_coo(vocab, np.asarray(rows, dtype=np.int64), cols, values, names)
        # A label repeated for one entity stays binary.
        return out._binary()

    def _binary(self) -> Features:
        m = self._matrix
        data = _readonly(np.ones(m.nnz, dtype=np.float32))
        matrix = sp.csr_matrix((data, m.indices, m.indptr), shape=m.shape, copy=False)
        matrix.has_canonical_format = True
        return Features._from_parts(matrix, self._ids, self._names)

    @classmethod
    def from_categorical(cls, ids: Any, columns: Mapping[str, Any]) -> Features:
        """One-hot encode categorical columns; features are named ``"column=value"``.

        Parameters
        ----------
        ids : array-like or Vocabulary
            Entity ids, one per row of each column.
        columns : dict of str to array-like
            Column name -> one category per entity (None/NaN means missing: no feature).

        Returns
        -------
        Features
        """
        vocab = _entity_vocab(ids)
        if not isinstance(columns, Mapping) or not columns:
            raise TypeError(
                f"columns must be a non-empty dict of name -> values; got {describe(columns)}."
            )
        parts = []
        for name, values in columns.items():
            arr = np.asarray(values, dtype=object)
            if arr.ndim != 1:
                raise ValueError(f"column {name!r} must be one-dimensional; got {arr.shape}.")
            _check_len(arr, len(vocab), f"column {name!r}")
            missing = np.array(
                [v is None or (isinstance(v, float) and np.isnan(v)) for v in arr], dtype=bool
            )
            rows = np.flatnonzero(~missing)
            cats = np.asarray([str(v) for v in arr[rows]], dtype=str)
            cat_vocab, cols = Vocabulary.from_values(cats, "category")
            names = np.char.add(f"{name}=", cat_vocab.ids_array.astype(str))
            parts.append(cls._from_coo(vocab, rows, cols, np.ones(rows.size), names))
        return cls.concat(parts)

    @classmethod
    def from_tags(cls, ids: Any, tags: Any, *, prefix: str = "") -> Features:
        """Bag of tags: the value is how often an entity was given the tag.

        Parameters
        ----------
        ids : array-like or Vocabulary
            Entity ids (the rows).
        tags : sequence of (entity_id, tag) pairs, or a tuple of two ndarrays (entity_ids, tags)
            Tag assignments; repeated pairs add up. Tags are stripped; empty tags are ignored.
        prefix : str
            Prepended to every feature name.

        Returns
        -------
        Features

        Raises
        ------
        KeyError
            A tagged entity is not in ``ids``.
        """
        vocab = _entity_vocab(ids)
        if (
            isinstance(tags, tuple)
            and len(tags) == 2
            and all(isinstance(t, np.ndarray) for t in tags)
        ):
            ent, tag = tags
        else:
            pairs = list(tags)
            if any(not isinstance(p, (tuple, list)) or len(p) != 2 for p in pairs):
                raise ValueError("tags must be (entity_id, tag) pairs.")
            ent = [p[0] for p in pairs]
            tag = [p[1] for p in pairs]
        tag_arr = np.char.strip(np.asarray(tag, dtype=str)) if len(tag) else np.empty(0, str)
        ent_arr = _as_id_array(ent, "tagged ids") if len(ent) else np.empty(0, np.int64)
        if ent_arr.shape[0] != tag_arr.shape[0]:
            raise ValueError("tags: entity ids and tags must have the same length.")
        keep = tag_arr != ""
        rows = vocab.index(ent_arr[keep]) if keep.any() else np.empty(0, np.int64)
        tag_vocab, cols = Vocabulary.from_values(tag_arr[keep], "tag")
        names = (
            np.char.add(prefix, tag_vocab.ids_array.astype(str))
            if len(tag_vocab)
            else np.empty(0, str)
        )
        return cls._from_coo(vocab, rows, cols, np.ones(rows.size), names)

    @classmethod
    def from_numeric(
        cls,
        ids: Any,
        columns: Mapping[str, Any],
        scale: Literal["standard", "minmax"] | None = "standard",
    ) -> Features:
        """Numeric columns as features, optionally scaled.

        Parameters
        ----------
        ids : array-like or Vocabulary
            Entity ids.
        columns : dict of str to array-like of float
            Column name -> one finite value per entity.
        scale : {"standard", "minmax", None}
            Standardise (zero mean, unit variance; constant columns become 0), rescale to
            [0, 1], or keep raw values.

        Returns
        -------
        Features
            Zeros are not stored (the matrix is sparse).
        """
        vocab = _entity_vocab(ids)
        if scale not in ("standard", "minmax", None):
            raise ValueError(f"scale must be 'standard', 'minmax' or None; got {scale!r}.")
        if not isinstance(columns, Mapping) or not columns:
            raise TypeError(
                f"columns must be a non-empty dict of name -> values; got {describe(columns)}."
            )
        cols = []
        for name, values in columns.items():
            arr = np.asarray(values)
            if arr.dtype.kind not in "biuf":
                raise TypeError(f"column {name!r} must be numeric; got dtype {arr.dtype}.")
            if arr.ndim != 1:
                raise ValueError(f"column {name!r} must be one-dimensional; got {arr.shape}.")
            _check_len(arr, len(vocab), f"column {name!r}")
            arr = arr.astype(np.float64)
            if not np.isfinite(arr).all():
                raise ValueError(f"column {name!r} must be finite; got NaN or infinite values.")
            if scale == "standard" and arr.size:
                std = arr.std()
                arr = (arr - arr.mean()) / std if std > 0 else np.zeros_like(arr)
            elif scale == "minmax" and arr.size:
                span = arr.max() - arr.min()
                arr = (arr - arr.min()) / span if span > 0 else np.zeros_like(arr)
            cols.append(arr)
        dense = np.column_stack(cols) if cols else np.zeros((len(vocab), 0))
        return cls(sp.csr_matrix(dense), vocab, list(columns.keys()))

    @classmethod
    def from_text(cls, ids: Any, texts: Sequence[str], **tfidf_kwargs: Any) -> Features:
        """TF-IDF features of one text per entity, via scikit-learn's ``TfidfVectorizer``.

        Parameters
        ----------
        ids : array-like or Vocabulary
            Entity ids.
        texts : sequence of str
            One document per entity (None counts as empty).
        **tfidf_kwargs
            Passed to ``sklearn.feature_extraction.text.TfidfVectorizer``.

        Returns
        -------
        Features
            Feature names are the vocabulary terms.

        Raises
        ------
        ImportError
            scikit-learn is not installed.
        """
        try:
            from sklearn.feature_extraction.text import TfidfVectorizer
        except ImportError as exc:  # pragma: no cover - exercised only without sklearn
            raise ImportError(
                "Features.from_text needs scikit-learn; install it with "
                "`pip install tastebud[text]`."
            ) from exc
        vocab = _entity_vocab(ids)
        _check_len(texts, len(vocab), "texts")
        docs = []
        for t in texts:
            if t is not None and not isinstance(t, str):
                raise TypeError(f"texts must be strings; got {describe(t)}.")
            docs.append(t or "")
        vec = TfidfVectorizer(**tfidf_kwargs)
        matrix = vec.fit_transform(docs)
        return cls(matrix, vocab, vec.get_feature_names_out())

    @classmethod
    def identity(cls, ids: Any, *, prefix: str = "id=") -> Features:
        """One indicator feature per entity (the identity matrix), named ``prefix + id``."""
        vocab = _entity_vocab(ids)
        n = len(vocab)
        names = np.char.add(prefix, vocab.ids_array.astype(str)) if n else np.empty(0, str)
        ar = np.arange(n, dtype=np.int64)
        return cls._from_coo(vocab, ar, ar, np.ones(n), names)

    # ------------------------------------------------------------------ combine / reshape
    @classmethod
    def concat(
        cls, features: Sequence[Features], weights: Sequence[float] | None = None
    ) -> Features:
        """Stack feature blocks side by side.

        Parameters
        ----------
        features : sequence of Features
            Blocks to join. If their ids differ, all are aligned to the union of the ids
            (first block's order, then new ids in order of appearance); missing rows are empty.
        weights : sequence of float, optional
            Multiplier per block (e.g. to balance genres against tags).

        Returns
        -------
        Features

        Raises
        ------
        ValueError
            No blocks, wrong number of weights, or a feature name occurring in two blocks.
        """
        blocks = list(features)
        if not blocks or not all(isinstance(f, Features) for f in blocks):
            raise TypeError("features must be a non-empty sequence of Features.")
        if weights is None:
            w = [1.0] * len(blocks)
        else:
            w = [float(x) for x in weights]
            if len(w) != len(blocks):
                raise ValueError(
                    f"weights must have one value per block ({len(blocks)}); got {len(w)}."
                )
            if not np.isfinite(w).all():
                raise ValueError("weights must be finite.")
        vocab = blocks[0].ids
        for f in blocks[1:]:
            if f.ids != vocab:
                vocab, _ = vocab.extend(f.ids.ids_array)
        aligned = [f.align(vocab) for f in blocks]
        names = np.concatenate([f.names for f in aligned]) if aligned else np.empty(0, str)
        if np.unique(names).size != names.size:
            raise ValueError("feature names must be distinct across blocks; use prefixes.")
        mats = [
            f.matrix * np.float32(x) if x != 1.0 else f.matrix
            for f, x in zip(aligned, w, strict=True)
        ]
        matrix = sp.csr_matrix(sp.hstack(mats, format="csr", dtype=np.float32))
        return cls(matrix, vocab, names)

    def align(self, vocabulary: Vocabulary | Any) -> Features:
        """Reindex the rows to ``vocabulary``.

        Ids of ``vocabulary`` without features get empty rows; entities not in it are
        dropped.

        Parameters
        ----------
        vocabulary : Vocabulary or array-like
            Target id space (e.g. ``interactions.items``).

        Returns
        -------
        Features
        """
        target = _as_vocabulary(vocabulary, self._ids.name)
        if target == self._ids:
            return self
        mine, theirs = self._ids.ids_array, target.ids_array
        if len(mine) and len(theirs) and (mine.dtype.kind == "U") != (theirs.dtype.kind == "U"):
            kinds = {True: "strings", False: "integers"}
            raise TypeError(
                f"cannot align features whose ids are {kinds[mine.dtype.kind == 'U']} to ids "
                f"that are {kinds[theirs.dtype.kind == 'U']}: no id would match and every "
                "row would be empty. Convert one side (e.g. the feature ids with int())."
            )
        src = self._ids.index(target.ids_array, missing="negative")
        known = src >= 0
        m = self._matrix
        indptr = np.asarray(m.indptr, dtype=np.int64)
        counts = np.where(known, indptr[np.maximum(src, 0) + 1] - indptr[np.maximum(src, 0)], 0)
        starts = np.repeat(indptr[np.maximum(src, 0)] - np.cumsum(counts) + counts, counts)
        pos = starts + np.arange(int(counts.sum()), dtype=np.int64)
        rows = np.repeat(np.arange(len(target), dtype=np.int64), counts)
        matrix = _csr_from_sorted(
            rows, np.asarray(m.indices)[pos], np.asarray(m.data)[pos], (len(target), m.shape[1])
        )
        return Features._from_parts(matrix, target, self._names)

    def tfidf(self) -> Features:
        """IDF-weight the columns and l2-normalise the rows.

        ``idf_f = log((1 + n) / (1 + df_f)) + 1`` (scikit-learn's smoothed IDF), where
        ``df_f`` is the number of entities with feature ``f``. Empty rows stay empty.

        Returns
        -------
        Features
        """
        m = self._matrix
        n = m.shape[0]
        df = np.bincount(m.indices, minlength=m.shape[1])
        idf = (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float64)
        data = np.asarray(m.data, dtype=np.float64) * idf[m.indices]
        row_of = np.repeat(np.arange(n), np.diff(m.indptr))
        norms = np.sqrt(np.bincount(row_of, weights=data * data, minlength=n))
        safe = np.where(norms > 0, norms, 1.0)
        data = (data / safe[row_of]).astype(np.float32)
        matrix = _csr_from_sorted(row_of, np.asarray(m.indices), data, m.shape)
        return Features._from_parts(matrix, self._ids, self._names)
