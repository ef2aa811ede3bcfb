"""Plain Python/numpy reference of the Item2Vec (SGNS) kernels.

It replays the kernel's SplitMix64 draws with Python integers, so a training run on a tiny
example must give the same vectors as ``tastebud.kernels.item2vec`` (up to float32 rounding
order: the kernel's dot products may be reassociated).
"""

from __future__ import annotations

import numpy as np

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB


def sigmoid(s: float) -> float:
    """The logistic function, 1 / (1 + exp(-s)); exp overflows to inf (and the result to 0)
    for s below about -709, which is the intended value, not an error."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-s))


class SplitMix64:
    def __init__(self, state: int) -> None:
        self.state = int(state) & MASK

    def next(self) -> int:
        self.state = (self.state + GOLDEN) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * MIX1) & MASK
        z = ((z ^ (z >> 27)) * MIX2) & MASK
        return z ^ (z >> 31)

    def uniform(self) -> float:
        return float(self.next() >> 11) * 2.0**-53


def alias_draw(rng: SplitMix64, threshold: np.ndarray, alias: np.ndarray) -> int:
    r = rng.next()
    i = ((r >> 32) * threshold.shape[0]) >> 32
    return i if (r & 0xFFFFFFFF) < int(threshold[i]) else int(alias[i])


def alias_probabilities(threshold: np.ndarray, alias: np.ndarray) -> np.ndarray:
    """Exact probability of each outcome of ``alias_draw``."""
    n = threshold.shape[0]
    own = threshold.astype(np.float64) / 2.0**32
    p = own / n
    np.add.at(p, alias, (1.0 - own) / n)
    return p


def keep_probabilities(counts: np.ndarray, subsample: float) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    out = np.ones_like(counts)
    if subsample <= 0:
        return out
    t = subsample * counts.sum()
    for i, c in enumerate(counts):
        if c > 0:
            out[i] = min(1.0, (np.sqrt(c / t) + 1.0) * t / c)
    return out


def sgns_centre(
    in_vecs: np.ndarray,
    out_vecs: np.ndarray,
    contexts: np.ndarray,
    targets: np.ndarray,
    lr: float,
) -> None:
    """One centre: all contexts against targets[0] (label 1) and targets[1:] (label 0)."""
    x = in_vecs[contexts].copy()
    y = out_vecs[targets].copy()
    g = np.zeros((len(contexts), len(targets)), dtype=np.float32)
    for r in range(len(contexts)):
        for q in range(len(targets)):
            if q > 0 and targets[q] == targets[0]:
                continue
            s = float(np.dot(x[r].astype(np.float64), y[q].astype(np.float64)))
            label = 1.0 if q == 0 else 0.0
            g[r, q] = np.float32((label - sigmoid(s)) * lr)
    np.add.at(in_vecs, contexts, (g.astype(np.float64) @ y).astype(np.float32))
    np.add.at(out_vecs, targets, (g.T.astype(np.float64) @ x).astype(np.float32))


def sgns_pair(
    in_vecs: np.ndarray,
    out_vecs: np.ndarray,
    context: int,
    targets: np.ndarray,
    lr: float,
    max_dot: float = 0.0,
) -> None:
    """word2vec's per-pair step (gensim's ``w2v_fast_sentence_sg_neg``): ``in[context]``
    against targets[0] (label 1) and targets[1:] (label 0), ``out`` updated after each target,
    ``in[context]`` once at the end; targets with ``|dot| >= max_dot > 0`` are skipped."""
    x = in_vecs[context].astype(np.float64)
    work = np.zeros_like(x)
    for q, t in enumerate(targets):
        if q > 0 and t == targets[0]:
            continue
        s = float(np.dot(x, out_vecs[t].astype(np.float64)))
        if max_dot > 0 and abs(s) >= max_dot:
            continue
        label = 1.0 if q == 0 else 0.0
        g = float(np.float32((label - sigmoid(s)) * lr))
        work += g * out_vecs[t].astype(np.float64)
        out_vecs[t] = (out_vecs[t].astype(np.float64) + g * x).astype(np.float32)
    in_vecs[context] = (in_vecs[context].astype(np.float64) + work).astype(np.float32)


def train(
    items: np.ndarray,
    indptr: np.ndarray,
    in_vecs: np.ndarray,
    out_vecs: np.ndarray,
    threshold: np.ndarray,
    alias: np.ndarray,
    keep_prob: np.ndarray,
    window: int,
    negatives: int,
    basket: bool,
    lr0: float,
    lr_min: float,
    epochs: int,
    state: int,
    pair: bool = False,
    max_dot: float = 0.0,
) -> None:
    """Serial SGNS training, one chunk: the draw order documented in the kernel module.

    ``pair``: word2vec's per-pair updates with fresh negatives per (centre, context) pair
    (drawn just before each pair); otherwise one shared set per centre (window mini-batch).
    """
    rng = SplitMix64(state)
    total = float(epochs) * float(indptr[-1] - indptr[0])
    done = 0.0
    for _ in range(epochs):
        for s in range(len(indptr) - 1):
            a, b = int(indptr[s]), int(indptr[s + 1])
            lr = lr0 - (lr0 - lr_min) * (done / total) if total > 0 else lr0
            done += b - a
            kept = []
            for it in items[a:b]:
                kp = keep_prob[it]
                if kp < 1.0 and rng.uniform() >= kp:
                    continue
                kept.append(int(it))
            n = len(kept)
            for i in range(n):
                if basket:
                    lo, hi = 0, n
                else:
                    w = window - rng.next() % window
                    lo, hi = max(0, i - w), min(n, i + w + 1)
                ctx = [kept[j] for j in range(lo, hi) if j != i]
                if pair:
                    for c in ctx:
                        tg = [kept[i]] + [
                            alias_draw(rng, threshold, alias) for _ in range(negatives)
                        ]
                        sgns_pair(in_vecs, out_vecs, c, np.array(tg), lr, max_dot)
                    continue
                if not ctx:
                    continue
                tg = [kept[i]] + [alias_draw(rng, threshold, alias) for _ in range(negatives)]
                sgns_centre(in_vecs, out_vecs, np.array(ctx), np.array(tg), lr)
