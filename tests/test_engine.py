"""The engine: acts, records, false records, appeals and tie cuts against their laws;
the day's schedule; common random numbers."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from scipy import stats

from socialcredit.engine import Engine
from socialcredit.lists import CAUSE_NONE
from socialcredit.scenario import load_scenario, scenario_from_dict


def _coverage(sc, rt):
    return next(a.coverage for a in sc.agencies if a.name == rt.agency)


# ---------------------------------------------------------------------------
# Acts: Poisson
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_rate_engine(reference_path):
    """reference.toml, 3,000 citizens, no system: every act at its base rate."""
    eng = Engine(load_scenario(reference_path, {"population.size": 3000, "system": False}))
    eng.run()
    return eng


def test_acts_per_type_match_poisson_expectation(base_rate_engine):
    eng = base_rate_engine
    days = eng.scenario.days
    acts = eng.daily["acts"].sum(axis=0)
    for c, name in enumerate(eng.scenario.type_names):
        mu = eng.population.base_rate[c].sum() * days
        assert mu > 50, name
        assert abs(acts[c] - mu) <= 4 * np.sqrt(mu), (name, acts[c], mu)
        assert eng.metrics[-1][f"acts_{name}_cum"] == acts[c]


def test_acts_per_type_with_system_on_but_no_rules(reference_path, neutral):
    sc = load_scenario(reference_path, {"population.size": 3000, **neutral})
    eng = Engine(sc)
    eng.run()
    acts = eng.daily["acts"].sum(axis=0)
    for c, name in enumerate(sc.type_names):
        mu = eng.population.base_rate[c].sum() * sc.days
        assert abs(acts[c] - mu) <= 4 * np.sqrt(mu), name


def test_daily_counts_are_poisson_across_seeds(reference_path):
    """traffic_violation has h = inf and no group multiplier: its daily count is Poisson(r N)
    whatever the seed. 20 seeds x 182 days, chi-square goodness of fit and dispersion."""
    n = 1000
    sc = load_scenario(reference_path, {"population.size": n, "system": False, "coupling.mode": "none", "days": 182,
                                        **{f"agencies[{a}].false_rate": 0.0 for a in range(3)}})
    c = sc.type_names.index("traffic_violation")
    lam = 0.002 * n
    counts, first_days = [], []
    for seed in range(20):
        eng = Engine(sc, seed=seed)
        assert np.isclose(eng.population.base_rate[c].sum(), lam)
        eng.run()
        counts.append(eng.daily["acts"][:, c])
        first_days.append(eng.daily["acts"][0, c])
    counts = np.concatenate(counts)
    # goodness of fit on bins 0, 1, ..., 5, >= 6
    observed = np.array([(counts == k).sum() for k in range(6)] + [(counts >= 6).sum()])
    law = stats.poisson(lam)
    expected = np.array([law.pmf(k) for k in range(6)] + [law.sf(5)]) * counts.size
    _, p = stats.chisquare(observed, expected)
    assert p > 1e-4, (observed, expected)
    # dispersion index: sum (x - lam)^2 / lam ~ chi2(n)
    d = ((counts - lam) ** 2).sum() / lam
    assert 1e-4 < stats.chi2(counts.size).cdf(d) < 1 - 1e-4
    # one day across seeds: mean within 4 SD of lam
    first_days = np.array(first_days)
    assert abs(first_days.mean() - lam) <= 4 * np.sqrt(lam / first_days.size)
    assert len(set(first_days.tolist())) > 1  # seeds differ


# ---------------------------------------------------------------------------
# Records: Binomial(acts, coverage), false records Poisson, appeals
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def neutral_engine(reference_path):
    from copy import deepcopy

    overrides = {"population.size": 3000, "effects": [],
                 "record_types.online_criticism.deterrence": {}, "record_types.online_criticism.fear": 1.0,
                 "record_types.petition.deterrence": {}, "record_types.petition.fear": 1.0}
    eng = Engine(load_scenario(reference_path, deepcopy(overrides)))
    eng.run()
    return eng


def test_true_records_are_binomial_in_acts(neutral_engine):
    eng = neutral_engine
    sc = eng.scenario
    acts = eng.daily["acts"].sum(axis=0)
    recs = eng.daily["true_records"].sum(axis=0)
    ledger = eng.ledger.arrays()
    for c, rt in enumerate(sc.record_types):
        q = _coverage(sc, rt)
        assert abs(recs[c] - acts[c] * q) <= 4 * np.sqrt(acts[c] * q * (1 - q)), rt.name
        if q == 1.0:
            assert recs[c] == acts[c]
        # the ledger holds exactly the counted true records
        assert ((ledger["type"] == c) & ~ledger["is_false"]).sum() == recs[c]


def test_false_records_are_poisson_per_agency(neutral_engine):
    eng = neutral_engine
    sc = eng.scenario
    sizes = eng.population.group_sizes
    false = eng.daily["false_records"].sum(axis=0)
    for c, rt in enumerate(sc.record_types):
        agency = next(a for a in sc.agencies if a.name == rt.agency)
        siblings = [t for t in sc.record_types if t.agency == agency.name and t.points < 0]
        if agency.false_rate == 0 or rt.points >= 0:
            assert false[c] == 0, rt.name
            continue
        lam = sum(sizes[g] * agency.false_rate * agency.false_rate_multipliers.get(grp.name, 1.0)
                  for g, grp in enumerate(sc.population.groups)) / 365 * sc.days / len(siblings)
        assert abs(false[c] - lam) <= 4 * np.sqrt(lam), (rt.name, false[c], lam)


def test_appeals_and_overturn_days_in_the_ledger(neutral_engine):
    eng = neutral_engine
    sc = eng.scenario
    led = eng.ledger.arrays()
    false = led["is_false"]
    overturned = led["overturned_day"] >= 0
    assert not overturned[~false].any(), "true records are never overturned"
    n = int(false.sum())
    assert n > 50
    p = sc.appeals.probability
    assert abs(overturned.sum() - n * p) <= 4 * np.sqrt(n * p * (1 - p))
    np.testing.assert_array_equal(led["overturned_day"][overturned],
                                  led["effective_day"][overturned] + sc.appeals.days)
    # delays: effective = act day + the agency's delay
    delay = np.array([next(a.delay_days for a in sc.agencies if a.name == t.agency) for t in sc.record_types])
    np.testing.assert_array_equal(led["effective_day"], led["act_day"] + delay[led["type"]])
    # overturned counter: on the overturn day, within the run
    in_run = overturned & (led["overturned_day"] < sc.days)
    per_type = np.bincount(led["type"][in_run], minlength=len(sc.record_types))
    np.testing.assert_array_equal(eng.daily["overturned"].sum(axis=0), per_type)
    for c, name in enumerate(sc.type_names):
        assert eng.metrics[-1][f"overturned_{name}_cum"] == per_type[c]


# ---------------------------------------------------------------------------
# Points in effect: overturn and expiry, on a tiny city with every step scored
# ---------------------------------------------------------------------------


def _points_trajectory(sc):
    eng = Engine(sc)
    points = []
    while eng.day < sc.days:
        eng.step()
        points.append(eng.standing.points.copy())
    return eng, np.array(points)  # (days, N): P as of each day's scoring step


@pytest.mark.parametrize("case", ["false_appealed", "false_not_appealed", "true"])
def test_record_overturned_or_expired_restores_points(make_tiny, case):
    """Citizens with a single record: P drops to P0 - 10 on the effective day and is back at
    P0 exactly on effective + appeals.days (appealed false record) or effective + validity."""
    overrides = {
        "days": 160, "population.size": 60, "scoring.every_days": 1,
        "agencies[0].delay_days": 3, "record_types[0].validity_days": 40,
        "appeals": {"probability": 1.0 if case == "false_appealed" else 0.0, "days": 12},
    }
    if case == "true":
        overrides["record_types[0].rate"] = 0.0015
    else:
        overrides["agencies[0].false_rate"] = 0.25
    sc = make_tiny(overrides)
    eng, traj = _points_trajectory(sc)
    led = eng.ledger.arrays()
    assert (led["is_false"] == (case != "true")).all() and led["citizen"].size >= 5
    counts = np.bincount(led["citizen"], minlength=60)
    checked = 0
    for r in range(led["citizen"].size):
        i = led["citizen"][r]
        if counts[i] != 1:
            continue
        eff = led["effective_day"][r]
        assert eff == led["act_day"][r] + 3
        end = eff + (12 if case == "false_appealed" else 40)
        if end >= sc.days:
            continue
        assert led["overturned_day"][r] == (eff + 12 if case == "false_appealed" else -1)
        assert traj[eff - 1, i] == 1000.0, "nothing before the record takes effect"
        assert traj[eff, i] == 990.0, "the record counts from its effective day"
        assert traj[end - 1, i] == 990.0
        assert traj[end, i] == 1000.0, "P returns exactly at the overturn / expiry day"
        assert (traj[end:, i] == 1000.0).all()
        checked += 1
    assert checked >= 2


def test_points_equal_the_ledger_replayed_every_day(make_tiny):
    """P at every step equals P0 + the points of the ledger's records in effect that day."""
    sc = make_tiny({
        "days": 120, "population.size": 40, "scoring.every_days": 1,
        "record_types[0].rate": 0.03, "record_types[1].rate": 0.03,
        "record_types[1].validity_days": 9, "agencies[0].delay_days": 2,
        "agencies[0].false_rate": 0.5, "appeals": {"probability": 0.5, "days": 5},
        "scoring.min": 950, "scoring.max": 1030,
    })
    eng, traj = _points_trajectory(sc)
    led = eng.ledger.arrays()
    pts = np.array([t.points for t in sc.record_types])[led["type"]]
    validity = np.array([t.validity_days for t in sc.record_types])[led["type"]]
    end = led["effective_day"] + validity
    over = led["overturned_day"]
    end = np.where(over >= 0, np.minimum(end, over), end)
    assert (over >= 0).any() and (traj < 1000).any() and (traj > 1000).any()
    for day in range(sc.days):
        live = (led["effective_day"] <= day) & (day < end)
        raw = np.zeros(40)
        np.add.at(raw, led["citizen"][live], pts[live])
        np.testing.assert_array_equal(traj[day], np.clip(1000 + raw, 950, 1030), err_msg=f"day {day}")


