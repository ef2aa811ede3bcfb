"""Bayesian Personalized Ranking (Rendle et al. 2009) by Hogwild SGD, in C++ (cpp/sgd.hpp)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from tastebud import search
from tastebud._errors import FitError
from tastebud.data import Interactions
from tastebud.models._factors import (
    PopularityFallback,
    check_float,
    check_int,
    check_weights,
    core,
    csr_parts,
    similar_by_cosine,
)
from tastebud.models.base import Recommendations, Recommender

__all__ = ["BPR"]


class BPR(PopularityFallback, Recommender):
    """Matrix factorization for implicit feedback by Bayesian Personalized Ranking.

    Maximises :math:`\\sum \\log \\sigma(\\hat x_{ui} - \\hat x_{uj}) - \\lambda \\|\\Theta\\|^2`
    over triples of a user, an item they interacted with and an item they did not
    (Rendle et al. 2009), with :math:`\\hat x_{ui} = x_u^T y_i + b_i`. Each epoch draws as many
    triples as there are interactions: a uniformly random interaction (so active users are
    sampled more often, as in implicit and the paper's bootstrap sampling) and a uniformly
    random negative item, redrawn while it is one of the user's items when
    ``verify_negative``. Threads update the shared factors without locks (Hogwild,
    Recht et al. 2011), each with its own xoshiro256** stream.

    Parameters
    ----------
    factors : int
        Latent dimension (>= 1).
    learning_rate : float
        SGD step (> 0).
    regularization : float
        :math:`\\lambda` (>= 0), applied to the factors and biases touched by each step.
    iterations : int
        Epochs.
    item_bias : bool
        Learn a per-item bias (implicit keeps it as an extra factor column; here it is a
        separate array, the same model).
    verify_negative : bool
        Redraw negatives that are actually positives of the user (up to 32 draws; a sample
        without a verified negative is skipped).
    fold_in_epochs : int
        Epochs of SGD on a new user's vector (item factors fixed) in ``recommend_for``.
    show_progress : bool
        tqdm progress bar; its postfix shows the fraction of correctly ordered samples.
    random_state : int or None
        Seed of the initial factors and of the sampler.
    num_threads : int
        OpenMP threads (0 = all cores). With one thread and a seed, results are identical
        from run to run; with several, Hogwild races make them vary slightly.

    Attributes
    ----------
    user_factors_ : float32 ndarray (n_users, factors)
    item_factors_ : float32 ndarray (n_items, factors)
    item_bias_ : float32 ndarray (n_items,)
        Zeros when ``item_bias=False``.
    item_popularity_ : float32 ndarray (n_items,)
        Ranking of users without interactions (they have zero factors).
    accuracy_history_ : float64 ndarray
        Per epoch, the fraction of sampled triples already ordered correctly.

    Notes
    -----
    ``recommend_for`` folds new users in by ``fold_in_epochs * n_u`` SGD steps on their
    vector alone (implicit cannot fold in BPR users: its issue #658). The random stream of
    each folded-in row depends only on ``random_state`` and the row's items, so a new user
    gets the same recommendations whatever the thread count and whichever other users are
    in the same call.

    Thread-safety: ``fit`` mutates the model; other methods may run concurrently.
    """

    _factor_scoring = True
    _fitted_arrays = (
        "user_factors_",
        "item_factors_",
        "item_bias_",
        "item_popularity_",
        "accuracy_history_",
    )

    def __init__(
        self,
        factors: int = 64,
        learning_rate: float = 0.05,
        regularization: float = 0.01,
        iterations: int = 100,
        *,
        item_bias: bool = True,
        verify_negative: bool = True,
        fold_in_epochs: int = 50,
        show_progress: bool = False,
        random_state: int | None = None,
        num_threads: int = 0,
    ) -> None:
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.item_bias = item_bias
        self.verify_negative = verify_negative
        self.fold_in_epochs = fold_in_epochs
        self.show_progress = show_progress
        self.random_state = random_state
        self.num_threads = num_threads

    def _checked(self) -> dict[str, Any]:
        rs = self.random_state
        if rs is not None and (isinstance(rs, bool) or not isinstance(rs, (int, np.integer))):
            raise TypeError(f"random_state must be an int or None; got {rs!r}.")
        for name in ("item_bias", "verify_negative"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool; got {getattr(self, name)!r}.")
        return {
            "factors": check_int(self.factors, "factors", 1),
            "lr": check_float(self.learning_rate, "learning_rate", strict=True),
            "reg": check_float(self.regularization, "regularization"),
            "iterations": check_int(self.iterations, "iterations", 0),
            "fold_in_epochs": check_int(self.fold_in_epochs, "fold_in_epochs", 0),
            "threads": search.resolve_threads(self.num_threads),
        }

    def _seed(self) -> int:
        """A 63-bit sampler seed derived from random_state (fresh entropy when None)."""
        return int(np.random.default_rng(self.random_state).integers(0, 2**63 - 1))

    def fit(
        self,
        interactions: Any,
        *,
        callback: Callable[[int, float, float], Any] | None = None,
    ) -> BPR:
        """Learn the factors; ``callback(epoch, seconds, accuracy)`` runs after each epoch.

        Interaction weights only mark positives (any weight > 0); negative or NaN raise.
        """
        self._callback = callback
        try:
            super().fit(interactions)
        finally:
            del self._callback
        return self

    def _fit(self, interactions: Interactions) -> None:
        p = self._checked()
        pos = check_weights(interactions.matrix)
        if pos.nnz == 0:
            raise ValueError("interactions are empty: every weight is zero.")
        n, m = pos.shape
        f = p["factors"]
        rng = np.random.default_rng(self.random_state)
        seed = int(rng.integers(0, 2**63 - 1))
        # Small centred start as in implicit: (U(0,1) - 0.5) / factors.
        x = ((rng.random((n, f), dtype=np.float32) - 0.5) / f).astype(np.float32)
        y = ((rng.random((m, f), dtype=np.float32) - 0.5) / f).astype(np.float32)
        bias = np.zeros(m, dtype=np.float32)
        indptr, indices, _ = csr_parts(pos)
        row_of = np.repeat(np.arange(n, dtype=np.int32), np.diff(indptr))
        kernel = core()
        accuracy: list[float] = []
        callback = getattr(self, "_callback", None)
        with tqdm(
            total=p["iterations"], disable=not self.show_progress, desc="BPR", leave=False
        ) as bar:
            for epoch in range(p["iterations"]):
                t0 = time.perf_counter()
                correct, skipped = kernel.bpr_epoch(
                    indptr, indices, row_of, x, y, bias if self.item_bias else None, p["lr"],
                    p["reg"], bool(self.verify_negative), pos.nnz, seed, epoch, p["threads"],
                )  # fmt: skip
                seconds = time.perf_counter() - t0
                acc = correct / max(1, pos.nnz - skipped)
                accuracy.append(acc)
                bar.set_postfix(correct=f"{acc:.3f}")
                bar.update(1)
                if callback is not None:
                    callback(epoch, seconds, acc)
        if not (np.isfinite(x).all() and np.isfinite(y).all() and np.isfinite(bias).all()):
            raise FitError("BPR diverged (NaN or infinite factors): lower learning_rate.")
        x[np.diff(indptr) == 0] = 0.0  # no evidence: popularity fallback
        self.user_factors_ = x
        self.item_factors_ = y
        self.item_bias_ = bias
        self.accuracy_history_ = np.asarray(accuracy, dtype=np.float64)
        self.seen_ = pos
        self._refresh_popularity()

    def _user_embeddings(self, user_indices: np.ndarray | None, rows: sp.csr_matrix) -> np.ndarray:
        if user_indices is not None:
            return self.user_factors_[user_indices]
        p = self._checked()
        rows = check_weights(rows)
        if rows.shape[0] == 0:
            return np.zeros((0, self.item_factors_.shape[1]), np.float32)
        indptr, indices, _ = csr_parts(rows)
        return core().bpr_fold_in(
            indptr, indices, self.item_factors_, self.item_bias_ if self.item_bias else None,
            p["lr"], p["reg"], bool(self.verify_negative), p["fold_in_epochs"], self._seed(),
            p["threads"],
        )  # fmt: skip

    def _item_embeddings(self) -> np.ndarray:
        return self.item_factors_

    def _item_bias(self) -> np.ndarray | None:
        return self.item_bias_ if self.item_bias else None

    def similar_users(self, users: Any, k: int = 10) -> Recommendations:
        """The ``k`` users whose factors have the highest cosine with each given user's."""
        self._check_fitted()
        return similar_by_cosine(self.user_factors_, self.users_.index(users), k, self.users_)
