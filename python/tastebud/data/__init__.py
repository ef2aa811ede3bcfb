"""Data layer: interactions, side features, splits and data sets."""

from . import datasets, split
from ._features import Features
from ._interactions import Interactions
from ._sequences import Sequences
from ._vocabulary import Vocabulary

__all__ = ["Features", "Interactions", "Sequences", "Vocabulary", "datasets", "split"]
