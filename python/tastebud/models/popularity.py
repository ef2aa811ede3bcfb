"""Most-popular baseline: the first model and the reference every report shows."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from tastebud.data import Interactions
from tastebud.models.base import Recommender

__all__ = ["Popularity"]


class Popularity(Recommender):
    """Ranks items by how many users interacted with them (optionally recency-weighted).

    Parameters
    ----------
    weighting : {"users", "weight"}
        ``"users"`` counts distinct users per item; ``"weight"`` sums interaction weights.
    half_life : float, optional
        A positive real number (Python or numpy scalar, not a bool).
        If given, each interaction counts ``0.5 ** ((t_max - t) / half_life)``, where ``t`` is
        its timestamp and ``t_max`` the latest timestamp in training (same unit as the
        timestamps). Needs timestamps.

    Notes
    -----
    Every user gets the same ranking, minus the items they have seen. Ties are broken by the
    lower item index. ``similar_items`` is not defined for this model.
    """

    _factor_scoring = True
    _fitted_arrays = ("item_scores_",)

    def __init__(self, weighting: str = "users", half_life: float | None = None) -> None:
        self.weighting = weighting
        self.half_life = half_life

    def _fit(self, interactions: Interactions) -> None:
        if self.weighting not in ("users", "weight"):
            raise ValueError(f"weighting must be 'users' or 'weight'; got {self.weighting!r}.")
        m = interactions.matrix
        values = np.ones_like(m.data) if self.weighting == "users" else m.data.astype(np.float64)
        if self.half_life is not None:
            hl = self.half_life
            real = isinstance(hl, (int, float, np.integer, np.floating))
            if isinstance(hl, (bool, np.bool_)) or not (real and hl > 0):
                raise ValueError(f"half_life must be a positive number; got {hl!r}.")
            if interactions.timestamps is None:
                raise ValueError("half_life needs interactions with timestamps.")
            ts = interactions.timestamps.astype(np.float64)
            values = values * np.exp2(-(ts.max() - ts) / float(self.half_life))
        counts = np.bincount(m.indices, weights=values, minlength=interactions.n_items)
        self.item_scores_ = counts.astype(np.float32)

    def _validate_loaded(self) -> None:
        if self.item_scores_.shape != (len(self.items_),):
            raise ValueError(
                f"item_scores_ has shape {self.item_scores_.shape}; expected one per item."
            )

    def _user_embeddings(self, user_indices: Any, rows: sp.csr_matrix) -> np.ndarray:
        return np.ones((rows.shape[0], 1), dtype=np.float32)

    def _item_embeddings(self) -> np.ndarray:
        return self.item_scores_.reshape(-1, 1)

    def _similar_items_indices(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("Popularity has no notion of item similarity.")
