"""The scenario: every validation rule produces its named error; the shipped scenarios.

The bounded-field walk follows scikit-learn's test_public_functions: it reads
the bounds from the models' JSON schema (so a new bounded field is tested the
day it is declared), breaks each bound in turn on reference.toml and checks
the error names the path, the value received and the bound.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib

import numpy as np
import pytest

import socialcredit as sc
from socialcredit.errors import ScenarioError, SocialCreditError
from socialcredit.scenario import Scenario, load_scenario, scenario_from_dict, scenario_schema

# ---------------------------------------------------------------------------
# The schema walk
# ---------------------------------------------------------------------------

SCHEMA = Scenario.model_json_schema()
DEFS = SCHEMA["$defs"]
BOUNDS = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")
# which existing item of reference.toml to break, per list, and a valid key per dict field
INDEX = {"population.groups": 2, "network.kinds": 0, "agencies": 3, "record_types": 4, "effects": 1,
         "schemes": 0, "scoring.grades": 5, "lists.named": 0}
DICT_KEY = {"rate_multipliers": "online_criticism", "false_rate_multipliers": "rural", "deterrence": "C",
            "points": "petition"}
SIDE_SCHEME = {"name": "side", "start": 500, "min": 0, "max": 1000, "points": {}}


def _resolve(node):
    return DEFS[node["$ref"].rsplit("/", 1)[-1]] if "$ref" in node else node


def _walk(schema, prefix=""):
    for name, prop in schema.get("properties", {}).items():
        yield from _walk_prop(prop, f"{prefix}.{name}" if prefix else name, name)


def _walk_prop(prop, path, name):
    for option in prop.get("anyOf", [prop]):
        if "$ref" in option:
            yield from _walk(_resolve(option), path)
        elif option.get("type") == "array" and "$ref" in option.get("items", {}):
            yield from _walk(_resolve(option["items"]), f"{path}[{INDEX.get(_list_key(path), 0)}]")
        elif option.get("type") == "object" and isinstance(option.get("additionalProperties"), dict):
            yield from _walk_prop(option["additionalProperties"], f"{path}.{DICT_KEY[name]}", name)
        elif option.get("type") in ("number", "integer"):
            for bound in BOUNDS:
                if bound in option:
                    yield path, option["type"], bound, option[bound]


def _list_key(path):
    """``schemes[0].coupling`` style paths without their indices, to look up INDEX."""
    return re.sub(r"\[\d+\]", "", path)


BOUNDED = list(_walk(SCHEMA))


def _outside(kind, typ, bound):
    step = 1 if typ == "integer" else 0.5
    return {"minimum": bound - step, "maximum": bound + step}.get(kind, bound)


def _bound_texts(bound):
    texts = {str(bound)}
    if isinstance(bound, float) and bound.is_integer():
        texts.add(str(int(bound)))
    return texts


def test_the_walk_finds_the_bounded_fields():
    paths = {p for p, *_ in BOUNDED}
    for expected in ("seed", "days", "population.size", "population.groups[2].share",
                     "population.groups[2].rate_multipliers.online_criticism", "network.k", "network.rewire",
                     "network.kinds[0].weight", "network.kinds[0].cut_probability", "network.cut_probability",
                     "agencies[3].coverage", "agencies[3].delay_days", "agencies[3].false_rate",
                     "agencies[3].false_rate_multipliers.rural", "record_types[4].rate",
                     "record_types[4].heterogeneity", "record_types[4].validity_days",
                     "record_types[4].deterrence.C", "record_types[4].fear", "scoring.every_days",
                     "coupling.kappa", "coupling.tolerance", "appeals.probability", "appeals.days",
                     "effects[1].multiplier", "schemes[0].coupling.kappa"):
        assert expected in paths, expected
    assert len(BOUNDED) >= 50


@pytest.mark.parametrize("path, typ, kind, bound", BOUNDED, ids=[f"{p}-{k}" for p, _, k, _ in BOUNDED])
def test_each_bound_gives_a_named_error(reference_path, path, typ, kind, bound):
    value = _outside(kind, typ, bound)
    overrides = {"schemes": [copy.deepcopy(SIDE_SCHEME)]} if path.startswith("schemes") else {}
    overrides[path] = value
    with pytest.raises(ScenarioError) as err:
        load_scenario(reference_path, overrides)
    e = err.value
    assert isinstance(e, ValueError) and isinstance(e, SocialCreditError)
    assert e.path == path
    assert e.value == value
    message = str(e)
    assert path in message and repr(value) in message
    assert any(t in message for t in _bound_texts(bound)), message
    assert e.hint and any(t in e.hint for t in _bound_texts(bound))


def test_the_value_just_inside_each_bound_is_accepted(reference_path):
    for path, typ, kind, bound in BOUNDED:
        if kind.startswith("exclusive") or "share" in path:
            continue  # shares at 1 break the sum-to-1 rule
        if (path, kind) in (("days", "minimum"), ("scoring.every_days", "maximum")):
            continue  # every_days > days is a cross-field rule
        overrides = {"schemes": [copy.deepcopy(SIDE_SCHEME)]} if path.startswith("schemes") else {}
        overrides[path] = bound
        load_scenario(reference_path, overrides)


def test_set_style_strings_are_parsed_and_checked(reference_path):
    with pytest.raises(ScenarioError) as err:
        load_scenario(reference_path, ["agencies[3].coverage=1.5"])
    assert err.value.path == "agencies[3].coverage" and "1.5" in str(err.value)
    with pytest.raises(ScenarioError) as err:
        load_scenario(reference_path, ["agencies.petition_office.coverage=-0.1"])
    assert err.value.path == "agencies[4].coverage"
    s = load_scenario(reference_path, ["record_types.petition.points=-70", "system=false", "coupling.mode=none"])
    assert s.record_types[4].points == -70 and s.system is False and s.coupling.mode == "none"


# ---------------------------------------------------------------------------
# Other rules
# ---------------------------------------------------------------------------


def _error(reference_path, overrides):
    with pytest.raises(ScenarioError) as err:
        load_scenario(reference_path, overrides)
    assert err.value.hint, str(err.value)
    return err.value


def _paths(err):
    return [e.path for e in getattr(err, "errors", [err])]


def test_unknown_keys_rejected(reference_path):
    e = _error(reference_path, {"coupling.kapa": 0.3})
    assert e.path == "coupling.kapa"
    e = _error(reference_path, {"agencies[0].colour": "red"})
    assert e.path == "agencies[0].colour"
    e = _error(reference_path, {"surprise": 1})
    assert e.path == "surprise"


def test_grade_thresholds_must_descend(reference_path):
    e = _error(reference_path, {"scoring.grades[3].min": 960})
    assert e.path == "scoring.grades[3].min" and "960" in str(e) and "descending" in str(e)
    e = _error(reference_path, {"scoring.grades[1].min": 1100})
    assert e.path == "scoring.grades[1].min"


def test_shares_must_sum_to_one(reference_path):
    e = _error(reference_path, {"population.groups[0].share": 0.5})
    assert e.path == "population.groups" and "sum to 1" in str(e) and "0.93" in str(e)
    e = _error(reference_path, {"network.kinds": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.4}]})
    assert e.path == "network.kinds"


@pytest.mark.parametrize("overrides, path, what", [
    ({"record_types[2].agency": "secret_police"}, "record_types[2].agency", "agency"),
    ({"population.groups[2].rate_multipliers": {"poetry": 3}}, "population.groups[2].rate_multipliers.poetry",
     "record type"),
    ({"agencies[0].false_rate_multipliers": {"martians": 2}}, "agencies[0].false_rate_multipliers.martians", "group"),
    ({"record_types[3].deterrence": {"E": 0.1}}, "record_types[3].deterrence.E", "grade"),
    ({"lists.black_grades": ["B", "F"]}, "lists.black_grades[1]", "grade"),
    ({"effects[0].when": {"grades": ["Z"]}}, "effects[0].when.grades[0]", "grade"),
    ({"effects[0].when": {"lists": ["grey"]}}, "effects[0].when.lists[0]", "list"),
    ({"effects[0].when": {"scheme": "sesame", "min_score": 700}}, "effects[0].when.scheme", "scheme"),
    ({"effects[0].kind": "rate", "effects[0].record_types": ["poetry"]}, "effects[0].record_types[0]", "record type"),
    ({"effects[0].agencies": ["secret_police"]}, "effects[0].agencies[0]", "agency"),
])
def test_unknown_references(reference_path, overrides, path, what):
    e = _error(reference_path, overrides)
    assert path in _paths(e)
    assert f"unknown {what}" in str(e)


def test_unknown_scheme_points_type(reference_path):
    e = _error(reference_path, {"schemes": [{**SIDE_SCHEME, "points": {"poetry": 1}}]})
    assert "schemes[0].points.poetry" in _paths(e)


def test_red_black_overlap(reference_path):
    e = _error(reference_path, {"lists.red_grades": ["AAA", "AA", "A", "B"]})
    assert e.path == "lists.red_grades" and "'B'" in str(e)


@pytest.mark.parametrize("path", ["appeals.probability", "agencies[2].coverage", "network.cut_probability",
                                  "network.kinds[0].cut_probability", "network.rewire"])
@pytest.mark.parametrize("value", [-0.01, 1.01])
def test_probabilities_outside_0_1(reference_path, path, value):
    e = _error(reference_path, {path: value})
    assert e.path == path and repr(value) in str(e)


def test_several_problems_are_all_reported(reference_path):
    e = _error(reference_path, {"agencies[0].coverage": 2.0, "coupling.kappa": 1.5})
    assert set(_paths(e)) == {"agencies[0].coverage", "coupling.kappa"}
    assert "2 problems" in str(e)


def test_cross_field_rules(reference_path):
    assert _error(reference_path, {"scoring.start": 1300}).path == "scoring.start"
    assert _error(reference_path, {"scoring.every_days": 400}).path == "scoring.every_days"
    assert _error(reference_path, {"network.model": "watts_strogatz", "network.k": 7}).path == "network.k"
    assert _error(reference_path, {"network.model": "edge_list"}).path == "network.path"
    assert _error(reference_path, {"effects[0].kind": "ban"}).path == "effects[0].multiplier"
    assert _error(reference_path, {"effects[0].when": {"grades": ["C"], "lists": ["black"]}}).path == "effects[0].when"
    assert _error(reference_path, {"effects[0].target": "family"}).path == "effects[0].target"
    assert _error(reference_path, {"agencies[1].name": "traffic_police"}).path == "agencies"
    assert _error(reference_path, {"network.model": "small_world"}).path == "network.model"
    assert _error(reference_path, {"population.groups[0].name": "1st"}).path == "population.groups[0].name"


@pytest.mark.parametrize("override, path", [
    ("agencies.nope.coverage=1", "agencies.nope"),
    ("agencies[99].coverage=1", "agencies[99]"),
    ("coupling.kappa.x=1", "coupling.kappa"),
    ("coupling.kappa", "coupling.kappa"),
])
def test_bad_set_paths(reference_path, override, path):
    e = _error(reference_path, [override])
    assert e.path == path


def test_missing_file_and_invalid_toml(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ScenarioError) as err:
        load_scenario(missing)
    assert err.value.path == str(missing) and err.value.hint
    broken = tmp_path / "broken.toml"
    broken.write_text('name = "x"\ndays = \n')
    with pytest.raises(ScenarioError) as err:
        load_scenario(broken)
    assert err.value.path == str(broken) and "TOML" in str(err.value) and err.value.hint


def test_missing_required_field(reference_raw):
    del reference_raw["days"]
    with pytest.raises(ScenarioError) as err:
        scenario_from_dict(reference_raw)
    assert err.value.path == "days" and err.value.hint


def test_overrides_leave_the_callers_objects_alone(reference_path, reference_raw):
    """An override value is data handed in by the caller: later overrides must not mutate it."""
    schemes = [copy.deepcopy(SIDE_SCHEME)]
    load_scenario(reference_path, {"schemes": schemes, "schemes[0].coupling.kappa": 0.3})
    assert schemes == [SIDE_SCHEME]
    before = copy.deepcopy(reference_raw)
    scenario_from_dict(reference_raw, {"population.size": 10})
    assert reference_raw == before


def test_scenario_is_frozen_and_round_trips(reference_path):
    s = load_scenario(reference_path)
    with pytest.raises(Exception):
        s.days = 3  # type: ignore[misc]
    data = s.to_dict()
    json.dumps(data)  # JSON-safe: inf is a string
    assert data["record_types"][0]["heterogeneity"] == "inf"
    data["record_types"][0]["heterogeneity"] = float("inf")
    assert scenario_from_dict(data) == s


def test_schema_is_json_with_descriptions():
    schema = scenario_schema()
    text = json.dumps(schema)
    assert json.loads(text) == schema
    assert schema["$defs"]["Agency"]["properties"]["coverage"]["maximum"] == 1.0
    assert "description" in schema["$defs"]["Agency"]["properties"]["coverage"]


# ---------------------------------------------------------------------------
# The shipped scenarios
# ---------------------------------------------------------------------------

SHIPPED = ["reference", "rongcheng", "seed-articles", "no-system"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenarios_load(scenarios_dir, name):
    s = load_scenario(scenarios_dir / f"{name}.toml")
    assert s.population.size >= 5000
    assert sorted(p.stem for p in scenarios_dir.glob("*.toml")) == sorted(SHIPPED)


def test_reference_is_the_reference_model(reference_path):
    """The numbers of MODEL.md, one by one."""
    s = load_scenario(reference_path)
    assert (s.population.size, s.days, s.scoring.every_days) == (5000, 364, 7)
    assert [(g.name, g.share) for g in s.population.groups] == [("urban", 0.57), ("rural", 0.38), ("dissident", 0.05)]
    assert s.population.groups[2].rate_multipliers == {"online_criticism": 20, "petition": 10}
    assert (s.network.model, s.network.k_in, s.network.k_out, s.network.cut_probability) == ("sbm", 8, 2, 0.05)
    assert (s.scoring.start, s.scoring.min, s.scoring.max) == (1000, 0, 1200)
    assert [(g.name, g.min) for g in s.scoring.grades] == [("AAA", 1050), ("AA", 1030), ("A", 960), ("B", 850),
                                                           ("C", 600), ("D", 0)]
    assert (s.coupling.mode, s.coupling.kappa, s.coupling.tolerance) == ("friedkin_johnsen", 0.5, 1e-6)
    assert (s.appeals.probability, s.appeals.days) == (0.3, 30)
    assert s.lists.red_grades == ["AAA", "AA", "A"] and s.lists.black_grades == ["B", "C", "D"]
    table = {t.name: (t.agency, t.rate, t.heterogeneity, t.points, t.validity_days, t.serious,
                      [t.deterrence.get(g, 1.0) for g in ("B", "C", "D")], t.fear) for t in s.record_types}
    inf = float("inf")
    assert table == {
        "traffic_violation": ("traffic_police", 0.002, inf, -5, 365, False, [1, 1, 1], 1),
        "loan_arrears": ("bank", 0.0005, 1, -10, 1825, False, [1, 1, 1], 1),
        "court_debt_judgment": ("court", 0.0001, 1, -30, 730, True, [1, 1, 1], 1),
        "online_criticism": ("cyberspace_office", 0.003, 0.2, -30, 730, False, [0.7, 0.4, 0.2], 0.5),
        "petition": ("petition_office", 0.0005, 0.3, -50, 730, False, [0.7, 0.4, 0.2], 0.5),
        "volunteering": ("civil_affairs", 0.003, 1, 5, 365, False, [1, 1, 1], 1),
        "blood_donation": ("health_commission", 0.0003, inf, 10, 365, False, [1, 1, 1], 1),
    }
    agencies = {a.name: (a.coverage, a.delay_days, a.false_rate, a.false_rate_multipliers.get("rural", 1))
                for a in s.agencies}
    assert agencies == {
        "traffic_police": (0.3, 1, 0.01, 2), "bank": (0.9, 30, 0.01, 2), "court": (1.0, 60, 0.002, 2),
        "cyberspace_office": (0.5, 1, 0, 1), "petition_office": (1.0, 7, 0, 1), "civil_affairs": (0.8, 7, 0, 1),
        "health_commission": (1.0, 1, 0, 1),
    }
    surveillance = {tuple(e.when.grades): e.multiplier for e in s.effects if e.kind == "surveillance"}
    assert surveillance == {("C",): 2, ("D",): 3}
    assert all(e.kind == "surveillance" for e in s.effects) and s.schemes == [] and s.system


def test_no_system_differs_from_rongcheng_only_where_documented(scenarios_dir):
    rong = tomllib.loads((scenarios_dir / "rongcheng.toml").read_text(encoding="utf-8"))
    base = tomllib.loads((scenarios_dir / "no-system.toml").read_text(encoding="utf-8"))
    header = (scenarios_dir / "no-system.toml").read_text(encoding="utf-8").split("\nname")[0]
    for documented in ("system = false", "effects", "deterrence", "fear", "cut_probability", "coupling.mode",
                       "schemes"):
        assert documented in header, documented
    assert base["system"] is False and rong.get("system", True) is True
    assert base.get("effects", []) == [] and base.get("schemes", []) == []
    assert base["coupling"]["mode"] == "none" and base["coupling"].get("kappa", 0) == 0
    assert base["network"]["cut_probability"] == 0
    assert all(k.get("cut_probability", 0) == 0 for k in base["network"]["kinds"])
    for t in base["record_types"]:
        assert t.get("deterrence", {}) == {} and t.get("fear", 1.0) == 1.0, t["name"]

    def strip(raw):
        raw = copy.deepcopy(raw)
        for key in ("name", "description", "system", "effects", "schemes", "coupling"):
            raw.pop(key, None)
        raw["network"].pop("cut_probability", None)
        for k in raw["network"]["kinds"]:
            k.pop("cut_probability", None)
        for t in raw["record_types"]:
            t.pop("deterrence", None)
            t.pop("fear", None)
        return raw

    assert strip(base) == strip(rong)
    # spelled out: the same city and behaviour
    for key in ("seed", "days", "population", "agencies", "scoring", "lists", "appeals"):
        assert base[key] == rong[key], key
    assert [(t["name"], t["rate"], t["points"], t["agency"]) for t in base["record_types"]] == \
           [(t["name"], t["rate"], t["points"], t["agency"]) for t in rong["record_types"]]
    for key in ("model", "k_in", "k_out"):
        assert base["network"][key] == rong["network"][key]


@pytest.fixture(scope="module")
def smoke_runs(scenarios_dir):
    runs = {}
    for name in SHIPPED:
        s = load_scenario(scenarios_dir / f"{name}.toml", ["population.size=2000", "days=56"])
        runs[name] = sc.run(s)
    return runs


@pytest.mark.parametrize("name", SHIPPED)
def test_smoke_run_has_plausible_figures(smoke_runs, name):
    result = smoke_runs[name]
    eng = result.engine
    s = eng.scenario
    k = s.scoring.every_days
    assert len(result.metrics) == 56 // k
    last = result.metrics[-1]
    assert sum(last[f"grade_{g}"] for g in s.grade_names) == 2000
    assert last["black_by_record"] + last["black_by_error"] + last["black_by_association"] == last["blacklisted"]
    assert last["redlisted"] + last["blacklisted"] <= 2000
    assert 0 <= last["blacklisted"] < 2000 * 0.5
    assert last["ties_active"] + last["ties_cut_cum"] == eng.ties.n_ties
    mean_degree = 2 * eng.ties.n_ties / 2000
    assert 2 < mean_degree < 40
    assert np.isfinite(eng.standing.score).all()
    assert ((eng.standing.score >= s.scoring.min) & (eng.standing.score <= s.scoring.max)).all()
    # acts happen; every act type with a recording agency gets recorded at its coverage
    acts = eng.daily["acts"].sum(axis=0)
    recs = eng.daily["true_records"].sum(axis=0)
    assert acts.sum() > 0
    assert recs.sum() > 0, "agencies record acts in every scenario (no-system too: 'records are unchanged')"
    assert (recs <= acts).all()  # surveillance raises the chance of recording, never above 1


def test_smoke_rongcheng_versus_no_system(smoke_runs):
    """Same city and seed: identical population and network; criticism acts are not deterred
    in the baseline, so there are at least as many."""
    rong, base = smoke_runs["rongcheng"].engine, smoke_runs["no-system"].engine
    np.testing.assert_array_equal(rong.population.group, base.population.group)
    np.testing.assert_array_equal(rong.population.base_rate, base.population.base_rate)
    np.testing.assert_array_equal(rong.ties.src, base.ties.src)
    np.testing.assert_array_equal(rong.ties.kind, base.ties.kind)
    crit = rong.scenario.type_names.index("online_criticism")
    assert base.daily["acts"][:, crit].sum() >= rong.daily["acts"][:, crit].sum()
    # before any standing differs (the first week), the acts are identical draws
    np.testing.assert_array_equal(rong.daily["acts"][:7], base.daily["acts"][:7])


def test_record_type_names_ending_in_cum_are_reserved(reference_path):
    e = _error(reference_path, {"record_types[1].name": "loan_cum", "population.groups[2].rate_multipliers": {}})
    assert "record_types[1].name" in _paths(e)
