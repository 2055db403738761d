"""The population: group sizes, contiguous ids, propensities and base rates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from socialcredit import kernels
from socialcredit.population import build_population, median
from socialcredit.scenario import load_scenario


@pytest.fixture
def reference(reference_path):
    return load_scenario(reference_path, ["population.size=20000"])


def test_group_sizes_are_multinomial_and_contiguous(reference):
    shares = np.array([g.share for g in reference.population.groups])
    n = reference.population.size
    for seed in range(5):
        pop = build_population(reference, seed)
        assert pop.size == n and pop.group_sizes.sum() == n
        for g, share in enumerate(shares):
            # each group's size is Binomial(N, share)
            assert abs(pop.group_sizes[g] - n * share) <= 4 * np.sqrt(n * share * (1 - share))
        np.testing.assert_array_equal(pop.group, np.repeat(np.arange(3), pop.group_sizes))
        np.testing.assert_array_equal(pop.starts, np.concatenate([[0], np.cumsum(pop.group_sizes)]))
        assert pop.group.dtype == np.int16


def test_group_sizes_chi_square_over_seeds(reference):
    """Summed over 40 seeds, the group counts fit the shares (chi-square)."""
    shares = np.array([g.share for g in reference.population.groups])
    total = np.zeros(3)
    for seed in range(40):
        total += build_population(reference, seed).group_sizes
    _, p = stats.chisquare(total, total.sum() * shares)
    assert p > 1e-4


def test_base_rate_is_rate_times_group_multiplier_times_gamma_propensity(reference):
    pop = build_population(reference, 7)
    types = reference.record_types
    groups = reference.population.groups
    for c, rt in enumerate(types):
        u = np.array([g.rate_multipliers.get(rt.name, 1.0) for g in groups])[pop.group]
        if rt.rate == 0:
            continue
        m = pop.base_rate[c] / (rt.rate * u)
        if np.isinf(rt.heterogeneity):
            np.testing.assert_allclose(m, 1.0, rtol=1e-15)
            continue
        h = rt.heterogeneity
        # m ~ Gamma(shape h, scale 1/h): KS test against scipy's law, mean 1, variance 1/h
        _, p = stats.kstest(m, stats.gamma(a=h, scale=1.0 / h).cdf)
        assert p > 1e-4, (rt.name, p)
        assert abs(m.mean() - 1) <= 4 * np.sqrt(1 / h / m.size)


def test_dissident_multipliers(reference):
    pop = build_population(reference, 3)
    c = reference.type_names.index("traffic_violation")  # h = inf: no propensity noise
    assert np.unique(pop.base_rate[c]).tolist() == [0.002]
    crit = reference.type_names.index("online_criticism")
    means = pop.groupby(pop.base_rate[crit], "mean")
    assert means[2] / means[0] > 5  # x20 for dissidents, up to propensity noise


def test_population_is_a_pure_function_of_the_seed(reference):
    a, b, c = build_population(reference, 1), build_population(reference, 1), build_population(reference, 2)
    np.testing.assert_array_equal(a.base_rate, b.base_rate)
    np.testing.assert_array_equal(a.group_sizes, b.group_sizes)
    assert not np.array_equal(a.base_rate, c.base_rate)


def test_select_and_groupby_against_pandas(reference):
    pop = build_population(reference, 4)
    values = np.random.default_rng(0).normal(size=pop.size)
    frame = pd.DataFrame({"group": pop.group, "v": values}).groupby("group")["v"]
    np.testing.assert_allclose(pop.groupby(values, "mean"), frame.mean().to_numpy())
    np.testing.assert_allclose(pop.groupby(values, "sum"), frame.sum().to_numpy())
    np.testing.assert_allclose(pop.groupby(values, "median"), frame.median().to_numpy())
    np.testing.assert_array_equal(pop.select(values > 1), np.flatnonzero(values > 1))
    with pytest.raises(ValueError, match="unknown aggregation"):
        pop.groupby(values, "max")


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("size", [1, 2, 3, 10, 11, 4096, 4097, 100_000, 100_001])
def test_median_is_numpys_median_bit_for_bit(size, compiled, monkeypatch):
    if compiled and not kernels.load():
        pytest.skip("numba unavailable")
    monkeypatch.setattr(kernels, "REUSE_LOADED", compiled)
    rng = np.random.default_rng(size)
    for values in (rng.normal(1000, 30, size), np.round(rng.normal(1000, 3, size)),  # ties
                   np.where(rng.random(size) < 0.6, 1000.0, rng.normal(990, 40, size)),
                   rng.normal(0, 1, size) * 1e300, np.append(rng.random(size - 1), np.inf),
                   np.append(np.zeros(size - 1), -0.0), np.arange(size, dtype=np.float64),  # sorted
                   np.arange(size, 0, -1, dtype=np.float64), np.full(size, 950.0),  # reversed, all equal
                   np.sort(np.round(rng.normal(1000, 2, size)))[np.argsort(rng.random(size) < 0.5, kind="stable")]):
        expected = float(np.median(values)) + 0.0  # a median of zero is +0.0 on either path
        assert median(values) == expected
        assert median(values).hex() == expected.hex()
        assert median(values[::-1]).hex() == expected.hex()  # any order, and a strided view


def test_empty_group_gives_nan(make_tiny):
    sc = make_tiny({"population.size": 2, "population.groups": [
        {"name": "a", "share": 0.999999}, {"name": "b", "share": 0.000001}]})
    pop = build_population(sc, 0)
    assert pop.group_sizes.tolist() == [2, 0]
    assert np.isnan(pop.groupby(np.ones(2), "mean")[1])


def test_propensities_drawn_in_threads_are_the_sequential_ones(reference, monkeypatch):
    from socialcredit import population
    monkeypatch.setattr(population, "PARALLEL_DRAW_MIN_CITIZENS", 10**9)
    one = build_population(reference, 11)
    monkeypatch.setattr(population, "PARALLEL_DRAW_MIN_CITIZENS", 0)
    threaded = build_population(reference, 11)
    assert one.base_rate.tobytes() == threaded.base_rate.tobytes()
    np.testing.assert_array_equal(one.group, threaded.group)
