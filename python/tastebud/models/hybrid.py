"""Hybrid recommenders: feature-embedding factorization (``Hybrid``) and score blending (``Blend``).

``Hybrid`` is the model of LightFM (Kula 2015, "Metadata Embeddings for User and Item Cold-start
Recommendations"): users and items are the sums of the embeddings (and biases) of their
features, so side information (genres, tags, demographics) and identities share one latent
space. With identity features only it is matrix factorization with item biases; with side
information it scores items and users never seen in training from their features alone.
Trained by Hogwild SGD in C++ (``cpp/hybrid.hpp``) with the WARP, k-OS WARP, BPR or logistic
loss and adagrad or adadelta step sizes.

``Blend`` combines any fitted recommenders of the contract: per-user normalised scores,
weighted and summed, weights tunable on a validation split, with an optional switch to one
model for users or items with little history.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from tastebud import _core, search
from tastebud.data import Features, Interactions, Vocabulary
from tastebud.models.base import (
    Recommendations,
    Recommender,
    _restored_on_error,
    as_interactions,
    check_k,
    load,
)

__all__ = ["Blend", "Hybrid"]

_LOSSES = {"warp": 0, "bpr": 1, "logistic": 2, "warp-kos": 3}
_SCHEDULES = {"adagrad": 0, "adadelta": 1}
#: prefix of the identity feature names (one per user / item)
IDENTITY_PREFIX = "__identity__="
_SIDES = ("user", "item")


def _check_number(value: Any, name: str, low: float, high: float, *, integer: bool = False,
                  low_open: bool = False) -> None:  # fmt: skip
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    ok = isinstance(value, kinds) and not isinstance(value, bool)
    if ok:
        v = float(value)
        ok = np.isfinite(v) and (v > low if low_open else v >= low) and v <= high
    if not ok:
        kind = "an int" if integer else "a number"
        lo = "(" if low_open else "["
        raise ValueError(f"{name} must be {kind} in {lo}{low}, {high}]; got {value!r}.")


def _positives(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Entries with positive weight, as canonical CSR with int64 indptr / int32 indices."""
    m = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    m.data[m.data <= 0] = 0
    m.eliminate_zeros()
    m.sum_duplicates()
    m.sort_indices()
    m.indptr = m.indptr.astype(np.int64)
    m.indices = m.indices.astype(np.int32)
    return m


def _csr_parts(m: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.ascontiguousarray(m.indptr, dtype=np.int64),
        np.ascontiguousarray(m.indices, dtype=np.int32),
        np.ascontiguousarray(m.data, dtype=np.float32),
    )


