"""Plain-Python references for the explicit-feedback kernels (``tastebud.kernels.sgd``).

Transcriptions of Surprise's Cython loops (``matrix_factorization.pyx``,
``optimize_baselines.pyx``) and of the ALS-WR normal equations, written for clarity, not
speed. Scalars stay numpy scalars of the factors' dtype, so float32 arithmetic rounds exactly
as the compiled kernels' ``exact=True`` path does.
"""

from __future__ import annotations

import numpy as np


def svd_epoch(users, items, ratings, bu, bi, P, Q, hp):
    """One SGD epoch of Surprise's ``SVD`` over the triples in array order (in place).

    ``hp = [mu, lr_bu, lr_bi, lr_pu, lr_qi, reg_bu, reg_bi, reg_pu, reg_qi]``. Returns the
    sum of squared errors (float64).
    """
    mu, lr_bu, lr_bi, lr_pu, lr_qi, reg_bu, reg_bi, reg_pu, reg_qi = (hp[k] for k in range(9))
    zero = mu - mu
    sse = 0.0
    for t in range(len(users)):
        u, i, r = int(users[t]), int(items[t]), ratings[t]
        dot = zero
        for f in range(P.shape[1]):
            dot = dot + P[u, f] * Q[i, f]
        err = r - (mu + bu[u] + bi[i] + dot)
        sse += float(err) * float(err)
        bu[u] = bu[u] + lr_bu * (err - reg_bu * bu[u])
        bi[i] = bi[i] + lr_bi * (err - reg_bi * bi[i])
        for f in range(P.shape[1]):
            puf = P[u, f]
            qif = Q[i, f]
            P[u, f] = puf + lr_pu * (err * qif - reg_pu * puf)
            Q[i, f] = qif + lr_qi * (err * puf - reg_qi * qif)
    return sse


def svdpp_epoch(indptr, indices, ratings, user_order, positions, bu, bi, P, Q, Y, hp):
    """One epoch of Surprise's ``SVDpp`` exactly as its Cython loop runs (in place).

    Users in ``user_order``; a user's ratings at CSR positions ``positions[lo:hi]``; every
    ``y_j`` of the user's items is updated after every rating (the O(|N(u)|^2) algorithm).
    ``hp`` as in the kernel: ``[..., lr_yj, reg_yj, 1]``.
    """
    mu, lr_bu, lr_bi, lr_pu, lr_qi, reg_bu, reg_bi, reg_pu, reg_qi, lr_yj, reg_yj = (
        float(hp[k]) for k in range(11)
    )
    n = P.shape[1]
    for u in user_order:
        lo, hi = int(indptr[u]), int(indptr[u + 1])
        if hi == lo:
            continue
        Iu = [int(indices[p]) for p in range(lo, hi)]
        sqrt_iu = np.sqrt(len(Iu))
        for p in range(lo, hi):
            o = int(positions[p])
            i, r = int(indices[o]), float(ratings[o])
            impl = np.zeros(n)
            for j in Iu:
                for f in range(n):
                    impl[f] += Y[j, f] / sqrt_iu
            dot = 0.0
            for f in range(n):
                dot += Q[i, f] * (P[u, f] + impl[f])
            err = r - (mu + bu[u] + bi[i] + dot)
            bu[u] += lr_bu * (err - reg_bu * bu[u])
            bi[i] += lr_bi * (err - reg_bi * bi[i])
            for f in range(n):
                puf = P[u, f]
                qif = Q[i, f]
                P[u, f] += lr_pu * (err * qif - reg_pu * puf)
                Q[i, f] += lr_qi * (err * (puf + impl[f]) - reg_qi * qif)
                for j in Iu:
                    Y[j, f] += lr_yj * (err * qif / sqrt_iu - reg_yj * Y[j, f])


def baseline_als(users, items, ratings, n_users, n_items, epochs, reg_u, reg_i):
    """Surprise's ``baseline_als``: items first, then users, ``epochs`` times (float64)."""
    mu = float(np.mean(np.asarray(ratings, dtype=np.float64)))
    bu = np.zeros(n_users)
    bi = np.zeros(n_items)
    by_item = [[] for _ in range(n_items)]
    by_user = [[] for _ in range(n_users)]
    for u, i, r in zip(users, items, ratings, strict=True):
        by_item[int(i)].append((int(u), float(r)))
        by_user[int(u)].append((int(i), float(r)))
    for _ in range(epochs):
        for i in range(n_items):
            dev = sum(r - mu - bu[u] for u, r in by_item[i])
            bi[i] = dev / (reg_i + len(by_item[i]))
        for u in range(n_users):
            dev = sum(r - mu - bi[i] for i, r in by_user[u])
            bu[u] = dev / (reg_u + len(by_user[u]))
    return bu, bi


def als_solve(indptr, indices, targets, Y, reg):
    """ALS-WR rows: ``x_u = (Y_u^T Y_u + reg n_u I)^-1 Y_u^T t_u`` (zero for empty rows)."""
    n_rows, k = len(indptr) - 1, Y.shape[1]
    X = np.zeros((n_rows, k))
    for u in range(n_rows):
        lo, hi = int(indptr[u]), int(indptr[u + 1])
        if hi == lo:
            continue
        Yu = np.asarray(Y[indices[lo:hi]], dtype=np.float64)
        t = np.asarray(targets[lo:hi], dtype=np.float64)
        A = Yu.T @ Yu + reg * (hi - lo) * np.eye(k)
        X[u] = np.linalg.solve(A, Yu.T @ t)
    return X
