"""Item2Vec: item embeddings learned from behaviour sequences, and next-item recommendation.

Item2Vec (Barkan & Koenigstein, "Item2Vec: Neural Item Embedding for Collaborative
Filtering", MLSP 2016) trains word2vec's skip-gram with negative sampling (SGNS; Mikolov et
al., NIPS 2013) on item sequences instead of sentences: items consumed close together get
similar vectors. It powers "because you watched X" rows (``similar_items``) and next-item
suggestions from a user's or an anonymous session's recent items (``recommend``,
``recommend_for``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numba
import numpy as np
import scipy.sparse as sp

from tastebud import search
from tastebud._errors import DataWarning
from tastebud.data import Interactions, Sequences
from tastebud.kernels import item2vec as kernels
from tastebud.models.base import Recommendations, Recommender, check_k

__all__ = ["Item2Vec"]

_MODES = ("sequence", "basket")
_UPDATES = ("pair", "window")
_SCORINGS = ("context", "input")


#: multi-threaded fits train on private copies of the vectors (merged ``_ROUNDS`` times per
#: epoch) when the copies take at most this many bytes, else Hogwild on the shared vectors
#: (large catalogues, where hot-row cache contention matters less)
_LOCAL_COPY_BYTES = 256 * 2**20
_ROUNDS = 16


def _check_number(value: Any, name: str, low: float, high: float, *, low_open: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number; got {type(value).__name__} {value!r}.")
    v = float(value)
    ok = np.isfinite(v) and (v > low if low_open else v >= low) and v <= high
    if not ok:
        bracket = "(" if low_open else "["
        raise ValueError(f"{name} must be a number in {bracket}{low}, {high}]; got {value!r}.")
    return v


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(
            f"{name} must be an int >= {minimum}; got {type(value).__name__} {value!r}."
        )
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}.")
    return int(value)


def _splitmix_seed(seed: int, stream: int) -> int:
    """Initial SplitMix64 state of RNG stream ``stream`` (one per Hogwild chunk)."""
    mask = (1 << 64) - 1
    z = (seed * kernels.GOLDEN + (stream + 1) * kernels.MIX2) & mask
    z = ((z ^ (z >> 30)) * kernels.MIX1) & mask
    return (z ^ (z >> 27)) & mask


def keep_probabilities(counts: np.ndarray, subsample: float) -> np.ndarray:
    """word2vec's frequency subsampling: keep an event of item ``i`` with probability
    ``(sqrt(c_i / t) + 1) * t / c_i`` (capped at 1), ``t = subsample * total count``.

    Same formula as word2vec.c and gensim (Mikolov et al. 2013 §2.3). ``subsample=0``
    disables it (all ones).
    """
    counts = np.asarray(counts, dtype=np.float64)
    keep = np.ones(counts.shape[0], dtype=np.float64)
    if subsample > 0 and counts.sum() > 0:
        t = subsample * counts.sum()
        pos = counts > 0
        keep[pos] = np.minimum(1.0, (np.sqrt(counts[pos] / t) + 1.0) * t / counts[pos])
    return keep


class Item2Vec(Recommender):
    """Skip-gram with negative sampling over item sequences (Item2Vec), Hogwild-parallel.

    Parameters
    ----------
    factors : int
        Embedding dimension.
    window : int
        Maximum distance between a centre item and its context items (``sequence`` mode). As
        in word2vec the effective window of each centre is drawn uniformly in ``1..window``.
    negatives : int
        Noise items per centre (0 disables negative sampling, which leaves nothing to learn
        from but co-occurrence; keep it >= 1).
    ns_exponent : float
        Noise distribution ``count ** ns_exponent`` (0.75 in word2vec).
    subsample : float
        Frequency subsampling threshold (word2vec's ``sample``); 0 disables it.
    learning_rate, min_learning_rate : float
        Linear decay from ``learning_rate`` to ``min_learning_rate`` over training.
    epochs : int
        Passes over the sequences.
    min_count : int
        Items with fewer training events than this get no vector (zero): they are listed in
        ``dropped_items_`` and a ``DataWarning`` is issued. (Items with no event at all also
        get a zero vector, silently: there is nothing to learn about them.)
    mode : {"sequence", "basket"}
        ``"sequence"``: context = neighbours within ``window`` in time order (timestamps,
        ties by item index). ``"basket"``: context = every other item of the same sequence
        (the Item2Vec paper's set formulation; cost grows with the square of its length, so
        use it with sessions or baskets, i.e. ``session_gap``).
    session_gap : int, optional
        Cut each user's sequence where two consecutive events are more than this apart (in
        timestamp units); training windows never cross a cut. ``None``: one sequence per user.
    history : int or None
        Number of most recent items that describe a user or session in ``recommend`` /
        ``recommend_for`` (``None``: all).
    recency_decay : float in (0, 1]
        The ``a``-th most recent item (``a = 0`` for the last one) weighs
        ``recency_decay ** a`` in the user's mean vector; 1 weighs all equally.
    scoring : {"context", "input"}
        Which vectors of a candidate item ``i`` the user's mean is compared with in
        ``recommend`` / ``recommend_for`` / ``score``: ``"context"`` its output (context)
        vector ``c_i``, the direction in which SGNS itself predicts neighbours
        (``sigma(v_j . c_i)``, Mikolov et al. 2013), or ``"input"`` its input vector ``v_i``
        (the usual "cosine of item embeddings"). ``similar_items`` always compares input
        vectors. ``"context"`` was chosen on validation splits of the MovieLens training data
        (not test data); with the same scoring applied to gensim's vectors it lifts both
        libraries' next-item hit@10 (benchmarks/README.md, "Item2Vec vs gensim").
    popularity_weight : float >= 0
        Popularity-aware blend for ranking (not for ``similar_items``)::

            score(u, i) = cos(mean_u, w_i) + popularity_weight * log1p(n_i) / log1p(max n)

        where ``mean_u`` is the recency-weighted mean of the unit input vectors of the user's
        recent items, ``w_i`` the vector of item ``i`` chosen by ``scoring`` and ``n_i`` its
        number of training events. SGNS with a unigram noise distribution learns a shifted
        PMI (Levy & Goldberg, NIPS 2014), which deliberately discounts popularity; the
        log-count term restores the ``log P(i)`` part of ``log P(i | context) = PMI + log
        P(i)``, so next-item hit rates beat the popularity baseline instead of trailing it. 0
        gives pure embedding similarity. The defaults ``scoring="context"``,
        ``popularity_weight=0.5`` and ``recency_decay=0.5`` were chosen on a validation split
        carved out of the MovieLens training data, never on test data (``python
        benchmarks/compare_peers.py item2vec --tune``). A user or session without a
        usable history (no item with a vector) has no ``mean_u``: ``recommend``,
        ``recommend_for`` and ``score`` then rank by training count and score
        ``log1p(n_i) / log1p(max n)`` (in [0, 1]), whatever ``popularity_weight`` is.
    update : {"pair", "window"}
        ``"pair"``: word2vec's update (Mikolov et al. 2013; word2vec.c, gensim): each (centre,
        context) pair draws its own ``negatives`` noise items and is applied at once.
        ``"window"``: pWord2Vec's shared-negative mini-batch (Ji et al., IEEE TPDS 2019), one
        set of negatives per centre for its whole window: about 1.3-1.5x less CPU time, same
        expected gradient, but fewer distinct negatives. On MovieLens its plain input-cosine
        next-item hit@10 was 13-17% lower than ``"pair"``'s (and gensim's), while with the
        popularity blend both rules scored alike (benchmarks/README.md, "Item2Vec vs
        gensim"; ``compare_peers.py item2vec --update window``).
    max_dot : float >= 0
        Skip a (context, target) update whose dot product is at least ``max_dot`` in
        absolute value: gensim's rule (``MAX_EXP = 6``), under which saturated pairs are
        left alone. 0 always updates (word2vec.c clamps the sigmoid instead).
    init_range : float > 0
        Input vectors start uniform in ``(-init_range, init_range) / factors``, output vectors
        at zero. 1 is gensim 4's range; word2vec.c uses 0.5. The random part stays largest in
        rarely seen items, which lowers their cosine scores: a mild popularity prior that
        measurably changes next-item hit rates, so it is matched to gensim by default.
    num_threads : int
        Training threads (0 = all cores). With 1 training is deterministic for a
        ``random_state``. With more, each thread trains its share of the sequences on a
        private copy of the vectors and the copies' changes are summed into the shared
        vectors 16 times per epoch (deterministic for a ``random_state`` and thread count;
        no cache-line contention on the popular rows, about 2x faster than Hogwild on
        MovieLens); when those copies would exceed 256 MiB training is Hogwild instead
        (lock-free on the shared vectors, not bit-reproducible).
    random_state : int
        Seed of the initial vectors and of the SplitMix64 streams.

    Attributes
    ----------
    item_vectors_ : float32 (n_items, factors)
        Input (centre) vectors: the item embeddings.
    context_vectors_ : float32 (n_items, factors)
        Output (context) vectors of SGNS.
    item_counts_ : int64 (n_items,)
        Training events per item.
    dropped_items_ : int64 array
        Indices of the items with ``0 < count < min_count`` (zero vectors).
    user_sequence_items_, user_sequence_indptr_ : int arrays
        Each training user's items in time order (the recency path of ``recommend``).

    Notes
    -----
    By default the kernel (``tastebud.kernels.item2vec``) follows gensim's skip-gram step for
    step: per-pair updates with fresh negatives, the ``|dot| >= 6`` skip rule, gensim 4's
    initial range, linear learning-rate decay over all epochs' events, the reduced window
    and word2vec's subsampling. It is faster than gensim because it is compiled end to end
    (no GIL, no per-batch Python, inlined 64-wide loops) rather than by changing the
    algorithm; ``update="window"`` trades some quality for more speed. Thread-safety:
    ``fit`` mutates the model; everything else only reads it.

    Examples
    --------
    >>> model = Item2Vec(factors=32, epochs=5).fit(train)  # doctest: +SKIP
    >>> model.similar_items(["Toy Story (1995)"], k=5)  # doctest: +SKIP
    >>> model.recommend_for([["item a", "item b", "item c"]], k=10)  # doctest: +SKIP
    """

    _factor_scoring = True
    _fitted_arrays = (
        "item_vectors_",
        "context_vectors_",
        "item_counts_",
        "dropped_items_",
        "user_sequence_items_",
        "user_sequence_indptr_",
    )

    def __init__(
        self,
        factors: int = 64,
        window: int = 5,
        negatives: int = 5,
        ns_exponent: float = 0.75,
        subsample: float = 1e-3,
        learning_rate: float = 0.025,
        min_learning_rate: float = 1e-4,
        epochs: int = 10,
        min_count: int = 1,
        mode: str = "sequence",
        session_gap: int | None = None,
        history: int | None = 20,
        recency_decay: float = 0.5,
        popularity_weight: float = 0.5,
        num_threads: int = 0,
        random_state: int = 42,
        update: str = "pair",
        max_dot: float = 6.0,
        init_range: float = 1.0,
        scoring: str = "context",
    ) -> None:
        self.factors = factors
        self.window = window
        self.negatives = negatives
        self.ns_exponent = ns_exponent
        self.subsample = subsample
        self.learning_rate = learning_rate
        self.min_learning_rate = min_learning_rate
        self.epochs = epochs
        self.min_count = min_count
        self.mode = mode
        self.session_gap = session_gap
        self.history = history
        self.recency_decay = recency_decay
        self.popularity_weight = popularity_weight
        self.num_threads = num_threads
        self.random_state = random_state
        self.update = update
        self.max_dot = max_dot
        self.init_range = init_range
        self.scoring = scoring

    # ----------------------------------------------------------------- validation
    def _check_scoring_params(self) -> None:
        if self.history is not None:
            _check_int(self.history, "history", 1)
        _check_number(self.recency_decay, "recency_decay", 0.0, 1.0, low_open=True)
        _check_number(self.popularity_weight, "popularity_weight", 0.0, np.inf, low_open=False)
        if self.scoring not in _SCORINGS:
            raise ValueError(f"scoring must be one of {_SCORINGS}; got {self.scoring!r}.")

    def _check_params(self) -> None:
        _check_int(self.factors, "factors", 1)
        _check_int(self.window, "window", 1)
        _check_int(self.negatives, "negatives", 0)
        _check_number(self.ns_exponent, "ns_exponent", -10.0, 10.0, low_open=False)
        _check_number(self.subsample, "subsample", 0.0, 1.0, low_open=False)
        lr = _check_number(self.learning_rate, "learning_rate", 0.0, 10.0, low_open=True)
        min_lr = _check_number(
            self.min_learning_rate, "min_learning_rate", 0.0, 10.0, low_open=False
        )
        if min_lr > lr:
            raise ValueError(
                f"min_learning_rate must be <= learning_rate ({lr}); "
                f"got {self.min_learning_rate!r}."
            )
        _check_int(self.epochs, "epochs", 1)
        _check_int(self.min_count, "min_count", 1)
        if self.mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}; got {self.mode!r}.")
        if self.update not in _UPDATES:
            raise ValueError(f"update must be one of {_UPDATES}; got {self.update!r}.")
        _check_number(self.max_dot, "max_dot", 0.0, np.inf, low_open=False)
        _check_number(self.init_range, "init_range", 0.0, 1e3, low_open=True)
        search.resolve_threads(self.num_threads)
        if isinstance(self.random_state, bool) or not isinstance(
            self.random_state, (int, np.integer)
        ):
            raise TypeError(f"random_state must be an int; got {self.random_state!r}.")
        if self.random_state < 0:
            raise ValueError(f"random_state must be >= 0; got {self.random_state!r}.")
        self._check_scoring_params()

    # ----------------------------------------------------------------- fitting
    def _fit(self, interactions: Interactions) -> None:
        self._check_params()
        if interactions.timestamps is None and self.mode == "sequence":
            warnings.warn(
                "Item2Vec(mode='sequence') got interactions without timestamps: each user's "
                "items are taken in item-index order. Pass timestamps, or use mode='basket'.",
                DataWarning,
                stacklevel=3,
            )
        n_items = interactions.n_items
        f = int(self.factors)
        history = Sequences.from_interactions(interactions)
        if self.session_gap is None:
            train_seqs = history
        else:
            train_seqs = Sequences.from_interactions(interactions, session_gap=self.session_gap)
        counts = np.bincount(history.items, minlength=n_items).astype(np.int64)
        dropped = np.flatnonzero((counts > 0) & (counts < self.min_count)).astype(np.int64)
        if dropped.size:
            names = ", ".join(repr(x) for x in interactions.items.ids(dropped[:5]).tolist())
            warnings.warn(
                f"Item2Vec: {dropped.size} item(s) have fewer than min_count={self.min_count} "
                f"events and get no vector (e.g. {names}); see dropped_items_.",
                DataWarning,
                stacklevel=3,
            )
        eligible = counts >= self.min_count
        items, indptr = _drop_items(train_seqs.items, train_seqs.indptr, eligible)

        rng = np.random.default_rng(int(self.random_state))
        in_vecs = (
            rng.random((n_items, f), dtype=np.float32) * np.float32(2.0) - np.float32(1.0)
        ) * np.float32(float(self.init_range) / f)
        in_vecs[~eligible] = 0.0
        out_vecs = np.zeros((n_items, f), dtype=np.float32)
        weights = np.where(eligible, counts.astype(np.float64), 0.0) ** float(self.ns_exponent)
        weights[~eligible] = 0.0
        if items.size and weights.sum() > 0:
            threshold, alias = kernels.alias_table(weights)
            keep = keep_probabilities(np.where(eligible, counts, 0), float(self.subsample))
            threads = search.resolve_threads(self.num_threads)
            self._train(items, indptr, in_vecs, out_vecs, threshold, alias, keep, threads)
        if not (np.isfinite(in_vecs).all() and np.isfinite(out_vecs).all()):
            from tastebud._errors import FitError

            raise FitError("Item2Vec training diverged (non-finite vectors): lower learning_rate.")
        self.item_vectors_ = in_vecs
        self.context_vectors_ = out_vecs
        self.item_counts_ = counts
        self.dropped_items_ = dropped
        self.user_sequence_items_ = history.items.astype(np.int32)
        self.user_sequence_indptr_ = _user_indptr(history, interactions.n_users)

    def _train(
        self,
        items: np.ndarray,
        indptr: np.ndarray,
        in_vecs: np.ndarray,
        out_vecs: np.ndarray,
        threshold: np.ndarray,
        alias: np.ndarray,
        keep: np.ndarray,
        threads: int,
    ) -> None:
        n_seq = indptr.size - 1
        threads = max(1, min(threads, numba.config.NUMBA_NUM_THREADS, n_seq))
        # chunk bounds: about equal event counts per chunk (sequence boundaries)
        targets = np.linspace(0, items.size, threads + 1)
        bounds = np.searchsorted(indptr, targets, side="left").astype(np.int64)
        bounds[0], bounds[-1] = 0, n_seq
        bounds = np.maximum.accumulate(bounds)
        states = np.array(
            [_splitmix_seed(int(self.random_state), c) for c in range(threads)], dtype=np.uint64
        )
        max_len = int(np.diff(indptr).max()) if n_seq else 1
        args = (
            items,
            indptr,
            bounds,
            in_vecs,
            out_vecs,
            threshold,
            alias,
            keep,
            int(self.window),
            int(self.negatives),
            self.mode == "basket",
            float(self.learning_rate),
            float(self.min_learning_rate),
            int(self.epochs),
            states,
            max_len,
            self.update == "pair",
            float(self.max_dot),
        )
        if threads == 1:
            kernels.sgns_train_serial(*args)
            return
        previous = numba.get_num_threads()
        numba.set_num_threads(threads)
        local = 2 * threads * in_vecs.nbytes <= _LOCAL_COPY_BYTES
        if local:  # private copies merged every round (small catalogues: see the kernel)
            spans = np.empty((threads, _ROUNDS + 1), dtype=np.int64)
            for c in range(threads):
                lo, hi = int(bounds[c]), int(bounds[c + 1])
                cuts = np.linspace(indptr[lo], indptr[hi], _ROUNDS + 1)
                spans[c] = np.searchsorted(indptr[lo : hi + 1], cuts, side="left") + lo
                spans[c, 0], spans[c, -1] = lo, hi
                spans[c] = np.maximum.accumulate(spans[c])
            args = (items, indptr, spans, *args[3:])
        try:
            if local:
                kernels.sgns_train_local(*args)
            else:
                kernels.sgns_train_parallel(*args)
        finally:
            numba.set_num_threads(previous)

    # ----------------------------------------------------------------- scoring
    def _unit_vectors(self) -> np.ndarray:
        v = self.item_vectors_
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        return np.divide(v, norms, out=np.zeros_like(v), where=norms > 0).astype(np.float32)

    def _has_vector(self) -> np.ndarray:
        return np.any(self.item_vectors_ != 0, axis=1)

    def _item_embeddings(self) -> np.ndarray:
        self._check_scoring_params()
        if self.scoring == "context":
            v = self.context_vectors_
            norms = np.linalg.norm(v, axis=1, keepdims=True)
            return np.divide(v, norms, out=np.zeros_like(v), where=norms > 0).astype(np.float32)
        return self._unit_vectors()

    def _similar_items_indices(
        self, item_indices: np.ndarray, k: int, allow: np.ndarray | None, deny: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Item-item similarity is always the cosine of the input vectors (Item2Vec paper),
        whatever ``scoring`` ranks next items with."""
        unit = self._unit_vectors()
        exclude = sp.csr_matrix(
            (
                np.ones(item_indices.size, np.float32),
                item_indices,
                np.arange(item_indices.size + 1),
            ),
            shape=(item_indices.size, unit.shape[0]),
        )
        return search.topk(unit[item_indices], unit, k, exclude=exclude, allow=allow, deny=deny)

    def _popularity_share(self) -> np.ndarray:
        """``log1p(n_i) / log1p(max n)`` in [0, 1] (float64): the popularity term."""
        log_counts = np.log1p(self.item_counts_.astype(np.float64))
        top = log_counts.max() if log_counts.size else 0.0
        return log_counts / top if top > 0 else log_counts * 0

    def _item_bias(self) -> np.ndarray | None:
        w = float(self.popularity_weight)
        if w == 0.0:
            return None
        return (w * self._popularity_share()).astype(np.float32)

    def _fill_empty(
        self,
        idx: np.ndarray,
        scores: np.ndarray,
        queries: np.ndarray,
        exclude: sp.csr_matrix | None,
        allow: np.ndarray | None,
        deny: np.ndarray | None,
    ) -> None:
        """Give the rows whose query vector is zero (no usable history) the most popular
        items, in place: ranked by training count (ties: lower index), scored by
        ``log1p(n_i) / log1p(max n)`` in [0, 1] whatever ``popularity_weight`` is."""
        rows = np.flatnonzero(~np.any(queries != 0, axis=1))
        if rows.size == 0:
            return
        p_idx, _ = search.topk(
            np.ones((rows.size, 1), np.float32),
            self.item_counts_.astype(np.float32).reshape(-1, 1),
            idx.shape[1],
            exclude=None if exclude is None else exclude[rows],
            allow=allow,
            deny=deny,
        )
        share = self._popularity_share().astype(np.float32)
        idx[rows] = p_idx
        scores[rows] = np.where(p_idx >= 0, share[p_idx], -np.inf)

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
        queries = self._user_embeddings(user_indices, rows)
        idx, scores = self._factor_topk(queries, k, exclude, allow, deny, num_threads)
        self._fill_empty(idx, scores, queries, exclude, allow, deny)
        return idx, scores

    def _score_pairs(self, uidx: np.ndarray, iidx: np.ndarray) -> np.ndarray:
        user_vecs = self._user_embeddings(uidx, self.seen_[uidx])
        out = np.einsum("ij,ij->i", user_vecs, self._item_embeddings()[iidx])
        bias = self._item_bias()
        if bias is not None:
            out = out + bias[iidx]
        blank = ~np.any(user_vecs != 0, axis=1)  # the popularity fallback of recommend
        out[blank] = self._popularity_share()[iidx[blank]]
        return out.astype(np.float32)

    def _history_weights(self, items: np.ndarray, indptr: np.ndarray) -> sp.csr_matrix:
        """Sparse (n, n_items) recency weights of ordered sequences (items without a vector,
        e.g. dropped ones, are skipped before counting recency)."""
        self._check_scoring_params()
        n = indptr.size - 1
        n_items = len(self.items_)
        has_vec = self._has_vector()
        items = np.asarray(items, dtype=np.int64)
        keep = has_vec[items] if items.size else np.zeros(0, bool)
        lengths = np.diff(indptr)
        rows = np.repeat(np.arange(n, dtype=np.int64), lengths)[keep]
        items = items[keep]
        new_len = np.bincount(rows, minlength=n).astype(np.int64)
        new_ptr = np.concatenate([[0], np.cumsum(new_len)])
        age = new_ptr[rows + 1] - 1 - np.arange(items.size, dtype=np.int64)
        if self.history is not None:
            recent = age < int(self.history)
            rows, items, age = rows[recent], items[recent], age[recent]
        weights = np.power(float(self.recency_decay), age.astype(np.float64))
        w = sp.csr_matrix((weights, (rows, items)), shape=(n, n_items), dtype=np.float64)
        w.sum_duplicates()
        return w

    def _embed_sequences(self, items: np.ndarray, indptr: np.ndarray) -> np.ndarray:
        """Unit-norm recency-weighted mean of the unit item vectors (zero for empty rows)."""
        w = self._history_weights(items, indptr)
        mean = np.asarray(w @ self._unit_vectors().astype(np.float64))
        norms = np.linalg.norm(mean, axis=1, keepdims=True)
        out = np.divide(mean, norms, out=np.zeros_like(mean), where=norms > 0)
        return out.astype(np.float32)

    def _user_embeddings(self, user_indices: np.ndarray | None, rows: sp.csr_matrix) -> np.ndarray:
        if user_indices is not None:
            uidx = np.asarray(user_indices, dtype=np.int64)
            ptr = self.user_sequence_indptr_
            starts, stops = ptr[uidx], ptr[uidx + 1]
            lengths = stops - starts
            sel_ptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
            offsets = np.repeat(starts - sel_ptr[:-1], lengths)
            pos = np.arange(sel_ptr[-1], dtype=np.int64) + offsets
            return self._embed_sequences(self.user_sequence_items_[pos], sel_ptr)
        # CSR rows carry no order: every item of the row is equally recent.
        rows = sp.csr_matrix(rows)
        ordered_items = np.asarray(rows.indices, dtype=np.int64)
        n = rows.shape[0]
        w = sp.csr_matrix(
            (np.ones(rows.nnz), ordered_items, rows.indptr), shape=(n, len(self.items_))
        )
        w.data[~self._has_vector()[ordered_items]] = 0.0
        mean = np.asarray(w @ self._unit_vectors().astype(np.float64))
        norms = np.linalg.norm(mean, axis=1, keepdims=True)
        return np.divide(mean, norms, out=np.zeros_like(mean), where=norms > 0).astype(np.float32)

    # ----------------------------------------------------------------- sessions
    def _ordered_sessions(
        self, sessions: Any, unknown: str
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(labels, items, indptr) of ordered sessions given as lists / dict / Sequences /
        Interactions (ordered by timestamp) / sparse rows (item-index order)."""
        if isinstance(sessions, Sequences):
            if sessions.item_vocab != self.items_:
                raw = sessions.item_vocab.ids(sessions.items)
                idx = self.items_.index(raw, missing="error" if unknown == "error" else "negative")
            else:
                idx = sessions.items.astype(np.int64)
            labels = sessions.user_vocab.ids(sessions.users)
            return labels, *_drop_negative(idx, sessions.indptr)
        if isinstance(sessions, Interactions):
            seqs = Sequences.from_interactions(sessions)
            raw = sessions.items.ids(seqs.items)
            idx = self.items_.index(raw, missing="error" if unknown == "error" else "negative")
            # one row per user of ``sessions`` (users without events: empty)
            counts = np.bincount(seqs.users, weights=seqs.lengths(), minlength=sessions.n_users)
            indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
            return sessions.users.ids_array, *_drop_negative(idx, indptr)
        if sp.issparse(sessions):
            _, rows = self._rows_from(sessions, unknown)
            rows.sort_indices()
            return (
                np.arange(rows.shape[0]),
                np.asarray(rows.indices, np.int64),
                np.asarray(rows.indptr, np.int64),
            )
        if isinstance(sessions, Mapping):
            labels = np.asarray(list(sessions.keys()))
            lists = list(sessions.values())
        elif isinstance(sessions, (str, bytes)):
            raise TypeError("sessions must be a list of item-id lists, not a string.")
        else:
            try:
                lists = list(sessions)
            except TypeError:
                raise TypeError(
                    "sessions must be a list of item-id sequences, a dict {label: sequence}, "
                    f"Sequences, Interactions or a sparse matrix; got {type(sessions).__name__}."
                ) from None
            labels = np.arange(len(lists))
        parts: list[np.ndarray] = []
        indptr = [0]
        for s in lists:
            if isinstance(s, Mapping):
                raise TypeError(
                    "Item2Vec sessions are ordered sequences of item ids, not {item: weight} dicts."
                )
            if isinstance(s, (str, bytes)) or np.ndim(s) == 0:
                raise TypeError(
                    f"each session must be a sequence of item ids; got {type(s).__name__} {s!r}."
                )
            ids = list(s)
            idx = (
                self.items_.index(ids, missing="error" if unknown == "error" else "negative")
                if ids
                else np.zeros(0, np.int64)
            )
            idx = idx[idx >= 0]
            parts.append(idx)
            indptr.append(indptr[-1] + idx.size)
        items = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        return labels, items.astype(np.int64), np.asarray(indptr, dtype=np.int64)

    def recommend_for(
        self,
        interactions: Any,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        items: Any = None,
        exclude: Any = None,
        unknown_items: str = "error",
        empty: str = "popularity",
    ) -> Recommendations:
        """Next items for anonymous sessions, given only their item sequences.

        Parameters
        ----------
        interactions : list of item-id sequences, dict, Sequences, Interactions or sparse
            Sessions in consumption order, most recent item last: ``[["a", "b"], ["c"]]``
            or ``{"session-1": ["a", "b"]}``. ``Interactions`` are ordered by timestamp
            (ties by item index), ``Sequences`` keep their order; a sparse matrix has no
            order, so all its items count as equally recent.
        k : int
            Items per session.
        exclude_seen : bool
            Leave out the session's own items.
        items, exclude : arrays of raw item ids, optional
            Candidate subset / deny list, as in ``recommend``.
        unknown_items : {"error", "ignore"}
            Item ids unknown to the model raise ``KeyError`` naming them, or are skipped.
        empty : {"popularity", "pad"}
            What a session with no usable item (empty, all unknown and ignored, or only items
            without a vector) gets: the most popular items (minus exclusions), or padding
            (ids ``fill_id``, scores ``-inf``). Popular items are ranked by training count
            and scored ``log1p(n_i) / log1p(max n)`` in [0, 1] (the popularity term at
            weight 1, on the scale of the cosine scores), as ``recommend`` does for known
            users without a usable history.

        Returns
        -------
        Recommendations
        """
        self._check_fitted()
        if unknown_items not in ("error", "ignore"):
            raise ValueError(f"unknown_items must be 'error' or 'ignore'; got {unknown_items!r}.")
        if empty not in ("popularity", "pad"):
            raise ValueError(f"empty must be 'popularity' or 'pad'; got {empty!r}.")
        k = check_k(k, len(self.items_))
        labels, seq_items, indptr = self._ordered_sessions(interactions, unknown_items)
        n = indptr.size - 1
        n_items = len(self.items_)
        seen = sp.csr_matrix(
            (np.ones(seq_items.size, np.float32), seq_items, indptr), shape=(n, n_items)
        )
        seen.sum_duplicates()
        allow, deny = self._candidate_lists(items, exclude)
        queries = self._embed_sequences(seq_items, indptr)
        idx, scores = search.topk(
            queries,
            self._item_embeddings(),
            k,
            exclude=seen if exclude_seen else None,
            allow=allow,
            deny=deny,
            item_bias=self._item_bias(),
        )
        if empty == "pad":
            blank = ~np.any(queries != 0, axis=1)
            idx[blank] = -1
            scores[blank] = -np.inf
        else:
            self._fill_empty(idx, scores, queries, seen if exclude_seen else None, allow, deny)
        return Recommendations.from_indices(labels, self.items_, idx, scores)


def _drop_items(
    items: np.ndarray, indptr: np.ndarray, keep_item: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Remove events whose item is not kept; returns (items, indptr) of the same sequences."""
    keep = keep_item[items] if items.size else np.zeros(0, bool)
    return _compress(items, indptr, keep)


def _drop_negative(items: np.ndarray, indptr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return _compress(items, indptr, items >= 0)


def _compress(
    items: np.ndarray, indptr: np.ndarray, keep: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    indptr = np.asarray(indptr, dtype=np.int64)
    n = indptr.size - 1
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
    new_len = np.bincount(rows[keep], minlength=n)
    new_ptr = np.concatenate([[0], np.cumsum(new_len)]).astype(np.int64)
    return np.ascontiguousarray(items[keep], dtype=np.int64), new_ptr


def _user_indptr(seqs: Sequences, n_users: int) -> np.ndarray:
    """indptr over all users (users without events get an empty range)."""
    counts = np.zeros(n_users, dtype=np.int64)
    counts[seqs.users] = seqs.lengths()
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
