"""Side-by-side benchmarks of tastebud against its peers, in one run, on the same data.

Usage::

    python benchmarks/compare_peers.py topk [--users 100000 --items 50000 --factors 64]
    python benchmarks/compare_peers.py topk --users 20000 --items 1000000
    python benchmarks/compare_peers.py hybrid --data-dir /work/shared/data/ml-100k

Each section prints a table (median of ``--repeats`` runs, ratio against tastebud) and the
results are written as JSON under ``benchmarks/results/``. Peers run in their best documented
configuration: implicit with BLAS limited to one thread (threadpoolctl), as implicit advises.
Peers that are not installed are reported as missing, never silently skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_info, threadpool_limits

RESULTS = Path(__file__).parent / "results"


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    blas = [
        {k: d.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
        for d in threadpool_info()
    ]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas,
    }


def median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times = []
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def print_table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> None:
    print(f"\n## {title}")
    widths = [max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=False)))
    for r in rows:
        print("  ".join(_fmt(r.get(c)).ljust(w) for c, w in zip(columns, widths, strict=False)))
    sys.stdout.flush()


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def save(name: str, payload: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"machine": machine_info(), **payload}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str))


# --------------------------------------------------------------------------- top-k
def gemm_gflops(threads: int, repeats: int) -> dict[str, float]:
    """Measured float32 GEMM throughput: a large square product and the top-k's own shape."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4096, 4096), dtype=np.float32)
    b = rng.standard_normal((4096, 4096), dtype=np.float32)
    q = rng.standard_normal((4096, 64), dtype=np.float32)
    it = rng.standard_normal((50000, 64), dtype=np.float32)
    with threadpool_limits(threads, "blas"):
        a @ b
        t_sq, _ = median_time(lambda: a @ b, repeats)
        q @ it.T
        t_sh, _ = median_time(lambda: q @ it.T, repeats)
    return {
        "square_4096": 2 * 4096**3 / t_sq / 1e9,
        "shape_4096x64x50000": 2 * 4096 * 64 * 50000 / t_sh / 1e9,
    }


def numpy_topk(q: np.ndarray, it: np.ndarray, k: int, seen: sp.csr_matrix | None, batch=1024):
    """The straightforward path: blocked matmul + argpartition (+ masking seen items)."""
    n = q.shape[0]
    out = np.empty((n, k), dtype=np.int64)
    for s in range(0, n, batch):
        scores = q[s : s + batch] @ it.T
        if seen is not None:
            block = seen[s : s + batch]
            rows = np.repeat(np.arange(block.shape[0]), np.diff(block.indptr))
            scores[rows, block.indices] = -np.inf
        part = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1)
        out[s : s + batch] = np.take_along_axis(part, order, 1)
    return out


