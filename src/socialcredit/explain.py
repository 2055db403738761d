"""Explain one citizen's fate from a run folder: her story in time order.

Everything comes from the run folder: her records (``records.parquet``), her
logged standings (``standing.parquet``: grade, lists, cause, and her score
whenever it moved by 2 points), her final state and effect-days
(``citizens.parquet``) and her ties (``ties.parquet``). Own points at every
step are recomputed exactly from her records. Reading is filtered by citizen,
so the cost does not grow with the city.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .replay import run_scenario
from .runfolder import read_manifest
from .scenario import Scenario
from .scoring import MILLI, own_points

TOP_NEIGHBOURS = 5


@dataclass(frozen=True)
class _Run:
    path: Path
    manifest: dict[str, Any]
    scenario: Scenario


def _rows(run: _Run, table: str, column: str, value: int, columns: list[str] | None = None) -> list[dict[str, Any]]:
    data = pq.read_table(run.path / f"{table}.parquet", columns=columns, filters=[(column, "=", value)])
    return data.to_pylist()


def explain(run: str | Path, citizen: int) -> dict[str, Any]:
    """The story of one citizen: records, standing per step, network pull, effects, ties.

    Parameters
    ----------
    run : path
        A complete run folder.
    citizen : int
        Citizen id, ``0 <= citizen < N``.

    Returns
    -------
    dict
        JSON-ready: ``citizen``, ``group``, ``final`` (points, score, grade,
        lists, cause), ``records`` (each with act and effective day, agency,
        type, points, true or false, appealed, overturned day), ``steps`` (own
        points exact; score and whether it is exact or the last logged value,
        grade, lists, cause per step), ``blacklistings`` (episodes with their
        causes), ``network`` (pull S - P at the end and the neighbours that
        contributed most), ``effects`` (days under each sanction and
        privilege), ``ties_cut`` (each with who cut it) and ``timeline``
        (every event in day order).

    Raises
    ------
    IndexError
        If ``citizen`` is not in the run.
    """
    path = Path(run)
    r = _Run(path, read_manifest(path), run_scenario(path))
    sc = r.scenario
    n = r.manifest["citizens"]
    if not 0 <= citizen < n:
        raise IndexError(f"citizen {citizen} is not in this run (ids 0..{n - 1})")
    person = _rows(r, "citizens", "citizen", citizen)[0]
    records = _records(r, citizen)
    steps = _steps(r, citizen, records, person)
    story = {
        "citizen": citizen,
        "group": person["group"],
        "scenario": sc.name,
        "seed": r.manifest["seed"],
        "final": {
            "points": person["points"], "score": person["score"], "grade": person["grade"],
            "blacklisted": person["blacklisted"], "redlisted": person["redlisted"],
            "cause": person["black_cause"],
            "lists": [nl.name for nl in sc.lists.named if person.get(f"list_{nl.name}")],
            "side_scores": {s.name: person[f"score_{s.name}"] for s in sc.schemes},
        },
        "records": records,
        "steps": steps,
        "blacklistings": _blacklistings(steps),
        "network": _network(r, citizen, person),
        "effects": [
            {"name": e.name, "kind": e.kind, "days": int(person[f"days_{e.name}"]), "target": e.target}
            for e in sc.effects if person[f"days_{e.name}"] > 0
        ],
        "ties_cut": _ties_cut(r, citizen, steps),
        "acts": {t: int(person[f"acts_{t}"]) for t in sc.type_names if person.get(f"acts_{t}")},
    }
    story["timeline"] = _timeline(story)
    return story


def _records(r: _Run, citizen: int) -> list[dict[str, Any]]:
    validity = {t.name: t.validity_days for t in r.scenario.record_types}
    out = []
    for rec in _rows(r, "records", "citizen", citizen):
        end = rec["effective_day"] + validity[rec["type"]]
        if rec["overturned_day"] is not None:
            end = min(end, rec["overturned_day"])
        out.append({
            "act_day": rec["act_day"], "effective_day": rec["effective_day"], "end_day": end,
            "agency": rec["agency"], "type": rec["type"], "points": rec["points"],
            "true": not rec["is_false"], "appealed": rec["overturned_day"] is not None,
            "overturned_day": rec["overturned_day"],
        })
    return sorted(out, key=lambda x: (x["act_day"], x["type"]))


def _steps(r: _Run, citizen: int, records: list[dict[str, Any]], person: dict[str, Any]) -> list[dict[str, Any]]:
    sc = r.scenario
    k = sc.scoring.every_days
    logged = {row["step"]: row for row in _rows(r, "standing", "citizen", citizen)}
    start_grade = _grade_of(sc.scoring.start, sc)
    state = {"score": float(sc.scoring.start), "grade": start_grade, "blacklisted": False, "redlisted": False,
             "cause": "none"}
    out = []
    for step in range(sc.days // k):
        day = (step + 1) * k - 1
        raw_milli = sum(round(rec["points"] * MILLI) for rec in records
                        if rec["effective_day"] <= day < rec["end_day"])
        points = float(own_points(np.array([raw_milli]), sc.scoring.start, sc.scoring.min, sc.scoring.max)[0])
        row = logged.get(step)
        if row is not None:
            state = {"score": row["score"], "grade": row["grade"], "blacklisted": row["blacklisted"],
                     "redlisted": row["redlisted"], "cause": row["black_cause"]}
        out.append({"step": step, "day": day, "points": points, "score": state["score"],
                    "score_exact": row is not None, "grade": state["grade"], "blacklisted": state["blacklisted"],
                    "redlisted": state["redlisted"], "cause": state["cause"]})
    if out:  # the final step's score is stored exactly in citizens.parquet
        out[-1]["score"], out[-1]["score_exact"] = person["score"], True
    return out


def _grade_of(score: float, sc: Scenario) -> str:
    for g in sc.scoring.grades:
        if score >= g.min:
            return g.name
    return sc.scoring.grades[-1].name


def _blacklistings(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    episodes: list[dict[str, Any]] = []
    for s in steps:
        if s["blacklisted"]:
            if not episodes or episodes[-1]["end_step"] is not None:
                episodes.append({"start_step": s["step"], "start_day": s["day"], "end_step": None,
                                 "end_day": None, "causes": []})
            if s["cause"] not in episodes[-1]["causes"]:
                episodes[-1]["causes"].append(s["cause"])
        elif episodes and episodes[-1]["end_step"] is None:
            episodes[-1]["end_step"], episodes[-1]["end_day"] = s["step"], s["day"]
    return episodes


def _network(r: _Run, citizen: int, person: dict[str, Any]) -> dict[str, Any]:
    sc = r.scenario
    ties = pq.read_table(r.path / "ties.parquet", columns=["source", "target", "kind", "weight", "cut_day"],
                         filters=[[("source", "=", citizen)], [("target", "=", citizen)]])
    other = np.where(ties["source"].to_numpy() == citizen, ties["target"].to_numpy(), ties["source"].to_numpy())
    cut_day = pc.fill_null(ties["cut_day"], np.iinfo(np.int32).max).to_numpy()
    k = sc.scoring.every_days
    last_day = (sc.days // k) * k - 1
    never_cut = cut_day == np.iinfo(np.int32).max
    active = cut_day >= last_day  # ties cut after the last scoring still counted in it
    weight = ties["weight"].to_numpy()
    kinds = ties["kind"].to_pylist()
    pull = person["score"] - person["points"]
    result: dict[str, Any] = {"degree_start": int(other.size), "degree_end": int(never_cut.sum()), "pull": pull,
                              "kappa": sc.coupling.kappa, "mode": sc.coupling.mode, "neighbours": []}
    if not active.any() or sc.coupling.mode == "none":
        return result
    ids = other[active]
    nb = pq.read_table(r.path / "citizens.parquet", columns=["citizen", "points", "score", "grade", "blacklisted"],
                       filters=[("citizen", "in", ids.tolist())]).to_pylist()
    by_id = {row["citizen"]: row for row in nb}
    w = weight[active]
    share = w / w.sum()
    rows = []
    for j, wj, kind in zip(ids.tolist(), share.tolist(), [k for k, a in zip(kinds, active) if a]):
        info = by_id[j]
        # S_i - P_i = kappa * sum_j W_ij (S_j - P_i) for Friedkin-Johnsen (S_j -> P_j for neighbour_mean)
        theirs = info["score"] if sc.coupling.mode == "friedkin_johnsen" else info["points"]
        rows.append({"citizen": j, "kind": kind, "weight_share": wj, "score": info["score"],
                     "grade": info["grade"], "blacklisted": info["blacklisted"],
                     "contribution": sc.coupling.kappa * wj * (theirs - person["points"])})
    rows.sort(key=lambda x: -abs(x["contribution"]))
    result["neighbours"] = rows[:TOP_NEIGHBOURS]
    result["explained_pull"] = sum(x["contribution"] for x in rows)
    return result


def _ties_cut(r: _Run, citizen: int, steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ties = pq.read_table(r.path / "ties.parquet", columns=["source", "target", "kind", "cut_day"],
                         filters=[[("source", "=", citizen), ("cut_day", ">=", 0)],
                                  [("target", "=", citizen), ("cut_day", ">=", 0)]]).to_pylist()
    black_on = {s["day"]: s["blacklisted"] for s in steps}
    out = []
    for t in ties:
        other = t["target"] if t["source"] == citizen else t["source"]
        she_black = black_on.get(t["cut_day"], False)
        out.append({"neighbour": other, "kind": t["kind"], "day": t["cut_day"],
                    "cut_by": "neighbour" if she_black else "citizen",
                    "why": "she was blacklisted" if she_black else "the neighbour was blacklisted"})
    return sorted(out, key=lambda x: (x["day"], x["neighbour"]))


def _timeline(story: dict[str, Any]) -> list[dict[str, Any]]:
    events = []
    for rec in story["records"]:
        kind = "true record" if rec["true"] else "FALSE record"
        events.append({"day": rec["act_day"], "event": f"{kind}: {rec['type']} by {rec['agency']} "
                       f"({rec['points']:+g} points, in effect from day {rec['effective_day']})"})
        if rec["overturned_day"] is not None:
            events.append({"day": rec["overturned_day"], "event": f"appeal upheld: {rec['type']} record overturned"})
    prev = None
    for s in story["steps"]:
        if prev is None or (s["grade"], s["blacklisted"], s["redlisted"], s["cause"]) != prev:
            lists = "black list" if s["blacklisted"] else ("red list" if s["redlisted"] else "no list")
            cause = f", cause: {s['cause']}" if s["blacklisted"] else ""
            events.append({"day": s["day"], "event": f"step {s['step']}: grade {s['grade']}, {lists}{cause} "
                           f"(points {s['points']:.1f}, score {s['score']:.1f})"})
            prev = (s["grade"], s["blacklisted"], s["redlisted"], s["cause"])
    for t in story["ties_cut"]:
        events.append({"day": t["day"], "event": f"tie to {t['neighbour']} ({t['kind']}) cut by the {t['cut_by']}: "
                       f"{t['why']}"})
    return sorted(events, key=lambda e: e["day"])
