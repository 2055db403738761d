"""The compiled kernels give the same bits as the numpy/scipy path."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from socialcredit import kernels

CHILD = """
import json, sys
import socialcredit as sc
from socialcredit import kernels
s = sc.load_scenario(sys.argv[1], sys.argv[3:])
r = sc.run(s, out=sys.argv[2], force=True)
print(json.dumps({"compiled_used": kernels._kernels is not None, "nnz": r.engine.ties.adjacency.nnz}))
"""


@pytest.fixture(autouse=True)
def _paths_by_size_only():
    """These tests choose a path by the size thresholds: small cities do not reuse kernels loaded by others."""
    saved = kernels.REUSE_LOADED
    kernels.REUSE_LOADED = False
    yield
    kernels.REUSE_LOADED = saved


def _run(tmp_path, scenario_path, numba: str, overrides=("population.size=60000", "days=14")):
    env = dict(os.environ, SOCIALCREDIT_NUMBA=numba)
    out = tmp_path / f"run-{numba}"
    done = subprocess.run([sys.executable, "-c", CHILD, str(scenario_path), str(out), *overrides], env=env,
                          capture_output=True, text=True, check=True)
    info = json.loads(done.stdout.strip().splitlines()[-1])
    return info, json.loads((out / "manifest.json").read_text())["sha256"]


def test_compiled_and_scipy_paths_write_identical_runs(tmp_path, reference_path):
    compiled_info, compiled = _run(tmp_path, reference_path, "1")
    plain_info, plain = _run(tmp_path, reference_path, "0")
    assert compiled_info["nnz"] >= kernels.PARALLEL_MIN_NNZ  # large enough for the compiled path
    assert compiled_info["compiled_used"] and not plain_info["compiled_used"]
    assert compiled == plain


def test_a_city_with_a_side_score_runs_to_the_same_bytes_compiled_and_plain(tmp_path, scenarios_dir):
    """Rongcheng's side score shares the solver's first pass, and its per-citizen passes are compiled."""
    overrides = ("population.size=70000", "days=28")
    assert 70_000 * 8 >= kernels.PARALLEL_MIN_NNZ
    compiled_info, compiled = _run(tmp_path, scenarios_dir / "rongcheng.toml", "1", overrides)
    plain_info, plain = _run(tmp_path, scenarios_dir / "rongcheng.toml", "0", overrides)
    assert compiled_info["compiled_used"] and not plain_info["compiled_used"]
    assert compiled == plain


def test_stable_row_order_equals_stable_argsort():
    rows = np.random.default_rng(3).integers(0, 1000, size=kernels.PARALLEL_MIN_NNZ + 17).astype(np.int32)
    order, indptr = kernels.stable_row_order(rows, 1000)
    np.testing.assert_array_equal(order, np.argsort(rows, kind="stable"))
    np.testing.assert_array_equal(np.diff(indptr), np.bincount(rows, minlength=1000))


@pytest.mark.parametrize("span", [1, 14, 256, 257, 5840, 2**16, 2**16 + 1])
def test_stable_row_order_of_small_keys_on_both_paths(monkeypatch, span):
    # the acts' day-and-type keys: compiled, a counting sort; on the numpy path, 8- or 16-bit keys by radix
    keys = np.random.default_rng(span).integers(0, span, kernels.PARALLEL_MIN_NNZ + 3)
    expected = np.argsort(keys, kind="stable")
    monkeypatch.setattr(kernels, "PARALLEL_MIN_NNZ", 10**15)
    plain, _ = kernels.stable_row_order(keys, span)
    monkeypatch.undo()
    compiled, _ = kernels.stable_row_order(keys, span)
    np.testing.assert_array_equal(plain, expected)
    np.testing.assert_array_equal(compiled, expected)


def test_stable_row_order_of_wide_keys_on_the_numpy_path():
    keys = np.random.default_rng(9).integers(0, 2**20, 50_000)  # too wide for 16 bits: timsort on int64
    order, indptr = kernels.stable_row_order(keys, 2**20)
    np.testing.assert_array_equal(order, np.argsort(keys, kind="stable"))
    assert indptr[-1] == keys.size


def _large_matrix(seed: int, n: int = 40_000) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    nnz = kernels.PARALLEL_MIN_NNZ + 1000
    return sp.csr_matrix((rng.random(nnz), (rng.integers(0, n, nnz), rng.integers(0, n, nnz))), shape=(n, n))


def test_chebyshev_step_matches_the_formula_bit_for_bit():
    a = _large_matrix(4)
    rng = np.random.default_rng(5)
    x, previous, base, coef = (rng.random(a.shape[0]) for _ in range(4))
    jacobi, following = np.empty_like(x), np.empty_like(x)
    worst = kernels.chebyshev_step(a, x, previous, base, coef, 1.37, jacobi, following)
    expected = base + coef * (a @ x)
    np.testing.assert_array_equal(jacobi, expected)
    np.testing.assert_array_equal(following, 1.37 * (expected - previous) + previous)
    assert worst == np.max(np.abs(expected - x))
    np.testing.assert_array_equal(kernels.matvec(a, x), a @ x)


def test_chebyshev_step_is_the_same_on_one_thread_and_on_all():
    import numba

    a = _large_matrix(6)
    rng = np.random.default_rng(7)
    x, previous, base, coef = (rng.random(a.shape[0]) for _ in range(4))
    results = []
    for threads in (1, numba.config.NUMBA_NUM_THREADS):
        numba.set_num_threads(threads)
        jacobi, following = np.empty_like(x), np.empty_like(x)
        worst = kernels.chebyshev_step(a, x, previous, base, coef, 1.1, jacobi, following)
        results.append((jacobi, following, worst))
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    assert results[0][2] == results[1][2]


def test_row_sums_add_in_storage_order_like_scipy():
    a = _large_matrix(8)
    np.testing.assert_array_equal(kernels.row_sums(a), a @ np.ones(a.shape[1]))


def test_active_entries_of_rows_reads_active_ties_of_the_given_rows():
    a = _large_matrix(9, n=30_000)
    a.data[::7] = 0.0  # cut entries are stored as 0
    rows = np.array([5, 17, 29_999, 400, 17])
    listed = np.zeros(a.shape[0], dtype=bool)
    listed[rows] = True
    listed[a.indices[a.indptr[400]]] = True
    tie_of = np.arange(a.nnz, dtype=np.int64) * 3  # any position -> id map
    expect_cols, expect_ties = [], []
    for r in rows:
        for p in range(a.indptr[r], a.indptr[r + 1]):
            if a.data[p] > 0:
                expect_cols.append(a.indices[p])
                if not listed[a.indices[p]]:
                    expect_ties.append(tie_of[p])
    compiled_cols = kernels.active_entries_of_rows(a, rows, None, None)
    compiled_ties = kernels.active_entries_of_rows(a, rows, listed, tie_of)
    assert compiled_cols.tolist() == expect_cols and compiled_ties.tolist() == expect_ties
    small = a[:1000].tocsr()  # below the compiled threshold: the numpy path
    small_rows = np.array([3, 999, 3])
    cols = [small.indices[p] for r in small_rows for p in range(small.indptr[r], small.indptr[r + 1])
            if small.data[p] > 0]
    assert small.nnz < kernels.PARALLEL_MIN_NNZ
    assert kernels.active_entries_of_rows(small, small_rows, None, None).tolist() == cols


def test_mark_neighbours_is_the_same_compiled_and_plain():
    a = _large_matrix(10, n=30_000)
    a.data[::5] = 0.0
    rows = np.array([0, 11, 29_999, 11, 4000])
    expected = np.zeros(a.shape[0], dtype=bool)
    for r in rows:
        for p in range(a.indptr[r], a.indptr[r + 1]):
            if a.data[p] > 0:
                expected[a.indices[p]] = True
    np.testing.assert_array_equal(kernels.mark_neighbours(a, rows, a.shape[0]), expected)
    small = a[:1000].tocsr()
    assert small.nnz < kernels.PARALLEL_MIN_NNZ
    small_expected = np.zeros(small.shape[1], dtype=bool)
    small_expected[kernels.active_entries_of_rows(small, rows[:2], None, None)] = True
    np.testing.assert_array_equal(kernels.mark_neighbours(small, rows[:2], small.shape[1]), small_expected)


def test_listed_rows_scan_is_the_same_on_one_thread_and_on_all():
    import numba

    a = _large_matrix(12, n=20_000)
    rows = np.flatnonzero(np.random.default_rng(13).random(a.shape[0]) < 0.3)
    listed = np.zeros(a.shape[0], dtype=bool)
    listed[rows] = True
    tie_of = np.arange(a.nnz, dtype=np.int64)
    results = []
    for threads in (1, numba.config.NUMBA_NUM_THREADS):
        numba.set_num_threads(threads)
        results.append(kernels.active_entries_of_rows(a, rows, listed, tie_of))
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    np.testing.assert_array_equal(results[0], results[1])


def test_row_sums_of_some_rows_give_the_bits_of_all_rows():
    for a in (_large_matrix(14), _large_matrix(14)[:2000].tocsr()):
        full = kernels.row_sums(a)
        a.data[: a.nnz // 3] = 0.0  # cut a third of the entries; their rows are re-summed
        rows = np.unique(np.searchsorted(a.indptr, np.arange(a.nnz // 3), side="right") - 1)
        kernels.row_sums_of(a, rows, full)
        np.testing.assert_array_equal(full, a @ np.ones(a.shape[1]))


def test_add_ones_counts_repeated_pairs_like_add_at():
    rng = np.random.default_rng(15)
    for shape in ((16, 40_000), (3, 50)):
        first = rng.integers(0, shape[0], 20_000).astype(np.int16)
        second = rng.integers(0, shape[1], 20_000)
        target, expected = np.zeros(shape, np.int32), np.zeros(shape, np.int32)
        kernels.add_ones(target, first, second)
        np.add.at(expected, (first, second), 1)
        np.testing.assert_array_equal(target, expected)


# -- split cities: near and far entries summed apart -------------------------------------------

@pytest.fixture
def small_split(monkeypatch):
    """Split sums from 1,000 citizens on, far beyond 300 places, blocks of 4,096 rows."""
    monkeypatch.setattr(kernels, "SPLIT_MIN_CITIZENS", 1000)
    monkeypatch.setattr(kernels, "FAR_DISTANCE", 300)
    monkeypatch.setattr(kernels, "BIN_ROWS", 4096)


def _small_world(reference_path, n, seed=1):
    from socialcredit.network import build_ties
    from socialcredit.population import build_population
    from socialcredit.scenario import load_scenario

    s = load_scenario(reference_path, [f"population.size={n}", "network.model='watts_strogatz'", "network.k=20",
                                       "network.rewire=0.1", "network.kinds=[{name='a', share=0.6, weight=0.7},"
                                       " {name='b', share=0.4, weight=1.3}]"])
    return build_ties(s.network, build_population(s, seed), seed)


def test_split_rows_store_near_entries_first_and_keep_each_part_in_order(reference_path, small_split):
    ties = _small_world(reference_path, 20_000)
    a = ties.adjacency
    rows = np.repeat(np.arange(a.shape[0]), np.diff(a.indptr))
    far = np.abs(rows - a.indices) > kernels.FAR_DISTANCE
    assert 0.07 < far.mean() < 0.13  # both entries of the 10 % rewired ties
    for r in (0, 7, 12_345, 19_999):
        f = far[a.indptr[r]:a.indptr[r + 1]]
        assert not (f[:-1] & ~f[1:]).any()  # no near entry after a far one
    # every tie's two positions still hold its weight, so cuts and scans are unchanged
    np.testing.assert_array_equal(a.data[ties._pos[0]], ties.weight)
    np.testing.assert_array_equal(a.indices[ties._pos[0]], ties.dst)
    np.testing.assert_array_equal(a.indices[ties._pos[1]], ties.src)


@pytest.mark.parametrize("citizens", [50_000, 50_001])  # the compiled step takes rows in pairs: an odd count ends alone
def test_split_sums_are_the_same_compiled_and_plain_and_close_to_one_sum(reference_path, small_split, monkeypatch,
                                                                         citizens):
    from socialcredit.scenario import Coupling
    from socialcredit.scoring import coupled_score

    ties = _small_world(reference_path, citizens)
    ties.cut(np.arange(0, ties.n_ties, 9), 3)
    a, n = ties.adjacency, ties.adjacency.shape[0]
    rng = np.random.default_rng(2)
    x, previous, base, coef = (rng.random(n) * 1000 for _ in range(4))
    points = rng.random(n) * 1200
    results = {}
    for path, limit in (("compiled", kernels.PARALLEL_MIN_NNZ), ("plain", 10**15)):
        monkeypatch.setattr(kernels, "PARALLEL_MIN_NNZ", limit)
        jacobi, following = np.empty(n), np.empty(n)
        worst = kernels.chebyshev_step(a, x, previous, base, coef, 1.3, jacobi, following)
        score, iterations = coupled_score(points, a, Coupling(kappa=0.5), ties.weighted_degree())
        results[path] = (jacobi, following, worst, kernels.matvec(a, x), score, iterations)
    for got, expected in zip(results["compiled"], results["plain"]):
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_allclose(results["plain"][3], a @ x, rtol=1e-12)
    monkeypatch.setattr(kernels, "SPLIT_MIN_CITIZENS", 10**9)  # one sum per row, as below the split size
    one_sum, _ = coupled_score(points, a, Coupling(kappa=0.5), ties.weighted_degree())
    assert np.max(np.abs(one_sum - results["compiled"][4])) < 1e-6  # both within the tolerance of S*


def test_split_step_is_the_same_on_one_thread_and_on_all(reference_path, small_split):
    import numba

    ties = _small_world(reference_path, 30_000)
    a, n = ties.adjacency, ties.adjacency.shape[0]
    rng = np.random.default_rng(4)
    x, previous, base, coef = (rng.random(n) for _ in range(4))
    results = []
    for threads in (1, numba.config.NUMBA_NUM_THREADS):
        numba.set_num_threads(threads)
        jacobi, following = np.empty(n), np.empty(n)
        worst = kernels.chebyshev_step(a, x, previous, base, coef, 1.1, jacobi, following)
        again = kernels.chebyshev_step(a, following, x, base, coef, 1.2, np.empty(n), np.empty(n), continued=True)
        results.append((jacobi, following, worst, again))
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    for got, expected in zip(*results):
        np.testing.assert_array_equal(got, expected)


def test_a_split_city_matrix_not_stored_near_first_is_refused(small_split):
    a = _large_matrix(16, n=40_000)  # random columns, rows not partitioned
    x = np.ones(a.shape[0])
    with pytest.raises(ValueError, match="near entries first"):
        kernels.matvec(a, x)


def test_a_split_city_runs_to_the_same_bytes_compiled_and_plain(reference_path, small_split, monkeypatch, tmp_path):
    import json

    import socialcredit as sc
    from socialcredit.replay import standing_at
    from socialcredit.scenario import load_scenario

    s = load_scenario(reference_path, ["population.size=60000", "days=28", "network.model='watts_strogatz'",
                                       "network.k=20", "network.rewire=0.1"])
    digests = {}
    for path, limit in (("compiled", kernels.PARALLEL_MIN_NNZ), ("plain", 10**15)):
        monkeypatch.setattr(kernels, "PARALLEL_MIN_NNZ", limit)
        result = sc.run(s, out=tmp_path / path)
        digests[path] = json.loads((tmp_path / path / "manifest.json").read_text())["sha256"]
    assert digests["compiled"] == digests["plain"]
    final = result.engine.standing
    replayed = standing_at(tmp_path / "plain", 3)
    np.testing.assert_array_equal(replayed.score, final.score)
    np.testing.assert_array_equal(replayed.grade, final.grade)


@pytest.mark.parametrize("threads", ["one", "all"])
def test_cut_and_fear_scan_is_the_plain_cut_then_fear(reference_path, monkeypatch, threads):
    """The compiled scan cuts the same ties by the same keyed draws and flags the same citizens."""
    import numba

    from socialcredit.network import build_ties
    from socialcredit.population import build_population
    from socialcredit.rng import keyed_base, keyed_uniform
    from socialcredit.scenario import load_scenario

    s = load_scenario(reference_path, ["population.size=60000",
                                       "network.kinds=[{name='a', share=0.5, weight=1.0, cut_probability=0.3},"
                                       " {name='b', share=0.5, weight=0.5, cut_probability=0.05}]"])
    pop = build_population(s, 5)
    listed = np.random.default_rng(5).random(pop.size) < 0.2
    cut_p = np.array([0.3, 0.05])
    outcomes = []
    compiled = kernels.PARALLEL_MIN_NNZ
    for limit in (compiled, 10**15):  # compiled, then plain
        monkeypatch.setattr(kernels, "PARALLEL_MIN_NNZ", limit)
        ties = build_ties(s.network, pop, 5)
        assert ties.adjacency.nnz >= compiled
        ties.cut(np.arange(0, ties.n_ties, 7), day=0)  # some ties were cut before
        numba.set_num_threads(1 if threads == "one" else numba.config.NUMBA_NUM_THREADS)
        n_cut, feared = ties.cut_and_fear(listed, keyed_base(9, "tie_cut", 3), cut_p, day=13)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        outcomes.append((n_cut, feared, ties.cut_day.copy(), ties.adjacency.data.copy(), ties.weighted_degree().copy()))
    (n1, f1, d1, a1, w1), (n2, f2, d2, a2, w2) = outcomes
    assert n1 == n2 > 0 and f1.sum() > 0
    np.testing.assert_array_equal(f1, f2)
    np.testing.assert_array_equal(d1, d2)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(w1, w2)
    # the plain path by hand: candidates, their keyed uniforms, then neighbours over the ties left
    ties = build_ties(s.network, pop, 5)
    ties.cut(np.arange(0, ties.n_ties, 7), day=0)
    one_end = ties.active & (listed[ties.src] != listed[ties.dst])
    ids = np.flatnonzero(one_end)
    cut = ids[keyed_uniform(9, "tie_cut", 3, ids) < cut_p[ties.kind[ids]]]
    assert cut.size == n1 and (d1[cut] == 13).all() and (d1 == 13).sum() == cut.size
    left = ties.active.copy()
    left[cut] = False
    expected = np.zeros(pop.size, dtype=bool)
    expected[ties.dst[left & listed[ties.src]]] = True
    expected[ties.src[left & listed[ties.dst]]] = True
    np.testing.assert_array_equal(f1, expected)


def test_changed_rows_compiled_is_the_numpy_test(monkeypatch):
    rng = np.random.default_rng(0)
    n = 200_000
    assert n * 8 >= kernels.PARALLEL_MIN_NNZ

    def draw():
        return (rng.integers(0, 3, n).astype(np.int8), rng.random(n) < 0.5, rng.random(n) < 0.5,
                rng.integers(0, 4, n).astype(np.int8))

    new, other = draw(), draw()
    old = tuple(np.where(rng.random(n) < 0.9, a, b) for a, b in zip(new, other))
    score = rng.random(n) * 10
    logged = score + rng.choice([0.0, 1.999, 2.0, -2.0, 3.0], n)  # on and around the resolution
    compiled = kernels.changed_rows(new, old, score, logged, 2.0)
    monkeypatch.setattr(kernels, "PARALLEL_MIN_NNZ", 10**15)
    plain = kernels.changed_rows(new, old, score, logged, 2.0)
    np.testing.assert_array_equal(compiled, plain)
    assert 0 < compiled.size < n and compiled.dtype == plain.dtype == np.int64


CACHE_CHILD = """
import json, sys
import socialcredit as sc
from socialcredit import kernels
s = sc.load_scenario(sys.argv[1], ["population.size=70000", "days=14"])
sc.run(s)
used = {name: [sum(d.stats.cache_hits.values()), sum(d.stats.cache_misses.values())]
        for name, d in vars(kernels._kernels).items() if d.signatures}