def bench_topk(args: argparse.Namespace) -> None:
    from tastebud.search import topk

    rng = np.random.default_rng(42)
    n, m, f, k = args.users, args.items, args.factors, 10
    q = rng.standard_normal((n, f), dtype=np.float32)
    it = rng.standard_normal((m, f), dtype=np.float32)
    per_user = min(args.seen, m - k)
    cols = rng.integers(0, m, size=(n, per_user))
    seen = sp.csr_matrix(
        (np.ones(cols.size, np.float32), cols.ravel(), np.arange(0, cols.size + 1, per_user)),
        shape=(n, m),
    )
    seen.sum_duplicates()
    threads = args.threads
    flops = 2.0 * n * m * f
    gemm = gemm_gflops(threads, 3)
    print(f"GEMM float32 with {threads} threads: {gemm}")
    rows: list[dict[str, Any]] = []

    def record(name: str, fn: Callable[[], Any], excl: bool, repeats: int) -> Any:
        fn_small = fn  # warm-up is the first repeat; report the median
        t, out = median_time(fn_small, repeats)
        rows.append(
            {
                "method": name,
                "exclusions": excl,
                "seconds": t,
                "queries_per_s": n / t,
                "gflops": flops / t / 1e9,
                "pct_of_square_gemm": 100 * flops / t / 1e9 / gemm["square_4096"],
            }
        )
        print(f"  {name:<28} excl={excl!s:<5} {t:8.3f} s  {n / t:10.0f} q/s")
        return out

    ref = record("tastebud", lambda: topk(q, it, k, num_threads=threads), False, args.repeats)
    ref_ex = record(
        "tastebud", lambda: topk(q, it, k, exclude=seen, num_threads=threads), True, args.repeats
    )
    try:
        from implicit.cpu.topk import topk as implicit_topk

        with threadpool_limits(1, "blas"):
            imp = record(
                "implicit 0.7 (BLAS 1 thread)",
                lambda: implicit_topk(it, q, k, num_threads=threads),
                False,
                args.repeats,
            )
            imp_ex = record(
                "implicit 0.7 (BLAS 1 thread)",
                lambda: implicit_topk(it, q, k, filter_query_items=seen, num_threads=threads),
                True,
                args.repeats,
            )
        agree = float((imp[0] == ref[0]).mean())
        agree_ex = float((imp_ex[0] == ref_ex[0]).mean())
        print(f"  agreement with implicit: {agree:.4f} / with exclusions {agree_ex:.4f}")
    except ImportError:
        print("  implicit: not installed")
    try:
        import faiss

        faiss.omp_set_num_threads(threads)
        index = faiss.IndexFlatIP(f)
        index.add(it)
        record("faiss IndexFlatIP", lambda: index.search(q, k), False, max(1, args.repeats - 2))
    except ImportError:
        print("  faiss: not installed")
    if not args.skip_numpy:
        with threadpool_limits(threads, "blas"):
            record("numpy matmul+argpartition", lambda: numpy_topk(q, it, k, None), False, 1)
            record("numpy matmul+argpartition", lambda: numpy_topk(q, it, k, seen), True, 1)
    base = {(r["method"], r["exclusions"]): r["seconds"] for r in rows}
    for r in rows:
        r["tastebud_speedup"] = r["seconds"] / base[("tastebud", r["exclusions"])]
    print_table(
        f"top-{k}: {n} queries x {m} items x {f} factors, {threads} threads, "
        f"~{per_user} exclusions/user when on",
        rows,
        [
            "method",
            "exclusions",
            "seconds",
            "queries_per_s",
            "gflops",
            "pct_of_square_gemm",
            "tastebud_speedup",
        ],
    )
    save(f"topk_{n}x{m}", {"args": vars(args), "gemm_gflops": gemm, "rows": rows})


# --------------------------------------------------------------------------- hybrid
def _writable_coo(m: sp.spmatrix) -> sp.coo_matrix:
    """LightFM's Cython needs writable buffers (tastebud's arrays are read-only)."""
    c = sp.coo_matrix(m, dtype=np.float32)
    return sp.coo_matrix((c.data.copy(), (c.row.copy(), c.col.copy())), shape=c.shape)


def _ranking(scores_or_recs: np.ndarray, relevant: sp.csr_matrix, k: int) -> dict[str, float]:
    from tastebud import metrics as M

    values = M.ranking_metrics(
        scores_or_recs, relevant, k=k, metrics=("precision", "recall", "ndcg")
    )
    return {name: float(np.nanmean(v)) for name, v in values.items()}


def _lightfm_topk(model: Any, item_features: Any, train: sp.csr_matrix, users: np.ndarray, k: int):
    from tastebud.search import topk

    ub, ue = model.get_user_representations()
    ib, ie = model.get_item_representations(item_features)
    q = np.ascontiguousarray(np.column_stack([ue[users], ub[users]]), dtype=np.float32)
    it = np.ascontiguousarray(np.column_stack([ie, np.ones(ie.shape[0])]), dtype=np.float32)
    return topk(q, it, k, exclude=train[users], item_bias=ib.astype(np.float32))[0]


