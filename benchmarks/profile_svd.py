"""Where an SVD fit's time goes: ``_core.svd_fit`` per visiting order and thread count.

    python benchmarks/profile_svd.py --data-dir ../shared/data [--dataset ml-100k] [--fits 15]

Takes fold 1 of the 5-fold split of ``compare_peers.py rating`` (seed 42), the triples in
the order ``SVD`` passes them (sorted by user), Surprise's defaults (100 factors, lr 0.005,
reg 0.02), and times ``svd_fit`` with 0 and 20 epochs for ``order="ratings"`` and
``order="users"`` on 1 and 2 threads, interleaved, reporting medians: the fixed part
(grouping or packing the ratings, padding the rows) and the cost per epoch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

from tastebud import search
from tastebud.data import datasets, split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("TASTEBUD_DATA", "../shared/data"))
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--fits", type=int, default=15)
    args = parser.parse_args()
    ml = datasets.load_movielens(Path(args.data_dir) / args.dataset)
    train, _ = split.kfold(ml.ratings, 5, random_state=42)[0]
    csr = train.matrix.tocsr()
    users = np.repeat(np.arange(csr.shape[0], dtype=np.int32), np.diff(csr.indptr))
    items = csr.indices.astype(np.int32)
    ratings = csr.data.astype(np.float32)
    hp = np.array([ratings.mean(), 0.005, 0.005, 0.005, 0.005, 0.02, 0.02, 0.02, 0.02], np.float32)
    rng = np.random.default_rng(0)
    p0 = rng.normal(0, 0.1, (csr.shape[0], 100)).astype(np.float32)
    q0 = rng.normal(0, 0.1, (csr.shape[1], 100)).astype(np.float32)
    core = search._core()
    times: dict[tuple[int, str, int], list[float]] = {}
    for rep in range(args.fits):
        for threads in (1, 2):
            for order in ("ratings", "users"):
                for epochs in (0, 20):
                    P, Q = p0.copy(), q0.copy()
                    bu = np.zeros(csr.shape[0], np.float32)
                    bi = np.zeros(csr.shape[1], np.float32)
                    state = np.array([rep], np.uint64)
                    t0 = time.perf_counter()
                    core.svd_fit(users, items, ratings, bu, bi, P, Q, hp, epochs, state,
                                 threads, order)  # fmt: skip
                    times.setdefault((threads, order, epochs), []).append(time.perf_counter() - t0)
    print(f"{args.dataset} fold 1: {ratings.size} ratings, {args.fits} fits each (median ms)")
    for threads in (1, 2):
        for order in ("ratings", "users"):
            fixed = statistics.median(times[(threads, order, 0)]) * 1e3
            whole = statistics.median(times[(threads, order, 20)]) * 1e3
            print(
                f"  {threads} thread(s) order={order:7s}  fit {whole:6.2f}  fixed {fixed:5.2f}"
                f"  per epoch {(whole - fixed) / 20:6.3f}"
            )


if __name__ == "__main__":
    main()
