"""Recommender models: one module per family, all following the contract of ``base``."""

from tastebud.models.base import Recommendations, Recommender, load
from tastebud.models.hybrid import Blend, Hybrid
from tastebud.models.popularity import Popularity

__all__ = ["Blend", "Hybrid", "Popularity", "Recommendations", "Recommender", "load"]
