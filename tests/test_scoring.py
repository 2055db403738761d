"""Scoring: own points, the coupled score against its closed form, and grades."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

from socialcredit.network import _wrap, weighted_adjacency
from socialcredit.scenario import Coupling, Grade, load_scenario
from socialcredit.scoring import MILLI, coupled_score, grade_index, own_points, to_milli


def _random_weighted_graph(n: int, p: float, seed: int, isolated: int = 20):
    """A G(n, p) graph (networkx) with random weights and ``isolated`` forced-isolated citizens."""
    g = nx.gnp_random_graph(n, p, seed=seed)
    rng = np.random.default_rng(seed)
    alone = rng.choice(n, size=isolated, replace=False)
    g.remove_edges_from(list(g.edges(alone)))
    edges = np.array(sorted((min(u, v), max(u, v)) for u, v in g.edges()), dtype=np.int32)
    weights = rng.uniform(0.25, 3.0, size=len(edges))
    return edges[:, 0], edges[:, 1], weights, alone


def _closed_form(points: np.ndarray, dense_adjacency: np.ndarray, kappa: float) -> np.ndarray:
    """Solve (I - kW) S = b with numpy: b = (1-k) P on rows with ties, P on isolated rows."""
    strength = dense_adjacency.sum(axis=1)
    tied = strength > 0
    w = np.zeros_like(dense_adjacency)
    w[tied] = dense_adjacency[tied] / strength[tied, None]
    b = np.where(tied, (1.0 - kappa) * points, points)
    return np.linalg.solve(np.eye(points.size) - kappa * w, b)


@pytest.mark.parametrize("kappa", [0.2, 0.5, 0.8])
@pytest.mark.parametrize("seed", [0, 1])
def test_friedkin_johnsen_matches_closed_form_on_weighted_graph(kappa, seed):
    n = 300
    src, dst, weights, alone = _random_weighted_graph(n, 0.02, seed)
    ties = _wrap(src, dst, np.zeros(src.size, np.int8), np.ones(1), n, weight=weights)
    dense = np.zeros((n, n))
    dense[src, dst] = weights
    dense[dst, src] = weights
    np.testing.assert_array_equal(ties.adjacency.toarray(), dense)

    points = np.random.default_rng(seed + 100).uniform(0, 1200, size=n)
    score, iterations = coupled_score(points, ties.adjacency, Coupling(mode="friedkin_johnsen", kappa=kappa))
    expected = _closed_form(points, dense, kappa)
    assert np.max(np.abs(score - expected)) < 1e-5
    assert iterations > 1
    # isolated citizens keep S = P exactly
    isolated = dense.sum(axis=1) == 0
    assert isolated[alone].all()
    np.testing.assert_array_equal(score[isolated], points[isolated])
    # the input is left as it was
    assert points.shape == (n,)


@pytest.mark.parametrize("kappa", [0.05, 0.3, 0.6, 0.95])
@pytest.mark.parametrize("tolerance", [1e-1, 1e-3, 1e-6])
def test_friedkin_johnsen_error_is_within_the_tolerance(kappa, tolerance):
    """The stopping rule's proof, checked: the returned score is within the tolerance of the fixed point."""
    n = 300
    src, dst, weights, _ = _random_weighted_graph(n, 0.02, seed=11)
    ties = _wrap(src, dst, np.zeros(src.size, np.int8), np.ones(1), n, weight=weights)
    dense = ties.adjacency.toarray().astype(np.float64)
    for seed in range(3):
        points = np.random.default_rng(seed).uniform(0, 1200, size=n)
        score, _ = coupled_score(points, ties.adjacency, Coupling(kappa=kappa, tolerance=tolerance))
        assert np.max(np.abs(score - _closed_form(points, dense, kappa))) < tolerance


