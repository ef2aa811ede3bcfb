"""EASE: embarrassingly shallow autoencoder (Steck 2019), the closed-form item-item model."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from tastebud import search
from tastebud.data import Interactions
from tastebud.models.base import Recommender

__all__ = ["EASE", "ease_memory_gb"]

#: dense n_items x n_items buffers alive at the peak of ``fit`` (Gram/inverse, B, the copy
#: LAPACK needs for symmetrisation)
_PEAK_BUFFERS = 3


def ease_memory_gb(n_items: int, dtype: str = "float32") -> float:
    """Peak memory (GB, 1e9 bytes) that ``EASE.fit`` needs for ``n_items`` items."""
    itemsize = np.dtype(dtype).itemsize
    return _PEAK_BUFFERS * float(n_items) ** 2 * itemsize / 1e9


class EASE(Recommender):
    """EASE^R (Steck 2019): item-item weights with a zero diagonal, in closed form.

    ``B = I - P diagMat(1 / diag(P))`` with ``P = (XᵀX + λI)⁻¹``: the least-squares
    regression of every item column on all the other columns, with the self-weight forced to
    zero (the constraint the Lagrangian solution above enforces). ``score(u, j) = X_u B[:, j]``.
    Among the strongest top-N models in published reproducibility studies (Dacrema et al.,
    Anelli et al.); its cost is a dense n_items x n_items inverse: O(n_items³) time and
    ``3 n_items²`` floats of memory at the peak.

    Parameters
    ----------
    regularization : float
        λ > 0 added to the Gram diagonal (Steck uses 500 on ML-20M; tune per data set).
    dtype : {"float32", "float64"}
        Precision of the inverse (float32 halves memory; the stored weights are float32).
    max_memory_gb : float
        ``fit`` refuses (``MemoryError``) when the dense matrices would need more than this.
    num_threads : int
        0 = all cores (scoring threads; the inverse uses BLAS/LAPACK's own threads).

    Notes
    -----
    The learned ``weights_`` (float32, n_items x n_items) hold ``Bᵀ`` so that scoring is a
    dense product fused with the top-k (``tastebud.search.topk``), and ``similar_items``
    uses the cosine between the columns of B. New users need only their interactions.
    """

    _factor_scoring = True
    _fitted_arrays: ClassVar[tuple[str, ...]] = ("weights_",)

    def __init__(
        self,
        regularization: float = 500.0,
        dtype: str = "float32",
        max_memory_gb: float = 8.0,
        num_threads: int = 0,
    ) -> None:
        self.regularization = regularization
        self.dtype = dtype
        self.max_memory_gb = max_memory_gb
        self.num_threads = num_threads

    def _fit(self, interactions: Interactions) -> None:
        lam = self.regularization
        if isinstance(lam, bool) or not isinstance(lam, (int, float, np.integer, np.floating)):
            raise TypeError(f"regularization must be a positive number; got {lam!r}.")
        if not (np.isfinite(lam) and lam > 0):
            raise ValueError(f"regularization must be a positive number; got {lam}.")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64'; got {self.dtype!r}.")
        limit = self.max_memory_gb
        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not limit > 0:
            raise ValueError(f"max_memory_gb must be a positive number; got {limit!r}.")
        search.resolve_threads(self.num_threads)
        n = interactions.n_items
        need = ease_memory_gb(n, self.dtype)
        if need > limit:
            raise MemoryError(
                f"EASE needs about {need:.2f} GB for {n} items ({_PEAK_BUFFERS} dense "
                f"{n} x {n} {self.dtype} matrices) but max_memory_gb={limit}; raise "
                "max_memory_gb, use dtype='float32', or prune the catalogue (e.g. ItemKNN "
                "or RP3beta scale to any number of items)."
            )
        x = sp.csr_matrix(interactions.matrix, dtype=self.dtype)
        gram = (x.T @ x).toarray()
        gram[np.diag_indices(n)] += float(lam)
        # P = G⁻¹ through Cholesky (G is symmetric positive definite for λ > 0).
        potrf, potri = scipy.linalg.get_lapack_funcs(("potrf", "potri"), (gram,))
        chol, info = potrf(gram, lower=False, overwrite_a=True, clean=False)
        if info != 0:
            raise np.linalg.LinAlgError(f"EASE: Cholesky factorisation failed (info={info}).")
        del gram
        inv, info = potri(chol, lower=False, overwrite_c=True)
        if info != 0:
            raise np.linalg.LinAlgError(f"EASE: inverse failed (info={info}).")
        del chol
        # potri fills the upper triangle: mirror it to get the full symmetric P
        p = np.triu(inv)
        p += np.triu(inv, 1).T
        del inv
        diag = np.diag(p).copy()
        # B = I - P / diag(P) (column j divided by P_jj), diagonal zero
        p /= -diag[None, :]
        p[np.diag_indices(n)] = 0.0
        # weights_ = Bᵀ: row j holds the weights that score item j
        self.weights_ = np.ascontiguousarray(p.T, dtype=np.float32)

    def _user_embeddings(self, user_indices: np.ndarray | None, rows: sp.csr_matrix) -> np.ndarray:
        return np.asarray(rows.toarray(), dtype=np.float32)

    def _item_embeddings(self) -> np.ndarray:
        return self.weights_

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
        # An explicit num_threads (e.g. from evaluation code) wins; else the model's own.
        threads = num_threads or self.num_threads
        return super()._topk_rows(user_indices, rows, k, exclude, allow, deny, threads)
