"""The model contract shared by every tastebud recommender.

A model is fitted on users x items interactions, keeps only numpy arrays as learned state
(names ending in ``_``), answers ``recommend`` / ``recommend_for`` / ``similar_items`` /
``score`` through the shared top-k kernel, and saves to one ``.npz`` file with a JSON header
(no pickle: loading an untrusted file cannot run code).

Subclasses implement ``_fit(interactions)`` and one scoring hook:

* factor models set ``_factor_scoring = True`` and implement ``_user_embeddings`` /
  ``_item_embeddings`` (and optionally ``_item_bias``): scores are dot products, computed
  tile by tile in C++;
* other models implement ``_score_block(user_indices, rows)`` returning dense scores for a
  batch of users, which the base class reduces with the same kernel.
"""

from __future__ import annotations

import inspect
import json
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from tastebud import search
from tastebud._errors import NotFittedError
from tastebud.data import Interactions, Vocabulary

__all__ = ["FORMAT_VERSION", "Recommendations", "Recommender", "load"]

FORMAT_VERSION = 1
_REGISTRY: dict[str, type[Recommender]] = {}
_HEADER_KEY = "__tastebud_header__"


@dataclass(frozen=True)
class Recommendations:
    """Ranked items for a batch of queries (users, sessions or items).

    Attributes
    ----------
    queries : ndarray (n,)
        Raw ids of the users (or items, for ``similar_items``) the rows belong to.
    ids : ndarray (n, k)
        Raw item ids, best first. Padding (fewer than ``k`` candidates) holds ``fill_id``:
        -1 for integer ids, "" for string ids; ``mask`` tells real entries apart.
    scores : float32 ndarray (n, k)
        Scores of those items; padding is ``-inf``.
    indices : int64 ndarray (n, k)
        Item indices in the model's vocabulary; padding is -1.
    """

    queries: np.ndarray
    ids: np.ndarray
    scores: np.ndarray
    indices: np.ndarray

    @classmethod
    def from_indices(
        cls, queries: np.ndarray, items: Vocabulary, indices: np.ndarray, scores: np.ndarray
    ) -> Recommendations:
        valid = indices >= 0
        raw = items.ids_array
        fill: Any = "" if raw.dtype.kind == "U" else -1
        ids = np.full(indices.shape, fill, dtype=raw.dtype if raw.size else np.int64)
        ids[valid] = raw[indices[valid]]
        return cls(np.asarray(queries), ids, scores, indices)

    @property
    def mask(self) -> np.ndarray:
        """Boolean (n, k): True where an entry is a real item, False where it is padding."""
        return self.indices >= 0

    @property
    def fill_id(self) -> Any:
        return "" if self.ids.dtype.kind == "U" else -1

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def to_frame(self) -> Any:
        """Long format ``pandas.DataFrame`` with columns query, rank (1-based), item, score.

        Padding entries are dropped.
        """
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("to_frame needs pandas: pip install 'tastebud[pandas]'") from exc
        n, k = self.ids.shape
        mask = self.mask.ravel()
        return pd.DataFrame(
            {
                "query": np.repeat(self.queries, k)[mask],
                "rank": np.tile(np.arange(1, k + 1), n)[mask],
                "item": self.ids.ravel()[mask],
                "score": self.scores.ravel()[mask],
            }
        )

    def __repr__(self) -> str:
        n, k = self.ids.shape
        lines = [f"Recommendations(n={n}, k={k})"]
        for r in range(min(n, 3)):
            shown = ", ".join(str(x) for x in self.ids[r, : min(k, 5)].tolist())
            lines.append(f"  {self.queries[r].item()!r}: [{shown}{', ...' if k > 5 else ''}]")
        if n > 3:
            lines.append("  ...")
        return "\n".join(lines)


def as_interactions(data: Any) -> Interactions:
    """``Interactions`` as is; a scipy sparse matrix (or 2-D array) with its indices as ids."""
    if isinstance(data, Interactions):
        return data
    if sp.issparse(data) or isinstance(data, np.ndarray):
        return Interactions.from_sparse(data)
    raise TypeError(
        "interactions must be a tastebud.Interactions or a scipy.sparse users x items matrix; "
        f"got {type(data).__name__}."
    )


