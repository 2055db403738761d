"""Cut ties in the solver's packed entries: the word 0 (column 0) against the column kept, side by side.

A cut tie stays in the matrix as an entry of weight 0. Since 0.4.13 its packed word is 0, so the
pass reads ``x[0]``, which stays in every core's cache, where it used to read the score of the
tie's other end from anywhere in the vector. Both give the same bits (``0 * x`` adds +0.0). This
builds the Rongcheng city (no run), cuts a share of its ties at random through the engine's own
``Ties.cut``, and times the compiled Friedkin-Johnsen solve on the packed entries as the engine
keeps them and on a copy whose cut entries keep their columns (the layout before), alternated in
one process.

    python benchmarks/bench_cut_entries.py --shares 0.05 0.1 0.2 --repeat 9
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from socialcredit import kernels
from socialcredit.engine import Engine
from socialcredit.scenario import load_scenario


def pass_times(engine: Engine, entries: dict[str, np.ndarray], repeat: int) -> dict[str, list[float]]:
    """Milliseconds per pass of the compiled solve of the engine's first step on each set of entries."""
    ties = engine.ties
    adjacency, k = ties.adjacency, kernels._compile()
    table = kernels.packed_entries(adjacency, k).table
    n = adjacency.shape[0]
    points = np.random.default_rng(1).normal(1000.0, 40.0, n)
    base, coef = kernels.coupling_terms(points, ties.weighted_degree(), 0.3)
    indptr = kernels._unsigned(adjacency.indptr)
    times: dict[str, list[float]] = {name: [] for name in entries}
    scores: dict[str, bytes] = {}
    for r in range(repeat):
        for name in (list(entries) if r % 2 == 0 else list(entries)[::-1]):
            jacobi, spare = np.empty(n), np.empty((3, n))
            t0 = time.perf_counter()
            iterations, score = k.solve(indptr, entries[name], table, points, base, coef, 0.09, 1e-4 * 0.7 / 0.3,
                                        np.empty(0), jacobi, spare)
            times[name].append((time.perf_counter() - t0) / iterations * 1000)
            scores[name] = score.tobytes()
    if len(set(scores.values())) != 1:
        raise AssertionError("the two layouts gave different scores")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", default="scenarios/rongcheng.toml")
    parser.add_argument("--shares", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    if not kernels.load():
        raise SystemExit("this benchmark needs the compiled kernels (numba)")
    engine = Engine(load_scenario(args.scenario))
    ties, rng = engine.ties, np.random.default_rng(7)
    packed = kernels.packed_entries(ties.adjacency, kernels._compile())
    rows, cut_so_far = [], 0
    for share in sorted(args.shares):
        order = rng.permutation(np.flatnonzero(ties.active))
        more = int(round(share * ties.n_ties)) - cut_so_far
        ties.cut(np.sort(order[:max(more, 0)]), day=0)
        cut_so_far += max(more, 0)
        zero = np.flatnonzero(ties.adjacency.data == 0)
        kept = packed.entries.copy()
        kept[zero] = ties.adjacency.indices[zero].astype(np.uint32)  # weight code 0, the column kept
        times = pass_times(engine, {"word 0": packed.entries, "column kept": kept}, args.repeat)
        now, before = statistics.median(times["word 0"]), statistics.median(times["column kept"])
        rows.append({"cut_share": cut_so_far / ties.n_ties, "ms_per_pass": now, "ms_per_pass_column_kept": before,
                     "ratio": before / now})
        print(f"cut {cut_so_far / ties.n_ties:6.1%}: {now:6.2f} ms a pass, column kept {before:6.2f} ms: "
              f"{before / now:.3f}x (medians of {args.repeat}, same bits)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"scenario": args.scenario, "repeat": args.repeat, "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
