"""Side-by-side benchmarks of tastebud against its peers, in one run, on the same data.

Usage::

    python benchmarks/compare_peers.py topk [--users 100000 --items 50000 --factors 64]
    python benchmarks/compare_peers.py topk --users 20000 --items 1000000
    python benchmarks/compare_peers.py distributed --scale 0.1   # Dask vs 1 process vs Spark ALS
    python benchmarks/compare_peers.py search              # both shapes, IP and L2 vs faiss
    python benchmarks/compare_peers.py content --data-dir ../shared/data
    python benchmarks/compare_peers.py all --data-dir ../shared/data
    python benchmarks/compare_peers.py item2vec --data-dir ../shared/data [--tune]
    python benchmarks/compare_peers.py als --data-dir ../shared/data [--scale 0.2] [--ials] [--memory]
    python benchmarks/compare_peers.py als-memory --recommend   # 10M shape: peak fit memory
    python benchmarks/compare_peers.py bpr --data-dir ../shared/data [--scale 0.2]
    python benchmarks/compare_peers.py rating --data-dir ../shared/data [--folds 5] [--seeds 3]
    python benchmarks/compare_peers.py hybrid --data-dir /work/shared/data/ml-100k

Each section prints a table (median of ``--repeats`` runs, ratio against tastebud) and the
results are written as JSON under ``benchmarks/results/``. Peers run in their best documented
configuration: implicit with BLAS limited to one thread (threadpoolctl), as implicit advises.
Peers that are not installed are reported as missing, never silently skipped.
"""

# ruff: noqa: B023  (benchmark closures are called inside the loop iteration that defines them)
from __future__ import annotations

import argparse
import itertools
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
        record("faiss IndexFlatIP", lambda: index.search(q, k), False, args.repeats)
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


# --------------------------------------------------------------------------- kNN / EASE
def _quiet_implicit() -> Any:
    import warnings

    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.simplefilter("ignore")  # implicit warns about its own internal COO -> CSR
    return ctx


def big_synthetic(n_users: int, n_items: int, nnz: int, seed: int = 42) -> sp.csr_matrix:
    """A fast binary users x items matrix with ~nnz entries: lognormal user activity, Zipf-like
    item popularity (p ~ (rank + 10)^-0.9). Used for the large-scale timing only
    (tastebud.data.datasets.synthetic is exact but too slow to generate 10M events here)."""
    rng = np.random.default_rng(seed)
    act = rng.lognormal(0.0, 0.9, n_users)
    counts = np.maximum(5, np.round(act / act.sum() * nnz * 1.02)).astype(np.int64)
    pop = (np.arange(n_items) + 10.0) ** -0.9
    pop /= pop.sum()
    perm = rng.permutation(n_items)
    cols = perm[rng.choice(n_items, size=int(counts.sum()), p=pop)]
    rows = np.repeat(np.arange(n_users), counts)
    m = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=(n_users, n_items))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def _implicit_split(name: str, args: argparse.Namespace) -> tuple[Any, Any, str]:
    from tastebud.data import Interactions, datasets, split

    if name == "synthetic":
        m = big_synthetic(args.syn_users, args.syn_items, args.syn_nnz)
        inter = Interactions.from_sparse(m)
        desc = f"synthetic {args.syn_users}x{args.syn_items}, nnz={m.nnz}"
    else:
        inter = datasets.load_movielens(Path(args.data_dir) / name).ratings.binarize()
        desc = name
    train, test = split.random_holdout(inter, test_fraction=0.2, random_state=42)
    return train, test, desc


def _topn_metrics(
    rec: np.ndarray, test: sp.csr_matrix, users: np.ndarray, k: int
) -> dict[str, float]:
    """precision@k = hits/k (as tastebud.metrics); NDCG@k binary, ideal over min(k, |test_u|)."""
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    prec, ndcg = [], []
    for r, u in enumerate(users):
        rel = set(test.indices[test.indptr[u] : test.indptr[u + 1]].tolist())
        hits = np.array([int(i) in rel for i in rec[r, :k]], dtype=np.float64)
        prec.append(hits.sum() / k)
        ndcg.append((hits * disc[: hits.size]).sum() / disc[: min(k, len(rel))].sum())
    return {"precision@10": float(np.mean(prec)), "ndcg@10": float(np.mean(ndcg))}


def bench_knn(args: argparse.Namespace) -> None:
    from tastebud import ItemKNN
    from tastebud.models.knn import sparse_similarity

    try:
        import implicit.nearest_neighbours as inn
    except ImportError:
        inn = None
        print("  implicit: not installed")
    all_rows: list[dict[str, Any]] = []
    identity: dict[str, Any] = {}
    for name in args.datasets:
        train, test, desc = _implicit_split(name, args)
        x = train.matrix
        users = np.flatnonzero(np.diff(test.matrix.indptr) > 0)
        print(f"\n# {desc}: train nnz {train.nnz}, {users.size} test users", flush=True)
        variants = [
            ("cosine", dict(similarity="cosine"), "CosineRecommender"),
            ("bm25", dict(similarity="dot", weighting="bm25"), "BM25Recommender"),
        ]
        for variant, params, peer in variants:
            for threads in args.thread_counts:
                rows_here: list[dict[str, Any]] = []

                def ours() -> Any:
                    return ItemKNN(neighbors=args.neighbors, num_threads=threads, **params).fit(
                        train
                    )

                t_fit, model = median_time(ours, args.repeats)
                t_rec, rec = median_time(
                    lambda m=model: m.recommend_indices(users, 10, num_threads=threads)[0],
                    args.repeats,
                )
                rows_here.append(
                    {
                        "data": desc,
                        "model": f"tastebud ItemKNN {variant}",
                        "threads": threads,
                        "fit_s": t_fit,
                        "recommend_all_s": t_rec,
                        **_topn_metrics(rec, test.matrix, users, 10),
                    }
                )
                if inn is not None:
                    cls = getattr(inn, peer)

                    def theirs() -> Any:
                        mdl = cls(K=args.neighbors, num_threads=threads)
                        ctx = _quiet_implicit()
                        try:
                            mdl.fit(x, show_progress=False)
                        finally:
                            ctx.__exit__(None, None, None)
                        return mdl

                    with threadpool_limits(1, "blas"):
                        t_fit_p, peer_model = median_time(theirs, args.repeats)
                        ux = x[users]
                        t_rec_p, out = median_time(
                            lambda: peer_model.recommend(
                                users, ux, N=10, filter_already_liked_items=True
                            ),
                            args.repeats,
                        )
                    rows_here.append(
                        {
                            "data": desc,
                            "model": f"implicit {peer} (BLAS 1 thread)",
                            "threads": threads,
                            "fit_s": t_fit_p,
                            "recommend_all_s": t_rec_p,
                            **_topn_metrics(out[0], test.matrix, users, 10),
                        }
                    )
                    rows_here[1]["fit_ratio"] = t_fit_p / t_fit
                    rows_here[1]["recommend_ratio"] = t_rec_p / t_rec
                    if name == "ml-100k" and threads == args.thread_counts[0]:
                        identity[variant] = neighbour_identity(
                            sparse_similarity(
                                x.T,
                                args.neighbors,
                                exclude_self=False,
                                num_threads=threads,
                                **params,
                            ),
                            peer_model.similarity.tocsr(),
                        )
                        print(
                            f"  neighbour-list identity vs implicit ({variant}): {identity[variant]}"
                        )
                for r in rows_here:
                    print(
                        f"  {r['model']:<45} thr={threads} fit {r['fit_s']:.3f}s "
                        f"rec {r['recommend_all_s']:.3f}s P@10 {r['precision@10']:.4f} "
                        f"NDCG@10 {r['ndcg@10']:.4f}",
                        flush=True,
                    )
                all_rows.extend(rows_here)
    print_table(
        f"ItemKNN (K={args.neighbors}) vs implicit: median of {args.repeats}; ratio = implicit / tastebud",
        all_rows,
        [
            "data",
            "model",
            "threads",
            "fit_s",
            "fit_ratio",
            "recommend_all_s",
            "recommend_ratio",
            "precision@10",
            "ndcg@10",
        ],
    )
    save("knn_itemknn", {"args": vars(args), "rows": all_rows, "identity_ml100k": identity})


def neighbour_identity(ours: sp.csr_matrix, theirs: sp.csr_matrix) -> dict[str, float]:
    """Fractions of rows whose neighbour lists agree: as sets, and up to ties at the k-th value
    (sorted similarity values equal within 1e-5 relative, and the same set above the k-th)."""
    n = ours.shape[0]
    same_set = same_upto_ties = 0
    for i in range(n):
        a_idx, a_val = ours[i].indices, ours[i].data
        b = theirs[i]
        keep = b.data != 0
        b_idx, b_val = b.indices[keep], b.data[keep]
        if set(a_idx.tolist()) == set(b_idx.tolist()):
            same_set += 1
            same_upto_ties += 1
            continue
        av, bv = np.sort(a_val)[::-1], np.sort(b_val)[::-1].astype(np.float32)
        if av.size == bv.size and np.allclose(av, bv, rtol=1e-5, atol=1e-7):
            kth = av[-1] * (1 + 1e-5)
            if set(a_idx[a_val > kth].tolist()) == set(b_idx[b_val > kth].tolist()):
                same_upto_ties += 1
    return {"same_set": same_set / n, "same_up_to_ties": same_upto_ties / n, "rows": n}