@contextmanager
def _restored_on_error(model: Recommender) -> Iterator[None]:
    """Put back every instance attribute of ``model`` if the body raises.

    Fitting replaces the learned state (attributes ending in ``_``, private caches) one
    attribute at a time; a failure half-way would leave new vocabularies next to old factors.
    A shallow snapshot of ``__dict__`` suffices because fitting assigns new arrays instead of
    writing into the previous ones.
    """
    snapshot = dict(model.__dict__)
    try:
        yield
    except BaseException:
        model.__dict__.clear()
        model.__dict__.update(snapshot)
        raise


def _json_params(params: dict[str, Any], model: str) -> dict[str, Any]:
    """``params`` with numpy scalars as Python scalars (recursively), ready for JSON.

    A numpy ``Generator`` as ``random_state`` cannot be saved: it is stored as None, with a
    warning.
    """

    def plain(value: Any) -> Any:
        if isinstance(value, (np.integer, np.floating, np.bool_)):
            return value.item()
        if isinstance(value, dict):
            return {key: plain(v) for key, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    out = {name: plain(value) for name, value in params.items()}
    if isinstance(out.get("random_state"), np.random.Generator):
        warnings.warn(
            f"{model}: random_state is a numpy Generator, which cannot be saved; it is saved "
            "as None, so refitting the loaded model will not reproduce this fit.",
            UserWarning,
            stacklevel=3,
        )
        out["random_state"] = None
    return out


def check_k(k: Any, n_items: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an int in [1, {n_items}]; got {k!r}.")
    if not 1 <= k <= n_items:
        raise ValueError(f"k must be an int in [1, {n_items}]; got {k}.")
    return int(k)


class Recommender:
    """Base class of every tastebud model (see the module docstring for the contract).

    Thread-safety: ``fit``, ``partial_fit_*`` and ``set_params`` mutate the model; every other
    method only reads fitted state and may be called concurrently from several threads.
    """

    _factor_scoring: ClassVar[bool] = False
    #: learned numpy attributes written by ``save`` (besides vocabularies and seen items)
    _fitted_arrays: ClassVar[tuple[str, ...]] = ()
    #: rows of users scored per batch by the dense-block path
    _batch_size: ClassVar[int] = 1024
    #: True when scoring a user reads other users' training rows (or the whole training
    #: matrix): tastebud.distributed ships each partition only its own users' rows, so such
    #: models are refused there
    _needs_all_training_rows: ClassVar[bool] = False

    users_: Vocabulary
    items_: Vocabulary
    seen_: sp.csr_matrix

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    # ----------------------------------------------------------------- parameters
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyperparameters as given to ``__init__`` (scikit-learn compatible)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Recommender:
        """Set hyperparameters; unknown names raise ``ValueError``."""
        valid = set(self._param_names())
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"{type(self).__name__} has no parameter {name!r}; valid: {sorted(valid)}."
                )
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    # ----------------------------------------------------------------- fitting
    def fit(self, interactions: Any) -> Recommender:
        """Learn from users x items interactions.

        A fit that raises (invalid hyperparameter, ``MemoryError``, interrupt...) leaves the
        model exactly as it was before the call: still fitted with its previous state, or
        still unfitted.

        Parameters
        ----------
        interactions : Interactions or scipy.sparse matrix
            For a sparse matrix, row and column indices serve as user and item ids.

        Returns
        -------
        self
        """
        data = as_interactions(interactions)
        if data.nnz == 0:
            raise ValueError("interactions are empty: nothing to fit.")
        with _restored_on_error(self):
            self.users_ = data.users
            self.items_ = data.items
            self.seen_ = data.matrix
            self._fit(data)
        return self

    def _fit(self, interactions: Interactions) -> None:
        raise NotImplementedError

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "items_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet: call fit() or tastebud.load()."
            )

    # ----------------------------------------------------------------- scoring hooks
    def _user_embeddings(self, user_indices: np.ndarray | None, rows: sp.csr_matrix) -> np.ndarray:
        raise NotImplementedError

    def _item_embeddings(self) -> np.ndarray:
        raise NotImplementedError

    def _item_bias(self) -> np.ndarray | None:
        return None

    def _score_block(self, user_indices: np.ndarray | None, rows: sp.csr_matrix) -> np.ndarray:
        """Dense (n, n_items) scores of a batch of users (known: ``user_indices``; new: None).

        ``rows`` always holds the users' interactions (for known users, their training rows).
        """
        if self._factor_scoring:
            scores = self._user_embeddings(user_indices, rows) @ self._item_embeddings().T
            bias = self._item_bias()
            return scores + bias if bias is not None else scores
        raise NotImplementedError

    def _factor_topk(
        self,
        queries: np.ndarray,
        k: int,
        exclude: sp.csr_matrix | None,
        allow: np.ndarray | None,
        deny: np.ndarray | None,
        num_threads: int = 0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k of ``queries . item_embeddings + item_bias`` (factor models)."""
        return search.topk(
            queries,
            self._item_embeddings(),
            k,
            exclude=exclude,
            allow=allow,
            deny=deny,
            item_bias=self._item_bias(),
            num_threads=num_threads,
        )

    def _topk_rows(
        self,
        user_indices: np.ndarray | None,
        rows: sp.csr_matrix,
        k: int,
        exclude: sp.csr_matrix | None,
        allow: np.ndarray | None,
        deny: np.ndarray | None,
        num_threads: int = 0,
    ) -> tuple[np.ndarray, np.ndarray]:
        if self._factor_scoring:
            queries = self._user_embeddings(user_indices, rows)
            return self._factor_topk(queries, k, exclude, allow, deny, num_threads)
        n = rows.shape[0]
        out_idx = np.empty((n, k), dtype=np.int64)
        out_scores = np.empty((n, k), dtype=np.float32)
        for start in range(0, n, self._batch_size):
            stop = min(n, start + self._batch_size)
            block = self._score_block(
                None if user_indices is None else user_indices[start:stop], rows[start:stop]
            )
            idx, sc = search.topk(
                np.asarray(block, dtype=np.float32),
                k=k,
                exclude=None if exclude is None else exclude[start:stop],
                allow=allow,
                deny=deny,
                num_threads=num_threads,
            )
            out_idx[start:stop] = idx
            out_scores[start:stop] = sc
        return out_idx, out_scores

    # ----------------------------------------------------------------- recommending
    def _candidate_lists(
        self, items: Any, exclude: Any
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        allow = None if items is None else self.items_.index(items)
        deny = None if exclude is None else self.items_.index(exclude)
        return allow, deny

    def recommend_indices(
        self,
        user_indices: Any,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        allow: np.ndarray | None = None,
        deny: np.ndarray | None = None,
        num_threads: int = 0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Index-level ``recommend`` (for evaluation code): ``(item_indices, scores)``.

        ``user_indices`` are positions in ``users_``; ``allow``/``deny`` are item indices.
        Padding is -1 / ``-inf``.
        """
        self._check_fitted()
        k = check_k(k, len(self.items_))
        uidx = np.asarray(user_indices, dtype=np.int64).reshape(-1)
        if uidx.size and (uidx.min() < 0 or uidx.max() >= len(self.users_)):
            raise IndexError(f"user index out of range [0, {len(self.users_)}).")
        rows = self.seen_[uidx]
        exclude = rows if exclude_seen else None
        return self._topk_rows(uidx, rows, k, exclude, allow, deny, num_threads)

    def recommend(
        self,
        users: Any,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        items: Any = None,
        exclude: Any = None,
    ) -> Recommendations:
        """Top-``k`` items for known users.

        Parameters
        ----------
        users : raw user id or array of them
            A scalar is a batch of one. Unknown ids raise ``KeyError``.
        k : int
            Items per user, in ``[1, n_items]``.
        exclude_seen : bool
            Leave out the items each user interacted with in training.
        items : array of raw item ids, optional
            Only rank these candidates.
        exclude : array of raw item ids, optional
            Never return these items.

        Returns
        -------
        Recommendations
            Rows with fewer than ``k`` candidates are padded (see ``Recommendations``).
        """
        self._check_fitted()
        uidx = self.users_.index(users)
        allow, deny = self._candidate_lists(items, exclude)
        idx, scores = self.recommend_indices(
            uidx, k, exclude_seen=exclude_seen, allow=allow, deny=deny
        )
        return Recommendations.from_indices(self.users_.ids(uidx), self.items_, idx, scores)

    def _rows_from(self, interactions: Any, unknown: str) -> tuple[np.ndarray, sp.csr_matrix]:
        """(query labels, rows CSR aligned to this model's items) for ``recommend_for``.

        Entries of weight 0 are dropped: they are no interaction, so they neither make a user
        non-empty nor exclude the item from that user's recommendations.
        """
        labels, rows = self._raw_rows_from(interactions, unknown)
        rows.eliminate_zeros()  # rows is always a fresh matrix, never the caller's
        return labels, rows

    def _raw_rows_from(self, interactions: Any, unknown: str) -> tuple[np.ndarray, sp.csr_matrix]:
        n_items = len(self.items_)
        if isinstance(interactions, Interactions):
            item_idx = self.items_.index(interactions.items.ids_array, missing="negative")
            if unknown == "error" and (item_idx < 0).any():
                self.items_.index(interactions.items.ids_array)  # raises KeyError naming them
            coo = interactions.matrix.tocoo()
            keep = item_idx[coo.col] >= 0
            rows = sp.csr_matrix(
                (coo.data[keep], (coo.row[keep], item_idx[coo.col[keep]])),
                shape=(interactions.n_users, n_items),
                dtype=np.float32,
            )
            return interactions.users.ids_array, rows
        if sp.issparse(interactions):
            rows = sp.csr_matrix(interactions, dtype=np.float32, copy=True)
            if rows.shape[1] != n_items:
                raise ValueError(
                    f"interaction rows must have {n_items} columns (one per item); "
                    f"got {rows.shape[1]}."
                )
            if rows.nnz and not np.isfinite(rows.data).all():
                raise ValueError("interaction weights contain NaN or infinite values.")
            return np.arange(rows.shape[0]), rows
        if isinstance(interactions, dict):
            labels = np.asarray(list(interactions.keys()))
            histories = list(interactions.values())
        else:
            histories = list(interactions)
            labels = np.arange(len(histories))
        indptr = [0]
        cols: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        for hist in histories:
            if isinstance(hist, dict):
                ids, weights = list(hist.keys()), np.asarray(list(hist.values()), np.float32)
            else:
                ids = hist
                weights = None
            idx = self.items_.index(ids, missing="error" if unknown == "error" else "negative")
            w = np.ones(idx.size, np.float32) if weights is None else weights
            if w.shape != idx.shape or not np.isfinite(w).all():
                raise ValueError("interaction weights must be finite, one per item.")
            keep = idx >= 0
            cols.append(idx[keep])
            vals.append(w[keep])
            indptr.append(indptr[-1] + int(keep.sum()))
        rows = sp.csr_matrix(
            (
                np.concatenate(vals) if vals else np.empty(0, np.float32),
                np.concatenate(cols) if cols else np.empty(0, np.int64),
                np.asarray(indptr),
            ),
            shape=(len(histories), n_items),
        )
        rows.sum_duplicates()
        return labels, rows

    def recommend_for(
        self,
        interactions: Any,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        items: Any = None,
        exclude: Any = None,
        unknown_items: str = "error",
    ) -> Recommendations:
        """Top-``k`` items for users unseen at fit time, given only their interactions.

        Parameters
        ----------
        interactions : Interactions, dict, sequence or scipy sparse
            ``Interactions`` (rows = new users, item ids mapped to this model's), a dict
            ``{user: [item ids]}`` or ``{user: {item id: weight}}``, a sequence of item-id
            lists, or a sparse matrix with one column per model item. A weight of 0 means no
            interaction: that item is not excluded, and a user with only such entries counts
            as a user without interactions.
        unknown_items : {"error", "ignore"}
            Item ids the model never saw raise ``KeyError`` or are dropped.

        Other parameters are as in ``recommend``.
        """
        self._check_fitted()
        if unknown_items not in ("error", "ignore"):
            raise ValueError(f"unknown_items must be 'error' or 'ignore'; got {unknown_items!r}.")
        k = check_k(k, len(self.items_))
        labels, rows = self._rows_from(interactions, unknown_items)
        allow, deny = self._candidate_lists(items, exclude)
        rows.sort_indices()
        idx, scores = self._topk_rows(None, rows, k, rows if exclude_seen else None, allow, deny)
        return Recommendations.from_indices(labels, self.items_, idx, scores)

    # ----------------------------------------------------------------- items and pairs
    def _similar_items_indices(
        self, item_indices: np.ndarray, k: int, allow: np.ndarray | None, deny: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        if not self._factor_scoring:
            raise TypeError(f"{type(self).__name__} has no notion of item similarity.")
        vectors = self._item_embeddings()
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
        exclude = sp.csr_matrix(
            (
                np.ones(item_indices.size, np.float32),
                item_indices,
                np.arange(item_indices.size + 1),
            ),
            shape=(item_indices.size, vectors.shape[0]),
        )
        return search.topk(unit[item_indices], unit, k, exclude=exclude, allow=allow, deny=deny)

    def similar_items(
        self, items: Any, k: int = 10, *, candidates: Any = None, exclude: Any = None
    ) -> Recommendations:
        """The ``k`` items most similar to each given item (never the item itself).

        Factor models use the cosine of their item vectors; other models define their own
        similarity (see each class).
        """
        self._check_fitted()
        iidx = self.items_.index(items)
        k = check_k(k, max(1, len(self.items_) - 1))
        allow, deny = self._candidate_lists(candidates, exclude)
        idx, scores = self._similar_items_indices(iidx, k, allow, deny)
        return Recommendations.from_indices(self.items_.ids(iidx), self.items_, idx, scores)

    def score(self, users: Any, items: Any) -> np.ndarray:
        """Ranking scores of (user, item) pairs, as ``recommend`` would order them.

        ``users`` and ``items`` are equal-length arrays of raw ids (scalars broadcast).
        """
        self._check_fitted()
        uidx = self.users_.index(users)
        iidx = self.items_.index(items)
        if uidx.size == 1 and iidx.size > 1:
            uidx = np.repeat(uidx, iidx.size)
        if iidx.size == 1 and uidx.size > 1:
            iidx = np.repeat(iidx, uidx.size)
        if uidx.size != iidx.size:
            raise ValueError(
                f"users and items must have the same length; got {uidx.size} and {iidx.size}."
            )
        return self._score_pairs(uidx, iidx)

    def _score_pairs(self, uidx: np.ndarray, iidx: np.ndarray) -> np.ndarray:
        if self._factor_scoring:
            user_vecs = self._user_embeddings(uidx, self.seen_[uidx])
            out = np.einsum("ij,ij->i", user_vecs, self._item_embeddings()[iidx])
            bias = self._item_bias()
            return (out + bias[iidx] if bias is not None else out).astype(np.float32)
        out = np.empty(uidx.size, dtype=np.float32)
        uniq, inverse = np.unique(uidx, return_inverse=True)
        for start in range(0, uniq.size, self._batch_size):
            batch = uniq[start : start + self._batch_size]
            block = np.asarray(self._score_block(batch, self.seen_[batch]))
            sel = (inverse >= start) & (inverse < start + batch.size)
            out[sel] = block[inverse[sel] - start, iidx[sel]]
        return out

    # ----------------------------------------------------------------- persistence
    def _extra_state(self) -> dict[str, Any]:
        """JSON-serialisable fitted state beyond the arrays (override when needed)."""
        return {}

    def _set_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def _validate_loaded(self) -> None:
        """Check loaded state beyond the generic shape checks (override; raise ValueError)."""

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the fitted model to one file: ``.npz`` arrays plus a JSON header.

        No pickle is used, so ``tastebud.load`` on an untrusted file cannot execute code.
        The write is atomic (temporary file + rename). Numpy scalar hyperparameters are saved
        as Python scalars; a numpy ``Generator`` given as ``random_state`` is saved as None
        (with a ``UserWarning``: a refit of the loaded model will not reproduce this fit).
        """
        self._check_fitted()
        params = _json_params(self.get_params(), type(self).__name__)
        try:
            json.dumps(params)
        except TypeError as exc:
            raise TypeError(
                f"parameters of {type(self).__name__} are not JSON-serialisable"
            ) from exc
        header = {
            "format": "tastebud",
            "format_version": FORMAT_VERSION,
            "class": type(self).__name__,
            "params": params,
            "extra": self._extra_state(),
        }
        arrays: dict[str, np.ndarray] = {
            _HEADER_KEY: np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
            "vocab__users": self.users_.ids_array,
            "vocab__items": self.items_.ids_array,
            "seen__data": self.seen_.data,
            "seen__indices": self.seen_.indices,
            "seen__indptr": self.seen_.indptr,
            "seen__shape": np.asarray(self.seen_.shape, dtype=np.int64),
        }
        for name in self._fitted_arrays:
            value = getattr(self, name, None)
            if value is not None:
                arrays[f"state__{name}"] = np.asarray(value)
        path = Path(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=".tmp-", suffix=".tbud")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Recommender:
        """Load a model written by ``save``; ``SomeModel.load`` also checks the class."""
        model = load(path)
        if cls is not Recommender and not isinstance(model, cls):
            raise TypeError(
                f"{os.fspath(path)!r} holds a {type(model).__name__}, not a {cls.__name__}."
            )
        return model


def load(path: str | os.PathLike[str]) -> Recommender:
    """Load any tastebud model saved with ``save``.

    Raises ``ValueError`` for a file that is not a tastebud model, comes from a newer format
    version, or names an unknown model class. Never unpickles anything.
    """
    try:
        npz = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"{os.fspath(path)!r} is not a tastebud model file: {exc}") from exc
    with npz:
        if _HEADER_KEY not in npz.files:
            raise ValueError(f"{os.fspath(path)!r} is not a tastebud model file (no header).")
        try:
            header = json.loads(npz[_HEADER_KEY].tobytes().decode())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{os.fspath(path)!r} has a corrupt header.") from exc
        if not isinstance(header, dict) or header.get("format") != "tastebud":
            raise ValueError(f"{os.fspath(path)!r} is not a tastebud model file.")
        version = header.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ValueError(
                f"{os.fspath(path)!r} was written in format version {version}; this tastebud "
                f"reads versions up to {FORMAT_VERSION}: upgrade tastebud."
            )
        name = header.get("class")
        if name not in _REGISTRY:
            raise ValueError(f"{os.fspath(path)!r} holds an unknown model class {name!r}.")
        cls = _REGISTRY[name]
        params = header.get("params", {})
        if not isinstance(params, dict):
            raise ValueError(f"{os.fspath(path)!r} has malformed parameters.")
        try:
            model = cls(**params)
        except TypeError as exc:
            raise ValueError(
                f"{os.fspath(path)!r} has parameters {name} does not take: {exc}"
            ) from exc
        model.users_ = Vocabulary(npz["vocab__users"], "user")
        model.items_ = Vocabulary(npz["vocab__items"], "item")
        shape = tuple(int(x) for x in npz["seen__shape"])
        model.seen_ = sp.csr_matrix(
            (npz["seen__data"], npz["seen__indices"], npz["seen__indptr"]), shape=shape
        )
        model.seen_.check_format(full_check=True)
        if shape != (len(model.users_), len(model.items_)):
            raise ValueError(f"{os.fspath(path)!r} is inconsistent: seen matrix shape {shape}.")
        for attr in cls._fitted_arrays:
            key = f"state__{attr}"
            setattr(model, attr, npz[key] if key in npz.files else None)
        model._set_extra_state(header.get("extra", {}))
    _check_loaded_shapes(model, os.fspath(path))
    return model


def _check_loaded_shapes(model: Recommender, path: str) -> None:
    """Reject files whose learned arrays disagree with their vocabularies (corrupt or forged)."""
    expected = {
        "user_factors_": len(model.users_),
        "user_bias_": len(model.users_),
        "item_factors_": len(model.items_),
        "item_bias_": len(model.items_),
    }
    for attr, rows in expected.items():
        value = getattr(model, attr, None)
        if isinstance(value, np.ndarray) and (value.ndim == 0 or value.shape[0] != rows):
            raise ValueError(f"{path!r} is inconsistent: {attr} has shape {value.shape}.")
    for attr in type(model)._fitted_arrays:
        value = getattr(model, attr, None)
        if (
            isinstance(value, np.ndarray)
            and value.dtype.kind == "f"
            and not np.isfinite(value).all()
        ):
            raise ValueError(f"{path!r} is corrupt: {attr} holds NaN or infinite values.")
    model._validate_loaded()
