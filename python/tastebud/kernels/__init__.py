"""Numba kernels (private API).

Submodules are imported by the modules that use them, never here, so that
``import tastebud`` stays cheap: nothing is compiled until first use.

- :mod:`tastebud.kernels.metrics` — fused ranking metrics, AUC, confusion
  counts, serendipity and list-overlap kernels behind :mod:`tastebud.metrics`.
- :mod:`tastebud.kernels.sgd` — SGD epochs for biased MF and SVD++ (serial and Hogwild),
  shuffling, and the per-row ALS-WR solve behind :mod:`tastebud.models.mf`.
"""
