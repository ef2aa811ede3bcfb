"""Plain-numpy reference of the hybrid model's losses, gradients and optimiser steps.

Parameters are a dict with ``U`` (user features x f), ``c`` (user feature biases), ``V`` (item
features x f), ``d`` (item feature biases); ``X`` / ``Y`` are dense users x user-features and
items x item-features matrices. The score is ``s(u, i) = p_u . q_i + b_u + b_i`` with
``p_u = X[u] @ U``, ``b_u = X[u] @ c``, ``q_i = Y[i] @ V``, ``b_i = Y[i] @ d``.
"""

from __future__ import annotations

import numpy as np


def score(P: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray, u: int, i: int) -> float:
    return float((X[u] @ P["U"]) @ (Y[i] @ P["V"]) + X[u] @ P["c"] + Y[i] @ P["d"])


def _softplus(x: float) -> float:
    return float(np.logaddexp(0.0, x))


def warp_rank(n_items: int, trials: int) -> int:
    """WARP's estimate of the positive's rank after ``trials`` draws (Weston et al. 2011)."""
    return (n_items - 1) // trials


def loss(
    P: dict[str, np.ndarray],
    X: np.ndarray,
    Y: np.ndarray,
    kind: str,
    u: int,
    i: int,
    j: int = -1,
    *,
    y: float = 1.0,
    trials: int = 1,
    user_alpha: float = 0.0,
    item_alpha: float = 0.0,
) -> float:
    """One sample's loss plus the L2 terms of the parameters that sample touches."""
    s_i = score(P, X, Y, u, i)
    if kind == "bpr":
        value = _softplus(-(s_i - score(P, X, Y, u, j)))
    elif kind == "warp":
        weight = np.log(max(1, warp_rank(Y.shape[0], trials)))
        value = weight * max(0.0, 1.0 - s_i + score(P, X, Y, u, j))
    elif kind == "logistic":
        value = _softplus(-s_i) if y > 0.5 else _softplus(s_i)
    else:
        raise ValueError(kind)
    # L2 on touched parameters: the features of u, of i and (pairwise) of j.
    uf = X[u] != 0
    items = [i] if kind == "logistic" else [i, j]
    itf = np.zeros(Y.shape[1], dtype=bool)
    for it in items:
        itf |= Y[it] != 0
    reg = 0.5 * user_alpha * (np.sum(P["U"][uf] ** 2) + np.sum(P["c"][uf] ** 2))
    reg += 0.5 * item_alpha * (np.sum(P["V"][itf] ** 2) + np.sum(P["d"][itf] ** 2))
    return value + reg


def gradient(
    P: dict[str, np.ndarray],
    X: np.ndarray,
    Y: np.ndarray,
    kind: str,
    u: int,
    i: int,
    j: int = -1,
    *,
    y: float = 1.0,
    trials: int = 1,
    user_alpha: float = 0.0,
    item_alpha: float = 0.0,
) -> dict[str, np.ndarray]:
    """Analytic gradient of ``loss`` with respect to every parameter array.

    The L2 gradient ``alpha * theta`` is added once per occurrence of the feature in the
    sample (the kernel regularises each feature row it updates), which equals the gradient of
    ``loss`` whenever the positive and negative items share no feature.
    """
    p, bu = X[u] @ P["U"], X[u] @ P["c"]
    q_i, b_i = Y[i] @ P["V"], Y[i] @ P["d"]
    G = {k: np.zeros_like(v, dtype=np.float64) for k, v in P.items()}
    if kind == "logistic":
        s = p @ q_i + bu + b_i
        with np.errstate(over="ignore"):  # exp overflows to inf: the logistic is then 0
            dl = 1.0 / (1.0 + np.exp(-s)) - y
        G["U"] += np.outer(X[u], dl * q_i)
        G["c"] += X[u] * dl
        G["V"] += np.outer(Y[i], dl * p)
        G["d"] += Y[i] * dl
        touched_items = [i]
    else:
        q_j, b_j = Y[j] @ P["V"], Y[j] @ P["d"]
        x = p @ (q_i - q_j) + b_i - b_j
        if kind == "bpr":
            with np.errstate(over="ignore"):  # d softplus(-x) / dx; 0 when exp overflows
                dl = -1.0 / (1.0 + np.exp(x))
        else:
            weight = np.log(max(1, warp_rank(Y.shape[0], trials)))
            dl = -weight if 1.0 - x > 0 else 0.0
        G["U"] += np.outer(X[u], dl * (q_i - q_j))
        G["V"] += np.outer(Y[i], dl * p) - np.outer(Y[j], dl * p)
        G["d"] += Y[i] * dl - Y[j] * dl
        touched_items = [i, j]
    uf = X[u] != 0
    G["U"][uf] += user_alpha * P["U"][uf]
    G["c"][uf] += user_alpha * P["c"][uf]
    for it in touched_items:
        f = Y[it] != 0
        G["V"][f] += item_alpha * P["V"][f]
        G["d"][f] += item_alpha * P["d"][f]
    return G


def numeric_gradient(fn, P: dict[str, np.ndarray], eps: float = 1e-6) -> dict[str, np.ndarray]:
    """Central finite differences of ``fn(P)`` (float64)."""
    out = {}
    for name, arr in P.items():
        g = np.zeros_like(arr, dtype=np.float64)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + eps
            up = fn(P)
            arr[idx] = old - eps
            down = fn(P)
            arr[idx] = old
            g[idx] = (up - down) / (2 * eps)
        out[name] = g
    return out


def adagrad(theta: np.ndarray, acc: np.ndarray, g: np.ndarray, lr: float):
    """LightFM's adagrad: step with the accumulator before adding g^2 (starts at 1)."""
    return theta - lr * g / np.sqrt(acc), acc + g * g


def adadelta(theta, eg2, edx2, g, rho: float, eps: float):
    """Zeiler 2012."""
    eg2 = rho * eg2 + (1 - rho) * g * g
    dx = np.sqrt(edx2 + eps) / np.sqrt(eg2 + eps) * g
    edx2 = rho * edx2 + (1 - rho) * dx * dx
    return theta - dx, eg2, edx2


def normalize(scores: np.ndarray, candidates: np.ndarray, how: str) -> np.ndarray:
    """Row-by-row reference of Blend's normalisation (finite scores only)."""
    out = np.zeros_like(scores, dtype=np.float64)
    for r in range(scores.shape[0]):
        c = scores[r][candidates[r]].astype(np.float64)
        s = scores[r].astype(np.float64)
        if c.size == 0:
            out[r] = 0.0
            continue
        if how == "zscore":
            std = c.std()
            out[r] = (s - c.mean()) / std if std > 0 else 0.0
        elif how == "minmax":
            span = c.max() - c.min()
            out[r] = (s - c.min()) / span if span > 0 else 0.0
        else:
            out[r] = np.array([(c < v).sum() for v in s]) / c.size
    return out
