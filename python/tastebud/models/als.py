"""Implicit-feedback alternating least squares (Hu, Koren & Volinsky 2008), in C++.

The kernels live in ``cpp/als.hpp``; this module validates, prepares the CSR matrices once
(users x items and its transpose), computes the Gram matrix ``YtY`` with BLAS once per
half-iteration, and calls one kernel per half-iteration.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
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
    replace_rows,
    rows_for,
    similar_by_cosine,
)
from tastebud.models.base import Recommendations, Recommender

__all__ = ["ALS", "Explanation"]

_SOLVERS = {"cg": 0, "cholesky": 1}
_DTYPES = {"float32": np.float32, "float64": np.float64}
#: Gram matrices below this many multiply-adds are computed with one BLAS thread: waking
#: BLAS worker threads costs more than the product (and competes with OpenMP's threads).
_GRAM_ONE_THREAD_FLOPS = 5e7


def _gram_of(factors: np.ndarray, scale: float, threads: int, dtype: Any) -> np.ndarray:
    """``scale * factors.T @ factors`` in ``dtype``, C-contiguous (BLAS, few threads if small)."""
    n, f = factors.shape
    limit = 1 if n * f * f < _GRAM_ONE_THREAD_FLOPS else threads
    with search._blas_controller().limit(limits=limit, user_api="blas"):
        gram = factors.T @ factors
    return np.ascontiguousarray(scale * gram, dtype=dtype)


def _loss_scale(data: np.ndarray, cells: int, p: dict[str, Any]) -> float:
    """The training loss's denominator: the confidence of the observed cells (``data``)
    plus ``w0`` for each of the other ``cells - data.size``."""
    confidence = float(np.sum(1.0 + p["alpha"] * data.astype(np.float64)))
    return confidence + p["w0"] * (cells - data.size)


@dataclass(frozen=True)
class Explanation:
    """Why ALS scores an item for a user (see ``ALS.explain``).

    Attributes
    ----------
    score : float
        The sum of the contributions: the score of the item for the user's factors solved
        exactly against the current item factors.
    items : ndarray
        Raw ids of the user's items, largest contribution first.
    contributions : float64 ndarray
        Each item's share of ``score``.
    """

    score: float
    items: np.ndarray
    contributions: np.ndarray


class ALS(PopularityFallback, Recommender):
    """Matrix factorization for implicit feedback by alternating least squares.

    Minimises (Hu, Koren & Volinsky 2008, with the options of Rendle et al. 2021)

    .. math::

        \\sum_{(u,i) \\in S} c_{ui} (1 - x_u^T y_i)^2
        + w_0 \\sum_{(u,i) \\notin S} (x_u^T y_i)^2
        + \\sum_u \\lambda_u \\|x_u\\|^2 + \\sum_i \\lambda_i \\|y_i\\|^2

    with confidence :math:`c_{ui} = 1 + \\alpha r_{ui}` for every observed weight
    :math:`r_{ui} > 0` and regularization :math:`\\lambda_u = \\lambda (n_u + w_0 n_{items})^\\nu`
    (:math:`\\nu = 0`: plain :math:`\\lambda`). Each half-iteration solves every user (then
    every item) exactly or by a few warm-started conjugate-gradient steps (Takács, Pilászy &
    Tikk 2011), with ``YtY`` computed once and the per-user part evaluated sparsely.

    Parameters
    ----------
    factors : int
        Latent dimension (>= 1).
    regularization : float
        :math:`\\lambda` (>= 0).
    alpha : float
        Confidence slope: an observed weight ``r`` counts ``1 + alpha * r`` (>= 0). Note that
        implicit uses ``alpha * r`` instead; ``alpha=1`` here is closer to its ``alpha=2``.
    iterations : int
        Alternating passes (each solves users, then items).
    solver : {"cg", "cholesky"}
        Conjugate gradient (fast, approximate; the default) or the exact Cholesky solve.
    cg_steps : int
        CG steps per row and half-iteration (3 is what implicit uses; more = closer to exact).
    unobserved_weight : float
        :math:`w_0`, the weight of each unobserved entry (1 = Hu et al.; Rendle et al. tune
        it, typically well below 1 on large catalogues). Scales the ``YtY`` term.
    regularization_exponent : float
        :math:`\\nu` of the frequency-scaled regularization of Rendle et al. (0 = off; they
        use 1). With :math:`\\nu = 1` use a much smaller ``regularization``.
    calculate_training_loss : bool
        Compute the (normalised) training loss after each iteration: passed to the callback,
        shown in the progress bar and kept in ``loss_history_``. Costs about one CG step.
    show_progress : bool
        tqdm progress bar over iterations.
    random_state : int or None
        Seed of the initial factors.
    num_threads : int
        OpenMP threads (0 = all cores). Results do not depend on it.
    dtype : {"float32", "float64"}
        Precision of the factors and of the solves (the C++ kernel is compiled for both).
        float32 (the default) is twice as fast and what implicit uses; float64 is for
        studies that need the tighter arithmetic (e.g. comparing CG with the exact solve far
        below float32 rounding). Saved and restored with the model. Scoring (``recommend``,
        ``score``, ``similar_*``) always goes through the float32 top-k kernel, so rankings
        of float64 models are computed from the factors rounded to float32.

    Attributes
    ----------
    user_factors_, item_factors_ : ndarray (n, factors) of ``dtype``
    item_popularity_ : float32 ndarray (n_items,)
        Training users per item, the ranking of users without interactions.
    loss_history_ : float64 ndarray
        Training loss per iteration (empty unless ``calculate_training_loss``).

    Notes
    -----
    Users with no interactions get zero factors (the minimiser of their loss) and are
    recommended the most popular items (``item_popularity_``); ``score`` returns popularity
    for them too. Items without interactions get zero factors and score 0.

    With the Cholesky solver every half-iteration minimises the loss exactly in one block of
    variables, so the training loss never increases. CG with few steps is not monotone in
    general but converges to the same fixed points and is much faster.

    Settings used on ml-100k (binarised, per-user 20% holdout, seed 42;
    64 factors, 15 iterations, CG with 3 steps). The protocol's ``regularization=0.05,
    alpha=1`` gives NDCG@10 0.354 (implicit: 0.346). The iALS options of Rendle et al. help a
    lot: ``unobserved_weight=0.3, regularization_exponent=1, regularization=0.02`` gives
    0.439 (a grid over w0 in {0.1, 0.3, 1}, nu in {0, 1} and regularization; with nu = 0 the
    best was 0.387 at regularization 5). Reproduce with
    ``benchmarks/compare_peers.py als --ials``.

    Thread-safety: ``fit`` and ``partial_fit_*`` mutate the model; ``recommend``,
    ``recommend_for``, ``score``, ``explain`` and ``similar_*`` may run concurrently.

    Examples
    --------
    >>> from tastebud.data import datasets
    >>> from tastebud.models import ALS
    >>> data = datasets.synthetic(300, 200, 6000, random_state=0)
    >>> model = ALS(factors=16, iterations=5, random_state=0).fit(data.interactions)
    >>> model.recommend(data.interactions.users.ids_array[:2], k=3).ids.shape
    (2, 3)
    """

    _factor_scoring = True
    _fitted_arrays = ("user_factors_", "item_factors_", "item_popularity_", "loss_history_")

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 1.0,
        iterations: int = 15,
        *,
        solver: str = "cg",
        cg_steps: int = 3,
        unobserved_weight: float = 1.0,
        regularization_exponent: float = 0.0,
        calculate_training_loss: bool = False,
        show_progress: bool = False,
        random_state: int | None = None,
        num_threads: int = 0,
        dtype: str = "float32",
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.solver = solver
        self.cg_steps = cg_steps
        self.unobserved_weight = unobserved_weight
        self.regularization_exponent = regularization_exponent
        self.calculate_training_loss = calculate_training_loss
        self.show_progress = show_progress
        self.random_state = random_state
        self.num_threads = num_threads
        self.dtype = dtype

    # ----------------------------------------------------------------- parameters
    def _checked(self) -> dict[str, Any]:
        if self.solver not in _SOLVERS:
            raise ValueError(f"solver must be 'cg' or 'cholesky'; got {self.solver!r}.")
        rs = self.random_state
        if rs is not None and (isinstance(rs, bool) or not isinstance(rs, (int, np.integer))):
            raise TypeError(f"random_state must be an int or None; got {rs!r}.")
        if not isinstance(self.dtype, str) or self.dtype not in _DTYPES:
            raise ValueError(
                f"dtype must be the string 'float32' or 'float64' (a string, so that the "
                f"model can be saved); got {self.dtype!r}."
            )
        return {
            "dtype": _DTYPES[self.dtype],
            "factors": check_int(self.factors, "factors", 1),
            "regularization": check_float(self.regularization, "regularization"),
            "alpha": check_float(self.alpha, "alpha"),
            "iterations": check_int(self.iterations, "iterations", 0),
            "solver": _SOLVERS[self.solver],
            "cg_steps": check_int(self.cg_steps, "cg_steps", 1),
            "w0": check_float(self.unobserved_weight, "unobserved_weight"),
            "nu": check_float(self.regularization_exponent, "regularization_exponent"),
            "threads": search.resolve_threads(self.num_threads),
        }

    def _row_reg(self, counts: np.ndarray, n_other: int, p: dict[str, Any]) -> np.ndarray:
        """Per-row regularization lambda (n_row + w0 * n_other) ** nu."""
        reg = np.full(counts.shape, p["regularization"], dtype=np.float64)
        if p["nu"]:
            reg *= (counts + p["w0"] * n_other) ** p["nu"]
        return np.ascontiguousarray(reg, dtype=np.float32)

    # ----------------------------------------------------------------- fitting
    def fit(
        self,
        interactions: Any,
        *,
        callback: Callable[[int, float, float | None], Any] | None = None,
    ) -> ALS:
        """Learn user and item factors.

        Parameters
        ----------
        interactions : Interactions or scipy.sparse matrix
            Users x items weights ``r >= 0`` (0 = unobserved; negative or NaN raise).
        callback : callable, optional
            Called after each iteration as ``callback(iteration, seconds, loss)`` (``loss`` is
            None unless ``calculate_training_loss``).

        Returns
        -------
        self
        """
        self._callback = callback
        try:
            super().fit(interactions)
        finally:
            del self._callback
        return self

    def _fit(self, interactions: Interactions) -> None:
        p = self._checked()
        # Read-only from here on: a clean input matrix is used without a copy (peak memory).
        cui = check_weights(interactions.matrix, reuse=True)
        if cui.nnz == 0:
            raise ValueError("interactions are empty: every weight is zero.")
        ciu = cui.T.tocsr()
        ciu.sort_indices()
        n, m = cui.shape
        f = p["factors"]
        rng = np.random.default_rng(self.random_state)
        # Small positive start (as implicit): CG warm-starts from it. Drawn in float32 for
        # both precisions, so a float64 fit starts from the same point.
        dt = p["dtype"]
        # Scaled in place: the factors are the largest arrays besides the two matrices.
        x = rng.random((n, f), dtype=np.float32)
        x *= np.float32(0.01)
        y = rng.random((m, f), dtype=np.float32)
        y *= np.float32(0.01)
        x, y = x.astype(dt, copy=False), y.astype(dt, copy=False)
        reg_u = self._row_reg(np.diff(cui.indptr), m, p)
        reg_i = self._row_reg(np.diff(ciu.indptr), n, p)
        u_parts, i_parts = csr_parts(cui), csr_parts(ciu)
        kernel = core()
        losses: list[float] = []
        if self.calculate_training_loss:
            scale = _loss_scale(u_parts[2], n * m, p)
        callback = getattr(self, "_callback", None)
        with tqdm(
            total=p["iterations"], disable=not self.show_progress, desc="ALS", leave=False
        ) as bar:
            for it in range(p["iterations"]):
                t0 = time.perf_counter()
                for parts, solved, fixed, reg in ((u_parts, x, y, reg_u), (i_parts, y, x, reg_i)):
                    gram = _gram_of(fixed, p["w0"], p["threads"], dt)
                    kernel.als_solve(
                        *parts, fixed, gram, reg, solved, p["alpha"], p["w0"], p["solver"],
                        p["cg_steps"], p["threads"],
                    )  # fmt: skip
                seconds = time.perf_counter() - t0
                loss = None
                if self.calculate_training_loss:
                    loss = self._loss(u_parts, x, y, reg_u, reg_i, scale, p)
                    losses.append(loss)
                    bar.set_postfix(loss=f"{loss:.5g}")
                bar.update(1)
                if callback is not None:
                    callback(it, seconds, loss)
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise FitError(
                "ALS produced NaN or infinite factors: lower alpha or raise regularization."
            )
        self.user_factors_ = x
        self.item_factors_ = y
        self.loss_history_ = np.asarray(losses, dtype=np.float64)
        self.seen_ = cui
        self._refresh_popularity()

    def _loss(self, parts, x, y, reg_u, reg_i, scale, p) -> float:  # type: ignore[no-untyped-def]
        """The training loss divided by ``scale`` (``_loss_scale``, computed once per fit)."""
        gram = _gram_of(y, 1.0, p["threads"], p["dtype"])
        rows = core().als_loss(*parts, y, gram, reg_u, x, p["alpha"], p["w0"], p["threads"])
        total = float(rows.sum()) + float(reg_i @ np.einsum("ij,ij->i", y, y, dtype=np.float64))
        return total / scale

    # ----------------------------------------------------------------- solving rows
    def _gram(self) -> np.ndarray:
        """``w0 * YtY`` of the current item factors (cached; recomputed when they change)."""
        cached = getattr(self, "_gram_cache", None)
        y = self.item_factors_
        if cached is not None and cached[0] is y and cached[1] == y.shape:
            return cached[2]
        p = self._checked()
        gram = _gram_of(y, p["w0"], p["threads"], y.dtype)
        self._gram_cache = (y, y.shape, gram)
        return gram

    def _solve_rows(self, rows: sp.csr_matrix, fixed: np.ndarray, gram: np.ndarray) -> np.ndarray:
        """Exact (Cholesky) factors of ``rows`` against ``fixed`` factors, as in training."""
        p = self._checked()
        rows = check_weights(rows)
        out = np.zeros((rows.shape[0], fixed.shape[1]), dtype=fixed.dtype)
        if rows.shape[0] == 0:
            return out
        reg = self._row_reg(np.diff(rows.indptr), fixed.shape[0], p)
        core().als_solve(
            *csr_parts(rows), np.ascontiguousarray(fixed), np.ascontiguousarray(gram, fixed.dtype),
            reg, out, p["alpha"], p["w0"],
            _SOLVERS["cholesky"], 1, p["threads"],
        )  # fmt: skip
        return out

    def _user_embeddings(self, user_indices: np.ndarray | None, rows: sp.csr_matrix) -> np.ndarray:
        if user_indices is not None:
            return np.asarray(self.user_factors_[user_indices], dtype=np.float32)
        solved = self._solve_rows(rows, self.item_factors_, self._gram())
        return np.asarray(solved, dtype=np.float32)

    def _item_embeddings(self) -> np.ndarray:
        return np.asarray(self.item_factors_, dtype=np.float32)

    # ----------------------------------------------------------------- incremental updates
    def partial_fit_users(self, users: Any, interactions: Any) -> ALS:
        """Recompute the factors of some users from their (complete, new) interactions.

        Parameters
        ----------
        users : raw user ids
            Known users are updated; unknown ones are added to the model.
        interactions : scipy sparse (len(users), n_items) or sequence of item-id lists/dicts
            Each user's full interaction history (it replaces the stored one), with columns
            in this model's item order for a sparse matrix.

        Returns
        -------
        self

        Notes
        -----
        Each user is solved exactly (Cholesky) against the current item factors, like
        ``recommend_for``; item factors are not changed. Not thread-safe with other calls.
        """
        self._check_fitted()
        vocab, uidx = self.users_.extend(users)
        rows = rows_for(self.items_, interactions, uidx.size, "users")
        if np.unique(uidx).size != uidx.size:
            raise ValueError("users must not contain duplicates.")
        solved = self._solve_rows(rows, self.item_factors_, self._gram())
        x = self.user_factors_
        if len(vocab) > x.shape[0]:
            x = np.vstack([x, np.zeros((len(vocab) - x.shape[0], x.shape[1]), x.dtype)])
        else:
            x = x.copy()
        x[uidx] = solved
        self.seen_ = replace_rows(self.seen_, uidx, rows, len(vocab))
        self.users_ = vocab
        self.user_factors_ = x
        self._refresh_popularity()
        return self

    def partial_fit_items(self, items: Any, interactions: Any) -> ALS:
        """Recompute the factors of some items from their (complete, new) interactions.

        Parameters
        ----------
        items : raw item ids
            Known items are updated; unknown ones are added to the model.
        interactions : scipy sparse (len(items), n_users) or sequence of user-id lists/dicts
            Each item's full set of users (it replaces the stored one).

        Returns
        -------
        self
        """
        self._check_fitted()
        vocab, iidx = self.items_.extend(items)
        rows = rows_for(self.users_, interactions, iidx.size, "items")
        if np.unique(iidx).size != iidx.size:
            raise ValueError("items must not contain duplicates.")
        p = self._checked()
        xtx = _gram_of(self.user_factors_, p["w0"], p["threads"], self.user_factors_.dtype)
        solved = self._solve_rows(rows, self.user_factors_, xtx)
        y = self.item_factors_
        if len(vocab) > y.shape[0]:
            y = np.vstack([y, np.zeros((len(vocab) - y.shape[0], y.shape[1]), y.dtype)])
        else:
            y = y.copy()
        y[iidx] = solved
        seen_t = replace_rows(self.seen_.T.tocsr(), iidx, rows, len(vocab))
        self.seen_ = seen_t.T.tocsr()
        self.seen_.sort_indices()
        self.items_ = vocab
        self.item_factors_ = y
        self._refresh_popularity()
        return self

    # ----------------------------------------------------------------- explanations
    def explain(self, user: Any, item: Any) -> Explanation:
        """How much each of the user's items contributes to the score of ``item``.

        As in implicit (after Hu, Koren & Volinsky 2008, section 5): with
        :math:`A_u = w_0 Y^T Y + Y^T (C_u - w_0) Y + \\lambda_u I` and its Cholesky factor, the
        score of item :math:`j` is :math:`\\sum_{i \\in I_u} c_{ui}\\, y_j^T A_u^{-1} y_i`; the
        terms are the contributions.

        Parameters
        ----------
        user : raw user id
        item : raw item id

        Returns
        -------
        Explanation
            ``score`` equals the user's score for ``item`` after solving the user exactly
            against the current item factors (``recommend_for`` on the user's history).
        """
        self._check_fitted()
        u = int(self.users_.index(user)[0])
        j = int(self.items_.index(item)[0])
        p = self._checked()
        row = self.seen_[u]
        cols = row.indices
        y = self.item_factors_.astype(np.float64)
        yu = y[cols]
        c = 1.0 + p["alpha"] * row.data.astype(np.float64)
        reg = float(self._row_reg(np.asarray([cols.size]), y.shape[0], p)[0])
        a = self._gram().astype(np.float64) + reg * np.eye(y.shape[1])
        a += yu.T @ ((c - p["w0"])[:, None] * yu)
        weighted = scipy.linalg.cho_solve(scipy.linalg.cho_factor(a), y[j])
        contributions = c * (yu @ weighted)
        order = np.argsort(-contributions, kind="stable")
        return Explanation(
            float(contributions.sum()), self.items_.ids(cols[order]), contributions[order]
        )

    def similar_users(self, users: Any, k: int = 10) -> Recommendations:
        """The ``k`` users whose factors have the highest cosine with each given user's.

        Returns ``Recommendations`` whose ``ids`` are raw user ids.
        """
        self._check_fitted()
        return similar_by_cosine(self.user_factors_, self.users_.index(users), k, self.users_)
