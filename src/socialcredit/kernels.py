"""Hot loops of the scoring step, compiled with Numba when it is available.

Both paths give bit-identical results: every row is summed in CSR order,
multiplied and added without fused multiply-add, exactly as scipy's
``csr_matvec`` and numpy do; rows are independent, so the number of threads
cannot change a bit. Set ``SOCIALCREDIT_NUMBA=0`` to force the numpy/scipy
path (the tests compare the two).
"""

from __future__ import annotations

import os

import numpy as np
import scipy.sparse as sp

_USE_NUMBA = os.environ.get("SOCIALCREDIT_NUMBA", "1") != "0"
_jit = None
if _USE_NUMBA:
    try:  # pragma: no cover - exercised when numba is installed
        from numba import njit, prange

        _jit = njit
    except ImportError:  # pragma: no cover
        _jit = None

if _jit is not None:

    @_jit(parallel=True, cache=True, nogil=True)
    def _jacobi_numba(indptr, indices, data, x, base, coef, out, worst):  # pragma: no cover - compiled
        n = indptr.size - 1
        for i in prange(n):
            acc = 0.0
            for p in range(indptr[i], indptr[i + 1]):
                acc += data[p] * x[indices[p]]
            value = base[i] + coef[i] * acc
            out[i] = value
            worst[i] = abs(value - x[i])

    @_jit(parallel=True, cache=True, nogil=True)
    def _matvec_numba(indptr, indices, data, x, out):  # pragma: no cover - compiled
        n = indptr.size - 1
        for i in prange(n):
            acc = 0.0
            for p in range(indptr[i], indptr[i + 1]):
                acc += data[p] * x[indices[p]]
            out[i] = acc
        return out


#: Below this many stored entries the thread start-up costs more than it saves.
PARALLEL_MIN_NNZ = 500_000


if _jit is not None:

    @_jit(cache=True, nogil=True)
    def _counting_sort_numba(rows, n):  # pragma: no cover - compiled
        counts = np.zeros(n + 1, dtype=np.int64)
        for r in rows:
            counts[r + 1] += 1
        for i in range(n):
            counts[i + 1] += counts[i]
        fill = counts[:-1].copy()
        order = np.empty(rows.size, dtype=np.int64)
        for k in range(rows.size):
            r = rows[k]
            order[fill[r]] = k
            fill[r] += 1
        return order, counts


def stable_row_order(rows: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Stable sort of entries by row (a counting sort), and the CSR row pointers.

    Equal to ``np.argsort(rows, kind="stable")``, in linear time when compiled.
    """
    if _jit is not None and rows.size >= PARALLEL_MIN_NNZ:
        return _counting_sort_numba(rows, n)
    order = np.argsort(rows, kind="stable")
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return order, indptr


def _unsigned(indices: np.ndarray) -> np.ndarray:
    """Column indices viewed as unsigned (no copy): spares the compiled loop a negative-index check."""
    return indices.view(np.uint32 if indices.dtype == np.int32 else np.uint64)


def _wide(indptr: np.ndarray) -> np.ndarray:
    """Row pointers as unsigned 64-bit (the compiled loop runs fastest on such a counter)."""
    return indptr.astype(np.uint64, copy=False)


def compiled() -> bool:
    """Whether the compiled kernels are in use."""
    return _jit is not None


def jacobi_step(adjacency: sp.csr_matrix, x: np.ndarray, base: np.ndarray, coef: np.ndarray) -> tuple[np.ndarray, float]:
    """``G(x) = base + coef * (A x)`` and the largest ``|G(x) - x|``."""
    if _jit is not None and adjacency.nnz >= PARALLEL_MIN_NNZ:
        out = np.empty_like(x)
        worst = np.empty_like(x)
        _jacobi_numba(_wide(adjacency.indptr), _unsigned(adjacency.indices), adjacency.data, x, base, coef, out, worst)
        return out, float(worst.max())
    out = base + coef * (adjacency @ x)
    return out, float(np.max(np.abs(out - x))) if x.size else 0.0


def matvec(adjacency: sp.csr_matrix, x: np.ndarray) -> np.ndarray:
    """``A x`` for a CSR matrix and a float64 vector."""
    if _jit is not None and adjacency.nnz >= PARALLEL_MIN_NNZ:
        return _matvec_numba(_wide(adjacency.indptr), _unsigned(adjacency.indices), adjacency.data,
                             np.ascontiguousarray(x, np.float64),
                             np.empty(adjacency.shape[0]))
    return adjacency @ x
