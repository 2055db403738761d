"""Effects: surveillance, rate effects, family spill-over, and days under bans and privileges."""

from __future__ import annotations

import numpy as np
import pytest

from socialcredit.engine import Engine
from socialcredit.lists import Listing
from socialcredit.effects import condition_mask, evaluate_effects
from socialcredit.scenario import load_scenario

# ---------------------------------------------------------------------------
# evaluate_effects on hand-made cases
# ---------------------------------------------------------------------------


def _listing(black, red, named=None):
    n = len(black)
    return Listing(black=np.array(black), red=np.array(red), cause=np.zeros(n, np.int8),
                   named=np.array(named if named is not None else np.zeros((0, n), bool)))


@pytest.fixture
def family_scenario(reference_path):
    """reference.toml with family and friend ties, and one effect of each kind."""
    return load_scenario(reference_path, {
        "population.size": 50,
        "network.kinds": [{"name": "family", "share": 0.5, "weight": 2.0}, {"name": "friend", "share": 0.5}],
        "effects": [
            {"name": "watch", "kind": "surveillance", "when": {"grades": ["C", "D"]}, "multiplier": 2.0,
             "agencies": ["traffic_police", "bank"]},
            {"name": "trap", "kind": "rate", "when": {"grades": ["D"]}, "record_types": ["loan_arrears"],
             "multiplier": 1.5},
            {"name": "school_ban", "kind": "ban", "target": "family", "when": {"lists": ["black"]}},
            {"name": "perk", "kind": "privilege", "when": {"lists": ["red"]}},
        ],
    })


def test_evaluate_effects_hand_made(family_scenario):
    sc = family_scenario
    # citizens 0..5; grades index: 2 = A, 4 = C, 5 = D
    grade = np.array([2, 4, 5, 2, 2, 2], np.int8)
    black = [False, True, True, False, False, False]
    red = [True, False, False, True, True, True]
    # the one active family tie is 1-3 (1 is black); a friend tie 2-4 (2 is black)
    # is not passed as family, so 4 must not be touched
    family = (np.array([1]), np.array([3]))
    state = evaluate_effects(sc, grade, _listing(black, red), np.zeros((0, 6)), family)
    assert state.applies[0].tolist() == [False, True, True, False, False, False]      # surveillance C, D
    assert state.applies[1].tolist() == [False, False, True, False, False, False]     # rate on D
    assert state.applies[2].tolist() == [False, False, False, True, False, False]     # family of a black citizen
    assert state.applies[3].tolist() == red
    ids = np.arange(6)
    for a, agency in enumerate(sc.agencies):
        expected = [1, 2, 2, 1, 1, 1] if agency.name in ("traffic_police", "bank") else [1] * 6
        assert np.broadcast_to(state.record_factor(a, ids), (6,)).tolist() == expected, agency.name
    for c, name in enumerate(sc.type_names):
        expected = [1, 1, 1.5, 1, 1, 1] if name == "loan_arrears" else [1] * 6
        assert np.broadcast_to(state.rate_factor(c, ids), (6,)).tolist() == expected, name
        assert state.rate_raised(c) == (name == "loan_arrears")


def test_family_effect_without_family_matrix_applies_to_nobody(family_scenario):
    state = evaluate_effects(family_scenario, np.array([5, 5], np.int8), _listing([True, True], [False, False]),
                             np.zeros((0, 2)), None)
    assert state.applies[0].all()
    assert not state.applies[2].any()


def test_scheme_band_condition(reference_path):
    sc = load_scenario(reference_path, {
        "population.size": 50,
        "schemes": [{"name": "side", "start": 550, "min": 350, "max": 950, "points": {}}],
        "effects": [{"name": "band", "kind": "privilege", "when": {"scheme": "side", "min_score": 600, "max_score": 700}}],
    })
    side = np.array([[599.99, 600.0, 650.0, 699.99, 700.0]])
    mask = condition_mask(sc, sc.effects[0], np.zeros(5, np.int8), _listing([False] * 5, [False] * 5), side)
    assert mask.tolist() == [False, True, True, True, False]


