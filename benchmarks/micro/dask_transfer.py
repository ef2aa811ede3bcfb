"""What moving a factor block between two Dask workers costs (issue #11).

Distributed ALS moves every worker's factor block to the other worker twice per iteration
(at full scale 25.6 MB of user factors and 6.4 MB of item factors each way). This times one
block sent one way and two blocks crossing (both workers fetch at once, as in the fit), on a
LocalCluster of 2 worker processes x 1 thread over loopback, and the CPU seconds the sending
and receiving worker spend per transfer.

    python benchmarks/micro/dask_transfer.py [--rows 100000] [--repeats 10]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def _make(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 64), dtype=np.float32)


def _use(*blocks: np.ndarray) -> float:
    return float(blocks[0][0, 0])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rows", type=int, default=100_000, help="rows of 64 float32 per block")
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args()
    from distributed import Client, LocalCluster, wait

    mb = args.rows * 64 * 4 / 1e6
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cl,
        Client(cl) as c,
    ):
        a, b = sorted(c.nthreads())
        for mode in ("one way", "both ways"):
            walls, cpu_a, cpu_b = [], [], []
            for rep in range(args.repeats):
                xa = c.submit(_make, args.rows, rep, workers=[a], pure=False)
                xb = c.submit(_make, args.rows, rep + 1000, workers=[b], pure=False)
                wait([xa, xb])
                before = c.run(time.process_time)
                t0 = time.perf_counter()
                tasks = [c.submit(_use, xa, xb, workers=[b], pure=False)]
                if mode == "both ways":
                    tasks.append(c.submit(_use, xb, xa, workers=[a], pure=False))
                c.gather(tasks)
                walls.append(time.perf_counter() - t0)
                after = c.run(time.process_time)
                cpu_a.append(after[a] - before[a])
                cpu_b.append(after[b] - before[b])
                del xa, xb, tasks
            print(
                f"{mode:>9}: {mb:.1f} MB per block, median wall {1e3 * statistics.median(walls):.1f} "
                f"ms (submit to result, scheduler round trips included); CPU worker A "
                f"{1e3 * statistics.median(cpu_a):.1f} ms, worker B {1e3 * statistics.median(cpu_b):.1f} ms"
            )


if __name__ == "__main__":
    main()
