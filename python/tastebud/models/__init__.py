"""Recommender models: one module per family, all following the contract of ``base``."""

from tastebud.models.als import ALS
from tastebud.models.base import Recommendations, Recommender, load
from tastebud.models.bpr import BPR
from tastebud.models.content import ContentBased
from tastebud.models.ease import EASE
from tastebud.models.hybrid import Blend, Hybrid
from tastebud.models.item2vec import Item2Vec
from tastebud.models.knn import ItemKNN, KNNRating, RP3beta, UserKNN
from tastebud.models.mf import SVD, Baseline, ExplicitALS, SVDpp
from tastebud.models.popularity import Popularity

__all__ = [
    "ALS",
    "BPR",
    "EASE",
    "SVD",
    "Baseline",
    "Blend",
    "ContentBased",
    "ExplicitALS",
    "Hybrid",
    "Item2Vec",
    "ItemKNN",
    "KNNRating",
    "Popularity",
    "RP3beta",
    "Recommendations",
    "Recommender",
    "SVDpp",
    "UserKNN",
    "load",
]
