"""Where the time of distributed ALS goes: a per-half-iteration breakdown per rank.

Worker-side timers (``perf_counter`` / ``thread_time`` inside each rank, see
``tastebud.distributed._als.worker_timings``) rather than the client's wall clock, so the
numbers hold on a loaded machine. For each half-iteration of each rank (one rank per worker):

* ``wait``: for the client to have reported the iteration before last (user half only;
  zero in a steady run);
* ``solve``: the warm-start copy and the C++ kernel over the rank's blocks;
* ``exchange``: sending its rows to the other ranks and receiving theirs (includes waiting
  for a slower rank: the imbalance);
* ``gram``: ``Y^T Y`` of the full new factors.

Also the CPU seconds of the client (with a LocalCluster the scheduler runs in the client's
process, so this includes the scheduler) and of the workers over the fit, against the
single-process fit (2 threads) on the same data.

    python profile_distributed.py --scale 1 --iterations 8
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from typing import Any

import numpy as np

from bench_distributed import RESULTS, als_params, make_split

PHASES = ("wait", "solve", "exchange", "gram")


def breakdown(records: list[dict[str, Any]], skip_first: int = 1) -> dict[str, Any]:
    """Median wall seconds per phase, per (worker, side), iterations ``skip_first`` on."""
    rows: dict[tuple[str, int], list[dict[str, float]]] = defaultdict(list)
    for r in records:
        side, _, it = r["tag"]
        if it >= skip_first:
            row = {p: r.get(p, 0.0) for p in PHASES}
            row["solve_cpu"] = r["solve_cpu"]
            row["half"] = r["end"] - r["start"]
            rows[(r["worker"], side)].append(row)
    out = {}
    for (worker, side), rs in sorted(rows.items()):
        out[f"{worker} {'users' if side == 0 else 'items'}"] = {
            k: statistics.median(r[k] for r in rs) for k in rs[0]
        }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--iterations", type=int, default=8)
    p.add_argument("--generator", choices=("fast", "synthetic"), default="fast")
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        help="client checkpoints (default: none, the workers keep replicas)",
    )
    p.add_argument(
        "--blocks", type=int, default=None, help="blocks per side (default: 1 per worker)"
    )
    p.add_argument(
        "--single-one-thread",
        action="store_true",
        help="also time a one-thread single-process fit (CPU per iteration of the same work)",
    )
    args = p.parse_args()

    from distributed import Client
    from tastebud.distributed import fit_als, local_cluster
    from tastebud.distributed._als import worker_timings
    from tastebud.models.als import ALS

    train, _ = make_split(args)
    print(f"data: {train.n_users} x {train.n_items}, nnz {train.nnz}", flush=True)
    single_times: list[float] = []
    single_cpu_at: list[float] = []

    def single_callback(i: int, s: float, _: Any) -> None:
        single_times.append(s)
        single_cpu_at.append(time.process_time())

    c0 = time.process_time()
    ref = ALS(**als_params(args), num_threads=2).fit(train, callback=single_callback)
    single_cpu = time.process_time() - c0
    one_thread_cpu = None
    if args.single_one_thread:
        marks: list[float] = []
        ALS(**als_params(args), num_threads=1).fit(
            train, callback=lambda i, s, _: marks.append(time.process_time())
        )
        one_thread_cpu = statistics.median(np.diff(marks))
    with local_cluster(n_workers=2, threads_per_worker=1) as cluster, Client(cluster) as client:
        client.run(worker_timings, True)
        cpu = lambda: (  # noqa: E731
            time.process_time(),
            client.run(time.process_time),
        )
        before = cpu()
        times: list[float] = []
        client_cpu_at: list[float] = []

        def callback(i: int, s: float, _: Any) -> None:
            times.append(s)
            client_cpu_at.append(time.process_time())

        model = ALS(**als_params(args), num_threads=1)
        t0 = time.perf_counter()
        fit_als(model, train, client=client, num_threads=1, blocks=args.blocks,
                checkpoint_every=args.checkpoint_every, callback=callback)  # fmt: skip
        wall = time.perf_counter() - t0
        after = cpu()
        recs = []
        for worker, rs in client.run(worker_timings, True).items():
            for r in rs:
                recs.append({**r, "worker": worker.rsplit(":", 1)[-1], "tag": tuple(r["tag"])})
    diff = max(
        float(np.abs(ref.user_factors_ - model.user_factors_).max()),
        float(np.abs(ref.item_factors_ - model.item_factors_).max()),
    )
    table = breakdown(recs)
    cols = [*PHASES, "solve_cpu", "half"]
    print(
        f"\nmedian seconds per half-iteration and worker (iterations 1..; factor diff {diff:.1e})"
    )
    print(f"{'worker side':<18}" + "".join(f"{c:>15}" for c in cols))
    for name, row in table.items():
        print(f"{name:<18}" + "".join(f"{row[c]:>15.3f}" for c in cols))
    s_single, s_dask = statistics.median(single_times), statistics.median(times)
    client_cpu = after[0] - before[0]
    client_iter_cpu = statistics.median(np.diff(client_cpu_at))
    worker_cpu = {w: after[1][w] - before[1][w] for w in after[1]}
    print(
        f"\nper iteration: single (2 threads) {s_single:.3f} s, dask {s_dask:.3f} s, overhead "
        f"{100 * (s_dask / s_single - 1):.1f} %\nCPU over the fit ({wall:.1f} s wall): "
        f"client+scheduler process {client_cpu:.2f} s ({client_iter_cpu:.3f} s per "
        f"iteration after the first), workers "
        + ", ".join(f"{v:.1f} s" for v in worker_cpu.values())
        + f"; single-process fit CPU {single_cpu:.1f} s"
    )
    # CPU accounting per iteration (the machine may be loaded: CPU seconds, not wall).
    single_iter_cpu = statistics.median(np.diff(single_cpu_at))
    iters = len(times)
    in_task = sum(r.get(p + "_cpu", 0.0) for r in recs for p in PHASES) / iters  # both workers
    phase_cpu = {p: sum(r.get(p + "_cpu", 0.0) for r in recs) / iters for p in PHASES}
    outside = sum(worker_cpu.values()) / iters - in_task
    dask_cpu = in_task + outside + client_iter_cpu
    print(
        "\nCPU seconds per iteration, both workers together: "
        + ", ".join(f"{p} {v:.3f}" for p, v in phase_cpu.items())
        + f"; worker CPU outside tasks (transfers, event loop; setup included) {outside:.3f}; "
        f"client+scheduler {client_iter_cpu:.3f}; total {dask_cpu:.3f} vs single-process "
        f"{single_iter_cpu:.3f} (CPU overhead {100 * (dask_cpu / single_iter_cpu - 1):.1f} %)"
        + ("" if one_thread_cpu is None else f"; single process, 1 thread: {one_thread_cpu:.3f}")
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"distributed_profile_scale{args.scale:g}.json").write_text(
        json.dumps({"args": vars(args), "breakdown": table, "single_s_per_iter": s_single,
                    "dask_s_per_iter": s_dask, "client_cpu": client_cpu,
                    "client_cpu_per_iteration": client_iter_cpu, "worker_cpu": worker_cpu,
                    "max_factor_diff": diff, "single_cpu_per_iteration": single_iter_cpu,
                    "dask_cpu_per_iteration": dask_cpu, "phase_cpu_per_iteration": phase_cpu,
                    "single_one_thread_cpu_per_iteration": one_thread_cpu,
                    "worker_cpu_outside_tasks_per_iteration": outside, "records": recs}, indent=1, default=str)
    )  # fmt: skip


if __name__ == "__main__":
    main()