def bench_knn_rating(args: argparse.Namespace) -> None:
    from tastebud import KNNRating
    from tastebud.data import datasets, split

    ratings = datasets.load_movielens(Path(args.data_dir) / "ml-100k").ratings
    folds = split.kfold(ratings, 5, random_state=42)
    try:
        import pandas as pd
        from surprise import Dataset, KNNBaseline, Reader
    except ImportError:
        Dataset = None
        print("  surprise: not installed")
    rows: list[dict[str, Any]] = []
    for f, (train, test) in enumerate(folds):
        tu = test.users.ids(test.row_indices())
        ti = test.items.ids(test.matrix.indices)
        truth = test.matrix.data.astype(np.float64)
        t0 = time.perf_counter()
        model = KNNRating(
            k=40, similarity="pearson_baseline", estimator="baseline", num_threads=args.threads
        ).fit(train)
        t_fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        pred = model.predict(tu, ti)
        t_pred = time.perf_counter() - t0
        row = {
            "fold": f,
            "tb_fit_s": t_fit,
            "tb_predict_s": t_pred,
            "tb_rmse": float(np.sqrt(np.mean((pred - truth) ** 2))),
            "tb_mae": float(np.mean(np.abs(pred - truth))),
        }
        if Dataset is not None:
            tr = train.to_frame() if hasattr(train, "to_frame") else None
            df = pd.DataFrame(
                {
                    "u": train.users.ids(train.row_indices()),
                    "i": train.items.ids(train.matrix.indices),
                    "r": train.matrix.data.astype(np.float64),
                }
            )
            del tr
            trainset = Dataset.load_from_df(df, Reader(rating_scale=(1, 5))).build_full_trainset()
            algo = KNNBaseline(
                k=40, sim_options={"name": "pearson_baseline", "user_based": False}, verbose=False
            )
            t0 = time.perf_counter()
            algo.fit(trainset)
            s_fit = time.perf_counter() - t0
            testset = list(zip(tu.tolist(), ti.tolist(), truth.tolist(), strict=True))
            t0 = time.perf_counter()
            preds = algo.test(testset)
            s_pred = time.perf_counter() - t0
            est = np.array([p.est for p in preds])
            row.update(
                surprise_fit_s=s_fit,
                surprise_predict_s=s_pred,
                surprise_rmse=float(np.sqrt(np.mean((est - truth) ** 2))),
                surprise_mae=float(np.mean(np.abs(est - truth))),
                max_abs_pred_diff=float(np.max(np.abs(est - pred))),
            )
        print(f"  fold {f}: {row}", flush=True)
        rows.append(row)
    summary = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "fold"}
    if "surprise_fit_s" in summary:
        summary["speedup_total"] = (summary["surprise_fit_s"] + summary["surprise_predict_s"]) / (
            summary["tb_fit_s"] + summary["tb_predict_s"]
        )
    print_table(
        "KNNRating vs Surprise KNNBaseline (item-based, pearson_baseline, k=40), ml-100k "
        f"5-fold seed 42, {args.threads} threads; per-fold means",
        [summary],
        list(summary),
    )
    save("knn_rating_ml100k", {"args": vars(args), "folds": rows, "mean": summary})


def bench_ease(args: argparse.Namespace) -> None:
    import tracemalloc

    from tastebud import EASE, ItemKNN, RP3beta
    from tastebud.models.ease import ease_memory_gb

    rows: list[dict[str, Any]] = []
    for name in args.datasets:
        train, test, desc = _implicit_split(name, args)
        users = np.flatnonzero(np.diff(test.matrix.indptr) > 0)
        models = {
            f"EASE(lambda={args.regularization})": lambda: EASE(
                regularization=args.regularization, num_threads=args.threads
            ),
            "ItemKNN(cosine, K=100)": lambda: ItemKNN(neighbors=100, num_threads=args.threads),
            "RP3beta(K=100, a=1, b=0.3)": lambda: RP3beta(
                neighbors=100, beta=0.3, num_threads=args.threads
            ),
        }
        for label, factory in models.items():
            tracemalloc.start()
            with threadpool_limits(args.threads, "blas"):
                t_fit, model = median_time(lambda f=factory: f().fit(train), args.repeats)
                _, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
                t_rec, rec = median_time(
                    lambda m=model: m.recommend_indices(users, 10, num_threads=args.threads)[0], 1
                )
            row = {
                "data": desc,
                "model": label,
                "fit_s": t_fit,
                "recommend_all_s": t_rec,
                "fit_peak_python_gb": peak / 1e9,
                **_topn_metrics(rec, test.matrix, users, 10),
            }
            if label.startswith("EASE"):
                row["ease_memory_estimate_gb"] = ease_memory_gb(train.n_items, "float32")
            print(f"  {row}", flush=True)
            rows.append(row)
    print_table(
        f"EASE vs ItemKNN / RP3beta, {args.threads} threads (BLAS {args.threads})",
        rows,
        [
            "data",
            "model",
            "fit_s",
            "recommend_all_s",
            "fit_peak_python_gb",
            "precision@10",
            "ndcg@10",
        ],
    )
    save("ease", {"args": vars(args), "rows": rows})


# --------------------------------------------------------------------------- item2vec
def _next_item_metrics(model: Any, test: Any) -> tuple[float, float]:
    """hit@10 and MRR@10 of each test user's single held-out item (train items excluded)."""
    users = np.flatnonzero(test.user_counts() > 0)
    truth = np.asarray(test.matrix.indices)[np.asarray(test.matrix.indptr)[users]]
    idx, _ = model.recommend_indices(users, 10, exclude_seen=True)
    hit = idx == truth[:, None]
    found = hit.any(axis=1)
    rank = np.argmax(hit, axis=1)
    return float(found.mean()), float(np.where(found, 1.0 / (rank + 1), 0.0).mean())


def _with_vectors(model: Any, vectors: np.ndarray, context: np.ndarray, **params: Any) -> Any:
    """A copy of a fitted Item2Vec whose input and output vectors are replaced (to score
    gensim's vectors with exactly the same ranking code)."""
    import copy

    other = copy.copy(model)
    other.item_vectors_ = np.ascontiguousarray(vectors, dtype=np.float32)
    other.context_vectors_ = np.ascontiguousarray(context, dtype=np.float32)
    return other.set_params(**params)


def _gensim_vectors(w2v: Any, n_items: int, f: int) -> tuple[np.ndarray, np.ndarray]:
    """gensim's input (``wv.vectors``) and output (``syn1neg``) vectors in item-index order."""
    vin = np.zeros((n_items, f), dtype=np.float32)
    vout = np.zeros((n_items, f), dtype=np.float32)
    keys = np.array([int(k) for k in w2v.wv.index_to_key], dtype=np.int64)
    vin[keys] = w2v.wv.vectors
    vout[keys] = w2v.syn1neg
    return vin, vout


#: (row label, scoring, popularity_weight): every row ranks both libraries' vectors alike
_I2V_SCORINGS = (
    ("input cosine, no blend", "input", 0.0),
    ("input cosine + blend 0.5", "input", 0.5),
    ("context (default), no blend", "context", 0.0),
    ("context + blend 0.5 (tastebud default)", "context", 0.5),
)


def bench_item2vec(args: argparse.Namespace) -> None:
    """Item2Vec vs gensim Word2Vec (skip-gram, negative sampling) on MovieLens sequences.

    Protocol: ratings binarised; each user's items ordered by timestamp (ties by item index);
    leave-last-out for users with >= 3 items. Both libraries train on the same training
    sequences with the same hyperparameters and thread count, once per seed ``0 ..
    repeats-1``; train time is the median (tastebud's first, JIT-compiling fit is a separate
    warm-up). Quality is the mean and sample standard deviation over the seeds; each
    library's vectors are ranked by the same code under each scoring of ``_I2V_SCORINGS``
    (seen items excluded): cosine of the recency-weighted mean of the user's last
    ``history`` unit input vectors with each item's input or output (context) vector, with
    and without the popularity blend.
    """
    from tastebud import Item2Vec, Popularity
    from tastebud.data import Sequences, datasets, split

    try:
        from gensim.models import Word2Vec
    except ImportError:
        Word2Vec = None
        print("  gensim: not installed")
    hp = {"factors": 64, "window": 5, "negatives": 5, "subsample": 1e-3, "epochs": 10}
    if args.update != "pair":
        hp["update"] = args.update
    rows: list[dict[str, Any]] = []
    for name in args.datasets:
        inter = datasets.load_movielens(Path(args.data_dir) / name).ratings.binarize()
        train, test = split.leave_last_out(inter, min_interactions=3)
        if args.tune:  # choose the scoring defaults on a validation split of train only
            train, test = split.leave_last_out(train, min_interactions=3)
        seqs = Sequences.from_interactions(train)
        sentences = [[str(i) for i in s] for s in seqs]
        n_items = train.n_items
        print(
            f"{name}: {inter}; {len(seqs)} sequences, {seqs.n_events} events; "
            f"{int((test.user_counts() > 0).sum())} held-out items"
        )
        t0 = time.perf_counter()
        Item2Vec(**hp, num_threads=args.threads, random_state=0).fit(train)
        print(
            f"  tastebud warm-up fit (incl. Numba JIT of the parallel kernel): "
            f"{time.perf_counter() - t0:.2f} s"
        )
        ours_t, gens_t = [], []
        quality: dict[tuple[str, str], list[tuple[float, float]]] = {}
        pop = Popularity().fit(train)
        quality[("popularity", "–")] = [_next_item_metrics(pop, test)]
        scorings = (
            [
                (f"{sc} decay={d} pw={w}", sc, w, d)
                for sc in ("input", "context")
                for d in (0.3, 0.5, 0.8)
                for w in (0.0, 0.25, 0.5, 0.75, 1.0)
            ]
            if args.tune
            else [(label, sc, w, 0.5) for label, sc, w in _I2V_SCORINGS]
        )
        for seed in range(args.repeats):
            t0 = time.perf_counter()
            model = Item2Vec(**hp, num_threads=args.threads, random_state=seed).fit(train)
            ours_t.append(time.perf_counter() - t0)
            models = [("tastebud Item2Vec", model)]
            if Word2Vec is not None and not args.tune:
                t0 = time.perf_counter()
                w2v = Word2Vec(
                    sentences, sg=1, negative=5, vector_size=64, window=5, min_count=1,
                    epochs=10, sample=1e-3, workers=args.threads, seed=seed,
                )  # fmt: skip
                gens_t.append(time.perf_counter() - t0)
                models.append(
                    ("gensim Word2Vec", _with_vectors(model, *_gensim_vectors(w2v, n_items, 64)))
                )
            for label, sc, w, d in scorings:
                for lib, m in models:
                    quality.setdefault((label, lib), []).append(
                        _next_item_metrics(
                            m.set_params(scoring=sc, popularity_weight=w, recency_decay=d), test
                        )
                    )
        t_ours = statistics.median(ours_t)
        t_gens = statistics.median(gens_t) if gens_t else None
        for (scoring, method), values in quality.items():
            hits = [v[0] for v in values]
            mrrs = [v[1] for v in values]
            train_s = (
                t_ours
                if method.startswith("tastebud")
                else (t_gens if method.startswith("gensim") else None)
            )
            rows.append({
                "data": name, "scoring": scoring, "method": method, "train_s": train_s,
                "speedup_vs_gensim": (t_gens / train_s) if (t_gens and train_s) else None,
                "hit@10": statistics.mean(hits),
                "hit_sd": statistics.stdev(hits) if len(hits) > 1 else 0.0,
                "mrr@10": statistics.mean(mrrs),
                "mrr_sd": statistics.stdev(mrrs) if len(mrrs) > 1 else 0.0,
                "seeds": len(values),
            })  # fmt: skip
        print(
            f"  train times tastebud {[round(t, 2) for t in ours_t]}, "
            f"gensim {[round(t, 2) for t in gens_t]}"
        )
    title = (
        f"next-item (leave-last-out{', VALIDATION split of train' if args.tune else ''}): "
        f"SGNS f=64 window=5 neg=5 epochs=10 update={args.update}, {args.threads} threads, "
        f"train time median / quality mean and sd of {args.repeats} seeds"
    )
    cols = ["data", "scoring", "method", "train_s", "speedup_vs_gensim", "hit@10", "hit_sd"]
    print_table(title, rows, [*cols, "mrr@10", "mrr_sd"])
    suffix = ("_tune" if args.tune else "") + ("_window" if args.update == "window" else "")
    save(f"item2vec{suffix}", {"args": vars(args), "rows": rows})


