"""Sweep benchmark: the same sweep with 1 and with 2 (or more) worker processes.

Run from the repository root:

    python benchmarks/bench_sweep.py                      # reference at 5,000 citizens, 4 cells x 2 replicates
    python benchmarks/bench_sweep.py --repeat 5 --workers 1 2 4

Two times are taken for each worker count, as medians over ``--repeat`` sweeps
into fresh folders:

- ``sweep``: ``run_cells`` on an already running ``LocalCluster`` (passed as
  ``scheduler=``): validation, the runs, their files and the summary. The
  speed-up is computed from this time.
- ``total``: ``run_cells`` with its embedded cluster, as the CLI runs it, so
  worker start-up (process spawn, imports) is included.

Every sweep must give the same ``summary.parquet`` bytes whatever the number of
workers; the benchmark checks that too. The target is a speed-up of at least
1.8x with 2 workers on 2 cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from machine import describe  # a sibling script (its folder is first on the path)

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", default=str(ROOT / "scenarios" / "reference.toml"))
    parser.add_argument("--size", type=int, default=5000, help="population.size (default 5000)")
    parser.add_argument("--kappa", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75],
                        help="coupling.kappa values: one cell each (default 4 cells)")
    parser.add_argument("--replicates", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=3, help="sweeps per timing (median reported)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    from distributed import LocalCluster

    from socialcredit.sweep import expand_grid, run_cells

    cells = expand_grid({"coupling.kappa": args.kappa})
    overrides = [f"population.size={args.size}"]
    runs = len(cells) * args.replicates
    print(f"sweep: {Path(args.scenario).name} at {args.size:,} citizens, {len(cells)} cells x "
          f"{args.replicates} replicates = {runs} runs; {os.cpu_count()} CPUs; median of {args.repeat}")

    def one(out: Path, **kwargs) -> tuple[float, str]:
        t0 = time.perf_counter()
        run_cells(args.scenario, cells, args.replicates, out, seed=1, progress=False, overrides=overrides, **kwargs)
        return time.perf_counter() - t0, hashlib.sha256((out / "summary.parquet").read_bytes()).hexdigest()

    results: dict[int, dict[str, float]] = {}
    digests = set()
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.workers:
            with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                              env={"NUMBA_NUM_THREADS": "1"}) as cluster:
                one(Path(tmp) / f"warm-{n}", scheduler=cluster.scheduler_address)  # workers import and warm up
                sweeps = []
                for i in range(args.repeat):
                    seconds, digest = one(Path(tmp) / f"w{n}-{i}", scheduler=cluster.scheduler_address)
                    sweeps.append(seconds)
                    digests.add(digest)
            totals = []
            for i in range(args.repeat):
                seconds, digest = one(Path(tmp) / f"e{n}-{i}", workers=n)
                totals.append(seconds)
                digests.add(digest)
            results[n] = {"sweep_s": statistics.median(sweeps), "total_s": statistics.median(totals)}
            print(f"  {n} worker(s): sweep {results[n]['sweep_s']:6.2f} s   total {results[n]['total_s']:6.2f} s"
                  f"   ({results[n]['sweep_s'] / runs:.2f} s per run per sweep)")
    base = results[min(results)]
    for n, r in results.items():
        if n != min(results):
            print(f"  speed-up {min(results)} -> {n} workers: sweep {base['sweep_s'] / r['sweep_s']:.2f}x, "
                  f"total {base['total_s'] / r['total_s']:.2f}x")
    same = len(digests) == 1
    print(f"  summary.parquet identical across all sweeps: {same}")
    if args.json:
        args.json.write_text(json.dumps({"machine": describe(), "runs": runs,
                                         "size": args.size, "results": results, "identical": same}, indent=2))
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
