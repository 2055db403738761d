"""Acts, records, the ledger and the point book, against Poisson and binomial laws."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from socialcredit.records import ActSampler, Catalogue, Ledger, PointBook, draw_boost, draw_candidates, false_records
from socialcredit.rng import name_key
from socialcredit.scenario import load_scenario


@pytest.fixture
def reference(reference_path):
    return load_scenario(reference_path, ["population.size=2000"])


def test_catalogue_of_reference(reference):
    cat = Catalogue.of(reference)
    names = reference.type_names
    c = names.index("loan_arrears")
    assert reference.agencies[cat.agency_of[c]].name == "bank"
    assert cat.coverage[c] == 0.9 and cat.delay[c] == 30 and cat.validity[c] == 1825
    assert cat.points_milli[0, c] == -10_000
    assert cat.serious.tolist() == [t.name == "court_debt_judgment" for t in reference.record_types]
    crit = names.index("online_criticism")
    assert cat.deterrence[crit].tolist() == [1, 1, 1, 0.7, 0.4, 0.2]
    assert cat.fear[crit] == 0.5 and cat.fear[c] == 1.0
    assert cat.type_keys == [name_key(n) for n in names]
    assert cat.points_milli.shape == (1, len(names))


def test_act_sampler_day_counts_are_poisson():
    rate = np.random.default_rng(0).gamma(0.5, 2 * 0.001, size=3000)
    sampler = ActSampler(rate)
    counts = np.array([sampler.draw(np.random.default_rng(s)).size for s in range(3000)])
    lam = rate.sum()
    assert abs(counts.mean() - lam) <= 4 * np.sqrt(lam / counts.size)
    # dispersion test: sum (x - lam)^2 / lam ~ chi2(n) under Poisson
    d = ((counts - lam) ** 2).sum() / lam
    assert stats.chi2(counts.size).sf(d) > 1e-4 and stats.chi2(counts.size).cdf(d) > 1e-4


def test_act_sampler_picks_citizens_in_proportion_to_rates():
    rng = np.random.default_rng(1)
    rate = rng.gamma(1.0, 1.0, size=200)
    rate[::17] = 0.0  # citizens with rate 0 never act
    sampler = ActSampler(rate)
    ids = np.concatenate([sampler.draw(np.random.default_rng(s)) for s in range(400)])
    per_citizen = np.bincount(ids, minlength=200)
    assert per_citizen[::17].sum() == 0
    expected = rate / rate.sum() * ids.size
    keep = expected > 0
    _, p = stats.chisquare(per_citizen[keep], expected[keep])
    assert p > 1e-4


def test_act_sampler_with_no_rate():
    sampler = ActSampler(np.zeros(10))
    assert sampler.draw(np.random.default_rng(0)).size == 0


def test_candidate_blocks_give_independent_poisson_days_per_type():
    rng = np.random.default_rng(3)
    rates = [rng.gamma(0.5, 2 * 0.002, size=2000), np.full(2000, 0.004)]
    samplers = [ActSampler(r) for r in rates]
    days, blocks = 7, 600
    counts = np.zeros((blocks, days, 2), dtype=np.int64)
    for b in range(blocks):
        cand = draw_candidates(samplers, [11, 22], 5, b * days, days)
        for d in range(days):
            today = cand.on(b * days + d)
            counts[b, d] = np.bincount(cand.rtype[today], minlength=2)
            # sorted by type, then citizen, within the day
            key = cand.rtype[today].astype(np.int64) * 10_000 + cand.citizen[today]
            assert (np.diff(key) >= 0).all()
    for c, rate in enumerate(rates):
        lam = rate.sum()
        x = counts[:, :, c].ravel()
        assert abs(x.mean() - lam) <= 4 * np.sqrt(lam / x.size)
        d = ((x - lam) ** 2).sum() / lam  # dispersion: chi2(n) under Poisson
        assert stats.chi2(x.size).sf(d) > 1e-4 and stats.chi2(x.size).cdf(d) > 1e-4
        # no day of the block is favoured, and neighbouring days are uncorrelated
        _, p = stats.chisquare(counts[:, :, c].sum(axis=0))
        assert p > 1e-4
        r = np.corrcoef(counts[:, 0, c], counts[:, 1, c])[0, 1]
        assert abs(r) < 4 / np.sqrt(blocks)


def test_candidates_keep_and_record_uniforms_are_uniform_and_rule_free():
    samplers = [ActSampler(np.full(500, 0.01))]
    a = draw_candidates(samplers, [7], 9, 14, 7)
    b = draw_candidates(samplers, [7], 9, 14, 7)
    assert np.array_equal(a.citizen, b.citizen) and np.array_equal(a.keep_u, b.keep_u)
    u = np.concatenate([draw_candidates(samplers, [7], 9, d, 7).keep_u for d in range(0, 700, 7)])
    _, p = stats.kstest(u, "uniform")
    assert p > 1e-4
    # thinning at a multiplier of 0.3 keeps a binomial share of the candidates
    kept = int((u < 0.3).sum())
    assert abs(kept - 0.3 * u.size) <= 4 * np.sqrt(u.size * 0.3 * 0.7)


def test_candidates_of_a_short_block_and_of_no_rate():
    cand = draw_candidates([ActSampler(np.zeros(10)), ActSampler(np.full(10, 0.5))], [1, 2], 3, 357, 3)
    assert cand.bounds.size == 4 and cand.bounds[-1] == cand.citizen.size
    assert (cand.rtype == 1).all()
    assert cand.on(359).stop == cand.citizen.size


def test_draw_boost_adds_a_second_poisson_stream():
    rate = np.full(500, 0.01)
    multiplier = 2.5
    boost = ActSampler(rate * (multiplier - 1))
    counts = [draw_boost(boost, 9, day, 1)[0].size for day in range(400)]
    lam = 400 * rate.sum() * (multiplier - 1)
    assert abs(sum(counts) - lam) <= 4 * np.sqrt(lam)


def test_ledger_arrays():
    ledger = Ledger()
    empty = ledger.arrays()
    assert all(v.size == 0 for v in empty.values())
    assert empty["is_false"].dtype == bool
    ledger.add(np.array([1, 2]), np.array([0, 1]), 5, np.array([6, 35]), False)
    ledger.add(np.array([3]), np.array([1]), 7, np.array([37]), True, np.array([67]))
    ledger.add(np.array([], int), np.array([], int), 8, np.array([], int), True)
    a = ledger.arrays()
    assert a["citizen"].tolist() == [1, 2, 3]
    assert a["act_day"].tolist() == [5, 5, 7]
    assert a["effective_day"].tolist() == [6, 35, 37]
    assert a["is_false"].tolist() == [False, False, True]
    assert a["overturned_day"].tolist() == [-1, -1, 67]


def _book(reference, days=400):
    cat = Catalogue.of(reference)
    tracked = [np.array([t == "court_debt_judgment" for t in reference.type_names])]
    return cat, PointBook(4, days, cat, tracked)


def test_point_book_effect_window_and_expiry(reference):
    cat, book = _book(reference)
    c = reference.type_names.index("traffic_violation")  # -5, valid 365 days
    book.schedule(np.array([1]), np.array([c]), np.array([10]), np.array([10 + 365]), is_false=False)
    for day, expected in [(9, 0), (10, -5000), (200, -5000), (374, -5000), (375, 0), (399, 0)]:
        book.advance(day)
        assert book.state_true.tolist() == [0, expected, 0, 0], day
    assert book.state_false.tolist() == [0, 0, 0, 0]


def test_point_book_false_record_overturned(reference):
    cat, book = _book(reference)
    c = reference.type_names.index("court_debt_judgment")  # -30, serious, tracked
    effective, overturn = 60, 60 + 30
    book.schedule(np.array([2, 2]), np.array([c, c]), np.array([effective, effective]),
                  np.array([overturn, effective + 730]), is_false=True)
    book.advance(effective - 1)
    assert book.state_false[2] == 0 and book.serious_false[2] == 0
    book.advance(effective)
    assert book.state_false[2] == -60_000 and book.serious_false[2] == 2 and book.tracked[0, 2] == 2
    book.advance(overturn - 1)
    assert book.state_false[2] == -60_000
    book.advance(overturn)
    assert book.state_false[2] == -30_000 and book.serious_false[2] == 1 and book.tracked[0, 2] == 1
    assert book.state_true.sum() == 0 and book.serious_true.sum() == 0


def test_point_book_ignores_events_after_the_run(reference):
    cat, book = _book(reference, days=50)
    book.schedule(np.array([0]), np.array([0]), np.array([60]), np.array([425]), is_false=False)
    book.schedule(np.array([0]), np.array([0]), np.array([40]), np.array([405]), is_false=False)
    book.advance(49)
    assert book.state_true[0] == -5000


def test_false_records_per_agency_and_group_are_poisson(reference):
    cat = Catalogue.of(reference)
    from socialcredit.population import build_population

    pop = build_population(reference, 1)
    starts = pop.starts
    days = 365
    draws = [false_records(reference, cat, starts, 1, d) for d in range(days)]
    assert all((d[3] == day).all() for day, d in enumerate(draws))
    citizens = np.concatenate([d[0] for d in draws])
    types = np.concatenate([d[1] for d in draws])
    appealed = np.concatenate([d[2] for d in draws])
    groups = pop.group[citizens]
    for agency in reference.agencies:
        if agency.false_rate == 0:
            continue
        a_types = [i for i, t in enumerate(reference.record_types) if t.agency == agency.name and t.points < 0]
        for g, group in enumerate(reference.population.groups):
            lam = pop.group_sizes[g] * agency.false_rate * agency.false_rate_multipliers.get(group.name, 1.0) / 365 * days
            count = int((np.isin(types, a_types) & (groups == g)).sum())
            assert abs(count - lam) <= 4 * np.sqrt(lam) + 1, (agency.name, group.name, count, lam)
    # only agencies with e_a > 0, only types with negative points
    assert all(reference.record_types[t].points < 0 for t in np.unique(types))
    n = appealed.size
    assert abs(appealed.sum() - 0.3 * n) <= 4 * np.sqrt(n * 0.3 * 0.7)
    # uniform within the group: chi-square over quarters of the rural id range
    rural = (citizens[groups == 1] - starts[1]) * 4 // pop.group_sizes[1]
    _, p = stats.chisquare(np.bincount(rural, minlength=4))
    assert p > 1e-4


def test_false_records_of_a_block_fall_on_its_days_as_daily_poisson_counts(reference):
    from socialcredit.population import build_population

    cat = Catalogue.of(reference)
    pop = build_population(reference, 1)
    lam = sum(pop.group_sizes[g] * a.false_rate * a.false_rate_multipliers.get(grp.name, 1.0) / 365
              for a in reference.agencies for g, grp in enumerate(reference.population.groups))
    per_day = []
    for b in range(300):
        citizens, types, appealed, day = false_records(reference, cat, pop.starts, 1, 7 * b, 7)
        assert citizens.size == types.size == appealed.size == day.size
        assert (np.diff(day) >= 0).all() and ((day >= 7 * b) & (day < 7 * b + 7)).all()
        per_day.append(np.bincount(day - 7 * b, minlength=7))
    x = np.array(per_day)
    assert abs(x.mean() - lam) <= 4 * np.sqrt(lam / x.size)
    d = ((x.ravel() - lam) ** 2).sum() / lam
    assert stats.chi2(x.size).sf(d) > 1e-4 and stats.chi2(x.size).cdf(d) > 1e-4
    _, p = stats.chisquare(x.sum(axis=0))
    assert p > 1e-4


def test_a_sampler_over_the_positive_rates_draws_what_the_full_vector_draws():
    rates = np.random.default_rng(21).random(10_000) * 0.01
    rates[np.random.default_rng(22).random(10_000) < 0.8] = 0.0
    rates[0] = 0.0
    ids = np.flatnonzero(rates > 0)
    full, sparse = ActSampler(rates), ActSampler(rates[ids], ids=ids)
    assert full.total == sparse.total
    for day in range(5):
        a = full.draw(np.random.default_rng(day), days=7)
        b = sparse.draw(np.random.default_rng(day), days=7)
        np.testing.assert_array_equal(a, b)
        assert a.size > 0 and (rates[a] > 0).all()

