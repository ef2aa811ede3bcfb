"""Numba kernels behind the explicit-feedback models of :mod:`tastebud.models.mf`.

Every kernel is a module-level pure function over contiguous arrays validated at the Python
boundary. Each epoch kernel is compiled twice from the same Python
function: a serial, cached dispatcher (``*_serial``, deterministic) and a ``parallel=True``
uncached one (``*_parallel``, Hogwild: Niu et al. 2011, "Hogwild!: A lock-free approach to
parallelizing stochastic gradient descent"). Nothing is compiled at import time.

Floating-point contract
-----------------------
The kernels are generic over the float type of the factor arrays (float32 in the models,
float64 in some tests). All hyperparameters arrive in one array ``hp`` of that same dtype, so
no operation silently promotes to float64. ``fastmath`` is confined to the arithmetic
leaves (the dot product and the factor step), and the epoch kernels take an
``exact`` flag that swaps them for plain left-to-right versions: with ``exact=True`` a
serial SVD epoch equals the plain-Python reference of ``tests/reference/mf_reference.py``
bit for bit, which pins down the visiting order and every update formula; the fast leaves
are then checked against the exact ones to rounding.

``SVD`` itself trains with the C++ port of ``shuffle_ratings`` + ``svd_epoch_serial``
(``tastebud._core.svd_fit`` in ``cpp/sgd.hpp``: all epochs in one call, padded aligned
factor rows, AVX-512 clones; ``svd_epoch`` is the older per-epoch entry point); the Numba
SVD epoch remains the specification that the C++ kernels are tested against.

Layout of ``hp``
----------------
``svd_epoch``: ``[mu, lr_bu, lr_bi, lr_pu, lr_qi, reg_bu, reg_bi, reg_pu, reg_qi]``.
``svdpp_epoch``: the same followed by ``lr_yj, reg_yj, 1`` (a one of the right dtype).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = [
    "MU",
    "als_solve_parallel",
    "als_solve_serial",
    "block_stream",
    "shuffle_ratings",
    "shuffle_segments",
    "svd_epoch_parallel",
    "svd_epoch_serial",
    "svd_users_epochs",
    "svdpp_epoch_parallel",
    "svdpp_epoch_serial",
    "user_implicit_sum",
    "users_order",
]

MU, LR_BU, LR_BI, LR_PU, LR_QI, REG_BU, REG_BI, REG_PU, REG_QI, LR_YJ, REG_YJ, ONE = range(12)

_SERIAL = {"cache": True, "nogil": True}
_PARALLEL = {"cache": False, "nogil": True, "parallel": True}


@numba.njit(cache=True, nogil=True, inline="always")
def _chunk_bounds(c, n_chunks, n):  # pragma: no cover - compiled
    return (c * n) // n_chunks, ((c + 1) * n) // n_chunks


#: fastmath flags of the arithmetic leaves (no nnan/ninf: NaN and inf must stay detectable).
_FAST = {"nsz", "arcp", "contract", "afn", "reassoc"}


@numba.njit(cache=True, nogil=True)
def _dot_exact(a, ra, b, rb, n, zero):  # pragma: no cover - compiled
    """``a[ra, :n] . b[rb, :n]`` summed left to right (the reference's order)."""
    s = zero
    for f in range(n):
        s += a[ra, f] * b[rb, f]
    return s


@numba.njit(cache=True, nogil=True, fastmath=_FAST)
def _dot_fast(a, ra, b, rb, n, zero):  # pragma: no cover - compiled
    """The same dot product, reassociated so LLVM vectorises the reduction (4x faster)."""
    s = zero
    for f in range(n):
        s += a[ra, f] * b[rb, f]
    return s


@numba.njit(cache=True, nogil=True)
def _step_exact(P, u, Q, i, n, err, lr_pu, lr_qi, reg_pu, reg_qi):  # pragma: no cover
    """``p_u += lr_pu (err q_i - reg_pu p_u)``, ``q_i += lr_qi (err p_u - reg_qi q_i)``."""
    for f in range(n):
        puf = P[u, f]
        qif = Q[i, f]
        P[u, f] = puf + lr_pu * (err * qif - reg_pu * puf)
        Q[i, f] = qif + lr_qi * (err * puf - reg_qi * qif)


@numba.njit(cache=True, nogil=True, fastmath=_FAST)
def _step_fast(P, u, Q, i, n, err, lr_pu, lr_qi, reg_pu, reg_qi):  # pragma: no cover
    """The same step with contraction into FMAs."""
    for f in range(n):
        puf = P[u, f]
        qif = Q[i, f]
        P[u, f] = puf + lr_pu * (err * qif - reg_pu * puf)
        Q[i, f] = qif + lr_qi * (err * puf - reg_qi * qif)


# ---------------------------------------------------------------------------
# shuffling (serial only: the order must not depend on the thread count)
# ---------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True, inline="always")
def _next(state):  # pragma: no cover - compiled
    """SplitMix64 (Steele, Lea and Flood 2014): advance ``state[0]``, return 64 random bits."""
    z = state[0] + np.uint64(0x9E3779B97F4A7C15)
    state[0] = z
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True, nogil=True, inline="always")
def _below(state, n):  # pragma: no cover - compiled
    """A random int in ``[0, n)`` for ``n < 2**32`` (Lemire's multiply-shift, bias < n/2**32)."""
    return np.int64(((_next(state) >> np.uint64(32)) * np.uint64(n)) >> np.uint64(32))


