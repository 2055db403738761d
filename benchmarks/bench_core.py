"""Core benchmarks: whole runs, and the act sampler beside a per-citizen-day baseline.

Run from the repository root:

    python benchmarks/bench_core.py                 # reference (5 runs), acts stage, rongcheng (1 run)
    python benchmarks/bench_core.py --rongcheng 3   # three full Rongcheng runs
    git worktree add /tmp/v040 dad6464 && \
    python benchmarks/bench_core.py --reference 0 --acts 0 --rongcheng 5 --against /tmp/v040
                                                    # 0.4.0 (commit dad6464) and this checkout, alternated;
                                                    # both run this checkout's scenario files

Each whole run is timed in a fresh subprocess (``wall``: interpreter start,
imports, build, run and writing the run folder; ``run``: ``socialcredit.run``
alone) (so peak memory is the run's
own, read from the kernel's VmHWM), and figures are printed as medians.
The act-sampler comparison draws one day of acts for every record type of
the Rongcheng city twice, side by side in one process: once as the engine
does (one Poisson count per type, then the acting citizens in proportion to
their rates: cost grows with acts) and once the naive way (one Poisson draw
per citizen and type: cost grows with citizen-days x types).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from machine import describe  # a sibling script (its folder is first on the path)

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys, time, tempfile
t0 = time.perf_counter()
src = sys.argv[1]
if src:  # another checkout's package, first on the path
    sys.path.insert(0, src)
import socialcredit as sc
assert not src or sc.__file__.startswith(src), f"imported {sc.__file__}, not the package under {src}"
scenario = sc.load_scenario(sys.argv[2], sys.argv[3:])
estimate = sc.estimate_memory(scenario)["total"]
with tempfile.TemporaryDirectory() as tmp:
    t1 = time.perf_counter()
    result = sc.run(scenario, out=tmp + "/run", force=True)
    run_s = time.perf_counter() - t1
    wall = time.perf_counter() - t0
hwm = 0
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        hwm = int(line.split()[1]) * 1024
print(json.dumps({"wall_s": wall, "run_s": run_s, "peak_bytes": hwm, "estimate_bytes": estimate,
                  "timings": result.engine.timings, "blacklisted": result.summary["blacklisted"]}))
"""


def _one_run(scenario: str, overrides: list[str], src: str = "") -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, src, scenario, *overrides], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def whole_run(scenario: str, overrides: list[str], repeat: int, against: Path | None = None) -> dict:
    """Time ``repeat`` runs of a scenario, each in its own process.

    With ``against`` (another checkout of the repository), its package runs the
    same scenario in alternation with this one, run for run, so that both see
    the same load on the machine; the figures of both and their ratio are returned.
    """
    if against is None:
        return _summary(scenario, overrides, [_one_run(scenario, overrides) for _ in range(repeat)])
    src = str((against / "src").resolve())
    this, other = [], []
    for _ in range(repeat):
        other.append(_one_run(str(ROOT / scenario), overrides, src))
        this.append(_one_run(scenario, overrides))
    mine, theirs = _summary(scenario, overrides, this), _summary(scenario, overrides, other)
    return {"this": mine, "against": {"checkout": str(against), **theirs},
            "ratio_median_wall": theirs["median_wall_s"] / mine["median_wall_s"],
            "ratio_min_wall": theirs["min_wall_s"] / mine["min_wall_s"]}


def _summary(scenario: str, overrides: list[str], samples: list[dict]) -> dict:
    repeat = len(samples)
    walls = [s["wall_s"] for s in samples]
    runs = [s["run_s"] for s in samples]
    peaks = [s["peak_bytes"] for s in samples]
    return {
        "scenario": scenario, "overrides": overrides, "runs": repeat,
        "median_wall_s": statistics.median(walls), "min_wall_s": min(walls),
        "median_run_s": statistics.median(runs),
        "median_peak_gib": statistics.median(peaks) / 2**30,
        "estimate_gib": samples[0]["estimate_bytes"] / 2**30,
        "estimate_over_peak": samples[0]["estimate_bytes"] / statistics.median(peaks),
        "stage_timings_s": samples[len(samples) // 2]["timings"],
    }


def act_sampler(repeat: int) -> dict:
    """Candidate acts of the Rongcheng city: the engine's week blocks and one day, vs per-citizen draws."""
    import numpy as np

    import socialcredit as sc
    from socialcredit.population import build_population
    from socialcredit.records import BLOCK_DAYS, ActSampler, Catalogue, draw_candidates

    scenario = sc.load_scenario(ROOT / "scenarios" / "rongcheng.toml")
    pop = build_population(scenario, scenario.seed)
    samplers = [ActSampler(row) for row in pop.base_rate]
    keys = Catalogue.of(scenario).type_keys
    rng = np.random.default_rng(0)
    block_s, day_s, naive_s = [], [], []
    for r in range(repeat):
        t0 = time.perf_counter()
        block = draw_candidates(samplers, keys, scenario.seed, BLOCK_DAYS * r, BLOCK_DAYS)
        block_s.append((time.perf_counter() - t0) / BLOCK_DAYS)
        t0 = time.perf_counter()
        engine_acts = sum(s.draw(rng).size for s in samplers)
        day_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        naive_acts = int(sum(rng.poisson(row).sum() for row in pop.base_rate))
        naive_s.append(time.perf_counter() - t0)
    b, e, n = statistics.median(block_s), statistics.median(day_s), statistics.median(naive_s)
    return {"citizens": pop.size, "types": len(samplers), "acts_per_day": engine_acts,
            "block_acts_per_day": block.citizen.size / BLOCK_DAYS, "naive_acts_per_day": naive_acts,
            "block_median_s_per_day": b, "engine_median_s": e, "naive_median_s": n,
            "speedup": n / b, "speedup_one_day": n / e}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", type=int, default=5, help="runs of reference.toml (0: skip)")
    parser.add_argument("--rongcheng", type=int, default=1, help="full-size runs of rongcheng.toml (0: skip)")
    parser.add_argument("--acts", type=int, default=20, help="repeats of the act-sampler comparison (0: skip)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--against", type=Path, default=None,
                        help="another checkout (e.g. from git worktree add): its whole runs alternate with this one's")
    args = parser.parse_args()
    report = {"machine": describe()}
    if args.reference:
        report["reference"] = whole_run("scenarios/reference.toml", [], args.reference, args.against)
        print(json.dumps(report["reference"], indent=2))
    if args.acts:
        report["acts"] = act_sampler(args.acts)
        print(json.dumps(report["acts"], indent=2))
    if args.rongcheng:
        report["rongcheng"] = whole_run("scenarios/rongcheng.toml", [], args.rongcheng, args.against)
        print(json.dumps(report["rongcheng"], indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
