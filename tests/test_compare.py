"""compare: common random numbers make two runs of one city differ only by their rules."""

from __future__ import annotations

import json
import tomllib

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import socialcredit as sc
from socialcredit.cli import main
from socialcredit.compare import compare
from socialcredit.scenario import load_scenario, scenario_from_dict

TABLES = ("metrics", "records", "ties", "standing", "citizens")


def _never_fires(raw: dict) -> dict:
    """A new record type with rate 0 (and its own agency, no false records), a named list over
    it, and a rate effect tripling criticism on that list: nobody is ever on the list."""
    raw["agencies"].append({"name": "dormant_office", "coverage": 1.0, "delay_days": 0})
    raw["record_types"].append({"name": "dormant", "agency": "dormant_office", "rate": 0.0,
                                "points": -100, "validity_days": 30})
    raw.setdefault("lists", {})["named"] = [{"name": "watch", "record_types": ["dormant"]}]
    raw["effects"].append({"name": "watched", "kind": "rate", "when": {"lists": ["watch"]},
                           "multiplier": 3.0, "record_types": ["online_criticism", "petition"]})
    return raw


@pytest.fixture(scope="module")
def runs(tmp_path_factory, reference_path, small_reference_run):
    root = tmp_path_factory.mktemp("compare")
    raw = tomllib.loads(reference_path.read_text(encoding="utf-8"))
    raw["population"]["size"] = 1500
    out = {"ref1000": small_reference_run.path}
    out["a"] = sc.run(scenario_from_dict(raw), out=root / "a").path
    out["b"] = sc.run(scenario_from_dict(_never_fires(raw)), out=root / "b").path
    out["kappa0"] = sc.run(load_scenario(reference_path, ["population.size=1000", "coupling.kappa=0"]),
                           out=root / "kappa0").path
    out["seed2"] = sc.run(load_scenario(reference_path, ["population.size=1000"]), seed=2,
                          out=root / "seed2").path
    return out


def _decoded(table: pa.Table, columns: list[str]) -> pa.Table:
    """Selected columns, dictionary columns as plain strings (their dictionaries list every
    name of the scenario, so they differ when one scenario has more types or agencies)."""
    cols = []
    for name in columns:
        col = table[name]
        if pa.types.is_dictionary(col.type):
            col = col.cast(pa.string())
        cols.append(col)
    return pa.table(cols, names=columns)


# ---------------------------------------------------------------------------
# (a) a rule that never fires changes nothing
# ---------------------------------------------------------------------------


def test_the_rule_never_fires(runs):
    metrics = pq.read_table(runs["b"] / "metrics.parquet").to_pandas()
    citizens = pq.read_table(runs["b"] / "citizens.parquet").to_pandas()
    records = pq.read_table(runs["b"] / "records.parquet").to_pandas()
    assert (metrics["list_watch"] == 0).all()
    assert (metrics["effect_watched"] == 0).all()
    assert (metrics["acts_dormant_cum"] == 0).all()
    assert not citizens["list_watch"].any()
    assert (citizens["days_watched"] == 0).all()
    assert (citizens["acts_dormant"] == 0).all()
    assert (records["type"].astype(str) != "dormant").all()


@pytest.mark.parametrize("name", TABLES)
def test_never_firing_rule_gives_identical_tables(runs, name):
    a = pq.read_table(runs["a"] / f"{name}.parquet")
    b = pq.read_table(runs["b"] / f"{name}.parquet")
    shared = [c for c in a.column_names if c in b.column_names]
    assert set(a.column_names) <= set(b.column_names)  # B only adds columns
    assert a.num_rows == b.num_rows > 0
    assert _decoded(a, shared).equals(_decoded(b, shared)), name


def test_never_firing_rule_compares_to_zero(runs):
    out = compare(runs["a"], runs["b"])
    assert out["aggregate"] and all(row["difference"] == 0 for row in out["aggregate"])
    assert all(row["a"] == row["b"] for row in out["aggregate"])
    assert out["chilling"] and all(row["difference"] == 0 for row in out["chilling"])
    lc = out["list_changes"]
    assert lc["black_in_a_only"] == lc["black_in_b_only"] == 0
    assert lc["examples"] == []
    assert lc["black_in_both"] == pq.read_table(runs["a"] / "citizens.parquet")["blacklisted"].to_numpy().sum() > 0
    assert all(t["grade_a"] == t["grade_b"] for t in out["transitions"])
    assert all(row["added"] == 0 for row in out["sanction_days"])


def test_never_firing_rule_is_the_same_city(runs):
    """A record type with rate 0 adds no propensity, draws nothing from any other stream and no
    act ever happens (docs/model.md 7.15: adding a type leaves every other type's streams
    unchanged), so the two runs are the same city: compare must not warn that
    "citizen-by-citizen differences include chance" for two bit-identical runs."""
    out = compare(runs["a"], runs["b"])
    assert out["same_city"] is True, out["notes"]
    assert out["notes"] == []