@numba.njit(cache=True, nogil=True)
def shuffle_ratings(users, items, ratings, state):  # pragma: no cover - compiled
    """Fisher-Yates shuffle of the rating triples, in place (the epoch then streams them).

    ``state`` is a one-element uint64 array (SplitMix64 state), advanced in place, so a
    sequence of calls is determined by its initial value.
    """
    for j in range(users.size - 1, 0, -1):
        k = _below(state, j + 1)
        u = users[j]
        users[j] = users[k]
        users[k] = u
        i = items[j]
        items[j] = items[k]
        items[k] = i
        r = ratings[j]
        ratings[j] = ratings[k]
        ratings[k] = r


@numba.njit(cache=True, nogil=True)
def shuffle_segments(values, indptr, state):  # pragma: no cover - compiled
    """Fisher-Yates shuffle of each segment ``values[indptr[s]:indptr[s + 1]]``, in place.

    With ``indptr = [0, n]`` this shuffles the whole array.
    """
    for s in range(indptr.size - 1):
        lo = indptr[s]
        for j in range(indptr[s + 1] - 1, lo, -1):
            k = lo + _below(state, j - lo + 1)
            tmp = values[j]
            values[j] = values[k]
            values[k] = tmp


#: Users in flight in a user-major epoch (``cpp/sgd.hpp`` ``kSvdLanes``).
SVD_LANES = 3


@numba.njit(cache=True, nogil=True, inline="always")
def _take_segment(lane, order, nxt, seg, state, base, length, left, idx, held):  # pragma: no cover
    """Lane ``lane`` takes segment ``order[nxt]`` (if any) from a random start; returns nxt."""
    held[lane] = nxt < order.size
    if not held[lane]:
        return nxt
    s = order[nxt]
    base[lane] = seg[s]
    length[lane] = seg[s + 1] - seg[s]
    left[lane] = length[lane]
    idx[lane] = _below(state, length[lane])
    return nxt + 1


@numba.njit(cache=True, nogil=True)
def users_order(seg, state, out):  # pragma: no cover - compiled
    """The visiting order of one user-major SVD epoch (``SVD(order="users")``).

    Segment ``s`` holds one user's ratings, positions ``seg[s]`` to ``seg[s + 1] - 1``.
    Writes into ``out`` (length ``seg[-1] - seg[0]``) the positions in the order their
    updates are applied, drawing from the SplitMix64 ``state`` (advanced in place):

    1. a Fisher-Yates permutation of the segments;
    2. ``SVD_LANES`` lanes take segments from it in turn; taking a segment of ``m``
       ratings draws a start ``o`` in ``[0, m)``, and the lane visits its positions
       ``o, ..., m - 1, 0, ..., o - 1``;
    3. a step visits the next rating of every lane that holds a segment, in lane order;
       after a step every lane whose segment is done takes the next one, in lane order,
       until the permutation is exhausted.

    This is what ``cpp/sgd.hpp`` ``svd_users_order`` writes and what its lane kernel
    applies (the lanes' users are distinct; a step whose lanes share an item runs them
    one after the other).
    """
    n_seg = seg.size - 1
    order = np.arange(n_seg)
    for j in range(n_seg - 1, 0, -1):
        k = _below(state, j + 1)
        tmp = order[j]
        order[j] = order[k]
        order[k] = tmp
    lanes = SVD_LANES
    base = np.zeros(lanes, np.int64)
    length = np.zeros(lanes, np.int64)
    idx = np.zeros(lanes, np.int64)
    left = np.zeros(lanes, np.int64)
    held = np.zeros(lanes, np.bool_)
    nxt = 0
    n_out = 0
    for lane in range(lanes):
        nxt = _take_segment(lane, order, nxt, seg, state, base, length, left, idx, held)
    while held.any():
        for lane in range(lanes):
            if held[lane]:
                out[n_out] = base[lane] + idx[lane]
                n_out += 1
                idx[lane] = 0 if idx[lane] + 1 == length[lane] else idx[lane] + 1
                left[lane] -= 1
        for lane in range(lanes):
            if held[lane] and left[lane] == 0:
                nxt = _take_segment(lane, order, nxt, seg, state, base, length, left, idx, held)


