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
    critical = [t.name for t in sa.record_types if t.category == "criticism" and t.name in sb.type_names]
    wanted = ["group", "grade", "blacklisted", "black_cause", "sanction_days"] + [f"acts_{t}" for t in critical]
    # only the columns used, kept as numpy codes: no Python object per citizen, so 10^7 citizens fit
    ca, cb = pq.read_table(a / "citizens.parquet", columns=wanted), pq.read_table(b / "citizens.parquet", columns=wanted)
    group_codes, group_names = _codes(ca["group"])
    out: dict[str, Any] = {"a": str(a), "b": str(b), "scenario_a": sa.name, "scenario_b": sb.name,
                           "same_city": same_city, "notes": notes}
    last_a = pq.read_table(a / "metrics.parquet").to_pylist()[-1]
    last_b = pq.read_table(b / "metrics.parquet").to_pylist()[-1]
    measures = ["blacklisted", "redlisted", "black_by_record", "black_by_error", "black_by_association",
                "ties_cut_cum", "ties_active", "mean_score"]
    measures += [f"grade_{g}" for g in sa.grade_names if f"grade_{g}" in last_b]
    out["aggregate"] = [{"measure": m, "a": last_a.get(m), "b": last_b.get(m),
                         "difference": (last_a.get(m) or 0) - (last_b.get(m) or 0)} for m in measures]
    chilling = []
    masks = {g: group_codes == group_names.index(g) if g in group_names else np.zeros(group_codes.size, bool)
             for g in sa.group_names}
    for t in critical:
        acts_a, acts_b = ca[f"acts_{t}"].to_numpy(), cb[f"acts_{t}"].to_numpy()
        for g in sa.group_names:
            mine = masks[g]
            x, y = int(acts_a[mine].sum()), int(acts_b[mine].sum())
            chilling.append({"group": g, "type": t, "acts_a": x, "acts_b": y, "difference": x - y,
                             "ratio": x / y if y else None})
    out["chilling"] = chilling
    (code_a, names_a), (code_b, names_b) = _codes(ca["grade"]), _codes(cb["grade"])
    pair = code_a.astype(np.int64) * (len(names_b) + 1) + code_b
    keys, counts = np.unique(pair, return_counts=True)
    named = sorted((names_a[k // (len(names_b) + 1)], names_b[k % (len(names_b) + 1)], int(c))
                   for k, c in zip(keys.tolist(), counts.tolist()))
    out["transitions"] = [{"grade_a": ga, "grade_b": gb, "citizens": c} for ga, gb, c in named]
    black_a = ca["blacklisted"].to_numpy(zero_copy_only=False)
    black_b = cb["blacklisted"].to_numpy(zero_copy_only=False)
    differ = np.flatnonzero(black_a != black_b)[:EXAMPLES]
    cause_a, cause_b = ca["black_cause"].take(differ).to_pylist(), cb["black_cause"].take(differ).to_pylist()
    out["list_changes"] = {
        "black_in_a_only": int((black_a & ~black_b).sum()), "black_in_b_only": int((~black_a & black_b).sum()),
        "black_in_both": int((black_a & black_b).sum()),
        "examples": [{"citizen": int(i), "grade_a": names_a[code_a[i]], "grade_b": names_b[code_b[i]],
                      "black_a": bool(black_a[i]), "black_b": bool(black_b[i]),
                      "cause_a": cause_a[k], "cause_b": cause_b[k]} for k, i in enumerate(differ)],
    }
    days_a, days_b = ca["sanction_days"].to_numpy(), cb["sanction_days"].to_numpy()
    out["sanction_days"] = [{"group": g, "a": int(days_a[masks[g]].sum()), "b": int(days_b[masks[g]].sum()),
                             "added": int(days_a[masks[g]].sum() - days_b[masks[g]].sum())}
                            for g in sa.group_names]
    return out


def _codes(column) -> tuple[np.ndarray, list[str]]:
    """A string column as integer codes and the names they stand for."""
    col = column.combine_chunks()
    if not hasattr(col, "dictionary"):
        col = col.dictionary_encode()
    return col.indices.to_numpy(zero_copy_only=False), [str(x) for x in col.dictionary.to_pylist()]
