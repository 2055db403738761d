"""Explain, audit and report on a full-size Rongcheng run folder.

    python benchmarks/bench_audit.py                     # makes the runs under benchmarks/out/
    python benchmarks/bench_audit.py --run DIR --baseline DIR
    git worktree add /tmp/v0411 bf99717 && \
    python benchmarks/bench_audit.py --repeat 0 --citizens 0 --reports 5 --against /tmp/v0411
                                                         # the report command, this checkout and 0.4.11
                                                         # (commit bf99717) alternated

Times ``explain`` for 20 citizens drawn at random (median), ``audit`` with the
no-system baseline (median of ``--repeat`` runs) and ``report`` given that audit,
in this process. With ``--reports R``, also the whole ``socialcredit report RUN
--baseline BASELINE`` (audit, figures and page) ``R`` times, each in a fresh
process (``wall``: interpreter start, imports and the report; ``report``: the
report alone); with ``--against`` another checkout's package writes the same
report in alternation, run for run, and the ratio of the medians is printed.
Both read the same run folders (made by this checkout).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
src, run, baseline, out = sys.argv[1:5]
if src:  # another checkout's package, first on the path
    sys.path.insert(0, src)
from socialcredit.report import write_report
import socialcredit
assert not src or socialcredit.__file__.startswith(src), f"imported {socialcredit.__file__}, not the package under {src}"
t1 = time.perf_counter()
write_report(run, out=out, baseline=baseline)
t2 = time.perf_counter()
print(json.dumps({"wall_s": t2 - t0, "report_s": t2 - t1}))
"""


def ensure_run(scenario: str, out: Path) -> Path:
    import socialcredit as sc

    if not (out / "manifest.json").is_file():
        sc.run(ROOT / "scenarios" / scenario, out=out, force=True)
    return out


def _one_report(src: str, run: Path, baseline: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([sys.executable, "-c", CHILD, src, str(run), str(baseline), f"{tmp}/report.html"],
                             cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def whole_reports(run: Path, baseline: Path, repeat: int, against: Path | None) -> dict:
    """The report command ``repeat`` times in fresh processes; with ``against``, alternated with that checkout."""
    def summary(samples: list[dict]) -> dict:
        walls = [s["wall_s"] for s in samples]
        return {"runs": len(samples), "median_wall_s": statistics.median(walls), "min_wall_s": min(walls),
                "median_report_s": statistics.median(s["report_s"] for s in samples), "samples_wall_s": walls}
    this, other = [], []
    src = str((against / "src").resolve()) if against is not None else ""
    for _ in range(repeat):
        if against is not None:
            other.append(_one_report(src, run, baseline))
        this.append(_one_report("", run, baseline))
    out = {"this": summary(this)}
    if against is not None:
        out["against"] = {"checkout": str(against), **summary(other)}
        out["ratio_of_medians"] = out["against"]["median_wall_s"] / out["this"]["median_wall_s"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, default=ROOT / "benchmarks" / "out" / "rongcheng")
    parser.add_argument("--baseline", type=Path, default=ROOT / "benchmarks" / "out" / "no-system")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--citizens", type=int, default=20)
    parser.add_argument("--reports", type=int, default=0, help="whole report commands in fresh processes (0: skip)")
    parser.add_argument("--against", type=Path, default=None,
                        help="another checkout of the repository whose report command alternates with this one's")
    args = parser.parse_args()
    from socialcredit.audit import audit
    from socialcredit.explain import explain
    from socialcredit.report import write_report

    run = ensure_run("rongcheng.toml", args.run)
    baseline = ensure_run("no-system.toml", args.baseline)
    n = json.loads((run / "manifest.json").read_text())["citizens"]
    figures: dict = {"citizens": n}
    ids = np.random.default_rng(0).choice(n, size=args.citizens, replace=False)
    explain_s = []
    for i in ids:
        t0 = time.perf_counter()
        explain(run, int(i))
        explain_s.append(time.perf_counter() - t0)
    if explain_s:
        figures.update(explain_median_s=statistics.median(explain_s), explain_max_s=max(explain_s))
    audit_s, data = [], None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        data = audit(run, baseline=baseline)
        audit_s.append(time.perf_counter() - t0)
    if data is not None:
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            write_report(run, out=f"{tmp}/report.html", baseline=baseline, audit_data=data)
        figures.update(audit_median_s=statistics.median(audit_s), report_given_audit_s=time.perf_counter() - t0)
    if args.reports:
        figures["report_command"] = whole_reports(run, baseline, args.reports, args.against)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
