"""Numba kernels behind :mod:`tastebud.metrics`.

Every kernel is a module-level pure function over contiguous arrays that were
validated at the Python boundary (``tastebud.metrics._checks``). Each one is
compiled twice from the same Python function: a serial, cached
dispatcher (``*_serial``) and a ``parallel=True`` uncached one
(``*_parallel``). Nothing is compiled at import time: there are no eager
signatures.

Work is split over users in ``n_chunks`` contiguous chunks (``prange`` over
chunks, not users), so that per-chunk scratch buffers are allocated once per
chunk instead of once per user. The serial callers pass ``n_chunks=1``.

Conventions shared by all kernels

- ``recommended`` is ``(n_users, width)`` int32/int64; only the first
  ``min(k, width)`` columns are read; ``-1`` is an empty slot.
- Sparse rows come as CSR ``(indptr, indices[, data])`` with sorted,
  duplicate-free indices, so membership is a binary search in the row.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = [
    "auc_full_parallel",
    "auc_full_serial",
    "auc_sampled_parallel",
    "auc_sampled_serial",
    "confusion_counts_parallel",
    "confusion_counts_serial",
    "pair_overlap_parallel",
    "pair_overlap_serial",
    "ranking_components_parallel",
    "ranking_components_serial",
    "serendipity_counts_parallel",
    "serendipity_counts_serial",
    "validate_rows_parallel",
    "validate_rows_serial",
]

# Column layout of the ``out`` array written by ``ranking_components``.
HITS, RETURNED, DCG, IDCG, AP_SUM, RR, N_RELEVANT = range(7)
N_RANKING_COLUMNS = 7

# Gain modes of ``ranking_components``.
GAIN_BINARY, GAIN_LINEAR, GAIN_EXPONENTIAL = 0, 1, 2

_SERIAL = {"cache": True, "nogil": True}
_PARALLEL = {"cache": False, "nogil": True, "parallel": True}


@numba.njit(cache=True, nogil=True, inline="always")
def _find(indices, lo, hi, x):  # pragma: no cover - compiled
    """Position of ``x`` in the sorted ``indices[lo:hi]``, or -1."""
    while lo < hi:
        mid = (lo + hi) >> 1
        v = indices[mid]
        if v < x:
            lo = mid + 1
        elif v > x:
            hi = mid
        else:
            return mid
    return -1


@numba.njit(cache=True, nogil=True, inline="always")
def _chunk_bounds(c, n_chunks, n):  # pragma: no cover - compiled
    return (c * n) // n_chunks, ((c + 1) * n) // n_chunks


@numba.njit(cache=True, nogil=True)
def _sort_small(a, n):  # pragma: no cover - compiled
    """Sort ``a[:n]`` in place: insertion sort for short rows (no allocation — Numba's
    ``ndarray.sort`` allocates a work stack on every call), ``ndarray.sort`` beyond."""
    if n > 24:
        a[:n].sort()
        return
    for i in range(1, n):
        v = a[i]
        j = i - 1
        while j >= 0 and a[j] > v:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = v


# ---------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------


def _validate_rows(recommended, k, n_items, n_chunks, flags):  # pragma: no cover - compiled
    """Flag per user: 0 valid, 1 value outside ``[-1, n_items)``, 2 duplicated item.

    Only the evaluated prefix ``recommended[:, :min(k, width)]`` is checked.
    Duplicates are found by sorting a copy of the prefix (O(k log k) per user,
    independent of ``n_items``).
    """
    n_users = recommended.shape[0]
    m = min(k, recommended.shape[1])
    for c in numba.prange(n_chunks):
        lo, hi = _chunk_bounds(c, n_chunks, n_users)
        scratch = np.empty(max(m, 1), dtype=np.int64)
        for u in range(lo, hi):
            flag = 0
            for j in range(m):
                v = recommended[u, j]
                if v < -1 or v >= n_items:
                    flag = 1
                    break
                scratch[j] = v
            if flag == 0 and m > 1:
                _sort_small(scratch, m)
                for j in range(1, m):
                    if scratch[j] >= 0 and scratch[j] == scratch[j - 1]:
                        flag = 2
                        break
            flags[u] = flag


validate_rows_serial = numba.njit(**_SERIAL)(_validate_rows)
validate_rows_parallel = numba.njit(**_PARALLEL)(_validate_rows)


# ---------------------------------------------------------------------------
# ranking: one fused pass for precision / recall / NDCG / AP / RR / hit
# ---------------------------------------------------------------------------


def _ranking_components(
    recommended,
    k,
    n_items,
    indptr,
    indices,
    data,
    gain_mode,
    discounts,
    max_nnz,
    use_marker,
    n_chunks,
    out,
    flags,
):  # pragma: no cover - compiled
    """Per-user sufficient statistics of the top-k ranking metrics, validation fused in.

    Writes ``out[u] = (hits, returned, dcg, idcg, ap_sum, rr, n_relevant)``:

    - ``hits = Σ_{i≤k} rel_i``; ``returned`` = non-empty slots among the first k;
    - ``dcg = Σ_{i≤k} g_i / log2(i + 1)`` with ``g_i`` the gain of the item at
      rank ``i`` (1 for binary, ``v`` linear, ``2^v − 1`` exponential);
    - ``idcg`` = the same sum over the ``min(k, n_relevant)`` largest gains;
    - ``ap_sum = Σ_{i≤k} P@i · rel_i``; ``rr = 1 / rank`` of the first hit or 0;

    and ``flags[u]`` = 0 valid, 1 item outside ``[-1, n_items)``, 2 repeated item
    (``out[u]`` is then unspecified: the caller raises).

    Membership: with ``use_marker`` each chunk keeps two ``n_items`` arrays —
    ``pos_mark[i]`` = CSR position of relevant item ``i`` (a position in
    ``[indptr[u], indptr[u+1])`` can only have been written for user ``u``, so the
    array never needs clearing) and ``list_mark[i]`` = last user whose list held
    ``i`` (duplicate test). Without it (catalogue much larger than the work):
    binary search in the sorted CSR row and a sort of the list prefix for duplicates.
    ``discounts[i] = 1 / log2(i + 2)`` must cover ``max(min(k, width), min(k, max_nnz))``.
    """
    n_users = recommended.shape[0]
    m = min(k, recommended.shape[1])
    for c in numba.prange(n_chunks):
        lo, hi = _chunk_bounds(c, n_chunks, n_users)
        size = n_items if use_marker else 1
        pos_mark = np.full(size, -1, dtype=np.int64)
        list_mark = np.full(size, -1, dtype=np.int64)
        scratch = np.empty(max_nnz if gain_mode != 0 else 1, dtype=np.float64)
        listed = np.empty(max(m, 1), dtype=np.int64)
        for u in range(lo, hi):
            s = indptr[u]
            e = indptr[u + 1]
            n_rel = e - s
            if use_marker:
                for p in range(s, e):
                    pos_mark[indices[p]] = p
            flag = 0
            hits = 0
            returned = 0
            dcg = 0.0
            ap_sum = 0.0
            rr = 0.0
            for j in range(m):
                item = recommended[u, j]
                if item < 0:
                    if item < -1:
                        flag = 1
                        break
                    continue
                if item >= n_items:
                    flag = 1
                    break
                if use_marker:
                    if list_mark[item] == u:
                        flag = 2
                    list_mark[item] = u
                    p = pos_mark[item]
                    if p < s or p >= e:
                        p = -1
                else:
                    listed[returned] = item
                    p = _find(indices, s, e, item)
                returned += 1
                if p >= 0:
                    hits += 1
                    if gain_mode == 0:
                        g = 1.0
                    elif gain_mode == 1:
                        g = data[p]
                    else:
                        g = 2.0 ** data[p] - 1.0
                    dcg += g * discounts[j]
                    ap_sum += hits / (j + 1.0)
                    if hits == 1:
                        rr = 1.0 / (j + 1.0)
            if flag == 0 and not use_marker and returned > 1:
                _sort_small(listed, returned)
                for j in range(1, returned):
                    if listed[j] == listed[j - 1]:
                        flag = 2
                        break
            flags[u] = flag
            t = min(k, n_rel)
            idcg = 0.0
            if gain_mode == 0:
                for i in range(t):
                    idcg += discounts[i]
            elif t > 0:
                for i in range(n_rel):
                    scratch[i] = data[s + i]
                _sort_small(scratch, n_rel)
                for i in range(t):
                    v = scratch[n_rel - 1 - i]
                    g = v if gain_mode == 1 else 2.0**v - 1.0
                    idcg += g * discounts[i]
            out[u, 0] = hits
            out[u, 1] = returned
            out[u, 2] = dcg
            out[u, 3] = idcg
            out[u, 4] = ap_sum
            out[u, 5] = rr
            out[u, 6] = n_rel


ranking_components_serial = numba.njit(**_SERIAL)(_ranking_components)
ranking_components_parallel = numba.njit(**_PARALLEL)(_ranking_components)


# ---------------------------------------------------------------------------
# AUC
# ---------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True, inline="always")
def _pairs_above(pos_sorted, n_pos, x):  # pragma: no cover - compiled
    """``#{p : p > x} + 0.5 · #{p : p == x}`` for the ascending ``pos_sorted[:n_pos]``."""
    # left = first index with value >= x; right = first index with value > x
    lo, hi = 0, n_pos
    while lo < hi:
        mid = (lo + hi) >> 1
        if pos_sorted[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    left = lo
    hi = n_pos
    while lo < hi:
        mid = (lo + hi) >> 1
        if pos_sorted[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return (n_pos - lo) + 0.5 * (lo - left)


def _auc_full(
    scores, rel_indptr, rel_indices, ex_indptr, ex_indices, max_nnz, n_chunks, out
):  # pragma: no cover - compiled
    """Exact per-user AUC: positives = relevant items, negatives = all other items
    not in the exclude row; a tie counts one half. NaN when either side is empty.
    Cost O(n_items · log |P_u|) per user."""
    n_users, n_items = scores.shape
    for c in numba.prange(n_chunks):
        lo, hi = _chunk_bounds(c, n_chunks, n_users)
        pos = np.empty(max(max_nnz, 1), dtype=np.float64)
        for u in range(lo, hi):
            rs = rel_indptr[u]
            re = rel_indptr[u + 1]
            n_pos = re - rs
            for i in range(n_pos):
                pos[i] = scores[u, rel_indices[rs + i]]
            _sort_small(pos, n_pos)
            xs = ex_indptr[u]
            xe = ex_indptr[u + 1]
            pr = rs
            px = xs
            total = 0.0
            n_neg = 0
            for j in range(n_items):
                while pr < re and rel_indices[pr] < j:
                    pr += 1
                while px < xe and ex_indices[px] < j:
                    px += 1
                if (pr < re and rel_indices[pr] == j) or (px < xe and ex_indices[px] == j):
                    continue
                n_neg += 1
                if n_pos > 0:
                    total += _pairs_above(pos, n_pos, scores[u, j])
            if n_pos == 0 or n_neg == 0:
                out[u] = np.nan
            else:
                out[u] = total / (n_pos * float(n_neg))


auc_full_serial = numba.njit(**_SERIAL)(_auc_full)
auc_full_parallel = numba.njit(**_PARALLEL)(_auc_full)


@numba.njit(cache=True, nogil=True, inline="always")
def _splitmix64(x):  # pragma: no cover - compiled
    x = x + np.uint64(0x9E3779B97F4A7C15)
    z = x
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _auc_sampled(
    scores,
    rel_indptr,
    rel_indices,
    ex_indptr,
    ex_indices,
    n_negatives,
    seed,
    max_nnz,
    n_chunks,
    out,
):  # pragma: no cover - compiled
    """Per-user AUC against ``n_negatives`` negatives drawn uniformly with replacement.

    The random stream of user ``u`` is ``splitmix64(seed, u, draw)``, so results do
    not depend on the number of threads. A draw ``r`` in ``[0, n_neg_u)`` is mapped
    to the ``r``-th item (ascending) outside ``relevant_u ∪ exclude_u`` by a merge
    walk over the sorted draws and the two sorted rows.
    """
    n_users, n_items = scores.shape
    for c in numba.prange(n_chunks):
        lo, hi = _chunk_bounds(c, n_chunks, n_users)
        pos = np.empty(max(max_nnz, 1), dtype=np.float64)
        draws = np.empty(max(n_negatives, 1), dtype=np.int64)
        for u in range(lo, hi):
            rs = rel_indptr[u]
            re = rel_indptr[u + 1]
            xs = ex_indptr[u]
            xe = ex_indptr[u + 1]
            n_pos = re - rs
            # |relevant ∪ exclude| by a merge walk
            a = rs
            b = xs
            n_forbidden = 0
            while a < re or b < xe:
                if b >= xe or (a < re and rel_indices[a] < ex_indices[b]):
                    a += 1
                elif a >= re or ex_indices[b] < rel_indices[a]:
                    b += 1
                else:
                    a += 1
                    b += 1
                n_forbidden += 1
            n_avail = n_items - n_forbidden
            if n_pos == 0 or n_avail <= 0:
                out[u] = np.nan
                continue
            for i in range(n_pos):
                pos[i] = scores[u, rel_indices[rs + i]]
            _sort_small(pos, n_pos)
            state = _splitmix64(np.uint64(seed) ^ _splitmix64(np.uint64(u)))
            for d in range(n_negatives):
                state = _splitmix64(state)
                # 53 random bits -> uniform float in [0, 1) -> integer in [0, n_avail)
                r = np.int64((state >> np.uint64(11)) * (1.0 / 9007199254740992.0) * n_avail)
                draws[d] = min(r, n_avail - 1)
            _sort_small(draws, n_negatives)
            dr = draws
            a = rs
            b = xs
            consumed = 0
            total = 0.0
            for d in range(n_negatives):
                x = dr[d] + consumed
                while True:
                    nxt = n_items
                    if a < re:
                        nxt = rel_indices[a]
                    if b < xe and ex_indices[b] < nxt:
                        nxt = ex_indices[b]
                    if nxt > x:
                        break
                    if a < re and rel_indices[a] == nxt:
                        a += 1
                    if b < xe and ex_indices[b] == nxt:
                        b += 1
                    consumed += 1
                    x = dr[d] + consumed
                total += _pairs_above(pos, n_pos, scores[u, x])
            out[u] = total / (n_pos * float(n_negatives))


auc_sampled_serial = numba.njit(**_SERIAL)(_auc_sampled)
auc_sampled_parallel = numba.njit(**_PARALLEL)(_auc_sampled)


# ---------------------------------------------------------------------------
# confusion counts, serendipity, pairwise list overlap
# ---------------------------------------------------------------------------


def _confusion_counts(
    recommended, k, rel_indptr, rel_indices, ex_indptr, ex_indices, n_items, n_chunks, out
):  # pragma: no cover - compiled
    """``out[u] = (TP, FP, FN, TN)`` over the universe ``U_u = items ∖ exclude_u``.

    With ``L'`` the top-k list and ``T'`` the relevant set, both minus excluded
    items: ``TP = |L' ∩ T'|``, ``FP = |L'| − TP``, ``FN = |T'| − TP``,
    ``TN = |U_u| − TP − FP − FN``.
    """
    n_users = recommended.shape[0]
    m = min(k, recommended.shape[1])
    for c in numba.prange(n_chunks):
        lo, hi = _chunk_bounds(c, n_chunks, n_users)
        for u in range(lo, hi):
            rs = rel_indptr[u]
            re = rel_indptr[u + 1]
            xs = ex_indptr[u]
            xe = ex_indptr[u + 1]
            tp = 0
            n_list = 0
            for j in range(m):
                item = recommended[u, j]
                if item < 0 or _find(ex_indices, xs, xe, item) >= 0:
                    continue
                n_list += 1
                if _find(rel_indices, rs, re, item) >= 0:
                    tp += 1
            # |T ∩ E| by a merge walk of the two sorted rows
            a = rs
            b = xs
            both = 0
            while a < re and b < xe:
                if rel_indices[a] < ex_indices[b]:
                    a += 1
                elif rel_indices[a] > ex_indices[b]:
                    b += 1
                else:
                    both += 1
                    a += 1
                    b += 1
            n_true = (re - rs) - both
            universe = n_items - (xe - xs)
            out[u, 0] = tp
            out[u, 1] = n_list - tp
            out[u, 2] = n_true - tp
            out[u, 3] = universe - n_list - n_true + tp


confusion_counts_serial = numba.njit(**_SERIAL)(_confusion_counts)
confusion_counts_parallel = numba.njit(**_PARALLEL)(_confusion_counts)


def _serendipity_counts(
    recommended, k, rel_indptr, rel_indices, baseline_sorted, n_chunks, out
):  # pragma: no cover - compiled
    """``out[u]`` = number of items among the top k of user ``u`` that are relevant
    and absent from ``baseline_sorted[u]`` (ascending; ``-1`` padding sorts first)."""
    n_users = recommended.shape[0]
    m = min(k, recommended.shape[1])
    bw = baseline_sorted.shape[1]
    for c in numba.prange(n_chunks):
        lo, hi = _chunk_bounds(c, n_chunks, n_users)
        for u in range(lo, hi):
            rs = rel_indptr[u]
            re = rel_indptr[u + 1]
            brow = baseline_sorted[u]
            count = 0
            for j in range(m):
                item = recommended[u, j]
                if item < 0:
                    continue
                if _find(rel_indices, rs, re, item) >= 0 and _find(brow, 0, bw, item) < 0:
                    count += 1
            out[u] = count


serendipity_counts_serial = numba.njit(**_SERIAL)(_serendipity_counts)
serendipity_counts_parallel = numba.njit(**_PARALLEL)(_serendipity_counts)


def _pair_overlap(sorted_lists, first, second, n_chunks, out):  # pragma: no cover - compiled
    """``out[p] = |L_first[p] ∩ L_second[p]|`` for rows sorted ascending (``-1`` ignored)."""
    n_pairs = first.shape[0]
    w = sorted_lists.shape[1]
    for c in numba.prange(n_chunks):
        lo, hi = _chunk_bounds(c, n_chunks, n_pairs)
        for p in range(lo, hi):
            ra = sorted_lists[first[p]]
            rb = sorted_lists[second[p]]
            i = 0
            j = 0
            common = 0
            while i < w and j < w:
                va = ra[i]
                vb = rb[j]
                if va < 0:
                    i += 1
                elif vb < 0:
                    j += 1
                elif va < vb:
                    i += 1
                elif va > vb:
                    j += 1
                else:
                    common += 1
                    i += 1
                    j += 1
            out[p] = common


pair_overlap_serial = numba.njit(**_SERIAL)(_pair_overlap)
pair_overlap_parallel = numba.njit(**_PARALLEL)(_pair_overlap)