print(json.dumps(used))
"""


def test_compiled_kernels_load_from_the_cache_in_a_new_process(scenarios_dir):
    """A kernel whose on-disk cache is never found again is compiled in every run (seconds each)."""
    def used():
        done = subprocess.run([sys.executable, "-c", CACHE_CHILD, str(scenarios_dir / "rongcheng.toml")], capture_output=True,
                              text=True, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    used()  # compiles and caches whatever this checkout has not cached yet
    again = used()
    assert {"solve", "cut_and_fear", "grades_and_lists", "changed_rows", "search_ascending",
            "side_by_side", "packed_pair_products", "tie_entries", "own_points", "coupling_terms", "median"} <= set(again)
    assert {name: misses for name, (_, misses) in again.items() if misses} == {}
    assert all(hits > 0 for hits, _ in again.values())
    # prepare() alone, in a fresh process, loads in the background every overload that run used, compiling none
    done = subprocess.run([sys.executable, "-c", PRELOAD_CHILD], capture_output=True, text=True, check=True)
    preloaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(again) <= {name for name, (hits, misses) in preloaded.items() if hits and not misses}
    assert {name: misses for name, (_, misses) in preloaded.items() if misses} == {}


PRELOAD_CHILD = """
import json, threading
from socialcredit import kernels
kernels.prepare(70000)
for thread in threading.enumerate():
    if thread.name == "socialcredit-kernels":
        thread.join()
