"""Hot loops of the scoring step, compiled with Numba for large cities.

Both paths give bit-identical results: every row is summed in CSR order,
multiplied and added without fused multiply-add, exactly as scipy's
``csr_matvec`` and numpy do; rows are independent, so the number of threads
cannot change a bit. Numba is imported (and the kernels compiled, then cached
on disk) only when a city is large enough to profit, so small runs and
``import socialcredit`` stay quick. Set ``SOCIALCREDIT_NUMBA=0`` to force the
numpy/scipy path (the tests compare the two).
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import scipy.sparse as sp

#: Below this many stored entries the compiled, threaded loops do not pay off.
PARALLEL_MIN_NNZ = 500_000

_kernels: SimpleNamespace | None = None
_tried = False


def _compile() -> SimpleNamespace | None:
    """The compiled kernels, or None when Numba is unavailable or switched off."""
    global _kernels, _tried
    if _tried:
        return _kernels
    _tried = True
    if os.environ.get("SOCIALCREDIT_NUMBA", "1") == "0":
        return None
    try:
        from numba import njit, prange
    except ImportError:  # pragma: no cover - numba is a dependency
        return None

    @njit(parallel=True, cache=True, nogil=True)
    def jacobi(indptr, indices, data, x, base, coef, out, worst):  # pragma: no cover - compiled
        for i in prange(indptr.size - 1):
            acc = 0.0
            for p in range(indptr[i], indptr[i + 1]):
                acc += data[p] * x[indices[p]]
            value = base[i] + coef[i] * acc
            out[i] = value
            worst[i] = abs(value - x[i])

    @njit(parallel=True, cache=True, nogil=True)
    def matvec(indptr, indices, data, x, out):  # pragma: no cover - compiled
        for i in prange(indptr.size - 1):
            acc = 0.0
            for p in range(indptr[i], indptr[i + 1]):
                acc += data[p] * x[indices[p]]
            out[i] = acc

    @njit(cache=True, nogil=True)
    def counting_sort(rows, n):  # pragma: no cover - compiled
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

    _kernels = SimpleNamespace(jacobi=jacobi, matvec=matvec, counting_sort=counting_sort)
    return _kernels


def _fast(size: int) -> SimpleNamespace | None:
    return _compile() if size >= PARALLEL_MIN_NNZ else None


def _unsigned(indices: np.ndarray) -> np.ndarray:
    """Column indices viewed as unsigned (no copy): spares the compiled loop a negative-index check."""
    return indices.view(np.uint32 if indices.dtype == np.int32 else np.uint64)


def _wide(indptr: np.ndarray) -> np.ndarray:
    """Row pointers as unsigned 64-bit (the compiled loop runs fastest on such a counter)."""
    return indptr.astype(np.uint64, copy=False)


def jacobi_step(adjacency: sp.csr_matrix, x: np.ndarray, base: np.ndarray, coef: np.ndarray) -> tuple[np.ndarray, float]:
    """``G(x) = base + coef * (A x)`` and the largest ``|G(x) - x|``."""
    k = _fast(adjacency.nnz)
    if k is not None:
        out = np.empty_like(x)
        worst = np.empty_like(x)
        k.jacobi(_wide(adjacency.indptr), _unsigned(adjacency.indices), adjacency.data, x, base, coef, out, worst)
        return out, float(worst.max())
    out = base + coef * (adjacency @ x)
    return out, float(np.max(np.abs(out - x))) if x.size else 0.0


def matvec(adjacency: sp.csr_matrix, x: np.ndarray) -> np.ndarray:
    """``A x`` for a CSR matrix and a float64 vector."""
    k = _fast(adjacency.nnz)
    if k is not None:
        out = np.empty(adjacency.shape[0])
        k.matvec(_wide(adjacency.indptr), _unsigned(adjacency.indices), adjacency.data,
                 np.ascontiguousarray(x, np.float64), out)
        return out
    return adjacency @ x


def stable_row_order(rows: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Stable sort of entries by row (a counting sort), and the CSR row pointers.

    Equal to ``np.argsort(rows, kind="stable")``, in linear time when compiled.
    """
    k = _fast(rows.size)
    if k is not None:
        return k.counting_sort(rows, n)
    order = np.argsort(rows, kind="stable")
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return order, indptr


def compiled() -> bool:
    """Whether compiled kernels are available (they are used for large cities only)."""
    return _compile() is not None
