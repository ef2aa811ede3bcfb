"""Explicit rating prediction: baseline predictors, biased MF (SVD), SVD++ and ALS-WR.

The models predict ratings ``r_ui`` (the weights of the fitted ``Interactions``) and follow
the conventions of Surprise (Hug 2020), the library people use for this task, so that its
results can be reproduced:

* ``Baseline``: ``r_ui ~ mu + b_u + b_i`` fitted by alternating least squares or SGD
  (Koren 2010, "Factor in the neighbors", section 2.1; Surprise's ``BaselineOnly``).
* ``SVD``: ``r_ui ~ mu + b_u + b_i + p_u . q_i`` by per-rating SGD (Funk 2006; Koren, Bell
  and Volinsky 2009; Surprise's ``SVD``).
* ``SVDpp``: ``r_ui ~ mu + b_u + b_i + q_i . (p_u + |N(u)|^-1/2 sum_{j in N(u)} y_j)`` where
  ``N(u)`` are the items ``u`` rated (Koren 2008, section 4; Surprise's ``SVDpp``).
* ``ExplicitALS``: ALS with weighted-lambda regularisation on the observed ratings only
  (Zhou, Wilkinson, Schreiber and Pan 2008, "Large-scale parallel collaborative filtering
  for the Netflix prize"), optionally with biases.

Unknown users and items
-----------------------
``predict`` follows Surprise's rule: the estimate is ``mu``, plus ``b_u`` if the user is
known, plus ``b_i`` if the item is known, plus the factor term only when both are known.
A user (item) is *known* when it has at least one training rating: ids that are in the
vocabulary but have no training rating (common after a k-fold split, which keeps the full
vocabularies) get zero bias and zero factors at the end of ``fit``, so the rule holds for
them too. ``predict(..., unknown="error")`` raises ``KeyError`` for ids outside the
vocabulary instead.

Ranking
-------
``recommend`` ranks by predicted rating through the shared top-k kernel. The models are
factor models whose user embedding is ``[p_u (+ implicit sum), 1]`` and item embedding
``[q_i, b_i]``: their dot product is the predicted rating minus ``mu + b_u``, a constant per
user, which does not change a user's ranking. ``score`` returns these ranking scores;
``predict`` returns ratings.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, ClassVar

import numba
import numpy as np
import scipy.sparse as sp

from tastebud import search
from tastebud._errors import FitError
from tastebud.data import Interactions
from tastebud.kernels import sgd
from tastebud.models.base import Recommender

__all__ = ["SVD", "Baseline", "ExplicitALS", "SVDpp"]


# --------------------------------------------------------------------------- validation
def _check_int(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int >= {low}; got {value!r}.")
    if value < low:
        raise ValueError(f"{name} must be an int >= {low}; got {value}.")
    return int(value)


def _check_float(value: Any, name: str, *, positive: bool = False) -> float:
    """A finite real number, >= 0 (or > 0 when ``positive``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r}.")
    v = float(value)
    if not math.isfinite(v) or v < 0 or (positive and v == 0):
        expect = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be a finite number {expect}; got {value!r}.")
    return v


def _override(value: Any, default: float, name: str, *, positive: bool = False) -> float:
    return _check_float(default if value is None else value, name, positive=positive)


def _check_scale(scale: Any, name: str) -> tuple[float, float] | None:
    if scale is None:
        return None
    if (
        not isinstance(scale, (tuple, list))
        or len(scale) != 2
        or not all(isinstance(x, numbers.Real) and not isinstance(x, bool) for x in scale)
    ):
        raise TypeError(f"{name} must be None or a (low, high) pair of numbers; got {scale!r}.")
    lo, hi = float(scale[0]), float(scale[1])
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"{name} must satisfy low < high (finite); got {scale!r}.")
    return lo, hi


def _rng(random_state: Any) -> np.random.Generator:
    if random_state is None or (
        isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool)
    ):
        return np.random.default_rng(random_state)
    if isinstance(random_state, np.random.Generator):
        return random_state
    raise TypeError(
        f"random_state must be None, an int or a numpy Generator; got {random_state!r}."
    )


class _Threads:
    """Run a Numba ``parallel=True`` kernel with a given thread count, restoring it after."""

    def __init__(self, n: int) -> None:
        self.n = max(1, min(n, numba.config.NUMBA_NUM_THREADS))

    def __enter__(self) -> int:
        self.previous = numba.get_num_threads()
        numba.set_num_threads(self.n)
        return self.n

    def __exit__(self, *exc: Any) -> None:
        numba.set_num_threads(self.previous)


