"""Content-based filtering: TF-IDF item profiles, user profiles, cosine scores.

The classic recipe (Pazzani & Billsus, "Content-Based Recommendation Systems", The Adaptive
Web, 2007; Lops, de Gemmis & Semeraro, Recommender Systems Handbook ch. 3, 2011): every item
is a TF-IDF vector over its features (genres, tags, words), a user is the weighted sum of the
vectors of the items they interacted with, and items are ranked by the cosine between the two.
It needs no other users, so it is the one model that can rank an item nobody has interacted
with yet (cold start): such an item has a profile from its features like any other.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from tastebud import search
from tastebud.data import Features, Interactions
from tastebud.models.base import Recommender

__all__ = ["ContentBased"]


class ContentBased(Recommender):
    """Recommends items whose features resemble those of the items a user interacted with.

    Item profile: row ``i`` of the item features, term-weighted (``sublinear_tf``), multiplied
    by the smoothed IDF of each feature (``idf``: ``log((1 + n) / (1 + df)) + 1``, as
    scikit-learn's ``TfidfTransformer``) and l2-normalised. User profile: the sum of the
    profiles of the user's training items weighted by the interaction values (minus the user's
    mean value with ``centering=True``, for ratings), l2-normalised. Score: the cosine of the
    two, optionally multiplied by a popularity prior (``popularity_weight``, see Notes).

    Parameters
    ----------
    idf : bool
        IDF-weight the features (rare features count more).
    sublinear_tf : bool
        Use ``1 + log(value)`` instead of the raw value for positive feature values (a tag
        applied 20 times does not count 20 times as much as a tag applied once).
    centering : bool
        Weight each item by ``value - mean(user's values)`` (Lops et al.: disliked items pull
        the profile away). A user whose values are all equal (e.g. binary data) keeps the raw
        values, so centring never empties a profile by itself. (When centred weights cancel,
        e.g. +a and -a on items with identical profiles, a profile whose norm is below 1e-6
        of the weight mass summed into it is treated as empty rather than normalised noise.)
    popularity_weight : float
        ``>= 0``. Multiplies every score by ``((1 + n_i) / (1 + max_j n_j)) ** popularity_weight``,
        where ``n_i`` counts the training users of item ``i``: content decides among items of
        similar popularity, popularity among items of similar content. 0 (default) is pure
        content (cosine).
    num_threads : int
        Threads for scoring; 0 = all cores.
    item_features : Features, optional
        Data, not a hyperparameter: the item features used by ``fit`` when it is called
        without ``item_features=``. It exists so a model can be configured once and fitted by
        code that only calls ``fit(interactions)`` (``tastebud.evaluation.compare``, the CLI
        demo). It is not part of ``get_params()`` (so ``save`` stays JSON + arrays and a
        loaded model needs no features: the fitted profiles are saved as arrays).

    Attributes
    ----------
    profile_data_, profile_indices_, profile_indptr_ : ndarray
        The item profiles (n_items x n_features CSR, rows l2-normalised or empty).
    idf_ : float32 ndarray (n_features,)
        Feature weights (all 1 with ``idf=False``).
    feature_names_ : str ndarray (n_features,)
    item_prior_ : float32 ndarray (n_items,)
        ``(1 + n_i) / (1 + max_j n_j)`` in (0, 1] (used only when ``popularity_weight > 0``).

    Notes
    -----
    Cold start: items without training interactions are recommended like any other, from
    their features (with ``popularity_weight > 0`` they all get the smallest prior, so among
    themselves, e.g. with ``items=`` restricted to new items, they rank by content alone).
    Items without features have an empty profile: their cosine with every user is 0. Users
    without training interactions (or with only featureless items) have an empty profile and
    score every item 0.
    ``score_items`` scores brand-new items (not in the model) from their features alone.

    ``similar_items`` ranks by the cosine of item profiles (ignores the prior).

    The prior exists because pure content scores ignore how likely anyone is to interact with
    an item: on MovieLens, where most movies have only genres, many movies share one profile
    and the cosine alone cannot tell a classic from an obscure film of the same genres. The
    product (a log-linear blend: ``log score = log cos + w log prior``) is what makes a content
    model competitive with popularity there (``benchmarks/compare_peers.py content`` picks
    ``w`` on a validation split of the training data and reports both).

    Examples
    --------
    >>> from tastebud.data import datasets
    >>> data = datasets.synthetic(n_users=50, n_items=40, n_interactions=600, random_state=0)
    >>> model = ContentBased().fit(data.interactions, item_features=data.item_features)
    >>> model.recommend([0], k=3).ids.shape
    (1, 3)
    """

    _fitted_arrays: ClassVar[tuple[str, ...]] = (
        "profile_data_",
        "profile_indices_",
        "profile_indptr_",
        "idf_",
        "feature_names_",
        "item_prior_",
    )
    _DATA_PARAMS: ClassVar[tuple[str, ...]] = ("item_features",)

    def __init__(
        self,
        idf: bool = True,
        sublinear_tf: bool = True,
        centering: bool = False,
        popularity_weight: float = 0.0,
        num_threads: int = 0,
        item_features: Features | None = None,
    ) -> None:
        self.idf = idf
        self.sublinear_tf = sublinear_tf
        self.centering = centering
        self.popularity_weight = popularity_weight
        self.num_threads = num_threads
        self.item_features = item_features

    @classmethod
    def _param_names(cls) -> list[str]:
        # item_features is data: kept out of get_params / set_params / the saved JSON.
        return [p for p in super()._param_names() if p not in cls._DATA_PARAMS]

    # ----------------------------------------------------------------- fitting
    def fit(self, interactions: Any, item_features: Features | None = None) -> ContentBased:
        """Build item profiles from features and remember each user's items.

        Parameters
        ----------
        interactions : Interactions or scipy.sparse matrix
            Users x items. Items of the vocabulary without any interaction are kept (and can
            be recommended: cold start).
        item_features : Features, optional
            Item features; aligned to the interaction item ids with ``Features.align`` (items
            missing from it get an empty profile). Defaults to the ``item_features`` given to
            the constructor.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            No item features, or invalid hyperparameters.
        TypeError
            ``item_features`` is not a ``Features``.
        """
        features = item_features if item_features is not None else self.item_features
        if features is None:
            raise ValueError(
                "ContentBased needs item features: call fit(interactions, item_features=...) "
                "or construct ContentBased(item_features=...)."
            )
        if not isinstance(features, Features):
            raise TypeError(
                f"item_features must be a tastebud.Features; got {type(features).__name__}."
            )
        self._validate()  # before the base class stores anything
        self._fit_features = features
        try:
            super().fit(interactions)
        finally:
            del self._fit_features
        return self

    def _validate(self) -> None:
        for name in ("idf", "sublinear_tf", "centering"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool; got {getattr(self, name)!r}.")
        w = self.popularity_weight
        if isinstance(w, bool) or not isinstance(w, (int, float, np.number)):
            raise TypeError(f"popularity_weight must be a number >= 0; got {w!r}.")
        if not (np.isfinite(w) and w >= 0):
            raise ValueError(f"popularity_weight must be a finite number >= 0; got {w!r}.")
        search.resolve_threads(self.num_threads)

    def _fit(self, interactions: Interactions) -> None:
        aligned = self._fit_features.align(interactions.items)
        matrix = sp.csr_matrix(aligned.matrix, dtype=np.float64)
        n_items = matrix.shape[0]
        df = np.bincount(matrix.indices[matrix.data != 0], minlength=matrix.shape[1])
        if self.idf:
            idf = np.log((1.0 + n_items) / (1.0 + df)) + 1.0
        else:
            idf = np.ones(matrix.shape[1])
        self.idf_ = idf.astype(np.float32)
        self.feature_names_ = np.asarray(aligned.names, dtype=str)
        profiles = self._profiles_from(matrix)
        self.profile_data_ = profiles.data
        self.profile_indices_ = profiles.indices
        self.profile_indptr_ = profiles.indptr
        counts = np.bincount(interactions.matrix.indices, minlength=n_items).astype(np.float64)
        self.max_item_users_ = int(counts.max()) if counts.size else 0
        self.item_prior_ = ((1.0 + counts) / (1.0 + self.max_item_users_)).astype(np.float32)
        self._set_extra_state(self._extra_state())

    def _extra_state(self) -> dict[str, Any]:
        return {"max_item_users": self.max_item_users_}

    def _profiles_from(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        """TF transform, IDF weighting and l2 normalisation of raw feature rows."""
        m = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
        m.eliminate_zeros()
        if self.sublinear_tf:
            pos = m.data > 0
            m.data[pos] = 1.0 + np.log(m.data[pos])
        m = sp.csr_matrix(m @ sp.diags(self.idf_.astype(np.float64)))
        out = search.normalize_rows(m)
        assert sp.issparse(out)
        out.indices = out.indices.astype(np.int32)
        out.indptr = out.indptr.astype(np.int64)
        return out

    def _set_extra_state(self, state: dict[str, Any]) -> None:
        self.max_item_users_ = int(state.get("max_item_users", 0))
        shape = (self.profile_indptr_.size - 1, self.idf_.size)
        self._profiles = sp.csr_matrix(
            (self.profile_data_, self.profile_indices_, self.profile_indptr_), shape=shape
        )
        if self.is_fitted and shape[0] != len(self.items_):
            raise ValueError(
                f"item profiles have {shape[0]} rows but the model has {len(self.items_)} items."
            )
        self._profile_norms = np.sqrt(search.row_sq_norms(self._profiles))
        # Scoring profiles: the item profiles scaled by the prior, so that u . (s_i p_i) =
        # s_i cos(u, i) runs as one sparse product through the top-k kernel.
        if self.popularity_weight:
            scale = np.power(self.item_prior_.astype(np.float64), float(self.popularity_weight))
            self._scoring = sp.csr_matrix(sp.diags(scale) @ self._profiles, dtype=np.float32)
        else:
            self._scoring = self._profiles

    # ----------------------------------------------------------------- scoring
    def user_profiles(self, rows: sp.csr_matrix) -> sp.csr_matrix:
        """l2-normalised user profiles (n x n_features CSR) from interaction rows (n x n_items).

        Thread-safety: read-only; safe to call concurrently.
        """
        self._check_fitted()
        w = sp.csr_matrix(rows, dtype=np.float64, copy=True)
        if self.centering and w.nnz:
            counts = np.diff(w.indptr)
            row_of = np.repeat(np.arange(w.shape[0]), counts)
            means = np.bincount(row_of, weights=w.data, minlength=w.shape[0]) / np.maximum(
                counts, 1
            )
            centred = w.data - means[row_of]
            spread = np.bincount(row_of, weights=np.abs(centred), minlength=w.shape[0])
            w.data = np.where(spread[row_of] > 0, centred, w.data)
        profile = sp.csr_matrix(w @ self._profiles.astype(np.float64))
        # Centred weights can cancel (e.g. +a and -a on identical profiles): a profile whose
        # norm is rounding noise next to the weights summed into it is treated as empty,
        # instead of normalising noise to a unit vector.
        mass = abs(w) @ self._profile_norms
        noise = np.sqrt(search.row_sq_norms(profile)) <= 1e-6 * mass
        if noise.any():
            profile = sp.csr_matrix(sp.diags((~noise).astype(np.float64)) @ profile)
        out = search.normalize_rows(profile)
        assert sp.issparse(out)
        return out

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
        # Sparse user profiles x sparse item profiles, blocked, reduced by the C++ top-k.
        return search.topk(
            self.user_profiles(rows),
            self._scoring,
            k,
            exclude=exclude,
            allow=allow,
            deny=deny,
            num_threads=num_threads or self.num_threads,
        )

    def _score_block(self, user_indices: np.ndarray | None, rows: sp.csr_matrix) -> np.ndarray:
        return (self.user_profiles(rows) @ self._scoring.T).toarray().astype(np.float32)

    def _similar_items_indices(
        self, item_indices: np.ndarray, k: int, allow: np.ndarray | None, deny: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        n = item_indices.size
        itself = sp.csr_matrix(
            (np.ones(n, np.float32), item_indices, np.arange(n + 1)),
            shape=(n, self._profiles.shape[0]),
        )
        return search.topk(
            self._profiles[item_indices],
            self._profiles,
            k,
            exclude=itself,
            allow=allow,
            deny=deny,
            num_threads=self.num_threads,
        )

    def item_profiles(self, features: Features) -> sp.csr_matrix:
        """Profiles (n x n_features CSR) of items described by ``features``.

        Columns are matched by feature name; features the model never saw are ignored
        (they have no IDF weight).
        """
        self._check_fitted()
        if not isinstance(features, Features):
            raise TypeError(f"features must be a tastebud.Features; got {type(features).__name__}.")
        order = np.argsort(self.feature_names_)
        sorted_names = self.feature_names_[order]
        names = np.asarray(features.names, dtype=str)
        pos = np.minimum(np.searchsorted(sorted_names, names), max(sorted_names.size - 1, 0))
        known = sorted_names.size > 0
        hit = (sorted_names[pos] == names) if known else np.zeros(names.size, bool)
        col_map = np.where(hit, order[pos] if known else 0, -1)
        coo = features.matrix.tocoo()
        keep = col_map[coo.col] >= 0
        raw = sp.csr_matrix(
            (coo.data[keep], (coo.row[keep], col_map[coo.col[keep]])),
            shape=(features.shape[0], self.idf_.size),
        )
        return self._profiles_from(raw)

    def score_items(self, users: Any, features: Features) -> np.ndarray:
        """Scores of brand-new items (described only by features) for known users.

        Parameters
        ----------
        users : raw user id or array of them
        features : Features
            One row per new item; columns matched to the training features by name.

        Returns
        -------
        float32 ndarray (n_users, n_new_items)
            Cosine of user and item profiles, times the prior of an item without interactions
            (``(1 / (1 + max_j n_j)) ** popularity_weight``), i.e. on the scale of
            ``recommend`` scores: a new item can be merged into a list.
        """
        self._check_fitted()
        uidx = self.users_.index(users)
        profiles = self.item_profiles(features)
        scores = np.asarray((self.user_profiles(self.seen_[uidx]) @ profiles.T).toarray())
        if self.popularity_weight:
            prior = 1.0 / (1.0 + self.max_item_users_)
            scores = scores * prior ** float(self.popularity_weight)
        return scores.astype(np.float32)
