"""audit: records held, disparate impact, isolation, spill-over and silenced criticism, each
checked against a direct computation from the run folder."""

from __future__ import annotations

import json

import networkx as nx
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import socialcredit as sc
from socialcredit.audit import FOUR_FIFTHS, audit
from socialcredit.cli import main
from socialcredit.population import build_population
from socialcredit.records import Catalogue, false_records
from socialcredit.replay import adjacency_at, run_scenario
from socialcredit.rng import stream
from socialcredit.scenario import load_scenario, scenario_from_dict
from socialcredit.scoring import MILLI, coupled_score, grade_index, own_points


def _table(run, name: str) -> pd.DataFrame:
    return pq.read_table(run / f"{name}.parquet").to_pandas()


@pytest.fixture(scope="module")
def ref(small_reference_run):
    return small_reference_run.path


@pytest.fixture(scope="module")
def ref_audit(ref):
    return audit(ref)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, reference_path):
    """The reference city and seed without the system (docs/model.md 7.14)."""
    out = tmp_path_factory.mktemp("audit") / "no-system"
    return sc.run(load_scenario(reference_path, ["population.size=1000", "system=false"]), out=out).path


# ---------------------------------------------------------------------------
# (a) records held
# ---------------------------------------------------------------------------


def test_records_held(ref, ref_audit):
    records = _table(ref, "records")
    held = ref_audit["records"]
    assert held["total"] == len(records) > 0
    assert held["false"] == int(records["is_false"].sum()) > 0
    assert held["true"] == int((~records["is_false"]).sum())
    assert held["true"] + held["false"] == held["total"]
    by_agency = records.groupby(records["agency"].astype(str), observed=True)
    assert sum(a["records"] for a in held["by_agency"]) == held["total"]
    assert sum(a["false"] for a in held["by_agency"]) == held["false"]
    for a in held["by_agency"]:
        mine = records[records["agency"].astype(str) == a["agency"]]
        assert a["records"] == len(mine)
        assert a["false"] == int(mine["is_false"].sum())
        assert a["true"] == a["records"] - a["false"]
        assert a["false_share"] == pytest.approx(a["false"] / a["records"] if a["records"] else 0.0)
        overturned = mine["overturned_day"].notna() & (mine["overturned_day"] < ref_audit["days"])
        assert a["overturned"] == int(overturned.sum())
    assert len(by_agency) <= len(held["by_agency"])
    per = np.bincount(records["citizen"], minlength=ref_audit["citizens"])
    assert held["per_citizen_mean"] == pytest.approx(per.mean())
    assert held["per_citizen_max"] == per.max()
    assert held["citizens_with_records"] == int((per > 0).sum())
    false = ref_audit["false_records"]
    assert false["count"] == held["false"]
    assert false["share"] == pytest.approx(held["false"] / held["total"])
    assert false["appealed"] == int(records["overturned_day"].notna().sum())
    citizens = _table(ref, "citizens")
    groups = citizens["group"].astype(str).to_numpy()
    fr = records[records["is_false"]]
    for row in false["by_group"]:
        assert row["false_records"] == int((groups[fr["citizen"]] == row["group"]).sum())
    assert citizens["false_records"].sum() == false["count"]


# ---------------------------------------------------------------------------
# (b) disparate impact
# ---------------------------------------------------------------------------


def test_disparate_impact(ref, ref_audit):
    citizens = _table(ref, "citizens")
    rate = citizens.groupby(citizens["group"].astype(str))["blacklisted"].mean()
    counts = citizens.groupby(citizens["group"].astype(str))["blacklisted"].agg(["size", "sum"])
    di = ref_audit["disparate_impact"]
    assert di["threshold"] == FOUR_FIFTHS == 0.8
    rows = {r["group"]: r for r in di["groups"]}
    assert set(rows) == set(rate.index)
    favourable = 1.0 - rate
    assert di["reference_group"] == favourable.idxmax()
    for g, r in rows.items():
        assert r["blacklist_rate"] == pytest.approx(rate[g])
        assert r["favourable_rate"] == pytest.approx(favourable[g])
        assert (r["citizens"], r["blacklisted"]) == (counts.loc[g, "size"], counts.loc[g, "sum"])
        assert r["impact_ratio"] == pytest.approx(favourable[g] / favourable.max())
        assert r["flagged"] == (r["impact_ratio"] < 0.8)
    assert rows["dissident"]["flagged"] and not rows["urban"]["flagged"] and not rows["rural"]["flagged"]


