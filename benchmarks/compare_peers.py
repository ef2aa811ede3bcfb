"""Side-by-side benchmarks of tastebud against its peers, in one run, on the same data.

Usage::

    python benchmarks/compare_peers.py topk [--users 100000 --items 50000 --factors 64]
    python benchmarks/compare_peers.py topk --users 20000 --items 1000000
    python benchmarks/compare_peers.py all --data-dir ../shared/data
    python benchmarks/compare_peers.py rating --data-dir ../shared/data [--folds 5]

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


# --------------------------------------------------------------------------- rating
def _rating_models(threads: int) -> list[tuple[str, str | None, Callable[[], Any], Any]]:
    """(model, Surprise peer name, tastebud factory, Surprise factory) at Surprise's defaults."""
    from tastebud import SVD, Baseline, ExplicitALS, SVDpp

    try:
        import surprise
    except ImportError:
        surprise = None

    def peer(name: str) -> Any:
        return None if surprise is None else getattr(surprise, name)

    return [
        ("Baseline", "BaselineOnly", lambda: Baseline(), peer("BaselineOnly")),
        ("SVD", "SVD", lambda: SVD(random_state=0), peer("SVD")),
        ("SVD (shuffle=False)", "SVD", lambda: SVD(shuffle=False, random_state=0), None),
        (
            f"SVD (Hogwild, {threads} threads)",
            "SVD",
            lambda: SVD(random_state=0, num_threads=threads),
            None,
        ),
        ("SVDpp", "SVDpp", lambda: SVDpp(random_state=0), peer("SVDpp")),
        ("ExplicitALS", None, lambda: ExplicitALS(random_state=0), None),
    ]


def bench_rating(args: argparse.Namespace) -> None:
    """5-fold CV of the rating rows (seed 42): RMSE/MAE/fit/predict vs scikit-surprise."""
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
            make().set_params(**({"epochs": 1} if "epochs" in make().get_params() else {})).fit(
                warm
            )
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
            for label, peer_name, make, peer_cls in models:
                model = make()
                t0 = time.perf_counter()
                model.fit(train)
                add(label, "fit_s", time.perf_counter() - t0)
                t0 = time.perf_counter()
                pred = model.predict(a_test["user"], a_test["item"]).astype(np.float64)
                add(label, "predict_s", time.perf_counter() - t0)
                add(label, "rmse", float(np.sqrt(np.mean((pred - truth) ** 2))))
                add(label, "mae", float(np.mean(np.abs(pred - truth))))
                if peer_cls is None or trainset is None:
                    continue
                if peer_name == "SVDpp" and name not in args.svdpp_datasets:
                    continue
                peer = peer_cls(random_state=0) if peer_name != "BaselineOnly" else peer_cls()
                plabel = f"surprise {peer_name}"
                t0 = time.perf_counter()
                peer.fit(trainset)
                add(plabel, "fit_s", time.perf_counter() - t0)
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
                    "predict_s": statistics.median(vals["predict_s"]),
                    "folds": len(vals["rmse"]),
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
                r["predict_speedup"] = peer_row["predict_s"] / r["predict_s"]
        print_table(
            f"rating prediction on {name}: mean RMSE/MAE over folds, median fit/predict "
            f"seconds per fold, speedup = surprise time / tastebud time",
            rows,
            [
                "model",
                "rmse",
                "mae",
                "fit_s",
                "predict_s",
                "peer",
                "rmse_diff",
                "fit_speedup",
                "predict_speedup",
            ],
        )
        all_rows.extend(rows)
    save("rating", {"args": vars(args), "rows": all_rows})


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
    p.add_argument("--threads", type=int, default=2, help="threads of the Hogwild SVD row")
    p.set_defaults(func=bench_rating)
    args = parser.parse_args(argv)
    print(json.dumps(machine_info()))
    args.func(args)


if __name__ == "__main__":
    main()
