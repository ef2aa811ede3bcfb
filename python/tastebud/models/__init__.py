"""Recommender models: one module per family, all following the contract of ``base``."""

from tastebud.models.base import Recommendations, Recommender, load
from tastebud.models.item2vec import Item2Vec
from tastebud.models.popularity import Popularity

__all__ = ["Item2Vec", "Popularity", "Recommendations", "Recommender", "load"]