def test_disparate_impact_counts_give_fairlearns_rates_per_citizen_bit_for_bit(ref, ref_audit):
    """The audit hands Fairlearn weighted counts; one row per citizen gives the same floats."""
    from fairlearn.metrics import MetricFrame, selection_rate

    citizens = _table(ref, "citizens")
    favourable = (~citizens["blacklisted"].to_numpy(bool)).astype(int)
    names = citizens["group"].astype(str).to_numpy(object)
    per_citizen = MetricFrame(metrics=selection_rate, y_true=favourable, y_pred=favourable,
                              sensitive_features=names).by_group.to_dict()
    rows = {r["group"]: r["favourable_rate"] for r in ref_audit["disparate_impact"]["groups"]}
    assert rows == per_citizen
    assert ref_audit["disparate_impact"]["reference_group"] == max(per_citizen, key=per_citizen.get)


# ---------------------------------------------------------------------------
# (c), (d) isolation
# ---------------------------------------------------------------------------


def _graph(n: int, ties: pd.DataFrame) -> nx.Graph:
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(zip(ties["source"].tolist(), ties["target"].tolist()))
    return g


def _largest(g: nx.Graph) -> int:
    return max(len(c) for c in nx.connected_components(g))


def test_largest_component_matches_networkx(ref, ref_audit):
    ties = _table(ref, "ties")
    metrics = _table(ref, "metrics")
    n = ref_audit["citizens"]
    lcc = ref_audit["isolation"]["largest_component"]
    assert len(lcc) == len(metrics) + 1
    assert (lcc[0]["step"], lcc[0]["day"]) == (-1, -1)
    assert lcc[0]["size"] == _largest(_graph(n, ties))
    assert [e["day"] for e in lcc[1:]] == metrics["day"].tolist()
    assert [e["step"] for e in lcc[1:]] == metrics["step"].tolist()
    sizes = []
    for entry in lcc[1:]:
        active = ties[ties["cut_day"].isna() | (ties["cut_day"] > entry["day"])]
        want = _largest(_graph(n, active))
        sizes.append(want)
        assert entry["size"] == want, entry
        assert entry["share"] == pytest.approx(want / n)
    assert sizes[-1] < lcc[0]["size"]  # cuts did split the city


def test_largest_component_on_a_small_graph_that_splits():
    """Hand-made: a path 0-1-2-3-4-5 plus 6-7; cuts on days 6 and 13."""
    from socialcredit.audit import largest_component_sizes

    src = np.array([0, 1, 2, 3, 4, 6])
    dst = np.array([1, 2, 3, 4, 5, 7])
    cut = np.array([-1, -1, 6, -1, 13, -1])  # 2-3 cut on day 6, 4-5 on day 13
    assert largest_component_sizes(src, dst, cut, [6, 13, 20], 9) == [6, 3, 3, 3]


def test_largest_component_compiled_and_in_python_agree_with_networkx(monkeypatch):
    """The compiled union-find and the Python one give networkx's sizes, step by step, on a random city
    whose ties are also cut on days that are no step's (those are never added back)."""
    from socialcredit import kernels
    from socialcredit.audit import largest_component_sizes

    rng = np.random.default_rng(11)
    n, m = 400, 700
    src, dst = rng.integers(0, n, m), rng.integers(0, n, m)
    cut = np.where(rng.random(m) < 0.6, rng.integers(0, 40, m), -1)
    days = [3, 9, 10, 17, 30]
    want = []
    for before in [-1, *days]:
        g = nx.Graph()
        g.add_nodes_from(range(n))
        alive = (cut < 0) | ((cut > before) & np.isin(cut, days))  # never cut, or cut on a later step's day
        g.add_edges_from(zip(src[alive].tolist(), dst[alive].tolist()))
        want.append(max(len(c) for c in nx.connected_components(g)))
    assert kernels.load()
    monkeypatch.setattr(kernels, "REUSE_LOADED", True)
    compiled = largest_component_sizes(src, dst, cut, days, n)
    monkeypatch.setattr(kernels, "_fast", lambda size: None)
    assert largest_component_sizes(src, dst, cut, days, n) == compiled == want


