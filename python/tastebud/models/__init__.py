"""Recommender models: one module per family, all following the contract of ``base``."""

from tastebud.models.als import ALS
from tastebud.models.base import Recommendations, Recommender, load
from tastebud.models.bpr import BPR
from tastebud.models.popularity import Popularity

__all__ = ["ALS", "BPR", "Popularity", "Recommendations", "Recommender", "load"]
