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
    def matvec(indptr, indices, data, x, out):  # pragma: no cover - compiled
        for i in prange(indptr.size - 1):
            acc = 0.0
            for p in range(indptr[i], indptr[i + 1]):
                acc += data[p] * x[indices[p]]
            out[i] = acc

    @njit(parallel=True, cache=True, nogil=True)
    def chebyshev(indptr, indices, data, current, previous, base, coef, omega, jacobi, following):  # pragma: no cover
        worst = 0.0
        for i in prange(indptr.size - 1):
            acc = 0.0
            for p in range(indptr[i], indptr[i + 1]):
                acc += data[p] * current[indices[p]]
            value = base[i] + coef[i] * acc
            jacobi[i] = value
            worst = max(worst, abs(value - current[i]))
            following[i] = omega * (value - previous[i]) + previous[i]
        return worst

    @njit(parallel=True, cache=True, nogil=True)
    def row_sums(indptr, data, out):  # pragma: no cover - compiled
        for i in prange(indptr.size - 1):
            acc = 0.0
            for p in range(indptr[i], indptr[i + 1]):
                acc += data[p]
            out[i] = acc

    @njit(parallel=True, cache=True, nogil=True)
    def listed_rows(indptr, indices, data, listed, rows, tie_of, cut_side):  # pragma: no cover - compiled
        # cut_side: tie ids of active ties whose other end is not listed; else neighbours of listed rows.
        # Rows are counted, then filled, in parallel; each row's slice of the output is fixed by the
        # counts before it, so the order is the rows' order whatever the number of threads.
        m = rows.size
        counts = np.zeros(m + 1, dtype=np.int64)
        for j in prange(m):
            r = rows[j]
            c = 0
            for p in range(indptr[r], indptr[r + 1]):
                if data[p] > 0 and (not cut_side or not listed[indices[p]]):
                    c += 1
            counts[j + 1] = c
        for j in range(m):
            counts[j + 1] += counts[j]
        out = np.empty(counts[m], dtype=np.int64)
        for j in prange(m):
            r = rows[j]
            k = counts[j]
            for p in range(indptr[r], indptr[r + 1]):
                if data[p] > 0 and (not cut_side or not listed[indices[p]]):
                    out[k] = tie_of[p] if cut_side else indices[p]
                    k += 1
        return out

    @njit(parallel=True, cache=True, nogil=True)
    def mark_neighbours(indptr, indices, data, rows, out):  # pragma: no cover - compiled
        # every write stores True, so the order of the writes cannot matter
        for j in prange(rows.size):
            r = rows[j]
            for p in range(indptr[r], indptr[r + 1]):
                if data[p] > 0:
                    out[indices[p]] = True

    @njit(cache=True, nogil=True)
    def rows_sums(indptr, data, rows, out):  # pragma: no cover - compiled
        for r in rows:
            acc = 0.0
            for p in range(indptr[r], indptr[r + 1]):
                acc += data[p]
            out[r] = acc

    @njit(cache=True, nogil=True)
    def add_ones(target, first, second):  # pragma: no cover - compiled
        for k in range(first.size):
            target[first[k], second[k]] += 1

    @njit(cache=True, nogil=True)
    def counting_sort(rows, n, order):  # pragma: no cover - compiled
        counts = np.zeros(n + 1, dtype=np.int64)
        for r in rows:
            counts[r + 1] += 1
        for i in range(n):
            counts[i + 1] += counts[i]
        fill = counts[:-1].copy()
        for k in range(rows.size):
            r = rows[k]
            order[fill[r]] = k
            fill[r] += 1
        return order, counts

    _kernels = SimpleNamespace(matvec=matvec, chebyshev=chebyshev, row_sums=row_sums, rows_sums=rows_sums,
                               listed_rows=listed_rows, mark_neighbours=mark_neighbours, add_ones=add_ones,
                               counting_sort=counting_sort)
    return _kernels


def _fast(size: int) -> SimpleNamespace | None:
    return _compile() if size >= PARALLEL_MIN_NNZ else None


def _unsigned(indices: np.ndarray) -> np.ndarray:
    """Indices viewed as unsigned (no copy): spares the compiled loop a negative-index check.

    Row pointers go through it too: as unsigned 32-bit they run as fast as 64-bit
    counters, and a view costs nothing where a widening copy cost 0.6 ms a call on
    a city of 590,000 (the row pointers never change, but were copied every iteration).
    """
    return indices.view(np.uint32 if indices.dtype == np.int32 else np.uint64)


_wide = _unsigned