# ---------------------------------------------------------------------------
# Surveillance and rate effects inside the engine
# ---------------------------------------------------------------------------


def _band(start, low, high):
    """Overrides that pin every citizen's P (hence S) into [low, high]."""
    return {"scoring.start": start, "scoring.min": low, "scoring.max": high}


@pytest.mark.parametrize("band, multiplier", [(_band(300, 0, 500), 3.0), (_band(700, 650, 800), 2.0),
                                              (_band(1000, 960, 1029), 1.0)])
def test_surveillance_multiplies_recording(reference_path, band, multiplier):
    """Everyone is held in grade D (s = 3), C (s = 2) or A (s = 1): records / acts ~ Binomial(acts, min(1, q s))."""
    sc = load_scenario(reference_path, {"population.size": 3000, **band})
    eng = Engine(sc)
    eng.run()
    grade_name = sc.grade_names[int(eng.standing.grade[0])]
    assert (eng.standing.grade == eng.standing.grade[0]).all()
    acts = eng.daily["acts"].sum(axis=0)
    records = eng.daily["true_records"].sum(axis=0)
    for c, rt in enumerate(sc.record_types):
        q = next(a.coverage for a in sc.agencies if a.name == rt.agency)
        p = min(1.0, q * multiplier)
        assert acts[c] > 0, rt.name
        assert abs(records[c] - acts[c] * p) <= 4 * np.sqrt(acts[c] * p * (1 - p)), (grade_name, rt.name)
        if p == 1.0:
            assert records[c] == acts[c]


def test_rate_effect_raises_and_lowers_act_rates(reference_path, neutral):
    days = 364
    for multiplier in (2.5, 0.4):
        sc = load_scenario(reference_path, {
            "population.size": 2000, "days": days, **_band(300, 0, 500), **neutral,
            "effects": [{"name": "trap", "kind": "rate", "when": {"grades": ["D"]},
                         "record_types": ["loan_arrears", "volunteering"], "multiplier": multiplier}],
        })
        eng = Engine(sc)
        eng.run()
        acts = eng.daily["acts"].sum(axis=0)
        for c, name in enumerate(sc.type_names):
            lam = eng.population.base_rate[c].sum() * days * (multiplier if name in ("loan_arrears", "volunteering") else 1)
            assert abs(acts[c] - lam) <= 4 * np.sqrt(lam), (multiplier, name, acts[c], lam)


def test_deterrence_thins_criticism_in_grade_d(reference_path):
    """No ties (so no fear), everyone in D from day 0: criticism at 0.2 of its base rate."""
    days = 364
    sc = load_scenario(reference_path, {"population.size": 3000, "days": days, "effects": [],
                                        "network.k_in": 0.0, "network.k_out": 0.0, **_band(300, 0, 500)})
    eng = Engine(sc)
    eng.run()
    acts = eng.daily["acts"].sum(axis=0)
    for c, rt in enumerate(sc.record_types):
        lam = eng.population.base_rate[c].sum() * days * rt.deterrence.get("D", 1.0)
        assert abs(acts[c] - lam) <= 4 * np.sqrt(lam), rt.name