print(json.dumps({name: [sum(d.stats.cache_hits.values()), sum(d.stats.cache_misses.values())]
                  for name, d in vars(kernels._kernels).items()}))
"""


def test_a_failed_preload_leaves_the_kernels_defined(monkeypatch):
    """Numba's cache layout is not public: if reading it fails, the kernels still work (each loads on first call)."""
    monkeypatch.setenv("SOCIALCREDIT_NUMBA", "1")
    monkeypatch.setattr(kernels, "_kernels", None)
    monkeypatch.setattr(kernels, "_tried", False)
    calls = []

    def broken(dispatcher):
        calls.append(dispatcher)
        raise AttributeError("_cache_file")

    monkeypatch.setattr(kernels, "_load_cached", broken)
    kernels._prepare(70_000)
    assert len(calls) == 1  # gives up at the first failure
    got = kernels._fast(kernels.PARALLEL_MIN_NNZ)
    assert got is not None and got is kernels._kernels
    x = np.arange(4.0)
    indptr, indices = np.array([0, 1, 2, 3, 4], dtype=np.int32), np.array([1, 0, 3, 2], dtype=np.int32)
    out = np.empty(4)
    got.matvec(indptr, indices, np.ones(4), x, out)
    np.testing.assert_array_equal(out, [1.0, 0.0, 3.0, 2.0])