def test_friedkin_johnsen_with_cut_ties_uses_only_active_ties():
    n = 250
    src, dst, weights, _ = _random_weighted_graph(n, 0.03, seed=7)
    ties = _wrap(src, dst, np.zeros(src.size, np.int8), np.ones(1), n, weight=weights)
    cut = np.random.default_rng(7).choice(ties.n_ties, size=ties.n_ties // 3, replace=False)
    ties.cut(cut, day=6)
    active = np.ones(ties.n_ties, bool)
    active[cut] = False
    dense = np.zeros((n, n))
    dense[src[active], dst[active]] = weights[active]
    dense[dst[active], src[active]] = weights[active]
    np.testing.assert_array_equal(ties.adjacency.toarray(), dense)
    points = np.random.default_rng(8).uniform(0, 1200, size=n)
    score, _ = coupled_score(points, ties.adjacency, Coupling(kappa=0.5), ties.weighted_degree())
    np.testing.assert_allclose(score, _closed_form(points, dense, 0.5), rtol=0, atol=1e-5)


def test_friedkin_johnsen_on_engine_network(reference_path):
    """The same check on a network built by the engine's own generator (reference, 400 citizens)."""
    from socialcredit.engine import Engine

    eng = Engine(load_scenario(reference_path, ["population.size=400"]))
    dense = eng.ties.adjacency.toarray().astype(np.float64)  # float32 where the kernels read it
    points = np.random.default_rng(3).uniform(500, 1200, size=400)
    score, _ = coupled_score(points, eng.ties.adjacency, eng.scenario.coupling)
    np.testing.assert_allclose(score, _closed_form(points, dense, 0.5), rtol=0, atol=1e-5)


@pytest.mark.parametrize("kappa", [0.3, 0.5])
def test_neighbour_mean_is_one_step(kappa):
    n = 200
    src, dst, weights, _ = _random_weighted_graph(n, 0.03, seed=11)
    ties = _wrap(src, dst, np.zeros(src.size, np.int8), np.ones(1), n, weight=weights)
    dense = ties.adjacency.toarray().astype(np.float64)
    points = np.random.default_rng(12).uniform(0, 1200, size=n)
    score, _ = coupled_score(points, ties.adjacency, Coupling(mode="neighbour_mean", kappa=kappa))
    strength = dense.sum(axis=1)
    tied = strength > 0
    wp = np.where(tied, (dense @ points) / np.where(tied, strength, 1.0), 0.0)
    expected = np.where(tied, (1 - kappa) * points + kappa * wp, points)
    np.testing.assert_allclose(score, expected, rtol=1e-13, atol=0)
    np.testing.assert_array_equal(score[~tied], points[~tied])


def test_mode_none_and_kappa_zero_return_points():
    n = 50
    src, dst, weights, _ = _random_weighted_graph(n, 0.1, seed=2, isolated=2)
    adjacency = weighted_adjacency(src, dst, weights, n)
    points = np.linspace(0, 1200, n)
    for coupling in (Coupling(mode="none", kappa=0.7), Coupling(mode="friedkin_johnsen", kappa=0.0),
                     Coupling(mode="neighbour_mean", kappa=0.0)):
        score, _ = coupled_score(points, adjacency, coupling)
        np.testing.assert_array_equal(score, points)
        assert score is not points  # a copy: the caller's P is never aliased


def test_two_friends_worked_example():
    a = sp.csr_matrix(np.array([[0.0, 1.0], [1.0, 0.0]]))
    s, _ = coupled_score(np.array([1000.0, 800.0]), a, Coupling(kappa=0.5))
    # closed form: S1 = (2*1000 + 800)/3, S2 = (1000 + 2*800)/3
    np.testing.assert_allclose(s, [2800 / 3, 2600 / 3], atol=1e-5)


def test_own_points_clip_and_milli_points():
    raw = np.array([0, -5000, 300_000, -2_000_000, 199_999])
    np.testing.assert_array_equal(own_points(raw, 1000, 0, 1200), [1000, 995, 1200, 0, 1199.999])
    assert MILLI == 1000
    assert to_milli(-5) == -5000 and to_milli(0.0015) == 2 and to_milli(10.25) == 10250


REFERENCE_GRADES = [Grade(name=n, min=m) for n, m in
                    [("AAA", 1050), ("AA", 1030), ("A", 960), ("B", 850), ("C", 600), ("D", 0)]]


def test_grade_exactly_at_threshold_and_just_below():
    names = [g.name for g in REFERENCE_GRADES]
    for i, grade in enumerate(REFERENCE_GRADES):
        at = np.array([float(grade.min)])
        below = np.nextafter(at, -np.inf)
        assert names[grade_index(at, REFERENCE_GRADES)[0]] == grade.name
        expected_below = names[min(i + 1, len(names) - 1)]
        assert names[grade_index(below, REFERENCE_GRADES)[0]] == expected_below


def test_grade_below_every_threshold_and_above_the_top():
    g = [Grade(name="A", min=960), Grade(name="B", min=850), Grade(name="C", min=600)]
    idx = grade_index(np.array([599.999, 0.0, -1e9, 1e9, 960.0, 959.9]), g)
    assert idx.tolist() == [2, 2, 2, 0, 0, 1]
    assert idx.dtype == np.int8


def test_grade_index_against_a_python_loop():
    rng = np.random.default_rng(5)
    scores = np.concatenate([rng.uniform(-100, 1300, 2000), [g.min for g in REFERENCE_GRADES]])

    def slow(s):
        for i, g in enumerate(REFERENCE_GRADES):
            if s >= g.min:
                return i
        return len(REFERENCE_GRADES) - 1

    assert grade_index(scores, REFERENCE_GRADES).tolist() == [slow(s) for s in scores]


# ---------------------------------------------------------------------------
# Properties (Hypothesis): the coupled score is a weighted average of own points
# ---------------------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None, database=None, derandomize=True)
@given(
    n=st.integers(2, 25),
    density=st.floats(0.0, 1.0),
    kappa=st.floats(0.0, 0.95),
    seed=st.integers(0, 2**32 - 1),
    mode=st.sampled_from(["friedkin_johnsen", "neighbour_mean"]),
)
def test_coupled_score_stays_within_neighbourhood_range(n, density, kappa, seed, mode):
    rng = np.random.default_rng(seed)
    upper = np.triu(rng.random((n, n)) < density, 1)
    src, dst = np.nonzero(upper)
    w = rng.uniform(0.1, 5.0, size=src.size)
    ties = _wrap(src.astype(np.int32), dst.astype(np.int32), np.zeros(src.size, np.int8), np.ones(1), n, weight=w)
    points = rng.uniform(0, 1200, size=n)
    score, _ = coupled_score(points, ties.adjacency, Coupling(mode=mode, kappa=kappa, tolerance=1e-9))
    assert (score >= points.min() - 1e-6).all() and (score <= points.max() + 1e-6).all()
    dense = ties.adjacency.toarray().astype(np.float64)
    if mode == "friedkin_johnsen":
        np.testing.assert_allclose(score, _closed_form(points, dense, kappa), atol=1e-6)
    # equal own points stay put, whatever the graph
    flat, _ = coupled_score(np.full(n, 777.0), ties.adjacency, Coupling(mode=mode, kappa=kappa))
    np.testing.assert_allclose(flat, 777.0, atol=1e-6)