def block_stream(seed: int, block: int) -> np.uint64:
    """The SplitMix64 state of block ``block``'s stream from ``seed`` (as ``cpp/sgd.hpp``):
    the first output of ``SplitMix64(seed ^ (0x9E3779B97F4A7C15 * (block + 1)))``."""
    mixed = (int(seed) ^ (0x9E3779B97F4A7C15 * (int(block) + 1))) & 0xFFFFFFFFFFFFFFFF
    return np.uint64(_next(np.array([mixed], np.uint64)))


def svd_users_epochs(users, items, ratings, epochs, bu, bi, P, Q, hp, state, exact=False):
    """The epochs of ``SVD(order="users")`` on one thread (what ``_core.svd_fit`` runs).

    ``users, items, ratings`` are the training triples sorted by user (CSR order); they
    are not modified. ``state`` (one-element uint64 array, advanced) gives ``prep``, its
    first SplitMix64 output, and the epoch seeds, its next ``epochs`` outputs. Each user's
    ratings are shuffled once with ``block_stream(prep, 0)``; epoch ``e`` then visits them
    in the order ``users_order`` draws from ``block_stream(seed_e, 0)`` and applies the
    updates of ``svd_epoch_serial``. Returns the per-epoch sums of squared errors.
    """
    if users.size > 1 and np.any(users[1:] < users[:-1]):
        raise ValueError("users must be sorted (CSR order)")
    seg = np.flatnonzero(np.diff(users, prepend=-1, append=-1)).astype(np.int64)
    prep = np.uint64(_next(state))
    seeds = [np.uint64(_next(state)) for _ in range(epochs)]
    perm = np.arange(users.size, dtype=np.int64)
    shuffle_segments(perm, seg, np.array([block_stream(prep, 0)], np.uint64))
    users, items, ratings = users[perm], items[perm], ratings[perm]
    out = np.empty(users.size, np.int64)
    sse = []
    for seed in seeds:
        users_order(seg, np.array([block_stream(seed, 0)], np.uint64), out)
        triples = (users[out], items[out], ratings[out])
        sse.append(svd_epoch_serial(*triples, 1, bu, bi, P, Q, hp, exact))
    return sse


# ---------------------------------------------------------------------------
# biased MF (Funk / Koren 2009 / Surprise's SVD): one SGD epoch
# ---------------------------------------------------------------------------


def _svd_epoch(users, items, ratings, n_chunks, bu, bi, P, Q, hp, exact):  # pragma: no cover
    """One epoch of per-rating SGD on ``r_ui ~ mu + b_u + b_i + p_u . q_i``.

    Ratings ``(users[t], items[t], ratings[t])`` are visited in array order (the caller
    shuffles the triples between epochs), split into ``n_chunks`` contiguous chunks; with
    one chunk this is exactly the sequential algorithm. Per rating, as in Surprise's ``SVD``::

        err  = r - (mu + b_u + b_i + p_u . q_i)
        b_u += lr_bu (err - reg_bu b_u);   b_i += lr_bi (err - reg_bi b_i)
        p_u += lr_pu (err q_i - reg_pu p_u); q_i += lr_qi (err p_u - reg_qi q_i)  (old p_u, q_i)

    ``exact=True`` evaluates every dot product left to right and every update without FMA
    contraction, which the plain-Python reference replays bit for bit; ``exact=False`` (what
    the models run) lets LLVM reassociate the dot product and contract the updates into
    FMAs, which only changes rounding.

    Returns the sum of squared errors seen during the epoch (a training-loss estimate).
    """
    mu = hp[0]
    lr_bu, lr_bi, lr_pu, lr_qi = hp[1], hp[2], hp[3], hp[4]
    reg_bu, reg_bi, reg_pu, reg_qi = hp[5], hp[6], hp[7], hp[8]
    zero = mu - mu
    n = P.shape[1]
    nnz = users.size
    sse = np.zeros(n_chunks, dtype=np.float64)
    for c in numba.prange(n_chunks):
        lo, hi = _chunk_bounds(c, n_chunks, nnz)
        acc = 0.0
        for t in range(lo, hi):
            u = users[t]
            i = items[t]
            if exact:
                dot = _dot_exact(P, u, Q, i, n, zero)
            else:
                dot = _dot_fast(P, u, Q, i, n, zero)
            err = ratings[t] - (mu + bu[u] + bi[i] + dot)
            acc += np.float64(err) * np.float64(err)
            bu[u] += lr_bu * (err - reg_bu * bu[u])
            bi[i] += lr_bi * (err - reg_bi * bi[i])
            if exact:
                _step_exact(P, u, Q, i, n, err, lr_pu, lr_qi, reg_pu, reg_qi)
            else:
                _step_fast(P, u, Q, i, n, err, lr_pu, lr_qi, reg_pu, reg_qi)
        sse[c] = acc
    return sse.sum()