def test_take_is_fancy_indexing_for_every_column_type():
    rng = np.random.default_rng(2)
    n = kernels.PARALLEL_MIN_NNZ + 5
    order = rng.permutation(n).astype(np.int32)
    for values in (rng.integers(-9, 9, n).astype(np.int8), rng.integers(0, 99, n).astype(np.int16),
                   rng.integers(0, n, n).astype(np.int32), rng.random(n), rng.random(n) < 0.5):
        taken = kernels.take(values, order)
        assert taken.dtype == values.dtype
        np.testing.assert_array_equal(taken, values[order])
    small = np.arange(10.0)
    np.testing.assert_array_equal(kernels.take(small, np.array([3, 1, 1])), [3.0, 1.0, 1.0])


def test_per_entry_puts_each_tie_value_at_both_of_its_entries(monkeypatch):
    rng = np.random.default_rng(6)
    ties = kernels.PARALLEL_MIN_NNZ
    pos = rng.permutation(2 * ties).astype(np.int32).reshape(2, ties)
    for values in (np.arange(ties, dtype=np.int32), rng.integers(0, 3, ties).astype(np.int8)):
        compiled = kernels.per_entry(pos, values)
        monkeypatch.setattr(kernels, "PARALLEL_MIN_NNZ", 10**15)
        plain = kernels.per_entry(pos, values)
        monkeypatch.undo()
        np.testing.assert_array_equal(compiled, plain)
        np.testing.assert_array_equal(compiled[pos[0]], values)
        np.testing.assert_array_equal(compiled[pos[1]], values)


def test_search_ascending_is_searchsorted_right_with_zero_rates_and_edges():
    rng = np.random.default_rng(8)
    n = kernels.PARALLEL_MIN_NNZ // 8 + 3
    assert kernels._fast_per_citizen(n) is not None
    rates = rng.random(n) * (rng.random(n) < 0.7)  # runs of equal partial sums
    rates[:5] = 0.0
    rates[-5:] = 0.0
    cumulative = np.cumsum(rates)
    total = cumulative[-1]
    for needles in (np.sort(rng.random(50_000)) * total,                      # the sampler's needles
                    np.sort(cumulative[rng.integers(0, n, 2_000)]),           # needles on partial sums
                    np.array([0.0, 0.0, total, total, total * 2]),            # at and beyond the ends
                    np.empty(0)):
        found = kernels.search_ascending(cumulative, needles)
        np.testing.assert_array_equal(found, np.searchsorted(cumulative, needles, side="right"))


@pytest.mark.parametrize("n", [kernels.GUIDE_MIN_CITIZENS, 200_003])
def test_a_guided_search_is_searchsorted_right_for_any_needles(monkeypatch, n):
    """The guide's search (taken for fewer needles than guide entries) finds numpy's indices on runs of equal
    partial sums, a few heavy rates, needles on partial sums, at and beyond both ends, in any order."""
    monkeypatch.setattr(kernels, "REUSE_LOADED", True)
    assert kernels.load()
    rng = np.random.default_rng(9)
    rates = rng.gamma(0.3, 1.0, n) * (rng.random(n) < 0.6)
    rates[:7] = rates[-7:] = 0.0
    rates[rng.integers(0, n, 5)] = 1e4  # one citizen spans many guide entries
    cumulative = np.cumsum(rates)
    total = cumulative[-1]
    guide = kernels.search_guide(cumulative)
    assert guide is not None and guide.starts[-1] == n
    few = n // kernels.GUIDE_CITIZENS - 1
    guided, calls = kernels._kernels.search_guided, []
    monkeypatch.setattr(kernels._kernels, "search_guided", lambda *a: (calls.append(1), guided(*a)))
    for needles in (np.sort(rng.random(few)) * total, rng.random(few) * total,
                    cumulative[rng.integers(0, n, few)], np.nextafter(cumulative[rng.integers(0, n, few)], 0),
                    np.array([0.0, 0.0, total, total, np.nextafter(total, 0), total * 3]), np.empty(0),
                    np.sort(rng.random(n)) * total):  # as many needles as citizens: galloping instead
        found = kernels.search_ascending(cumulative, needles, guide)
        np.testing.assert_array_equal(found, np.searchsorted(cumulative, needles, side="right"))
    assert len(calls) == 6
    assert kernels.search_guide(np.zeros(n)) is None and kernels.search_guide(cumulative[:100]) is None


