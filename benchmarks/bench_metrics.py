"""Benchmark: precision/recall/NDCG/MAP/MRR@10 together — tastebud vs numpy vs ranx.

Run as a script (prints a table, writes ``benchmarks/results/metrics.json``)::

    python benchmarks/bench_metrics.py                 # 100,000 users (the issue's size)
    python benchmarks/bench_metrics.py --users 10000   # quick run
    python benchmarks/bench_metrics.py --no-ranx       # skip the (slow) ranx build

or through pytest-benchmark (skipped by default by ``--benchmark-skip``)::

    pytest benchmarks/bench_metrics.py --benchmark-only

Data (seed 42): ``n_items`` = 20,000, 100 ranked items per user and 1–50 relevant
items per user, both drawn from the same long-tailed popularity distribution so
lists get hits. Every implementation computes the same five per-user arrays at
k = 10 (the definitions of tastebud.metrics); the script checks they agree before timing.

- tastebud: :func:`tastebud.metrics.ranking_metrics` (validation included); first
  call includes Numba JIT compilation, then the median of 5 warm calls.
- numpy: a straightforward vectorized implementation (below): per batch of users a
  dense boolean relevance matrix, ``np.take_along_axis`` for hits, then cumsum /
  matrix-vector products for the metrics.
- ranx: ``Qrels``/``Run`` built once from the same arrays (build time reported
  separately), then ``ranx.evaluate``. By default the Run holds each user's whole
  ranked list (100 items, the issue's protocol); ``--ranx-width 10`` gives ranx only the
  top 10 that @10 metrics read, its cheapest setting.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

K = 10
METRICS = ("precision", "recall", "ndcg", "map", "mrr")
RESULTS = Path(__file__).resolve().parent / "results" / "metrics.json"


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------


def _distinct_draws(
    rng: np.random.Generator, p: np.ndarray, n_rows: int, width: int, n_cand: int
) -> np.ndarray:
    """``(n_rows, width)`` rows of distinct items drawn from ``p`` (-1 if too few)."""
    cand = rng.choice(p.size, size=(n_rows, n_cand), p=p)
    order = np.argsort(cand, axis=1, kind="stable")
    srt = np.take_along_axis(cand, order, axis=1)
    dup_sorted = np.zeros_like(srt, dtype=bool)
    dup_sorted[:, 1:] = srt[:, 1:] == srt[:, :-1]
    dup = np.empty_like(dup_sorted)
    np.put_along_axis(dup, order, dup_sorted, axis=1)
    keep = np.argsort(dup, axis=1, kind="stable")[:, :width]  # first distinct, in draw order
    out = np.take_along_axis(cand, keep, axis=1)
    out[np.take_along_axis(dup, keep, axis=1)] = -1
    return out


@functools.lru_cache(maxsize=4)
def make_data(
    n_users: int, n_items: int = 20_000, width: int = 100, max_rel: int = 50, seed: int = 42
) -> tuple[np.ndarray, sp.csr_array]:
    rng = np.random.default_rng(seed)
    p = 1.0 / (np.arange(n_items) + 50.0) ** 0.8
    p = p[rng.permutation(n_items)]
    p /= p.sum()
    recommended = np.empty((n_users, width), dtype=np.int64)
    rel_rows = []
    step = 20_000
    for lo in range(0, n_users, step):
        hi = min(n_users, lo + step)
        recommended[lo:hi] = _distinct_draws(rng, p, hi - lo, width, width + 60)
        rel_rows.append(_distinct_draws(rng, p, hi - lo, max_rel, max_rel + 30))
    rel = np.concatenate(rel_rows)
    n_rel = rng.integers(1, max_rel + 1, size=n_users)
    mask = (np.arange(max_rel)[None, :] < n_rel[:, None]) & (rel >= 0)
    rows = np.nonzero(mask)[0]
    relevant = sp.csr_array(
        (np.ones(rows.size), (rows, rel[mask])), shape=(n_users, n_items), dtype=np.float64
    )
    relevant.sum_duplicates()
    return recommended, relevant


# ---------------------------------------------------------------------------
# the three implementations
# ---------------------------------------------------------------------------


def run_tastebud(recommended: np.ndarray, relevant: sp.csr_array) -> dict[str, np.ndarray]:
    from tastebud.metrics import ranking_metrics

    return ranking_metrics(recommended, relevant, K, METRICS)


def run_numpy(
    recommended: np.ndarray, relevant: sp.csr_array, batch: int = 2_000
) -> dict[str, np.ndarray]:
    """Straightforward vectorized numpy: dense relevance lookup per user batch."""
    n_users, n_items = relevant.shape
    top = recommended[:, :K]
    discounts = 1.0 / np.log2(np.arange(2, K + 2))
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])
    ranks = np.arange(1, K + 1)
    n_rel = np.diff(relevant.indptr)
    out = {m: np.empty(n_users) for m in METRICS}
    for lo in range(0, n_users, batch):
        hi = min(n_users, lo + batch)
        block = relevant[lo:hi]
        dense = np.zeros((hi - lo, n_items + 1), dtype=bool)  # last column: the -1 slot
        dense[np.repeat(np.arange(hi - lo), np.diff(block.indptr)), block.indices] = True
        hits = np.take_along_axis(dense, np.where(top[lo:hi] < 0, n_items, top[lo:hi]), axis=1)
        n_hits = hits.sum(axis=1)
        nr = n_rel[lo:hi]
        cut = np.minimum(nr, K)
        out["precision"][lo:hi] = n_hits / K
        out["recall"][lo:hi] = n_hits / nr
        out["ndcg"][lo:hi] = (hits @ discounts) / ideal[cut]
        out["map"][lo:hi] = ((np.cumsum(hits, axis=1) / ranks) * hits).sum(axis=1) / cut
        first = hits.argmax(axis=1)
        out["mrr"][lo:hi] = np.where(hits.any(axis=1), 1.0 / (first + 1), 0.0)
    return out


def build_ranx(recommended: np.ndarray, relevant: sp.csr_array, width: int = K):
    """ranx Qrels/Run from the arrays; the Run holds each user's first ``width`` items."""
    import ranx

    n_users = relevant.shape[0]
    qids = [f"u{u}" for u in range(n_users)]
    qrels = {}
    for u in range(n_users):
        idx = relevant.indices[relevant.indptr[u] : relevant.indptr[u + 1]]
        qrels[qids[u]] = dict.fromkeys((f"i{i}" for i in idx.tolist()), 1)
    scores = [float(width - r) for r in range(width)]
    run = {}
    for u, row in enumerate(recommended[:, :width].tolist()):
        run[qids[u]] = {f"i{i}": s for i, s in zip(row, scores, strict=True) if i >= 0}
    return ranx.Qrels(qrels), ranx.Run(run)


