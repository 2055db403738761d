"""The scale-and-speed suite in one command: every target measured, then a verdict for each.

Run from the repository root:

    python benchmarks/suite.py           # the whole suite (about 25 minutes on 2 cores, 14 GB at 10^7)
    python benchmarks/suite.py --quick   # a check in a few minutes: no 10^7 city, fewer repeats

Each part is one of the benchmarks beside this file, run as its own process
(so each measures its own peak memory), writing its JSON under
``benchmarks/out/suite/``:

- ``bench_core.py``: ``reference.toml`` and ``rongcheng.toml`` whole runs, and the
  act sampler beside one Poisson draw per citizen-day;
- ``bench_mesa.py``: the engine and the Mesa 3 baseline side by side, in one process;
- ``bench_scale.py``: cost per citizen-year and peak memory from 10^4 to 10^7 citizens
  (its figure goes to ``benchmarks/out/suite/scale.svg``);
- ``bench_roofline.py``: the solver pass against this machine's copy bandwidth;
- the command line on a 10^7-citizen city (its run folder is kept in
  ``benchmarks/out/province``), then ``bench_explain.py`` on it.

Figures are medians over the repeats; ratios are of runs made side by side.
The summary (``summary.json``, and a table on standard output) gives each
target of the issue, the figure measured and whether it is met. Timings on a
shared machine move with its load: read them with the host's state in mind.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from machine import describe  # a sibling script (its folder is first on the path)
from socialcredit.resources import OVERHEAD

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
#: Interpreter and libraries, as the memory estimate counts them.
INTERPRETER_GIB = OVERHEAD / 2**30
PROVINCE = ["--set", "population.size=10000000", "--set", "network.model=watts_strogatz",
            "--set", "network.k=20", "--set", "network.rewire=0.1"]


def _run(args: list[str], out: Path | None = None) -> dict:
    """Run one benchmark script; its figures come from its JSON file, or from its standard output."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    figures = json.loads(out.read_text()) if out else json.loads(done.stdout[done.stdout.index("{"):])
    print(f"  {args[0]}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return figures


def measure(out: Path, quick: bool) -> dict:
    """Every benchmark of the suite, each in its own process."""
    out.mkdir(parents=True, exist_ok=True)
    figures: dict = {}
    figures["core"] = _run(["benchmarks/bench_core.py", "--reference", "3" if quick else "7",
                            "--rongcheng", "1" if quick else "3", "--acts", "5" if quick else "20",
                            "--json", str(out / "core.json")], out / "core.json")
    figures["mesa"] = _run(["benchmarks/bench_mesa.py", "--repeat", "3" if quick else "7",
                            "--mesa-repeat", "1" if quick else "2", *(["--days", "28"] if quick else []),
                            "--json", str(out / "mesa.json")], out / "mesa.json")
    sizes = ["10000", "100000", "1000000"] + ([] if quick else ["10000000"])
    figures["scale"] = _run(["benchmarks/bench_scale.py", "--sizes", *sizes, "--repeat", "1" if quick else "3",
                             "--json", str(out / "scale.json"), "--figure", str(out / "scale.svg")], out / "scale.json")
    figures["roofline"] = _run(["benchmarks/bench_roofline.py", "--repeat", "5" if quick else "20"])
    if not quick:
        province = HERE / "out" / "province"
        _cli_run(province)
        figures["explain"] = _run(["benchmarks/bench_explain.py", str(province)])
    return figures


def _cli_run(province: Path) -> None:
    """The 10^7-citizen city through the command line, keeping its run folder for explain and compare."""
    started = time.perf_counter()
    command = ["run", "scenarios/reference.toml", "--out", str(province), "--force", "--quiet", *PROVINCE]
    # the console script's entry point, run by this interpreter (wherever the script itself was installed)
    done = subprocess.run([sys.executable, "-c", "import sys; from socialcredit.cli import main; sys.exit(main())",
                           *command], cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"socialcredit run (10^7 citizens) failed ({done.returncode}):\n{done.stderr[-3000:]}")
    print(f"  socialcredit run, 10^7 citizens: {time.perf_counter() - started:.0f} s", file=sys.stderr)


def verdicts(figures: dict) -> list[dict]:
    """Each target of the scale-and-speed issue beside the figure measured for it."""
    rows = []

    def target(name: str, figure: str, met: bool | None) -> None:
        rows.append({"target": name, "measured": figure, "met": met})

    mesa = figures["mesa"]["sizes"]
    at = {int(n): v for n, v in mesa.items()}
    if 5000 in at:
        ratio = at[5000]["ratio_mesa_over_engine"]
        days = at[5000]["days"]
        plain = at[5000].get("ratio_mesa_over_engine_plain")
        target("reference.toml at least 500x faster than Mesa", f"{ratio:.0f}x at 5,000 citizens"
               + (f" ({days} days)" if days != 364 else "")
               + (f" (kernels loaded; {plain:.0f}x on the numpy/scipy path)" if plain else "") + "".join(
                   f"; {r['ratio_mesa_over_engine']:.0f}x at {n:,}" for n, r in at.items() if n != 5000),
               ratio >= 500)
    rongcheng = figures["core"].get("rongcheng")
    if rongcheng:
        wall = rongcheng["median_wall_s"]
        target("rongcheng.toml under 10 s", f"{wall:.1f} s (median of {rongcheng['runs']}, whole process)", wall < 10)
    scale = {r["citizens"]: r for r in figures["scale"]["rows"]}
    largest = scale.get(10_000_000)
    if largest:
        run_s, peak = largest["median_run_s"], largest["median_peak_gib"] * 2**30
        target("10^7 citizens under 5 minutes, run folder written", f"{run_s:.0f} s", run_s < 300)
        target("10^7 citizens under 16 GB peak", f"{peak / 1e9:.1f} GB ({peak / 2**30:.1f} GiB)", peak < 16e9)
    cost = {n: r["us_per_citizen_year"] for n, r in sorted(scale.items())}
    upper = [c for n, c in cost.items() if n >= 100_000]
    spread = max(upper) / min(upper) if upper else float("nan")
    target("cost per citizen-year flat from 10^4 to 10^7",
           ", ".join(f"{c:.1f} us at {n:.0e}".replace("e+0", "e") for n, c in cost.items())
           + f" (max/min from 10^5: {spread:.2f})", None)
    ratios = [r["estimate_over_peak"] for r in scale.values()]
    for part in ("reference", "rongcheng"):
        if figures["core"].get(part):
            ratios.append(figures["core"][part]["estimate_over_peak"])
    target("memory estimate within 20 % of the peak", f"estimate / peak {min(ratios):.2f}-{max(ratios):.2f}",
           all(0.8 <= r <= 1.2 for r in ratios))
    roof = figures["roofline"]
    target("roofline of the scoring step (reported, no target)",
           f"{roof['fraction_of_copy_bandwidth']:.0%} of a {roof['copy_gb_per_s']:.1f} GB/s copy", None)
    explain = figures.get("explain")
    if explain:
        ledger = explain["ledger"]["bytes_in_memory"] / 2**30
        # met when explain's peak stays below what the interpreter and the whole ledger alone would take
        target("explain and compare at 10^7 without loading the ledger",
               f"explain {explain['explain']['median_s']:.1f} s, {explain['explain']['median_peak_gib']:.2f} GiB; "
               f"compare {explain['compare']['seconds']:.1f} s, {explain['compare']['peak_gib']:.2f} GiB; "
               f"the ledger alone {ledger:.2f} GiB", explain["explain"]["median_peak_gib"] < INTERPRETER_GIB + ledger)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="no 10^7 city, fewer repeats, 4 weeks of Mesa")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "suite")
    args = parser.parse_args()
    figures = measure(args.out, args.quick)
    rows = verdicts(figures)
    machine = describe()
    summary = {"machine": machine, "quick": args.quick, "targets": rows}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    caches = ", ".join(f"{level} {size}" for level, size in machine["caches"].items())
    print(f"machine: {machine['processor']}, {machine['cpus']} CPUs, {caches}, {machine['memory_gib']} GiB; "
          f"Python {machine['python']}\n")
    print("| target | measured | met |\n|---|---|---|")
    for row in rows:
        met = {True: "yes", False: "**no**", None: "(read it)"}[row["met"]]
        print(f"| {row['target']} | {row['measured']} | {met} |")


if __name__ == "__main__":
    main()