def test_fear_of_blacklisted_neighbours(make_tiny):
    """Complete bipartite ties between 'calm' and 'listed' citizens; the listed get a serious
    record on their first day, so from the first scoring step every calm citizen has a
    blacklisted neighbour and criticises at fear x the base rate."""
    days, k = 70, 7
    sc = make_tiny({
        "days": days,
        "population.size": 100,
        "population.groups": [{"name": "calm", "share": 0.5, "rate_multipliers": {"bad": 0.0}},
                              {"name": "listed", "share": 0.5, "rate_multipliers": {"good": 0.0}}],
        "network": {"model": "sbm", "k_in": 0.0, "k_out": 100.0},
        "record_types[0].serious": True, "record_types[0].rate": 1.0, "record_types[0].points": 0.0,
        "record_types[0].validity_days": 365,
        "record_types[1].rate": 0.2, "record_types[1].points": 0.0, "record_types[1].fear": 0.3,
    })
    eng = Engine(sc)
    eng.run()
    calm = eng.population.group == 0
    assert eng.standing.listing.black[~calm].all() and not eng.standing.listing.black[calm].any()
    assert eng.standing.feared[calm].all()
    acts = eng.daily["acts"][:, 1]
    lam_day = eng.population.base_rate[1].sum()
    before, after = acts[:k].sum(), acts[k:].sum()
    assert abs(before - lam_day * k) <= 4 * np.sqrt(lam_day * k)
    lam = lam_day * (days - k) * 0.3
    assert abs(after - lam) <= 4 * np.sqrt(lam), (after, lam)


# ---------------------------------------------------------------------------
# Family spill-over inside the engine
# ---------------------------------------------------------------------------


def test_family_target_spills_over_only_along_active_family_ties(reference_path):
    sc = load_scenario(reference_path, {
        "population.size": 1500, "days": 84,
        "network.kinds": [{"name": "family", "share": 0.3, "weight": 2.0, "cut_probability": 0.2},
                          {"name": "friend", "share": 0.7}],
        "effects": [{"name": "private_school_ban", "kind": "ban", "target": "family", "when": {"lists": ["black"]}}],
    })
    eng = Engine(sc)
    eng.run()
    ties = eng.ties
    black = eng.standing.listing.black
    assert black.sum() > 20
    family = (ties.kind == 0) & ties.active
    expected = np.zeros(sc.population.size, bool)
    expected[ties.src[family & black[ties.dst]]] = True
    expected[ties.dst[family & black[ties.src]]] = True
    applies = eng.standing.effects.applies[0]
    np.testing.assert_array_equal(applies, expected)
    # someone whose only blacklisted neighbours are friends is not touched
    friend = (ties.kind == 1) & ties.active
    via_friend = np.zeros_like(expected)
    via_friend[ties.src[friend & black[ties.dst]]] = True
    via_friend[ties.dst[friend & black[ties.src]]] = True
    assert (via_friend & ~expected).any()
    assert not applies[via_friend & ~expected].any()


# ---------------------------------------------------------------------------
# Days under bans and privileges
# ---------------------------------------------------------------------------


def test_privilege_from_day_zero_counts_every_day(reference_path):
    negative = {f"record_types.{t}.rate": 0.0 for t in
                ("traffic_violation", "loan_arrears", "court_debt_judgment", "online_criticism", "petition")}
    no_false = {f"agencies.{a}.false_rate": 0.0 for a in ("traffic_police", "bank", "court")}
    sc = load_scenario(reference_path, {
        "population.size": 500, **negative, **no_false,
        "effects": [{"name": "perk", "kind": "privilege", "when": {"grades": ["AAA", "AA", "A"]}}],
    })
    result = __import__("socialcredit").run(sc)
    eng = result.engine
    assert eng.ledger.arrays()["citizen"].size > 0  # some (positive) records were made
    np.testing.assert_array_equal(eng.effect_days_of(0), sc.days)


@pytest.mark.parametrize("days", [63, 60])
def test_ban_days_equal_days_under_the_condition(reference_path, days):
    """Count, day by day, the days each citizen's last-scored grade met the condition."""
    sc = load_scenario(reference_path, {
        "population.size": 800, "days": days,
        "effects": [{"name": "ban", "kind": "ban", "when": {"grades": ["B", "C", "D"]}}],
        "record_types.online_criticism.points": -60,
    })
    eng = Engine(sc)
    expected = np.zeros(sc.population.size, np.int64)
    while eng.day < days:
        # the standing in force today is the last scoring step's
        expected += eng.standing.grade >= 3
        eng.step()
    assert expected.max() > 0
    np.testing.assert_array_equal(eng.effect_days_of(0), expected)