class Hybrid(Recommender):
    """Feature-embedding factorization with WARP / k-OS WARP / BPR / logistic loss (LightFM).

    The score of user ``u`` and item ``i`` is ``p_u . q_i + b_u + b_i`` where
    ``p_u = sum_a x_ua U_a`` and ``b_u = sum_a x_ua c_a`` over the user's features ``a``
    (weights ``x_ua``), and ``q_i``, ``b_i`` likewise over the item's features. With
    ``identity_features=True`` every user and item also has its own indicator feature, so
    without side information the model is matrix factorization with biases, and with it the
    features let the model place new users and items (cold start).

    Parameters
    ----------
    factors : int
        Embedding dimension.
    loss : {"warp", "bpr", "logistic", "warp-kos"}
        WARP (Weston et al. 2011): negatives are drawn until one scores within a margin of 1 of
        the positive; the hinge is weighted by ``log(floor((n_items - 1) / trials))``, an
        estimate of the positive's rank, so mistakes at the top cost most. Optimises
        precision@k; the usual best choice. "warp-kos": k-order-statistic WARP (Weston et al.
        2013): per user, the ``k``-th best of ``n`` sampled positives is pushed up (one step
        per user and epoch). "bpr" (Rendle et al. 2009): ``-log sigmoid(s_ui - s_uj)`` with
        one uniform negative. "logistic": ``-log sigmoid(s_ui)`` on the positive plus
        ``-log sigmoid(-s_uj)`` on one sampled negative (negative sampling).
    learning_schedule : {"adagrad", "adadelta"}
        Per-parameter step sizes: adagrad (Duchi et al. 2011) ``lr / sqrt(1 + sum g^2)``, or
        adadelta (Zeiler 2012) with ``rho`` and ``epsilon`` (``learning_rate`` unused).
    learning_rate : float
        Adagrad step size.
    rho, epsilon : float
        Adadelta decay and conditioning constant.
    item_alpha, user_alpha : float
        L2 penalty per item / user feature, applied to the parameters of the features each
        step touches (embeddings and biases).
    max_sampled : int
        WARP: most negatives drawn per positive.
    k, n : int
        k-OS WARP: the ``k``-th best of ``n`` sampled positives.
    epochs : int
        Passes over the positives (k-OS: over the users).
    num_threads : int
        Hogwild threads (0 = all cores). Each thread trains on the positives of its own
        contiguous range of users (no user identity embedding is written by two threads).
        With more than one thread, updates of shared parameters race (benignly) and results
        vary from run to run; ``num_threads=1`` is deterministic.
    random_state : int
        Seed of the initialisation and of the per-thread sampling streams.
    identity_features : bool
        Add one indicator feature per user and per item to the given side features.
    identity_dropout : float
        Identity-feature dropout for item cold start (DropoutNet, Volkovs et al., NeurIPS
        2017), in ``[0, 1]``: each training sample runs, with this probability, in "cold
        mode": its positive and its negatives are represented without their identity features,
        by their side features alone, and only those features receive the gradient. The
        feature embeddings then learn to rank items on their own, which is how items unseen
        at fit time are scored (``score_items``). Dropping per sample (all items of a step)
        rather than per item was chosen on a validation split of ml-100k's training items
        (cold-start NDCG@10 0.276 vs 0.272, p = 0: 0.262). Items with no side feature
        besides their identity always keep it. 0 (default) is the plain model, bit for bit;
        0.1 was best on that validation split (benchmarks/README.md: cold-start NDCG@10 0.1715
        vs 0.1687 at p = 0, warm P@10 unchanged) and is the setting to try when new items
        arrive often.

    Notes
    -----
    Interactions with positive weight are the positives (all weigh the same). Embeddings start
    uniform in ``[-0.5, 0.5) / factors``, biases at 0 (as LightFM). ``fit_partial`` continues
    training and may add users, items and features. New users are placed by ``recommend_for``
    (from features and/or a fold-in on their interactions); items absent at fit time are
    scored from their features by ``score_items``. ``similar_items`` uses the cosine of the
    item representations ``q_i``.

    Thread-safety: ``fit``/``fit_partial`` mutate the model; every other method only reads.

    Examples
    --------
    >>> from tastebud.data import datasets
    >>> data = datasets.synthetic(300, 200, 6000, random_state=0)
    >>> model = Hybrid(factors=16, epochs=5, num_threads=1).fit(
    ...     data.interactions, item_features=data.item_features, show_progress=False)
    >>> model.recommend([0, 1], k=3).ids.shape
    (2, 3)
    """

    _factor_scoring = True
    _fitted_arrays = tuple(
        f"{side}_{name}"
        for side in _SIDES
        for name in (
            "feature_emb_",
            "feature_bias_",
            "feature_emb_acc_",
            "feature_bias_acc_",
            "feature_emb_acc2_",
            "feature_bias_acc2_",
            "features_indptr_",
            "features_indices_",
            "features_data_",
            "feature_names_",
        )
    )

    def __init__(
        self,
        factors: int = 64,
        loss: str = "warp",
        learning_schedule: str = "adagrad",
        learning_rate: float = 0.05,
        rho: float = 0.95,
        epsilon: float = 1e-6,
        item_alpha: float = 0.0,
        user_alpha: float = 0.0,
        max_sampled: int = 10,
        k: int = 5,
        n: int = 10,
        epochs: int = 30,
        num_threads: int = 0,
        random_state: int = 42,
        identity_features: bool = True,
        identity_dropout: float = 0.0,
    ) -> None:
        self.factors = factors
        self.loss = loss
        self.learning_schedule = learning_schedule
        self.learning_rate = learning_rate
        self.rho = rho
        self.epsilon = epsilon
        self.item_alpha = item_alpha
        self.user_alpha = user_alpha
        self.max_sampled = max_sampled
        self.k = k
        self.n = n
        self.epochs = epochs
        self.num_threads = num_threads
        self.random_state = random_state
        self.identity_features = identity_features
        self.identity_dropout = identity_dropout

    # ----------------------------------------------------------------- validation
    def _check_params(self) -> None:
        _check_number(self.factors, "factors", 1, 4096, integer=True)
        if self.loss not in _LOSSES:
            raise ValueError(f"loss must be one of {sorted(_LOSSES)}; got {self.loss!r}.")
        if self.learning_schedule not in _SCHEDULES:
            raise ValueError(
                f"learning_schedule must be 'adagrad' or 'adadelta'; got "
                f"{self.learning_schedule!r}."
            )
        _check_number(self.learning_rate, "learning_rate", 0.0, 1e6, low_open=True)
        _check_number(self.rho, "rho", 0.0, 1.0, low_open=True)
        _check_number(self.epsilon, "epsilon", 0.0, 1.0, low_open=True)
        _check_number(self.item_alpha, "item_alpha", 0.0, 1e6)
        _check_number(self.user_alpha, "user_alpha", 0.0, 1e6)
        _check_number(self.max_sampled, "max_sampled", 1, 1e9, integer=True)
        _check_number(self.k, "k", 1, 1e9, integer=True)
        _check_number(self.n, "n", 1, 1e9, integer=True)
        if self.loss == "warp-kos" and self.k > self.n:
            raise ValueError(f"k must be <= n for k-OS WARP; got k={self.k}, n={self.n}.")
        _check_number(self.epochs, "epochs", 0, 1e9, integer=True)
        _check_number(self.num_threads, "num_threads", 0, 1 << 16, integer=True)
        if isinstance(self.random_state, bool) or not isinstance(
            self.random_state, (int, np.integer)
        ):
            raise TypeError(f"random_state must be an int; got {self.random_state!r}.")
        if not isinstance(self.identity_features, (bool, np.bool_)):
            raise TypeError(f"identity_features must be a bool; got {self.identity_features!r}.")
        _check_number(self.identity_dropout, "identity_dropout", 0.0, 1.0)

    @staticmethod
    def _check_features(features: Any, name: str) -> Features | None:
        if features is None:
            return None
        if not isinstance(features, Features):
            raise TypeError(
                f"{name} must be a tastebud.data.Features (rows = entity ids); got "
                f"{type(features).__name__}."
            )
        if features.matrix.nnz and not np.isfinite(features.matrix.data).all():
            raise ValueError(f"{name} contain NaN or infinite values.")
        names = features.names
        if names.size and np.char.startswith(names.astype(str), IDENTITY_PREFIX).any():
            raise ValueError(f"{name}: names starting with {IDENTITY_PREFIX!r} are reserved.")
        return features

    # ----------------------------------------------------------------- state helpers
    def _side_matrix(self, side: str) -> sp.csr_matrix:
        names = getattr(self, f"{side}_feature_names_")
        n = len(self.users_) if side == "user" else len(self.items_)
        return sp.csr_matrix(
            (
                getattr(self, f"{side}_features_data_"),
                getattr(self, f"{side}_features_indices_"),
                getattr(self, f"{side}_features_indptr_"),
            ),
            shape=(n, names.shape[0]),
        )

    def _state(self, side: str) -> tuple[np.ndarray, ...]:
        g = lambda name: getattr(self, f"{side}_{name}")  # noqa: E731
        acc2 = g("feature_emb_acc2_")
        bacc2 = g("feature_bias_acc2_")
        return (
            g("feature_emb_"),
            g("feature_bias_"),
            g("feature_emb_acc_"),
            g("feature_bias_acc_"),
            acc2 if acc2 is not None else g("feature_emb_acc_"),
            bacc2 if bacc2 is not None else g("feature_bias_acc_"),
        )

    def _empty_side(self, side: str) -> None:
        f = int(self.factors)
        setattr(self, f"{side}_feature_emb_", np.empty((0, f), np.float32))
        setattr(self, f"{side}_feature_bias_", np.empty(0, np.float32))
        setattr(self, f"{side}_feature_emb_acc_", np.empty((0, f), np.float32))
        setattr(self, f"{side}_feature_bias_acc_", np.empty(0, np.float32))
        adadelta = self.learning_schedule == "adadelta"
        setattr(
            self, f"{side}_feature_emb_acc2_", np.empty((0, f), np.float32) if adadelta else None
        )
        setattr(self, f"{side}_feature_bias_acc2_", np.empty(0, np.float32) if adadelta else None)
        setattr(self, f"{side}_features_indptr_", np.zeros(1, np.int64))
        setattr(self, f"{side}_features_indices_", np.empty(0, np.int32))
        setattr(self, f"{side}_features_data_", np.empty(0, np.float32))
        setattr(self, f"{side}_feature_names_", np.empty(0, dtype="<U1"))

    def _grow_side(
        self, side: str, n_old: int, vocab: Vocabulary, features: Features | None,
        rng: np.random.Generator,
    ) -> None:  # fmt: skip
        """Extend one side to ``vocab`` (its first ``n_old`` ids are the known ones): identity
        columns for new entities, new feature columns for unseen names, and the rows of the
        entities described by ``features`` replaced by them (identity kept)."""
        names = getattr(self, f"{side}_feature_names_")
        old = self._side_matrix_raw(side, n_old, names.shape[0])
        n = len(vocab)
        new_ids = vocab.ids_array[n_old:]
        add_names: list[np.ndarray] = []
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        n_cols = names.shape[0]
        if self.identity_features and new_ids.size:
            add_names.append(np.char.add(IDENTITY_PREFIX, new_ids.astype(str)))
            rows.append(np.arange(n_old, n, dtype=np.int64))
            cols.append(np.arange(n_cols, n_cols + new_ids.size, dtype=np.int64))
            vals.append(np.ones(new_ids.size, np.float32))
            n_cols += new_ids.size
        keep_old = np.ones(old.nnz, dtype=bool)
        if features is not None:
            aligned = features.align(vocab)
            present = np.zeros(n, dtype=bool)
            known = vocab.index(features.ids.ids_array, missing="negative")
            present[known[known >= 0]] = True
            fnames = features.names.astype(str)
            current = np.concatenate([names.astype(str), *add_names]) if add_names else names
            lookup = Vocabulary(current.astype(str), "feature") if current.size else None
            pos = (
                lookup.index(fnames, missing="negative")
                if lookup is not None and fnames.size
                else np.full(fnames.size, -1, np.int64)
            )
            unseen = np.flatnonzero(pos < 0)
            pos[unseen] = n_cols + np.arange(unseen.size)
            n_cols += unseen.size
            add_names.append(fnames[unseen])
            # Old side-feature entries of described entities are replaced.
            old_rows = np.repeat(np.arange(n_old), np.diff(old.indptr))
            is_identity = np.char.startswith(names.astype(str), IDENTITY_PREFIX)
            keep_old = ~present[old_rows] | is_identity[old.indices]
            coo = aligned.matrix.tocoo()
            rows.append(coo.row.astype(np.int64))
            cols.append(pos[coo.col])
            vals.append(coo.data.astype(np.float32))
        old_coo_rows = np.repeat(np.arange(n_old, dtype=np.int64), np.diff(old.indptr))
        rows.insert(0, old_coo_rows[keep_old])
        cols.insert(0, old.indices[keep_old].astype(np.int64))
        vals.insert(0, old.data[keep_old])
        matrix = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(n, n_cols),
            dtype=np.float32,
        )
        matrix.sum_duplicates()
        matrix.sort_indices()
        all_names = np.concatenate([names.astype(str), *add_names]) if add_names else names
        if np.unique(all_names).size != all_names.size:
            raise ValueError(f"{side} feature names must be distinct.")
        indptr, indices, data = _csr_parts(matrix)
        setattr(self, f"{side}_features_indptr_", indptr)
        setattr(self, f"{side}_features_indices_", indices)
        setattr(self, f"{side}_features_data_", data)
        setattr(self, f"{side}_feature_names_", all_names.astype(str))
        # Parameters of the new features.
        extra = n_cols - names.shape[0]
        f = int(self.factors)
        init = ((rng.random((extra, f), dtype=np.float32) - 0.5) / f).astype(np.float32)
        grow = [
            ("feature_emb_", init),
            ("feature_bias_", np.zeros(extra, np.float32)),
            ("feature_emb_acc_", np.full((extra, f), self._acc_init, np.float32)),
            ("feature_bias_acc_", np.full(extra, self._acc_init, np.float32)),
            ("feature_emb_acc2_", np.zeros((extra, f), np.float32)),
            ("feature_bias_acc2_", np.zeros(extra, np.float32)),
        ]
        for name, block in grow:
            current_arr = getattr(self, f"{side}_{name}")
            if current_arr is not None:
                setattr(
                    self,
                    f"{side}_{name}",
                    np.ascontiguousarray(np.concatenate([current_arr, block])),
                )

    def _side_matrix_raw(self, side: str, n_rows: int, n_cols: int) -> sp.csr_matrix:
        return sp.csr_matrix(
            (
                getattr(self, f"{side}_features_data_"),
                getattr(self, f"{side}_features_indices_"),
                getattr(self, f"{side}_features_indptr_"),
            ),
            shape=(n_rows, n_cols),
        )

    @property
    def _acc_init(self) -> float:
        return 1.0 if self.learning_schedule == "adagrad" else 0.0

    def _refresh(self) -> None:
        """Cache the user and item representations used for scoring."""
        f = int(self.factors)
        users = self._side_matrix("user")
        items = self._side_matrix("item")
        p = np.asarray(users @ self.user_feature_emb_, dtype=np.float32).reshape(-1, f)
        bu = np.asarray(users @ self.user_feature_bias_, dtype=np.float32).reshape(-1)
        q = np.asarray(items @ self.item_feature_emb_, dtype=np.float32).reshape(-1, f)
        bi = np.asarray(items @ self.item_feature_bias_, dtype=np.float32).reshape(-1)
        self._user_vecs = np.ascontiguousarray(np.column_stack([p, bu]), dtype=np.float32)
        self._item_vecs = np.ascontiguousarray(
            np.column_stack([q, np.ones(q.shape[0], np.float32)]), dtype=np.float32
        )
        self._item_repr = np.ascontiguousarray(q)
        self._item_b = np.ascontiguousarray(bi)

    # ----------------------------------------------------------------- fitting
    def fit(
        self,
        interactions: Any,
        *,
        user_features: Features | None = None,
        item_features: Features | None = None,
        show_progress: bool = True,
    ) -> Hybrid:
        """Learn from users x items interactions and optional side features.

        Parameters
        ----------
        interactions : Interactions or scipy.sparse matrix
            Entries with positive weight are the positives.
        user_features, item_features : Features, optional
            Side information; rows are aligned to the interaction vocabularies by id
            (``Features.align``): entities without a row have only their identity feature.
        show_progress : bool
            Show a tqdm progress bar over epochs.

        Returns
        -------
        self
        """
        data = as_interactions(interactions)
        self._check_params()
        user_features = self._check_features(user_features, "user_features")
        item_features = self._check_features(item_features, "item_features")
        if data.nnz == 0:
            raise ValueError("interactions are empty: nothing to fit.")
        if not self.identity_features:
            for side, feats in (("user", user_features), ("item", item_features)):
                if feats is None:
                    raise ValueError(
                        f"identity_features=False needs {side}_features: otherwise every "
                        f"{side} would have an empty representation."
                    )
        with _restored_on_error(self):  # a failed (re)fit leaves the model as it was
            for attr in ("users_", "items_"):
                self.__dict__.pop(attr, None)
            rng = np.random.default_rng(self.random_state)
            for side in _SIDES:
                self._empty_side(side)
            self._grow_side("user", 0, data.users, user_features, rng)
            self._grow_side("item", 0, data.items, item_features, rng)
            self.epochs_done_ = 0
            self._train(
                _positives(data.matrix), data.users, data.items, int(self.epochs), show_progress
            )
            self.users_ = data.users
            self.items_ = data.items
            self.seen_ = data.matrix
            self._refresh()
        return self

    def _fit(self, interactions: Interactions) -> None:  # pragma: no cover - fit is overridden
        self.fit(interactions)

    def fit_partial(
        self,
        interactions: Any,
        *,
        user_features: Features | None = None,
        item_features: Features | None = None,
        epochs: int | None = None,
        show_progress: bool = True,
    ) -> Hybrid:
        """Continue training on (new) interactions, growing the model as needed.

        Users, items and feature names not seen before are added (new parameters start as in
        ``fit``); the optimiser state of known parameters carries over. Rows of ``user_features``
        / ``item_features`` replace the side features of the entities they describe (their
        identity feature is kept). Seen items for ``exclude_seen`` become the union of old and
        new interactions. An unfitted model is simply fitted.

        Parameters
        ----------
        interactions : Interactions or scipy.sparse matrix
            Interactions to train on (ids may be new).
        user_features, item_features : Features, optional
            Side information of new or known entities.
        epochs : int, optional
            Passes over ``interactions`` (default ``self.epochs``).
        show_progress : bool
            Show a progress bar.

        Returns
        -------
        self
        """
        if not self.is_fitted:
            return self.fit(
                interactions,
                user_features=user_features,
                item_features=item_features,
                show_progress=show_progress,
            )
        data = as_interactions(interactions)
        self._check_params()
        user_features = self._check_features(user_features, "user_features")
        item_features = self._check_features(item_features, "item_features")
        n_epochs = self.epochs if epochs is None else epochs
        _check_number(n_epochs, "epochs", 0, 1e9, integer=True)
        users, uidx = self.users_.extend(data.users.ids_array)
        items, iidx = self.items_.extend(data.items.ids_array)
        coo = data.matrix.tocoo()
        new = sp.csr_matrix(
            (coo.data, (uidx[coo.row], iidx[coo.col])),
            shape=(len(users), len(items)),
            dtype=np.float32,
        )
        old = self.seen_.tocoo()
        seen = sp.csr_matrix(
            (old.data, (old.row, old.col)), shape=(len(users), len(items)), dtype=np.float32
        )
        seen = seen.maximum(new).tocsr()
        seen.sort_indices()
        rng = np.random.default_rng([int(self.random_state), int(self.epochs_done_) + 1])
        self._grow_side("user", len(self.users_), users, user_features, rng)
        self._grow_side("item", len(self.items_), items, item_features, rng)
        self.users_, self.items_, self.seen_ = users, items, seen
        self._train(_positives(new), users, items, int(n_epochs), show_progress)
        self._refresh()
        return self

    def _train(
        self, positives: sp.csr_matrix, users: Vocabulary, items: Vocabulary, epochs: int,
        show_progress: bool,
    ) -> None:  # fmt: skip
        n_users, n_items = len(users), len(items)
        row_of = np.repeat(np.arange(n_users, dtype=np.int32), np.diff(positives.indptr))
        uf = (self.user_features_indptr_, self.user_features_indices_, self.user_features_data_)
        itf = (self.item_features_indptr_, self.item_features_indices_, self.item_features_data_)
        if uf[0].shape[0] != n_users + 1 or itf[0].shape[0] != n_items + 1:
            raise RuntimeError("feature matrices do not match the vocabularies")  # internal
        threads = search.resolve_threads(self.num_threads)
        seed = int(self.random_state) & 0xFFFFFFFFFFFFFFFF
        dropout = float(self.identity_dropout)
        identity = self._item_identity() if dropout > 0.0 else None
        if (
            identity is not None
            and not ((identity >= 0) & (np.diff(self.item_features_indptr_) > 1)).any()
        ):
            identity = None  # no item has side features to fall back on: nothing to drop
        # With a progress bar, one kernel call per epoch; without, one call for all epochs
        # (the inputs are checked once and the threads start once per epoch, not per call).
        chunk = 1 if show_progress else max(epochs, 1)
        bar = tqdm(total=epochs, desc="Hybrid", disable=not show_progress, leave=False)
        done = 0
        while done < epochs:
            n = min(chunk, epochs - done)
            _core.hybrid_epoch(
                uf, itf, positives.indptr, positives.indices, row_of,
                self._state("user"), self._state("item"),
                int(self.factors), _LOSSES[self.loss], _SCHEDULES[self.learning_schedule],
                float(self.learning_rate), float(self.rho), float(self.epsilon),
                float(self.user_alpha), float(self.item_alpha),
                int(self.max_sampled), int(self.k), int(self.n),
                seed, int(self.epochs_done_), threads, n, dropout, identity,
            )  # fmt: skip
            self.epochs_done_ += n
            done += n
            bar.update(n)
        bar.close()
        for side in _SIDES:
            emb = getattr(self, f"{side}_feature_emb_")
            if not np.isfinite(emb).all():
                from tastebud._errors import FitError

                raise FitError(
                    f"{side} embeddings diverged (NaN/inf): lower learning_rate or raise "
                    f"{side}_alpha."
                )

    def _item_identity(self) -> np.ndarray:
        """The identity feature index of every item (int32, -1 where it has none)."""
        names = self.item_feature_names_.astype(str)
        is_identity = np.char.startswith(names, IDENTITY_PREFIX) if names.size else names
        indptr, indices = self.item_features_indptr_, self.item_features_indices_
        out = np.full(indptr.shape[0] - 1, -1, np.int32)
        if indices.size:
            hit = np.flatnonzero(is_identity[indices])
            rows = np.searchsorted(indptr, hit, side="right") - 1
            out[rows] = indices[hit]
        return out

    # ----------------------------------------------------------------- persistence
    def _extra_state(self) -> dict[str, Any]:
        return {"epochs_done": int(self.epochs_done_)}

    def _set_extra_state(self, state: dict[str, Any]) -> None:
        self.epochs_done_ = int(state.get("epochs_done", 0))

    def _validate_loaded(self) -> None:
        f = int(self.factors)
        for side in _SIDES:
            n = len(self.users_) if side == "user" else len(self.items_)
            names = getattr(self, f"{side}_feature_names_")
            if names is None or names.ndim != 1:
                raise ValueError(f"{side}_feature_names_ is missing or malformed.")
            nf = names.shape[0]
            for name, shape in (
                ("feature_emb_", (nf, f)),
                ("feature_bias_", (nf,)),
                ("feature_emb_acc_", (nf, f)),
                ("feature_bias_acc_", (nf,)),
            ):
                value = getattr(self, f"{side}_{name}")
                if value is None or value.shape != shape or value.dtype != np.float32:
                    raise ValueError(f"{side}_{name} must be float32 of shape {shape}.")
            try:
                m = self._side_matrix(side)
                m.check_format(full_check=True)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{side} feature matrix is corrupt: {exc}") from exc
            if m.shape[0] != n:
                raise ValueError(f"{side} feature matrix has {m.shape[0]} rows; expected {n}.")
        self._refresh()

    # ----------------------------------------------------------------- scoring hooks
    def _user_embeddings(self, user_indices: np.ndarray | None, rows: sp.csr_matrix) -> np.ndarray:
        if user_indices is not None:
            return self._user_vecs[user_indices]
        return self._fold_in(rows, None, 20)

    def _item_embeddings(self) -> np.ndarray:
        return self._item_vecs

    def _item_bias(self) -> np.ndarray:
        return self._item_b

    def _similar_items_indices(
        self, item_indices: np.ndarray, k: int, allow: np.ndarray | None, deny: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        vectors = self._item_repr
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

    # ----------------------------------------------------------------- cold start
    def _feature_rows(self, features: Features | sp.spmatrix, side: str) -> sp.csr_matrix:
        """Rows of ``features`` mapped onto this model's feature columns of ``side``.

        Feature names the model does not know are ignored (they have no embedding)."""
        names = getattr(self, f"{side}_feature_names_")
        if sp.issparse(features):
            m = sp.csr_matrix(features, dtype=np.float32)
            if m.shape[1] != names.shape[0]:
                raise ValueError(
                    f"{side} feature rows must have {names.shape[0]} columns (one per model "
                    f"feature); got {m.shape[1]}."
                )
            if m.nnz and not np.isfinite(m.data).all():
                raise ValueError(f"{side} feature values must be finite.")
            return m
        features = self._check_features(features, f"{side}_features")
        assert features is not None
        lookup = Vocabulary(names.astype(str), "feature")
        pos = lookup.index(features.names.astype(str), missing="negative")
        coo = features.matrix.tocoo()
        keep = pos[coo.col] >= 0
        return sp.csr_matrix(
            (coo.data[keep], (coo.row[keep], pos[coo.col[keep]])),
            shape=(features.shape[0], names.shape[0]),
            dtype=np.float32,
        )

    def _fold_in(
        self, rows: sp.csr_matrix, feature_rows: sp.csr_matrix | None, epochs: int
    ) -> np.ndarray:
        """(n, factors + 1) user vectors for new users: features, then SGD on interactions."""
        f = int(self.factors)
        n = rows.shape[0]
        if feature_rows is None:
            start = np.zeros((n, f), np.float32)
            bias = np.zeros(n, np.float32)
        else:
            start = np.ascontiguousarray(feature_rows @ self.user_feature_emb_, dtype=np.float32)
            bias = np.asarray(feature_rows @ self.user_feature_bias_, dtype=np.float32).reshape(-1)
        pos = _positives(rows)
        p = _core.hybrid_fold_in(
            self._item_repr, self._item_b, pos.indptr, pos.indices,
            np.ascontiguousarray(start.reshape(n, f)), int(epochs), _LOSSES[self.loss],
            float(self.learning_rate), float(self.user_alpha), int(self.max_sampled),
            int(self.random_state) & 0xFFFFFFFFFFFFFFFF,
            search.resolve_threads(self.num_threads),
        )  # fmt: skip
        return np.ascontiguousarray(np.column_stack([p, bias]), dtype=np.float32)

    def recommend_for(
        self,
        interactions: Any = None,
        k: int = 10,
        *,
        user_features: Features | sp.spmatrix | None = None,
        exclude_seen: bool = True,
        items: Any = None,
        exclude: Any = None,
        unknown_items: str = "error",
        fold_in_epochs: int = 20,
    ) -> Recommendations:
        """Top-``k`` items for new users from their features and/or a few interactions.

        A new user's vector starts as the sum of the embeddings of its known features (zero
        without features) and is then refined by ``fold_in_epochs`` passes of the model's
        loss over its interactions with every item parameter fixed (fold-in; LightFM has no
        equivalent: lightfm#210, #645).

        Parameters
        ----------
        interactions : as in ``Recommender.recommend_for``, optional
            The new users' interactions.
        user_features : Features or scipy sparse, optional
            Rows = the new users (a ``Features`` is aligned to the labels of
            ``interactions`` when both are given); unknown feature names are ignored.
            A sparse matrix must have one column per model user feature
            (``user_feature_names_``).
        fold_in_epochs : int
            SGD passes over each new user's interactions.

        Other parameters are as in ``Recommender.recommend_for``.

        Examples
        --------
        >>> from tastebud.data import datasets
        >>> data = datasets.synthetic(300, 200, 6000, random_state=0)
        >>> model = Hybrid(factors=16, epochs=5, num_threads=1).fit(
        ...     data.interactions, user_features=data.user_features, show_progress=False)
        >>> newcomer = data.user_features.align(data.user_features.ids.ids_array[:1])
        >>> model.recommend_for({"new": [3, 17]}, k=5).ids.shape
        (1, 5)
        >>> model.recommend_for(user_features=newcomer, k=5).ids.shape
        (1, 5)
        """
        self._check_fitted()
        if unknown_items not in ("error", "ignore"):
            raise ValueError(f"unknown_items must be 'error' or 'ignore'; got {unknown_items!r}.")
        _check_number(fold_in_epochs, "fold_in_epochs", 0, 1e6, integer=True)
        k = check_k(k, len(self.items_))
        if interactions is None and user_features is None:
            raise ValueError("recommend_for needs interactions and/or user_features.")
        feature_rows = None
        if interactions is not None:
            labels, rows = self._rows_from(interactions, unknown_items)
            if user_features is not None:
                if isinstance(user_features, Features):
                    user_features = user_features.align(labels)
                feature_rows = self._feature_rows(user_features, "user")
                if feature_rows.shape[0] != rows.shape[0]:
                    raise ValueError(
                        f"user_features must have one row per new user ({rows.shape[0]}); "
                        f"got {feature_rows.shape[0]}."
                    )
        else:
            feature_rows = self._feature_rows(user_features, "user")
            labels = (
                user_features.ids.ids_array
                if isinstance(user_features, Features)
                else np.arange(feature_rows.shape[0])
            )
            rows = sp.csr_matrix((feature_rows.shape[0], len(self.items_)), dtype=np.float32)
        rows.sort_indices()
        vecs = self._fold_in(rows, feature_rows, fold_in_epochs)
        allow, deny = self._candidate_lists(items, exclude)
        idx, scores = search.topk(
            vecs, self._item_vecs, k, exclude=rows if exclude_seen else None, allow=allow,
            deny=deny, item_bias=self._item_b,
        )  # fmt: skip
        return Recommendations.from_indices(labels, self.items_, idx, scores)

    def score_items(self, item_features: Features | sp.spmatrix, users: Any) -> np.ndarray:
        """Scores of items absent at fit time, from their features, for known users.

        A new item's representation is the sum of the embeddings and biases of its known
        features (names the model never saw are ignored; no identity feature exists for it).

        Parameters
        ----------
        item_features : Features or scipy sparse
            Rows = the new items. A sparse matrix must have one column per model item
            feature (``item_feature_names_``).
        users : raw user id or array of them
            Known users.

        Returns
        -------
        float32 ndarray (n_users, n_new_items)
            On the scale of ``score``: comparable with the scores of known items.

        Examples
        --------
        >>> from tastebud.data import Features, datasets
        >>> data = datasets.synthetic(300, 200, 6000, random_state=0)
        >>> model = Hybrid(factors=16, epochs=5, num_threads=1).fit(
        ...     data.interactions, item_features=data.item_features, show_progress=False)
        >>> new_items = Features.from_multilabel(
        ...     ["new-a", "new-b"], [["genre=g1", "tag=t3"], ["genre=g4"]])
        >>> model.score_items(new_items, [0, 1, 2]).shape
        (3, 2)
        """
        self._check_fitted()
        uidx = self.users_.index(users)
        rows = self._feature_rows(item_features, "item")
        q = np.asarray(rows @ self.item_feature_emb_, dtype=np.float32).reshape(rows.shape[0], -1)
        b = np.asarray(rows @ self.item_feature_bias_, dtype=np.float32).reshape(-1)
        user = self._user_vecs[uidx]
        f = int(self.factors)
        out = user[:, :f] @ q.T + user[:, f : f + 1] + b[None, :]
        return np.asarray(out, dtype=np.float32)


# =============================================================================== Blend
_NORMALIZATIONS = ("zscore", "minmax", "rank")


def _normalize(scores: np.ndarray, candidates: np.ndarray, how: str) -> np.ndarray:
    """Per-row normalisation of ``scores`` with statistics over ``candidates`` (bool mask).

    Non-finite scores count as missing: they get the row's lowest normalised value."""
    s = np.asarray(scores, dtype=np.float64)
    finite = np.isfinite(s)
    use = candidates & finite
    count = use.sum(axis=1, keepdims=True)
    if how == "rank":
        n, m = s.shape
        flat = np.where(finite, s, -np.inf).ravel()
        rowid = np.repeat(np.arange(n), m)
        order = np.lexsort((flat, rowid))
        fs, rs, cs = flat[order], rowid[order], use.ravel()[order]
        cum = np.concatenate([[0], np.cumsum(cs)])[:-1]
        new_group = np.ones(flat.size, dtype=bool)
        new_group[1:] = (fs[1:] != fs[:-1]) | (rs[1:] != rs[:-1])
        group_start = np.maximum.accumulate(np.where(new_group, np.arange(flat.size), 0))
        less = cum[group_start] - cum[rs * m]
        out = np.empty(flat.size, dtype=np.float64)
        out[order] = less
        out = out.reshape(n, m) / np.maximum(count, 1)
        return out.astype(np.float32)
    safe = np.maximum(count, 1)
    if how == "zscore":
        center = np.where(use, s, 0.0).sum(axis=1, keepdims=True) / safe
        dev = np.where(use, s - center, 0.0)
        scale = np.sqrt((dev * dev).sum(axis=1, keepdims=True) / safe)
    else:
        center = np.where(use, s, np.inf).min(axis=1, keepdims=True)
        scale = np.where(use, s, -np.inf).max(axis=1, keepdims=True) - center
    center = np.where(count > 0, center, 0.0)
    scale = np.where((count > 0) & (scale > 0), scale, np.inf)
    out = (np.where(finite, s, 0.0) - center) / scale
    low = np.where(use, out, np.inf).min(axis=1, keepdims=True)
    low = np.where(np.isfinite(low), low, 0.0)
    out = np.where(finite, out, low)
    return out.astype(np.float32)


class Blend(Recommender):
    """Weighted ensemble of fitted recommenders, with an optional switching rule.

    For each user, every component's scores are normalised over the candidate items (the
    items the user has not interacted with in training), multiplied by the component's
    weight and summed. Normalisation makes scales comparable: models of the contract score
    on arbitrary scales (dot products, similarities, counts).

    Parameters
    ----------
    models : dict of str to Recommender, or list of Recommender
        The components (fitted, or fitted by ``fit``). A list is named by class name
        (``"Hybrid"``, ``"Hybrid_1"``, ...).
    weights : dict of str to float, or sequence of float, optional
        Non-negative weights (default: equal). ``fit_weights`` tunes them.
    normalization : {"zscore", "minmax", "rank"}
        Per user: ``(s - mean) / std``, ``(s - min) / (max - min)``, or the fraction of
        candidate items scored strictly lower (constant rows give 0).
    switch : dict, optional
        ``{"model": name, "below": n, "on": "users" | "items" | "both"}``: users (default)
        with fewer than ``n`` training interactions are ranked by the named model alone, and
        (``"items"``) items with fewer than ``n`` training interactions take the named
        model's normalised score (e.g. a content model for cold items) (Burke 2002, switching
        hybrids).

    Notes
    -----
    ``save`` writes each component with its own ``save`` into the one file (as a byte array
    next to the blend's state); no pickle. ``similar_items`` is not defined for a blend.
    """

    _needs_all_training_rows = True  # rebuilt from the whole training matrix
    _fitted_arrays = ("weights_", "components_blob_", "components_sizes_")

    def __init__(
        self,
        models: Mapping[str, Recommender] | Sequence[Recommender],
        weights: Mapping[str, float] | Sequence[float] | None = None,
        normalization: str = "zscore",
        switch: Mapping[str, Any] | None = None,
    ) -> None:
        self.models = models
        self.weights = weights
        self.normalization = normalization
        self.switch = switch

    # ----------------------------------------------------------------- parameters
    def _components(self) -> tuple[list[str], list[Recommender]]:
        models = self.models
        if isinstance(models, Mapping):
            names = [str(k) for k in models]
            comps = list(models.values())
        elif isinstance(models, Sequence) and not isinstance(models, str):
            comps = list(models)
            names = []
            for m in comps:
                base = type(m).__name__
                name, i = base, 1
                while name in names:
                    name, i = f"{base}_{i}", i + 1
                names.append(name)
        else:
            raise TypeError(
                f"models must be a dict of name -> Recommender or a list of them; got "
                f"{type(models).__name__}."
            )
        if not comps:
            raise ValueError("models must not be empty.")
        for name, m in zip(names, comps, strict=True):
            if not isinstance(m, Recommender):
                raise TypeError(f"model {name!r} is a {type(m).__name__}, not a Recommender.")
        return names, comps

    def _initial_weights(self, names: list[str]) -> np.ndarray:
        w = self.weights
        if w is None:
            return np.full(len(names), 1.0 / len(names))
        if isinstance(w, Mapping):
            unknown = set(map(str, w)) - set(names)
            if unknown:
                raise KeyError(f"weights name unknown models {sorted(unknown)}; models: {names}.")
            arr = np.array([float(w.get(n, 0.0)) for n in names])
        else:
            arr = np.asarray(w, dtype=np.float64).reshape(-1)
            if arr.size != len(names):
                raise ValueError(
                    f"weights must have one value per model ({len(names)}); got {arr.size}."
                )
        if not np.isfinite(arr).all() or (arr < 0).any() or arr.sum() <= 0:
            raise ValueError(f"weights must be finite, >= 0 and not all 0; got {arr.tolist()}.")
        return arr

    def _check_params(self, names: list[str]) -> None:
        if self.normalization not in _NORMALIZATIONS:
            raise ValueError(
                f"normalization must be one of {_NORMALIZATIONS}; got {self.normalization!r}."
            )
        sw = self.switch
        if sw is not None:
            if not isinstance(sw, Mapping) or "model" not in sw or "below" not in sw:
                raise ValueError(
                    "switch must be a dict {'model': name, 'below': n[, 'on': 'users'|'items'|"
                    f"'both']}}; got {sw!r}."
                )
            if sw["model"] not in names:
                raise KeyError(f"switch model {sw['model']!r} is not one of {names}.")
            _check_number(sw["below"], "switch['below']", 0, 1e12, integer=True)
            if sw.get("on", "users") not in ("users", "items", "both"):
                raise ValueError(f"switch['on'] must be users, items or both; got {sw['on']!r}.")

    # ----------------------------------------------------------------- fitting
    def fit(self, interactions: Any, *, refit: bool = True) -> Blend:
        """Fit every component on ``interactions`` (``refit=False``: keep fitted ones).

        Components kept with ``refit=False`` must have been fitted on the same user and
        item vocabularies (e.g. a ``Hybrid`` fitted with features on the same data).

        Returns
        -------
        self
        """
        data = as_interactions(interactions)
        names, comps = self._components()
        self._check_params(names)
        weights = self._initial_weights(names)
        if data.nnz == 0:
            raise ValueError("interactions are empty: nothing to fit.")
        with contextlib.ExitStack() as restore:
            # A component that fails leaves the blend and every component as they were (not
            # some components refitted on the new data next to the old vocabularies).
            restore.enter_context(_restored_on_error(self))
            for m in comps:
                restore.enter_context(_restored_on_error(m))
            for name, m in zip(names, comps, strict=True):
                if refit or not m.is_fitted:
                    m.fit(data)
                elif m.users_ != data.users or m.items_ != data.items:
                    raise ValueError(
                        f"model {name!r} was fitted on other user/item vocabularies than "
                        "interactions: refit it or use refit=True."
                    )
            self.users_, self.items_, self.seen_ = data.users, data.items, data.matrix
            self.weights_ = weights
            self._names = names
            self._item_counts = np.diff(sp.csc_matrix(data.matrix).indptr)
        return self

    def _fit(self, interactions: Interactions) -> None:  # pragma: no cover - fit is overridden
        self.fit(interactions)

    # ----------------------------------------------------------------- scoring
    def _normalized_blocks(
        self, user_indices: np.ndarray | None, rows: sp.csr_matrix
    ) -> tuple[list[np.ndarray], np.ndarray]:
        n, m = rows.shape[0], len(self.items_)
        candidates = np.ones((n, m), dtype=bool)
        r = np.repeat(np.arange(n), np.diff(rows.indptr))
        candidates[r, rows.indices] = False
        _, comps = self._components()
        blocks = []
        for comp in comps:
            s = np.asarray(comp._score_block(user_indices, rows), dtype=np.float64)
            blocks.append(_normalize(s, candidates, self.normalization))
        return blocks, np.diff(rows.indptr)

    def _combine(
        self, blocks: list[np.ndarray], user_counts: np.ndarray, weights: np.ndarray
    ) -> np.ndarray:
        total = np.zeros_like(blocks[0])
        for w, b in zip(weights, blocks, strict=True):
            if w != 0:
                total += np.float32(w) * b
        sw = self.switch
        if sw is not None:
            target = blocks[self._names.index(sw["model"])]
            on = sw.get("on", "users")
            below = int(sw["below"])
            if on in ("items", "both"):
                cold = self._item_counts < below
                total[:, cold] = target[:, cold]
            if on in ("users", "both"):
                cold_users = user_counts < below
                total[cold_users] = target[cold_users]
        return total

    def _score_block(self, user_indices: np.ndarray | None, rows: sp.csr_matrix) -> np.ndarray:
        blocks, counts = self._normalized_blocks(user_indices, rows)
        return self._combine(blocks, counts, self.weights_)

    # ----------------------------------------------------------------- tuning
    def fit_weights(
        self,
        train: Interactions,
        validation: Interactions,
        k: int = 10,
        metric: str = "ndcg",
        *,
        grid: Sequence[float] = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0),
        rounds: int = 3,
        max_users: int = 2000,
        random_state: int = 42,
    ) -> Blend:
        """Tune the weights on a validation split by coordinate search.

        Starting from the current weights, each round visits the models in a seeded random
        order and sets each weight to the grid value that maximises ``metric@k`` on
        ``validation`` (other weights fixed); it stops after ``rounds`` rounds or when a round
        changes nothing. Component scores are computed and normalised once.

        Parameters
        ----------
        train : Interactions
            The training split (fits the blend first if it is not fitted).
        validation : Interactions
            Held-out interactions in the same id space.
        k : int
            List length.
        metric : str
            One of ``tastebud.metrics.RANKING_METRICS``.
        grid : sequence of float
            Candidate weights (>= 0).
        rounds : int
            Most rounds of coordinate search.
        max_users : int
            Validation users sampled (seeded) to bound memory: n x n_items x n_models floats.
        random_state : int
            Seed of the user sample and the visiting order.

        Returns
        -------
        self (``weights_`` updated; ``validation_score_`` holds the best value)
        """
        from tastebud import metrics as M

        if metric not in M.RANKING_METRICS:
            raise ValueError(f"metric must be one of {M.RANKING_METRICS}; got {metric!r}.")
        if not isinstance(validation, Interactions) or not isinstance(train, Interactions):
            raise TypeError("train and validation must be tastebud Interactions.")
        g = np.asarray(grid, dtype=np.float64)
        if g.ndim != 1 or g.size == 0 or not np.isfinite(g).all() or (g < 0).any():
            raise ValueError(f"grid must be non-empty finite weights >= 0; got {list(grid)}.")
        _check_number(rounds, "rounds", 1, 1e6, integer=True)
        _check_number(max_users, "max_users", 1, 1e12, integer=True)
        if not self.is_fitted:
            self.fit(train)
        if validation.items != self.items_ or train.items != self.items_:
            raise ValueError("train and validation must share the blend's item vocabulary.")
        k = check_k(k, len(self.items_))
        rng = np.random.default_rng(random_state)
        users = np.flatnonzero(validation.user_counts() > 0)
        if users.size > max_users:
            users = np.sort(rng.choice(users, max_users, replace=False))
        uidx = self.users_.index(validation.users.ids(users))
        relevant = validation.matrix[users]
        rows = self.seen_[uidx]
        blocks, counts = self._normalized_blocks(uidx, rows)

        def value(w: np.ndarray) -> float:
            if w.sum() <= 0:
                return -np.inf
            total = self._combine(blocks, counts, w)
            rec, _ = search.topk(total, k=k, exclude=rows)
            return float(
                np.nanmean(M.ranking_metrics(rec, relevant, k=k, metrics=(metric,))[metric])
            )

        w = np.asarray(self.weights_, dtype=np.float64).copy()
        best = value(w)
        for _ in range(int(rounds)):
            changed = False
            for j in rng.permutation(w.size):
                for cand in g:
                    if cand == w[j]:
                        continue
                    trial = w.copy()
                    trial[j] = cand
                    v = value(trial)
                    if v > best + 1e-12:
                        best, w, changed = v, trial, True
            if not changed:
                break
        self.weights_ = w / w.sum()
        self.validation_score_ = best
        return self

    # ----------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the blend and every component (each through its own ``save``) to one file.

        The components' files are embedded as byte arrays in the blend's ``.npz``; loading
        reads them back with ``tastebud.load``. No pickle.
        """
        self._check_fitted()
        names, comps = self._components()
        blobs = []
        with tempfile.TemporaryDirectory() as tmp:
            for i, comp in enumerate(comps):
                p = Path(tmp) / f"component{i}.tbud"
                comp.save(p)
                blobs.append(np.frombuffer(p.read_bytes(), dtype=np.uint8))
        self.components_blob_ = np.concatenate(blobs)
        self.components_sizes_ = np.array([b.size for b in blobs], dtype=np.int64)
        self._as_dict = isinstance(self.models, Mapping)
        models, self.models = self.models, names
        try:
            super().save(path)
        finally:
            self.models = models
            del self.components_blob_, self.components_sizes_

    def _extra_state(self) -> dict[str, Any]:
        return {"names": self._names, "as_dict": self._as_dict}

    def _set_extra_state(self, state: dict[str, Any]) -> None:
        names = [str(n) for n in state.get("names", [])]
        blob, sizes = self.components_blob_, self.components_sizes_
        if blob is None or sizes is None or len(sizes) != len(names) or sizes.sum() != blob.size:
            raise ValueError("the blend's component data is missing or inconsistent.")
        comps = []
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(len(names)):
                p = Path(tmp) / f"component{i}.tbud"
                p.write_bytes(blob[offsets[i] : offsets[i + 1]].tobytes())
                comps.append(load(p))
        self.models = dict(zip(names, comps, strict=True)) if state.get("as_dict") else comps
        self._names = names
        del self.components_blob_, self.components_sizes_
        self._item_counts = np.diff(sp.csc_matrix(self.seen_).indptr)

    def _validate_loaded(self) -> None:
        names, comps = self._components()
        self._check_params(names)
        w = np.asarray(self.weights_)
        if w.shape != (len(names),):
            raise ValueError(f"weights_ has shape {w.shape}; expected ({len(names)},).")
        for name, comp in zip(names, comps, strict=True):
            if comp.items_ != self.items_ or comp.users_ != self.users_:
                raise ValueError(f"component {name!r} does not share the blend's vocabularies.")
