"""Plain-numpy references for the sparse kNN kernels (dense n x n, obviously correct)."""

from __future__ import annotations

import numpy as np


def weight_rows_dense(
    x: np.ndarray, weighting: str, k1: float = 1.2, b: float = 0.75
) -> np.ndarray:
    """implicit's tfidf_weight / bm25_weight on the rows of a dense matrix (stored = non-zero)."""
    x = np.asarray(x, dtype=np.float64)
    if weighting == "none":
        return x.copy()
    nz = x != 0
    idf = np.log(max(x.shape[0], 1)) - np.log1p(nz.sum(axis=0))
    if weighting == "tfidf":
        return np.where(nz, np.sqrt(np.abs(x)) * np.sign(x) * idf[None, :], 0.0)
    lengths = x.sum(axis=1)
    avg = lengths.mean() if lengths.size else 1.0
    norm = (1 - b) + b * lengths / (avg if avg > 0 else 1.0)
    return np.where(nz, x * (k1 + 1) / (k1 * norm[:, None] + x) * idf[None, :], 0.0)


def similarity_dense(
    q: np.ndarray,
    t: np.ndarray,
    kind: str,
    *,
    alpha: float = 0.5,
    shrink: float = 0.0,
    min_support: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """(similarity, touched) of every query row against every target row, by definition.

    ``touched[i, j]``: the two rows share at least one stored column (the sparse kernel only
    considers such pairs).
    """
    q = np.asarray(q, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    qn, tn = q != 0, t != 0
    support = qn.astype(np.int64) @ tn.T.astype(np.int64)
    touched = support > 0
    dot = q @ t.T
    qsq, tsq = (q**2).sum(1), (t**2).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "dot":
            sim = dot
        elif kind == "cosine":
            sim = dot / (np.sqrt(qsq)[:, None] * np.sqrt(tsq)[None, :] + shrink)
        elif kind == "asymmetric":
            sim = dot / (qsq[:, None] ** alpha * tsq[None, :] ** (1 - alpha) + shrink)
        elif kind == "jaccard":
            sim = dot / (qsq[:, None] + tsq[None, :] - dot + shrink)
        else:
            sim = np.zeros(dot.shape)
            for i in range(q.shape[0]):
                for j in range(t.shape[0]):
                    both = qn[i] & tn[j]
                    n = both.sum()
                    if n == 0:
                        continue
                    a, c = q[i, both], t[j, both]
                    if kind == "pearson":
                        a0, c0 = a - a.mean(), c - c.mean()
                        den = np.sqrt((a0**2).sum() * (c0**2).sum())
                        v = (a0 * c0).sum() / den if den > 1e-12 * n else 0.0
                    elif kind == "common_cosine":
                        den = np.sqrt((a**2).sum() * (c**2).sum())
                        v = (a * c).sum() / den if den > 0 else 0.0
                    else:  # msd
                        v = 1.0 / (((a - c) ** 2).mean() + 1.0)
                    if shrink > 0:
                        v *= (n - 1) / (n - 1 + shrink)
                    sim[i, j] = v
    sim = np.where(touched & (support >= min_support) & np.isfinite(sim), sim, 0.0)
    return sim, touched


def topk_rows(sim: np.ndarray, k: int, exclude_diagonal: bool) -> list[dict[int, float]]:
    """Per row: the k best non-zero entries (ties: lower index) as {index: value}."""
    out = []
    for i in range(sim.shape[0]):
        row = sim[i].copy()
        cand = [j for j in range(row.size) if row[j] != 0 and not (exclude_diagonal and i == j)]
        cand.sort(key=lambda j: (-row[j], j))
        out.append({j: row[j] for j in cand[:k]})
    return out


def item_knn_scores(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Item-kNN scores: the user's row times the neighbour graph."""
    return np.asarray(x, np.float64) @ np.asarray(s, np.float64)


def knn_rating_estimate(
    sim_row: np.ndarray, ctx_row: np.ndarray, rated: np.ndarray, k: int
) -> tuple[float, int]:
    """Σ s r / Σ s over the k most similar rated neighbours with positive similarity."""
    cand = [j for j in np.flatnonzero(rated) if sim_row[j] > 0]
    cand.sort(key=lambda j: (-sim_row[j], j))
    cand = cand[:k]
    if not cand:
        return 0.0, 0
    s = sim_row[cand]
    return float((s * ctx_row[cand]).sum() / s.sum()), len(cand)