# ---------------------------------------------------------------------------
# Tie cutting
# ---------------------------------------------------------------------------


def test_tie_cuts_are_binomial_per_kind(reference_path):
    sc = load_scenario(reference_path, {
        "population.size": 2000,
        "network.cut_probability": 0.3,
        "network.kinds": [{"name": "family", "share": 0.3, "cut_probability": 0.0},
                          {"name": "friend", "share": 0.7}],
        "record_types.online_criticism.points": -80,
    })
    eng = Engine(sc)
    ties = eng.ties
    candidates = cut = 0
    while eng.day < sc.days:
        was_active = ties.active.copy()
        steps = len(eng.metrics)
        eng.step()
        if len(eng.metrics) == steps:
            assert (ties.active == was_active).all(), "ties are cut only at scoring steps"
            continue
        t = eng.day - 1
        black = eng.standing.listing.black
        one_end = black[ties.src] != black[ties.dst]
        now_cut = was_active & ~ties.active
        assert (ties.cut_day[now_cut] == t).all()
        assert one_end[now_cut].all(), "only ties with exactly one blacklisted end are cut"
        assert (ties.kind[now_cut] == 1).all(), "family ties have cut probability 0"
        eligible = was_active & one_end & (ties.kind == 1)
        candidates += int(eligible.sum())
        cut += int(now_cut.sum())
        assert eng.metrics[-1]["ties_cut"] == int(now_cut.sum())
        assert eng.metrics[-1]["ties_active"] == int(ties.active.sum())
    assert candidates > 100
    assert abs(cut - 0.3 * candidates) <= 4 * np.sqrt(candidates * 0.3 * 0.7)
    assert eng.metrics[-1]["ties_cut_cum"] == int((~ties.active).sum())


