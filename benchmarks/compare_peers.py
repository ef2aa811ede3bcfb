"""Side-by-side benchmarks of tastebud against its peers, in one run, on the same data.

Usage::

    python benchmarks/compare_peers.py topk [--users 100000 --items 50000 --factors 64]
    python benchmarks/compare_peers.py topk --users 20000 --items 1000000
    python benchmarks/compare_peers.py search              # both shapes, IP and L2 vs faiss
    python benchmarks/compare_peers.py content --data-dir ../shared/data
    python benchmarks/compare_peers.py all --data-dir ../shared/data

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

    # ---- 2. recommendation quality on the DESIGN split
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
