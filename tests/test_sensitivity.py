"""Sensitivity analysis: parameter specs, the SALib wiring on a known function, and a tiny real Morris run."""

from __future__ import annotations

import json
import warnings
import xml.etree.ElementTree as ET

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import socialcredit as sc
from socialcredit import sweep
from socialcredit.errors import ScenarioError
from socialcredit.query import query
from socialcredit.sensitivity import field_type, metric_columns, parse_param, sensitivity

X1, X2 = "coupling.kappa", "appeals.probability"
B1, B2 = (0.1, 0.9), (0.0, 1.0)


# --------------------------------------------------------------------------
# Specs and validation (nothing runs)
# --------------------------------------------------------------------------

def test_parse_param():
    assert parse_param("coupling.kappa=0.1:0.9") == ("coupling.kappa", 0.1, 0.9)
    assert parse_param(" population.size = 300 : 600 ") == ("population.size", 300.0, 600.0)
    assert parse_param("record_types.petition.points=-80:-20") == ("record_types.petition.points", -80.0, -20.0)


@pytest.mark.parametrize("spec, match", [
    ("coupling.kappa", "PATH=LO:HI"),
    ("coupling.kappa=0.5", "PATH=LO:HI"),
    ("coupling.kappa=0.1:0.5:0.9", "PATH=LO:HI"),
    ("coupling.kappa=a:0.9", "lower bound is not a finite number"),
    ("coupling.kappa=0.1:nan", "upper bound is not a finite number"),
    ("coupling.kappa=0.9:0.1", "lower bound must be below"),
    ("coupling.kappa=0.5:0.5", "lower bound must be below"),
])
def test_parse_param_errors(spec, match):
    with pytest.raises(ScenarioError, match=match) as info:
        parse_param(spec)
    assert info.value.hint  # every error says what to do
    assert "coupling.kappa" in str(info.value)


def test_field_types():
    assert field_type("population.size") is int and field_type("network.k") is int
    assert field_type("coupling.kappa") is float and field_type("agencies[0].coverage") is float
    assert field_type("record_types.petition.points") is float
    assert field_type("population.groups.dissident.rate_multipliers.petition") is float
    for bad in ("system", "coupling.mode", "nosuch.field", "coupling.kappa.x"):
        with pytest.raises(ScenarioError):
            field_type(bad)