def test_deterrence_and_fear_above_one_raise_rates(make_tiny):
    """Multipliers above 1 (a grade that emboldens, a fear that spurs) add acts, not only thin them."""
    days, k = 70, 7
    sc = make_tiny({
        "days": days, "population.size": 100,
        "scoring.start": 900,  # grade B from day 0, on no list until the first step
        "population.groups": [{"name": "calm", "share": 0.5, "rate_multipliers": {"bad": 0.0}},
                              {"name": "listed", "share": 0.5, "rate_multipliers": {"good": 0.0}}],
        "network": {"model": "sbm", "k_in": 0.0, "k_out": 100.0},
        "record_types[0].serious": True, "record_types[0].rate": 1.0, "record_types[0].points": 0.0,
        "record_types[0].validity_days": 365,
        "record_types[1].rate": 0.2, "record_types[1].points": 0.0,
        "record_types[1].deterrence": {"B": 1.5}, "record_types[1].fear": 2.0,
    })
    eng = Engine(sc)
    eng.run()
    calm = eng.population.group == 0
    assert (eng.standing.grade == 1).all() and eng.standing.feared[calm].all()
    acts = eng.daily["acts"][:, 1]
    lam_day = eng.population.base_rate[1].sum()
    before, after = acts[:k].sum(), acts[k:].sum()
    assert abs(before - 1.5 * lam_day * k) <= 4 * np.sqrt(1.5 * lam_day * k)
    lam = 1.5 * 2.0 * lam_day * (days - k)
    assert abs(after - lam) <= 4 * np.sqrt(lam), (after, lam)


def _in_effect_counts(eng, type_index, day):
    led = eng.ledger.arrays()
    sc = eng.scenario
    validity = sc.record_types[type_index].validity_days
    over = led["overturned_day"]
    end = np.where(over >= 0, np.minimum(led["effective_day"] + validity, over), led["effective_day"] + validity)
    live = (led["type"] == type_index) & (led["effective_day"] <= day) & (day < end)
    return np.bincount(led["citizen"][live], minlength=sc.population.size)


def test_named_list_and_side_scheme_conditions(make_tiny):
    sc = make_tiny({
        "days": 60, "population.size": 200, "scoring.every_days": 5,
        "record_types[0].rate": 0.01, "record_types[1].rate": 0.02,
        "lists.named": [{"name": "debtors", "record_types": ["bad"]}],
        "schemes": [{"name": "side", "start": 500, "min": 0, "max": 560, "points": {"good": 40},
                     "coupling": {"mode": "none"}}],
        "effects": [{"name": "rail_ban", "kind": "ban", "when": {"lists": ["debtors"]}},
                    {"name": "visible", "kind": "privilege", "when": {"scheme": "side", "min_score": 540}}],
    })
    eng = Engine(sc)
    eng.run()
    last_day = sc.days - 1
    bad = _in_effect_counts(eng, 0, last_day)
    good = _in_effect_counts(eng, 1, last_day)
    assert bad.any() and (good > 1).any()
    listed = eng.standing.listing.named[0]
    np.testing.assert_array_equal(listed, bad > 0)
    assert eng.metrics[-1]["list_debtors"] == int((bad > 0).sum())
    np.testing.assert_array_equal(eng.standing.side_scores[0], np.clip(500 + 40 * good, 0, 560))
    applies = eng.standing.effects.applies
    np.testing.assert_array_equal(applies[0], bad > 0)
    np.testing.assert_array_equal(applies[1], good > 0)
    assert eng.metrics[-1]["effect_visible"] == int((good > 0).sum())


@pytest.mark.parametrize("grades", [1, 2, 5, 6])
def test_a_grade_condition_is_the_gather_of_its_wanted_grades(grades):
    from socialcredit.effects import _grade_in
    grade = np.random.default_rng(grades).integers(0, grades, 2000).astype(np.int8)
    for bits in range(2 ** grades):
        wanted = np.array([(bits >> k) & 1 == 1 for k in range(grades)])
        np.testing.assert_array_equal(_grade_in(grade, wanted), wanted[grade])