# --------------------------------------------------------------------------- ALS / BPR
def _mf_splits(args: argparse.Namespace) -> list[tuple[str, Any, Any]]:
    """(label, train, test) per data set: binarised, per-user 20% holdout, seed 42."""
    from tastebud.data import datasets, split

    out = []
    for name in args.datasets:
        if name == "synthetic":
            s = args.scale
            n_users, n_items = int(200_000 * s), int(50_000 * s)
            t0 = time.perf_counter()
            data = datasets.synthetic(
                n_users=n_users, n_items=n_items, n_interactions=int(10_000_000 * s),
                random_state=42,
            )  # fmt: skip
            inter = data.interactions.binarize()
            label = f"synthetic {n_users}x{n_items} (scale {s})"
            print(f"generated {label} in {time.perf_counter() - t0:.1f}s")
        elif name == "planted":
            # O(nnz) planted-genre generator of bench_distributed: the full 10M scale in
            # seconds (datasets.synthetic samples a dense utility, too slow at scale 1)
            import bench_distributed
            from tastebud.data import Interactions

            s = args.scale
            n_users, n_items = int(200_000 * s), int(50_000 * s)
            t0 = time.perf_counter()
            matrix = bench_distributed.fast_planted(n_users, n_items, int(10_000_000 * s))
            inter = Interactions.from_sparse(matrix).binarize()
            label = f"planted {n_users}x{n_items} (scale {s})"
            print(f"generated {label} ({inter.nnz} entries) in {time.perf_counter() - t0:.1f}s")
        else:
            path = Path(args.data_dir) / name
            if not path.exists():
                print(f"{name}: not found under {args.data_dir}, skipped")
                continue
            inter = datasets.load_movielens(path).ratings.binarize()
            label = name
        train, test = split.random_holdout(inter, test_fraction=0.2, random_state=42)
        out.append((label, train, test))
    return out


def _mf_ranking(recommended: np.ndarray, test: Any, users: np.ndarray) -> dict[str, float]:
    from tastebud.metrics import ranking_metrics

    values = ranking_metrics(
        recommended.astype(np.int64), test.matrix[users], k=10,
        metrics=("precision", "recall", "ndcg", "map"),
    )  # fmt: skip
    return {f"{m}@10": float(np.nanmean(v)) for m, v in values.items()}


def _tastebud_mf(args: argparse.Namespace, family: str, **extra: Any) -> Any:
    from tastebud import ALS, BPR

    common = dict(factors=64, iterations=args.iterations, random_state=42, num_threads=args.threads)
    if family == "als":
        params = dict(regularization=0.05, alpha=1.0, cg_steps=3, **common)
        params.update(extra)
        return ALS(**params)
    return BPR(learning_rate=args.learning_rate, regularization=0.01, **common, **extra)


def _implicit_mf(args: argparse.Namespace, family: str) -> Any:
    if family == "als":
        from implicit.cpu.als import AlternatingLeastSquares

        # implicit's confidence is alpha * r, tastebud's 1 + alpha * r: --implicit-alpha 2
        # gives implicit the weighting tastebud's alpha 1 means (default: the same value).
        return AlternatingLeastSquares(
            factors=64, regularization=0.05, iterations=args.iterations,
            alpha=getattr(args, "implicit_alpha", None) or 1.0,
            calculate_training_loss=False, num_threads=args.threads, random_state=42,
        )  # fmt: skip
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    lr = getattr(args, "implicit_learning_rate", None)
    return BayesianPersonalizedRanking(
        factors=64, learning_rate=args.learning_rate if lr is None else lr, regularization=0.01,
        iterations=args.iterations, num_threads=args.threads, random_state=42,
    )  # fmt: skip


def _mf_run(ctx: dict[str, Any], name: str, make: Callable[[], Any], is_implicit: bool) -> None:
    """Fit ``repeats`` times (median fit and per-iteration time), then recommend for all users."""
    from tastebud.search import blas_single_thread

    args, users, seen = ctx["args"], ctx["users"], ctx["seen"]
    fits, per_iter = [], []
    model = None
    for _ in range(args.repeats):
        iters: list[float] = []

        def cb(it: int, seconds: float, *_: Any, iters: list[float] = iters) -> None:
            iters.append(seconds)

        if is_implicit:
            with threadpool_limits(1, "blas"):
                model = make()
                t0 = time.perf_counter()
                model.fit(seen, show_progress=False, callback=cb)
        else:
            model = make()
            t0 = time.perf_counter()
            model.fit(ctx["train"], callback=cb)
        fits.append(time.perf_counter() - t0)
        per_iter.append(statistics.median(iters))
    t0 = time.perf_counter()
    if is_implicit:
        with threadpool_limits(1, "blas"):
            recs, _ = model.recommend(users, seen[users], N=10, filter_already_liked_items=True)
    else:
        with blas_single_thread():
            recs, _ = model.recommend_indices(users, 10, num_threads=args.threads)
    rec_time = time.perf_counter() - t0
    row = {
        "library": name,
        "fit_s": statistics.median(fits),
        "iter_s": statistics.median(per_iter),
        "recommend_all_s": rec_time,
        **_mf_ranking(recs, ctx["test"], users),
    }
    if ctx["family"] == "bpr":
        row["samples_per_s"] = ctx["nnz"] / row["iter_s"]
    ctx["rows"].append(row)
    print(f"  {ctx['label']:<28} {name:<40} fit {row['fit_s']:.3f}s iter {row['iter_s']:.4f}s "
          f"rec {rec_time:.2f}s ndcg@10 {row['ndcg@10']:.4f}")  # fmt: skip


def _mf_compare(args: argparse.Namespace, family: str) -> None:
    threads = args.threads
    gemm = gemm_gflops(threads, 3)
    print(f"GEMM float32 with {threads} threads: {gemm}")
    results = []
    for label, train, test in _mf_splits(args):
        nnz = train.nnz
        ctx: dict[str, Any] = {
            "args": args, "family": family, "label": label, "train": train, "test": test,
            "users": np.flatnonzero(test.user_counts() > 0),
            "seen": train.matrix.copy(),  # implicit needs a writeable matrix
            "nnz": nnz, "rows": [],
        }  # fmt: skip
        rows = ctx["rows"]
        _mf_run(ctx, "tastebud", lambda: _tastebud_mf(args, family), False)
        if family == "als" and args.ials:
            _mf_run(
                ctx,
                f"tastebud iALS (w0={args.ials_w0}, nu=1, reg={args.ials_reg})",
                lambda: _tastebud_mf(
                    args, family, unobserved_weight=args.ials_w0, regularization_exponent=1.0,
                    regularization=args.ials_reg,
                ),
                False,
            )  # fmt: skip
        try:
            import implicit  # noqa: F401

            _mf_run(ctx, "implicit 0.7 (BLAS 1 thread)", lambda: _implicit_mf(args, family), True)
        except ImportError:
            print("  implicit: not installed")
        base = rows[0]
        for r in rows:
            r["iter_speedup_vs_tastebud"] = r["iter_s"] / base["iter_s"]
            r["fit_speedup_vs_tastebud"] = r["fit_s"] / base["fit_s"]
        extra: dict[str, Any] = {}
        if family == "als":
            f, steps = 64, 3
            n_rows = train.n_users + train.n_items
            # Per iteration (both halves): each CG pass over a row's entries is a dot and an
            # axpy (4 f flops per entry), 1 + steps passes; as many f x f symv (2 f^2 each)
            # per row; plus the two Gram matrices (2 f^2 per row of the fixed side).
            flops = (4 * f * nnz * 2 + 2 * f * f * n_rows) * (1 + steps) + 2 * f * f * n_rows
            extra = {
                "cg_gflop_per_iteration": flops / 1e9,
                "gemm_bound_iter_s": flops / 1e9 / gemm["square_4096"],
                "tastebud_gflops": flops / 1e9 / base["iter_s"],
                "pct_of_gemm": 100 * flops / 1e9 / base["iter_s"] / gemm["square_4096"],
            }
            print(f"  CG flops/iteration {flops / 1e9:.3f} GFLOP; GEMM-bound limit "
                  f"{extra['gemm_bound_iter_s']:.4f}s; tastebud {extra['tastebud_gflops']:.1f} "
                  f"GFLOP/s = {extra['pct_of_gemm']:.0f}% of GEMM")  # fmt: skip
        cols = ["library", "fit_s", "iter_s", "recommend_all_s", "precision@10", "recall@10",
                "ndcg@10", "map@10", "iter_speedup_vs_tastebud", "fit_speedup_vs_tastebud"]  # fmt: skip
        if family == "bpr":
            cols.insert(3, "samples_per_s")
        print_table(
            f"{family.upper()} on {label}: train nnz {nnz}, {args.iterations} iterations, "
            f"{threads} threads", rows, cols,
        )  # fmt: skip
        if family == "als" and getattr(args, "memory", False):
            extra["peak_memory"] = _als_memory(train, args)
        results.append({"data": label, "nnz": nnz, "rows": rows, **extra})
    save(family, {"args": vars(args), "gemm_gflops": gemm, "results": results})


