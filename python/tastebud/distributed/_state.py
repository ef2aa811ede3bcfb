"""A fitted model as plain data, for shipping to Dask workers (never pickled code).

The state mirrors the ``save`` format of :mod:`tastebud.models.base` (JSON header with
the class name, hyperparameters and extra scalars; numpy arrays for the vocabularies and
the ``_fitted_arrays``), kept in memory instead of an ``.npz`` file. Workers rebuild the
model from it with the class registry, exactly as ``tastebud.load`` does, so no model object
or code is serialised: a worker runs the tastebud installed on it.

The seen-items matrix is *not* part of the shipped state: it is per-user data and travels
with each user partition instead (so a worker holds the model plus one partition, never the
whole interaction matrix).
"""

from __future__ import annotations

import copy
import importlib
import json
import threading
import uuid
from collections import OrderedDict
from typing import Any

import numpy as np
import scipy.sparse as sp

from tastebud.data import Vocabulary
from tastebud.models.base import _REGISTRY, Recommender

__all__ = ["model_from_state", "model_state", "with_partition_rows"]

_CACHE_SIZE = 2
_cache: OrderedDict[str, Recommender] = OrderedDict()
_cache_lock = threading.Lock()


class _SeenNotShipped:
    """Stands in for ``seen_`` on the cached worker model: users' rows travel with partitions."""

    def __init__(self, shape: tuple[int, int]) -> None:
        self.shape = shape

    def __getitem__(self, key: Any) -> Any:
        raise RuntimeError(
            "seen_ is not shipped to Dask workers: use with_partition_rows() to attach the "
            "rows of a partition's users."
        )


class _PartitionSeen:
    """``seen_`` restricted to one partition's users: ``seen_[user_indices]`` for those only.

    Indexing with any other user raises ``RuntimeError`` rather than returning an empty row,
    so a model can never silently score against missing interactions.
    """

    def __init__(
        self, shape: tuple[int, int], user_indices: np.ndarray, rows: sp.csr_matrix
    ) -> None:
        self.shape = shape
        self._order = np.argsort(user_indices, kind="stable")
        self._sorted = np.asarray(user_indices, dtype=np.int64)[self._order]
        self._rows = rows

    def __getitem__(self, key: Any) -> sp.csr_matrix:
        if isinstance(key, (slice, tuple)):
            raise RuntimeError("seen_ on a Dask worker supports only user-index arrays.")
        idx = np.asarray(key, dtype=np.int64).reshape(-1)
        pos = np.searchsorted(self._sorted, idx)
        pos_ok = np.minimum(pos, max(self._sorted.size - 1, 0))
        if idx.size and (self._sorted.size == 0 or np.any(self._sorted[pos_ok] != idx)):
            raise RuntimeError(
                "seen_ on a Dask worker holds only the rows of the task's own users; "
                "asked for other users."
            )
        return self._rows[self._order[pos_ok]]


def model_state(model: Recommender) -> dict[str, Any]:
    """The fitted ``model`` as ``{"header": json str, "arrays": {name: ndarray}}``.

    The header names the class, its module, the hyperparameters (``get_params``), the extra
    JSON state and a random token identifying this snapshot (workers cache rebuilt models by
    it). ``seen_`` is left out (see the module docstring).
    """
    if not isinstance(model, Recommender):
        raise TypeError(f"model must be a tastebud Recommender; got {type(model).__name__}.")
    model._check_fitted()
    cls = type(model)
    if cls._needs_all_training_rows:
        raise TypeError(
            f"{cls.__name__} reads other users' training rows when it scores a user, and "
            "tastebud.distributed sends each partition only its own users' rows: use "
            "model.recommend / tastebud.evaluate in one process for this model."
        )
    header = {
        "class": cls.__name__,
        "module": cls.__module__,
        "params": model.get_params(),
        "extra": model._extra_state(),
        "seen_shape": [int(x) for x in model.seen_.shape],
        "token": uuid.uuid4().hex,
    }
    try:
        text = json.dumps(header)
    except TypeError as exc:
        raise TypeError(
            f"parameters or extra state of {cls.__name__} are not JSON-serialisable"
        ) from exc
    arrays: dict[str, np.ndarray] = {
        "vocab__users": np.asarray(model.users_.ids_array),
        "vocab__items": np.asarray(model.items_.ids_array),
    }
    for name in cls._fitted_arrays:
        value = getattr(model, name, None)
        if value is not None:
            arrays[f"state__{name}"] = np.asarray(value)
    return {"header": text, "arrays": arrays}


def _build(state: dict[str, Any]) -> Recommender:
    header = json.loads(state["header"])
    arrays = state["arrays"]
    name, module = header["class"], header["module"]
    if name not in _REGISTRY:
        # The class registers itself on import; import the module that defines it (a module
        # name, not code: the worker runs whatever is installed under that name).
        importlib.import_module(module)
    cls = _REGISTRY.get(name)
    if cls is None or cls.__module__ != module:
        raise ValueError(
            f"model class {module}.{name} is not available on this worker: install the same "
            "tastebud (and the module defining the class) on every worker."
        )
    model = cls(**header["params"])
    model.users_ = Vocabulary(arrays["vocab__users"], "user")
    model.items_ = Vocabulary(arrays["vocab__items"], "item")
    model.seen_ = _SeenNotShipped(tuple(header["seen_shape"]))  # type: ignore[assignment]
    for attr in cls._fitted_arrays:
        setattr(model, attr, arrays.get(f"state__{attr}"))
    model._set_extra_state(header["extra"])
    model._validate_loaded()  # also rebuilds derived state (e.g. Hybrid's entity vectors)
    return model


def with_partition_rows(
    model: Recommender, user_indices: np.ndarray, rows: sp.csr_matrix
) -> Recommender:
    """A shallow copy of the cached worker ``model`` whose ``seen_`` knows one partition.

    ``rows[r]`` are the training interactions of user ``user_indices[r]``. The copy shares
    every learned array with the cached model (no data is copied) and can be used through the
    public API (``recommend_indices``, ``score``, ``predict``) for those users; concurrent
    tasks each get their own copy, so they never race on ``seen_``.
    """
    local = copy.copy(model)
    local.seen_ = _PartitionSeen(model.seen_.shape, user_indices, rows)  # type: ignore[assignment]
    return local


def model_from_state(state: dict[str, Any]) -> Recommender:
    """Rebuild (or fetch from this process's cache) the model described by ``state``.

    The returned model is read-only shared state: it may serve several tasks at once.
    """
    token = json.loads(state["header"])["token"]
    with _cache_lock:
        model = _cache.get(token)
        if model is not None:
            _cache.move_to_end(token)
            return model
    model = _build(state)
    with _cache_lock:
        _cache[token] = model
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return model
