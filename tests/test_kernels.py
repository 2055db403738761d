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


def test_jacobi_step_matches_the_formula_bit_for_bit():
    rng = np.random.default_rng(4)
    nnz = kernels.PARALLEL_MIN_NNZ + 1000
    a = sp.csr_matrix((rng.random(nnz), (rng.integers(0, 40_000, nnz), rng.integers(0, 40_000, nnz))),
                      shape=(40_000, 40_000))
    x, base, coef = rng.random(40_000), rng.random(40_000), rng.random(40_000)
    out, worst = kernels.jacobi_step(a, x, base, coef)
    expected = base + coef * (a @ x)
    np.testing.assert_array_equal(out, expected)
    assert worst == np.max(np.abs(expected - x))
    np.testing.assert_array_equal(kernels.matvec(a, x), a @ x)
