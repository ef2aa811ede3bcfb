"""Side-by-side benchmarks of tastebud against its peers, in one run, on the same data.

Usage::

    python benchmarks/compare_peers.py topk [--users 100000 --items 50000 --factors 64]
    python benchmarks/compare_peers.py topk --users 20000 --items 1000000
    python benchmarks/compare_peers.py als --data-dir ../shared/data [--scale 0.2] [--ials]
    python benchmarks/compare_peers.py bpr --data-dir ../shared/data [--scale 0.2]

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


# --------------------------------------------------------------------------- ALS / BPR
def _mf_splits(args: argparse.Namespace) -> list[tuple[str, Any, Any]]:
    """(label, train, test) per data set: DESIGN protocol (binarised, per-user 20%, seed 42)."""
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


def _ranking(recommended: np.ndarray, test: Any, users: np.ndarray) -> dict[str, float]:
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

        return AlternatingLeastSquares(
            factors=64, regularization=0.05, alpha=1.0, iterations=args.iterations,
            calculate_training_loss=False, num_threads=args.threads, random_state=42,
        )  # fmt: skip
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    return BayesianPersonalizedRanking(
        factors=64, learning_rate=args.learning_rate, regularization=0.01,
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
        **_ranking(recs, ctx["test"], users),
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
        results.append({"data": label, "nnz": nnz, "rows": rows, **extra})
    save(family, {"args": vars(args), "gemm_gflops": gemm, "results": results})


def bench_als(args: argparse.Namespace) -> None:
    _mf_compare(args, "als")


def bench_bpr(args: argparse.Namespace) -> None:
    _mf_compare(args, "bpr")


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
    for fam, fn, iters in (("als", bench_als, 15), ("bpr", bench_bpr, 100)):
        p = sub.add_parser(fam, help=f"{fam.upper()} vs implicit (DESIGN protocol)")
        p.add_argument("--data-dir", default="../shared/data")
        p.add_argument(
            "--datasets", nargs="+", default=["ml-100k", "ml-latest-small", "synthetic"],
            help="ml-100k, ml-latest-small, synthetic",
        )  # fmt: skip
        p.add_argument("--scale", type=float, default=1.0,
                       help="synthetic size: scale x (200,000 users, 50,000 items, 10M events)")  # fmt: skip
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--iterations", type=int, default=iters)
        p.add_argument("--repeats", type=int, default=3)
        if fam == "bpr":
            p.add_argument("--learning-rate", type=float, default=0.05)
        else:
            p.add_argument("--ials", action="store_true", help="also run the iALS options")
            p.add_argument("--ials-w0", type=float, default=0.3)
            p.add_argument("--ials-reg", type=float, default=0.02)
        p.set_defaults(func=fn)
    args = parser.parse_args(argv)
    print(json.dumps(machine_info()))
    args.func(args)


if __name__ == "__main__":
    main()
