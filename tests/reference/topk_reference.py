"""Plain numpy reference for tastebud.search.topk (argsort, no blocking, no heaps)."""

from __future__ import annotations

import numpy as np


def topk_reference(scores, k, exclude_rows=None, allowed=None):
    """k best (index, score) per row: best first, ties by lower index, padded with (-1, -inf).

    ``exclude_rows``: list of index collections per row; ``allowed``: boolean mask or None.
    Entries scoring -inf or NaN are never returned.
    """
    scores = np.asarray(scores, dtype=np.float32)
    n = scores.shape[0]
    out_idx = np.full((n, k), -1, dtype=np.int64)
    out_sc = np.full((n, k), -np.inf, dtype=np.float32)
    for r in range(n):
        row = scores[r].copy()
        valid = np.isfinite(row) | (row == np.inf)
        valid &= ~np.isnan(row)
        valid &= row != -np.inf
        if exclude_rows is not None:
            for j in exclude_rows[r]:
                valid[j] = False
        if allowed is not None:
            valid &= allowed
        cand = np.flatnonzero(valid)
        order = np.lexsort((cand, -row[cand].astype(np.float64)))
        chosen = cand[order][:k]
        out_idx[r, : chosen.size] = chosen
        out_sc[r, : chosen.size] = row[chosen]
    return out_idx, out_sc
