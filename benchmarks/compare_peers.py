"""Side-by-side benchmarks of tastebud against its peers, in one run, on the same data.

Usage::

    python benchmarks/compare_peers.py topk [--users 100000 --items 50000 --factors 64]
    python benchmarks/compare_peers.py topk --users 20000 --items 1000000
    python benchmarks/compare_peers.py distributed --scale 0.1   # Dask vs 1 process vs Spark ALS
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


# --------------------------------------------------------------------------- distributed
def run_distributed(args: argparse.Namespace) -> None:
    """Dask block ALS / recommend_all vs single-process tastebud vs Spark MLlib ALS.

    The work lives in ``benchmarks/bench_distributed.py`` (also runnable on its own); its
    JSON goes to ``benchmarks/results/distributed_scale<scale>.json``.
    """
    sys.path.insert(0, str(Path(__file__).parent))
    import bench_distributed

    bench_distributed.run(args)


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
    p = sub.add_parser("distributed", help="Dask ALS + recommend_all vs 1 process vs Spark ALS")
    sys.path.insert(0, str(Path(__file__).parent))
    import bench_distributed

    bench_distributed.add_arguments(p)
    p.set_defaults(func=run_distributed)
    args = parser.parse_args(argv)
    print(json.dumps(machine_info()))
    args.func(args)


if __name__ == "__main__":
    main()