@pytest.mark.parametrize("weights", ["many", "tie kinds", "tie kinds, prefetched"])
def test_paired_products_are_each_vectors_product_bit_for_bit(weights):
    a = _large_matrix(9, n=kernels.PREFETCH_MIN_CITIZENS + 4_000 if weights.endswith("prefetched") else 40_000)
    rng = np.random.default_rng(10)
    if weights.startswith("tie kinds"):  # few distinct weights: the packed entries are read
        a.data = rng.choice([2.0, 1.0, 0.5, 0.0], size=a.nnz)
    a.data = a.data.astype(np.float32)  # as large cities store them
    assert (kernels.packed_entries(a, kernels._compile()) is None) == (weights == "many")
    vectors = [rng.random(a.shape[0]) * 1000 for _ in range(3)]  # a pair, then one alone
    found = kernels.paired_products(a, vectors)
    assert found is not None and len(found) == 3
    for x, product in zip(vectors, found):
        np.testing.assert_array_equal(product, kernels.matvec(a, x))
        np.testing.assert_array_equal(product, a.astype(np.float64) @ x)
    assert kernels.paired_products(sp.csr_matrix(np.eye(3)), [np.ones(3), np.ones(3)]) is None  # small: apart


def test_a_coupled_score_given_its_first_product_is_the_same(monkeypatch):
    from socialcredit.scenario import Coupling
    from socialcredit.scoring import coupled_score
    a = _large_matrix(11)
    a = (a + a.T).tocsr()
    points = np.random.default_rng(12).random(a.shape[0]) * 1000
    for coupling in (Coupling(kappa=0.3, tolerance=1e-4), Coupling(mode="neighbour_mean", kappa=0.05)):
        for compiled in (True, False):
            if not compiled:
                monkeypatch.setattr(kernels, "PARALLEL_MIN_NNZ", 10**15)
            plain, n_plain = coupled_score(points, a, coupling)
            given, n_given = coupled_score(points, a, coupling, product=kernels.matvec(a, points))
            monkeypatch.undo()
            np.testing.assert_array_equal(given, plain)
            assert n_given == n_plain > 0


def test_chebyshev_step_given_the_product_is_the_compiled_step(monkeypatch):
    n = 70_000
    assert kernels._fast_per_citizen(n) is not None
    a = _large_matrix(13, n)
    rng = np.random.default_rng(14)
    x, previous, base, coef = (rng.random(n) for _ in range(4))
    results = []
    for product in (None, kernels.matvec(a, x)):
        for compiled in (True, False):
            if not compiled:
                monkeypatch.setattr(kernels, "PARALLEL_MIN_NNZ", 10**15)
            jacobi, following = np.empty(n), np.empty(n)
            worst = kernels.chebyshev_step(a, x, previous, base, coef, 1.21, jacobi, following, product=product)
            monkeypatch.undo()
            results.append((worst, jacobi, following))
    for worst, jacobi, following in results[1:]:
        assert worst == results[0][0]
        np.testing.assert_array_equal(jacobi, results[0][1])
        np.testing.assert_array_equal(following, results[0][2])


def test_tie_entries_are_the_stable_sort_of_both_ends(monkeypatch):
    rng = np.random.default_rng(15)
    n, e = 30_000, kernels.PARALLEL_MIN_NNZ // 2 + 11
    src = rng.integers(0, n, e).astype(np.int32)
    dst = rng.integers(0, n, e).astype(np.int32)
    rows = np.concatenate([src, dst])
    expected = np.argsort(rows, kind="stable")
    for compiled in (True, False):
        if not compiled:
            monkeypatch.setattr(kernels, "PARALLEL_MIN_NNZ", 10**15)
        order, indptr, cols, where = kernels.tie_entries(src, dst, n)
        monkeypatch.undo()
        np.testing.assert_array_equal(order, expected)
        np.testing.assert_array_equal(np.diff(indptr), np.bincount(rows, minlength=n))
        np.testing.assert_array_equal(cols, np.concatenate([dst, src])[expected])
        np.testing.assert_array_equal(order[where], np.arange(2 * e))
        assert where.dtype == cols.dtype == np.int32  # as before: positions fit in int32


def test_inverse_permutation_compiled_and_plain(monkeypatch):
    order = np.random.default_rng(16).permutation(kernels.PARALLEL_MIN_NNZ + 3).astype(np.int32)
    compiled = kernels.inverse_permutation(order, np.int64)
    monkeypatch.setattr(kernels, "PARALLEL_MIN_NNZ", 10**15)
    plain = kernels.inverse_permutation(order, np.int64)
    np.testing.assert_array_equal(compiled, plain)
    np.testing.assert_array_equal(order[compiled], np.arange(order.size))
    assert compiled.dtype == np.int64


def test_own_points_and_coupling_terms_compiled_are_the_numpy_formulas(monkeypatch):
    from socialcredit.scenario import Coupling
    from socialcredit.scoring import coupled_score, own_points
    rng = np.random.default_rng(17)
    n = 70_000
    assert kernels._fast_per_citizen(n) is not None
    raw = rng.integers(-500_000, 500_000, n)    # milli-points: clipped at both ends below
    extra = rng.integers(-50_000, 1, n)
    a = _large_matrix(18, n)
    a.data[rng.random(a.nnz) < 0.9] = 0.0        # many rows without an active tie
    results = []
    for compiled in (True, False):
        if not compiled:
            monkeypatch.setattr(kernels, "PARALLEL_MIN_NNZ", 10**15)
        p = own_points(raw, 1000, 600, 1300)
        q = own_points(raw, 1000, 600, 1300, extra_milli=extra)
        s, _ = coupled_score(q, a, Coupling(mode="neighbour_mean", kappa=0.3))
        monkeypatch.undo()
        results.append((p, q, s))
    for x, y in zip(*results):
        np.testing.assert_array_equal(x, y)
    p, q, _ = results[0]
    assert p.min() == 600 and p.max() == 1300 and (q <= p).all()
    np.testing.assert_array_equal(q, np.clip(1000 + (raw + extra) / 1000, 600, 1300))