class _Ratings:
    """Validated training ratings in the arrays the kernels take (CSR order: user-major)."""

    def __init__(self, data: Interactions, scale: tuple[float, float] | None) -> None:
        m = data.matrix
        values = np.asarray(m.data)
        if values.dtype != np.float32:  # Interactions always stores float32; be explicit
            raise TypeError(f"ratings must be float32 weights; got dtype {values.dtype}.")
        # The extremes find NaN (min and max propagate it) and infinities in two passes.
        low, high = float(values.min()), float(values.max())
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError("ratings contain NaN or infinite values.")
        if scale is not None and (low < scale[0] or high > scale[1]):
            bad = int(np.count_nonzero((values < scale[0]) | (values > scale[1])))
            raise ValueError(
                f"ratings must lie in rating_scale [{scale[0]:g}, {scale[1]:g}]; got "
                f"{bad} outside (min {low:g}, max {high:g})."
            )
        self.n_users, self.n_items = m.shape
        self.indptr = np.asarray(m.indptr, dtype=np.int64)
        self.items = np.asarray(m.indices, dtype=np.int32)
        self.user_counts = np.diff(self.indptr)
        self.users = np.repeat(np.arange(self.n_users, dtype=np.int32), self.user_counts)
        self.ratings = values
        self.mean = float(values.mean(dtype=np.float64))
        self.item_counts = np.bincount(self.items, minlength=self.n_items)
        self.scale = scale if scale is not None else (low, high)

    def triples(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fresh copies of (users, items, ratings) in CSR order, for in-place shuffling."""
        return self.users.copy(), self.items.copy(), self.ratings.copy()


# --------------------------------------------------------------------------- base class
class _RatingModel(Recommender):
    """Shared machinery of the rating models (not public): predict, ranking, fold-in."""

    _factor_scoring: ClassVar[bool] = True
    _fitted_arrays: ClassVar[tuple[str, ...]] = (
        "user_bias_",
        "item_bias_",
        "user_factors_",
        "item_factors_",
    )
    #: whether the model has a global mean and biases (SVD(biased=False) has not)
    _uses_biases: bool = True

    global_mean_: float
    rating_min_: float
    rating_max_: float
    user_bias_: np.ndarray
    item_bias_: np.ndarray
    user_factors_: np.ndarray
    item_factors_: np.ndarray

    # ------------------------------------------------------------- fitting helpers
    def _start(self, interactions: Interactions) -> _Ratings:
        scale = _check_scale(getattr(self, "rating_scale", None), "rating_scale")
        data = _Ratings(interactions, scale)
        self.global_mean_ = data.mean
        self.rating_min_, self.rating_max_ = data.scale
        return data

    def _finish(self, data: _Ratings) -> None:
        """Zero the parameters of ids without training ratings (the unknown-id rule)."""
        for name in ("user_bias_", "item_bias_", "user_factors_", "item_factors_"):
            arr = getattr(self, name)
            # NaN propagates through min and max; an infinity is one of them.
            if arr.size and not (math.isfinite(arr.min()) and math.isfinite(arr.max())):
                raise FitError(
                    f"{type(self).__name__} diverged ({name} is not finite): lower the "
                    "learning rate or raise the regularization."
                )
        for counts, bias, factors in (
            (data.user_counts, self.user_bias_, self.user_factors_),
            (data.item_counts, self.item_bias_, self.item_factors_),
        ):
            unseen = np.flatnonzero(counts == 0)
            if unseen.size:
                bias[unseen] = 0
                factors[unseen] = 0

    def _extra_state(self) -> dict[str, Any]:
        return {
            "global_mean": self.global_mean_,
            "rating_min": self.rating_min_,
            "rating_max": self.rating_max_,
        }

    def _set_extra_state(self, state: dict[str, Any]) -> None:
        self.global_mean_ = float(state["global_mean"])
        self.rating_min_ = float(state["rating_min"])
        self.rating_max_ = float(state["rating_max"])

    # ------------------------------------------------------------- prediction
    def _user_vectors(self, uidx: np.ndarray) -> np.ndarray:
        """The user side of the factor term for known users (SVD++ adds the implicit sum)."""
        return self.user_factors_[uidx]

    def _offset(self) -> float:
        return self.global_mean_ if self._uses_biases else 0.0

    def predict(
        self, users: Any, items: Any, *, clip: Any = True, unknown: str = "baseline"
    ) -> np.ndarray:
        """Predicted ratings of (user, item) pairs.

        Parameters
        ----------
        users, items : raw ids (equal-length arrays; a scalar broadcasts)
        clip : bool or (low, high)
            ``True`` clips to the rating scale (``rating_scale`` if declared, else the lowest
            and highest training rating), a pair clips to that range, ``False``/``None``
            returns raw estimates.
        unknown : {"baseline", "error"}
            Ids never seen in training: ``"baseline"`` falls back to Surprise's rule (global
            mean plus the known bias; the factor term needs both ids known; see the module
            docstring); ``"error"`` raises ``KeyError`` naming them.

        Returns
        -------
        float32 ndarray
            One rating per pair. Thread-safe: only reads fitted state.
        """
        self._check_fitted()
        if unknown not in ("baseline", "error"):
            raise ValueError(f"unknown must be 'baseline' or 'error'; got {unknown!r}.")
        bounds: tuple[float, float] | None
        if clip is True:
            bounds = (self.rating_min_, self.rating_max_)
        elif clip is False or clip is None:
            bounds = None
        else:
            bounds = _check_scale(clip, "clip")
        missing = "error" if unknown == "error" else "negative"
        uidx = self.users_.index(users, missing=missing)
        iidx = self.items_.index(items, missing=missing)
        if uidx.size == 1 and iidx.size != 1:
            uidx = np.repeat(uidx, iidx.size)
        if iidx.size == 1 and uidx.size != 1:
            iidx = np.repeat(iidx, uidx.size)
        if uidx.size != iidx.size:
            raise ValueError(
                f"users and items must have the same length; got {uidx.size} and {iidx.size}."
            )
        uk, ik = uidx >= 0, iidx >= 0
        both = uk & ik
        est = np.full(uidx.size, self.global_mean_, dtype=np.float64)
        if self._uses_biases:
            est[uk] += self.user_bias_[uidx[uk]]
            est[ik] += self.item_bias_[iidx[ik]]
        elif both.any():
            est[both] = 0.0
        if both.any() and self.item_factors_.shape[1]:
            ub, ib = uidx[both], iidx[both]
            dots = np.einsum(
                "ij,ij->i",
                self._user_vectors(ub).astype(np.float64),
                self.item_factors_[ib].astype(np.float64),
            )
            # Users/items without training ratings have zero factors; without biases Surprise
            # falls back to the global mean for them, so do the same.
            if not self._uses_biases:
                known = (self._counts_user[ub] > 0) & (self._counts_item[ib] > 0)
                dots = np.where(known, dots, self.global_mean_)
            est[both] += dots
        if bounds is not None:
            np.clip(est, bounds[0], bounds[1], out=est)
        return est.astype(np.float32)

    @property
    def _counts_user(self) -> np.ndarray:
        return np.diff(self.seen_.indptr)

    @property
    def _counts_item(self) -> np.ndarray:
        return np.bincount(self.seen_.indices, minlength=self.seen_.shape[1])

    # ------------------------------------------------------------- ranking hooks
    def _item_embeddings(self) -> np.ndarray:
        bias = self.item_bias_ if self._uses_biases else np.zeros_like(self.item_bias_)
        return np.ascontiguousarray(
            np.hstack([self.item_factors_, bias[:, None]]), dtype=np.float32
        )

    def _user_embeddings(self, user_indices: np.ndarray | None, rows: sp.csr_matrix) -> np.ndarray:
        if user_indices is not None:
            vecs = self._user_vectors(user_indices)
        else:
            vecs = self._fold_in(rows)
        ones = np.ones((vecs.shape[0], 1), dtype=np.float32)
        return np.ascontiguousarray(np.hstack([vecs, ones]), dtype=np.float32)

    def _fold_in_implicit(self, rows: sp.csr_matrix) -> np.ndarray | None:
        """SVD++: implicit sums of new users (None for models without implicit feedback)."""
        return None

    def _fold_in_reg(self) -> float:
        raise NotImplementedError

    def _fold_in(self, rows: sp.csr_matrix) -> np.ndarray:
        """User vectors of new users from their ratings (the weights of ``rows``).

        With the item parameters fixed, solve the ridge problem the training objective poses
        for one user: ``[p, b_u] = argmin sum_i (r_ui - mu - b_i - q_i . (p + z) - b_u)^2 +
        lambda n_u (|p|^2 + b_u^2)``, where ``z`` is SVD++'s implicit sum (else 0). Per-rating
        SGD regularisation adds up to the same ``lambda n_u`` weighting as ALS-WR, so this is
        the point the user's SGD updates approach while the item parameters stay fixed; a
        few epochs of training stop short of it, so a trained user's own vector and its
        fold-in differ (and may rank differently). Returns ``p + z``.
        """
        k = self.item_factors_.shape[1]
        n = rows.shape[0]
        z = self._fold_in_implicit(rows)
        if k == 0:
            return np.zeros((n, 0), dtype=np.float32)
        rows = sp.csr_matrix(rows)
        cols = rows.indices
        targets = rows.data.astype(np.float64) - self._offset()
        if self._uses_biases:
            targets -= self.item_bias_[cols]
        if z is not None:
            user_of = np.repeat(np.arange(n), np.diff(rows.indptr))
            targets -= np.einsum("ij,ij->i", self.item_factors_[cols], z[user_of])
        feats = self.item_factors_
        if self._uses_biases:
            feats = np.hstack([feats, np.ones((feats.shape[0], 1), feats.dtype)])
        out = np.zeros((n, feats.shape[1]), dtype=np.float32)
        sgd.als_solve_serial(
            np.asarray(rows.indptr, dtype=np.int64),
            np.asarray(cols, dtype=np.int32),
            targets.astype(np.float32),
            np.ascontiguousarray(feats, dtype=np.float32),
            # A floor on the ridge: with regularization 0, a user with fewer ratings than
            # factors has a singular system (NaN factors); 1e-6 per rating gives the
            # least-squares fit of smallest norm instead, and changes nothing otherwise.
            max(self._fold_in_reg(), _FOLD_IN_MIN_REG),
            1,
            out,
        )
        p = out[:, :k]
        return p + z if z is not None else p

    def _similar_items_indices(
        self, item_indices: np.ndarray, k: int, allow: np.ndarray | None, deny: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Cosine similarity of the item factors ``q_i`` (biases left out)."""
        vectors = np.ascontiguousarray(self.item_factors_, dtype=np.float32)
        if vectors.shape[1] == 0:
            raise TypeError(f"{type(self).__name__} has no item factors: no item similarity.")
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