def test_isolation_figures(ref, ref_audit):
    citizens = _table(ref, "citizens")
    iso = ref_audit["isolation"]
    loss = citizens["degree_start"] - citizens["degree_end"]
    black = citizens["blacklisted"]
    assert iso["mean_degree_loss_blacklisted"] == pytest.approx(loss[black].mean())
    assert iso["mean_degree_loss_others"] == pytest.approx(loss[~black].mean())
    isolated = (citizens["degree_end"] == 0) & (citizens["degree_start"] > 0)
    assert iso["isolated"] == int(isolated.sum())
    assert iso["isolated_blacklisted"] == int((isolated & black).sum())
    # degree_end agrees with the ties still active
    ties = _table(ref, "ties")
    active = ties[ties["cut_day"].isna()]
    deg = np.bincount(np.concatenate([active["source"], active["target"]]), minlength=len(citizens))
    assert (deg == citizens["degree_end"].to_numpy()).all()


# ---------------------------------------------------------------------------
# (e) spill-over
# ---------------------------------------------------------------------------


def _replayed_spillover(run, row: dict) -> tuple[int, int]:
    """Grade and black-list changes of other citizens when one false record in effect at the
    last step is removed, by a full replay of that step (with and without it)."""
    scenario = run_scenario(run)
    k = scenario.scoring.every_days
    day = (scenario.days // k) * k - 1
    n = scenario.population.size
    rec = _table(run, "records")
    validity = rec["type"].astype(str).map({t.name: t.validity_days for t in scenario.record_types})
    end = np.minimum(rec["effective_day"] + validity, rec["overturned_day"].fillna(np.iinfo(np.int32).max))
    in_effect = ((rec["effective_day"] <= day) & (day < end)).to_numpy()
    match = np.flatnonzero(in_effect & rec["is_false"].to_numpy() & (rec["citizen"] == row["citizen"]).to_numpy()
                           & (rec["type"].astype(str) == row["type"]).to_numpy()
                           & (rec["effective_day"] == row["effective_day"]).to_numpy())
    assert match.size >= 1
    without = in_effect.copy()
    without[match[0]] = False
    milli = np.round(rec["points"].to_numpy() * MILLI).astype(np.int64)
    serious_type = rec["type"].astype(str).map({t.name: t.serious for t in scenario.record_types}).to_numpy(bool)
    adjacency = adjacency_at(run, day, n)
    tight = scenario.coupling.model_copy(update={"tolerance": 1e-11})
    black_grade = np.array([g in scenario.lists.black_grades for g in scenario.grade_names])
    out = []
    for mask in (in_effect, without):
        raw = np.zeros(n, dtype=np.int64)
        np.add.at(raw, rec["citizen"].to_numpy()[mask], milli[mask])
        points = own_points(raw, scenario.scoring.start, scenario.scoring.min, scenario.scoring.max)
        score, _ = coupled_score(points, adjacency, tight)
        grade = grade_index(score, scenario.scoring.grades)
        serious = np.zeros(n, dtype=bool)
        serious[rec["citizen"].to_numpy()[mask & serious_type]] = True
        black = black_grade[grade] | (serious if scenario.lists.serious_blacklists else False)
        out.append((grade, black))
    (g0, b0), (g1, b1) = out
    citizens = _table(run, "citizens")
    assert (np.array(scenario.grade_names)[g0] == citizens["grade"].astype(str).to_numpy()).all()
    assert (b0 == citizens["blacklisted"].to_numpy()).all()
    others = np.arange(n) != row["citizen"]
    return int((g0 != g1)[others].sum()), int((b0 != b1)[others].sum())


@pytest.fixture(scope="module")
def spill_run(tmp_path_factory, reference_path):
    """Strong coupling and many false bank records: false records do move others' grades."""
    out = tmp_path_factory.mktemp("audit") / "spill"
    overrides = ["population.size=1000", "coupling.kappa=0.9", "agencies.bank.false_rate=0.1",
                 "record_types.loan_arrears.points=-60"]
    return sc.run(load_scenario(reference_path, overrides), out=out).path


def test_spillover_matches_a_full_replay(spill_run):
    sp = audit(spill_run, spillover_sample=40)["spillover"]
    assert sp["sampled"] == min(40, sp["in_effect"]) > 0
    rows = sp["records"]
    for row in rows:
        assert row["grade_changes"] >= 0 and row["blacklist_changes"] >= 0
        assert (row["grade_changes"], row["blacklist_changes"]) == _replayed_spillover(spill_run, row), row
    counts = [r["grade_changes"] for r in rows]
    assert any(counts)  # the case is not vacuous
    assert sp["mean_grade_changes"] == pytest.approx(np.mean(counts))
    assert sp["max_grade_changes"] == max(counts)


def test_spillover_on_reference(ref, ref_audit):
    sp = ref_audit["spillover"]
    assert sp["step"] == 51
    assert 0 < sp["sampled"] <= 20
    for row in sp["records"]:
        assert row["grade_changes"] >= 0 and row["blacklist_changes"] >= 0
        assert (row["grade_changes"], row["blacklist_changes"]) == _replayed_spillover(ref, row), row


def test_no_spillover_without_coupling(tmp_path, reference_path):
    """kappa = 0: a false record changes its own citizen's score only."""
    run = sc.run(load_scenario(reference_path, ["population.size=1000", "coupling.kappa=0"]), out=tmp_path / "k0").path
    sp = audit(run, spillover_sample=50)["spillover"]
    assert sp["sampled"] > 0
    assert all(r["grade_changes"] == 0 and r["blacklist_changes"] == 0 for r in sp["records"])
    assert sp["mean_grade_changes"] == 0.0 and sp["max_grade_changes"] == 0


# A hand-made spill-over. Three citizens, each alone in a group; ties 0 - 1 - 2, kappa 0.5.
# Citizen 0 gets false "slander" records (-300, valid 1 day); the seed is chosen so that exactly
# one is in effect at the only scoring step (day 6). Citizen 1 acts "judgment" (serious, 0 points)
# 20 times a day, so she is blacklisted by a serious record whatever her grade.
# With the record: P = (700, 1000, 1000), S = (825, 950, 975); grades A >= 960, D below:
# citizen 1's grade is D, citizen 2's A. Without it everyone is at 1000, grade A.
# Removing the false record changes one other citizen's grade (1's) and nobody's black-list
# status (1 stays blacklisted by her serious record).

def _spill_raw(seed: int, path) -> dict:
    return {
        "name": "spill", "seed": seed, "days": 7,
        "population": {"size": 3, "groups": [
            {"name": "target", "share": 1 / 3, "rate_multipliers": {"judgment": 0.0}},
            {"name": "debtor", "share": 1 / 3},
            {"name": "bystander", "share": 1 / 3, "rate_multipliers": {"judgment": 0.0}},
        ]},
        "network": {"model": "edge_list", "path": str(path)},
        "agencies": [
            {"name": "gossip_bureau", "coverage": 1.0, "delay_days": 0, "false_rate": 365.0 / 7,
             "false_rate_multipliers": {"debtor": 0.0, "bystander": 0.0}},
            {"name": "court", "kind": "court", "coverage": 1.0, "delay_days": 0},
        ],
        "record_types": [
            {"name": "slander", "agency": "gossip_bureau", "rate": 0.0, "points": -300, "validity_days": 1},
            {"name": "judgment", "agency": "court", "rate": 20.0, "points": 0, "validity_days": 30,
             "serious": True},
        ],
        "scoring": {"start": 1000, "min": 0, "max": 1200, "every_days": 7,
                    "grades": [{"name": "A", "min": 960}, {"name": "D", "min": 0}]},
        "coupling": {"mode": "friedkin_johnsen", "kappa": 0.5, "tolerance": 1e-10},
        "lists": {"red_grades": ["A"], "black_grades": ["D"]},
    }


@pytest.fixture(scope="module")
def hand_spill(tmp_path_factory):
    root = tmp_path_factory.mktemp("handspill")
    path = root / "edges.txt"
    path.write_text("0 1\n")
    for seed in range(2000):
        scenario = scenario_from_dict(_spill_raw(seed, path))
        pop = build_population(scenario, seed)
        if pop.group_sizes.tolist() != [1, 1, 1]:
            continue
        made, _, _, day = false_records(scenario, Catalogue.of(scenario), pop.starts, seed, 0, 7)
        if made.size == 1 and day[0] == 6:
            break
    else:  # pragma: no cover
        pytest.fail("no seed found")
    label = np.argsort(stream(seed, "network").permutation(3))  # labels -> citizens (model.md 7.15)
    path.write_text(f"{label[0]} {label[1]}\n{label[1]} {label[2]}\n")
    run = sc.run(scenario_from_dict(_spill_raw(seed, path)), out=root / "run").path
    ties = _table(run, "ties")
    assert sorted(zip(ties["source"], ties["target"])) == [(0, 1), (1, 2)]
    return run


def test_spillover_hand_made(hand_spill):
    citizens = _table(hand_spill, "citizens")
    assert citizens["points"].tolist() == [700.0, 1000.0, 1000.0]
    assert citizens["score"].tolist() == pytest.approx([825.0, 950.0, 975.0], abs=1e-6)
    assert citizens["grade"].astype(str).tolist() == ["D", "D", "A"]
    assert citizens["blacklisted"].tolist() == [True, True, False]
    assert citizens["black_cause"].astype(str).tolist() == ["error", "record", "none"]
    row = {"citizen": 0, "type": "slander", "effective_day": 6}
    assert _replayed_spillover(hand_spill, row) == (1, 0)
    sp = audit(hand_spill)["spillover"]
    assert (sp["in_effect"], sp["sampled"]) == (1, 1)
    # citizen 0's own grade (D -> A without the record) is not counted: 1 change, citizen 1's
    assert sp["records"] == [{"citizen": 0, "type": "slander", "agency": "gossip_bureau", "effective_day": 6,
                              "grade_changes": 1, "blacklist_changes": 0}]


# ---------------------------------------------------------------------------
# (f) silenced criticism
# ---------------------------------------------------------------------------


def test_silenced_criticism(ref, baseline):
    out = audit(ref, baseline=baseline)["silenced"]
    assert out["notes"] == []
    run_c, base_c = _table(ref, "citizens"), _table(baseline, "citizens")
    assert (run_c["group"].astype(str) == base_c["group"].astype(str)).all()  # the same city
    types = ["online_criticism", "petition"]
    assert {(r["group"], r["type"]) for r in out["rows"]} == {(g, t) for g in ("urban", "rural", "dissident")
                                                              for t in types}
    total = 0
    for r in out["rows"]:
        mine = run_c["group"].astype(str) == r["group"]
        acts_run = int(run_c.loc[mine, f"acts_{r['type']}"].sum())
        acts_base = int(base_c.loc[mine, f"acts_{r['type']}"].sum())
        assert (r["acts_run"], r["acts_baseline"], r["silenced"]) == (acts_run, acts_base, acts_base - acts_run)
        assert r["silenced_share"] == pytest.approx((acts_base - acts_run) / acts_base if acts_base else 0.0)
        total += acts_base - acts_run
    assert out["total_silenced"] == total
    # deterrence <= 1 and fear 0.5 only ever thin the common candidate acts
    assert total > 0
    for t in types:
        assert (run_c[f"acts_{t}"] <= base_c[f"acts_{t}"]).all(), t
    # types no rule touches happen identically, citizen by citizen (common random numbers)
    for t in ("traffic_violation", "loan_arrears", "volunteering"):
        assert (run_c[f"acts_{t}"] == base_c[f"acts_{t}"]).all(), t


def test_silenced_needs_the_same_city(tmp_path, ref, reference_path):
    other = sc.run(load_scenario(reference_path, ["population.size=800", "system=false"]), out=tmp_path / "o").path
    with pytest.raises(ValueError, match="not the same city"):
        audit(ref, baseline=other)
    result = CliRunner().invoke(main, ["audit", str(ref), "--baseline", str(other)])
    assert result.exit_code == 2


# ---------------------------------------------------------------------------
# (g) the command line
# ---------------------------------------------------------------------------


def test_audit_cli(ref, baseline, ref_audit):
    runner = CliRunner()
    result = runner.invoke(main, ["audit", str(ref), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == json.loads(json.dumps(ref_audit))
    plain = runner.invoke(main, ["audit", str(ref)])
    assert plain.exit_code == 0, plain.output
    assert "four-fifths" in plain.output
    lines = plain.output.splitlines()
    assert any("dissident" in line and "FLAGGED" in line for line in lines)
    assert not any(("urban" in line or "rural" in line) and "FLAGGED" in line for line in lines)
    with_base = runner.invoke(main, ["audit", str(ref), "--baseline", str(baseline)])
    assert with_base.exit_code == 0, with_base.output
    assert "acts fewer than without the system" in with_base.output