# ---------------------------------------------------------------------------
# (b) one rule changed: kappa = 0
# ---------------------------------------------------------------------------


def test_kappa_zero_compare_is_consistent(runs):
    a_path, b_path = runs["ref1000"], runs["kappa0"]
    out = compare(a_path, b_path)
    assert out["same_city"] is True and out["notes"] == []
    ca = pq.read_table(a_path / "citizens.parquet").to_pandas()
    cb = pq.read_table(b_path / "citizens.parquet").to_pandas()
    n = len(ca)
    black_a, black_b = ca["blacklisted"].to_numpy(), cb["blacklisted"].to_numpy()
    lc = out["list_changes"]
    assert lc["black_in_a_only"] == int((black_a & ~black_b).sum())
    assert lc["black_in_b_only"] == int((~black_a & black_b).sum())
    assert lc["black_in_both"] == int((black_a & black_b).sum())
    assert lc["black_in_a_only"] + lc["black_in_b_only"] > 0  # the rule matters
    differ = np.flatnonzero(black_a != black_b)
    assert [e["citizen"] for e in lc["examples"]] == differ[:len(lc["examples"])].tolist()
    assert len(lc["examples"]) == min(10, differ.size)
    for e in lc["examples"]:
        i = e["citizen"]
        assert e["black_a"] == bool(black_a[i]) and e["black_b"] == bool(black_b[i]) and e["black_a"] != e["black_b"]
        assert e["grade_a"] == str(ca["grade"][i]) and e["grade_b"] == str(cb["grade"][i])
        assert e["cause_a"] == str(ca["black_cause"][i]) and e["cause_b"] == str(cb["black_cause"][i])
    # without coupling nobody is blacklisted by association
    assert (cb["black_cause"].astype(str) != "association").all()
    # transitions: a crosstab of the final grades, summing to N
    assert sum(t["citizens"] for t in out["transitions"]) == n
    cross = pd.crosstab(ca["grade"].astype(str), cb["grade"].astype(str))
    got = {(t["grade_a"], t["grade_b"]): t["citizens"] for t in out["transitions"]}
    want = {(ga, gb): int(cross.loc[ga, gb]) for ga in cross.index for gb in cross.columns if cross.loc[ga, gb]}
    assert got == want
    # chilling: criticism acts by group from the citizens tables
    types = ["online_criticism", "petition"]
    assert {(r["group"], r["type"]) for r in out["chilling"]} == {(g, t) for g in ("urban", "rural", "dissident")
                                                                  for t in types}
    for r in out["chilling"]:
        x = int(ca.loc[ca["group"].astype(str) == r["group"], f"acts_{r['type']}"].sum())
        y = int(cb.loc[cb["group"].astype(str) == r["group"], f"acts_{r['type']}"].sum())
        assert (r["acts_a"], r["acts_b"], r["difference"]) == (x, y, x - y)
    # aggregate: the last metrics rows side by side
    la = pq.read_table(a_path / "metrics.parquet").to_pylist()[-1]
    lb = pq.read_table(b_path / "metrics.parquet").to_pylist()[-1]
    for row in out["aggregate"]:
        assert row["a"] == la[row["measure"]] and row["b"] == lb[row["measure"]]
        assert row["difference"] == pytest.approx(la[row["measure"]] - lb[row["measure"]])
    for r in out["sanction_days"]:
        mine_a, mine_b = ca["group"].astype(str) == r["group"], cb["group"].astype(str) == r["group"]
        assert r["a"] == int(ca.loc[mine_a, "sanction_days"].sum())
        assert r["b"] == int(cb.loc[mine_b, "sanction_days"].sum())
        assert r["added"] == r["a"] - r["b"]


def test_compare_cli_json_matches_function(runs):
    result = CliRunner().invoke(main, ["compare", str(runs["ref1000"]), str(runs["kappa0"]), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == json.loads(json.dumps(compare(runs["ref1000"], runs["kappa0"])))


# ---------------------------------------------------------------------------
# (c) not the same city
# ---------------------------------------------------------------------------


def test_different_seeds_are_not_the_same_city(runs):
    out = compare(runs["ref1000"], runs["seed2"])
    assert out["same_city"] is False
    assert any("seed" in note for note in out["notes"])


def test_different_population_sizes_are_refused(runs):
    with pytest.raises(ValueError, match="citizens"):
        compare(runs["a"], runs["ref1000"])
    result = CliRunner().invoke(main, ["compare", str(runs["a"]), str(runs["ref1000"])])
    assert result.exit_code == 2