def _memory_mb() -> dict[str, float]:
    """Current (VmRSS) and peak (VmHWM) resident memory of this process, in MiB."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


def _reset_peak() -> dict[str, float]:
    """Collects garbage, resets VmHWM to the current RSS where Linux allows it, returns both."""
    import gc

    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")
        reset = 1.0
    except OSError:
        reset = 0.0
    return {**_memory_mb(), "reset": reset}


def _als_memory_worker(args: argparse.Namespace) -> None:
    """Subprocess: load the training CSR, fit one library, print peak memory as JSON.

    The baseline is the resident size after imports and loading the training matrix (one
    copy of it is held by either library's input); the high-water mark is reset there
    (``/proc/self/clear_refs``) and the fit's peak is VmHWM after the fit minus the baseline.
    """

    matrix = sp.load_npz(args.matrix).tocsr()
    matrix.sort_indices()
    iters: list[float] = []
    if args.library == "tastebud":
        from tastebud import ALS
        from tastebud.data import Interactions

        inter = Interactions.from_sparse(matrix)
        matrix = None  # the model's input holds the matrix (as implicit's does)
        model = ALS(
            factors=64, regularization=0.05, alpha=1.0, iterations=args.iterations, cg_steps=3,
            random_state=42, num_threads=args.threads,
        )  # fmt: skip
        before = _reset_peak()
        t0 = time.perf_counter()
        model.fit(inter, callback=lambda it, sec, *_: iters.append(sec))
    else:
        from implicit.cpu.als import AlternatingLeastSquares

        model = AlternatingLeastSquares(
            factors=64, regularization=0.05, alpha=1.0, iterations=args.iterations,
            calculate_training_loss=False, num_threads=args.threads, random_state=42,
        )  # fmt: skip
        before = _reset_peak()
        t0 = time.perf_counter()
        with threadpool_limits(1, "blas"):
            model.fit(matrix, show_progress=False, callback=lambda it, sec, *_: iters.append(sec))
    fit_s = time.perf_counter() - t0
    after = _memory_mb()
    rec_s = None
    if args.recommend:  # every user, top 10, seen items excluded (after the peak was read)
        t0 = time.perf_counter()
        if args.library == "tastebud":
            from tastebud.search import blas_single_thread

            with blas_single_thread():
                model.recommend_indices(np.arange(inter.n_users), 10, num_threads=args.threads)
        else:
            users = np.arange(matrix.shape[0])
            with threadpool_limits(1, "blas"):
                model.recommend(users, matrix, N=10, filter_already_liked_items=True)
        rec_s = time.perf_counter() - t0
    print(json.dumps({
        "library": args.library, "fit_s": fit_s, "iter_s": statistics.median(iters),
        "baseline_rss_mib": before["VmRSS"],
        "peak_hwm_mib": after["VmHWM"], "fit_peak_mib": after["VmHWM"] - before["VmRSS"],
        "hwm_reset": before["reset"], "recommend_all_s": rec_s,
    }))  # fmt: skip


def _als_memory(train: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Peak memory of each library's fit, each in a fresh interpreter on the same matrix."""
    import subprocess
    import tempfile

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.npz"
        sp.save_npz(path, train.matrix.tocsr(), compressed=False)
        for lib in ("tastebud", "implicit"):
            cmd = [sys.executable, __file__, "_als_memory_worker", str(path), lib,
                   "--threads", str(args.threads), "--iterations", str(args.iterations)]  # fmt: skip
            if getattr(args, "recommend", False):
                cmd.append("--recommend")
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            lines = [ln for ln in done.stdout.splitlines() if ln.startswith('{"library"')]
            if done.returncode != 0 or not lines:
                print(f"  memory worker for {lib} failed: {done.stderr[-2000:]}")
                continue
            out[lib] = json.loads(lines[-1])
            r = out[lib]
            if r.get("recommend_all_s") is not None:
                print(f"  {lib:<9} recommend-all {r['recommend_all_s']:.1f}s")
            print(f"  peak memory {lib:<9} fit {r['fit_s']:.1f}s ({r['iter_s']:.3f}s/it): baseline {r['baseline_rss_mib']:.0f} "
                  f"MiB, peak {r['peak_hwm_mib']:.0f} MiB, fit adds {r['fit_peak_mib']:.0f} MiB")  # fmt: skip
    if "tastebud" in out and "implicit" in out and out["implicit"]["fit_peak_mib"] > 0:
        out["ratio_fit_peak"] = out["tastebud"]["fit_peak_mib"] / out["implicit"]["fit_peak_mib"]
        out["ratio_total_peak"] = out["tastebud"]["peak_hwm_mib"] / out["implicit"]["peak_hwm_mib"]
        print(f"  fit peak memory tastebud / implicit: {out['ratio_fit_peak']:.2f} "
              f"(whole process {out['ratio_total_peak']:.2f})")  # fmt: skip
    return out


def bench_als_memory(args: argparse.Namespace) -> None:
    """Peak memory (and speed) of both ALS fits on a random binary matrix of a given shape.

    ``datasets.synthetic`` at full scale samples a dense users x items utility (1e10 draws),
    which takes far longer than the fits; memory depends on the shape, the number of entries
    and the row lengths, not on planted structure, so this uses Zipf-popular items (exponent
    1) and heavy-tailed user activity drawn directly. Quality is meaningless on it.
    """
    from tastebud.data import Interactions

    rng = np.random.default_rng(42)
    n, m, nnz = args.users, args.items, args.nnz
    t0 = time.perf_counter()
    activity = rng.pareto(1.5, n) + 1.0
    popularity = 1.0 / np.arange(1, m + 1)
    draws = nnz
    for _ in range(3):  # repeated (user, item) draws collapse: draw more until ~nnz remain
        counts = np.minimum(np.maximum(1, np.round(activity / activity.sum() * draws)), m // 2)
        rows = np.repeat(np.arange(n), counts.astype(np.int64))
        cols = rng.choice(m, rows.size, p=popularity / popularity.sum())
        matrix = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=(n, m))
        matrix.sum_duplicates()
        if matrix.nnz >= 0.98 * nnz:
            break
        draws = int(draws * nnz / matrix.nnz)
    matrix.data[:] = 1.0
    inter = Interactions.from_sparse(matrix)
    print(f"random {n}x{m} matrix, {inter.nnz} entries, in {time.perf_counter() - t0:.1f}s")
    out = _als_memory(inter, args)
    save(f"als_memory_{n}x{m}", {"args": vars(args), "nnz": inter.nnz, "memory": out})


def bench_als(args: argparse.Namespace) -> None:
    _mf_compare(args, "als")


def bench_bpr(args: argparse.Namespace) -> None:
    _mf_compare(args, "bpr")


# --------------------------------------------------------------------------- rating
def _rating_models(threads: int) -> list[tuple[str, str | None, Callable[[int], Any], Any]]:
    """(model, Surprise peer name, tastebud factory of a seed, Surprise class) at Surprise's
    defaults."""
    from tastebud import SVD, Baseline, ExplicitALS, SVDpp

    try:
        import surprise
    except ImportError:
        surprise = None

    def peer(name: str) -> Any:
        return None if surprise is None else getattr(surprise, name)

    return [
        ("Baseline", "BaselineOnly", lambda seed: Baseline(), peer("BaselineOnly")),
        ("SVD", "SVD", lambda seed: SVD(random_state=seed), peer("SVD")),
        (
            f"SVD ({threads} threads, DSGD)",
            "SVD",
            lambda seed: SVD(random_state=seed, num_threads=threads),
            None,
        ),
        # The uniform-shuffle order (order="ratings"), the default until user-major lanes.
        ("SVD order=ratings", "SVD", lambda seed: SVD(random_state=seed, order="ratings"), None),
        (
            f"SVD order=ratings ({threads} threads, DSGD)",
            "SVD",
            lambda seed: SVD(random_state=seed, num_threads=threads, order="ratings"),
            None,
        ),
        ("SVDpp", "SVDpp", lambda seed: SVDpp(random_state=seed), peer("SVDpp")),
        ("ExplicitALS", "SVD", lambda seed: ExplicitALS(random_state=seed), None),
        (
            f"ExplicitALS ({threads} threads)",
            "SVD",
            lambda seed: ExplicitALS(random_state=seed, num_threads=threads),
            None,
        ),
    ]


def bench_rating(args: argparse.Namespace) -> None:
    """5-fold CV of the rating rows (seed 42): RMSE/MAE/fit/predict vs scikit-surprise.

    Every model and its Surprise peer are fitted once per fold and model seed (random_state
    0, ..., seeds - 1: one seed's RMSE moves by about 0.0015 on ml-100k, as much as the
    0.002 goal); RMSE/MAE are means over folds and seeds, times are medians over all fits.
    Surprise's SVDpp (minutes per data set) runs with the first seed only."""
    from tastebud.data import datasets, split

    try:
        import pandas as pd
        from surprise import Dataset, Reader
    except ImportError:
        print("  scikit-surprise: not installed (pip install scikit-surprise)")
        Dataset = None
    all_rows: list[dict[str, Any]] = []
    for name in args.datasets:
        ml = datasets.load_movielens(Path(args.data_dir) / name)
        folds = split.kfold(ml.ratings, 5, random_state=42)[: args.folds]
        scale = (float(ml.ratings.matrix.data.min()), float(ml.ratings.matrix.data.max()))
        print(f"\n{name}: {ml.ratings}, scale {scale}, {len(folds)} of 5 folds (seed 42)")
        models = _rating_models(args.threads)
        # Warm-up: load (or compile) every Numba kernel once, outside the timings.
        warm = folds[0][0]
        for _, _, make, _ in models:
            model = make(0)
            if "epochs" in model.get_params():
                model.set_params(epochs=1)
            model.fit(warm)
        per_model: dict[str, dict[str, list[float]]] = {}

        def add(model: str, key: str, value: float, store: dict = per_model) -> None:
            store.setdefault(model, {}).setdefault(key, []).append(value)

        for f, (train, test) in enumerate(folds):
            a_train, a_test = train.to_arrays(), test.to_arrays()
            truth = a_test["weight"].astype(np.float64)
            trainset = testset = None
            if Dataset is not None:
                frame = pd.DataFrame(
                    {"u": a_train["user"], "i": a_train["item"], "r": a_train["weight"]}
                )
                trainset = Dataset.load_from_df(frame, Reader(rating_scale=scale))
                trainset = trainset.build_full_trainset()
                testset = list(
                    zip(
                        a_test["user"].tolist(),
                        a_test["item"].tolist(),
                        truth.tolist(),
                        strict=True,
                    )
                )
            for seed, (label, peer_name, make, peer_cls) in itertools.product(
                range(args.seeds), models
            ):
                model = make(seed)
                t0, c0 = time.perf_counter(), time.process_time()
                model.fit(train)
                add(label, "fit_s", time.perf_counter() - t0)
                add(label, "fit_cpu_s", time.process_time() - c0)
                t0 = time.perf_counter()
                pred = model.predict(a_test["user"], a_test["item"]).astype(np.float64)
                add(label, "predict_s", time.perf_counter() - t0)
                add(label, "rmse", float(np.sqrt(np.mean((pred - truth) ** 2))))
                add(label, "mae", float(np.mean(np.abs(pred - truth))))
                if peer_cls is None or trainset is None:
                    continue
                if peer_name == "SVDpp" and (name not in args.svdpp_datasets or seed > 0):
                    continue
                peer = peer_cls(random_state=seed) if peer_name != "BaselineOnly" else peer_cls()
                plabel = f"surprise {peer_name}"
                t0, c0 = time.perf_counter(), time.process_time()
                peer.fit(trainset)
                add(plabel, "fit_s", time.perf_counter() - t0)
                add(plabel, "fit_cpu_s", time.process_time() - c0)
                t0 = time.perf_counter()
                preds = peer.test(testset)
                add(plabel, "predict_s", time.perf_counter() - t0)
                est = np.array([p.est for p in preds])
                add(plabel, "rmse", float(np.sqrt(np.mean((est - truth) ** 2))))
                add(plabel, "mae", float(np.mean(np.abs(est - truth))))
            print(f"  fold {f + 1} done")
        rows = []
        for label, vals in per_model.items():
            rows.append(
                {
                    "data": name,
                    "model": label,
                    "rmse": statistics.fmean(vals["rmse"]),
                    "mae": statistics.fmean(vals["mae"]),
                    "fit_s": statistics.median(vals["fit_s"]),
                    "fit_cpu_s": statistics.median(vals["fit_cpu_s"]),
                    "predict_s": statistics.median(vals["predict_s"]),
                    "fits": len(vals["rmse"]),
                }
            )
        by_label = {r["model"]: r for r in rows}
        for r in rows:
            if r["model"].startswith("surprise"):
                continue
            peer_name = next((p for m, p, _, _ in models if m == r["model"]), None)
            peer_row = by_label.get(f"surprise {peer_name}") if peer_name else None
            if peer_row is not None:
                r["peer"] = f"surprise {peer_name}"
                r["rmse_diff"] = r["rmse"] - peer_row["rmse"]
                r["fit_speedup"] = peer_row["fit_s"] / r["fit_s"]
                r["fit_cpu_speedup"] = peer_row["fit_cpu_s"] / r["fit_cpu_s"]
                r["predict_speedup"] = peer_row["predict_s"] / r["predict_s"]
        print_table(
            f"rating prediction on {name}: mean RMSE/MAE over folds, median fit (wall and "
            f"process CPU) and predict seconds per fold, speedup = surprise time / tastebud "
            f"time (the peer of ExplicitALS is Surprise's SVD: Surprise has no ALS-WR)",
            rows,
            [
                "model",
                "rmse",
                "mae",
                "fit_s",
                "fit_cpu_s",
                "predict_s",
                "peer",
                "rmse_diff",
                "fit_speedup",
                "fit_cpu_speedup",
                "predict_speedup",
            ],
        )
        all_rows.extend(rows)
    save("rating", {"args": vars(args), "rows": all_rows})


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


def _warp_hybrid(epochs: int, threads: int, seed: int, **extra: Any) -> Any:
    """tastebud's Hybrid at the settings of the LightFM comparison: 64 factors, WARP,
    learning rate 0.05 (``extra``: identity_dropout, identity_features, ...)."""
    from tastebud import Hybrid

    return Hybrid(
        factors=64, loss="warp", learning_rate=0.05, epochs=epochs, num_threads=threads,
        random_state=seed, **extra,
    )  # fmt: skip


def _hybrid_cold_split(positives: Any, genres: Any, item_features: Any, seed: int) -> tuple:
    """10% of the items (rng ``seed``) held out of training: (train interactions, their
    item features, held-out columns, users with held-out positives, their held-out positives,
    held-out items' features)."""
    from tastebud.data import Features, Interactions

    n_items = positives.n_items
    rng = np.random.default_rng(seed)
    held = np.sort(rng.choice(n_items, n_items // 10, replace=False))
    is_held = np.zeros(n_items, dtype=bool)
    is_held[held] = True
    arrays = positives.to_arrays()
    keep = ~is_held[positives.items.index(arrays["item"])]
    warm_items = positives.items.ids(np.flatnonzero(~is_held))
    train = Interactions.from_arrays(
        arrays["user"][keep], arrays["item"][keep], user_ids=positives.users, item_ids=warm_items
    )
    held_matrix = positives.matrix[:, held]
    users = np.flatnonzero(np.diff(held_matrix.indptr) > 0)
    new_items = Features(genres.matrix[held], positives.items.ids(held), genres.names)
    return (train, item_features.align(train.items), held, users, held_matrix[users],
            new_items)  # fmt: skip


def _choose_identity_dropout(
    cold_train: Any, ml: Any, grid: list[float], seeds: list[int], threads: int, epochs: int,
    k: int,
) -> tuple[float, list[dict[str, Any]]]:  # fmt: skip
    """Identity dropout chosen WITHOUT the test hold-out: 10% of the training items (seed 43)
    are held out of a second split of the training data, and the p of the best mean
    NDCG@k over ``seeds`` on those validation items is returned (with the per-p results)."""
    from tastebud.search import topk

    genres = ml.item_features.align(cold_train.items)
    v_train, v_genres, _, v_users, v_relevant, v_new = _hybrid_cold_split(
        cold_train, genres, ml.item_features, 43
    )
    users = v_train.users.ids(v_users)
    results = []
    for p in grid:
        values = []
        for seed in seeds:
            model = _warp_hybrid(epochs, threads, seed, identity_dropout=p).fit(
                v_train, item_features=v_genres, show_progress=False
            )
            recs = topk(model.score_items(v_new, users), k=k)[0]
            values.append(_ranking(recs, v_relevant, k)["ndcg"])
        results.append({"identity_dropout": p, f"val_ndcg@{k}": statistics.fmean(values)})
        print(f"  validation: identity_dropout={p:<4} NDCG@{k} {results[-1][f'val_ndcg@{k}']:.4f}")
    best = max(results, key=lambda r: r[f"val_ndcg@{k}"])["identity_dropout"]
    return float(best), results


def bench_hybrid(args: argparse.Namespace) -> None:
    """ml-100k, ratings >= 4 as positives: LightFM vs tastebud Hybrid, warm and cold start."""
    from tastebud.data import Features, datasets, split

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

    seeds = list(args.seeds)
    cold_train, warm_genres, held, cold_users, cold_relevant, new_items = _hybrid_cold_split(
        positives, genres, ml.item_features, 42
    )
    dropout, validation = None, []
    if args.dropout_grid:
        print("identity dropout chosen on a validation split of the cold-start training items:")
        dropout, validation = _choose_identity_dropout(
            cold_train, ml, list(args.dropout_grid), seeds, threads, epochs, k
        )
        print(f"  chosen identity_dropout = {dropout}")

    def summarise(name: str, features: bool, fits: list[float], per_seed: list[dict]) -> None:
        """Fit time: median over every run; metrics: mean (and sd) over the seeds of each
        seed's median over its repeats."""
        row: dict[str, Any] = {"model": name, "genres": features}
        row["fit_s"] = statistics.median(fits)
        row["epoch_ms"] = 1000 * row["fit_s"] / epochs
        for m in per_seed[0]:
            values = [x[m] for x in per_seed]
            row[f"{m}@{k}"] = statistics.fmean(values)
            row[f"{m}@{k}_sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
        row["seeds"] = len(per_seed)
        rows.append(row)
        print(
            f"  {name:<28} genres={features!s:<5} fit {row['fit_s']:.3f} s  "
            f"P@10 {row['precision@10']:.4f} ± {row['precision@10_sd']:.4f}  "
            f"NDCG@10 {row['ndcg@10']:.4f} ± {row['ndcg@10_sd']:.4f}"
        )

    for with_genres in () if args.cold_only else (False, True):
        feats = _writable_coo(lfm_features).tocsr() if with_genres else None
        models: list[tuple[str, Callable[[int], Any], Callable[[Any], np.ndarray]]] = []
        if LightFM is not None:
            models.append((
                "LightFM 1.17 (warp)",
                lambda seed, feats=feats: LightFM(
                    loss="warp", no_components=64, learning_rate=0.05, random_state=seed
                ).fit(train_coo, item_features=feats, epochs=epochs, num_threads=threads),
                lambda m, feats=feats: _lightfm_topk(m, feats, train.matrix, eval_users, k),
            ))  # fmt: skip
        models.append((
            "tastebud Hybrid (warp)",
            lambda seed, g=with_genres: _warp_hybrid(epochs, threads, seed).fit(
                train, item_features=genres if g else None, show_progress=False
            ),
            lambda m: m.recommend_indices(eval_users, k)[0],
        ))  # fmt: skip
        if with_genres and dropout:
            models.append((
                f"tastebud Hybrid (warp), identity dropout {dropout}",
                lambda seed: _warp_hybrid(epochs, threads, seed, identity_dropout=dropout).fit(
                    train, item_features=genres, show_progress=False
                ),
                lambda m: m.recommend_indices(eval_users, k)[0],
            ))  # fmt: skip
        fits: dict[str, list[float]] = {name: [] for name, _, _ in models}
        per_seed: dict[str, list[dict]] = {name: [] for name, _, _ in models}
        for seed in seeds:
            runs: dict[str, list[dict]] = {name: [] for name, _, _ in models}
            for _ in range(args.repeats):
                # interleaved, so that both libraries see the same machine load
                for name, fit, recs in models:
                    t0 = time.perf_counter()
                    model = fit(seed)
                    fits[name].append(time.perf_counter() - t0)
                    runs[name].append(_ranking(recs(model), relevant, k))
            for name in runs:
                per_seed[name].append(
                    {m: statistics.median(x[m] for x in runs[name]) for m in runs[name][0]}
                )
        for name, _, _ in models:
            summarise(name, with_genres, fits[name], per_seed[name])
    by = {(r["model"].split()[0], r["genres"]): r for r in rows}
    for r in rows:
        peer = by.get(("LightFM", r["genres"]))
        if peer is not None:
            r["speedup_vs_lightfm"] = peer["fit_s"] / r["fit_s"]
            r["P@10_vs_lightfm"] = r["precision@10"] - peer["precision@10"]
    if rows:
        print_table(
            f"ml-100k warm start: WARP, 64 factors, lr 0.05, {epochs} epochs, {threads} threads; "
            f"fit: median of {len(seeds) * args.repeats} runs; metrics: mean ± sd over "
            f"{len(seeds)} seeds {seeds}",
            rows,
            [
                "model",
                "genres",
                "fit_s",
                "epoch_ms",
                "precision@10",
                "precision@10_sd",
                "recall@10",
                "ndcg@10",
                "ndcg@10_sd",
                "speedup_vs_lightfm",
                "P@10_vs_lightfm",
            ],
        )

    # ---- cold start: 10% of the items never seen in training, ranked among themselves
    # (the same split as _hybrid_cold_split(..., 42); rng continues for the random row)
    rng = np.random.default_rng(42)
    rng.choice(n_items, n_items // 10, replace=False)
    held_genres = genres.matrix[held]
    print(
        f"\ncold start: {held.size} items held out (seed 42), {cold_users.size} users with "
        f"positives among them; training on {cold_train.nnz} positives"
    )
    cold_rows: list[dict[str, Any]] = []

    def rank(name: str, scores: np.ndarray | list[np.ndarray]) -> None:
        """Metrics of one score matrix, or mean (and sd) over one matrix per seed."""
        from tastebud.search import topk

        results = []
        for m in scores if isinstance(scores, list) else [scores]:
            recs = topk(np.ascontiguousarray(m, dtype=np.float32), k=k)[0]
            results.append(_ranking(recs, cold_relevant, k))
        row: dict[str, Any] = {"model": name, "seeds": len(results)}
        for m in results[0]:
            values = [r[m] for r in results]
            row[f"{m}@{k}"] = statistics.fmean(values)
            row[f"{m}@{k}_sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
        cold_rows.append(row)
        print(f"  {name:<44} NDCG@10 {row['ndcg@10']:.4f} ± {row['ndcg@10_sd']:.4f}")

    rank("random (seed 42)", rng.random((cold_users.size, held.size)))
    # popularity within genre: a cold item scores the mean training popularity of the warm
    # items sharing its genres (averaged over its genres)
    warm_pop = np.asarray(cold_train.item_counts(), dtype=np.float64)
    g_warm = warm_genres.matrix
    genre_pop = (g_warm.T @ warm_pop) / np.maximum(np.asarray(g_warm.sum(axis=0)).ravel(), 1)
    n_g = np.maximum(np.asarray(held_genres.sum(axis=1)).ravel(), 1)
    pop_in_genre = (held_genres @ genre_pop) / n_g
    rank("popularity within genre", np.tile(pop_in_genre, (cold_users.size, 1)))
    cold_scores: dict[str, list[np.ndarray]] = {}
    n_warm = cold_train.n_items
    users = cold_train.users.ids(cold_users)
    for seed in seeds:
        if LightFM is not None:
            lfm_warm = sp.csr_matrix(
                sp.hstack([sp.identity(n_warm, format="csr"), g_warm]), dtype=np.float32
            )
            lfm_cold = sp.csr_matrix(
                sp.hstack([sp.csr_matrix((held.size, n_warm)), held_genres]), dtype=np.float32
            )
            lfm = LightFM(loss="warp", no_components=64, learning_rate=0.05, random_state=seed)
            lfm.fit(
                _writable_coo(cold_train.matrix),
                item_features=_writable_coo(lfm_warm).tocsr(),
                epochs=epochs,
                num_threads=threads,
            )
            _ub, ue = lfm.get_user_representations()
            ib, ie = lfm.get_item_representations(_writable_coo(lfm_cold).tocsr())
            cold_scores.setdefault("LightFM 1.17 (identity + genres)", []).append(
                ue[cold_users] @ ie.T + ib[None, :]
            )
        model = _warp_hybrid(epochs, threads, seed)
        model.fit(cold_train, item_features=warm_genres, show_progress=False)
        cold_scores.setdefault("tastebud Hybrid (identity + genres)", []).append(
            model.score_items(new_items, users)
        )
        if dropout:
            model = _warp_hybrid(epochs, threads, seed, identity_dropout=dropout).fit(
                cold_train, item_features=warm_genres, show_progress=False
            )
            cold_scores.setdefault(
                f"tastebud Hybrid, identity dropout {dropout} (identity + genres)", []
            ).append(model.score_items(new_items, users))
        content = _warp_hybrid(epochs, threads, seed, identity_features=False)
        content.fit(
            cold_train,
            user_features=Features.identity(cold_train.users, prefix="user="),
            item_features=warm_genres,
            show_progress=False,
        )
        cold_scores.setdefault("tastebud Hybrid (user identity, item genres)", []).append(
            content.score_items(new_items, users)
        )
    for name, per_seed_scores in cold_scores.items():
        rank(name, per_seed_scores)
    print_table(
        f"ml-100k cold-start items: NDCG@{k} among the held-out items",
        cold_rows,
        ["model", "seeds", "precision@10", "recall@10", "ndcg@10", "ndcg@10_sd"],
    )
    save(
        "hybrid_ml100k",
        {
            "args": vars(args),
            "warm": rows,
            "cold": cold_rows,
            "identity_dropout": {"chosen": dropout, "validation": validation},
        },
    )


# --------------------------------------------------------------------------- distributed
def run_distributed(args: argparse.Namespace) -> None:
    """Dask block ALS / recommend_all vs single-process tastebud vs Spark MLlib ALS.

    The work lives in ``benchmarks/bench_distributed.py`` (also runnable on its own); its
    JSON goes to ``benchmarks/results/distributed_scale<scale>.json``.
    """
    sys.path.insert(0, str(Path(__file__).parent))
    import bench_distributed

    bench_distributed.run(args)


# --------------------------------------------------------------------------- search
def numpy_search(q: np.ndarray, it: np.ndarray, k: int, metric: str) -> np.ndarray:
    """numpy brute force: blocked matmul (+ -|x|^2/2 for l2) + argpartition, bounded memory."""
    n, m = q.shape[0], it.shape[0]
    batch = max(1, min(1024, (1 << 26) // max(m, 1)))
    half = -0.5 * np.einsum("ij,ij->i", it, it) if metric == "l2" else None
    out = np.empty((n, k), dtype=np.int64)
    for s in range(0, n, batch):
        scores = q[s : s + batch] @ it.T
        if half is not None:
            scores += half
        part = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1)
        out[s : s + batch] = np.take_along_axis(part, order, 1)
    return out


def _search_shape(
    n: int, m: int, args: argparse.Namespace, gemm: dict[str, float], faiss: Any
) -> list[dict[str, Any]]:
    from tastebud.search import SimilarityIndex, topk

    threads, k = args.threads, 10
    f = args.dim
    rng = np.random.default_rng(42)
    q = rng.standard_normal((n, f), dtype=np.float32)
    it = rng.standard_normal((m, f), dtype=np.float32)
    per_user = min(args.seen, m - k)
    cols = rng.integers(0, m, size=(n, per_user))
    seen = sp.csr_matrix(
        (np.ones(cols.size, np.float32), cols.ravel(), np.arange(0, cols.size + 1, per_user)),
        shape=(n, m),
    )
    seen.sum_duplicates()
    flops = 2.0 * n * m * f
    rows: list[dict[str, Any]] = []
    print(f"\n{n} queries x {m} items x {f} dims, top-{k}, {threads} threads")
    topk(q[:64], it, k, metric="l2", exclude=seen[:64])  # warm-up: BLAS handle, threadpoolctl

    def record(name, metric, excl, fn, repeats, rows=rows, n=n, flops=flops):
        t, out = median_time(fn, repeats)
        rows.append(
            {
                "shape": f"{n}x{m}",
                "method": name,
                "metric": metric,
                "exclusions": excl,
                "seconds": t,
                "queries_per_s": n / t,
                "gflops": flops / t / 1e9,
                "pct_of_square_gemm": 100 * flops / t / 1e9 / gemm["square_4096"],
            }
        )
        print(f"  {name:<24} {metric:<3} excl={excl!s:<5} {t:8.3f} s  {n / t:10.0f} q/s")
        return out

    reps = args.repeats
    results = {}
    for metric, faiss_cls in (("dot", "IndexFlatIP"), ("l2", "IndexFlatL2")):
        results[(metric, False)] = record(
            "tastebud topk",
            metric,
            False,
            lambda metric=metric: topk(q, it, k, metric=metric, num_threads=threads),
            reps,
        )
        results[(metric, True)] = record(
            "tastebud topk",
            metric,
            True,
            lambda metric=metric: topk(q, it, k, metric=metric, exclude=seen, num_threads=threads),
            reps,
        )
        index = SimilarityIndex(metric, num_threads=threads)
        index.add(it)
        record(
            "tastebud SimilarityIndex",
            metric,
            False,
            lambda index=index: index.query(q, k),
            reps,
        )
        if faiss is not None:
            fi = getattr(faiss, faiss_cls)(f)
            fi.add(it)
            _d, fidx = record(
                f"faiss {faiss_cls}", metric, False, lambda fi=fi: fi.search(q, k), reps
            )
            ours = results[(metric, False)][0]
            agree = float(
                np.mean([len(set(a) & set(b)) / k for a, b in zip(ours, fidx, strict=True)])
            )
            print(f"  neighbour-set agreement with faiss ({metric}): {agree:.5f}")
            rows[-1]["agreement_with_tastebud"] = agree
        if not args.skip_numpy:
            with threadpool_limits(threads, "blas"):
                record(
                    "numpy matmul+argpartition",
                    metric,
                    False,
                    lambda metric=metric: numpy_search(q, it, k, metric),
                    1,
                )
    base = {
        (r["metric"], r["exclusions"]): r["seconds"] for r in rows if r["method"] == "tastebud topk"
    }
    for r in rows:
        r["time_vs_tastebud"] = r["seconds"] / base[(r["metric"], r["exclusions"])]
    for metric in ("dot", "l2"):
        cost = base[(metric, True)] / base[(metric, False)] - 1
        print(f"  exclusion cost ({per_user}/query, {metric}): {100 * cost:+.1f}%")
        rows.append(
            {
                "shape": f"{n}x{m}",
                "method": "exclusion cost %",
                "metric": metric,
                "seconds": 100 * cost,
            }
        )
    return rows


def bench_search(args: argparse.Namespace) -> None:
    """Exact dense search, inner product and L2, vs faiss IndexFlatIP / IndexFlatL2 and numpy."""
    threads, k = args.threads, 10
    gemm = gemm_gflops(threads, 3)
    print(f"GEMM float32 with {threads} threads: {gemm}")
    try:
        import faiss

        faiss.omp_set_num_threads(threads)
    except ImportError:
        faiss = None
        print("  faiss: not installed")
    all_rows: list[dict[str, Any]] = []
    for shape in args.shapes:
        n, m = (int(x) for x in shape.split("x"))
        rows = _search_shape(n, m, args, gemm, faiss)
        all_rows.extend(rows)
        print_table(
            f"exact top-{k}: {n} queries x {m} items x {args.dim}, {threads} threads, "
            f"{min(args.seen, m - k)} exclusions/query when on",
            rows,
            [
                "method",
                "metric",
                "exclusions",
                "seconds",
                "queries_per_s",
                "gflops",
                "pct_of_square_gemm",
                "time_vs_tastebud",
            ],
        )
    save("search", {"args": vars(args), "gemm_gflops": gemm, "rows": all_rows})


# --------------------------------------------------------------------------- content
def _movie_documents(feats: Any) -> list[list[str]]:
    """One token list per item (feature name repeated by its count), for TfidfVectorizer."""
    m = feats.matrix
    names = feats.names
    docs = []
    for r in range(m.shape[0]):  # loop over items, building the peer's input
        lo, hi = m.indptr[r], m.indptr[r + 1]
        docs.append(
            [
                names[c]
                for c, v in zip(m.indices[lo:hi], m.data[lo:hi], strict=True)
                for _ in range(round(float(v)))
            ]
        )
    return docs


def _identity(doc: list[str]) -> list[str]:
    return doc


def _eval_lists(idx: np.ndarray, relevant: sp.csr_matrix, k: int) -> dict[str, float]:
    from tastebud.metrics import ranking_metrics

    out = ranking_metrics(idx, relevant, k=k, metrics=("precision", "recall", "ndcg"))
    return {name: float(np.nanmean(v)) for name, v in out.items()}


def bench_content(args: argparse.Namespace) -> None:
    """ContentBased on MovieLens latest-small vs scikit-learn TF-IDF + cosine and Popularity."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import cosine_similarity

    from tastebud.data import Features, datasets, split
    from tastebud.models import ContentBased, Popularity

    path = Path(args.data_dir) / "ml-latest-small"
    ml = datasets.load_movielens(path)
    feats = Features.concat([ml.item_features, ml.item_tags])
    inter = ml.ratings.binarize()
    n_items = inter.n_items
    k = 10
    print(f"ml-latest-small: {inter}, item features {feats}")
    payload: dict[str, Any] = {"args": vars(args)}

    # ---- 1. item-item top-10 neighbours, whole catalogue
    docs = _movie_documents(feats.align(inter.items))

    def sklearn_similar():
        vec = TfidfVectorizer(analyzer=_identity, sublinear_tf=True)
        x = vec.fit_transform(docs)
        sim = cosine_similarity(x)
        np.fill_diagonal(sim, -np.inf)
        part = np.argpartition(-sim, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sim, part, 1), axis=1, kind="stable")
        idx = np.take_along_axis(part, order, 1)
        return idx, np.take_along_axis(sim, idx, 1)

    every = inter.items.ids_array

    def tastebud_similar():
        model = ContentBased(num_threads=args.threads).fit(inter, item_features=feats)
        recs = model.similar_items(every, k=k)
        return recs.indices, recs.scores

    t_skl, (s_idx, s_sc) = median_time(sklearn_similar, args.repeats)
    t_tb, (t_idx, t_sc) = median_time(tastebud_similar, args.repeats)
    same = np.array([set(a) == set(b) for a, b in zip(s_idx, t_idx, strict=True)])
    same_sets = float(same.mean())
    # Ties at the k-th place make "the" neighbour set ambiguous (argpartition picks any):
    # also report identity over the items whose k-th and (k+1)-th neighbours are not tied.
    model = ContentBased(num_threads=args.threads).fit(inter, item_features=feats)
    s11 = model.similar_items(every, k=k + 1).scores
    untied = s11[:, k - 1] > s11[:, k] + 1e-6
    same_untied = float(same[untied].mean()) if untied.any() else float("nan")
    same_scores = float(np.mean(np.all(np.abs(np.sort(s_sc, 1) - np.sort(t_sc, 1)) < 1e-5, 1)))
    sim_rows = [
        {
            "method": "scikit-learn TfidfVectorizer+cosine_similarity+argpartition",
            "seconds": t_skl,
            "speedup": 1.0,
        },
        {
            "method": "tastebud ContentBased fit + similar_items(all)",
            "seconds": t_tb,
            "speedup": t_skl / t_tb,
        },
    ]
    print_table(
        f"item-item top-{k} over {n_items} items (median of {args.repeats})",
        sim_rows,
        ["method", "seconds", "speedup"],
    )
    print(
        f"  identical neighbour sets: {same_sets:.4f} of items; identical top-{k} score lists: "
        f"{same_scores:.4f}; identical sets where the {k}th/{k + 1}th are not tied: "
        f"{same_untied:.4f} ({int(untied.sum())} items)"
    )
    payload["similar_items"] = {
        "rows": sim_rows,
        "identical_sets": same_sets,
        "identical_scores": same_scores,
        "identical_sets_untied": same_untied,
        "n_untied": int(untied.sum()),
    }

    # ---- 2. recommendation quality on the per-user 20% holdout (seed 42)
    train, test = split.random_holdout(inter, test_fraction=0.2, random_state=42)
    users = np.flatnonzero(np.diff(test.matrix.indptr) > 0)
    relevant = test.matrix[users]

    texts = [" ".join(t.split("=", 1)[1] for t in doc) for doc in docs]

    def sklearn_recipe(word_level: bool):
        # word_level: the tutorial recipe (genres + tags as text, TfidfVectorizer defaults);
        # otherwise the same tokens and TF as ContentBased.
        if word_level:
            x = TfidfVectorizer().fit_transform(texts)
        else:
            x = TfidfVectorizer(analyzer=_identity, sublinear_tf=True).fit_transform(docs)
        profiles = train.matrix[users] @ x
        sim = cosine_similarity(profiles, x)
        seen = train.matrix[users].tocoo()
        sim[seen.row, seen.col] = -np.inf
        part = np.argpartition(-sim, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sim, part, 1), axis=1, kind="stable")
        return np.take_along_axis(part, order, 1)

    # popularity_weight chosen on a validation split of the training data, never on test
    sub_train, valid = split.random_holdout(train, test_fraction=0.2, random_state=43)
    v_users = np.flatnonzero(np.diff(valid.matrix.indptr) > 0)
    grid = [0.0, 0.5, 1.0, 2.0, 4.0, 8.0]
    valid_ndcg = {}
    for w in grid:
        model = ContentBased(popularity_weight=w, num_threads=args.threads)
        model.fit(sub_train, item_features=feats)
        idx, _ = model.recommend_indices(v_users, k)
        valid_ndcg[w] = _eval_lists(idx, valid.matrix[v_users], k)["ndcg"]
    best_w = max(grid, key=lambda w: valid_ndcg[w])
    print(f"  validation NDCG@{k} by popularity_weight: {valid_ndcg} -> {best_w}")

    quality = []
    for name, fn in [
        ("scikit-learn TF-IDF profiles, words of genres+tags", lambda: sklearn_recipe(True)),
        ("scikit-learn TF-IDF profiles, same tokens as tastebud", lambda: sklearn_recipe(False)),
        ("Popularity", lambda: Popularity().fit(train).recommend_indices(users, k)[0]),
        (
            "ContentBased (pure content)",
            lambda: (
                ContentBased(num_threads=args.threads)
                .fit(train, item_features=feats)
                .recommend_indices(users, k)[0]
            ),
        ),
        (
            f"ContentBased (popularity_weight={best_w}, from validation)",
            lambda: (
                ContentBased(popularity_weight=best_w, num_threads=args.threads)
                .fit(train, item_features=feats)
                .recommend_indices(users, k)[0]
            ),
        ),
    ]:
        t, idx = median_time(fn, args.repeats)
        quality.append({"method": name, **_eval_lists(idx, relevant, k), "seconds": t})
    ref = max(quality[0]["ndcg"], quality[1]["ndcg"])  # the better scikit-learn recipe
    for r in quality:
        r["ndcg_vs_sklearn"] = r["ndcg"] / ref if ref > 0 else None
    print_table(
        f"top-{k} recommendation, per-user 20% holdout seed 42, {users.size} users",
        quality,
        ["method", "precision", "recall", "ndcg", "ndcg_vs_sklearn", "seconds"],
    )
    payload["quality"] = {"rows": quality, "validation_ndcg": valid_ndcg, "chosen_weight": best_w}

    # ---- 3. cold-start items: 10% of items never seen in training
    rng = np.random.default_rng(42)
    active = np.flatnonzero(inter.item_counts() > 0)
    cold = np.sort(rng.choice(active, size=active.size // 10, replace=False))
    is_cold = np.zeros(n_items, bool)
    is_cold[cold] = True
    coo = inter.matrix.tocoo()
    warm_keep = ~is_cold[coo.col]
    train_w = inter.with_matrix(
        sp.csr_matrix(
            (coo.data[warm_keep], (coo.row[warm_keep], coo.col[warm_keep])), shape=inter.shape
        )
    )
    test_c = sp.csr_matrix(
        (coo.data[~warm_keep], (coo.row[~warm_keep], coo.col[~warm_keep])), shape=inter.shape
    )
    c_users = np.flatnonzero(np.diff(test_c.indptr) > 0)
    c_rel = test_c[c_users]
    cold_rows = []
    # random: mean over 20 random orders
    rnd = []
    for _ in range(20):
        scores = rng.random((c_users.size, n_items)).astype(np.float32)
        rnd.append(_eval_lists(_topk_allowed(scores, cold, k), c_rel, k))
    cold_rows.append(
        {
            "method": "random (mean of 20)",
            **{m: float(np.mean([r[m] for r in rnd])) for m in rnd[0]},
        }
    )
    # popularity within genre: mean training popularity of the item's genres
    genres = ml.item_features.align(inter.items).matrix
    genre_pop = np.asarray(train_w.matrix.sum(axis=0)).ravel() @ genres
    counts = np.diff(genres.indptr)
    item_score = np.divide(genres @ genre_pop, counts, out=np.zeros(n_items), where=counts > 0)
    scores = np.broadcast_to(item_score.astype(np.float32), (c_users.size, n_items))
    cold_rows.append(
        {
            "method": "popularity within genre",
            **_eval_lists(_topk_allowed(np.ascontiguousarray(scores), cold, k), c_rel, k),
        }
    )
    for w in (0.0, best_w):
        model = ContentBased(popularity_weight=w, num_threads=args.threads)
        model.fit(train_w, item_features=feats)
        idx, _ = model.recommend_indices(c_users, k, allow=cold)
        cold_rows.append(
            {"method": f"ContentBased (popularity_weight={w})", **_eval_lists(idx, c_rel, k)}
        )
    ref = cold_rows[1]["ndcg"]
    for r in cold_rows:
        r["ndcg_vs_genre_pop"] = r["ndcg"] / ref if ref > 0 else None
    print_table(
        f"cold-start items: {cold.size} items held out of training, ranked among "
        f"themselves for the {c_users.size} users who interacted with them",
        cold_rows,
        ["method", "precision", "recall", "ndcg", "ndcg_vs_genre_pop"],
    )
    payload["cold_start"] = {
        "rows": cold_rows,
        "n_cold_items": int(cold.size),
        "n_users": int(c_users.size),
    }
    save("content", payload)


def _topk_allowed(scores: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
    from tastebud.search import topk

    return topk(scores, k=k, allow=allowed)[0]


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
    p = sub.add_parser("knn", help="ItemKNN (cosine, BM25) vs implicit; KNNRating vs Surprise")
    p.add_argument("--data-dir", default="/work/shared/data")
    p.add_argument("--datasets", nargs="+", default=["ml-100k", "ml-latest-small", "synthetic"])
    p.add_argument("--neighbors", type=int, default=100)
    p.add_argument("--thread-counts", type=int, nargs="+", default=[1, 2])
    p.add_argument("--threads", type=int, default=2, help="threads of the rating benchmark")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--syn-users", type=int, default=100_000)
    p.add_argument("--syn-items", type=int, default=20_000)
    p.add_argument("--syn-nnz", type=int, default=10_000_000)
    p.add_argument("--skip-rating", action="store_true")
    p.add_argument("--skip-itemknn", action="store_true", help="run only the KNNRating section")
    p.set_defaults(
        func=lambda a: (
            None if a.skip_itemknn else bench_knn(a),
            None if a.skip_rating else bench_knn_rating(a),
        )
    )
    p = sub.add_parser("ease", help="EASE vs ItemKNN and RP3beta (NDCG, fit time, memory)")
    p.add_argument("--data-dir", default="/work/shared/data")
    p.add_argument("--datasets", nargs="+", default=["ml-100k", "ml-latest-small"])
    p.add_argument("--regularization", type=float, default=500.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--syn-users", type=int, default=100_000)
    p.add_argument("--syn-items", type=int, default=20_000)
    p.add_argument("--syn-nnz", type=int, default=10_000_000)
    p.set_defaults(func=bench_ease)
    p = sub.add_parser("item2vec", help="Item2Vec vs gensim Word2Vec, next-item hit@10")
    p.add_argument("--data-dir", default="../shared/data")
    p.add_argument("--datasets", nargs="+", default=["ml-latest-small", "ml-100k"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--update", choices=["pair", "window"], default="pair")
    p.add_argument("--tune", action="store_true", help="grid on a validation split of train")
    p.set_defaults(func=bench_item2vec)
    for fam, fn, iters in (("als", bench_als, 15), ("bpr", bench_bpr, 100)):
        p = sub.add_parser(fam, help=f"{fam.upper()} vs implicit (binarised, per-user 20% holdout)")
        p.add_argument("--data-dir", default="../shared/data")
        p.add_argument(
            "--datasets", nargs="+", default=["ml-100k", "ml-latest-small", "synthetic"],
            help="ml-100k, ml-latest-small, synthetic, planted (O(nnz) generator for scale 1)",
        )  # fmt: skip
        p.add_argument("--scale", type=float, default=1.0,
                       help="synthetic size: scale x (200,000 users, 50,000 items, 10M events)")  # fmt: skip
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--iterations", type=int, default=iters)
        p.add_argument("--repeats", type=int, default=3)
        if fam == "bpr":
            p.add_argument("--learning-rate", type=float, default=0.05)
            p.add_argument(
                "--implicit-learning-rate", type=float, default=None,
                help="implicit's learning rate (default: --learning-rate; implicit's own "
                "default is 0.01)",
            )  # fmt: skip
        else:
            p.add_argument(
                "--implicit-alpha", type=float, default=None,
                help="implicit's alpha (default 1, the same value; 2 matches tastebud's "
                "alpha 1, as implicit's confidence is alpha * r)",
            )  # fmt: skip
            p.add_argument("--ials", action="store_true", help="also run the iALS options")
            p.add_argument("--ials-w0", type=float, default=0.3)
            p.add_argument("--ials-reg", type=float, default=0.02)
            p.add_argument(
                "--memory", action="store_true",
                help="also measure each library's peak fit memory, each in a fresh subprocess",
            )  # fmt: skip
        p.set_defaults(func=fn)
    p = sub.add_parser(
        "als-memory",
        help="peak fit memory of ALS vs implicit on a random matrix of the synthetic 10M shape",
    )
    p.add_argument("--users", type=int, default=200_000)
    p.add_argument("--items", type=int, default=50_000)
    p.add_argument("--nnz", type=int, default=8_000_000, help="default: 80%% of 10M (train)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iterations", type=int, default=15)
    p.add_argument("--recommend", action="store_true", help="also time recommend-all")
    p.set_defaults(func=bench_als_memory)
    p = sub.add_parser("_als_memory_worker", help=argparse.SUPPRESS)
    p.add_argument("matrix")
    p.add_argument("library", choices=["tastebud", "implicit"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iterations", type=int, default=15)
    p.add_argument("--recommend", action="store_true", help="also time recommend-all")
    p.set_defaults(func=_als_memory_worker)
    p = sub.add_parser("rating", help="Baseline/SVD/SVD++ vs scikit-surprise, k-fold CV")
    p.add_argument("--data-dir", default=str(Path(__file__).parents[2] / "shared" / "data"))
    p.add_argument("--datasets", nargs="+", default=["ml-100k", "ml-latest-small"])
    p.add_argument("--folds", type=int, default=5, help="run only the first N of the 5 folds")
    p.add_argument(
        "--svdpp-datasets",
        nargs="*",
        default=["ml-100k"],
        help="data sets on which to run Surprise's (slow, O(|N(u)|^2)) SVDpp",
    )
    p.add_argument(
        "--threads", type=int, default=2, help="threads of the multi-threaded SVD/ALS rows"
    )
    p.add_argument(
        "--seeds", type=int, default=3, help="model seeds per fold (random_state 0..N-1)"
    )
    p.set_defaults(func=bench_rating)
    p = sub.add_parser("hybrid", help="Hybrid vs LightFM on ml-100k (warm and cold start)")
    p.add_argument("--data-dir", default="../shared/data/ml-100k")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--repeats", type=int, default=3, help="runs per seed (fit time: median)")
    p.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[42],
        help="model seeds of both libraries (metrics: mean ± sd over the seeds)",
    )
    p.add_argument("--cold-only", action="store_true", help="only the cold-start part")
    p.add_argument(
        "--dropout-grid",
        type=float,
        nargs="*",
        default=[0.0, 0.1, 0.2, 0.3, 0.5],
        help="identity_dropout values tried on the validation split of the training items "
        "(the best one gets its own rows; none: no identity-dropout rows)",
    )
    p.set_defaults(func=bench_hybrid)
    p = sub.add_parser("distributed", help="Dask ALS + recommend_all vs 1 process vs Spark ALS")
    sys.path.insert(0, str(Path(__file__).parent))
    import bench_distributed

    bench_distributed.add_arguments(p)
    p.set_defaults(func=run_distributed)
    p = sub.add_parser("search", help="exact dense search (IP, L2) vs faiss and numpy")
    p.add_argument(
        "--shapes", nargs="+", default=["20000x1000000", "100000x50000"], help="QUERIESxITEMS"
    )
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--seen", type=int, default=100, help="excluded items per query")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip-numpy", action="store_true")
    p.set_defaults(func=bench_search)
    p = sub.add_parser("content", help="ContentBased vs scikit-learn TF-IDF on ml-latest-small")
    p.add_argument("--data-dir", default=str(Path(__file__).parents[2] / "shared" / "data"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.set_defaults(func=bench_content)
    args = parser.parse_args(argv)
    print(json.dumps(machine_info()))
    args.func(args)


if __name__ == "__main__":
    main()