svd_epoch_serial = numba.njit(**_SERIAL)(_svd_epoch)
svd_epoch_parallel = numba.njit(**_PARALLEL)(_svd_epoch)


# ---------------------------------------------------------------------------
# SVD++ (Koren 2008, section 4): one SGD epoch, user by user
# ---------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True, inline="always")
def _implicit_sum(indptr, indices, Y, u, sqrt_n, z):  # pragma: no cover - compiled
    """``z = sum_{j in N(u)} y_j / sqrt|N(u)|``, added term by term as Surprise does.

    ``sqrt_n`` is ``sqrt|N(u)|`` in the dtype of ``Y``.
    """
    n = Y.shape[1]
    for f in range(n):
        z[f] = 0
    for p in range(indptr[u], indptr[u + 1]):
        j = indices[p]
        for f in range(n):
            z[f] += Y[j, f] / sqrt_n


def _svdpp_epoch(
    indptr, indices, ratings, sqrt_n, user_order, positions, n_chunks, bu, bi, P, Q, Y, hp, exact
):  # pragma: no cover - compiled
    """One epoch of Surprise's SVD++ SGD, in O(|R| f) instead of O(sum_u |N(u)|^2 f).

    Ratings are visited user by user (``user_order``; within a user in the CSR positions
    ``positions[indptr[u]:indptr[u+1]]``), which is the order Surprise uses. ``sqrt_n[u]`` is
    ``sqrt|N(u)|`` in the factors' dtype. Surprise updates,
    for every rating (u, i) and every j in N(u) (the items u rated)::

        y_j <- (1 - lr_yj reg_yj) y_j + lr_yj err q_i / sqrt|N(u)|

    All y_j of the user receive the *same* affine update, so after the user's ratings
    ``y_j = a y_j + c`` with a scalar ``a`` and a vector ``c`` shared by all j, and the
    implicit sum ``z = sum_j y_j / sqrt|N(u)|`` evolves exactly as
    ``z <- z + lr_yj (err q_i - reg_yj z)``. The kernel keeps ``z``, ``a`` and ``c`` while it
    walks the user's ratings and writes the y_j once at the end: the same iterates as the
    per-rating algorithm in exact arithmetic (differences are rounding only), at a cost
    linear in the number of ratings.
    """
    mu = hp[0]
    lr_bu, lr_bi, lr_pu, lr_qi = hp[1], hp[2], hp[3], hp[4]
    reg_bu, reg_bi, reg_pu, reg_qi = hp[5], hp[6], hp[7], hp[8]
    lr_yj, reg_yj = hp[9], hp[10]
    zero = mu - mu
    one = hp[11]
    decay = one - lr_yj * reg_yj
    n = P.shape[1]
    n_users = user_order.size
    sse = np.zeros(n_chunks, dtype=np.float64)
    for c in numba.prange(n_chunks):
        lo_u, hi_u = _chunk_bounds(c, n_chunks, n_users)
        z = np.empty((1, n), dtype=P.dtype)
        pz = np.empty((1, n), dtype=P.dtype)
        cvec = np.empty(n, dtype=P.dtype)
        acc = 0.0
        for t in range(lo_u, hi_u):
            u = user_order[t]
            lo, hi = indptr[u], indptr[u + 1]
            if hi == lo:
                continue
            s = sqrt_n[u]
            _implicit_sum(indptr, indices, Y, u, s, z[0])
            for f in range(n):
                cvec[f] = zero
            a = one
            for p in range(lo, hi):
                o = positions[p]
                i = indices[o]
                for f in range(n):
                    pz[0, f] = P[u, f] + z[0, f]
                if exact:
                    dot = _dot_exact(Q, i, pz, 0, n, zero)
                else:
                    dot = _dot_fast(Q, i, pz, 0, n, zero)
                err = ratings[o] - (mu + bu[u] + bi[i] + dot)
                acc += np.float64(err) * np.float64(err)
                bu[u] += lr_bu * (err - reg_bu * bu[u])
                bi[i] += lr_bi * (err - reg_bi * bi[i])
                for f in range(n):
                    puf = P[u, f]
                    qif = Q[i, f]
                    zf = z[0, f]
                    P[u, f] = puf + lr_pu * (err * qif - reg_pu * puf)
                    Q[i, f] = qif + lr_qi * (err * (puf + zf) - reg_qi * qif)
                    z[0, f] = zf + lr_yj * (err * qif - reg_yj * zf)
                    cvec[f] = decay * cvec[f] + lr_yj * (err * qif / s)
                a = a * decay
            for p in range(lo, hi):
                j = indices[p]
                for f in range(n):
                    Y[j, f] = a * Y[j, f] + cvec[f]
        sse[c] = acc
    return sse.sum()


