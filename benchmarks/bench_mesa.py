"""Side-by-side baseline: the engine against the reference model written in Mesa 3.

Run from the repository root (needs ``pip install "mesa>=3,<4"``):

    python benchmarks/bench_mesa.py                        # N = 1,000 and 5,000, full year
    python benchmarks/bench_mesa.py --days 28              # quick check: 4 weeks
    python benchmarks/bench_mesa.py --sizes 1000 --repeat 5 --json benchmarks/out/mesa.json

Both sides run ``scenarios/reference.toml`` with ``population.size=N`` (and ``days=D`` with
``--days``) in this one process, one after the other: the engine as ``socialcredit.run(scenario)``
(build and run, no run folder), twice per repeat: with its compiled kernels loaded (as in any
process that ran a large city or called ``socialcredit.kernels.load()``: a sweep's worker, a
notebook) and on its numpy/scipy path (a single small run in a fresh process); the baseline as
``ReferenceModel(scenario, seed)`` followed by ``model.run()`` (build and run;
``benchmarks/baselines/mesa_reference.py``). Repeat ``r`` uses seed
``scenario.seed + r`` on both sides. Before any timing, one tiny run of each (N = 50, 14 days) takes
the imports, numba's compilation or cache loading and networkx's first use out of the figures.

The engine is timed ``--repeat`` times per N. The baseline is timed up to ``--mesa-repeat`` times,
but once one run at a size has taken longer than ``--mesa-budget`` seconds, that size gets no
further runs (the JSON says how many runs each median is over). The JSON gives seconds per simulated
day; with ``--days`` shorter than a year it also gives the full-year figure that extrapolates to
(build time once, plus the rest scaled by 364 / days; the per-day cost grows slightly over a year
as ledgers fill and blacklists grow, so for the baseline that extrapolation is a lower bound).
Printed: one JSON object with the medians and the speed ratio Mesa / engine per N (a one-line
summary per N goes to stderr as it finishes).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import socialcredit as sc  # noqa: E402
from machine import describe  # noqa: E402  (a sibling script, not a package)

REFERENCE = ROOT / "scenarios" / "reference.toml"


def _scenario(n: int, days: int | None):
    overrides = [f"population.size={n}"] + ([f"days={days}"] if days else [])
    return sc.load_scenario(REFERENCE, overrides)


def time_engine(scenario, repeat: int, kernels) -> tuple[dict, dict]:
    """The engine with its compiled kernels loaded, and on its numpy/scipy path, alternated run by run.

    A small city uses the kernels once the process has loaded them (``kernels.REUSE_LOADED``); a
    single small run in a fresh process takes the numpy/scipy path, which is the second figure.
    """
    sides = {True: ([], []), False: ([], [])}
    timings = {}
    for r in range(repeat):
        for reuse in (True, False):
            kernels.REUSE_LOADED = reuse
            walls, black = sides[reuse]
            t0 = time.perf_counter()
            result = sc.run(scenario, seed=scenario.seed + r)
            walls.append(time.perf_counter() - t0)
            black.append(result.summary["blacklisted"])
            timings[reuse] = result.engine.timings
    kernels.REUSE_LOADED = True
    assert sides[True][1] == sides[False][1], "the two paths must give the same runs"
    return tuple({"runs": repeat, "median_s": statistics.median(walls), "min_s": min(walls), "samples_s": walls,
                  "stage_timings_s": timings[reuse], "blacklisted": black}
                 for reuse, (walls, black) in sides.items())


def time_mesa(scenario, repeat: int, budget: float) -> dict:
    from baselines.mesa_reference import ReferenceModel

    walls, black, timings = [], [], []
    for r in range(repeat):
        t0 = time.perf_counter()
        model = ReferenceModel(scenario, seed=scenario.seed + r)
        model.run()
        walls.append(time.perf_counter() - t0)
        black.append(model.last_row()["blacklisted"])
        timings.append(model.timings)
        del model
        if walls[-1] > budget:
            break
    return {"runs": len(walls), "median_s": statistics.median(walls), "min_s": min(walls), "samples_s": walls,
            "stage_timings_s": timings[len(timings) // 2], "blacklisted": black}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000], help="population sizes N")
    parser.add_argument("--days", type=int, default=None, help="simulate this many days (default: the scenario's 364)")
    parser.add_argument("--repeat", type=int, default=3, help="engine runs per N")
    parser.add_argument("--mesa-repeat", type=int, default=3, help="at most this many Mesa runs per N")
    parser.add_argument("--mesa-budget", type=float, default=120.0,
                        help="no further Mesa runs at a size once one took longer than this (s)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    import mesa
    import networkx as nx
    import numba
    import numpy as np

    from baselines.mesa_reference import ReferenceModel

    from socialcredit import kernels

    # Warm-up: imports, numba compilation / cache load, first use of networkx and Mesa.
    tiny = sc.load_scenario(REFERENCE, ["population.size=50", "days=14"])
    sc.run(tiny)
    kernels.load()
    sc.run(tiny)  # the small-city overloads of the kernels, compiled or loaded from Numba's cache
    ReferenceModel(tiny).run()

    report = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": describe(),
        "versions": {"socialcredit": sc.__version__, "mesa": mesa.__version__, "networkx": nx.__version__,
                     "numpy": np.__version__, "numba": numba.__version__},
        "sizes": {},
    }
    for n in args.sizes:
        scenario = _scenario(n, args.days)
        # the two paths alternate run by run, so a change in the host's load reaches both alike
        engine, plain = time_engine(scenario, args.repeat, kernels)
        baseline = time_mesa(scenario, args.mesa_repeat, args.mesa_budget)
        days = scenario.days
        entry = {
            "citizens": n, "days": days, "scoring_steps": days // scenario.scoring.every_days,
            "engine": engine, "engine_plain": plain, "mesa": baseline,
            "ratio_mesa_over_engine": baseline["median_s"] / engine["median_s"],
            "ratio_mesa_over_engine_plain": baseline["median_s"] / plain["median_s"],
            "engine_s_per_day": engine["median_s"] / days, "mesa_s_per_day": baseline["median_s"] / days,
        }
        if days < 364:
            # build once, plus the simulated days scaled to a year
            entry["extrapolated_364_days_s"] = {
                side: t["stage_timings_s"]["build"] + (t["median_s"] - t["stage_timings_s"]["build"]) * 364 / days
                for side, t in (("engine", engine), ("mesa", baseline))}
            entry["extrapolated_ratio"] = (entry["extrapolated_364_days_s"]["mesa"]
                                           / entry["extrapolated_364_days_s"]["engine"])
        report["sizes"][str(n)] = entry
        print(f"N = {n:,}, {days} days: engine {engine['median_s']:.3f} s ({engine['runs']} runs), "
              f"Mesa {baseline['median_s']:.2f} s ({baseline['runs']} runs), "
              f"ratio {entry['ratio_mesa_over_engine']:.0f}x (numpy/scipy path {plain['median_s']:.3f} s, "
              f"{entry['ratio_mesa_over_engine_plain']:.0f}x)", file=sys.stderr, flush=True)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