# ---------------------------------------------------------------------------
# Metrics, clock and reproducibility
# ---------------------------------------------------------------------------


def test_metrics_rows_are_consistent(neutral_engine):
    eng = neutral_engine
    sc = eng.scenario
    rows = eng.metrics
    k = sc.scoring.every_days
    assert [r["step"] for r in rows] == list(range(sc.days // k))
    assert [r["day"] for r in rows] == [(s + 1) * k - 1 for s in range(sc.days // k)]
    for counter in ("acts", "true_records", "false_records", "overturned"):
        for c, name in enumerate(sc.type_names):
            per_step = np.array([r[f"{counter}_{name}"] for r in rows])
            np.testing.assert_array_equal(np.cumsum(per_step), [r[f"{counter}_{name}_cum"] for r in rows])
            np.testing.assert_array_equal(per_step, eng.daily[counter][:, c].reshape(-1, k).sum(axis=1))
    ties_cut = np.array([r["ties_cut"] for r in rows])
    np.testing.assert_array_equal(np.cumsum(ties_cut), [r["ties_cut_cum"] for r in rows])
    for r in rows:
        assert r["ties_active"] + r["ties_cut_cum"] == eng.ties.n_ties
    last = rows[-1]
    st = eng.standing
    assert last["mean_score"] == float(st.score.mean())
    for g, name in enumerate(sc.group_names):
        members = eng.population.group == g
        assert last[f"mean_score_{name}"] == pytest.approx(st.score[members].mean(), rel=1e-12)
        assert last[f"median_score_{name}"] == float(np.median(st.score[members]))
        assert last[f"blacklist_rate_{name}"] == pytest.approx(st.listing.black[members].mean())


def test_clock(reference_path):
    sc = load_scenario(reference_path, {"population.size": 100, "days": 20})
    eng = Engine(sc)
    eng.run(until=10)
    assert eng.day == 10 and len(eng.metrics) == 1
    calls = []
    eng.run(progress=lambda day, days: calls.append((day, days)))
    assert eng.day == 20 and len(eng.metrics) == 2
    # progress after each stretch of days: to the scoring day 13, then to the end (one block of draws)
    assert calls == [(14, 20), (20, 20)]
    with pytest.raises(RuntimeError):
        eng.step()


@pytest.mark.parametrize("scenario,every", [("rongcheng", 7), ("seed-articles", 30), ("reference", 1),
                                            ("reference", 10)])
def test_run_does_what_step_does_day_by_day(scenario, every):
    """Stretches of days between scoring steps give the day-by-day draws, records and their order."""
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "scenarios" / f"{scenario}.toml"
    sc = load_scenario(path, {"population.size": 3000, "days": 75, "scoring.every_days": every})
    together, daily = Engine(sc), Engine(sc)
    together.run(until=33)
    together.run()
    while daily.day < sc.days:
        daily.step()
    for name, column in together.ledger.arrays().items():
        np.testing.assert_array_equal(column, daily.ledger.arrays()[name], err_msg=name)
    for name in together.daily:
        np.testing.assert_array_equal(together.daily[name], daily.daily[name], err_msg=name)
    np.testing.assert_array_equal(together.acts_by_citizen, daily.acts_by_citizen)
    np.testing.assert_array_equal(together.condition_days, daily.condition_days)
    assert together.metrics == daily.metrics and len(together.ledger) > 0
    boosted = [c for c, b in enumerate(daily.boosts) if b is not None]
    assert [c for c, b in enumerate(together.boosts) if b is not None] == boosted
    assert boosted or scenario != "rongcheng"  # Rongcheng's rate effects raise some citizens' arrears


def test_same_seed_same_run_and_seed_argument(reference_path):
    sc = load_scenario(reference_path, {"population.size": 500, "days": 84})
    a, b = Engine(sc), Engine(sc)
    c = Engine(sc, seed=99)
    d = Engine(load_scenario(reference_path, {"population.size": 500, "days": 84, "seed": 99}))
    for e in (a, b, c, d):
        e.run()
    assert a.metrics == b.metrics and c.metrics == d.metrics
    np.testing.assert_array_equal(a.daily["acts"], b.daily["acts"])
    assert a.metrics != c.metrics


def test_extra_record_type_with_rate_zero_leaves_other_acts_unchanged(reference_raw):
    """Common random numbers: streams are keyed by type name, not by position."""
    raw = copy.deepcopy(reference_raw)
    raw["population"]["size"] = 1500
    extra = copy.deepcopy(raw)
    extra["agencies"].append({"name": "new_office", "coverage": 1.0, "delay_days": 0})
    # inserted first, so every other type moves one position down
    extra["record_types"].insert(0, {"name": "new_type", "agency": "new_office", "rate": 0.0,
                                     "points": -20, "validity_days": 30, "heterogeneity": 0.5})
    a, b = Engine(scenario_from_dict(raw)), Engine(scenario_from_dict(extra))
    a.run()
    b.run()
    assert b.daily["acts"][:, 0].sum() == 0
    np.testing.assert_array_equal(a.daily["acts"], b.daily["acts"][:, 1:])
    np.testing.assert_array_equal(a.daily["true_records"], b.daily["true_records"][:, 1:])
    np.testing.assert_array_equal(a.population.base_rate, b.population.base_rate[1:])
    np.testing.assert_array_equal(a.standing.score, b.standing.score)
    np.testing.assert_array_equal(a.ties.cut_day, b.ties.cut_day)


def test_changing_one_type_leaves_candidate_acts_of_others(reference_raw):
    """Raising one type's rate does not move any other type's acts before the standings differ."""
    raw = copy.deepcopy(reference_raw)
    raw["population"]["size"] = 1500
    raw["days"] = 7
    more = copy.deepcopy(raw)
    more["record_types"][5]["rate"] = 0.01  # volunteering
    a, b = Engine(scenario_from_dict(raw)), Engine(scenario_from_dict(more))
    a.run()
    b.run()
    keep = [c for c in range(7) if c != 5]
    np.testing.assert_array_equal(a.daily["acts"][:, keep], b.daily["acts"][:, keep])
    assert b.daily["acts"][:, 5].sum() > a.daily["acts"][:, 5].sum()


# ---------------------------------------------------------------------------
# The reference model's standing before the first step and system = false
# ---------------------------------------------------------------------------


def test_initial_standing_is_p0_on_no_list(reference_path):
    sc = load_scenario(reference_path, {"population.size": 100, "scoring.start": 700})
    eng = Engine(sc)
    st = eng.standing
    assert (st.points == 700).all() and (st.score == 700).all()
    assert (np.array(sc.grade_names)[st.grade] == "C").all()
    assert not st.listing.black.any() and not st.listing.red.any()
    assert (st.listing.cause == CAUSE_NONE).all() and not st.feared.any()


def test_system_false_keeps_the_books_but_nothing_acts_on_them(reference_path):
    """docs/model.md 7.14 and no-system.toml: acts at base rates, recorded at q_a (no
    surveillance), false records as usual, grades and lists computed; no cuts, no fear, no effects."""
    sc = load_scenario(reference_path, {"population.size": 3000, "system": False,
                                        "scoring.start": 700})  # grade C: surveillance x2 would apply
    eng = Engine(sc)
    eng.run()
    acts = eng.daily["acts"].sum(axis=0)
    recs = eng.daily["true_records"].sum(axis=0)
    for c, rt in enumerate(sc.record_types):
        q = _coverage(sc, rt)
        assert abs(recs[c] - acts[c] * q) <= 4 * np.sqrt(acts[c] * q * (1 - q)), rt.name
        mu = eng.population.base_rate[c].sum() * sc.days  # no deterrence although everyone is C
        assert abs(acts[c] - mu) <= 4 * np.sqrt(mu), rt.name
    assert eng.daily["false_records"].sum() > 0 and eng.daily["overturned"].sum() > 0
    last = eng.metrics[-1]
    assert last["blacklisted"] > 0 and last["grade_C"] < 3000  # who would have been listed
    assert last["black_by_record"] + last["black_by_error"] + last["black_by_association"] == last["blacklisted"]
    assert last["ties_cut_cum"] == 0 and eng.ties.active.all()
    assert not eng.standing.feared.any()
    assert (eng.condition_days == 0).all()
    assert all(r[f"effect_{e.name}"] == 0 for r in eng.metrics for e in sc.effects)


def test_system_acts_are_a_subset_of_the_no_system_twin(reference_path, tmp_path):
    """Deterrence and fear only thin the same candidate acts (docs/model.md 7.15)."""
    import pandas as pd

    import socialcredit

    on = load_scenario(reference_path, {"population.size": 2000})
    off = load_scenario(reference_path, {"population.size": 2000, "system": False})
    a = pd.read_parquet(socialcredit.run(on, out=tmp_path / "on").path / "citizens.parquet")
    b = pd.read_parquet(socialcredit.run(off, out=tmp_path / "off").path / "citizens.parquet")
    for name in on.type_names:
        assert (a[f"acts_{name}"] <= b[f"acts_{name}"]).all(), name
    assert (a["acts_online_criticism"].sum() < b["acts_online_criticism"].sum())
    for name in ("traffic_violation", "loan_arrears", "volunteering"):  # not deterred: identical
        assert (a[f"acts_{name}"] == b[f"acts_{name}"]).all(), name


def test_false_records_and_appeals_are_nested_across_appeal_rates(reference_path):
    led = {}
    for p in (0.3, 0.6):
        eng = Engine(load_scenario(reference_path, {"population.size": 2000, "appeals.probability": p}))
        eng.run()
        a = eng.ledger.arrays()
        f = a["is_false"]
        order = np.lexsort((a["type"][f], a["citizen"][f], a["act_day"][f]))
        led[p] = {k: v[f][order] for k, v in a.items()}
    for k in ("citizen", "type", "act_day", "effective_day"):
        np.testing.assert_array_equal(led[0.3][k], led[0.6][k])
    low, high = led[0.3]["overturned_day"] >= 0, led[0.6]["overturned_day"] >= 0
    assert (high[low]).all() and high.sum() > low.sum()


# ---------------------------------------------------------------------------
# The random streams the engine draws from
# ---------------------------------------------------------------------------


def test_keyed_uniform_is_uniform_and_a_pure_function_of_its_keys():
    from socialcredit.rng import keyed_uniform, name_key, stream

    ids = np.arange(200_000)
    u = keyed_uniform(7, "tie_cut", 3, ids)
    assert ((u >= 0) & (u < 1)).all()
    assert stats.kstest(u, "uniform").pvalue > 1e-4
    # each id keeps its own number whatever set of ids is asked for
    np.testing.assert_array_equal(keyed_uniform(7, "tie_cut", 3, ids[::7]), u[::7])
    other = keyed_uniform(7, "tie_cut", 4, ids)
    assert abs(np.corrcoef(u, other)[0, 1]) < 0.02
    a = stream(7, "acts", 3, name_key("petition")).random(5)
    np.testing.assert_array_equal(a, stream(7, "acts", 3, name_key("petition")).random(5))
    assert not np.array_equal(a, stream(7, "acts", 4, name_key("petition")).random(5))
    assert not np.array_equal(a, stream(8, "acts", 3, name_key("petition")).random(5))


# ---------------------------------------------------------------------------
# The books written off the engine's thread (large cities)
# ---------------------------------------------------------------------------


def test_books_written_off_the_thread_hold_the_same_run(reference_path, monkeypatch, tmp_path):
    """The metrics rows and the change log written on a second thread give the same run folder, byte for byte."""
    import json

    import socialcredit as sc
    from socialcredit import engine

    s = sc.load_scenario(reference_path, ["population.size=3000", "days=84"])
    digests = {}
    for off_thread in (False, True):
        monkeypatch.setattr(engine, "BOOKS_OFF_THREAD_MIN_CITIZENS", 0 if off_thread else 10**12)
        result = sc.run(s, out=tmp_path / str(off_thread))
        assert (result.engine._books is not None) == off_thread
        assert len(result.metrics) == 12
        digests[off_thread] = json.loads((tmp_path / str(off_thread) / "manifest.json").read_text())["sha256"]
    assert digests[True] == digests[False]


def test_a_failure_in_the_books_surfaces_on_the_engine_thread(reference_path, monkeypatch):
    from socialcredit import engine

    monkeypatch.setattr(engine, "BOOKS_OFF_THREAD_MIN_CITIZENS", 0)
    eng = Engine(load_scenario(reference_path, ["population.size=500"]))

    def broken(*args):
        raise ValueError("metrics row failed")

    monkeypatch.setattr(engine, "step_row", broken)
    with pytest.raises(ValueError, match="metrics row failed"):
        eng.run(until=28)
    # a step in progress when the run was stopped is finished before its books are read
    monkeypatch.undo()
    monkeypatch.setattr(engine, "BOOKS_OFF_THREAD_MIN_CITIZENS", 0)
    eng = Engine(load_scenario(reference_path, ["population.size=500"]))
    for _ in range(14):
        eng.step()
    assert [row["step"] for row in eng.metrics] == [0, 1]
