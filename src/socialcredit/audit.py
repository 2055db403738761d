"""Audit a run: what the platform holds, how wrong it is, and who pays.

The questions of a data-protection advocate and a policy analyst, answered
from a run folder: records held per citizen and per agency; false records,
how long they stay in effect and how many are overturned; the black list by
cause; disparate impact between groups (Fairlearn's ``MetricFrame``, flagged
below the four-fifths rule); how far a false record spills over to other
citizens' grades; isolation (degree lost, citizens left without ties, the
largest connected component over time); and, against a no-system baseline
run of the same city and seed, the criticism that fell silent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .kernels import prepare as prepare_kernels
from .kernels import row_sums, union_ties
from .replay import adjacency_at, run_scenario
from .rng import stream
from .runfolder import read_manifest
from .scenario import Scenario
from .scoring import MILLI, coupled_score, grade_index, own_points

FOUR_FIFTHS = 0.8


def audit(run: str | Path, baseline: str | Path | None = None, spillover_sample: int = 20) -> dict[str, Any]:
    """Audit a run folder (see the module docstring); JSON-ready.

    Parameters
    ----------
    run : path
        A complete run folder.
    baseline : path, optional
        A run of the same city and seed without the system (``no-system.toml``),
        for the silenced criticism.
    spillover_sample : int
        How many false records in effect at the last step to replay without.
    """
    path = Path(run)
    manifest = read_manifest(path)
    prepare_kernels(manifest["citizens"])  # a large city's replay needs them: Numba's import overlaps the reading
    sc = run_scenario(path)
    citizens = pq.read_table(path / "citizens.parquet")
    records = pq.read_table(path / "records.parquet")
    metrics = pq.read_table(path / "metrics.parquet").to_pylist()
    n = manifest["citizens"]
    group = _codes(citizens["group"], sc.group_names)
    out: dict[str, Any] = {"scenario": sc.name, "seed": manifest["seed"], "citizens": n, "days": sc.days}
    out["records"] = _records_held(sc, records, n)
    out["false_records"] = _false_records(sc, records, group)
    last = metrics[-1] if metrics else {}
    out["causes"] = {"blacklisted": last.get("blacklisted", 0), "record": last.get("black_by_record", 0),
                     "error": last.get("black_by_error", 0), "association": last.get("black_by_association", 0)}
    out["causes_over_time"] = [{"step": m["step"], "day": m["day"], "record": m["black_by_record"],
                                "error": m["black_by_error"], "association": m["black_by_association"]}
                               for m in metrics]
    out["disparate_impact"] = disparate_impact(sc, group, citizens["blacklisted"].to_numpy(zero_copy_only=False))
    out["spillover"] = spillover(path, sc, manifest, citizens, records, spillover_sample)
    out["isolation"] = isolation(path, sc, citizens, metrics)
    out["silenced"] = silenced(path, baseline, sc) if baseline is not None else None
    return out


def _codes(column, names: list[str]) -> np.ndarray:
    col = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    remap = np.array([names.index(x) for x in col.dictionary.to_pylist()], dtype=np.int64)
    return remap[col.indices.to_numpy()]


def _records_held(sc: Scenario, records, n: int) -> dict[str, Any]:
    citizen = records["citizen"].to_numpy()
    is_false = records["is_false"].to_numpy(zero_copy_only=False)
    per = np.bincount(citizen, minlength=n)
    agency = _codes(records["agency"], [a.name for a in sc.agencies])
    overturned = pc.fill_null(records["overturned_day"], -1).to_numpy() >= 0
    overturned &= pc.fill_null(records["overturned_day"], 0).to_numpy() < sc.days
    by_agency = []
    for a, spec in enumerate(sc.agencies):
        mine = agency == a
        total, false = int(mine.sum()), int((mine & is_false).sum())
        by_agency.append({"agency": spec.name, "records": total, "true": total - false, "false": false,
                          "false_share": false / total if total else 0.0,
                          "overturned": int((mine & overturned).sum())})
    return {
        "total": int(citizen.size), "true": int((~is_false).sum()), "false": int(is_false.sum()),
        "per_citizen_mean": float(per.mean()) if n else 0.0, "per_citizen_median": float(np.median(per)) if n else 0.0,
        "per_citizen_p99": float(np.percentile(per, 99)) if n else 0.0, "per_citizen_max": int(per.max()) if n else 0,
        "citizens_with_records": int((per > 0).sum()), "by_agency": by_agency,
    }


def _false_records(sc: Scenario, records, group: np.ndarray) -> dict[str, Any]:
    is_false = records["is_false"].to_numpy(zero_copy_only=False)
    citizen = records["citizen"].to_numpy()[is_false]
    effective = records["effective_day"].to_numpy()[is_false].astype(np.int64)
    validity = np.array([t.validity_days for t in sc.record_types])
    end = effective + validity[_codes(records["type"], sc.type_names)[is_false]]
    overturn = pc.fill_null(records["overturned_day"], -1).to_numpy()[is_false].astype(np.int64)
    appealed = overturn >= 0
    end = np.where(appealed, np.minimum(end, overturn), end)
    started = effective < sc.days
    days_in_effect = np.minimum(end, sc.days)[started] - effective[started]
    count = int(is_false.sum())
    sizes = np.bincount(group, minlength=len(sc.group_names))
    per_group = np.bincount(group[citizen], minlength=len(sc.group_names)) if count else np.zeros(len(sizes), int)
    return {
        "count": count, "share": count / is_false.size if is_false.size else 0.0,
        "appealed": int(appealed.sum()), "overturned": int((appealed & (overturn < sc.days)).sum()),
        "mean_days_in_effect": float(days_in_effect.mean()) if days_in_effect.size else 0.0,
        "median_days_in_effect": float(np.median(days_in_effect)) if days_in_effect.size else 0.0,
        "by_group": [{"group": g, "false_records": int(per_group[i]),
                      "per_1000_citizens": 1000.0 * per_group[i] / sizes[i] if sizes[i] else 0.0}
                     for i, g in enumerate(sc.group_names)],
    }


def disparate_impact(sc: Scenario, group: np.ndarray, blacklisted: np.ndarray) -> dict[str, Any]:
    """Blacklist rates by group and the four-fifths rule on the favourable outcome.

    The favourable outcome is *not* being blacklisted; a group whose rate of
    it falls below 0.8 times the best-off group's is flagged. Rates come from
    Fairlearn's ``MetricFrame`` with ``selection_rate``, given the citizens as
    counts: one row per group and outcome that occurs, weighted by how many
    citizens have it. The rates are the same bits as from one row per citizen
    (``selection_rate`` divides the weighted count of the favourable outcome by
    the total weight, integers either way), at a cost that no longer grows with
    the city: Fairlearn stacks each row's values one by one, about 2 s for
    590,000 citizens.
    """
    from fairlearn.metrics import MetricFrame, selection_rate

    favourable = (~blacklisted).astype(np.int64)
    counts = np.bincount(group * 2 + favourable, minlength=2 * len(sc.group_names))
    cells = np.flatnonzero(counts)
    cell_group, cell_outcome = np.divmod(cells, 2)
    names = np.array(sc.group_names, dtype=object)[cell_group]
    frame = MetricFrame(metrics=selection_rate, y_true=cell_outcome, y_pred=cell_outcome, sensitive_features=names,
                        sample_params={"sample_weight": counts[cells]})
    rates = frame.by_group.to_dict()
    present = {g: r for g, r in rates.items()}
    reference = max(present, key=present.get) if present else None
    rows = []
    for i, g in enumerate(sc.group_names):
        if g not in present:
            continue
        mine = group == i
        fav = float(present[g])
        ratio = fav / present[reference] if present[reference] else 1.0
        rows.append({"group": g, "citizens": int(mine.sum()), "blacklisted": int(blacklisted[mine].sum()),
                     "blacklist_rate": 1.0 - fav, "favourable_rate": fav, "impact_ratio": ratio,
                     "flagged": bool(ratio < FOUR_FIFTHS)})
    return {"reference_group": reference, "threshold": FOUR_FIFTHS, "groups": rows}


def spillover(path: Path, sc: Scenario, manifest: dict[str, Any], citizens, records, sample: int) -> dict[str, Any]:
    """How many other citizens' grades a false record changes, at the last step.

    For a sample of false records in effect at the last scoring step, the step
    is replayed without that record, all else equal (the same records, ties and
    numbers: common random numbers): by linearity the score change is the
    coupled response to the record's own-points change. Counts citizens other
    than its target whose grade, or black-list status, would differ.
    """
    k = sc.scoring.every_days
    steps = sc.days // k
    empty = {"step": steps - 1, "sampled": 0, "in_effect": 0, "mean_grade_changes": 0.0, "max_grade_changes": 0,
             "records": []}
    if steps == 0:
        return empty
    day = steps * k - 1
    n = manifest["citizens"]
    is_false = records["is_false"].to_numpy(zero_copy_only=False)
    effective = records["effective_day"].to_numpy().astype(np.int64)
    types = _codes(records["type"], sc.type_names)
    validity = np.array([t.validity_days for t in sc.record_types])
    end = effective + validity[types]
    overturn = pc.fill_null(records["overturned_day"], np.iinfo(np.int32).max).to_numpy().astype(np.int64)
    in_effect = (effective <= day) & (day < np.minimum(end, overturn))
    candidates = np.flatnonzero(is_false & in_effect)
    empty["in_effect"] = int(candidates.size)
    if candidates.size == 0 or sample <= 0:
        return empty
    rng = stream(manifest["seed"], "audit")
    chosen = np.sort(rng.choice(candidates, size=min(sample, candidates.size), replace=False))
    citizen = records["citizen"].to_numpy()
    milli = np.round(records["points"].to_numpy() * MILLI).astype(np.int64)
    raw = np.zeros(n, dtype=np.int64)
    np.add.at(raw, citizen[in_effect], milli[in_effect])
    score = citizens["score"].to_numpy()
    grade = grade_index(score, sc.scoring.grades)
    black_grade = np.array([g in sc.lists.black_grades for g in sc.grade_names])
    listed = citizens["blacklisted"].to_numpy(zero_copy_only=False)
    # listed by a serious record in effect: another citizen's record cannot change that
    serious = np.array([t.serious for t in sc.record_types])[types] & in_effect
    listed_otherwise = np.zeros(n, dtype=bool)
    if sc.lists.serious_blacklists:
        listed_otherwise[citizen[serious]] = True
    adjacency = adjacency_at(path, day, n)
    strength = row_sums(adjacency)
    coupling = sc.coupling.model_copy(update={"tolerance": 1e-9})
    bounds = (sc.scoring.start, sc.scoring.min, sc.scoring.max)
    rows = []
    for r in chosen:
        j = int(citizen[r])
        before = own_points(raw[j:j + 1], *bounds)[0]
        after = own_points(raw[j:j + 1] - milli[r], *bounds)[0]
        delta = np.zeros(n)
        delta[j] = after - before
        if delta[j] == 0.0:
            changed = np.zeros(n, dtype=bool)
            new_black = listed
        else:
            shift, _ = coupled_score(delta, adjacency, coupling, strength)
            new_grade = grade_index(score + shift, sc.scoring.grades)
            changed = new_grade != grade
            new_black = black_grade[new_grade] | listed_otherwise
        changed[j] = False
        flips = new_black != listed
        flips[j] = False
        rows.append({"citizen": j, "type": sc.type_names[types[r]], "agency": sc.record_types[types[r]].agency,
                     "effective_day": int(effective[r]), "grade_changes": int(changed.sum()),
                     "blacklist_changes": int(flips.sum())})
    counts = [row["grade_changes"] for row in rows]
    return {"step": steps - 1, "sampled": len(rows), "in_effect": int(candidates.size),
            "mean_grade_changes": float(np.mean(counts)), "max_grade_changes": int(max(counts)), "records": rows}


def isolation(path: Path, sc: Scenario, citizens, metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """Degree lost by the blacklisted and the rest, isolated citizens, largest component over time."""
    start = citizens["degree_start"].to_numpy().astype(np.int64)
    end = citizens["degree_end"].to_numpy().astype(np.int64)
    black = citizens["blacklisted"].to_numpy(zero_copy_only=False)
    loss = start - end
    isolated = (end == 0) & (start > 0)
    ties = pq.read_table(path / "ties.parquet", columns=["source", "target", "cut_day"])
    days = [m["day"] for m in metrics]
    sizes = largest_component_sizes(ties["source"].to_numpy(), ties["target"].to_numpy(),
                                    pc.fill_null(ties["cut_day"], -1).to_numpy(), days, citizens.num_rows)
    n = max(citizens.num_rows, 1)
    return {
        "mean_degree_loss_blacklisted": float(loss[black].mean()) if black.any() else 0.0,
        "mean_degree_loss_others": float(loss[~black].mean()) if (~black).any() else 0.0,
        "isolated": int(isolated.sum()), "isolated_blacklisted": int((isolated & black).sum()),
        "largest_component": [{"step": -1, "day": -1, "size": int(sizes[0]), "share": sizes[0] / n}]
        + [{"step": m["step"], "day": m["day"], "size": int(s), "share": s / n} for m, s in zip(metrics, sizes[1:])],
    }


def largest_component_sizes(src: np.ndarray, dst: np.ndarray, cut_day: np.ndarray, days: list[int], n: int) -> list[int]:
    """Largest connected component before any cut, then after each scoring day's cuts.

    Ties are only ever cut, so the graph is replayed backwards: start from the
    ties never cut and add back each step's cuts with a union-find (scipy's
    ``connected_components`` seeds it), one pass over the ties in all, compiled
    where the kernels run (``kernels.union_ties``).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    never = cut_day < 0
    graph = coo_matrix((np.ones(int(never.sum())), (src[never], dst[never])), shape=(n, n))
    count, labels = connected_components(graph, directed=False)
    rep = np.empty(count, dtype=np.int64)
    rep[labels[::-1]] = np.arange(n)[::-1]  # each component's first citizen represents it
    parent = rep[labels]
    size = np.zeros(n, dtype=np.int64)
    size[rep] = np.bincount(labels, minlength=count)
    best = int(size.max()) if n else 0
    cut = np.flatnonzero(~never)
    order = cut[np.argsort(-cut_day[cut], kind="stable")]  # the cut ties, latest cut first
    # days after each step, latest first: the ties cut on a day are active before it (a tie cut on a day
    # that is not a step's is never added back)
    later_first = -cut_day[order]
    descending = -np.asarray(days[::-1], dtype=np.int64)
    ends = np.searchsorted(later_first, descending, side="right")
    # a day given twice adds its ties once: the second stretch starts where the first ended (and is empty)
    starts = np.maximum(np.searchsorted(later_first, descending, side="left"), np.concatenate([[0], ends[:-1]]))
    a, b = src[order].astype(np.int64), dst[order].astype(np.int64)
    after = union_ties(parent, size, a, b, starts, ends, best)
    if after is None:
        after, largest = [], best
        for first, last in zip(starts.tolist(), ends.tolist()):
            largest = _union_all(parent, size, a[first:last], b[first:last], largest)
            after.append(largest)
    return [int(x) for x in [best, *after][::-1]]  # before any cut, then after each step's cuts


