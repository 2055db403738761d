"""Compare two runs of the same city and seed that differ in their rules.

Common random numbers make this honest: every random stream is keyed by
stage, day and the record type's (or agency's) name, never by call order
(``rng.py``). Both runs therefore build the same citizens and ties and draw
the same candidate acts with the same uniforms; a citizen's acts differ only
once the rules give her a different rate multiplier (deterrence, fear,
effects), and a record only where her recording chance differs. Every
difference between the runs is thus caused by the rules, not by chance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from .replay import run_scenario
from .runfolder import read_manifest

EXAMPLES = 10


def city(scenario) -> tuple:
    """What makes two scenarios the same city: population, propensities and network (not the rules).

    Record types that never happen (rate 0) do not change the city: every other
    type's random stream is keyed by its own name.
    """
    net = scenario.network
    return (scenario.population, net.model, net.k_in, net.k_out, net.k, net.rewire, net.m, net.path,
            tuple((k.name, k.share, k.weight) for k in net.kinds),
            tuple((t.name, t.rate, t.heterogeneity) for t in scenario.record_types if t.rate > 0))


def compare(run_a: str | Path, run_b: str | Path) -> dict[str, Any]:
    """Compare run A with run B citizen by citizen and in aggregate (JSON-ready).

    Returns ``aggregate`` (final measures side by side), ``chilling``
    (criticism acts per group and type), ``transitions`` (grade in A against
    grade in B), ``list_changes`` (who is blacklisted in one run only, with
    examples and causes) and ``sanction_days`` per group.
    """
    a, b = Path(run_a), Path(run_b)
    ma, mb = read_manifest(a), read_manifest(b)
    sa, sb = run_scenario(a), run_scenario(b)
    notes = []
    same_city = city(sa) == city(sb)
    if not same_city:
        notes.append("the two runs do not simulate the same city: citizen-by-citizen differences include chance")
    if ma["seed"] != mb["seed"]:
        same_city = False
        notes.append(f"the seeds differ ({ma['seed']} and {mb['seed']}): differences include chance")
    if ma["citizens"] != mb["citizens"]:
        raise ValueError(f"{a} has {ma['citizens']} citizens and {b} {mb['citizens']}: compare runs of one city")
    ca, cb = pq.read_table(a / "citizens.parquet"), pq.read_table(b / "citizens.parquet")
    group = np.array(ca["group"].to_pylist())
    out: dict[str, Any] = {"a": str(a), "b": str(b), "scenario_a": sa.name, "scenario_b": sb.name,
                           "same_city": same_city, "notes": notes}
    last_a = pq.read_table(a / "metrics.parquet").to_pylist()[-1]
    last_b = pq.read_table(b / "metrics.parquet").to_pylist()[-1]
    measures = ["blacklisted", "redlisted", "black_by_record", "black_by_error", "black_by_association",
                "ties_cut_cum", "ties_active", "mean_score"]
    measures += [f"grade_{g}" for g in sa.grade_names if f"grade_{g}" in last_b]
    out["aggregate"] = [{"measure": m, "a": last_a.get(m), "b": last_b.get(m),
                         "difference": (last_a.get(m) or 0) - (last_b.get(m) or 0)} for m in measures]
    critical = [t.name for t in sa.record_types if t.category == "criticism" and t.name in sb.type_names]
    chilling = []
    for t in critical:
        acts_a, acts_b = ca[f"acts_{t}"].to_numpy(), cb[f"acts_{t}"].to_numpy()
        for g in sa.group_names:
            mine = group == g
            x, y = int(acts_a[mine].sum()), int(acts_b[mine].sum())
            chilling.append({"group": g, "type": t, "acts_a": x, "acts_b": y, "difference": x - y,
                             "ratio": x / y if y else None})
    out["chilling"] = chilling
    grade_a, grade_b = np.array(ca["grade"].to_pylist()), np.array(cb["grade"].to_pylist())
    pairs, counts = np.unique(np.stack([grade_a, grade_b]), axis=1, return_counts=True)
    out["transitions"] = [{"grade_a": str(ga), "grade_b": str(gb), "citizens": int(c)}
                          for (ga, gb), c in zip(pairs.T, counts)]
    black_a = ca["blacklisted"].to_numpy(zero_copy_only=False)
    black_b = cb["blacklisted"].to_numpy(zero_copy_only=False)
    cause_a, cause_b = ca["black_cause"].to_pylist(), cb["black_cause"].to_pylist()
    differ = np.flatnonzero(black_a != black_b)
    out["list_changes"] = {
        "black_in_a_only": int((black_a & ~black_b).sum()), "black_in_b_only": int((~black_a & black_b).sum()),
        "black_in_both": int((black_a & black_b).sum()),
        "examples": [{"citizen": int(i), "grade_a": str(grade_a[i]), "grade_b": str(grade_b[i]),
                      "black_a": bool(black_a[i]), "black_b": bool(black_b[i]),
                      "cause_a": cause_a[i], "cause_b": cause_b[i]} for i in differ[:EXAMPLES]],
    }
    days_a, days_b = ca["sanction_days"].to_numpy(), cb["sanction_days"].to_numpy()
    out["sanction_days"] = [{"group": g, "a": int(days_a[group == g].sum()), "b": int(days_b[group == g].sum()),
                             "added": int(days_a[group == g].sum() - days_b[group == g].sum())}
                            for g in sa.group_names]
    return out
