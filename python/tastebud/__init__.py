"""tastebud: recommender systems with a compiled core.

One API over content-based, neighbourhood, matrix-factorization, hybrid and
embedding recommenders, the kernels under them (top-k selection, similarity
search, sparse factorization) and the metrics that tell whether they work.

Submodules and public names are imported lazily on first use, so
``import tastebud`` is cheap and never compiles anything.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "DataWarning": "tastebud._errors",
    "FitError": "tastebud._errors",
    "NotFittedError": "tastebud._errors",
    "ParameterWarning": "tastebud._errors",
    "Interactions": "tastebud.data",
    "Features": "tastebud.data",
    "Vocabulary": "tastebud.data",
    "Sequences": "tastebud.data",
    "Recommender": "tastebud.models",
    "Recommendations": "tastebud.models",
    "Popularity": "tastebud.models",
    "ItemKNN": "tastebud.models",
    "UserKNN": "tastebud.models",
    "KNNRating": "tastebud.models",
    "RP3beta": "tastebud.models",
    "EASE": "tastebud.models",
    "Item2Vec": "tastebud.models",
    "ALS": "tastebud.models",
    "BPR": "tastebud.models",
    "Baseline": "tastebud.models",
    "SVD": "tastebud.models",
    "SVDpp": "tastebud.models",
    "ExplicitALS": "tastebud.models",
    "Hybrid": "tastebud.models",
    "Blend": "tastebud.models",
    "ContentBased": "tastebud.models",
    "SimilarityIndex": "tastebud.search",
    "load": "tastebud.models",
}
_SUBMODULES = {
    "abtest",
    "data",
    "distributed",
    "evaluation",
    "kernels",
    "metrics",
    "models",
    "search",
}

__all__ = sorted([*_LAZY, *_SUBMODULES, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"tastebud.{name}")
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tastebud' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