@pytest.fixture
def no_runs(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("run_cells must not be called for an invalid analysis")

    monkeypatch.setattr(sweep, "run_cells", fail)


@pytest.mark.parametrize("params, match", [
    ({"coupling.kappa": (0.5, 1.5)}, "coupling.kappa"),            # upper bound outside the schema (< 1)
    ({"appeals.probability": (-0.5, 0.5)}, "appeals.probability"),  # lower bound outside [0, 1]
    ({"coupling.kappa": (0.9, 0.1)}, "lower bound must be below"),
    ({"system": (0, 1)}, "not a number field"),
    ({"coupling.mode": (0, 1)}, "not a number field"),
    ({"coupling.kapa": (0.1, 0.2)}, "no field 'kapa'"),
    ({"population.size": (300.2, 300.4)}, "at least two integers"),
    ({}, "no parameter"),
])
def test_bad_params_are_refused_before_running(reference_path, tmp_path, no_runs, params, match):
    with pytest.raises(ScenarioError, match=match) as info:
        sensitivity(reference_path, params, method="morris", samples=2, out=tmp_path / "sa", progress=False)
    assert info.value.hint
    assert not (tmp_path / "sa").exists()


def test_bad_output_and_method_are_refused(reference_path, tmp_path, no_runs):
    with pytest.raises(ScenarioError, match="not a metrics column"):
        sensitivity(reference_path, {X1: B1}, outputs=("blacklisted", "nonsense"), out=tmp_path / "sa")
    with pytest.raises(ValueError, match="unknown method"):
        sensitivity(reference_path, {X1: B1}, method="fast", out=tmp_path / "sa")
    assert not (tmp_path / "sa").exists()


def test_metric_columns_match_a_real_run(scenarios_dir):
    for name, sets in (("reference", ["population.size=50"]), ("rongcheng", ["population.size=200", "days=7"])):
        scenario = sc.load_scenario(scenarios_dir / f"{name}.toml", sets)
        engine = sc.run(scenario).engine
        assert metric_columns(scenario) == list(engine.metrics[0]), name


# --------------------------------------------------------------------------
# The SALib wiring on a known function (no simulation)
# --------------------------------------------------------------------------

def _linear(cell):
    x1, x2 = cell[X1], cell[X2]
    return {"blacklisted": 3.0 * x1 + 0.0 * x2, "black_by_error": x1 + 2.0 * x2, "ties_cut_cum": 7}


@pytest.fixture
def fake_run_cells(monkeypatch):
    """Replace run_cells by a function of the cell that writes the runs files as the real one does."""
    calls = []

    def fake(scenario, cells, replicates, out, seed=0, workers=None, scheduler=None, progress=True,
             overrides=(), cell_labels=None):
        calls.append({"cells": cells, "labels": cell_labels, "replicates": replicates, "seed": seed,
                      "overrides": list(overrides)})
        out.mkdir(parents=True)
        (out / "sweep.json").write_text(json.dumps({"cells": cells, "replicates": replicates, "seed": seed}))
        for k, (cell, label) in enumerate(zip(cells, cell_labels or cells)):
            row = {"cell": pa.array([k], pa.int32()), "replicate": pa.array([0], pa.int32()), "seed": [seed]}
            row.update({p: [v] for p, v in label.items()})
            row.update({m: [v] for m, v in _linear(cell).items()})
            d = out / "runs" / f"cell={k}"
            d.mkdir(parents=True)
            pq.write_table(pa.table(row), d / "replicate=0.parquet")
        return pa.table({"cell": list(range(len(cells)))})

    monkeypatch.setattr(sweep, "run_cells", fake)
    return calls


OUTPUTS = ("blacklisted", "black_by_error", "ties_cut_cum")


def _rows(table):
    return {(r["output"], r["param"]): r for r in table.to_pylist()}


def test_sobol_recovers_a_linear_function(reference_path, tmp_path, fake_run_cells):
    with pytest.warns(UserWarning, match="ties_cut_cum"):
        table = sensitivity(reference_path, {X1: B1, X2: B2}, method="sobol", samples=128, out=tmp_path / "sa",
                            seed=3, progress=False, outputs=OUTPUTS, overrides=["population.size=100"])
    call = fake_run_cells[0]
    assert len(call["cells"]) == 128 * (2 + 2) and call["replicates"] == 1 and call["seed"] == 3
    assert call["overrides"] == ["population.size=100"]
    assert table.column_names == ["output", "param", "S1", "S1_conf", "ST", "ST_conf"]
    assert table.num_rows == len(OUTPUTS) * 2
    rows = _rows(table)
    b1, b2 = rows["blacklisted", X1], rows["blacklisted", X2]
    # y = 3 x1: all variance is x1's; x2 has none (its estimates are exactly 0 for a term that is 0)
    assert abs(b1["ST"] - 1) <= max(b1["ST_conf"], 0.02) and abs(b1["S1"] - 1) <= max(b1["S1_conf"], 0.05)
    assert abs(b2["ST"]) <= max(b2["ST_conf"], 1e-9) and abs(b2["S1"]) <= max(b2["S1_conf"], 1e-9)
    # y = x1 + 2 x2 (additive): S1 = ST = the variance shares 0.64/4.64 and 4/4.64
    v1, v2 = (B1[1] - B1[0]) ** 2 / 12, 4 * (B2[1] - B2[0]) ** 2 / 12
    for param, share in ((X1, v1 / (v1 + v2)), (X2, v2 / (v1 + v2))):
        r = rows["black_by_error", param]
        assert abs(r["ST"] - share) <= max(2 * r["ST_conf"], 0.03)
        assert abs(r["S1"] - share) <= max(2 * r["S1_conf"], 0.05)
    # a constant output has undefined indices
    assert all(np.isnan(rows["ties_cut_cum", p]["ST"]) for p in (X1, X2))
    stored = pq.read_table(tmp_path / "sa" / "indices.parquet")
    assert stored.to_pandas().equals(table.to_pandas())  # NaN == NaN here
    assert ET.parse(tmp_path / "sa" / "indices.svg").getroot().tag.endswith("svg")
    meta = json.loads((tmp_path / "sa" / "sensitivity.json").read_text())
    assert meta["method"] == "sobol" and meta["params"][X1] == {"lo": 0.1, "hi": 0.9, "type": "float"}


def test_morris_recovers_a_linear_function(reference_path, tmp_path, fake_run_cells):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Morris handles a constant output without warnings
        table = sensitivity(reference_path, {X1: B1, X2: B2}, method="morris", samples=10, out=tmp_path / "sa",
                            progress=False, outputs=OUTPUTS)
    assert len(fake_run_cells[0]["cells"]) == 10 * (2 + 1)
    assert table.column_names == ["output", "param", "mu_star", "mu_star_conf", "sigma", "mu"]
    rows = _rows(table)
    # SALib divides each output change by the step on the unit scale: the effect of the whole range
    assert rows["blacklisted", X1]["mu_star"] == pytest.approx(3 * (B1[1] - B1[0]))
    assert rows["blacklisted", X1]["sigma"] == pytest.approx(0, abs=1e-9)
    assert rows["blacklisted", X2]["mu_star"] == pytest.approx(0, abs=1e-12)
    assert rows["black_by_error", X2]["mu_star"] == pytest.approx(2 * (B2[1] - B2[0]))
    assert rows["ties_cut_cum", X1]["mu_star"] == 0
    assert (tmp_path / "sa" / "indices.svg").stat().st_size > 1000


def test_integer_fields_are_rounded_and_the_design_is_labelled(reference_path, tmp_path, monkeypatch):
    seen = {}

    def fake(scenario, cells, replicates, out, **kwargs):
        seen.update(cells=cells, labels=kwargs["cell_labels"])
        raise RuntimeError("stop here")

    monkeypatch.setattr(sweep, "run_cells", fake)
    with pytest.raises(RuntimeError, match="stop here"):
        sensitivity(reference_path, {"population.size": (300, 650), X1: B1}, method="morris", samples=4,
                    out=tmp_path / "sa", progress=False)
    sizes = [c["population.size"] for c in seen["cells"]]
    assert all(type(s) is int and 300 <= s <= 650 for s in sizes)
    assert all(type(c[X1]) is float for c in seen["cells"])
    drawn = [lab["population.size"] for lab in seen["labels"]]
    assert sizes == [int(np.floor(x + 0.5)) for x in drawn]
    assert any(x != round(x) for x in drawn)  # the labels keep the design as SALib drew it (levels 416.7, 533.3)


# --------------------------------------------------------------------------
# A tiny real analysis on the sweep machinery
# --------------------------------------------------------------------------

def test_tiny_morris_run(reference_path, tmp_path):
    out = tmp_path / "morris"
    params = {X1: B1, "network.cut_probability": (0.0, 0.5)}
    args = dict(method="morris", samples=4, out=out, seed=1, workers=2, progress=False,
                overrides=["population.size=300", "days=28"])
    table = sensitivity(reference_path, params, **args)
    outputs = ("blacklisted", "black_by_error", "black_by_association", "ties_cut_cum")
    assert table.num_rows == len(outputs) * len(params)
    assert [(r["output"], r["param"]) for r in table.to_pylist()] == [(o, p) for o in outputs for p in params]
    assert all(np.isfinite(table.column(c).to_numpy()).all() for c in ("mu_star", "mu_star_conf", "sigma"))
    assert (table.column("mu_star").to_numpy() >= 0).all()
    assert pq.read_table(out / "indices.parquet").equals(table)
    svg = ET.parse(out / "indices.svg").getroot()
    assert svg.tag.endswith("svg")
    # the folder is a sweep folder: 4 trajectories x 3 points, one run each, plus the indices
    runs = query(out, "select cell, count(*) as n from runs group by cell order by cell")
    assert runs["cell"].tolist() == list(range(12)) and set(runs["n"]) == {1}
    assert query(out, "select count(*) as n from indices")["n"].item() == table.num_rows
    # running it again resumes: nothing is left to run, the same table comes back
    again = sensitivity(reference_path, params, **args)
    assert again.equals(table)
