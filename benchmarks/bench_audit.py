"""Explain, audit and report on a full-size Rongcheng run folder.

    python benchmarks/bench_audit.py                     # makes the runs under benchmarks/out/
    python benchmarks/bench_audit.py --run DIR --baseline DIR

Times ``explain`` for 20 citizens drawn at random (median), ``audit`` with the
no-system baseline (median of ``--repeat`` runs) and ``report``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def ensure_run(scenario: str, out: Path) -> Path:
    import socialcredit as sc

    if not (out / "manifest.json").is_file():
        sc.run(ROOT / "scenarios" / scenario, out=out, force=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, default=ROOT / "benchmarks" / "out" / "rongcheng")
    parser.add_argument("--baseline", type=Path, default=ROOT / "benchmarks" / "out" / "no-system")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--citizens", type=int, default=20)
    args = parser.parse_args()
    from socialcredit.audit import audit
    from socialcredit.explain import explain
    from socialcredit.report import write_report

    run = ensure_run("rongcheng.toml", args.run)
    baseline = ensure_run("no-system.toml", args.baseline)
    n = json.loads((run / "manifest.json").read_text())["citizens"]
    ids = np.random.default_rng(0).choice(n, size=args.citizens, replace=False)
    explain_s = []
    for i in ids:
        t0 = time.perf_counter()
        explain(run, int(i))
        explain_s.append(time.perf_counter() - t0)
    audit_s = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        data = audit(run, baseline=baseline)
        audit_s.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    write_report(run, baseline=baseline, audit_data=data)
    report_s = time.perf_counter() - t0
    print(json.dumps({"citizens": n, "explain_median_s": statistics.median(explain_s), "explain_max_s": max(explain_s),
                      "audit_median_s": statistics.median(audit_s), "report_given_audit_s": report_s}, indent=2))


if __name__ == "__main__":
    main()