def bench_hybrid(args: argparse.Namespace) -> None:
    """ml-100k, ratings >= 4 as positives: LightFM vs tastebud Hybrid, warm and cold start."""
    from tastebud import Hybrid
    from tastebud.data import Features, Interactions, datasets, split

    threads, k, epochs = args.threads, 10, args.epochs
    ml = datasets.load_movielens(args.data_dir)
    positives = ml.ratings.binarize(4.0)
    train, test = split.random_holdout(positives, test_fraction=0.2, random_state=42)
    genres = ml.item_features.align(positives.items)
    n_items = positives.n_items
    identity = sp.identity(n_items, dtype=np.float32, format="csr")
    lfm_features = sp.csr_matrix(sp.hstack([identity, genres.matrix]), dtype=np.float32)
    eval_users = np.flatnonzero(test.user_counts() > 0)
    relevant = test.matrix[eval_users]
    print(
        f"ml-100k positives (rating >= 4): {positives}; train {train.nnz}, test {test.nnz}; "
        f"{eval_users.size} test users; {threads} threads; {epochs} epochs; k={k}"
    )
    rows: list[dict[str, Any]] = []
    try:
        from lightfm import LightFM
    except ImportError:
        LightFM = None
        print("  lightfm: not installed")
    train_coo = _writable_coo(train.matrix)

    def run(name: str, features: bool, fit: Callable[[], Any], recs: Callable[[Any], np.ndarray]):
        fits, metrics = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            model = fit()
            fits.append(time.perf_counter() - t0)
            metrics.append(_ranking(recs(model), relevant, k))
        row = {"model": name, "genres": features, "fit_s": statistics.median(fits)}
        row["epoch_ms"] = 1000 * row["fit_s"] / epochs
        for m in metrics[0]:
            row[f"{m}@{k}"] = statistics.median(x[m] for x in metrics)
        rows.append(row)
        print(
            f"  {name:<28} genres={features!s:<5} fit {row['fit_s']:.3f} s  "
            f"P@10 {row['precision@10']:.4f}  NDCG@10 {row['ndcg@10']:.4f}"
        )

    for with_genres in (False, True):
        if LightFM is not None:
            feats = _writable_coo(lfm_features).tocsr() if with_genres else None
            run(
                "LightFM 1.17 (warp)",
                with_genres,
                lambda feats=feats: LightFM(
                    loss="warp", no_components=64, learning_rate=0.05, random_state=42
                ).fit(train_coo, item_features=feats, epochs=epochs, num_threads=threads),
                lambda m, feats=feats: _lightfm_topk(m, feats, train.matrix, eval_users, k),
            )
        run(
            "tastebud Hybrid (warp)",
            with_genres,
            lambda g=with_genres: Hybrid(
                factors=64,
                loss="warp",
                learning_rate=0.05,
                epochs=epochs,
                num_threads=threads,
                random_state=42,
            ).fit(train, item_features=genres if g else None, show_progress=False),
            lambda m: m.recommend_indices(eval_users, k)[0],
        )
    by = {(r["model"].split()[0], r["genres"]): r for r in rows}
    for r in rows:
        peer = by.get(("LightFM", r["genres"]))
        if peer is not None:
            r["speedup_vs_lightfm"] = peer["fit_s"] / r["fit_s"]
    print_table(
        f"ml-100k warm start: WARP, 64 factors, lr 0.05, {epochs} epochs, {threads} threads "
        f"(median of {args.repeats})",
        rows,
        [
            "model",
            "genres",
            "fit_s",
            "epoch_ms",
            "precision@10",
            "recall@10",
            "ndcg@10",
            "speedup_vs_lightfm",
        ],
    )

    # ---- cold start: 10% of the items never seen in training, ranked among themselves
    rng = np.random.default_rng(42)
    held = np.sort(rng.choice(n_items, n_items // 10, replace=False))
    is_held = np.zeros(n_items, dtype=bool)
    is_held[held] = True
    arrays = positives.to_arrays()
    col = positives.items.index(arrays["item"])
    keep = ~is_held[col]
    warm_items = positives.items.ids(np.flatnonzero(~is_held))
    cold_train = Interactions.from_arrays(
        arrays["user"][keep], arrays["item"][keep], user_ids=positives.users, item_ids=warm_items
    )
    held_matrix = positives.matrix[:, held]
    cold_users = np.flatnonzero(np.diff(held_matrix.indptr) > 0)
    cold_relevant = held_matrix[cold_users]
    held_genres = genres.matrix[held]
    held_ids = positives.items.ids(held)
    warm_genres = ml.item_features.align(cold_train.items)
    print(
        f"\ncold start: {held.size} items held out (seed 42), {cold_users.size} users with "
        f"positives among them; training on {cold_train.nnz} positives"
    )
    cold_rows: list[dict[str, Any]] = []

    def rank(name: str, scores: np.ndarray) -> None:
        from tastebud.search import topk

        recs = topk(np.ascontiguousarray(scores, dtype=np.float32), k=k)[0]
        row = {
            "model": name,
            **{f"{m}@{k}": v for m, v in _ranking(recs, cold_relevant, k).items()},
        }
        cold_rows.append(row)
        print(f"  {name:<44} NDCG@10 {row['ndcg@10']:.4f}")

    rank("random (seed 42)", rng.random((cold_users.size, held.size)))
    # popularity within genre: a cold item scores the mean training popularity of the warm
    # items sharing its genres (averaged over its genres)
    warm_pop = np.asarray(cold_train.item_counts(), dtype=np.float64)
    g_warm = warm_genres.matrix
    genre_pop = (g_warm.T @ warm_pop) / np.maximum(np.asarray(g_warm.sum(axis=0)).ravel(), 1)
    n_g = np.maximum(np.asarray(held_genres.sum(axis=1)).ravel(), 1)
    pop_in_genre = (held_genres @ genre_pop) / n_g
    rank("popularity within genre", np.tile(pop_in_genre, (cold_users.size, 1)))
    if LightFM is not None:
        n_warm = cold_train.n_items
        lfm_warm = sp.csr_matrix(
            sp.hstack([sp.identity(n_warm, format="csr"), g_warm]), dtype=np.float32
        )
        lfm_cold = sp.csr_matrix(
            sp.hstack([sp.csr_matrix((held.size, n_warm)), held_genres]), dtype=np.float32
        )
        lfm = LightFM(loss="warp", no_components=64, learning_rate=0.05, random_state=42)
        lfm.fit(
            _writable_coo(cold_train.matrix),
            item_features=_writable_coo(lfm_warm).tocsr(),
            epochs=epochs,
            num_threads=threads,
        )
        _ub, ue = lfm.get_user_representations()
        ib, ie = lfm.get_item_representations(_writable_coo(lfm_cold).tocsr())
        rank("LightFM 1.17 (identity + genres)", ue[cold_users] @ ie.T + ib[None, :])
    new_items = Features(held_genres, held_ids, genres.names)
    model = Hybrid(
        factors=64,
        loss="warp",
        learning_rate=0.05,
        epochs=epochs,
        num_threads=threads,
        random_state=42,
    )
    model.fit(cold_train, item_features=warm_genres, show_progress=False)
    users = cold_train.users.ids(cold_users)
    rank("tastebud Hybrid (identity + genres)", model.score_items(new_items, users))
    content = Hybrid(
        factors=64,
        loss="warp",
        learning_rate=0.05,
        epochs=epochs,
        num_threads=threads,
        random_state=42,
        identity_features=False,
    )
    content.fit(
        cold_train,
        user_features=Features.identity(cold_train.users, prefix="user="),
        item_features=warm_genres,
        show_progress=False,
    )
    rank("tastebud Hybrid (user identity, item genres)", content.score_items(new_items, users))
    print_table(
        f"ml-100k cold-start items: NDCG@{k} among the held-out items",
        cold_rows,
        ["model", "precision@10", "recall@10", "ndcg@10"],
    )
    save("hybrid_ml100k", {"args": vars(args), "warm": rows, "cold": cold_rows})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="bench", required=True)
    p = sub.add_parser("topk", help="blocked top-k vs implicit, faiss and numpy")
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--items", type=int, default=50_000)
    p.add_argument("--factors", type=int, default=64)
    p.add_argument("--seen", type=int, default=100, help="excluded items per user")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip-numpy", action="store_true")
    p.set_defaults(func=bench_topk)
    p = sub.add_parser("hybrid", help="Hybrid vs LightFM on ml-100k (warm and cold start)")
    p.add_argument("--data-dir", default="../shared/data/ml-100k")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--repeats", type=int, default=3)
    p.set_defaults(func=bench_hybrid)
    args = parser.parse_args(argv)
    print(json.dumps(machine_info()))
    args.func(args)


if __name__ == "__main__":
    main()