def run_ranx(qrels, run) -> dict[str, float]:
    import numba
    import ranx

    names = [f"{m}@{K}" for m in METRICS]
    with warnings.catch_warnings():  # ranx's kernels warn while they compile
        warnings.simplefilter("ignore", numba.NumbaTypeSafetyWarning)
        res = ranx.evaluate(qrels, run, names, make_comparable=False)
    return {m: res[n] for m, n in zip(METRICS, names, strict=True)}


# ---------------------------------------------------------------------------
# script
# ---------------------------------------------------------------------------


def _timed(fn, *args):
    t0 = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - t0, result


def _median(fn, *args, repeats: int = 5) -> float:
    return statistics.median(_timed(fn, *args)[0] for _ in range(repeats))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-ranx", action="store_true", help="skip ranx")
    parser.add_argument(
        "--ranx-width",
        type=int,
        default=100,
        help="items per user given to ranx's Run (100 = the whole list, the issue's protocol; "
        "10 = only what @10 reads, ranx's cheapest setting)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    import numba

    t_data, (rec, rel) = _timed(make_data, args.users, args.items)
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}, "
        f"{os.cpu_count()} CPUs, numba threads {numba.get_num_threads()}, {platform.processor()}"
    )
    print(
        f"data: {args.users:,} users x {args.items:,} items, {rec.shape[1]} ranked/user, "
        f"{rel.nnz:,} relevant ({t_data:.1f} s to generate); k = {K}; metrics {', '.join(METRICS)}"
    )

    rows: dict[str, dict] = {}
    t_first, ours = _timed(run_tastebud, rec, rel)
    t_warm = _median(run_tastebud, rec, rel, repeats=args.repeats)
    rows["tastebud"] = {"first_call_s": t_first, "warm_median_s": t_warm}
    means = {m: float(np.nanmean(v)) for m, v in ours.items()}

    t_np_first, theirs = _timed(run_numpy, rec, rel)
    for m in METRICS:
        np.testing.assert_allclose(ours[m], theirs[m], rtol=1e-12, atol=1e-12, err_msg=m)
    t_np = _median(run_numpy, rec, rel, repeats=args.repeats)
    rows["numpy"] = {"first_call_s": t_np_first, "warm_median_s": t_np}

    if not args.no_ranx:
        try:
            t_build, (qrels, run) = _timed(build_ranx, rec, rel, min(args.ranx_width, rec.shape[1]))
            t_ranx_first, ranx_means = _timed(run_ranx, qrels, run)
            from tastebud.metrics import map_at_k

            # ranx's map@k divides by |T_u| (tastebud: min(k, |T_u|)); compare like with like
            check = dict(means, map=map_at_k(rec, rel, K, denominator="relevant"))
            for m in METRICS:
                if abs(ranx_means[m] - check[m]) > 1e-9:
                    raise AssertionError(f"ranx disagrees on {m}: {ranx_means[m]} vs {check[m]}")
            t_ranx = _median(run_ranx, qrels, run, repeats=max(1, min(args.repeats, 3)))
            rows["ranx"] = {
                "build_s": t_build,
                "first_call_s": t_ranx_first,
                "warm_median_s": t_ranx,
            }
        except ImportError:
            print("ranx not installed: skipped")

    print()
    print(f"{'implementation':<16}{'first call':>12}{'warm median':>14}{'build':>10}"
          f"{'warm / tastebud':>18}")  # fmt: skip
    for name, r in rows.items():
        build = f"{r['build_s']:.2f} s" if "build_s" in r else "-"
        ratio = r["warm_median_s"] / t_warm
        r["ratio_vs_tastebud"] = ratio
        print(
            f"{name:<16}{r['first_call_s']:>10.3f} s{r['warm_median_s']:>12.4f} s{build:>10}"
            f"{ratio:>17.1f}x"
        )
    print("\nmeans: " + ", ".join(f"{m}@{K}={v:.5f}" for m, v in means.items()))
    goals = {"numpy_ratio>=4": rows["numpy"]["ratio_vs_tastebud"] >= 4}
    if "ranx" in rows:
        goals["ranx_ratio>=100"] = rows["ranx"]["ratio_vs_tastebud"] >= 100
    print("goals: " + ", ".join(f"{g}: {'met' if ok else 'NOT met'}" for g, ok in goals.items()))

    result = {
        "benchmark": "ranking_metrics@10 (precision, recall, ndcg, map, mrr)",
        "users": args.users,
        "items": args.items,
        "list_width": int(rec.shape[1]),
        "relevant_nnz": int(rel.nnz),
        "k": K,
        "seed": 42,
        "repeats": args.repeats,
        "cpu_count": os.cpu_count(),
        "numba_threads": numba.get_num_threads(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "results": rows,
        "means": means,
        "goals": goals,
        "command": " ".join(
            [Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]
        ),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")
    return result


# ---------------------------------------------------------------------------
# pytest-benchmark
# ---------------------------------------------------------------------------

SIZES = [1_000, 10_000, 100_000]


@pytest.mark.parametrize("n_users", SIZES)
def test_bench_tastebud(benchmark, n_users):
    rec, rel = make_data(n_users)
    run_tastebud(rec, rel)  # JIT outside the timing
    result = benchmark(run_tastebud, rec, rel)
    assert set(result) == set(METRICS)


@pytest.mark.parametrize("n_users", SIZES)
def test_bench_numpy(benchmark, n_users):
    rec, rel = make_data(n_users)
    result = benchmark(run_numpy, rec, rel)
    assert set(result) == set(METRICS)


@pytest.mark.parametrize("n_users", [1_000, 10_000])
def test_bench_ranx(benchmark, n_users):
    pytest.importorskip("ranx")
    rec, rel = make_data(n_users)
    qrels, run = build_ranx(rec, rel)
    run_ranx(qrels, run)  # JIT outside the timing
    result = benchmark(run_ranx, qrels, run)
    assert set(result) == set(METRICS)


if __name__ == "__main__":
    main()