svdpp_epoch_serial = numba.njit(**_SERIAL)(_svdpp_epoch)
svdpp_epoch_parallel = numba.njit(**_PARALLEL)(_svdpp_epoch)


@numba.njit(cache=True, nogil=True)
def user_implicit_sum(indptr, indices, sqrt_n, Y, out):  # pragma: no cover - compiled
    """``out[u] = sum_{j in N(u)} y_j / sqrt|N(u)|`` for every row of a CSR (0 if empty)."""
    for u in range(indptr.size - 1):
        _implicit_sum(indptr, indices, Y, u, sqrt_n[u], out[u])


# ---------------------------------------------------------------------------
# ALS-WR (Zhou et al. 2008): one half-step, every row solved independently
# ---------------------------------------------------------------------------


def _als_solve(indptr, indices, targets, Y, reg, n_chunks, X):  # pragma: no cover - compiled
    """``X[u] = argmin_x sum_{i in row u} (t_ui - x . y_i)^2 + reg n_u |x|^2`` for every row.

    The weighted-lambda regularisation ``reg * n_u`` is Zhou et al.'s ALS-WR. Rows without
    entries get ``x = 0``. Each row builds its k x k normal equations from the observed
    entries only (O(n_u k^2)) and solves them with a Cholesky factorisation (the matrix is
    symmetric positive definite for ``reg > 0``).
    """
    n_rows = indptr.size - 1
    k = Y.shape[1]
    for c in numba.prange(n_chunks):
        lo_r, hi_r = _chunk_bounds(c, n_chunks, n_rows)
        A = np.empty((k, k), dtype=np.float64)
        b = np.empty(k, dtype=np.float64)
        for u in range(lo_r, hi_r):
            lo, hi = indptr[u], indptr[u + 1]
            if hi == lo:
                for f in range(k):
                    X[u, f] = 0
                continue
            A[:, :] = 0.0
            b[:] = 0.0
            for p in range(lo, hi):
                j = indices[p]
                t = np.float64(targets[p])
                for f in range(k):
                    yf = np.float64(Y[j, f])
                    b[f] += t * yf
                    for g in range(f + 1):
                        A[f, g] += yf * np.float64(Y[j, g])
            lam = reg * (hi - lo)
            # In-place Cholesky (lower triangle), then forward and back substitution.
            for f in range(k):
                A[f, f] += lam
            for f in range(k):
                s = A[f, f]
                for g in range(f):
                    s -= A[f, g] * A[f, g]
                d = np.sqrt(s)
                A[f, f] = d
                for h in range(f + 1, k):
                    s2 = A[h, f]
                    for g in range(f):
                        s2 -= A[h, g] * A[f, g]
                    A[h, f] = s2 / d
            for f in range(k):
                s = b[f]
                for g in range(f):
                    s -= A[f, g] * b[g]
                b[f] = s / A[f, f]
            for f in range(k - 1, -1, -1):
                s = b[f]
                for g in range(f + 1, k):
                    s -= A[g, f] * b[g]
                b[f] = s / A[f, f]
            for f in range(k):
                X[u, f] = b[f]


als_solve_serial = numba.njit(**_SERIAL)(_als_solve)
als_solve_parallel = numba.njit(**_PARALLEL)(_als_solve)
