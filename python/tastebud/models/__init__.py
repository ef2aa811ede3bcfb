"""Recommender models: one module per family, all following the contract of ``base``."""

from tastebud.models.base import Recommendations, Recommender, load
from tastebud.models.popularity import Popularity

__all__ = ["Popularity", "Recommendations", "Recommender", "load"]
