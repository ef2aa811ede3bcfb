"""Recommender models: one module per family, all following the contract of ``base``."""

from tastebud.models.base import Recommendations, Recommender, load
from tastebud.models.mf import SVD, Baseline, ExplicitALS, SVDpp
from tastebud.models.popularity import Popularity

__all__ = [
    "SVD",
    "Baseline",
    "ExplicitALS",
    "Popularity",
    "Recommendations",
    "Recommender",
    "SVDpp",
    "load",
]
