"""Small models for the distributed tests (imported by name on the Dask workers).

They follow the Recommender contract on both scoring paths: ``ToyFactors`` uses the factor
hooks (and has ``predict`` for the rating metrics), ``ToyCooccurrence`` the dense-block hook
and scores from the ``rows`` it is given (so shipping the wrong rows would show).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from tastebud.data import Interactions
from tastebud.models.base import Recommender


class ToyFactors(Recommender):
    _factor_scoring = True
    _fitted_arrays = ("user_factors_", "item_factors_", "item_bias_")

    def __init__(self, factors: int = 6, random_state: int = 0) -> None:
        self.factors = factors
        self.random_state = random_state

    def _fit(self, interactions: Interactions) -> None:
        rng = np.random.default_rng(self.random_state)
        n, m = interactions.shape
        self.user_factors_ = rng.standard_normal((n, self.factors)).astype(np.float32)
        self.item_factors_ = rng.standard_normal((m, self.factors)).astype(np.float32)
        self.item_bias_ = np.log1p(interactions.item_counts()).astype(np.float32)

    def _user_embeddings(self, user_indices: Any, rows: sp.csr_matrix) -> np.ndarray:
        if user_indices is None:
            return np.asarray(rows @ self.item_factors_, dtype=np.float32)
        return self.user_factors_[user_indices]

    def _item_embeddings(self) -> np.ndarray:
        return self.item_factors_

    def _item_bias(self) -> np.ndarray:
        return self.item_bias_

    def predict(self, users: Any, items: Any) -> np.ndarray:
        return 3.0 + 0.5 * self.score(users, items)


class ToyCooccurrence(Recommender):
    _fitted_arrays = ("cooccurrence_",)

    def __init__(self) -> None:
        pass

    def _fit(self, interactions: Interactions) -> None:
        x = interactions.matrix
        self.cooccurrence_ = np.asarray((x.T @ x).todense(), dtype=np.float32)

    def _score_block(self, user_indices: Any, rows: sp.csr_matrix) -> np.ndarray:
        return np.asarray(rows @ self.cooccurrence_, dtype=np.float32)