def _hp(values: list[float]) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def _state(rng: np.random.Generator) -> np.ndarray:
    """A SplitMix64 state for the kernels' shufflers, drawn from the model's generator."""
    return rng.integers(0, 2**63 - 1, size=1, dtype=np.int64).view(np.uint64).copy()


#: Smallest ridge (per rating) of the least-squares fold-in of new users.
_FOLD_IN_MIN_REG = 1e-6


def _normal_init(
    rng: np.random.Generator,
    rows: tuple[int, int],
    factors: int,
    mean: float,
    std: float,
    threads: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Float32 ``N(mean, std^2)`` draws of shapes ``(rows[0], factors)`` and ``(rows[1],
    factors)``, seeded from ``rng`` (one draw of it).

    Drawn in C++ (``_core.normal_fill``: ziggurat, parallel, the values depend on the seed
    only), ~10x faster than ``rng.normal`` here: at Surprise's SVD defaults on ml-100k
    numpy's draws alone took 2.8 ms of a 17 ms fit. Both are drawn as one block (one call,
    one parallel region) and returned as its two row ranges.
    """
    block = np.empty((rows[0] + rows[1], factors), np.float32)
    seed = int(rng.integers(0, 2**63 - 1))
    search._core().normal_fill(block, float(mean), float(std), seed, threads)
    return block[: rows[0]], block[rows[0] :]


def _sgd_threads(num_threads: Any) -> int:
    return search.resolve_threads(num_threads)


# --------------------------------------------------------------------------- Baseline
class Baseline(_RatingModel):
    """Baseline predictor ``r_ui ~ mu + b_u + b_i`` (Surprise's ``BaselineOnly``).

    Parameters
    ----------
    method : {"als", "sgd"}
        ``"als"`` alternates the closed-form updates of Koren (2010), items first, as
        Surprise does: ``b_i = sum_u (r_ui - mu - b_u) / (reg_i + |U_i|)``, then
        ``b_u = sum_i (r_ui - mu - b_i) / (reg_u + |I_u|)``. ``"sgd"`` runs per-rating SGD
        ``b_u += lr (err - reg b_u)``, ``b_i += lr (err - reg b_i)``.
    epochs : int, optional
        Sweeps; default 10 for ALS and 20 for SGD (Surprise's defaults).
    reg_u, reg_i : float
        ALS regularisation of user and item biases (Surprise: 15 and 10).
    learning_rate, regularization : float
        SGD step size and regularisation (Surprise: 0.005 and 0.02).
    shuffle : bool
        SGD only: visit ratings in a new random order every epoch (Surprise visits them user
        by user in a fixed order, which ``shuffle=False`` reproduces).
    rating_scale : (low, high), optional
        Declared scale: ``fit`` rejects ratings outside it, ``predict`` clips to it.
        Default: the lowest and highest training rating.
    random_state : int, Generator or None
        Seed of the SGD shuffling.

    Notes
    -----
    Ranks every user's items by ``b_i``; ``similar_items`` is not defined.
    """

    _fitted_arrays = ("user_bias_", "item_bias_", "user_factors_", "item_factors_")

    def __init__(
        self,
        method: str = "als",
        epochs: int | None = None,
        reg_u: float = 15.0,
        reg_i: float = 10.0,
        learning_rate: float = 0.005,
        regularization: float = 0.02,
        shuffle: bool = True,
        rating_scale: tuple[float, float] | None = None,
        random_state: Any = None,
    ) -> None:
        self.method = method
        self.epochs = epochs
        self.reg_u = reg_u
        self.reg_i = reg_i
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.shuffle = shuffle
        self.rating_scale = rating_scale
        self.random_state = random_state

    def _fit(self, interactions: Interactions) -> None:
        if self.method not in ("als", "sgd"):
            raise ValueError(f"method must be 'als' or 'sgd'; got {self.method!r}.")
        default_epochs = 10 if self.method == "als" else 20
        epochs = _check_int(default_epochs if self.epochs is None else self.epochs, "epochs", 1)
        reg_u = _check_float(self.reg_u, "reg_u")
        reg_i = _check_float(self.reg_i, "reg_i")
        lr = _check_float(self.learning_rate, "learning_rate", positive=True)
        reg = _check_float(self.regularization, "regularization")
        rng = _rng(self.random_state)
        data = self._start(interactions)
        mu = data.mean
        if self.method == "als":
            r = data.ratings.astype(np.float64)
            bu = np.zeros(data.n_users)
            bi = np.zeros(data.n_items)
            for _ in range(epochs):
                dev_i = np.bincount(data.items, r - mu - bu[data.users], minlength=data.n_items)
                bi = dev_i / (reg_i + data.item_counts)
                dev_u = np.bincount(data.users, r - mu - bi[data.items], minlength=data.n_users)
                bu = dev_u / (reg_u + data.user_counts)
            self.user_bias_ = bu.astype(np.float32)
            self.item_bias_ = bi.astype(np.float32)
        else:
            self.user_bias_ = np.zeros(data.n_users, np.float32)
            self.item_bias_ = np.zeros(data.n_items, np.float32)
            empty_p = np.zeros((data.n_users, 0), np.float32)
            empty_q = np.zeros((data.n_items, 0), np.float32)
            hp = _hp([mu, lr, lr, 0.0, 0.0, reg, reg, 0.0, 0.0])
            triples = data.triples()
            state = _state(rng)
            for _ in range(epochs):
                if self.shuffle:
                    sgd.shuffle_ratings(*triples, state)
                sgd.svd_epoch_serial(
                    *triples, 1, self.user_bias_, self.item_bias_, empty_p, empty_q, hp, False
                )
        self.user_factors_ = np.zeros((data.n_users, 0), np.float32)
        self.item_factors_ = np.zeros((data.n_items, 0), np.float32)
        self._finish(data)

    def _fold_in(self, rows: sp.csr_matrix) -> np.ndarray:
        return np.zeros((rows.shape[0], 0), dtype=np.float32)

    def _similar_items_indices(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("Baseline has no notion of item similarity.")


# --------------------------------------------------------------------------- SVD
class SVD(_RatingModel):
    """Biased matrix factorisation trained by per-rating SGD (Funk 2006; Koren et al. 2009).

    ``r_ui ~ mu + b_u + b_i + p_u . q_i``, minimising the squared error plus
    ``reg (b_u^2 + b_i^2 + |p_u|^2 + |q_i|^2)`` for each rating, exactly as Surprise's
    ``SVD`` does it (same updates, same defaults).

    Parameters
    ----------
    factors : int
        Dimension of ``p_u`` and ``q_i`` (Surprise: 100).
    epochs : int
        Passes over the ratings (Surprise: 20).
    learning_rate, regularization : float
        Step size and L2 weight of every term (Surprise's ``lr_all=0.005``,
        ``reg_all=0.02``).
    lr_bu, lr_bi, lr_pu, lr_qi, reg_bu, reg_bi, reg_pu, reg_qi : float, optional
        Per-term overrides of ``learning_rate`` / ``regularization``.
    init_mean, init_std : float
        Factors start from ``Normal(init_mean, init_std)`` draws (all ``p_u``, then all
        ``q_i``; ``_core.normal_fill`` with seeds drawn from
        ``numpy.random.default_rng(random_state)``); biases start at 0.
    biased : bool
        ``False`` drops ``mu``, ``b_u`` and ``b_i`` (Funk's plain SVD); unknown ids then get
        the global mean.
    order : {"users", "ratings"}
        The visiting order of an epoch (with ``shuffle=True``).

        ``"users"`` (default): user by user, as Surprise's SGD, but with the users in a
        fresh random order every epoch and each user's ratings from a random starting
        point of a cyclic order shuffled once per fit. Three users are in flight at a
        time and take turns, one rating each (``kernels.sgd.users_order`` defines the
        order exactly). Each user's factor row then stays in registers while its ratings
        run, which made fits about 1.25x faster on one thread and 1.05-1.15x on two on
        MovieLens, with the same RMSE (``benchmarks/README.md``).

        ``"ratings"``: a uniform shuffle of all ratings every epoch (textbook SGD).
    shuffle : bool
        ``False`` visits the ratings in array order, user by user in index order, which is
        Surprise's (unshuffled) order, whatever ``order`` says.
    rating_scale : (low, high), optional
        Declared rating scale: ``fit`` rejects ratings outside it; ``predict`` clips to it.
    random_state : int, Generator or None
        Seed of the initialisation and the shuffling.
    num_threads : int
        1 (default) runs the sequential algorithm. More threads (0 = all cores) run
        stratified SGD (DSGD, Gemulla et al. 2011) rather than Hogwild: users and items are
        cut into ``T`` strata of about equal work (ratings, plus a little per distinct
        item for the first fetch of its row) and each epoch runs ``T`` phases
        in which every thread owns one block (user stratum x item stratum) that shares no
        row with the others' blocks; each block follows ``order`` within itself. No two
        threads write the same parameters, so the result is deterministic for a given
        thread count (but differs from the one-thread result). Fewer than ``4096`` ratings
        per thread fall back to fewer threads.

    Notes
    -----
    The whole fit runs in one C++ call (``svd_fit`` in ``cpp/sgd.hpp``, GIL released) on
    factor rows padded to a multiple of 16 floats and 64-byte aligned (whole AVX-512
    vectors, no scalar tails), compiled for AVX-512, AVX2 and baseline x86-64 (picked at
    load time). With ``order="ratings"`` each epoch shuffles a private packed copy of the
    ratings with the draws of ``tastebud.kernels.sgd.shuffle_ratings``; with
    ``order="users"`` the ratings are grouped by user once and each epoch follows
    ``kernels.sgd.users_order``. Either way the updates are those of
    ``tastebud.kernels.sgd.svd_epoch_serial``, which stays the executable specification
    (its ``exact`` mode replays the plain-Python reference bit for bit); the C++ fit agrees
    with it to rounding (it writes the update ``(1 - lr reg) p + lr err q``, and with
    ``order="users"`` keeps a user's row as a scale times a vector while its ratings run).

    Attributes
    ----------
    user_factors_, item_factors_ : float32 (n_users, factors), (n_items, factors)
    user_bias_, item_bias_ : float32
    global_mean_ : float
    training_loss_ : list of float
        Mean squared training error seen during each epoch.
    """

    def __init__(
        self,
        factors: int = 100,
        epochs: int = 20,
        learning_rate: float = 0.005,
        regularization: float = 0.02,
        lr_bu: float | None = None,
        lr_bi: float | None = None,
        lr_pu: float | None = None,
        lr_qi: float | None = None,
        reg_bu: float | None = None,
        reg_bi: float | None = None,
        reg_pu: float | None = None,
        reg_qi: float | None = None,
        init_mean: float = 0.0,
        init_std: float = 0.1,
        biased: bool = True,
        order: str = "users",
        shuffle: bool = True,
        rating_scale: tuple[float, float] | None = None,
        random_state: Any = None,
        num_threads: int = 1,
    ) -> None:
        self.factors = factors
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.lr_bu = lr_bu
        self.lr_bi = lr_bi
        self.lr_pu = lr_pu
        self.lr_qi = lr_qi
        self.reg_bu = reg_bu
        self.reg_bi = reg_bi
        self.reg_pu = reg_pu
        self.reg_qi = reg_qi
        self.init_mean = init_mean
        self.init_std = init_std
        self.biased = biased
        self.order = order
        self.shuffle = shuffle
        self.rating_scale = rating_scale
        self.random_state = random_state
        self.num_threads = num_threads

    #: Which kernel ``fit`` runs (private): ``"cpp"`` (``tastebud._core.svd_fit``, all
    #: epochs in C++) or ``"numba"`` (``kernels.sgd.svd_epoch_*``, kept as the executable
    #: specification with an exact mode). With one thread both visit the ratings in the
    #: same order and apply the same updates; results differ by rounding only. The Numba
    #: kernels run ``order="users"`` on one thread only (``NotImplementedError`` otherwise;
    #: the multi-thread C++ fit is checked block by block against them in the tests).
    _kernel: ClassVar[str] = "cpp"

    @property
    def _uses_biases(self) -> bool:  # type: ignore[override]
        return bool(self.biased)

    def _rates(self) -> dict[str, float]:
        lr = _check_float(self.learning_rate, "learning_rate", positive=True)
        reg = _check_float(self.regularization, "regularization")
        out = {}
        for term in ("bu", "bi", "pu", "qi", *self._extra_terms()):
            out[f"lr_{term}"] = _override(getattr(self, f"lr_{term}"), lr, f"lr_{term}")
            out[f"reg_{term}"] = _override(getattr(self, f"reg_{term}"), reg, f"reg_{term}")
        return out

    def _extra_terms(self) -> tuple[str, ...]:
        return ()

    def _check_common(self) -> tuple[int, int, float, float, int]:
        factors = _check_int(self.factors, "factors", 1)
        epochs = _check_int(self.epochs, "epochs", 1)
        if isinstance(self.init_mean, bool) or not isinstance(self.init_mean, numbers.Real):
            raise TypeError(f"init_mean must be a real number; got {self.init_mean!r}.")
        if not math.isfinite(self.init_mean):
            raise ValueError(f"init_mean must be finite; got {self.init_mean!r}.")
        init_std = _check_float(self.init_std, "init_std")
        threads = _sgd_threads(self.num_threads)
        for name in ("biased", "shuffle"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool; got {getattr(self, name)!r}.")
        return factors, epochs, float(self.init_mean), init_std, threads

    def _fit(self, interactions: Interactions) -> None:
        factors, epochs, init_mean, init_std, threads = self._check_common()
        if not isinstance(self.order, str):
            raise TypeError(f"order must be a str; got {self.order!r}.")
        if self.order not in ("users", "ratings"):
            raise ValueError(f"order must be 'users' or 'ratings'; got {self.order!r}.")
        order = self.order
        rates = self._rates()
        rng = _rng(self.random_state)
        data = self._start(interactions)
        rows = (data.n_users, data.n_items)
        P, Q = _normal_init(rng, rows, factors, init_mean, init_std, threads)
        bu = np.zeros(data.n_users, np.float32)
        bi = np.zeros(data.n_items, np.float32)
        if self.biased:
            terms = ("lr_bu", "lr_bi", "lr_pu", "lr_qi", "reg_bu", "reg_bi", "reg_pu", "reg_qi")
            hp = _hp([data.mean, *(rates[t] for t in terms)])
        else:
            hp = _hp([0.0, 0.0, 0.0, rates["lr_pu"], rates["lr_qi"],
                      0.0, 0.0, rates["reg_pu"], rates["reg_qi"]])  # fmt: skip
        state = _state(rng)
        self.training_loss_: list[float] = []
        if self._kernel == "cpp":
            # All epochs in one C++ call (cpp/sgd.hpp svd_fit); see the Notes.
            sse = search._core().svd_fit(
                data.users, data.items, data.ratings, bu, bi, P, Q, hp, epochs,
                state if self.shuffle else None, threads, order,
            )  # fmt: skip
            self.training_loss_ = [float(s) / data.ratings.size for s in sse]
        elif order == "users" and self.shuffle:
            if threads != 1:
                raise NotImplementedError("the Numba kernels run order='users' on one thread")
            for sse in sgd.svd_users_epochs(*data.triples(), epochs, bu, bi, P, Q, hp, state):
                self.training_loss_.append(float(sse) / data.ratings.size)
        else:
            triples = data.triples()
            for _ in range(epochs):
                if self.shuffle:
                    sgd.shuffle_ratings(*triples, state)
                if threads == 1:
                    sse = sgd.svd_epoch_serial(*triples, 1, bu, bi, P, Q, hp, False)
                else:
                    with _Threads(threads) as n:
                        sse = sgd.svd_epoch_parallel(*triples, n, bu, bi, P, Q, hp, False)
                self.training_loss_.append(float(sse) / data.ratings.size)
        self.user_factors_, self.item_factors_ = P, Q
        self.user_bias_, self.item_bias_ = bu, bi
        self._finish(data)

    def _fold_in_reg(self) -> float:
        return self._rates()["reg_pu"]


# --------------------------------------------------------------------------- SVD++
class SVDpp(SVD):
    """SVD++: biased MF plus implicit feedback from which items each user rated (Koren 2008).

    ``r_ui ~ mu + b_u + b_i + q_i . (p_u + |N(u)|^-1/2 sum_{j in N(u)} y_j)``, ``N(u)`` the
    items user ``u`` rated in training, fitted by Surprise's SGD (same updates, defaults
    and user-by-user visiting order).

    Surprise updates every ``y_j`` of ``N(u)`` after every rating of ``u``, which costs
    ``O(|N(u)|^2 factors)`` per user and epoch. These updates are identical affine maps for
    all ``j`` of the user, so the kernel carries them as one scalar and one vector while it
    walks the user's ratings, keeps the implicit sum up to date in closed form and writes
    each ``y_j`` once per user visit: the same iterates in exact arithmetic, in
    ``O(|N(u)| factors)`` (see ``tastebud.kernels.sgd._svdpp_epoch``).

    Parameters
    ----------
    factors : int
        Surprise's default for SVD++ is 20.
    learning_rate : float
        Surprise's default for SVD++ is 0.007.
    lr_yj, reg_yj : float, optional
        Overrides for the implicit factors ``y_j``.
    shuffle : bool
        Visit users in a fresh random order each epoch, and each user's ratings in random
        order. ``False`` reproduces Surprise's order (users and ratings in index order).
    num_threads : int
        More than 1: Hogwild over chunks of users.

    Other parameters are those of :class:`SVD`. ``init``: ``p_u``, then ``q_i``, then
    ``y_j`` are drawn from ``Normal(init_mean, init_std)``.

    Attributes
    ----------
    implicit_factors_ : float32 (n_items, factors)
        The ``y_j``.
    user_implicit_ : float32 (n_users, factors)
        Each user's implicit sum over its training items (cached for prediction).
    """

    _fitted_arrays = (*_RatingModel._fitted_arrays, "implicit_factors_", "user_implicit_")

    def __init__(
        self,
        factors: int = 20,
        epochs: int = 20,
        learning_rate: float = 0.007,
        regularization: float = 0.02,
        lr_bu: float | None = None,
        lr_bi: float | None = None,
        lr_pu: float | None = None,
        lr_qi: float | None = None,
        lr_yj: float | None = None,
        reg_bu: float | None = None,
        reg_bi: float | None = None,
        reg_pu: float | None = None,
        reg_qi: float | None = None,
        reg_yj: float | None = None,
        init_mean: float = 0.0,
        init_std: float = 0.1,
        shuffle: bool = True,
        rating_scale: tuple[float, float] | None = None,
        random_state: Any = None,
        num_threads: int = 1,
    ) -> None:
        self.factors = factors
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.lr_bu = lr_bu
        self.lr_bi = lr_bi
        self.lr_pu = lr_pu
        self.lr_qi = lr_qi
        self.lr_yj = lr_yj
        self.reg_bu = reg_bu
        self.reg_bi = reg_bi
        self.reg_pu = reg_pu
        self.reg_qi = reg_qi
        self.reg_yj = reg_yj
        self.init_mean = init_mean
        self.init_std = init_std
        self.shuffle = shuffle
        self.rating_scale = rating_scale
        self.random_state = random_state
        self.num_threads = num_threads

    biased = True  # SVD++ is always biased (as in Surprise)

    def _extra_terms(self) -> tuple[str, ...]:
        return ("yj",)

    def _fit(self, interactions: Interactions) -> None:
        factors, epochs, init_mean, init_std, threads = self._check_common()
        rates = self._rates()
        rng = _rng(self.random_state)
        data = self._start(interactions)
        P = rng.normal(init_mean, init_std, (data.n_users, factors)).astype(np.float32)
        Q = rng.normal(init_mean, init_std, (data.n_items, factors)).astype(np.float32)
        Y = rng.normal(init_mean, init_std, (data.n_items, factors)).astype(np.float32)
        bu = np.zeros(data.n_users, np.float32)
        bi = np.zeros(data.n_items, np.float32)
        hp = _hp([data.mean, rates["lr_bu"], rates["lr_bi"], rates["lr_pu"], rates["lr_qi"],
                  rates["reg_bu"], rates["reg_bi"], rates["reg_pu"], rates["reg_qi"],
                  rates["lr_yj"], rates["reg_yj"], 1.0])  # fmt: skip
        sqrt_n = np.sqrt(data.user_counts.astype(np.float32))
        user_order = np.arange(data.n_users, dtype=np.int64)
        positions = np.arange(data.ratings.size, dtype=np.int64)
        whole = np.array([0, data.n_users], dtype=np.int64)
        state = _state(rng)
        self.training_loss_: list[float] = []
        for _ in range(epochs):
            if self.shuffle:
                sgd.shuffle_segments(user_order, whole, state)
                sgd.shuffle_segments(positions, data.indptr, state)
            args = (data.indptr, data.items, data.ratings, sqrt_n, user_order, positions)
            if threads == 1:
                sse = sgd.svdpp_epoch_serial(*args, 1, bu, bi, P, Q, Y, hp, False)
            else:
                with _Threads(threads) as n:
                    sse = sgd.svdpp_epoch_parallel(*args, n, bu, bi, P, Q, Y, hp, False)
            self.training_loss_.append(float(sse) / data.ratings.size)
        self.user_factors_, self.item_factors_ = P, Q
        self.user_bias_, self.item_bias_ = bu, bi
        self.implicit_factors_ = Y
        self._finish(data)
        if not np.isfinite(Y).all():
            raise FitError("SVDpp diverged (implicit_factors_ is not finite).")
        self.implicit_factors_[data.item_counts == 0] = 0
        self.user_implicit_ = self._implicit(self.seen_)

    def _implicit(self, rows: sp.csr_matrix) -> np.ndarray:
        out = np.zeros((rows.shape[0], self.implicit_factors_.shape[1]), dtype=np.float32)
        sqrt_n = np.sqrt(np.diff(rows.indptr).astype(np.float32))
        sgd.user_implicit_sum(
            np.asarray(rows.indptr, dtype=np.int64),
            np.asarray(rows.indices, dtype=np.int32),
            sqrt_n,
            self.implicit_factors_,
            out,
        )
        return out

    def _user_vectors(self, uidx: np.ndarray) -> np.ndarray:
        return self.user_factors_[uidx] + self.user_implicit_[uidx]

    def _fold_in_implicit(self, rows: sp.csr_matrix) -> np.ndarray | None:
        return self._implicit(sp.csr_matrix(rows))


# --------------------------------------------------------------------------- ALS-WR
class ExplicitALS(_RatingModel):
    """Alternating least squares on observed ratings with weighted-lambda regularisation.

    ALS-WR (Zhou et al. 2008): alternately, with the item side fixed, every user solves
    ``min sum_{i in I_u} (r_ui - x_u . y_i)^2 + regularization * n_u * |x_u|^2`` exactly
    (a ``k x k`` Cholesky solve per user, over the user's observed ratings only), then the
    items do the same with ``n_i``. With ``biased=True`` the model is
    ``mu + b_u + b_i + p_u . q_i``: the user side solves for ``x_u = [p_u, b_u]`` against
    ``y_i = [q_i, 1]`` with targets ``r_ui - mu - b_i`` (and symmetrically for items), a
    common extension of the original unbiased ``r_ui ~ p_u . q_i``.

    Each half-iteration is one C++ call (``explicit_als_solve``, ``cpp/als.hpp``): the
    normal equations of every row are accumulated over its observed ratings in double
    precision and solved by Cholesky, rows spread over ``num_threads`` threads with the GIL
    released. The implicit-ALS solver of the same header is not reused: it solves a
    different system (confidence-weighted, over all items, with a shared Gram matrix).

    Parameters
    ----------
    factors : int
    iterations : int
        Each iteration solves all users, then all items.
    regularization : float
        ``lambda`` of ALS-WR (multiplied by each row's number of ratings).
    biased : bool
    init_std : float
        Factors start from ``Normal(0, init_std)`` (users, then items); biases at 0.
    rating_scale : (low, high), optional
    random_state : int, Generator or None
    num_threads : int
        Rows are independent, so threads change nothing but speed (deterministic).
    """

    def __init__(
        self,
        factors: int = 50,
        iterations: int = 15,
        regularization: float = 0.05,
        biased: bool = True,
        init_std: float = 0.1,
        rating_scale: tuple[float, float] | None = None,
        random_state: Any = None,
        num_threads: int = 1,
    ) -> None:
        self.factors = factors
        self.iterations = iterations
        self.regularization = regularization
        self.biased = biased
        self.init_std = init_std
        self.rating_scale = rating_scale
        self.random_state = random_state
        self.num_threads = num_threads

    @property
    def _uses_biases(self) -> bool:  # type: ignore[override]
        return bool(self.biased)

    def _fit(self, interactions: Interactions) -> None:
        factors = _check_int(self.factors, "factors", 1)
        iterations = _check_int(self.iterations, "iterations", 1)
        reg = _check_float(self.regularization, "regularization", positive=True)
        init_std = _check_float(self.init_std, "init_std")
        if not isinstance(self.biased, (bool, np.bool_)):
            raise TypeError(f"biased must be a bool; got {self.biased!r}.")
        threads = search.resolve_threads(self.num_threads)
        rng = _rng(self.random_state)
        data = self._start(interactions)
        P = rng.normal(0.0, init_std, (data.n_users, factors)).astype(np.float32)
        Q = rng.normal(0.0, init_std, (data.n_items, factors)).astype(np.float32)
        bu = np.zeros(data.n_users, np.float32)
        bi = np.zeros(data.n_items, np.float32)
        # Item-major copy of the ratings (CSC order), built once.
        by_item = np.argsort(data.items, kind="stable")
        item_indptr = np.concatenate([[0], np.cumsum(data.item_counts)]).astype(np.int64)
        item_users = np.ascontiguousarray(data.users[by_item])
        item_ratings = np.ascontiguousarray(data.ratings[by_item])
        mu = np.float32(data.mean if self.biased else 0.0)
        core = search._core()
        for _ in range(iterations):
            # cpp/als.hpp (alswr::solve): every row's normal equations over its observed
            # ratings, (Y_u^T Y_u + reg n_u I) x_u = Y_u^T (r_u - mu - b), by Cholesky in
            # double precision, rows spread over threads with the GIL released.
            core.explicit_als_solve(
                data.indptr, data.items, data.ratings, Q, bi if self.biased else None,
                mu, reg, P, bu if self.biased else None, threads,
            )  # fmt: skip
            core.explicit_als_solve(
                item_indptr, item_users, item_ratings, P, bu if self.biased else None,
                mu, reg, Q, bi if self.biased else None, threads,
            )  # fmt: skip
        self.user_factors_, self.item_factors_ = P, Q
        self.user_bias_, self.item_bias_ = bu, bi
        self._finish(data)

    def _fold_in_reg(self) -> float:
        return float(self.regularization)
