"""Network generators against networkx and binomial laws; tie kinds, cuts and edge lists.

Tolerances for the comparisons with networkx: each statistic is averaged over
several seeds on both sides and must agree within 4 standard errors of the
difference of the two averages (standard errors estimated from the seeds
themselves), plus a small floor for the noise of that estimate from few seeds.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from socialcredit.engine import Engine
from socialcredit.errors import ScenarioError
from socialcredit.network import (
    _wrap,
    barabasi_albert,
    build_ties,
    read_edge_list,
    stochastic_block_model,
    watts_strogatz,
)
from socialcredit.population import build_population
from socialcredit.scenario import load_scenario


def _graph(n, src, dst) -> nx.Graph:
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(zip(src.tolist(), dst.tolist()))
    return g


def _assert_simple(src, dst, n):
    assert src.dtype == np.int32 and dst.dtype == np.int32
    assert (src < dst).all(), "every tie is stored once with src < dst (no self-ties)"
    assert src.min(initial=0) >= 0 and dst.max(initial=0) < n
    keys = src.astype(np.int64) * n + dst
    assert np.unique(keys).size == keys.size, "no duplicate ties"


def _agree(ours: np.ndarray, theirs: np.ndarray, floor: float) -> None:
    se = np.sqrt(ours.var(ddof=1) / ours.size + theirs.var(ddof=1) / theirs.size)
    assert abs(ours.mean() - theirs.mean()) <= 4 * se + floor, (ours.mean(), theirs.mean(), se)


# ---------------------------------------------------------------------------
# Watts-Strogatz
# ---------------------------------------------------------------------------

def test_watts_strogatz_without_rewiring_is_networkx_ring_lattice():
    n, k = 60, 6
    src, dst = watts_strogatz(n, k, 0.0, np.random.default_rng(0))
    _assert_simple(src, dst, n)
    ours = {(int(a), int(b)) for a, b in zip(src, dst)}
    theirs = {(min(u, v), max(u, v)) for u, v in nx.watts_strogatz_graph(n, k, 0.0).edges()}
    assert ours == theirs


def test_watts_strogatz_matches_networkx_degree_and_clustering():
    n, k, p, seeds = 1000, 10, 0.1, range(5)
    ours_c, theirs_c = [], []
    for seed in seeds:
        src, dst = watts_strogatz(n, k, p, np.random.default_rng(seed))
        _assert_simple(src, dst, n)
        # rewiring keeps the number of ties (a collision reverts the tie, it is never lost)
        assert abs(2 * src.size / n - k) <= 0.01
        g = _graph(n, src, dst)
        h = nx.watts_strogatz_graph(n, k, p, seed=seed)
        assert 2 * h.number_of_edges() / n == k
        ours_c.append(nx.average_clustering(g))
        theirs_c.append(nx.average_clustering(h))
    ours_c, theirs_c = np.array(ours_c), np.array(theirs_c)
    _agree(ours_c, theirs_c, floor=0.01)
    # and the analytic value C(p) ~ 3(k-2)/(4(k-1)) (1-p)^3 (Barrat & Weigt 2000)
    analytic = 3 * (k - 2) / (4 * (k - 1)) * (1 - p) ** 3
    assert abs(ours_c.mean() - analytic) < 0.02


def test_watts_strogatz_fully_rewired_is_random():
    n, k = 1000, 10
    src, dst = watts_strogatz(n, k, 1.0, np.random.default_rng(1))
    _assert_simple(src, dst, n)
    # a random graph of mean degree k has clustering ~ k/n
    assert nx.average_clustering(_graph(n, src, dst)) < 5 * k / n



def _watts_strogatz_by_definition(n, k, p, rng):
    """The rewiring rule written out plainly: every round re-ranks all ties by their ends."""
    u = np.repeat(np.arange(n, dtype=np.int64), k // 2)
    v = (u + np.tile(np.arange(1, k // 2 + 1, dtype=np.int64), n)) % n
    rewired = rng.random(u.size) < p
    target = v.copy()
    pending = np.flatnonzero(rewired)
    for _ in range(20):
        if pending.size == 0:
            break
        target[pending] = rng.integers(0, n, size=pending.size)
        key = np.minimum(u, target) * n + np.maximum(u, target)
        order = np.lexsort((np.arange(u.size), rewired, key))  # same ends: unrewired first, then by number
        dup = np.zeros(u.size, dtype=bool)
        dup[order[1:]] = key[order][1:] == key[order][:-1]
        pending = np.flatnonzero(((target == u) | dup) & rewired)
    target[pending] = v[pending]
    keys = np.unique(np.minimum(u, target) * n + np.maximum(u, target))
    return (keys // n).astype(np.int32), (keys % n).astype(np.int32)


@pytest.mark.parametrize("n,k", [(3, 2), (10, 8), (30, 28), (50, 20), (2000, 40), (60_000, 20)])
@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_watts_strogatz_rounds_follow_the_rule(n, k, p):
    # dense rings (k close to n) force many collisions, lost places and redraws; the largest ring
    # is built by the compiled kernels
    for seed in range(3 if n < 10_000 else 1):
        ours = watts_strogatz(n, k, p, np.random.default_rng(seed))
        plain = _watts_strogatz_by_definition(n, k, p, np.random.default_rng(seed))
        assert np.array_equal(ours[0], plain[0]) and np.array_equal(ours[1], plain[1])

def test_watts_strogatz_refuses_k_not_below_n():
    with pytest.raises(ScenarioError) as err:
        watts_strogatz(10, 10, 0.1, np.random.default_rng(0))
    assert err.value.path == "network.k"


# ---------------------------------------------------------------------------
# Barabasi-Albert
# ---------------------------------------------------------------------------

def test_barabasi_albert_matches_networkx():
    # n > 200 m, so both the sequential start and the vectorised bulk are used
    n, m, seeds = 3000, 3, range(8)
    ours, theirs = [], []
    for seed in seeds:
        src, dst = barabasi_albert(n, m, np.random.default_rng(seed))
        _assert_simple(src, dst, n)
        h = nx.barabasi_albert_graph(n, m, seed=seed)
        # the star of m+1 plus m ties per later citizen: exactly m (n - m) ties on both sides
        assert src.size == h.number_of_edges() == m * (n - m)
        dg = np.bincount(np.concatenate([src, dst]), minlength=n)
        dh = np.array([d for _, d in sorted(h.degree())])
        assert (dg[m + 1:] >= m).all()
        g = _graph(n, src, dst)
        ours.append((nx.average_clustering(g), (dg ** 2).mean(), (dg == m).mean(), dg[:20].mean()))
        theirs.append((nx.average_clustering(h), (dh ** 2).mean(), (dh == m).mean(), dh[:20].mean()))
    ours, theirs = np.array(ours), np.array(theirs)
    _agree(ours[:, 0], theirs[:, 0], floor=0.003)   # average clustering
    _agree(ours[:, 1], theirs[:, 1], floor=5.0)     # second moment of the degree (the hubs)
    _agree(ours[:, 2], theirs[:, 2], floor=0.01)    # share of citizens with the minimum degree
    _agree(ours[:, 3], theirs[:, 3], floor=3.0)     # degree of the oldest citizens


def test_barabasi_albert_m1_is_a_tree():
    n = 2000
    src, dst = barabasi_albert(n, 1, np.random.default_rng(4))
    assert nx.is_tree(_graph(n, src, dst))


def test_barabasi_albert_refuses_m_not_below_n():
    with pytest.raises(ScenarioError) as err:
        barabasi_albert(5, 5, np.random.default_rng(0))
    assert err.value.path == "network.m"


# ---------------------------------------------------------------------------
# Stochastic block model
# ---------------------------------------------------------------------------

def test_sbm_block_counts_are_binomial():
    sizes = np.array([600, 300, 100])
    k_in, k_out = 8.0, 2.0
    n = int(sizes.sum())
    starts = np.concatenate([[0], np.cumsum(sizes)])
    for seed in range(5):
        src, dst = stochastic_block_model(sizes, k_in, k_out, np.random.default_rng(seed))
        _assert_simple(src, dst, n)
        gs = np.searchsorted(starts, src, side="right") - 1
        gd = np.searchsorted(starts, dst, side="right") - 1
        for g in range(3):
            pairs = sizes[g] * (sizes[g] - 1) / 2
            p = k_in / (sizes[g] - 1)
            count = int(((gs == g) & (gd == g)).sum())
            assert abs(count - pairs * p) <= 4 * np.sqrt(pairs * p * (1 - p)), (seed, g, count)
            for h in range(g + 1, 3):
                pairs, p = sizes[g] * sizes[h], k_out / n
                count = int(((gs == g) & (gd == h)).sum())
                assert abs(count - pairs * p) <= 4 * np.sqrt(pairs * p * (1 - p)), (seed, g, h, count)
        assert not ((gs > gd).any())


def test_sbm_degrees_match_networkx_sbm():
    sizes = [400, 200]
    n = sum(sizes)
    k_in, k_out = 6.0, 3.0
    probs = [[k_in / (sizes[0] - 1), k_out / n], [k_out / n, k_in / (sizes[1] - 1)]]
    ours, theirs = [], []
    for seed in range(6):
        src, dst = stochastic_block_model(np.array(sizes), k_in, k_out, np.random.default_rng(seed))
        dg = np.bincount(np.concatenate([src, dst]), minlength=n)
        h = nx.stochastic_block_model(sizes, probs, seed=seed)
        dh = np.array([d for _, d in sorted(h.degree())])
        ours.append((dg[:400].mean(), dg[400:].mean(), dg[:400].var()))
        theirs.append((dh[:400].mean(), dh[400:].mean(), dh[:400].var()))
    ours, theirs = np.array(ours), np.array(theirs)
    _agree(ours[:, 0], theirs[:, 0], floor=0.05)
    _agree(ours[:, 1], theirs[:, 1], floor=0.05)
    # the degree variance: ties placed uniformly give binomial degrees
    _agree(ours[:, 2], theirs[:, 2], floor=0.3)
    expected_var = (sizes[0] - 1) * probs[0][0] * (1 - probs[0][0]) + sizes[1] * probs[0][1] * (1 - probs[0][1])
    assert abs(ours[:, 2].mean() / expected_var - 1) < 0.1


def test_sbm_tiny_and_empty_groups():
    src, dst = stochastic_block_model(np.array([1, 0, 5]), 8.0, 2.0, np.random.default_rng(0))
    _assert_simple(src, dst, 6)
    # a group of 5 with k_in = 8 > n_g - 1 is complete
    inside = (src >= 1) & (dst >= 1)
    assert inside.sum() == 10


# ---------------------------------------------------------------------------
# build_ties: kinds, weights, adjacency, cuts
# ---------------------------------------------------------------------------

def test_build_ties_kinds_weights_and_adjacency(reference_path):
    kinds = [{"name": "family", "share": 0.2, "weight": 2.0},
             {"name": "friend", "share": 0.5, "weight": 1.0},
             {"name": "colleague", "share": 0.3, "weight": 0.5}]
    sc = load_scenario(reference_path, {"population.size": 3000, "network.kinds": kinds})
    pop = build_population(sc, 5)
    ties = build_ties(sc.network, pop, 5)
    _assert_simple(ties.src, ties.dst, 3000)
    e = ties.n_ties
    for i, kind in enumerate(kinds):
        count = int((ties.kind == i).sum())
        assert abs(count - e * kind["share"]) <= 4 * np.sqrt(e * kind["share"] * (1 - kind["share"]))
        np.testing.assert_array_equal(ties.weight[ties.kind == i], kind["weight"])
    dense = ties.adjacency.toarray().astype(np.float64)
    assert (dense == dense.T).all()
    assert np.count_nonzero(dense) == 2 * e
    np.testing.assert_array_equal(dense[ties.src, ties.dst], ties.weight)
    degree = np.bincount(np.concatenate([ties.src, ties.dst]), minlength=3000)
    np.testing.assert_array_equal(ties.degree(), degree)
    np.testing.assert_allclose(ties.weighted_degree(), dense.sum(axis=1))
    assert (ties.cut_day == -1).all() and ties.active.all()

    # cutting zeroes both directions, keeps the pattern, and the tie stays cut
    cut = np.arange(0, e, 7)
    ties.cut(cut, 13)
    dense2 = ties.adjacency.toarray().astype(np.float64)
    assert (dense2[ties.src[cut], ties.dst[cut]] == 0).all() and (dense2[ties.dst[cut], ties.src[cut]] == 0).all()
    keep = np.setdiff1d(np.arange(e), cut)
    np.testing.assert_array_equal(dense2[ties.src[keep], ties.dst[keep]], ties.weight[keep])
    assert (ties.cut_day[cut] == 13).all() and (ties.cut_day[keep] == -1).all()
    assert ties.adjacency.nnz == 2 * e
    np.testing.assert_array_equal(ties.degree(active_only=False), degree)
    assert ties.degree().sum() == 2 * keep.size


def test_reference_network_mean_degree(reference_path):
    """reference: k_in = 8 inside, k_out / N per pair between groups, so mean degree ~ 8 + 2 (1 - sum s^2)."""
    sc = load_scenario(reference_path)
    eng_pop = build_population(sc, 1)
    ties = build_ties(sc.network, eng_pop, 1)
    n = sc.population.size
    sizes = eng_pop.group_sizes
    expected = sum(s * (s - 1) / 2 * 8 / (s - 1) for s in sizes) + 2 / n * (n * n - (sizes ** 2).sum()) / 2
    assert abs(ties.n_ties - expected) <= 4 * np.sqrt(expected)


# ---------------------------------------------------------------------------
# Edge lists
# ---------------------------------------------------------------------------

EDGES = """# a public, anonymous edge list
% a second comment style
a,b
b c
c, d

