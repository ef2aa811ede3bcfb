"""Recommender models: one module per family, all following the contract of ``base``."""

from tastebud.models.base import Recommendations, Recommender, load
from tastebud.models.content import ContentBased
from tastebud.models.popularity import Popularity

__all__ = ["ContentBased", "Popularity", "Recommendations", "Recommender", "load"]