def chebyshev_step(adjacency: sp.csr_matrix, current: np.ndarray, previous: np.ndarray, base: np.ndarray,
                   coef: np.ndarray, omega: float, jacobi: np.ndarray, following: np.ndarray) -> float:
    """One Chebyshev-accelerated Jacobi step in one pass over the matrix.

    Writes ``jacobi = base + coef * (A current)`` and
    ``following = omega * (jacobi - previous) + previous`` into the given
    buffers and returns the largest ``|jacobi - current|``.
    """
    k = _fast(adjacency.nnz)
    if k is not None:
        return float(k.chebyshev(_wide(adjacency.indptr), _unsigned(adjacency.indices), adjacency.data,
                                 current, previous, base, coef, float(omega), jacobi, following))
    jacobi[:] = base + coef * (adjacency @ current)
    following[:] = omega * (jacobi - previous) + previous
    return float(np.max(np.abs(jacobi - current))) if current.size else 0.0


def row_sums(adjacency: sp.csr_matrix) -> np.ndarray:
    """Row sums of a CSR matrix, each summed in storage order (as scipy's matrix-vector product does)."""
    k = _fast(adjacency.nnz)
    if k is not None:
        out = np.empty(adjacency.shape[0])
        k.row_sums(_wide(adjacency.indptr), adjacency.data, out)
        return out
    return adjacency @ np.ones(adjacency.shape[1])


def active_entries_of_rows(adjacency: sp.csr_matrix, rows: np.ndarray, listed: np.ndarray | None,
                           tie_of: np.ndarray | None) -> np.ndarray:
    """Scan the given rows' active entries (stored value > 0).

    With ``listed`` and ``tie_of``: the tie ids of active entries whose column
    is not listed (unsorted). Otherwise: the columns of the active entries.
    The scan reads only these rows, so its cost grows with them.
    """
    cut_side = listed is not None
    k = _fast(adjacency.nnz) if rows.size else None
    if k is not None:
        no_list = np.zeros(1, dtype=bool)
        no_ties = np.zeros(1, dtype=np.int64)
        return k.listed_rows(_wide(adjacency.indptr), _unsigned(adjacency.indices), adjacency.data,
                             listed if cut_side else no_list, rows.astype(np.int64),
                             tie_of if cut_side else no_ties, cut_side)
    indptr = adjacency.indptr
    starts = indptr[rows].astype(np.int64)
    lengths = indptr[rows + 1].astype(np.int64) - starts
    total = int(lengths.sum())
    offsets = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    pos = offsets + np.arange(total, dtype=np.int64)
    pos = pos[adjacency.data[pos] > 0]
    if not cut_side:
        return adjacency.indices[pos].astype(np.int64)
    pos = pos[~listed[adjacency.indices[pos]]]
    return tie_of[pos].astype(np.int64)


def mark_neighbours(adjacency: sp.csr_matrix, rows: np.ndarray, n: int) -> np.ndarray:
    """Whether each of ``n`` citizens is the column of an active entry in one of the given rows."""
    out = np.zeros(n, dtype=bool)
    k = _fast(adjacency.nnz) if rows.size else None
    if k is not None:
        k.mark_neighbours(_wide(adjacency.indptr), _unsigned(adjacency.indices), adjacency.data,
                          rows.astype(np.int64), out)
    else:
        out[active_entries_of_rows(adjacency, rows, None, None)] = True
    return out


def row_sums_of(adjacency: sp.csr_matrix, rows: np.ndarray, out: np.ndarray) -> None:
    """Recompute ``out[rows]`` as the rows' sums, each in storage order (as :func:`row_sums`)."""
    if rows.size == 0:
        return
    k = _fast(adjacency.nnz)
    if k is not None:
        k.rows_sums(_wide(adjacency.indptr), adjacency.data, rows.astype(np.int64), out)
    else:
        out[rows] = adjacency[rows] @ np.ones(adjacency.shape[1])


def add_ones(target: np.ndarray, first: np.ndarray, second: np.ndarray) -> None:
    """``target[first[k], second[k]] += 1`` for every k, repeated pairs counted (``np.add.at``)."""
    k = _fast(target.size) if first.size else None
    if k is not None:
        k.add_ones(target, first, second)
    else:
        np.add.at(target, (first, second), 1)


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

    Equal to ``np.argsort(rows, kind="stable")``, in linear time when compiled
    (and then as int32 when that fits, to halve the buffer).
    """
    k = _fast(rows.size)
    if k is not None:
        order = np.empty(rows.size, dtype=np.int32 if rows.size < 2**31 else np.int64)
        return k.counting_sort(rows, n, order)
    order = np.argsort(rows, kind="stable")
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return order, indptr


def compiled() -> bool:
    """Whether compiled kernels are available (they are used for large cities only)."""
    return _compile() is not None
