"""Scale: cost per citizen-year from 10^4 to 10^7 citizens, and memory against the estimate.

Run from the repository root:

    python benchmarks/bench_scale.py                        # 10^4, 10^5, 10^6 (3 runs each), 10^7 (1 run)
    python benchmarks/bench_scale.py --sizes 10000 100000   # a quick look

Every size runs the reference model (``scenarios/reference.toml``: its rules,
364 days, weekly scoring) on a small-world network of mean degree 20
(Watts-Strogatz, ``k = 20``, 10 % of ties rewired at random), each run in a
fresh process that writes its run folder, exactly as ``whole_run`` in
``bench_core.py`` does. Printed and written: median run time, cost per
citizen-year (run seconds / (citizens x days / 365)), measured peak memory
(VmHWM), the memory estimate and their ratio. The figure
``benchmarks/scale.svg`` plots cost per citizen-year and peak bytes per citizen
against the population; flat lines mean cost grows with the city, not faster.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_core import whole_run  # noqa: E402  (a sibling script, not a package)
from machine import describe  # noqa: E402

NETWORK = ["network.model=watts_strogatz", "network.k=20", "network.rewire=0.1"]
DEFAULT_SIZES = [10_000, 100_000, 1_000_000, 10_000_000]


def scale_series(sizes: list[int], repeats: dict[int, int]) -> list[dict]:
    """One whole-run measurement per population size."""
    rows = []
    for n in sizes:
        result = whole_run("scenarios/reference.toml", [f"population.size={n}", *NETWORK], repeats.get(n, 3))
        citizen_years = n * 364 / 365
        result.update({
            "citizens": n,
            "us_per_citizen_year": 1e6 * result["median_run_s"] / citizen_years,
            "peak_bytes_per_citizen": result["median_peak_gib"] * 2**30 / n,
        })
        print(json.dumps({k: result[k] for k in ("citizens", "runs", "median_run_s", "us_per_citizen_year",
                                                 "median_peak_gib", "estimate_gib", "estimate_over_peak")}),
              flush=True)
        rows.append(result)
    return rows


def plot(rows: list[dict], path: Path) -> None:
    """Cost per citizen-year and peak bytes per citizen against the population (log x)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [r["citizens"] for r in rows]
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(9, 3.6))
    ax_t.plot(n, [r["us_per_citizen_year"] for r in rows], "o-", color="#1f4e79")
    ax_t.set(xscale="log", xlabel="citizens", ylabel="µs per citizen-year", title="run time per citizen-year")
    ax_t.set_ylim(bottom=0)
    ax_m.plot(n, [r["peak_bytes_per_citizen"] / 1e3 for r in rows], "o-", color="#7a1f1f", label="measured peak")
    ax_m.plot(n, [r["estimate_gib"] * 2**30 / r["citizens"] / 1e3 for r in rows], "s--", color="#999999",
              label="estimate")
    ax_m.set(xscale="log", xlabel="citizens", ylabel="kB per citizen", title="memory per citizen")
    ax_m.set_ylim(bottom=0)
    ax_m.legend(frameon=False)
    fig.suptitle("reference rules, small-world network of mean degree 20, 364 days, weekly scoring", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, metadata={"Date": None})
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=DEFAULT_SIZES)
    parser.add_argument("--repeat", type=int, default=3, help="runs per size below 10^7")
    parser.add_argument("--repeat-largest", type=int, default=1, help="runs at 10^7 and above")
    parser.add_argument("--json", type=Path, default=HERE / "out" / "scale.json")
    parser.add_argument("--figure", type=Path, default=HERE / "scale.svg")
    args = parser.parse_args()
    repeats = {n: (args.repeat_largest if n >= 10_000_000 else args.repeat) for n in args.sizes}
    rows = scale_series(args.sizes, repeats)
    report = {"machine": describe(), "network": NETWORK, "rows": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    plot(rows, args.figure)
    print(f"figure: {args.figure}")


if __name__ == "__main__":
    main()