d a
a a
b,a
e f
"""


def test_read_edge_list_comments_commas_self_ties_and_duplicates(tmp_path):
    path = tmp_path / "edges.txt"
    path.write_text(EDGES)
    n = 10
    src, dst = read_edge_list(path, n, np.random.default_rng(0))
    _assert_simple(src, dst, n)
    # a-b, b-c, c-d, d-a, e-f: the self-tie and the reversed duplicate are dropped
    assert src.size == 5
    expected = nx.Graph([("a", "b"), ("b", "c"), ("c", "d"), ("d", "a"), ("e", "f")])
    assert nx.is_isomorphic(_graph(n, src, dst).subgraph(np.unique(np.concatenate([src, dst])).tolist()), expected)


def test_edge_list_scenario_resolves_path_next_to_the_file(tmp_path, reference_path):
    (tmp_path / "edges.txt").write_text(EDGES)
    text = reference_path.read_text()
    text = text.replace('model = "sbm"', 'model = "edge_list"\npath = "edges.txt"')
    scenario_file = tmp_path / "edge.toml"
    scenario_file.write_text(text)
    sc = load_scenario(scenario_file, ["population.size=6", "days=14"])
    assert sc.network.path == str((tmp_path / "edges.txt").resolve())
    eng = Engine(sc)
    assert eng.ties.n_ties == 5
    eng.run()
    assert eng.day == 14


def test_edge_list_with_more_nodes_than_citizens(tmp_path, reference_path):
    (tmp_path / "edges.txt").write_text(EDGES)
    text = reference_path.read_text().replace('model = "sbm"', 'model = "edge_list"\npath = "edges.txt"')
    (tmp_path / "edge.toml").write_text(text)
    sc = load_scenario(tmp_path / "edge.toml", ["population.size=5"])
    with pytest.raises(ScenarioError) as err:
        Engine(sc)
    assert err.value.path == "population.size"
    assert "6" in str(err.value) and err.value.hint
    assert isinstance(err.value, ValueError)


def test_edge_list_bad_lines_and_missing_file(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2\n3\n")
    with pytest.raises(ScenarioError) as err:
        read_edge_list(bad, 10, np.random.default_rng(0))
    assert err.value.path == "network.path" and "bad.txt:2" in str(err.value)
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(ScenarioError, match="no ties"):
        read_edge_list(empty, 10, np.random.default_rng(0))
    with pytest.raises(ScenarioError) as err:
        read_edge_list(tmp_path / "missing.txt", 10, np.random.default_rng(0))
    assert err.value.path == "network.path"


def test_wrap_positions_point_at_each_tie():
    src = np.array([0, 1, 0, 2], np.int32)
    dst = np.array([3, 2, 1, 3], np.int32)
    w = np.array([1.0, 2.0, 3.0, 4.0])
    ties = _wrap(src, dst, np.zeros(4, np.int8), np.ones(1), 4, weight=w)
    for t in range(4):
        for pos in ties._pos[:, t]:
            assert ties.adjacency.data[pos] == w[t]


@pytest.mark.parametrize("model, overrides, mean_degree", [
    ("watts_strogatz", {"network.k": 12, "network.rewire": 0.2}, 12.0),
    ("barabasi_albert", {"network.m": 4}, 2 * 4 * (1500 - 4) / 1500),
])
def test_scenario_selects_the_generator(reference_path, model, overrides, mean_degree):
    from socialcredit.resources import expected_ties

    sc = load_scenario(reference_path, {"population.size": 1500, "network.model": model, **overrides})
    eng = Engine(sc)
    _assert_simple(eng.ties.src, eng.ties.dst, 1500)
    assert abs(2 * eng.ties.n_ties / 1500 - mean_degree) < 0.02
    assert abs(expected_ties(sc) / eng.ties.n_ties - 1) < 0.01
    eng.run(until=28)
    assert len(eng.metrics) == 4


def test_expected_ties_for_sbm(reference_path):
    from socialcredit.resources import expected_ties

    sc = load_scenario(reference_path, {"population.size": 5000})
    eng = Engine(sc)
    assert abs(expected_ties(sc) - eng.ties.n_ties) <= 4 * np.sqrt(expected_ties(sc)) + 0.01 * eng.ties.n_ties


@pytest.mark.parametrize("size", [3000, 60_000])  # the plain and the compiled paths
def test_weighted_degree_after_cuts_has_the_bits_of_a_fresh_sum(reference_path, size):
    s = load_scenario(reference_path, [f"population.size={size}", "network.kinds=[{name='a', share=0.7, weight=0.3},"
                                       " {name='b', share=0.3, weight=1.7}]"])
    ties = build_ties(s.network, build_population(s, 4), 4)
    before = ties.weighted_degree().copy()
    rng = np.random.default_rng(5)
    for day in range(3):
        ties.cut(np.flatnonzero(ties.active & (rng.random(ties.n_ties) < 0.1)), day)
        np.testing.assert_array_equal(ties.weighted_degree(), ties.adjacency @ np.ones(size))
        assert ties.n_active == int(ties.active.sum()) == int((ties.cut_day < 0).sum())
    assert (ties.weighted_degree() <= before).all() and (ties.weighted_degree() < before).any()
