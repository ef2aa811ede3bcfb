"""Shared hypothesis strategies and converters for the metric tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from hypothesis import strategies as st


@dataclass
class Case:
    recommended: np.ndarray  # (n_users, width) int64, -1 = empty slot
    relevant: sp.csr_array  # (n_users, n_items)
    rows: list[list[int]]  # the same lists, for the reference
    rel: list[dict[int, float]]  # per-user {item: gain}
    k: int
    n_items: int


def to_csr(rel: list[dict[int, float]], n_items: int) -> sp.csr_array:
    rows = [u for u, d in enumerate(rel) for _ in d]
    cols = [i for d in rel for i in d]
    vals = [g for d in rel for g in d.values()]
    return sp.csr_array(
        (
            np.asarray(vals, dtype=np.float64),
            (np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)),
        ),
        shape=(len(rel), n_items),
    )


@st.composite
def ranking_cases(draw, graded: bool = False, max_users: int = 6, max_items: int = 12) -> Case:
    """Small ranking problems: -1 padding (trailing and inner), k beyond the width,
    users without relevant items, tied gains, items never relevant."""
    n_users = draw(st.integers(1, max_users))
    n_items = draw(st.integers(1, max_items))
    width = draw(st.integers(0, min(n_items, 8)))
    k = draw(st.integers(1, width + 3))
    rows = []
    rel = []
    for _ in range(n_users):
        perm = draw(st.permutations(range(n_items)))[:width]
        n_valid = draw(st.integers(0, width))
        row = list(perm[:n_valid]) + [-1] * (width - n_valid)
        if width and draw(st.booleans()):  # an inner empty slot
            row[draw(st.integers(0, width - 1))] = -1
        rows.append(row)
        items = draw(st.sets(st.integers(0, n_items - 1), max_size=n_items))
        if graded:
            rel.append({i: float(draw(st.integers(1, 3))) for i in sorted(items)})
        else:
            rel.append({i: 1.0 for i in sorted(items)})
    recommended = np.asarray(rows, dtype=np.int64).reshape(n_users, width)
    return Case(recommended, to_csr(rel, n_items), rows, rel, k, n_items)


def random_problem(
    rng: np.random.Generator, n_users: int, n_items: int, width: int, max_rel: int
) -> tuple[np.ndarray, sp.csr_array]:
    """Random full-width lists and 1..max_rel relevant items per user (binary)."""
    scores = rng.random((n_users, n_items))
    recommended = np.argsort(-scores, axis=1)[:, :width].astype(np.int64)
    n_rel = rng.integers(1, max_rel + 1, size=n_users)
    rows = np.repeat(np.arange(n_users), n_rel)
    cols = np.concatenate([rng.choice(n_items, size=n, replace=False) for n in n_rel])
    relevant = sp.csr_array((np.ones(rows.size), (rows, cols)), shape=(n_users, n_items))
    return recommended, relevant
