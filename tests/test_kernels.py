"""The compiled kernels give the same bits as the numpy/scipy path."""

import json
import os
import subprocess
import sys

import numpy as np
import scipy.sparse as sp

from socialcredit import kernels

CHILD = """
import json, sys
import socialcredit as sc
from socialcredit import kernels
s = sc.load_scenario(sys.argv[1], ["population.size=60000", "days=14"])
r = sc.run(s, out=sys.argv[2], force=True)
print(json.dumps({"compiled_used": kernels._kernels is not None, "nnz": r.engine.ties.adjacency.nnz}))
"""


def _run(tmp_path, reference_path, numba: str):
    env = dict(os.environ, SOCIALCREDIT_NUMBA=numba)
    out = tmp_path / f"run-{numba}"
    done = subprocess.run([sys.executable, "-c", CHILD, str(reference_path), str(out)], env=env,
                          capture_output=True, text=True, check=True)
    info = json.loads(done.stdout.strip().splitlines()[-1])
    return info, json.loads((out / "manifest.json").read_text())["sha256"]


def test_compiled_and_scipy_paths_write_identical_runs(tmp_path, reference_path):
    compiled_info, compiled = _run(tmp_path, reference_path, "1")
    plain_info, plain = _run(tmp_path, reference_path, "0")
    assert compiled_info["nnz"] >= kernels.PARALLEL_MIN_NNZ  # large enough for the compiled path
    assert compiled_info["compiled_used"] and not plain_info["compiled_used"]
    assert compiled == plain


def test_stable_row_order_equals_stable_argsort():
    rows = np.random.default_rng(3).integers(0, 1000, size=kernels.PARALLEL_MIN_NNZ + 17).astype(np.int32)
    order, indptr = kernels.stable_row_order(rows, 1000)
    np.testing.assert_array_equal(order, np.argsort(rows, kind="stable"))
    np.testing.assert_array_equal(np.diff(indptr), np.bincount(rows, minlength=1000))


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