def _union_all(parent: np.ndarray, size: np.ndarray, a: np.ndarray, b: np.ndarray, best: int) -> int:
    """Join the sets of each tie's ends (union by size, paths compressed); the largest set's size after."""
    for u, v in zip(a.tolist(), b.tolist()):
        ru, rv = _find(parent, u), _find(parent, v)
        if ru != rv:
            if size[ru] < size[rv]:
                ru, rv = rv, ru
            parent[rv] = ru
            size[ru] += size[rv]
            best = max(best, int(size[ru]))
    return best


def _find(parent: np.ndarray, x: int) -> int:
    root = x
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:
        parent[x], x = root, parent[x]
    return root


def silenced(path: Path, baseline: str | Path, sc: Scenario) -> dict[str, Any]:
    """Criticism acts in the baseline (no system) minus those in the run, by group and type."""
    base_path = Path(baseline)
    base_manifest = read_manifest(base_path)
    base_sc = run_scenario(base_path)
    manifest = read_manifest(path)
    notes = []
    if base_manifest["citizens"] != manifest["citizens"] or base_sc.group_names != sc.group_names:
        raise ValueError(f"{baseline} is not the same city as {path}: run no-system.toml with the same "
                         "population and seed")
    if base_manifest["seed"] != manifest["seed"]:
        notes.append("the baseline has a different seed: differences include chance")
    types = [t.name for t in sc.record_types if t.category == "criticism" and t.name in base_sc.type_names]
    cols = ["group"] + [f"acts_{t}" for t in types]
    run_c = pq.read_table(path / "citizens.parquet", columns=cols)
    base_c = pq.read_table(base_path / "citizens.parquet", columns=cols)
    group = _codes(run_c["group"], sc.group_names)
    rows = []
    total = 0
    for t in types:
        a_run = np.bincount(group, weights=run_c[f"acts_{t}"].to_numpy(), minlength=len(sc.group_names))
        a_base = np.bincount(group, weights=base_c[f"acts_{t}"].to_numpy(), minlength=len(sc.group_names))
        for i, g in enumerate(sc.group_names):
            gone = int(a_base[i] - a_run[i])
            total += gone
            rows.append({"group": g, "type": t, "acts_baseline": int(a_base[i]), "acts_run": int(a_run[i]),
                         "silenced": gone, "silenced_share": gone / a_base[i] if a_base[i] else 0.0})
    return {"baseline": str(base_path), "total_silenced": total, "rows": rows, "notes": notes}
