"""Plain-Python reference implementations of tastebud.metrics.

Written straight from the textbook definitions and the docstrings, one user
at a time, with Python lists, sets and dicts — slow and obvious on purpose.
Inputs: ``recommended`` as a list of lists (``-1`` = empty slot), ``relevant``
as a list of ``{item: gain}`` dicts (gains > 0). Per-user results use ``nan``
for "undefined".
"""

from __future__ import annotations

import math
import random

NAN = float("nan")


def _top(row: list[int], k: int) -> list[int]:
    """The first k slots, padded with -1 up to k."""
    row = list(row[:k])
    return row + [-1] * (k - len(row))


def precision(row, rel, k, denominator="k"):
    if not rel:
        return NAN
    top = _top(row, k)
    hits = sum(1 for i in top if i in rel)
    if denominator == "k":
        return hits / k
    returned = sum(1 for i in top if i >= 0)
    return hits / returned if returned else 0.0


def recall(row, rel, k, denominator="relevant"):
    if not rel:
        return NAN
    hits = sum(1 for i in _top(row, k) if i in rel)
    return hits / (len(rel) if denominator == "relevant" else min(k, len(rel)))


def f1(row, rel, k):
    if not rel:
        return NAN
    p = precision(row, rel, k)
    r = recall(row, rel, k)
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def _gain(v, gains, gain_function):
    if gains == "binary":
        return 1.0
    return 2.0**v - 1.0 if gain_function == "exponential" else float(v)


def ndcg(row, rel, k, gains="binary", gain_function="exponential"):
    if not rel:
        return NAN
    dcg = 0.0
    for rank, item in enumerate(_top(row, k), start=1):
        if item in rel:
            dcg += _gain(rel[item], gains, gain_function) / math.log2(rank + 1)
    ideal = sorted((_gain(v, gains, gain_function) for v in rel.values()), reverse=True)
    idcg = sum(g / math.log2(rank + 1) for rank, g in enumerate(ideal[:k], start=1))
    return dcg / idcg


def average_precision(row, rel, k, denominator="min_k"):
    if not rel:
        return NAN
    top = _top(row, k)
    total = 0.0
    for i in range(1, k + 1):
        if top[i - 1] in rel:
            p_at_i = sum(1 for j in top[:i] if j in rel) / i
            total += p_at_i
    return total / (min(k, len(rel)) if denominator == "min_k" else len(rel))


def reciprocal_rank(row, rel, k):
    if not rel:
        return NAN
    for rank, item in enumerate(_top(row, k), start=1):
        if item in rel:
            return 1.0 / rank
    return 0.0


def hit_rate(row, rel, k):
    if not rel:
        return NAN
    return 1.0 if any(i in rel for i in _top(row, k)) else 0.0


def auc(score_row, rel, excluded=()):
    """Pairs (positive, negative) where the positive scores higher; ties count 1/2."""
    positives = [score_row[i] for i in rel]
    negatives = [
        score_row[j] for j in range(len(score_row)) if j not in rel and j not in set(excluded)
    ]
    if not positives or not negatives:
        return NAN
    total = 0.0
    for p in positives:
        for n in negatives:
            total += 1.0 if p > n else 0.5 if p == n else 0.0
    return total / (len(positives) * len(negatives))


def confusion(row, rel, k, n_items, excluded=()):
    excluded = set(excluded)
    universe = [i for i in range(n_items) if i not in excluded]
    listed = {i for i in _top(row, k) if i >= 0 and i not in excluded}
    truth = {i for i in rel if i not in excluded}
    tp = fp = fn = tn = 0
    for i in universe:
        if i in listed and i in truth:
            tp += 1
        elif i in listed:
            fp += 1
        elif i in truth:
            fn += 1
        else:
            tn += 1
    return tp, fp, fn, tn


def catalog_coverage(rows, n_items, k=None):
    seen = set()
    for row in rows:
        for i in row if k is None else _top(row, k):
            if i >= 0:
                seen.add(i)
    return len(seen) / n_items


def novelty(row, popularity, k=None):
    items = [i for i in (row if k is None else _top(row, k)) if i >= 0]
    if not items:
        return NAN
    return sum(-math.log2(popularity[i]) for i in items) / len(items)


def _cosine(a, b):
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(x * x for x in b))
    if na == 0 or nb == 0:
        return 0.0
    return sum(x * y for x, y in zip(a, b, strict=True)) / (na * nb)


def intra_list_diversity(row, features, k=None):
    items = [i for i in (row if k is None else _top(row, k)) if i >= 0]
    if len(items) < 2:
        return NAN
    sims = [
        _cosine(features[items[a]], features[items[b]])
        for a in range(len(items))
        for b in range(a + 1, len(items))
    ]
    return 1.0 - sum(sims) / len(sims)


def personalization(rows, k):
    """Loop over every pair of users."""
    sets = [{i for i in row[:k] if i >= 0} for row in rows]
    overlaps = [
        len(sets[a] & sets[b]) / k for a in range(len(sets)) for b in range(a + 1, len(sets))
    ]
    return 1.0 - sum(overlaps) / len(overlaps)


def personalization_sampled(rows, k, n_pairs, seed):
    rnd = random.Random(seed)
    sets = [{i for i in row[:k] if i >= 0} for row in rows]
    total = 0.0
    for _ in range(n_pairs):
        a, b = rnd.sample(range(len(sets)), 2)
        total += len(sets[a] & sets[b]) / k
    return 1.0 - total / n_pairs


def gini(rows, n_items, k=None):
    counts = [0] * n_items
    for row in rows:
        for i in row if k is None else _top(row, k):
            if i >= 0:
                counts[i] += 1
    counts.sort()
    total = sum(counts)
    if total == 0:
        return NAN
    n = n_items
    return sum((2 * i - n - 1) * c for i, c in enumerate(counts, start=1)) / (n * total)


def serendipity(row, rel, baseline, k):
    if not rel:
        return NAN
    base = set(baseline)
    return sum(1 for i in _top(row, k) if i in rel and i not in base) / k


def mse(y_true, y_pred):
    return sum((a - b) ** 2 for a, b in zip(y_true, y_pred, strict=True)) / len(y_true)


def rmse(y_true, y_pred):
    return math.sqrt(mse(y_true, y_pred))


def mae(y_true, y_pred):
    return sum(abs(a - b) for a, b in zip(y_true, y_pred, strict=True)) / len(y_true)