def test_spill_over_and_active_ends_compiled_and_plain(monkeypatch):
    rng = np.random.default_rng(19)
    n, e = 50_000, kernels.PARALLEL_MIN_NNZ // 2 + 7
    src = rng.integers(0, n, e).astype(np.int32)
    dst = rng.integers(0, n, e).astype(np.int32)
    active = rng.random(e) < 0.8
    ids = np.sort(rng.choice(e, size=e - 100, replace=False))
    mask = rng.random(n) < 0.01
    results = []
    for compiled in (True, False):
        if not compiled:
            monkeypatch.setattr(kernels, "PARALLEL_MIN_NNZ", 10**15)
        first, second = kernels.active_ends(ids, active, src, dst)
        results.append((first, second, kernels.spill_over(first, second, mask)))
        monkeypatch.undo()
    for x, y in zip(*results):
        np.testing.assert_array_equal(x, y)
        assert x.dtype == y.dtype
    first, second, out = results[0]
    keep = ids[active[ids]]
    np.testing.assert_array_equal(first, src[keep])
    expected = np.zeros(n, bool)
    for a, b in zip(first, second):
        expected[b] |= mask[a]
        expected[a] |= mask[b]
    np.testing.assert_array_equal(out, expected)


def test_kernels_defined_in_the_background_are_the_ones_callers_get(monkeypatch):
    """``prepare`` defines the kernels in a thread; a caller meanwhile waits instead of taking the numpy path."""
    import threading
    monkeypatch.setenv("SOCIALCREDIT_NUMBA", "1")
    monkeypatch.setattr(kernels, "_kernels", None)
    monkeypatch.setattr(kernels, "_tried", False)
    started = threading.Event()
    define = kernels._define

    def slow_define():
        started.set()
        import time
        time.sleep(0.3)  # still defining when the caller below asks
        return define()

    monkeypatch.setattr(kernels, "_define", slow_define)
    kernels.prepare(10)  # too small a city: nothing starts
    assert not started.wait(0.1)
    kernels.prepare(kernels.PARALLEL_MIN_NNZ)
    assert started.wait(5)
    got = kernels._fast(kernels.PARALLEL_MIN_NNZ)
    assert got is not None and got is kernels._kernels


