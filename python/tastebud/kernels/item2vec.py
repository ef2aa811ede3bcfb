"""Numba kernels behind :class:`tastebud.models.Item2Vec`: skip-gram with negative sampling.

SGNS (Mikolov et al., "Distributed Representations of Words and Phrases and their
Compositionality", NIPS 2013) applied to item sequences, as in Item2Vec (Barkan & Koenigstein,
"Item2Vec: Neural Item Embedding for Collaborative Filtering", 2016).

Design
------
* The training data is a ragged array of item indices (``items``, ``indptr``) as built by
  :class:`tastebud.data.Sequences`.
* Randomness comes from SplitMix64 (Steele et al., 2014), a 64-bit counter hashed through
  two multiply-xorshift rounds. It is tiny, has no hidden state besides one ``uint64`` per
  chunk, and is trivial to replay in plain Python: the reference implementation in
  ``tests/reference/item2vec_reference.py`` draws the very same numbers (subsampling,
  window shrinking, negatives) and must reproduce the trained vectors.
* Two update rules. ``pair`` (the default of the model) is word2vec's: every (centre,
  context) pair gets its own ``negatives`` noise draws and is applied at once, in the order
  of word2vec.c / gensim's ``w2v_fast_sentence_sg_neg`` (:func:`sgns_pairs`). ``window`` is
  pWord2Vec's shared-negative mini-batch (:func:`sgns_centre`): one set of negatives per
  centre for all its contexts, gathered before any update; faster, same expected gradient,
  but measurably lower plain-cosine hit rates on MovieLens (``benchmarks/compare_peers.py
  item2vec --update window``).
* Draws, in order, per sequence and epoch: one uniform per event whose keep probability is
  below 1 (frequency subsampling, ``u = (next() >> 11) * 2**-53``); then per kept centre
  position one window-shrink draw (``sequence`` mode only: ``w = window - next() % window``)
  followed, in ``window`` mode, by ``negatives`` noise draws shared by all contexts of that
  centre, or, in ``pair`` mode, by ``negatives`` noise draws before each context (in
  position order).
* ``max_dot > 0``: a (context, target) whose dot product is at least ``max_dot`` in absolute
  value is skipped, as gensim does with ``MAX_EXP = 6``; 0 always updates.
* Negatives come from a Walker alias table of ``count ** ns_exponent`` (:func:`alias_table`):
  O(1) per draw, one 64-bit number each.
* Hogwild (Recht et al., NIPS 2011): the sequences are cut into ``n_chunks`` contiguous
  chunks of about equal event counts, one per thread; threads update the shared vectors
  without locks. Each chunk has its own RNG stream and its own linear learning-rate decay
  from ``lr0`` to ``lr_min`` over its ``epochs * events``. With one chunk (the serial
  kernel) the result is deterministic. :func:`sgns_train_local` runs the same chunks on
  private copies of the vectors, summing the copies' changes into the shared vectors a few
  times per epoch: deterministic, and free of the cache-line contention that makes
  Hogwild slow on small catalogues.
* ``fastmath`` (the safe flag set: no ``nnan``/``ninf``) only on :func:`sgns_centre` and
  :func:`sgns_pairs`, the arithmetic leaves (small dense products and a sigmoid; no NaN
  checks or ``-inf`` sentinels there); the sampling loops are compiled without it.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = [
    "GOLDEN",
    "MIX1",
    "MIX2",
    "alias_table",
    "sgns_centre",
    "sgns_pairs",
    "sgns_train_local",
    "sgns_train_parallel",
    "sgns_train_serial",
]

_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

#: SplitMix64 constants (Python ints for the reference, uint64 inside the kernels).
GOLDEN = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
_GOLDEN = np.uint64(GOLDEN)
_MIX1 = np.uint64(MIX1)
_MIX2 = np.uint64(MIX2)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_S32 = np.uint64(32)
_M32 = np.uint64(0xFFFFFFFF)
_INV53 = 1.0 / 9007199254740992.0  # 2 ** -53


@numba.njit(cache=True, nogil=True, inline="always")
def _next(state: np.ndarray) -> np.uint64:
    """SplitMix64: advance ``state[0]`` and return the next 64-bit value."""
    z = state[0] + _GOLDEN
    state[0] = z
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@numba.njit(cache=True, nogil=True, inline="always")
def _draw_alias(state: np.ndarray, threshold: np.ndarray, alias: np.ndarray) -> int:
    """Walker's alias method: one 64-bit draw picks a bucket (high 32 bits, multiply-shift)
    and flips its biased coin (low 32 bits)."""
    r = _next(state)
    i = np.int64(((r >> _S32) * np.uint64(threshold.shape[0])) >> _S32)
    if (r & _M32) < threshold[i]:
        return i
    return np.int64(alias[i])


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def sgns_centre(
    in_vecs: np.ndarray,
    out_vecs: np.ndarray,
    contexts: np.ndarray,
    n_contexts: int,
    targets: np.ndarray,
    n_targets: int,
    lr: float,
    x: np.ndarray,
    y: np.ndarray,
    g: np.ndarray,
) -> None:
    """One SGNS mini-batch: every context of one centre against the centre and its negatives.

    ``targets[0]`` is the centre (label 1), ``targets[1:n_targets]`` the noise items (label
    0; a noise item equal to the centre is skipped, as in word2vec). With
    ``X = in[contexts]`` and ``Y = out[targets]`` (gathered before any update)::

        G = lr * (labels - sigmoid(X @ Y.T))      # (n_contexts, n_targets)
        in[contexts] += G @ Y;  out[targets] += G.T @ X      (scatter-add)

    This is the shared-negative mini-batch of pWord2Vec (Ji et al., "Parallelizing Word2Vec
    in Shared and Distributed Memory", IEEE TPDS 2019): the same expected gradient as
    word2vec's per-pair updates, but the centre's output rows are read once per window instead
    of once per pair and one set of negatives serves the whole window, which is what makes
    this kernel faster than gensim's per-pair BLAS-1 loop. ``x``, ``y``, ``g`` are float32
    scratch of shapes ``(>= n_contexts, f)``, ``(>= n_targets, f)``, ``(>= n_contexts, >=
    n_targets)``.
    """
    f = in_vecs.shape[1]
    centre = targets[0]
    for q in range(n_targets):
        t = targets[q]
        for d in range(f):
            y[q, d] = out_vecs[t, d]
    for r in range(n_contexts):
        c = contexts[r]
        for d in range(f):
            x[r, d] = in_vecs[c, d]
    for r in range(n_contexts):
        for q in range(n_targets):
            if q > 0 and targets[q] == centre:
                g[r, q] = 0.0
                continue
            s = np.float32(0.0)
            for d in range(f):
                s += x[r, d] * y[q, d]
            label = 1.0 if q == 0 else 0.0
            g[r, q] = np.float32((label - 1.0 / (1.0 + math.exp(-s))) * lr)
    for r in range(n_contexts):
        c = contexts[r]
        for q in range(n_targets):
            gq = g[r, q]
            for d in range(f):
                in_vecs[c, d] += gq * y[q, d]
    for q in range(n_targets):
        t = targets[q]
        for r in range(n_contexts):
            gq = g[r, q]
            for d in range(f):
                out_vecs[t, d] += gq * x[r, d]


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def sgns_pairs(
    in_vecs: np.ndarray,
    out_vecs: np.ndarray,
    contexts: np.ndarray,
    n_contexts: int,
    centre: int,
    noise: np.ndarray,
    negatives: int,
    lr: float,
    max_dot: float,
    work: np.ndarray,
) -> None:
    """word2vec's per-pair SGNS steps for one centre: each context in turn against the centre
    and that pair's own negatives.

    Context ``r`` (``contexts[r]``, ``r < n_contexts``) is trained against the targets
    ``centre`` (label 1) and ``noise[r, :negatives]`` (label 0; a noise item equal to the
    centre is skipped). In the order of word2vec.c and gensim's ``w2v_fast_sentence_sg_neg``,
    for each target ``t`` in turn::

        s = in[c] . out[t];  g = lr * (label - sigmoid(s))
        acc += g * out[t];  out[t] += g * in[c]     (out[t] updated at once)

    then ``in[c] += acc`` before the next context. With ``max_dot > 0`` a target whose ``|s|
    >= max_dot`` is skipped (gensim's ``MAX_EXP = 6`` rule: saturated pairs give no update);
    ``max_dot = 0`` always updates (word2vec.c clamps the sigmoid instead). One call per
    centre (not per pair) keeps the loop in one fastmath function. ``work`` is float32
    scratch of shape ``(2, f)`` (a copy of ``in[c]`` and the accumulated gradient).
    """
    f = in_vecs.shape[1]
    x = work[0]
    acc = work[1]
    for r in range(n_contexts):
        c = contexts[r]
        for d in range(f):
            x[d] = in_vecs[c, d]
            acc[d] = 0.0
        for q in range(negatives + 1):
            if q == 0:
                t = centre
                label = 1.0
            else:
                t = noise[r, q - 1]
                label = 0.0
                if t == centre:
                    continue
            s = np.float32(0.0)
            for d in range(f):
                s += x[d] * out_vecs[t, d]
            if max_dot > 0.0 and (s <= -max_dot or s >= max_dot):
                continue
            gq = np.float32((label - 1.0 / (1.0 + math.exp(-s))) * lr)
            for d in range(f):
                yd = out_vecs[t, d]
                acc[d] += gq * yd
                out_vecs[t, d] = yd + gq * x[d]
        for d in range(f):
            in_vecs[c, d] += acc[d]


@numba.njit(cache=True, nogil=True)
def _train_span(
    items: np.ndarray,
    indptr: np.ndarray,
    s0: int,
    s1: int,
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
    done: float,
    total: float,
    state: np.ndarray,
    max_len: int,
    pair: bool,
    max_dot: float,
) -> float:
    """One pass over sequences ``s0:s1``; the learning rate decays linearly with ``done /
    total`` (events seen so far over the events of all passes). Returns the new ``done``."""
    f = in_vecs.shape[1]
    cap = max(max_len, 2 * window, 1)
    buf = np.empty(cap, dtype=np.int64)
    contexts = np.empty(cap, dtype=np.int64)
    targets = np.empty(negatives + 1, dtype=np.int64)
    x = np.empty((cap, f), dtype=np.float32)
    y = np.empty((negatives + 1, f), dtype=np.float32)
    g = np.empty((cap, negatives + 1), dtype=np.float32)
    work = np.empty((2, f), dtype=np.float32)
    noise = np.empty((cap, max(negatives, 1)), dtype=np.int64)
    for s in range(s0, s1):
        a = indptr[s]
        b = indptr[s + 1]
        lr = lr0 - (lr0 - lr_min) * (done / total) if total > 0 else lr0
        done += b - a
        n = 0
        for p in range(a, b):
            it = items[p]
            kp = keep_prob[it]
            if kp < 1.0:
                u = float(_next(state) >> _S11) * _INV53
                if u >= kp:
                    continue
            buf[n] = it
            n += 1
        for i in range(n):
            if basket:
                lo = 0
                hi = n
            else:
                w = window - np.int64(_next(state) % np.uint64(window))
                lo = max(0, i - w)
                hi = min(n, i + w + 1)
            nc = 0
            for j in range(lo, hi):
                if j != i:
                    contexts[nc] = buf[j]
                    nc += 1
            if nc == 0:
                continue
            if pair:  # each pair's own negatives, drawn in context order
                for r in range(nc):
                    for q in range(negatives):
                        noise[r, q] = _draw_alias(state, threshold, alias)
                sgns_pairs(
                    in_vecs, out_vecs, contexts, nc, buf[i], noise, negatives, lr, max_dot, work
                )
                continue
            targets[0] = buf[i]
            for q in range(negatives):
                targets[q + 1] = _draw_alias(state, threshold, alias)
            sgns_centre(in_vecs, out_vecs, contexts, nc, targets, negatives + 1, lr, x, y, g)
    return done


@numba.njit(cache=True, nogil=True)
def _train_chunk(
    items: np.ndarray,
    indptr: np.ndarray,
    s0: int,
    s1: int,
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
    state: np.ndarray,
    max_len: int,
    pair: bool,
    max_dot: float,
) -> None:
    total = float(epochs) * float(indptr[s1] - indptr[s0])
    done = 0.0
    for _ in range(epochs):
        done = _train_span(
            items,
            indptr,
            s0,
            s1,
            in_vecs,
            out_vecs,
            threshold,
            alias,
            keep_prob,
            window,
            negatives,
            basket,
            lr0,
            lr_min,
            done,
            total,
            state,
            max_len,
            pair,
            max_dot,
        )


def _train(
    items: np.ndarray,
    indptr: np.ndarray,
    chunk_bounds: np.ndarray,
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
    states: np.ndarray,
    max_len: int,
    pair: bool,
    max_dot: float,
) -> None:
    """Train ``in_vecs`` / ``out_vecs`` in place.

    Chunk ``c`` (one per thread) covers sequences ``chunk_bounds[c]:chunk_bounds[c + 1]`` and
    draws from the SplitMix64 state ``states[c]`` (advanced in place). See the module
    docstring for the order of the draws; the noise distribution is the alias table
    (``threshold``, ``alias``) built by :func:`alias_table`.
    """
    for c in numba.prange(chunk_bounds.shape[0] - 1):
        _train_chunk(
            items,
            indptr,
            chunk_bounds[c],
            chunk_bounds[c + 1],
            in_vecs,
            out_vecs,
            threshold,
            alias,
            keep_prob,
            window,
            negatives,
            basket,
            lr0,
            lr_min,
            epochs,
            states[c : c + 1],
            max_len,
            pair,
            max_dot,
        )


#: deterministic kernel: call it with one chunk (cached)
sgns_train_serial = numba.njit(cache=True, nogil=True)(_train)
#: Hogwild kernel, one chunk per thread (uncached: numba#7518, parallel kernels cannot be cached)
sgns_train_parallel = numba.njit(cache=False, nogil=True, parallel=True)(_train)


@numba.njit(cache=False, nogil=True, parallel=True)
def sgns_train_local(
    items: np.ndarray,
    indptr: np.ndarray,
    span_bounds: np.ndarray,
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
    states: np.ndarray,
    max_len: int,
    pair: bool,
    max_dot: float,
) -> None:
    """Parallel training on private copies of the vectors, merged after every round.

    Chunk ``c`` (one per thread) covers sequences ``span_bounds[c, 0]:span_bounds[c, -1]``,
    cut into ``R = span_bounds.shape[1] - 1`` spans; an epoch is ``R`` rounds. In a round
    every thread trains its span ``r`` on its own copy of ``in_vecs`` / ``out_vecs``, then
    every thread's change is added to the shared vectors (the sum, as Hogwild would apply
    them, only later) and the copies are refreshed. Same draws, learning-rate schedule and
    per-chunk order as :data:`sgns_train_parallel`; the difference is that a thread sees
    the other threads' updates at round ends instead of at once. The point is cache
    traffic: on small catalogues the hot rows (popular centres and negatives) are written by
    all threads, and with shared vectors every such write bounces a cache line between
    cores (measured on MovieLens, 2 threads: Hogwild 1.2 s vs 0.5 s for the same work on
    private copies). Memory: ``2 * n_chunks`` extra copies of the vectors.
    """
    n_chunks = span_bounds.shape[0]
    rounds = span_bounds.shape[1] - 1
    n, f = in_vecs.shape
    pin = np.empty((n_chunks, n, f), dtype=np.float32)
    pout = np.empty((n_chunks, n, f), dtype=np.float32)
    done = np.zeros(n_chunks, dtype=np.float64)
    for c in numba.prange(n_chunks):
        pin[c] = in_vecs
        pout[c] = out_vecs
    for _ in range(epochs):
        for r in range(rounds):
            for c in numba.prange(n_chunks):
                s0 = span_bounds[c, 0]
                s1 = span_bounds[c, rounds]
                done[c] = _train_span(
                    items,
                    indptr,
                    span_bounds[c, r],
                    span_bounds[c, r + 1],
                    pin[c],
                    pout[c],
                    threshold,
                    alias,
                    keep_prob,
                    window,
                    negatives,
                    basket,
                    lr0,
                    lr_min,
                    done[c],
                    float(epochs) * float(indptr[s1] - indptr[s0]),
                    states[c : c + 1],
                    max_len,
                    pair,
                    max_dot,
                )
            for i in numba.prange(n):
                for d in range(f):
                    base_in = in_vecs[i, d]
                    base_out = out_vecs[i, d]
                    acc_in = base_in
                    acc_out = base_out
                    for c in range(n_chunks):
                        acc_in += pin[c, i, d] - base_in
                        acc_out += pout[c, i, d] - base_out
                    in_vecs[i, d] = acc_in
                    out_vecs[i, d] = acc_out
                    for c in range(n_chunks):
                        pin[c, i, d] = acc_in
                        pout[c, i, d] = acc_out


@numba.njit(cache=True, nogil=True)
def alias_table(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker/Vose alias table of the distribution proportional to ``weights`` (>= 0, sum > 0).

    Bucket ``i`` (chosen uniformly) returns ``i`` when the low 32 bits of the draw are below
    ``threshold[i]`` and ``alias[i]`` otherwise, so item ``j`` is drawn with probability
    ``(threshold[j] + sum over i with alias[i] == j of (2**32 - threshold[i])) / (n 2**32)``,
    equal to ``weights[j] / sum(weights)`` up to 32-bit rounding. Items of weight 0 are never
    drawn. Vose, "A linear algorithm for generating random numbers with a given distribution",
    IEEE TSE 1991.
    """
    n = weights.shape[0]
    prob = weights * (n / weights.sum())
    threshold = np.zeros(n, dtype=np.uint64)
    alias = np.arange(n).astype(np.int64)
    small = np.empty(n, dtype=np.int64)
    large = np.empty(n, dtype=np.int64)
    ns = 0
    nl = 0
    for i in range(n):
        if prob[i] < 1.0:
            small[ns] = i
            ns += 1
        else:
            large[nl] = i
            nl += 1
    full = np.uint64(4294967296)
    while ns > 0 and nl > 0:
        ns -= 1
        s = small[ns]
        nl -= 1
        lg = large[nl]
        threshold[s] = np.uint64(prob[s] * 4294967296.0)
        alias[s] = lg
        prob[lg] -= 1.0 - prob[s]
        if prob[lg] < 1.0:
            small[ns] = lg
            ns += 1
        else:
            large[nl] = lg
            nl += 1
    for k in range(nl):
        threshold[large[k]] = full
    best = np.argmax(weights)
    for k in range(ns):  # rounding leftovers: they keep their own bucket if they have weight
        i = small[k]
        if weights[i] > 0:
            threshold[i] = full
        else:
            threshold[i] = np.uint64(0)
            alias[i] = best
    return threshold, alias