def test_add_where_adds_under_the_mask_only():
    rng = np.random.default_rng(12)
    shape = (3, kernels.PARALLEL_MIN_NNZ // 3 + 11)
    mask = rng.random(shape) < 0.4
    for dtype in (np.int32, np.int64):
        target = rng.integers(0, 50, shape).astype(dtype)
        expected = np.where(mask, target + 9, target).astype(dtype)
        kernels.add_where(target, 9, mask)  # compiled: large enough
        np.testing.assert_array_equal(target, expected)
    small = np.zeros((2, 4), np.int32)
    kernels.add_where(small, 3, np.eye(2, 4, dtype=bool))  # numpy
    np.testing.assert_array_equal(small, 3 * np.eye(2, 4, dtype=np.int32))
    strided = np.zeros((4, shape[1]), np.int32)[::2]  # not contiguous: numpy's path, same result
    kernels.add_where(strided, 2, mask[:2])
    np.testing.assert_array_equal(strided, 2 * mask[:2])


def test_rows_summed_again_in_parallel_with_repeats_match_a_fresh_sum():
    rng = np.random.default_rng(13)
    n = kernels.PARALLEL_MIN_NNZ // 4
    a = sp.random(n, n, density=8 / n, random_state=rng, format="csr")
    out = kernels.row_sums(a)
    a.data[rng.random(a.nnz) < 0.3] = 0.0
    rows = rng.integers(0, n, 50_000)
    rows = np.concatenate([rows, rows[:1000]])  # repeated rows, written by several threads
    kernels.row_sums_of(a, rows, out)
    fresh = kernels.row_sums(a)
    np.testing.assert_array_equal(out[rows], fresh[rows])


def test_prefetch_reads_and_writes_nothing():
    numba = pytest.importorskip("numba")
    from socialcredit.intrinsics import prefetch

    @numba.njit
    def summed_with_hints(values, hints):
        total = 0.0
        for i in range(hints.size):
            prefetch(values, hints[i])  # any position of the array, flat
            total += values.flat[i]
        return total

    flat = np.arange(12.0)
    grid = flat.reshape(6, 2).copy()
    for hints in (np.array([11, 0, 5], dtype=np.int32), np.array([3, 7, 1, 2], dtype=np.int64)):
        assert summed_with_hints(flat, hints) == flat[:hints.size].sum()
        assert summed_with_hints(grid, hints) == flat[:hints.size].sum()
    np.testing.assert_array_equal(flat, np.arange(12.0))

    @numba.njit
    def hint_a_number(x):
        prefetch(x, 0)

    with pytest.raises(numba.core.errors.TypingError):
        hint_a_number(1.0)


@pytest.mark.parametrize("n", [3_000, 40_000, kernels.PREFETCH_MIN_CITIZENS + 4_000])
def test_the_compiled_solve_is_the_step_by_step_loop(monkeypatch, n):
    """One compiled call runs scoring's Chebyshev loop: the same iterations and the same bits, small or large
    (from PREFETCH_MIN_CITIZENS on, its passes prefetch, reading the words after the packed entries)."""
    from socialcredit import scoring
    from socialcredit.scenario import Coupling
    rng = np.random.default_rng(21)
    entries = 8 * n if n < 10_000 else kernels.PARALLEL_MIN_NNZ + 1000
    a = sp.csr_matrix((rng.choice([0.0, 0.5, 1.0, 2.0], entries), (rng.integers(0, n, entries),
                       rng.integers(0, n, entries))), shape=(n, n))
    a = (a + a.T).tocsr()
    monkeypatch.setattr(kernels, "REUSE_LOADED", True)
    assert kernels.load()
    points = rng.random(n) * 1200
    for coupling in (Coupling(kappa=0.5, tolerance=1e-6), Coupling(kappa=0.3, tolerance=1e-4)):
        for product in (None, kernels.matvec(a, points)):
            solved, iterations = scoring.coupled_score(points, a, coupling, product=product)
            with monkeypatch.context() as m:
                m.setattr(kernels, "chebyshev_solve", lambda *args: None)
                looped, loop_iterations = scoring.coupled_score(points, a, coupling, product=product)
            np.testing.assert_array_equal(solved, looped)
            assert iterations == loop_iterations > 3
    assert kernels.chebyshev_solve(a, points, points, points, 0.25, 1e-3, None) is not None  # it did run


def test_a_small_city_runs_to_the_same_bytes_with_the_kernels_loaded(reference_path, monkeypatch, tmp_path):
    """Once a process has loaded the kernels, small cities use them too, and write the same run."""
    import socialcredit as sc
    s = sc.load_scenario(reference_path, ["population.size=2000", "days=56"])
    assert 2 * 2000 * 10 < kernels.PARALLEL_MIN_NNZ  # far below the size that imports Numba by itself
    digests = {}
    for reuse in (False, True):
        monkeypatch.setattr(kernels, "REUSE_LOADED", reuse)
        assert (kernels._fast(1) is not None) == (reuse and kernels.load())
        sc.run(s, out=tmp_path / str(reuse))
        digests[reuse] = json.loads((tmp_path / str(reuse) / "manifest.json").read_text())["sha256"]
    assert digests[True] == digests[False]


def _kind_weighted_city(n: int, seed: int, weights=(2.0, 1.0, 0.5)) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    m = 6 * n
    a = sp.coo_matrix((rng.choice(weights, m).astype(np.float32), (rng.integers(0, n, m), rng.integers(0, n, m))),
                      shape=(n, n)).tocsr()
    return (a + a.T).tocsr()


def _assert_solve_is_the_plain_paths(a: sp.csr_matrix, points: np.ndarray, monkeypatch) -> None:
    """The coupled score (kappa 0.5) as the kernels solve it equals, bit for bit and in iterations, the plain path's."""
    from socialcredit import scoring
    from socialcredit.scenario import Coupling
    score, iterations = scoring.coupled_score(points, a, Coupling(kappa=0.5))
    monkeypatch.setattr(kernels, "_compile", lambda: None)
    plain, plain_iterations = scoring.coupled_score(points, a, Coupling(kappa=0.5))
    np.testing.assert_array_equal(score, plain)
    assert iterations == plain_iterations


def test_packed_entries_hold_each_column_and_weight(monkeypatch):
    """Each packed word decodes to its entry's column and weight; a cut tie is the word 0 (weight 0, column 0).

    Ties cut before the entries are packed and ties cut after both end as 0, and the solve on the packed
    entries gives the bits of the plain path's products on the matrix (whose cut entries keep their columns).
    """
    assert kernels.load()
    monkeypatch.setattr(kernels, "REUSE_LOADED", True)
    a = _kind_weighted_city(5_000, 3)
    kernels.zero_entries(a, np.array([0, 7, 11]))  # before packing
    packed = kernels.packed_entries(a, kernels._compile())
    kernels.zero_entries(a, np.array([3, 500, a.nnz - 1]))  # after
    assert packed.entries.size == a.nnz + kernels.PREFETCH_AHEAD and not packed.entries[a.nnz:].any()  # zeros after
    columns = packed.entries[:a.nnz] & np.uint32(2**kernels.PACKED_INDEX_BITS - 1)
    codes = packed.entries[:a.nnz] >> np.uint32(kernels.PACKED_INDEX_BITS)
    cut = np.array([0, 3, 7, 11, 500, a.nnz - 1])
    assert (packed.entries[cut] == 0).all() and packed.table[0] == 0.0
    kept = a.data != 0
    assert kept.sum() == a.nnz - cut.size and (codes[kept] > 0).all()
    np.testing.assert_array_equal(columns[kept], a.indices[kept])
    np.testing.assert_array_equal(packed.table[codes], a.data.astype(np.float64))
    assert kernels.packed_entries(a, kernels._compile()) is packed  # built once
    points = np.random.default_rng(2).random(5_000) * 1200
    assert kernels.chebyshev_solve(a, points, points, points, 0.25, 1.0, None) is not None  # the packed solve runs
    _assert_solve_is_the_plain_paths(a, points, monkeypatch)


def test_too_many_weights_do_not_pack_and_the_solve_still_agrees(monkeypatch):
    """More distinct weights than the codes tell apart: no packed entries, the step-by-step loop solves instead."""
    assert kernels.load()
    monkeypatch.setattr(kernels, "REUSE_LOADED", True)
    a = _kind_weighted_city(3_000, 4, weights=tuple(0.25 * np.arange(1, kernels.PACKED_WEIGHTS + 1)))
    assert kernels.packed_entries(a, kernels._compile()) is None
    assert kernels.chebyshev_solve(a, np.ones(3_000), np.ones(3_000), np.ones(3_000), 0.25, 1e-3, None) is None
    points = np.random.default_rng(5).random(3_000) * 1200
    _assert_solve_is_the_plain_paths(a, points, monkeypatch)


def test_ties_cut_after_a_solve_reach_the_packed_entries(monkeypatch):
    """Cutting ties between two solves changes the packed words too: the next solve is the plain path's, bit for bit."""
    from socialcredit import scoring
    from socialcredit.network import _wrap
    from socialcredit.scenario import Coupling
    assert kernels.load()
    monkeypatch.setattr(kernels, "REUSE_LOADED", True)
    n = 4_000
    rng = np.random.default_rng(8)
    src, dst = rng.integers(0, n, 5 * n), rng.integers(0, n, 5 * n)
    keep = src != dst
    ties = _wrap(src[keep], dst[keep], rng.integers(0, 3, keep.sum()).astype(np.int8), np.array([2.0, 1.0, 0.5]), n)
    points = rng.random(n) * 1200
    coupling = Coupling(kappa=0.5)
    scoring.coupled_score(points, ties.adjacency, coupling, ties.weighted_degree())  # packs the entries
    packed = kernels._matrix_cache(ties.adjacency)["packed"]
    assert packed is not None
    ties.cut(np.arange(0, ties.n_ties, 3), day=7)
    after, _ = scoring.coupled_score(points, ties.adjacency, coupling, ties.weighted_degree())
    assert kernels._matrix_cache(ties.adjacency)["packed"] is packed  # kept in step, not rebuilt
    np.testing.assert_array_equal(packed.table[packed.entries[:-kernels.PREFETCH_AHEAD] >> np.uint32(kernels.PACKED_INDEX_BITS)],
                                  ties.adjacency.data.astype(np.float64))
    monkeypatch.setattr(kernels, "_compile", lambda: None)
    plain, _ = scoring.coupled_score(points, ties.adjacency, coupling, ties.weighted_degree())
    np.testing.assert_array_equal(after, plain)


def test_seed_state_is_numpys_seed_sequence(monkeypatch):
    """The compiled seeding of a stream gives SeedSequence's words for any seed and key, and the same draws."""
    from socialcredit import rng
    monkeypatch.setattr(kernels, "REUSE_LOADED", True)
    assert kernels.load()
    draw = np.random.default_rng(8)
    cases = [(0, (5,)), (1, (5, 0, 0)), (2**32 - 1, (1, 2**32 - 1)), (2**32, (3, 7)), (2**64 + 12345, (9, 2**40, 0)),
             (2**130 + 1, (1,)), (np.int64(42), (np.int16(3), np.uint64(2**63)))]
    for _ in range(500):
        keys = tuple(int(draw.integers(0, 2**32)) >> int(draw.integers(0, 32)) for _ in range(int(draw.integers(0, 5))))
        cases.append((int(draw.integers(0, 2**63)) >> int(draw.integers(0, 63)), (int(draw.integers(1, 10)), *keys)))
    for seed, key in cases:
        want = np.random.SeedSequence(seed, spawn_key=key).generate_state(4, np.uint64)
        np.testing.assert_array_equal(kernels.seed_state(rng._assembled_entropy(seed, key)), want)
    compiled = rng.stream(7, "acts", 3, rng.name_key("petition")).random(8), rng.keyed_base(7, "tie_cut", 4)
    monkeypatch.setattr(kernels, "REUSE_LOADED", False)
    assert kernels.seed_state(rng._assembled_entropy(7, (5,))) is None  # not loaded for this caller: numpy seeds
    plain = rng.stream(7, "acts", 3, rng.name_key("petition")).random(8), rng.keyed_base(7, "tie_cut", 4)
    np.testing.assert_array_equal(compiled[0], plain[0])
    assert compiled[1] == plain[1] and type(compiled[1]) is type(plain[1])
    with pytest.raises(ValueError, match="non-negative"):
        rng._assembled_entropy(-1, (5,))


def test_sort_spread_is_numpys_sort_for_spread_values_and_for_any_others(monkeypatch):
    """The bucket sort returns np.sort's array, serial and in parallel groups, on floats and int keys, and on
    values that are not spread as it was told (crowded, equal, outside the range): those are only slower."""
    monkeypatch.setattr(kernels, "REUSE_LOADED", True)
    assert kernels.load()
    rng = np.random.default_rng(11)
    for n in (0, 1, kernels.SPREAD_SORT_MIN - 1, kernels.SPREAD_SORT_MIN, 1_000, kernels.SPREAD_SORT_PARALLEL_MIN - 1,
              kernels.SPREAD_SORT_PARALLEL_MIN, 400_000):
        high = 312_000 * 311_999
        cases = [(rng.random(n), 0.0, 1.0), (rng.integers(0, high, n), 0, high),
                 (np.minimum(rng.integers(0, 5_000, n), rng.integers(0, 5_000, n)) * 5_000, 0, 5_000**2),  # i < j keys
                 (np.zeros(n), 0.0, 1.0), (np.repeat(rng.random(n // 50 + 1), 50)[:n], 0.0, 1.0),
                 (rng.random(n) * 3.0 - 1.0, 0.0, 1.0), (rng.random(n) ** 8, 0.0, 1.0)]
        for values, low, high_ in cases:
            got = kernels.sort_spread(values, low, high_)
            assert got.dtype == values.dtype
            np.testing.assert_array_equal(got, np.sort(values))
    monkeypatch.setattr(kernels, "REUSE_LOADED", False)
    small = rng.random(100)
    np.testing.assert_array_equal(kernels.sort_spread(small, 0.0, 1.0), np.sort(small))  # numpy's own path


def test_entry_weights_are_each_entrys_kind_weight_compiled_and_plain(monkeypatch):
    """Entries of the tie list (k < e from src, k >= e from dst) get the weight of their tie's kind."""
    rng = np.random.default_rng(12)
    e = kernels.PARALLEL_MIN_NNZ // 2 + 11
    kind = rng.integers(0, 3, e).astype(np.int8)
    weights = np.array([2.0, 1.0, 0.5], np.float32)
    order = rng.permutation(2 * e).astype(np.int32)
    compiled = kernels.entry_weights(kind, weights, order)
    monkeypatch.setattr(kernels, "_fast", lambda size: None)
    plain = kernels.entry_weights(kind, weights, order)
    assert compiled.dtype == plain.dtype == np.float32
    np.testing.assert_array_equal(compiled, plain)
    np.testing.assert_array_equal(compiled[order == 5], weights[kind[5]])
    np.testing.assert_array_equal(compiled[order == e + 5], weights[kind[5]])


def _both_paths(monkeypatch, call):
    """``call()`` with the kernels (sizes at or above the threshold) and on the numpy path."""
    compiled = call()
    monkeypatch.setattr(kernels, "PARALLEL_MIN_NNZ", 10**15)
    plain = call()
    monkeypatch.undo()
    return compiled, plain


@pytest.mark.parametrize("same", [True, False])
def test_pair_keys_are_the_drawn_pairs_keys(monkeypatch, same):
    rng = np.random.default_rng(21)
    k, nb = kernels.PARALLEL_MIN_NNZ + 5, 1_000
    i, j = rng.integers(0, nb, k), rng.integers(0, nb, k)  # about k / nb pairs of a citizen with herself
    prior = np.sort(rng.integers(0, nb * nb, 100))
    compiled, plain = _both_paths(monkeypatch, lambda: kernels.pair_keys(prior, i, j, nb, same))
    if same:
        keep = i != j
        expected = np.minimum(i, j)[keep] * nb + np.maximum(i, j)[keep]
        assert expected.size < k  # the test draws some pairs to drop
    else:
        expected = i * nb + j
    for keys in (compiled, plain):
        assert keys.dtype == np.int64
        np.testing.assert_array_equal(keys, np.concatenate([prior, expected]))


def test_distinct_is_numpy_unique_of_sorted_input(monkeypatch):
    rng = np.random.default_rng(22)
    big = np.sort(rng.integers(0, kernels.PARALLEL_MIN_NNZ // 3, kernels.PARALLEL_MIN_NNZ))
    for keys in (big, np.full(kernels.PARALLEL_MIN_NNZ, 7), np.arange(kernels.PARALLEL_MIN_NNZ)):
        compiled, plain = _both_paths(monkeypatch, lambda keys=keys: kernels.distinct(keys))
        np.testing.assert_array_equal(compiled, np.unique(keys))
        np.testing.assert_array_equal(plain, np.unique(keys))
    kernels.load()
    for keys in (np.empty(0, np.int64), np.array([5]), np.array([1, 1, 2, 2, 2, 9])):
        kernels.REUSE_LOADED = True  # small arrays through the loaded kernels too
        np.testing.assert_array_equal(kernels.distinct(keys), np.unique(keys))


@pytest.mark.parametrize("shares", [[0.15, 0.45, 0.4], [1.0, 2.0, 3.0], [0.3, 0.7], [0.1] * 10])
def test_categories_are_numpy_choice(monkeypatch, shares):
    from socialcredit.rng import stream

    shares = np.array(shares)
    size = kernels.PARALLEL_MIN_NNZ + 3
    expected = stream(3, "tie_kinds").choice(shares.size, size=size, p=shares / shares.sum()).astype(np.int8)
    compiled, plain = _both_paths(monkeypatch, lambda: kernels.categories(shares, stream(3, "tie_kinds"), size))
    np.testing.assert_array_equal(compiled, expected)
    np.testing.assert_array_equal(plain, expected)
    assert compiled.dtype == plain.dtype == np.int8
