"""Hot loops of the engine, compiled with Numba for large cities, each beside its numpy path.

Most are the scoring step's (the solver's passes over the matrix, tie cutting,
grades and lists, row sums); the others are the passes of the build (the CSR's
counting sort, the ring lattice), of the acts (the search for acting citizens),
of the effects (family spill-over) and of the run folder (ordered gathers) that
numpy does slowly at millions of rows.

Both paths give bit-identical results: every row is summed in CSR order,
multiplied and added without fused multiply-add, exactly as scipy's
``csr_matvec`` and numpy do; rows are independent, so the number of threads
cannot change a bit.

Cities of more than :data:`SPLIT_MIN_CITIZENS` citizens sum each row in two
parts: its near entries (column within :data:`FAR_DISTANCE` of the row) in CSR
order, and its far entries in column order; then the two parts are added.
Gathering a far neighbour's score from a vector much larger than the caches
is a trip to memory for every entry. The compiled path instead writes each far
entry's product into a buffer laid out by blocks of :data:`BIN_ROWS` rows,
reading the vector in order (the matrix is symmetric, so row ``j``'s far
entries are column ``j``'s), then adds each block's products into its rows
while those stay in cache: "propagation blocking" (Beamer, Asanovic and
Patterson, 2017). The plain path sums the same two parts in the same orders,
so both still agree bit for bit.

Numba is imported (and the kernels compiled, then cached
on disk) only when a city is large enough to profit, so small runs and
``import socialcredit`` stay quick. Once a process has loaded them (a large
city, :func:`load`, or a sweep worker that runs several cities), small cities
use them as well (:data:`REUSE_LOADED`). Set ``SOCIALCREDIT_NUMBA=0`` to force
the numpy/scipy path (the tests compare the two).
"""

from __future__ import annotations

import os
import threading
import weakref
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import scipy.sparse as sp

#: Below this many stored entries the compiled, threaded loops do not pay off.
PARALLEL_MIN_NNZ = 500_000

#: From this many stored entries on, weights that float32 holds exactly are stored as float32.
COMPACT_WEIGHTS_MIN_NNZ = PARALLEL_MIN_NNZ

#: Cities of more than this many citizens sum near and far entries apart (module docstring).
SPLIT_MIN_CITIZENS = 2**21
#: An entry is far when its column differs from its row by more than this.
FAR_DISTANCE = 2**15
#: Far products are gathered in blocks of this many rows.
BIN_ROWS = 2**16

#: The solver of a city that does not split reads each stored entry as one 32-bit word: the column in
#: the low PACKED_INDEX_BITS, the code of the entry's weight above them (:func:`packed_entries`).
PACKED_INDEX_BITS = 28
#: Weights (0 included) that the codes can tell apart.
PACKED_WEIGHTS = 2 ** (32 - PACKED_INDEX_BITS)

#: Passes that gather through an index (the solver's, the ordered gather, the tie-entry sort) prefetch
#: the value this many positions ahead of the one they read.
PREFETCH_AHEAD = 64
#: Passes over scattered rows prefetch the first entries of the row this many rows ahead (and, twice as
#: far ahead, the row's pointer).
PREFETCH_ROWS_AHEAD = 8
#: The solver's passes prefetch only from this many citizens up: a smaller score vector (512 KiB) stays in
#: the core's own cache, where a prefetch is one more instruction per entry and nothing gained.
PREFETCH_MIN_CITIZENS = 2**16

#: A :func:`search_guide` has one entry per this many citizens, and is made for arrays of at least GUIDE_MIN_CITIZENS.
GUIDE_CITIZENS = 16
GUIDE_MIN_CITIZENS = 1024
#: :func:`sort_spread` leaves shorter arrays to numpy, and sorts longer ones in parallel groups.
SPREAD_SORT_MIN = 64
SPREAD_SORT_PARALLEL_MIN = 2**17

_kernels: SimpleNamespace | None = None
_tried = False
#: ``intrinsics.prefetch`` once Numba is imported: a global, so that kernels calling it stay cacheable.
_prefetch = None
#: The inlined helpers of the solver's kernels (defined in ``_define``): globals for the same reason
#: (a kernel whose closure holds a dispatcher gets a new cache key in every process).
_row_product = None
_packed_row_product = None
_step_row = None
_far_writes = None
_spread_sort = None
_first_above = None
_root = None
_defining = threading.Lock()


def _compile() -> SimpleNamespace | None:
    """The compiled kernels, or None when Numba is unavailable or switched off."""
    global _kernels, _tried
    if _tried:
        return _kernels
    with _defining:  # a caller waits for a definition under way in the background
        if not _tried:
            _kernels = _define()
            _tried = True
    return _kernels


def _switched_off() -> bool:
    """Whether ``SOCIALCREDIT_NUMBA=0`` asks for the numpy/scipy paths only."""
    return os.environ.get("SOCIALCREDIT_NUMBA", "1") == "0"


def prepare(citizens: int) -> None:
    """Import Numba and define the kernels in a background thread, if a city of this size will use them.

    Importing Numba and defining the kernels takes about 0.45 s of Python; the
    engine starts it before building a large city, whose numpy-heavy build
    leaves the interpreter free much of the time. The first caller of a
    kernel waits for it to finish. What the kernels compute does not change.
    """
    if _per_citizen_pays(citizens) and not _tried and not _switched_off():
        # not a daemon: a process that ends early waits for the import rather than cutting it off
        threading.Thread(target=_prepare, args=(citizens,), name="socialcredit-kernels").start()


#: The kernels only cities that sum near and far entries apart call (:func:`splits`).
_SPLIT_ONLY = frozenset({"matvec_split", "chebyshev_split", "far_products", "far_sums", "far_count", "far_layout",
                         "near_first", "invert"})
#: The kernels the build calls: loaded first, since the build needs them first.
_BUILD = ("pair_keys", "spread_sort_parallel", "distinct", "split_keys", "categories", "tie_entries", "ring_ties",
          "counting_sort", "scatter_per_tie")


def _prepare(citizens: int) -> None:
    """Define the kernels, then load what Numba has cached of them (the background half of :func:`prepare`).

    Loading an overload from Numba's disk cache would otherwise happen at the
    kernel's first call, on the engine's thread: about 0.3 s for the first
    (Numba sets up its registries) and 5-10 ms for each of the others. Only
    overloads cached by this machine for this source are loaded, so what a
    call runs is what it would have loaded itself. The lock is not held while
    loading: a caller that arrives first loads its overload itself, under
    Numba's compiler lock.
    """
    k = _compile()
    if k is None:
        return
    names = [name for name in _BUILD + tuple(vars(k)) if splits(citizens) or name not in _SPLIT_ONLY]
    for name in dict.fromkeys(names):
        try:
            _load_cached(getattr(k, name))
        except Exception:  # noqa: BLE001 - Numba's cache layout is not public; a failed preload costs nothing
            return


def _load_cached(dispatcher) -> None:
    """Load every overload of ``dispatcher`` that Numba's disk cache holds for this machine."""
    cache, codegen = dispatcher._cache, dispatcher.targetctx.codegen()
    for key in cache._cache_file._load_index():
        # the whole key (signature, machine, bytecode) matches: compile() will load this overload, not build it
        if key[0] not in dispatcher.overloads and key == cache._index_key(key[0], codegen):
            dispatcher.compile(key[0])


def _define() -> SimpleNamespace | None:
    """Import Numba and define every kernel (each compiled, or loaded from Numba's cache, on first call)."""
    if _switched_off():
        return None
    global _prefetch, _row_product, _packed_row_product, _step_row, _far_writes, _spread_sort, _first_above, _root
    try:
        from numba import njit, prange

        from .intrinsics import prefetch
    except ImportError:  # pragma: no cover - numba is a dependency
        return None
    _prefetch = prefetch
    ahead, rows_ahead, fetch_min = PREFETCH_AHEAD, PREFETCH_ROWS_AHEAD, PREFETCH_MIN_CITIZENS
    column_mask, code_shift = np.uint32(2**PACKED_INDEX_BITS - 1), np.uint32(PACKED_INDEX_BITS)

    @njit(cache=True, nogil=True, inline="always")
    def _row_product(indptr, indices, data, x, i, last):  # pragma: no cover - compiled (binds the global)
        # row i of A x, summed in CSR order; each gather's cache line is asked for `ahead` entries
        # before it is read (intrinsics.prefetch)
        acc = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            _prefetch(x, indices[min(p + ahead, last)])
            acc += data[p] * x[indices[p]]
        return acc

    @njit(cache=True, nogil=True, inline="always")
    def _packed_row_product(indptr, packed, table, x, i, fetch):  # pragma: no cover - compiled (binds the global)
        # _row_product on packed entries: the low PACKED_INDEX_BITS hold the column, the bits above the
        # weight's code in `table` (the same float64 as the float32 weight widened, so the same bits);
        # prefetching only where `fetch`: a vector too large to stay in the core's cache, and the entries
        # followed by `ahead` more words, as PackedEntries keeps them (the callers check), so the word to
        # prefetch is read without bounding its position: one instruction less per entry, 8 % of a pass
        acc = 0.0
        lo, hi = indptr[i], indptr[i + 1]
        if fetch:
            for p in range(lo, hi):
                _prefetch(x, packed[p + ahead] & column_mask)
                entry = packed[p]
                acc += table[entry >> code_shift] * x[entry & column_mask]
        else:
            for p in range(lo, hi):
                entry = packed[p]
                acc += table[entry >> code_shift] * x[entry & column_mask]
        return acc

    @njit(cache=True, nogil=True, inline="always")
    def _step_row(i, acc, current, previous, base, coef, omega, jacobi, following):  # pragma: no cover
        # the Chebyshev step's arithmetic for row i once its product `acc` is known; returns the change
        value = base[i] + coef[i] * acc
        jacobi[i] = value
        following[i] = omega * (value - previous[i]) + previous[i]
        return abs(value - current[i])

    @njit(parallel=True, cache=True, nogil=True)
    def matvec(indptr, indices, data, x, out):  # pragma: no cover - compiled
        last = indices.size - 1
        for i in prange(indptr.size - 1):
            out[i] = _row_product(indptr, indices, data, x, i, last)

    @njit(parallel=True, cache=True, nogil=True)
    def side_by_side(x, y, pair):  # pragma: no cover - compiled
        # two vectors as the rows of an (n, 2) array, so that one gather fetches both of a neighbour's values
        for i in prange(x.size):
            pair[i, 0] = x[i]
            pair[i, 1] = y[i]

    @njit(parallel=True, cache=True, nogil=True)
    def pair_products(indptr, indices, data, pair, x_out, y_out):  # pragma: no cover - compiled
        # the two products of side_by_side's vectors in one pass
        last = indices.size - 1
        for i in prange(indptr.size - 1):
            first = 0.0
            second = 0.0
            for p in range(indptr[i], indptr[i + 1]):
                _prefetch(pair, 2 * np.int64(indices[min(p + ahead, last)]))
                j = indices[p]
                first += data[p] * pair[j, 0]
                second += data[p] * pair[j, 1]
            x_out[i] = first
            y_out[i] = second

    @njit(parallel=True, cache=True, nogil=True)
    def packed_pair_products(indptr, packed, table, pair, x_out, y_out):  # pragma: no cover - compiled
        # pair_products on packed entries (the solver's): the same sums, 4 bytes an entry instead of 8
        n = indptr.size - 1
        fetch = n >= fetch_min and packed.size >= np.int64(indptr[n]) + ahead  # as in _packed_row_product
        for i in prange(n):
            first = 0.0
            second = 0.0
            lo, hi = indptr[i], indptr[i + 1]
            if fetch:
                for p in range(lo, hi):
                    _prefetch(pair, 2 * np.int64(packed[p + ahead] & column_mask))
                    entry = packed[p]
                    weight, j = table[entry >> code_shift], entry & column_mask
                    first += weight * pair[j, 0]
                    second += weight * pair[j, 1]
            else:
                for p in range(lo, hi):
                    entry = packed[p]
                    weight, j = table[entry >> code_shift], entry & column_mask
                    first += weight * pair[j, 0]
                    second += weight * pair[j, 1]
            x_out[i] = first
            y_out[i] = second

    @njit(parallel=True, cache=True, nogil=True)
    def coupling_terms(points, strength, kappa, base, coef):  # pragma: no cover - compiled
        for i in prange(points.size):
            if strength[i] > 0:
                coef[i] = kappa * (1.0 / strength[i])
                base[i] = (1.0 - kappa) * points[i]
            else:
                coef[i] = kappa * 0.0
                base[i] = points[i]

    @njit(parallel=True, cache=True, nogil=True)
    def own_points(raw, extra, start, low, high, milli, out):  # pragma: no cover - compiled
        # extra is added to raw first (integer milli-points), or ignored when it is empty
        with_extra = extra.size > 0
        for i in prange(raw.size):
            total = raw[i] + extra[i] if with_extra else raw[i]
            out[i] = min(max(start + total / milli, low), high)

    @njit(cache=True, nogil=True)
    def spill_over(src, dst, mask, out):  # pragma: no cover - compiled
        for t in range(src.size):
            if mask[src[t]]:
                out[dst[t]] = True
            if mask[dst[t]]:
                out[src[t]] = True

    @njit(cache=True, nogil=True)
    def active_ends(ids, active, src, dst):  # pragma: no cover - compiled
        kept = 0
        for t in ids:
            kept += active[t]
        first, second = np.empty(kept, src.dtype), np.empty(kept, dst.dtype)
        k = 0
        for t in ids:
            if active[t]:
                first[k] = src[t]
                second[k] = dst[t]
                k += 1
        return first, second

    @njit(parallel=True, cache=True, nogil=True)
    def combine(product, current, previous, base, coef, omega, jacobi, following):  # pragma: no cover
        # the Chebyshev step once A current is known
        worst = 0.0
        for i in prange(product.size):
            worst = max(worst, _step_row(i, product[i], current, previous, base, coef, omega, jacobi, following))
        return worst

    @njit(parallel=True, cache=True, nogil=True)
    def chebyshev(indptr, indices, data, current, previous, base, coef, omega, jacobi, following):  # pragma: no cover
        worst = 0.0
        last = indices.size - 1
        for i in prange(indptr.size - 1):
            acc = _row_product(indptr, indices, data, current, i, last)
            worst = max(worst, _step_row(i, acc, current, previous, base, coef, omega, jacobi, following))
        return worst

    @njit(parallel=True, cache=True, nogil=True)
    def solve(indptr, packed, table, start, base, coef, rho2, bound, product, jacobi, spare):  # pragma: no cover
        # scoring._chebyshev's loop in one call: the same steps, omegas and buffer rotation, so the same
        # bits; `product` (A start) stands in for the first pass where it has rows. spare: 3 buffers.
        # The matrix comes as packed entries (pack_entries): 4 bytes an entry instead of 8.
        n = start.size
        # prefetching where the vector outgrows the core's cache and the entries are followed by `ahead` words
        fetch = n >= fetch_min and packed.size >= np.int64(indptr[n]) + ahead
        previous, current, following = start, start, spare[0]
        omega = 1.0
        for iteration in range(1, 10_000):
            worst = 0.0
            if iteration == 1 and product.size == n:
                for i in prange(n):
                    worst = max(worst, _step_row(i, product[i], current, previous, base, coef, omega, jacobi,
                                                following))
            else:
                for i in prange(n):
                    acc = _packed_row_product(indptr, packed, table, current, i, fetch)
                    worst = max(worst, _step_row(i, acc, current, previous, base, coef, omega, jacobi, following))
            if worst < bound:
                return iteration, jacobi
            omega = 2.0 / (2.0 - rho2) if iteration == 1 else 1.0 / (1.0 - rho2 * omega / 4.0)
            # in the first two steps previous is still start, never written into: a spare buffer joins instead
            freed = spare[iteration] if iteration <= 2 else previous
            previous, current, following = current, following, freed
        return iteration, current

    @njit(cache=True, nogil=True)
    def weight_codes(data, table, codes):  # pragma: no cover - compiled
        # each weight's code: its place in `table` (table[0] = 0 on entry), new weights appended; the
        # number of weights in the table, or -1 once there are more than it holds
        used = 1
        for p in range(data.size):
            w = np.float64(data[p])
            c = 0
            while c < used and table[c] != w:
                c += 1
            if c == used:
                if used == table.size:
                    return -1
                table[c] = w
                used += 1
            codes[p] = c
        return used

    @njit(parallel=True, cache=True, nogil=True)
    def pack_entries(indices, codes, packed):  # pragma: no cover - compiled
        # an entry of weight 0 (code 0) is stored as the word 0, column 0: see zero_packed
        for p in prange(indices.size):
            packed[p] = np.uint32(indices[p]) | (np.uint32(codes[p]) << code_shift) if codes[p] else np.uint32(0)

    @njit(cache=True, nogil=True)
    def zero_packed(packed, positions):  # pragma: no cover - compiled
        # code 0 is the weight 0; the column becomes 0 too, so a cut tie's gather reads x[0], which stays
        # in every core's cache, instead of a line from anywhere in the vector: 0 * x[0] adds the same
        # +0.0 as 0 * x[j] (scores are finite), and Rongcheng ends its year with a fifth of its ties cut
        for k in range(positions.size):
            packed[positions[k]] = 0

    @njit(parallel=True, cache=True, nogil=True)
    def far_products(indptr, x, data, far_start, tslot, vals):  # pragma: no cover - compiled
        # row j's far entries are the tail of its row; entry (j, i) has the weight of (i, j),
        # so its product for row i is data * x[j]
        for j in prange(far_start.size - 1):
            xj = x[j]
            k = far_start[j]
            end = np.int64(indptr[j + 1])
            for p in range(end - (far_start[j + 1] - far_start[j]), end):
                vals[tslot[k]] = data[p] * xj
                k += 1

    @njit(parallel=True, cache=True, nogil=True)
    def far_sums(far_start, slot_row, vals, bin_rows, out):  # pragma: no cover - compiled
        # each block's slots follow the columns, so every row's far products are added in column order
        n = far_start.size - 1
        for b in prange((n + bin_rows - 1) // bin_rows):
            first, last = b * bin_rows, min(n, (b + 1) * bin_rows)
            for i in range(first, last):
                out[i] = 0.0
            for q in range(far_start[first], far_start[last]):
                out[slot_row[q]] += vals[q]

    @njit(cache=True, nogil=True, inline="always")
    def _far_writes(i, value, split, end, data, far_start, tslot, vals):  # pragma: no cover - compiled
        # row i's far entries (split..end) give their transposed rows the products data * value
        first = far_start[i] - split
        last_slot = tslot.size - 1
        for p in range(split, end):
            _prefetch(vals, tslot[min(first + p + ahead, last_slot)])
            vals[tslot[first + p]] = data[p] * value

    @njit(parallel=True, cache=True, nogil=True)
    def chebyshev_split(indptr, indices, data, current, previous, base, coef, omega, jacobi, following,
                        far, far_start, tslot, vals):  # pragma: no cover - compiled
        # a row's near entries lead it, its far ones follow; far[i] is row i's far sum. The step also
        # writes the far products of the next iterate (following) while the row is in cache. Rows go in
        # pairs whose near sums advance side by side, each still in CSR order: two chains of additions
        # at a time instead of one, which a single row's chain left the processor waiting on.
        n = indptr.size - 1
        worst = 0.0
        for h in prange((n + 1) // 2):
            i = 2 * h
            start = np.int64(indptr[i])
            end = np.int64(indptr[i + 1])
            split = end - (far_start[i + 1] - far_start[i])
            acc = 0.0
            acc_b = 0.0
            end_b = end  # the pair's second row (none after the last row of an odd count)
            split_b = end
            if i + 1 < n:
                end_b = np.int64(indptr[i + 2])
                split_b = end_b - (far_start[i + 2] - far_start[i + 1])
                common = min(split - start, split_b - end)
                for q in range(common):
                    acc += data[start + q] * current[indices[start + q]]
                    acc_b += data[end + q] * current[indices[end + q]]
                for p in range(end + common, split_b):
                    acc_b += data[p] * current[indices[p]]
                start += common
            for p in range(start, split):
                acc += data[p] * current[indices[p]]
            worst = max(worst, _step_row(i, acc + far[i], current, previous, base, coef, omega, jacobi, following))
            _far_writes(i, following[i], split, end, data, far_start, tslot, vals)
            if i + 1 < n:
                worst = max(worst, _step_row(i + 1, acc_b + far[i + 1], current, previous, base, coef, omega, jacobi,
                                             following))
                _far_writes(i + 1, following[i + 1], split_b, end_b, data, far_start, tslot, vals)
        return worst

    @njit(parallel=True, cache=True, nogil=True)
    def matvec_split(indptr, indices, data, x, out, far, far_start):  # pragma: no cover - compiled
        for i in prange(indptr.size - 1):
            acc = 0.0
            for p in range(np.int64(indptr[i]), np.int64(indptr[i + 1]) - (far_start[i + 1] - far_start[i])):
                acc += data[p] * x[indices[p]]
            out[i] = acc + far[i]

    @njit(parallel=True, cache=True, nogil=True)
    def far_count(indptr, indices, distance, counts):  # pragma: no cover - compiled
        # the far entries of a row, which must all follow its near ones (else a negative count)
        for i in prange(indptr.size - 1):
            c = 0
            for p in range(indptr[i], indptr[i + 1]):
                if abs(np.int64(indices[p]) - np.int64(i)) > distance:
                    c += 1
                elif c > 0:
                    c = -(indptr.size + 1)  # a near entry after a far one
            counts[i + 1] = c

    @njit(cache=True, nogil=True)
    def far_layout(indptr, indices, bin_rows, far_start, tslot, slot_row):  # pragma: no cover - compiled
        n = indptr.size - 1
        cursor = np.empty((n + bin_rows - 1) // bin_rows, dtype=np.int64)
        for b in range(cursor.size):
            cursor[b] = far_start[b * bin_rows]
        # rows j in order: each far entry (j, i) gives row i's product from column j the next slot of
        # i's block, so inside a block the slots follow the columns
        for j in range(n):
            k = far_start[j]
            end = np.int64(indptr[j + 1])
            for p in range(end - (far_start[j + 1] - far_start[j]), end):
                i = np.int64(indices[p])
                slot = cursor[i // bin_rows]
                cursor[i // bin_rows] += 1
                tslot[k] = slot
                slot_row[slot] = i
                k += 1

    @njit(cache=True, nogil=True)
    def near_first(indptr, cols, order, distance):  # pragma: no cover - compiled
        # inside every row, a stable partition: near entries first, then far ones
        width = np.int64(0)
        for i in range(indptr.size - 1):
            width = max(width, np.int64(indptr[i + 1]) - np.int64(indptr[i]))
        far_cols = cols[:width].copy()
        far_order = order[:width].copy()
        for i in range(indptr.size - 1):
            w = np.int64(indptr[i])
            f = 0
            for p in range(np.int64(indptr[i]), np.int64(indptr[i + 1])):
                if abs(np.int64(cols[p]) - i) > distance:
                    far_cols[f] = cols[p]
                    far_order[f] = order[p]
                    f += 1
                else:
                    cols[w] = cols[p]
                    order[w] = order[p]
                    w += 1
            for q in range(f):
                cols[w + q] = far_cols[q]
                order[w + q] = far_order[q]

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
    def cut_and_fear(indptr, indices, data, listed, rows, tie_of, entry_kind, cut_p, base, feared):  # pragma: no cover
        # one scan of the listed rows: an active tie to an unlisted neighbour is cut when its keyed uniform is
        # below its kind's probability; every active entry left marks its column as feared (True writes only).
        # Each row writes its cut ties into its own stretch of a buffer (as long as the row), so the output
        # comes in the rows' order on any number of threads.
        m = rows.size
        start = np.zeros(m + 1, dtype=np.int64)
        for j in range(m):
            start[j + 1] = start[j] + (np.int64(indptr[rows[j] + 1]) - np.int64(indptr[rows[j]]))
        buffer = np.empty(start[m], dtype=np.int64)
        counts = np.zeros(m, dtype=np.int64)
        for j in prange(m):
            # the rows are scattered: the start of a later row is prefetched (its pointer first)
            if j + 2 * rows_ahead < m:
                _prefetch(indptr, rows[j + 2 * rows_ahead])
            if j + rows_ahead < m:
                ahead_start = indptr[rows[j + rows_ahead]]
                _prefetch(indices, ahead_start)
                _prefetch(data, ahead_start)
                _prefetch(tie_of, ahead_start)
                _prefetch(entry_kind, ahead_start)
            r = rows[j]
            k = start[j]
            for p in range(indptr[r], indptr[r + 1]):
                if data[p] > 0:
                    col = indices[p]
                    if not listed[col]:
                        t = tie_of[p]
                        # rng.uniform_of_keys of this tie, written out: a cached kernel may not call
                        # another compiled closure (its cache would never be found again)
                        z = np.uint64(t) * np.uint64(0x9E3779B97F4A7C15) + base
                        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
                        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
                        z = z ^ (z >> np.uint64(31))
                        if np.float64(z >> np.uint64(11)) * (1.0 / 9007199254740992.0) < cut_p[entry_kind[p]]:
                            buffer[k] = t
                            k += 1
                            continue
                    feared[col] = True
            counts[j] = k - start[j]
        total = 0
        for j in range(m):
            total += counts[j]
        out = np.empty(total, dtype=np.int64)
        k = 0
        for j in range(m):
            for q in range(start[j], start[j] + counts[j]):
                out[k] = buffer[q]
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

    @njit(parallel=True, cache=True, nogil=True)
    def rows_sums(indptr, data, rows, out):  # pragma: no cover - compiled
        # a row listed twice is summed twice, each time to the same value, so the threads' writes agree
        m = rows.size
        for j in prange(m):
            if j + 2 * rows_ahead < m:  # scattered rows: a later row's pointer, then its weights, are prefetched
                _prefetch(indptr, rows[j + 2 * rows_ahead])
            if j + rows_ahead < m:
                _prefetch(data, indptr[rows[j + rows_ahead]])
            r = rows[j]
            acc = 0.0
            for p in range(indptr[r], indptr[r + 1]):
                acc += data[p]
            out[r] = acc

    @njit(parallel=True, cache=True, nogil=True)
    def add_where(target, value, mask):  # pragma: no cover - compiled
        # without a branch: a mask of random flags mispredicts half its branches (4-8 ms against
        # 1.2-1.7 ms for 9 x 590,000 flags), and the loop vectorises
        for i in prange(target.size):
            target[i] += value * mask[i]

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

    @njit(cache=True, nogil=True)
    def tie_entries(src, dst, n, order, cols, where):  # pragma: no cover - compiled
        # the counting sort of rows = src then dst, writing each entry's column and position as it goes
        e = src.size
        counts = np.zeros(n + 1, dtype=np.int64)
        for k in range(e):
            counts[src[k] + 1] += 1
            counts[dst[k] + 1] += 1
        for i in range(n):
            counts[i + 1] += counts[i]
        fill = counts[:-1].copy()
        for k in range(e):
            p = fill[src[k]]
            fill[src[k]] = p + 1
            order[p] = k
            cols[p] = dst[k]
            where[k] = p
        # the ties come ordered by src, so only this pass writes all over the arrays: each row's next
        # slot is prefetched two steps ahead (its fill counter, then the slot the counter points at)
        for k in range(e):
            if k + 2 * ahead < e:
                _prefetch(fill, dst[k + 2 * ahead])
            if k + ahead < e:
                q = fill[dst[k + ahead]]
                _prefetch(order, q)
                _prefetch(cols, q)
            p = fill[dst[k]]
            fill[dst[k]] = p + 1
            order[p] = e + k
            cols[p] = src[k]
            where[e + k] = p
        return counts

    @njit(parallel=True, cache=True, nogil=True)
    def invert(order, where):  # pragma: no cover - compiled
        for i in prange(order.size):
            where[order[i]] = i

    @njit(cache=True, nogil=True)
    def ring_ties(rewired, n):  # pragma: no cover - compiled
        # ring tie (u, d) joins u and u + d + 1 round the ring: the keys lo * n + hi of the unrewired ones
        # (in tie order) and the two ends of the rewired ones (in tie order)
        half = rewired.shape[1]
        moved = 0
        for u in range(n):
            for d in range(half):
                if rewired[u, d]:
                    moved += 1
        keys = np.empty(n * half - moved, dtype=np.int64)
        start = np.empty(moved, dtype=np.int64)
        end = np.empty(moved, dtype=np.int64)
        k = 0
        m = 0
        for u in range(n):
            for d in range(half):
                v = u + d + 1
                if v >= n:
                    v -= n
                if rewired[u, d]:
                    start[m] = u
                    end[m] = v
                    m += 1
                else:
                    keys[k] = min(u, v) * np.int64(n) + max(u, v)
                    k += 1
        return keys, start, end

    @njit(parallel=True, cache=True, nogil=True)
    def split_keys(keys, n, lo, hi):  # pragma: no cover - compiled
        for i in prange(keys.size):
            q = keys[i] // n
            lo[i] = q
            hi[i] = keys[i] - q * n

    @njit(cache=True, nogil=True)
    def pair_keys(prior, i, j, nb, same):  # pragma: no cover - compiled
        # prior, then the key i * nb + j of each drawn pair (for `same`, the pair's smaller end first and
        # pairs of one citizen dropped): one pass and one array, where numpy made seven temporaries
        kept = i.size
        if same:
            for t in range(i.size):
                kept -= i[t] == j[t]
        out = np.empty(prior.size + kept, np.int64)
        # copied element by element: an array assigned to a slice compiles numpy's shape-mismatch message,
        # and with it Numba's strings (3.5 s of a first run's compiling)
        for t in range(prior.size):
            out[t] = prior[t]
        w = prior.size
        for t in range(i.size):
            a, b = i[t], j[t]
            if same:
                if a == b:
                    continue
                if b < a:
                    a, b = b, a
            out[w] = a * nb + b
            w += 1
        return out

    @njit(cache=True, nogil=True)
    def categories(cdf, uniforms, out):  # pragma: no cover - compiled
        # each uniform's category: how many of the cumulative shares are at or below it
        for t in range(uniforms.size):
            c = 0
            for b in range(cdf.size):
                c += cdf[b] <= uniforms[t]
            out[t] = c

    @njit(cache=True, nogil=True)
    def distinct(keys):  # pragma: no cover - compiled
        # the distinct values of a sorted array, in order
        kept = min(keys.size, 1)
        for t in range(1, keys.size):
            kept += keys[t] != keys[t - 1]
        out = np.empty(kept, keys.dtype)
        w = 0
        for t in range(keys.size):
            if t == 0 or keys[t] != keys[t - 1]:
                out[w] = keys[t]
                w += 1
        return out

    @njit(parallel=True, cache=True, nogil=True)
    def grades_and_lists(score, points_true, points, mins, black_grade, red_grade, serious_blacklists,
                         serious_true, serious_false, tracked, named_grades, grade, black, red, cause,
                         named):  # pragma: no cover - compiled; lists.assign_lists on the three grades
        top = mins.size - 1
        for i in prange(score.size):
            # scoring.grade_index of the three values: the last grade less the thresholds reached
            reached, reached_true, reached_own = 0, 0, 0
            for m in mins:
                reached += score[i] >= m
                reached_true += points_true[i] >= m
                reached_own += points[i] >= m
            g = min(max(mins.size - reached, 0), top)
            grade[i] = g
            true_serious = serious_blacklists and serious_true[i] > 0
            false_serious = serious_blacklists and serious_false[i] > 0
            b = black_grade[g] or true_serious or false_serious
            black[i] = b
            red[i] = red_grade[g] and not b
            if not b:
                cause[i] = 0
            elif black_grade[min(max(mins.size - reached_true, 0), top)] or true_serious:
                cause[i] = 1
            elif black_grade[min(max(mins.size - reached_own, 0), top)] or false_serious:
                cause[i] = 2
            else:
                cause[i] = 3
            for k in range(named_grades.shape[0]):
                named[k, i] = named_grades[k, g] or tracked[k, i] > 0

    @njit(cache=True, nogil=True)
    def changed_rows(new_grade, old_grade, new_black, old_black, new_red, old_red, new_cause, old_cause, score,
                     logged, resolution):  # pragma: no cover - compiled
        out = np.empty(score.size, dtype=np.int64)
        k = 0
        for i in range(score.size):
            if (new_grade[i] != old_grade[i] or new_black[i] != old_black[i] or new_red[i] != old_red[i]
                    or new_cause[i] != old_cause[i] or abs(score[i] - logged[i]) >= resolution):
                out[k] = i
                k += 1
        return out[:k].copy()

    @njit(parallel=True, cache=True, nogil=True)
    def scatter_per_tie(pos, values, out):  # pragma: no cover - compiled
        # each position belongs to one tie, so every slot is written once, by one thread
        for t in prange(pos.shape[1]):
            out[pos[0, t]] = values[t]
            out[pos[1, t]] = values[t]

    @njit(parallel=True, cache=True, nogil=True)
    def gather(values, order, out):  # pragma: no cover - compiled
        last = order.size - 1
        for i in prange(order.size):
            _prefetch(values, order[min(i + ahead, last)])
            out[i] = values[order[i]]

    @njit(parallel=True, cache=True, nogil=True)
    def entry_weights(kind, weights, order, out):  # pragma: no cover - compiled
        # entry p's weight: that of the kind of its tie (entry k < e is tie k, entry k >= e tie k - e)
        e = kind.size
        last = order.size - 1
        for p in prange(order.size):
            later = order[min(p + ahead, last)]
            _prefetch(kind, later - e if later >= e else later)
            k = order[p]
            out[p] = weights[kind[k - e if k >= e else k]]

    @njit(cache=True, nogil=True, inline="always")
    def _first_above(cumulative, v, a, b):  # pragma: no cover - compiled (binds the global)
        # the first index in a..b whose value exceeds v, where that index is known to lie in a..b
        while a < b:
            half = (a + b) >> 1
            if cumulative[half] <= v:
                a = half + 1
            else:
                b = half
        return a

    @njit(cache=True, nogil=True)
    def search_ascending(cumulative, needles, out):  # pragma: no cover - compiled
        # first index whose value exceeds each needle; needles ascend, so each search gallops forward
        # from the last answer (a few steps within cache) instead of halving the whole array
        n = cumulative.size
        lo = 0
        for t in range(needles.size):
            v = needles[t]
            if lo < n and cumulative[lo] <= v:
                step = 1
                hi = lo + 1
                while hi < n and cumulative[hi] <= v:
                    lo = hi
                    step *= 2
                    hi = lo + step
                lo = _first_above(cumulative, v, lo + 1, min(hi, n))  # cumulative[lo] <= v
            out[t] = lo

    @njit(cache=True, nogil=True)
    def guide_of(cumulative, scale, starts):  # pragma: no cover - compiled
        # starts[g]: the first index whose int(cumulative * scale) reaches g (g up to starts.size - 2, the
        # map capped there), or cumulative.size; the last entry is always cumulative.size
        n = cumulative.size
        top = starts.size - 2
        g = 0
        for i in range(n):
            c = min(np.int64(cumulative[i] * scale), top)
            while g <= c:
                starts[g] = i
                g += 1
        while g < starts.size:
            starts[g] = n
            g += 1
        starts[starts.size - 1] = n

    @njit(cache=True, nogil=True)
    def search_guided(cumulative, starts, scale, needles, out):  # pragma: no cover - compiled
        # search_ascending by a guide (guide_of): the first index whose value exceeds a needle v lies between
        # starts[g] and starts[g + 1] for g = int(v * scale), a few entries apart; each needle is searched
        # on its own, so the processor overlaps the searches of many (no needle waits for the last). The
        # arrays are cold (a type's are read once a week): the guide entry of the needle 16 ahead is
        # prefetched, and the first entries it points at for the needle 8 ahead.
        top = starts.size - 2
        m = needles.size
        last = cumulative.size - 1
        for t in range(m):
            if t + 16 < m:
                _prefetch(starts, min(max(np.int64(needles[t + 16] * scale), 0), top))
            if t + 8 < m:
                ahead = starts[min(max(np.int64(needles[t + 8] * scale), 0), top)]
                _prefetch(cumulative, min(ahead, last))
                _prefetch(cumulative, min(ahead + 8, last))
            v = needles[t]
            g = min(max(np.int64(v * scale), 0), top)
            out[t] = _first_above(cumulative, v, starts[g], starts[g + 1])

    @njit(cache=True, nogil=True, inline="always")
    def _spread_sort(values, low, scale, out, counts):  # pragma: no cover - compiled (binds the global)
        # values, whose (v - low) * scale spread evenly over [0, 1), sorted into out: each is placed in one
        # of about values.size / 2 buckets by that mapping (monotone, so every bucket's values lie between
        # its neighbours'), then an insertion sort moves each only past the others of its bucket.
        # A crowded bucket (values not spread as promised) returns False, out unsorted: the caller sorts
        # with numpy instead (np.sort compiled here cost 2.5 s of the first run's compiling).
        m = values.size
        buckets = max(1, m >> 1)
        counts[:buckets + 1] = 0
        for k in range(m):
            counts[min(max(np.int64((values[k] - low) * scale * buckets), 0), buckets - 1) + 1] += 1
        crowded = 0
        for b in range(buckets):
            crowded = max(crowded, counts[b + 1])
            counts[b + 1] += counts[b]
        if crowded > 64:
            return False
        for k in range(m):
            b = min(max(np.int64((values[k] - low) * scale * buckets), 0), buckets - 1)
            out[counts[b]] = values[k]
            counts[b] += 1
        for k in range(1, m):
            v = out[k]
            j = k
            while j > 0 and out[j - 1] > v:
                out[j] = out[j - 1]
                j -= 1
            out[j] = v
        return True

    @njit(cache=True, nogil=True)
    def spread_sort(values, low, high, out):  # pragma: no cover - compiled
        # np.sort(values) into out, for values spread evenly over [low, high); False where a bucket is crowded
        counts = np.empty(values.size // 2 + 2, np.int64)
        return _spread_sort(values, low, 1.0 / (high - low), out, counts)

    @njit(parallel=True, cache=True, nogil=True)
    def spread_sort_parallel(values, low, high, out):  # pragma: no cover - compiled
        # spread_sort for millions of values: first into groups of about 8,192 by the same kind of monotone
        # map (a group's values lie between its neighbours'), then each group sorted on its own, in parallel
        n = values.size
        groups = max(1, n >> 13)
        scale = groups / (high - low)
        start = np.zeros(groups + 1, np.int64)
        for k in range(n):
            start[min(max(np.int64((values[k] - low) * scale), 0), groups - 1) + 1] += 1
        for g in range(groups):
            start[g + 1] += start[g]
        fill = start[:-1].copy()
        grouped = np.empty_like(values)
        even = np.ones(groups, np.bool_)  # each group spread as promised
        for k in range(n):
            g = min(max(np.int64((values[k] - low) * scale), 0), groups - 1)
            grouped[fill[g]] = values[k]
            fill[g] += 1
        for g in prange(groups):
            a, b = start[g], start[g + 1]
            counts = np.empty((b - a) // 2 + 2, np.int64)
            # values of group g have (v - low) * scale in [g, g + 1): the bucket map of the group
            even[g] = _spread_sort(grouped[a:b], low + g / scale, scale, out[a:b], counts)
        return even.all()

    mask32, xshift = np.uint64(0xFFFFFFFF), np.uint64(16)
    init_a, mult_a = np.uint64(0x43B0D7E5), np.uint64(0x931E8875)
    init_b, mult_b = np.uint64(0x8B51F9DD), np.uint64(0x58F38DED)
    mix_l, mix_r = np.uint64(0xCA01F9DD), np.uint64(0x4973F715)

    @njit(cache=True, nogil=True)
    def seed_state(entropy, out):  # pragma: no cover - compiled
        # numpy's SeedSequence (a pool of 4 words) mixing an assembled entropy array, then its
        # generate_state(out.size, np.uint64): two 32-bit words to each output word, low word first.
        # 32-bit arithmetic in uint64 values masked to 32 bits; no helper functions, whose dispatchers
        # in the closure would give the kernel a new cache key in every process.
        pool = np.zeros(4, np.uint64)
        h = init_a
        # each step hashes one word (SeedSequence's hashmix), then mixes it into a pool word (mix);
        # steps 0-3 fill the pool, then every pool word is mixed into every other, then the rest
        steps = 4 + 12 + 4 * max(entropy.size - 4, 0)
        for step in range(steps):
            if step < 4:
                value, dst = (np.uint64(entropy[step]) if step < entropy.size else np.uint64(0)), step
            elif step < 16:
                src, dst = (step - 4) // 3, (step - 4) % 3
                dst += dst >= src
                value = pool[src]
            else:
                value, dst = np.uint64(entropy[4 + (step - 16) // 4]), (step - 16) % 4
            value = (value ^ h) & mask32
            h = (h * mult_a) & mask32
            value = (value * h) & mask32
            value ^= value >> xshift
            if step < 4:
                pool[dst] = value
            else:
                mixed = (mix_l * pool[dst] - mix_r * value) & mask32
                pool[dst] = mixed ^ (mixed >> xshift)
        h = init_b
        for k in range(2 * out.size):
            value = pool[k % 4] ^ h
            h = (h * mult_b) & mask32
            value = (value * h) & mask32
            value ^= value >> xshift
            if k % 2 == 0:
                out[k // 2] = value
            else:
                out[k // 2] |= value << np.uint64(32)

    @njit(cache=True, nogil=True)
    def median(values):  # pragma: no cover - compiled
        # np.median's value: the middle of a copy by a selection (Hoare's partition, median-of-three pivots),
        # the middle two of an even count averaged as (a + b) / 2, as numpy's mean of two does. Written out
        # rather than Numba's np.median, whose generic selection took 1.1 s of a first run's compiling.
        a = values.copy()
        n = a.size
        k = n // 2
        lo, hi = 0, n - 1
        while hi > lo:
            mid = (lo + hi) // 2
            if a[mid] < a[lo]:
                a[mid], a[lo] = a[lo], a[mid]
            if a[hi] < a[lo]:
                a[hi], a[lo] = a[lo], a[hi]
            if a[hi] < a[mid]:
                a[hi], a[mid] = a[mid], a[hi]
            pivot = a[mid]
            i, j = lo, hi
            while i <= j:
                while a[i] < pivot:
                    i += 1
                while a[j] > pivot:
                    j -= 1
                if i <= j:
                    a[i], a[j] = a[j], a[i]
                    i += 1
                    j -= 1
            # a[lo..j] <= pivot <= a[i..hi], and what lies between equals the pivot
            if k <= j:
                hi = j
            elif k >= i:
                lo = i
            else:
                break
        upper = a[k]  # everything before it is no larger
        if n % 2:
            return upper
        lower = a[0]
        for q in range(1, k):
            lower = max(lower, a[q])
        return (lower + upper) / 2

    @njit(cache=True, nogil=True, inline="always")
    def _root(parent, x):  # pragma: no cover - compiled (binds the global)
        # audit._find: the root of x's set, every node on the way pointed at it
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            following = parent[x]
            parent[x] = root
            x = following
        return root

    @njit(cache=True, nogil=True)
    def union_ties(parent, size, a, b, starts, ends, best, out):  # pragma: no cover - compiled
        # audit._union_all over each stretch starts[s]:ends[s] of the ties in turn: each tie joins its ends'
        # sets (the larger keeps its root); out[s] is the largest set's size after stretch s
        for s in range(starts.size):
            for t in range(starts[s], ends[s]):
                ru, rv = _root(parent, np.int64(a[t])), _root(parent, np.int64(b[t]))
                if ru != rv:
                    if size[ru] < size[rv]:
                        ru, rv = rv, ru
                    parent[rv] = ru
                    size[ru] += size[rv]
                    best = max(best, size[ru])
            out[s] = best

    return SimpleNamespace(median=median, spill_over=spill_over, active_ends=active_ends, coupling_terms=coupling_terms,
                           add_where=add_where, own_points=own_points, tie_entries=tie_entries, invert=invert,
                           side_by_side=side_by_side, pair_products=pair_products, packed_pair_products=packed_pair_products,
                           combine=combine, search_ascending=search_ascending, gather=gather,
                           spread_sort=spread_sort, spread_sort_parallel=spread_sort_parallel, guide_of=guide_of,
                           search_guided=search_guided, entry_weights=entry_weights,
                           scatter_per_tie=scatter_per_tie, ring_ties=ring_ties, split_keys=split_keys,
                           grades_and_lists=grades_and_lists, changed_rows=changed_rows, matvec=matvec,
                           chebyshev=chebyshev, row_sums=row_sums, rows_sums=rows_sums, listed_rows=listed_rows,
                           mark_neighbours=mark_neighbours, add_ones=add_ones, cut_and_fear=cut_and_fear,
                           counting_sort=counting_sort, far_products=far_products, far_sums=far_sums,
                           chebyshev_split=chebyshev_split, matvec_split=matvec_split, far_count=far_count,
                           far_layout=far_layout, near_first=near_first, solve=solve, weight_codes=weight_codes,
                           pack_entries=pack_entries, zero_packed=zero_packed, seed_state=seed_state,
                           union_ties=union_ties, pair_keys=pair_keys, distinct=distinct,
                           categories=categories)


def load() -> bool:
    """Import Numba and define the kernels now, whatever the city's size; whether they are available.

    Afterwards small cities use them too (:data:`REUSE_LOADED`): a process that
    runs many small cities (a sweep's worker, a notebook, a benchmark) pays the
    import once.
    """
    return _compile() is not None


#: Whether cities too small to pay for importing Numba use the kernels once this process has loaded them
#: anyway (a large city, or :func:`load`). The results are the same bits either way.
REUSE_LOADED = True


def _loaded() -> bool:
    return REUSE_LOADED and _kernels is not None


def _fast(size: int) -> SimpleNamespace | None:
    return _compile() if size >= PARALLEL_MIN_NNZ or _loaded() else None


def _per_citizen_pays(n: int) -> bool:
    """Whether a pass over a few arrays per citizen pays to compile: as if each of ``n`` citizens had
    eight stored entries."""
    return n * 8 >= PARALLEL_MIN_NNZ


def _fast_per_citizen(n: int) -> SimpleNamespace | None:
    """The compiled kernels for a pass over a few arrays per citizen, where the city is large enough."""
    return _compile() if _per_citizen_pays(n) or _loaded() else None


def _unsigned(indices: np.ndarray) -> np.ndarray:
    """Indices viewed as unsigned (no copy): spares the compiled loop a negative-index check.

    Row pointers go through it too: as unsigned 32-bit they run as fast as 64-bit
    counters, and a view costs nothing where a widening copy cost 0.6 ms a call on
    a city of 590,000 (the row pointers never change, but were copied every iteration).
    """
    return indices.view(np.uint32 if indices.dtype == np.int32 else np.uint64)


def weight_dtype(weights: np.ndarray, entries: int) -> type:
    """The dtype a matrix of ``entries`` stored entries keeps its weights in.

    float32 when the compiled kernels will read the matrix (it is large, or
    they are loaded anyway) and float32 holds every weight exactly (kind
    weights such as 2, 1 and 0.5; cut ties are 0): each product ``w * x`` is
    then the same float64 as before, since a float32 widens to float64
    exactly, and a pass over the matrix reads 8 bytes an entry instead of 12.
    Otherwise float64 (scipy's product would widen a float32 matrix on every call).

    >>> weight_dtype(np.array([2.0, 1.0, 0.5]), 10**6).__name__, weight_dtype(np.array([0.3]), 10**6).__name__
    ('float32', 'float64')
    """
    weights = np.asarray(weights, dtype=np.float64)
    read_by_kernels = entries >= COMPACT_WEIGHTS_MIN_NNZ or _loaded()
    if read_by_kernels and np.array_equal(weights.astype(np.float32).astype(np.float64), weights):
        return np.float32
    return np.float64


def _far_mask(indptr: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each stored entry's row, and whether the entry is far (plain path)."""
    rows = np.repeat(np.arange(indptr.size - 1, dtype=np.int64), np.diff(indptr))
    return rows, np.abs(rows - cols) > FAR_DISTANCE



@dataclass
class FarEntries:
    """The far entries of a split city's matrix and where their products go (module docstring).

    A split city's matrix stores every row's near entries first, then its far
    ones (:func:`near_first`). Far entries are numbered row by row in CSR order,
    ``far_start[i]`` of them before row ``i``; ``tslot[k]`` is the slot in
    ``vals`` that receives entry ``k``'s product for the transposed entry's row,
    ``slot_row[q]`` the row that slot ``q`` belongs to. The slots of a block of
    :data:`BIN_ROWS` rows are the far numbers of those rows, in column order.
    """

    far_start: np.ndarray  # int64 (N + 1,)
    tslot: np.ndarray      # int32 (F,), int64 past 2**31 far entries
    slot_row: np.ndarray   # int32 (F,)
    vals: np.ndarray       # float64 (F,): buffer of the products, rewritten by every product
    sums: np.ndarray       # float64 (N,): buffer of each row's far sum


_matrices: dict[int, tuple[weakref.ref, dict]] = {}


def splits(n: int) -> bool:
    """Whether a city of ``n`` citizens sums near and far entries of each row apart."""
    return n > SPLIT_MIN_CITIZENS


def _matrix_cache(adjacency: sp.csr_matrix, create: bool = True) -> dict | None:
    """What is cached about a matrix (its sparsity pattern never changes): a split city's far entries,
    packed entries; None where nothing is yet and ``create`` is False."""
    entry = _matrices.get(id(adjacency))
    if entry is None or entry[0]() is not adjacency:
        if not create:
            return None
        for dead in [key for key, (ref, _) in _matrices.items() if ref() is None]:
            del _matrices[dead]
        entry = _matrices[id(adjacency)] = (weakref.ref(adjacency), {})
    return entry[1]


def _split_cache(adjacency: sp.csr_matrix) -> dict | None:
    """What is cached about a split city's matrix; None if it does not split."""
    return _matrix_cache(adjacency) if splits(adjacency.shape[0]) else None


def _far_entries(adjacency: sp.csr_matrix, cache: dict, k: SimpleNamespace) -> FarEntries:
    if "far" not in cache:
        n = adjacency.shape[0]
        indptr, indices = _unsigned(adjacency.indptr), _unsigned(adjacency.indices)
        far_start = np.zeros(n + 1, dtype=np.int64)
        k.far_count(indptr, indices, FAR_DISTANCE, far_start)
        if (far_start < 0).any():
            raise ValueError("a split city's matrix must store each row's near entries first (near_first)")
        np.cumsum(far_start, out=far_start)
        count = int(far_start[-1])
        slot_type = np.int32 if count < 2**31 else np.int64
        far = FarEntries(far_start=far_start, tslot=np.empty(count, slot_type), slot_row=np.empty(count, np.int32),
                         vals=np.empty(count), sums=np.empty(n))
        k.far_layout(indptr, indices, BIN_ROWS, far_start, far.tslot, far.slot_row)
        cache["far"] = far
    return cache["far"]


def _far_row_sums(adjacency: sp.csr_matrix, far: FarEntries, x: np.ndarray, k: SimpleNamespace) -> np.ndarray:
    """Every row's far sum, in column order (into ``far.sums``)."""
    k.far_products(_unsigned(adjacency.indptr), x, adjacency.data, far.far_start, far.tslot, far.vals)
    k.far_sums(far.far_start, far.slot_row, far.vals, BIN_ROWS, far.sums)
    return far.sums


def _split_product(adjacency: sp.csr_matrix, cache: dict, x: np.ndarray) -> np.ndarray:
    """``A x`` as a split city sums it, on the plain path: near part in CSR order, far part in column order."""
    if "plain" not in cache:
        cols = adjacency.indices.astype(np.int64)
        rows, far = _far_mask(adjacency.indptr, cols)
        positions = np.flatnonzero(far)
        positions = positions[np.lexsort((cols[positions], rows[positions]))]  # by row, then column
        counts = np.bincount(rows[positions], minlength=adjacency.shape[0])
        cache["plain"] = (far, positions, cols[positions], np.concatenate([[0], np.cumsum(counts)]))
    far, positions, far_cols, far_indptr = cache["plain"]
    # the far entries count as exact zeros in the near part, which changes no sum
    near = sp.csr_matrix((np.where(far, 0.0, adjacency.data), adjacency.indices, adjacency.indptr),
                         shape=adjacency.shape, copy=False)
    apart = sp.csr_matrix((adjacency.data[positions], far_cols, far_indptr), shape=adjacency.shape, copy=False)
    return near @ x + apart @ x


def chebyshev_step(adjacency: sp.csr_matrix, current: np.ndarray, previous: np.ndarray, base: np.ndarray,
                   coef: np.ndarray, omega: float, jacobi: np.ndarray, following: np.ndarray,
                   continued: bool = False, product: np.ndarray | None = None) -> float:
    """One Chebyshev-accelerated Jacobi step in one pass over the matrix.

    Writes ``jacobi = base + coef * (A current)`` and
    ``following = omega * (jacobi - previous) + previous`` into the given
    buffers and returns the largest ``|jacobi - current|``.

    ``continued``: ``current`` is the ``following`` of the previous step on
    this matrix, unchanged since. A split city's compiled step then reuses the
    far sums that step already computed for it.

    ``product``: ``matvec(adjacency, current)``, where the caller has it
    already; the step then only combines vectors (the same bits).

    The engine's solves go through :func:`chebyshev_solve` wherever the
    compiled kernels run and the city does not split, so there this compiled
    single step serves ``benchmarks/bench_roofline.py``, which times one pass,
    and the tests.
    """
    if product is not None:
        return _combine(product, current, previous, base, coef, omega, jacobi, following)
    k = _fast(adjacency.nnz)
    cache = _split_cache(adjacency)
    if k is not None and cache is not None:
        far = _far_entries(adjacency, cache, k)
        if not continued:
            _far_row_sums(adjacency, far, current, k)
        residual = k.chebyshev_split(_unsigned(adjacency.indptr), _unsigned(adjacency.indices), adjacency.data,
                                     current, previous, base, coef, float(omega), jacobi, following, far.sums,
                                     far.far_start, far.tslot, far.vals)
        k.far_sums(far.far_start, far.slot_row, far.vals, BIN_ROWS, far.sums)  # now those of following
        return float(residual)
    if k is not None:
        return float(k.chebyshev(_unsigned(adjacency.indptr), _unsigned(adjacency.indices), adjacency.data,
                                 current, previous, base, coef, float(omega), jacobi, following))
    product = adjacency @ current if cache is None else _split_product(adjacency, cache, current)
    return _combine(product, current, previous, base, coef, omega, jacobi, following)


def chebyshev_solve(adjacency: sp.csr_matrix, start: np.ndarray, base: np.ndarray, coef: np.ndarray, rho2: float,
                    bound: float, product: np.ndarray | None) -> tuple[np.ndarray, int] | None:
    """``scoring._chebyshev``'s whole loop in one compiled call, the same bits; None where it does not run.

    Runs where the compiled kernels do, the city does not split and its
    entries pack (:func:`packed_entries`): a small city's solve is then a few
    hundred short passes, and calling each from Python cost more than the
    pass itself.
    """
    k = _fast(adjacency.nnz)
    if k is None or _split_cache(adjacency) is not None:
        return None
    packed = packed_entries(adjacency, k)
    if packed is None:
        return None
    jacobi, spare = np.empty_like(start), np.empty((3, start.size))
    iterations, score = k.solve(_unsigned(adjacency.indptr), packed.entries, packed.table, start, base,
                              coef, float(rho2), float(bound), np.empty(0) if product is None else product, jacobi,
                              spare)
    return score, int(iterations)


@dataclass
class PackedEntries:
    """A matrix's stored entries as the non-split solver reads them: one 32-bit word each.

    ``entries[p]`` holds entry ``p``'s column in its low :data:`PACKED_INDEX_BITS`
    and, above them, the code of its weight: ``table[code]`` is the weight as
    float64 (a float32 weight widened, exactly), ``table[0] = 0`` (a cut tie).
    An entry of weight 0 is the word 0 (column 0 too), so that its gather reads
    a value every core keeps in cache rather than a random line of the vector.
    A pass then reads 4 bytes an entry instead of 8 (column and float32
    weight); the gathers of neighbours' scores still dominate, so one pass of
    Rongcheng's solve takes about 14 % less time, for the same bits.
    """

    entries: np.ndarray  # uint32 (nnz + PREFETCH_AHEAD,): the entries, then zeros that a prefetch may read
    table: np.ndarray    # float64 (PACKED_WEIGHTS,)


def packed_entries(adjacency: sp.csr_matrix, k: SimpleNamespace) -> PackedEntries | None:
    """The packed entries of ``adjacency`` (built once, then kept in step by :func:`zero_entries`).

    None where they do not pack (decided once too): more citizens than
    :data:`PACKED_INDEX_BITS` can number, or more distinct weights than
    :data:`PACKED_WEIGHTS`.
    """
    cache = _matrix_cache(adjacency)
    if "packed" not in cache:
        cache["packed"] = _pack(adjacency, k)
    return cache["packed"]


def _pack(adjacency: sp.csr_matrix, k: SimpleNamespace) -> PackedEntries | None:
    if adjacency.shape[1] > 2**PACKED_INDEX_BITS:
        return None
    table, codes = np.zeros(PACKED_WEIGHTS), np.empty(adjacency.nnz, np.uint8)
    if k.weight_codes(adjacency.data, table, codes) < 0:
        return None
    packed = PackedEntries(entries=np.zeros(adjacency.nnz + PREFETCH_AHEAD, np.uint32), table=table)
    k.pack_entries(_unsigned(adjacency.indices), codes, packed.entries)
    return packed


def zero_entries(adjacency: sp.csr_matrix, positions: np.ndarray) -> None:
    """Set the weights of the stored entries at ``positions`` to 0 (cut ties), in every form kept of them.

    The only way the engine changes a matrix's weights: the packed entries of
    :func:`packed_entries` follow.
    """
    adjacency.data[positions] = 0.0
    cache = _matrix_cache(adjacency, create=False)
    packed = cache.get("packed") if cache is not None else None
    if packed is not None and positions.size:
        _compile().zero_packed(packed.entries, positions)


def _combine(product: np.ndarray, current: np.ndarray, previous: np.ndarray, base: np.ndarray, coef: np.ndarray,
             omega: float, jacobi: np.ndarray, following: np.ndarray) -> float:
    """The Chebyshev step once ``A current`` is known, with the compiled step's arithmetic."""
    k = _fast_per_citizen(product.size)
    if k is not None:
        return float(k.combine(product, current, previous, base, coef, float(omega), jacobi, following))
    jacobi[:] = base + coef * product
    following[:] = omega * (jacobi - previous) + previous
    return float(np.max(np.abs(jacobi - current))) if current.size else 0.0


def row_sums(adjacency: sp.csr_matrix) -> np.ndarray:
    """Row sums of a CSR matrix, each summed in storage order (as scipy's matrix-vector product does)."""
    k = _fast(adjacency.nnz)
    if k is not None:
        out = np.empty(adjacency.shape[0])
        k.row_sums(_unsigned(adjacency.indptr), adjacency.data, out)
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
        return k.listed_rows(_unsigned(adjacency.indptr), _unsigned(adjacency.indices), adjacency.data,
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


def cut_and_fear(adjacency: sp.csr_matrix, rows: np.ndarray, listed: np.ndarray, tie_of: np.ndarray,
                 entry_kind: np.ndarray, cut_p: np.ndarray, base: np.uint64) -> tuple[np.ndarray, np.ndarray] | None:
    """The ties to cut and the fear flag in one compiled scan of the listed rows; None where not compiled.

    A tie with exactly one listed end is cut when ``rng.uniform_of_keys(base,
    tie)`` is below ``cut_p`` of its kind (``entry_kind``: the kind of each
    stored entry's tie, read in step with the row); a citizen is feared when an active
    tie not cut now joins her to a listed citizen. The same as
    :func:`active_entries_of_rows`, the draws, and then :func:`mark_neighbours`
    after the cut (``network.Ties.cut_and_fear`` does that where this returns None).
    """
    k = _fast(adjacency.nnz) if rows.size else None
    if k is None:
        return None
    feared = np.zeros(listed.size, dtype=bool)
    cut = k.cut_and_fear(_unsigned(adjacency.indptr), _unsigned(adjacency.indices), adjacency.data, listed,
                         rows.astype(np.int64), tie_of, entry_kind, np.asarray(cut_p, np.float64), np.uint64(base), feared)
    return cut, feared


def mark_neighbours(adjacency: sp.csr_matrix, rows: np.ndarray, n: int) -> np.ndarray:
    """Whether each of ``n`` citizens is the column of an active entry in one of the given rows."""
    out = np.zeros(n, dtype=bool)
    k = _fast(adjacency.nnz) if rows.size else None
    if k is not None:
        k.mark_neighbours(_unsigned(adjacency.indptr), _unsigned(adjacency.indices), adjacency.data,
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
        k.rows_sums(_unsigned(adjacency.indptr), adjacency.data, rows.astype(np.int64), out)
    else:
        out[rows] = adjacency[rows] @ np.ones(adjacency.shape[1])


def add_where(target: np.ndarray, value: int, mask: np.ndarray) -> None:
    """``target[mask] += value`` in place, for an integer array and a boolean mask of its shape."""
    k = _fast(target.size)
    if k is not None and target.flags.c_contiguous and mask.flags.c_contiguous and target.shape == mask.shape:
        k.add_where(target.reshape(-1), target.dtype.type(value), mask.reshape(-1))
    else:
        np.add(target, target.dtype.type(value), out=target, where=mask)


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
    cache = _split_cache(adjacency)
    x = np.ascontiguousarray(x, np.float64)
    if k is not None:
        out = np.empty(adjacency.shape[0])
        if cache is None:
            k.matvec(_unsigned(adjacency.indptr), _unsigned(adjacency.indices), adjacency.data, x, out)
        else:
            far = _far_entries(adjacency, cache, k)
            k.matvec_split(_unsigned(adjacency.indptr), _unsigned(adjacency.indices), adjacency.data, x, out,
                           _far_row_sums(adjacency, far, x, k), far.far_start)
        return out
    return adjacency @ x if cache is None else _split_product(adjacency, cache, x)


def paired_products(adjacency: sp.csr_matrix, vectors: list[np.ndarray]) -> list[np.ndarray] | None:
    """``[matvec(adjacency, x) for x in vectors]``, bit for bit, two vectors per pass over the matrix.

    A pass is bound by gathering each neighbour's value, so a second vector stored beside the first
    costs little: the two products of Rongcheng's step take 11.5 ms in one pass, 18.4 ms in two. Where
    the matrix packs, the pass reads the solver's packed entries (:func:`packed_entries`). Returns None
    where this does not apply (uncompiled or split cities); callers then take each product apart.
    """
    k = _fast(adjacency.nnz)
    if k is None or _split_cache(adjacency) is not None:
        return None
    n = adjacency.shape[0]
    indptr, indices = _unsigned(adjacency.indptr), _unsigned(adjacency.indices)
    packed = packed_entries(adjacency, k)
    out = []
    for first in range(0, len(vectors) - 1, 2):
        x_out, y_out = np.empty(n), np.empty(n)
        x, y = (np.ascontiguousarray(v, np.float64) for v in vectors[first:first + 2])
        pair = np.empty((n, 2))
        k.side_by_side(x, y, pair)
        if packed is not None:
            k.packed_pair_products(indptr, packed.entries, packed.table, pair, x_out, y_out)
        else:
            k.pair_products(indptr, indices, adjacency.data, pair, x_out, y_out)
        out += [x_out, y_out]
    if len(vectors) % 2:
        out.append(matvec(adjacency, vectors[-1]))
    return out


def near_first(indptr: np.ndarray, cols: np.ndarray, order: np.ndarray) -> None:
    """Reorder each row's entries in place (``cols`` and ``order`` together): near first, then far.

    Both parts keep their order (a stable partition). Split cities store their
    matrix this way, so that a row's near and far sums each read one run of it.
    """
    k = _fast(cols.size)
    if k is not None:
        k.near_first(_unsigned(indptr), cols, order, FAR_DISTANCE)
        return
    rows, far = _far_mask(indptr, cols)
    by = np.argsort(2 * rows + far, kind="stable")
    cols[:] = cols[by]
    order[:] = order[by]


def ring_ties(rewired: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A ring lattice's unrewired ties as keys ``lo * n + hi``, and the rewired ones' two ends.

    ``rewired`` is bool (n, k/2): whether ring tie ``(u, d)``, from ``u`` to
    ``u + d + 1`` round the ring, is rewired. Both come in tie order (``u``,
    then ``d``). Returns ``(keys, start, end)``.
    """
    k = _fast(rewired.size)
    if k is not None:
        return k.ring_ties(rewired, n)

    def ends(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        start, step = np.nonzero(mask)
        end = start + step + 1
        end[end >= n] -= n
        return start, end

    start, end = ends(~rewired)
    keys = np.minimum(start, end) * n + np.maximum(start, end)
    del start, end
    return (keys, *ends(rewired))


def pair_keys(prior: np.ndarray, i: np.ndarray, j: np.ndarray, nb: int, same: bool) -> np.ndarray:
    """``prior`` followed by the key ``i * nb + j`` of each drawn pair (int64).

    For ``same`` (both ends drawn from one group), a pair's key puts its smaller
    end first, ``min * nb + max``, and pairs of a citizen with herself are
    dropped. Compiled, one pass writes the one array that numpy's masks, minima,
    maxima and sums made in seven.
    """
    k = _fast(i.size)
    if k is not None:
        return k.pair_keys(prior, i, j, np.int64(nb), bool(same))
    if same:
        keep = i != j
        i, j = np.minimum(i[keep], j[keep]), np.maximum(i[keep], j[keep])
    return np.concatenate([prior, i * nb + j])


def categories(shares: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """``rng.choice(shares.size, size, p=shares / shares.sum())`` as int8, the same draws and the same categories.

    numpy's ``choice`` draws one uniform per item and finds it among the
    normalised cumulative shares (``searchsorted``, side right); so does this,
    the finding compiled where it pays (Rongcheng's 5.9 million tie kinds: numpy's
    search and cast to int8 took 86 ms).
    """
    p = np.asarray(shares, dtype=np.float64)
    cdf = (p / p.sum()).cumsum()
    cdf /= cdf[-1]
    uniforms = rng.random(size)
    k = _fast(size)
    if k is None:
        return np.searchsorted(cdf, uniforms, side="right").astype(np.int8)
    out = np.empty(size, np.int8)
    k.categories(cdf, uniforms, out)
    return out


def distinct(keys: np.ndarray) -> np.ndarray:
    """The distinct values of a sorted array, in order (``np.unique`` of sorted input, without its sort)."""
    k = _fast(keys.size)
    if k is not None:
        return k.distinct(keys)
    return keys[np.concatenate([[True], keys[1:] != keys[:-1]])] if keys.size else keys.copy()


def split_keys(keys: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(keys // n, keys % n)`` as int32, for tie keys ``lo * n + hi`` (non-negative)."""
    k = _fast(keys.size)
    if k is not None:
        lo, hi = np.empty(keys.size, dtype=np.int32), np.empty(keys.size, dtype=np.int32)
        k.split_keys(keys, np.int64(n), lo, hi)
        return lo, hi
    return (keys // n).astype(np.int32), (keys % n).astype(np.int32)


def grades_and_lists(score: np.ndarray, points_true: np.ndarray, points: np.ndarray, mins: np.ndarray,
                     black_grade: np.ndarray, red_grade: np.ndarray, serious_blacklists: bool,
                     serious_true: np.ndarray, serious_false: np.ndarray, tracked: np.ndarray,
                     named_grades: np.ndarray) -> tuple[np.ndarray, ...] | None:
    """Grade of S, black and red lists, causes and named lists in one compiled pass; None where not compiled.

    The same as ``scoring.grade_index`` on the three scores, then
    ``lists.assign_lists`` (which calls this for large cities). Returns
    ``(grade, black, red, cause, named)``.
    """
    k = _fast_per_citizen(score.size)
    if k is None:
        return None
    n = score.size
    out = (np.empty(n, np.int8), np.empty(n, bool), np.empty(n, bool), np.empty(n, np.int8),
           np.empty((named_grades.shape[0], n), bool))
    k.grades_and_lists(score, points_true, points, mins, black_grade, red_grade, serious_blacklists, serious_true,
                       serious_false, tracked, named_grades, *out)
    return out


def changed_rows(new: tuple[np.ndarray, ...], old: tuple[np.ndarray, ...], score: np.ndarray, logged: np.ndarray,
                 resolution: float) -> np.ndarray:
    """Citizens whose grade, black or red list or cause differ between ``new`` and ``old``, or whose
    score moved by at least ``resolution`` from ``logged`` (ascending int64); one pass where compiled."""
    k = _fast_per_citizen(score.size)
    if k is not None:
        return k.changed_rows(new[0], old[0], new[1], old[1], new[2], old[2], new[3], old[3], score, logged,
                              float(resolution))
    differs = np.abs(score - logged) >= resolution
    for a, b in zip(new, old):
        differs |= a != b
    return np.flatnonzero(differs)


def per_entry(pos: np.ndarray, values: np.ndarray) -> np.ndarray:
    """A tie's value at both of its stored entries: ``out[pos[0, t]] = out[pos[1, t]] = values[t]``."""
    out = np.empty(2 * pos.shape[1], dtype=values.dtype)
    k = _fast(out.size)
    if k is not None:
        k.scatter_per_tie(pos, values, out)
    else:
        out[pos[0]] = values
        out[pos[1]] = values
    return out


def take(values: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``values[order]`` for a 1-D array (compiled for long ones: numpy's take with int32 positions was
    20 times slower on the 11 M rows of a standing log)."""
    k = _fast(order.size)
    if k is None:
        return values[order]
    out = np.empty(order.size, dtype=values.dtype)
    k.gather(values, order, out)
    return out


def entry_weights(kind: np.ndarray, weights: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Each stored entry's weight, ``weights[concat(kind, kind)[order]]``: the weight of its tie's kind, for
    entries in ``order`` (:func:`tie_entries`). Compiled for long ones: one pass, no doubled kind array."""
    k = _fast(order.size)
    if k is None:
        return weights[take(np.concatenate([kind, kind]), order)]
    out = np.empty(order.size, dtype=weights.dtype)
    k.entry_weights(kind, weights, order, out)
    return out


def sort_spread(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """``np.sort(values)`` for values spread evenly over ``[low, high)``: uniform draws, random keys.

    Compiled, a bucket sort in about linear time: 4x faster than numpy's on the
    8,000 uniforms of a typical act type's week, 4x on 300,000. A sort has one
    answer, so the result is the same array whatever the method; values that are
    not spread as promised are only slower (crowded buckets go to ``np.sort``).
    """
    k = _fast(values.size) if values.size >= SPREAD_SORT_MIN else None
    if k is None:
        return np.sort(values)
    out = np.empty_like(values)
    if values.size >= SPREAD_SORT_PARALLEL_MIN:
        spread = k.spread_sort_parallel(values, float(low), float(high), out)
    else:
        spread = k.spread_sort(values, float(low), float(high), out)
    return out if spread else np.sort(values)


@dataclass
class SearchGuide:
    """Where :func:`search_ascending` starts looking in one cumulative array (:func:`search_guide`).

    ``starts[g]`` is the first index whose ``int(cumulative * scale)`` reaches
    ``g``, so the answer for a needle ``v`` lies between ``starts[g]`` and
    ``starts[g + 1]`` for ``g = int(v * scale)`` (rounding is monotone).
    """

    starts: np.ndarray
    scale: float


def search_guide(cumulative: np.ndarray) -> SearchGuide | None:
    """A guide to ``cumulative`` (nondecreasing, non-negative) with one entry per :data:`GUIDE_CITIZENS`
    of its values, or None where the kernels do not run or the array is short or all zero.

    Built once per act type and run (4 bytes per 16 citizens).
    """
    n = cumulative.size
    k = _fast_per_citizen(n)
    if k is None or n < GUIDE_MIN_CITIZENS or not cumulative[-1] > 0:
        return None
    groups = n // GUIDE_CITIZENS
    starts = np.empty(groups + 2, dtype=np.int32 if n < 2**31 else np.int64)
    scale = groups / float(cumulative[-1])
    k.guide_of(cumulative, scale, starts)
    return SearchGuide(starts=starts, scale=scale)


def search_ascending(cumulative: np.ndarray, needles: np.ndarray, guide: SearchGuide | None = None) -> np.ndarray:
    """``np.searchsorted(cumulative, needles, side="right")`` for ascending needles.

    Compiled for long arrays, it gallops forward from the last answer (2x faster
    than numpy's search on the 590,000 cumulative rates of Rongcheng). Given a
    :func:`search_guide` of ``cumulative``, fewer needles than guide entries are
    searched each among a few entries, with the cold arrays prefetched: 8,000
    needles in a cold array of 590,000 take 39 ns each instead of 84. A search
    has one answer, so every way gives the same indices.
    """
    k = _fast_per_citizen(cumulative.size)
    if k is None:
        return np.searchsorted(cumulative, needles, side="right")
    out = np.empty(needles.size, dtype=np.intp)
    if guide is not None and needles.size * GUIDE_CITIZENS < cumulative.size:
        k.search_guided(cumulative, guide.starts, guide.scale, needles, out)
    else:
        k.search_ascending(cumulative, needles, out)
    return out


def stable_row_order(rows: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Stable sort of entries by row (a counting sort), and the CSR row pointers.

    Equal to ``np.argsort(rows, kind="stable")`` for rows in ``[0, n)``, in linear
    time when compiled (and then as int32 when that fits, to halve the buffer).
    Any stable sort of small non-negative keys can use it (the acts sort their
    day-and-type keys by it). Uncompiled, rows that fit in 8 or 16 bits are
    sorted as such, which numpy does by radix sort in linear time (6-8 times
    faster than timsort on the same keys as int64).
    """
    k = _fast(rows.size)
    if k is not None:
        order = np.empty(rows.size, dtype=np.int32 if rows.size < 2**31 else np.int64)
        return k.counting_sort(rows, n, order)
    narrow = np.uint8 if n <= 2**8 else np.uint16 if n <= 2**16 else None
    order = np.argsort(rows if narrow is None else rows.astype(narrow), kind="stable")
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return order, indptr


def tie_entries(src: np.ndarray, dst: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The entries of a symmetric tie list by row: ``order, indptr, cols, where``.

    Entry ``k`` is tie ``k`` seen from ``src`` (``k < e``) or tie ``k - e`` from
    ``dst``; ``order`` sorts the entries stably by row (as
    :func:`stable_row_order` of ``concat(src, dst)``), ``cols`` is each sorted
    entry's column and ``where`` each entry's sorted position. Compiled, one
    counting sort writes all three (3x faster than sorting, then gathering and
    scattering with numpy).
    """
    e = src.shape[0]
    index = np.int32 if 2 * e < 2**31 else np.int64
    k = _fast(2 * e)
    if k is None:
        order, indptr = stable_row_order(np.concatenate([src, dst]), n)
        cols = np.concatenate([dst, src])[order]
        return order, indptr, cols, inverse_permutation(order, index)
    order, where = np.empty(2 * e, dtype=index), np.empty(2 * e, dtype=index)
    cols = np.empty(2 * e, dtype=np.result_type(src.dtype, dst.dtype))
    indptr = k.tie_entries(src, dst, n, order, cols, where)
    return order, indptr, cols, where


def inverse_permutation(order: np.ndarray, dtype: type) -> np.ndarray:
    """``where`` with ``where[order] = arange(order.size)``, of the given integer dtype."""
    where = np.empty(order.size, dtype=dtype)
    k = _fast(order.size)
    if k is None:
        where[order] = np.arange(order.size, dtype=dtype)
    else:
        k.invert(order, where)
    return where


def coupling_terms(points: np.ndarray, strength: np.ndarray, kappa: float) -> tuple[np.ndarray, np.ndarray] | None:
    """``base, coef`` of the coupled score in one compiled pass where the city is large, else None.

    As ``scoring.coupled_score`` computes them: ``coef = kappa / strength`` and
    ``base = (1 - kappa) P`` for tied citizens, ``coef = 0`` and ``base = P``
    for the others.
    """
    k = _fast_per_citizen(points.size)
    if k is None:
        return None
    base, coef = np.empty(points.size), np.empty(points.size)
    k.coupling_terms(points, strength, float(kappa), base, coef)
    return base, coef


def own_points(raw_milli: np.ndarray, extra_milli: np.ndarray | None, start: float, low: float, high: float,
               milli: int) -> np.ndarray | None:
    """``clip(start + (raw + extra) / milli, low, high)`` in one compiled pass where the city is large, else None."""
    k = _fast_per_citizen(raw_milli.size)
    if k is None:
        return None
    out = np.empty(raw_milli.size)
    extra = np.empty(0, raw_milli.dtype) if extra_milli is None else extra_milli
    k.own_points(raw_milli, extra, float(start), float(low), float(high), milli, out)
    return out


def spill_over(src: np.ndarray, dst: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Citizens with one of the ties ``(src, dst)`` to someone in ``mask`` (a member of ``mask`` only if tied
    to another member)."""
    out = np.zeros(mask.size, dtype=bool)
    k = _fast(2 * src.size)
    if k is not None:
        k.spill_over(src, dst, mask, out)
    else:
        out[dst[mask[src]]] = True
        out[src[mask[dst]]] = True
    return out


def active_ends(ids: np.ndarray, active: np.ndarray, src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two ends of the active ties among ``ids`` (ascending), in their order."""
    k = _fast(2 * ids.size)
    if k is not None:
        return k.active_ends(ids, active, src, dst)
    keep = ids[active[ids]]
    return src[keep], dst[keep]


def seed_state(entropy: np.ndarray) -> np.ndarray | None:
    """``SeedSequence``'s state for a PCG64 (four 64-bit words) from its assembled entropy (uint32 words).

    The same words as ``np.random.SeedSequence(...).generate_state(4, np.uint64)``
    (``tests/test_rng.py`` compares them), in about a tenth of its time: a
    small city opens a few hundred streams a year. None where the kernels are
    not loaded (a stream alone never loads them).
    """
    if not _loaded():
        return None
    out = np.empty(4, np.uint64)
    _kernels.seed_state(entropy, out)
    return out


def median(values: np.ndarray) -> float | None:
    """``np.median(values)`` (no NaNs), the same bits, by a compiled selection that releases the interpreter's lock;
    None where the kernels do not run for an array of this size.

    The metrics take four medians of scores a step; at 590,000 citizens numpy's
    sort-based median held the books' thread (and the lock) 26 ms a step.
    """
    k = _fast_per_citizen(values.size)
    return None if k is None else float(k.median(np.ascontiguousarray(values)))


def union_ties(parent: np.ndarray, size: np.ndarray, a: np.ndarray, b: np.ndarray, starts: np.ndarray,
               ends: np.ndarray, best: int) -> np.ndarray | None:
    """Join the sets of each tie's two ends, stretch by stretch; the largest set's size after each stretch.

    ``audit._union_all`` on ``a[starts[s]:ends[s]]``, ``b[...]`` for each ``s``
    in turn, compiled: the same parents and sizes afterwards (union by size,
    paths compressed). None where the kernels do not run for this many ties.
    A year of Rongcheng's cut ties (1.2 million) took 1.3 s in Python.
    """
    k = _fast(a.size)
    if k is None:
        return None
    out = np.empty(starts.size, dtype=np.int64)
    k.union_ties(parent, size, a, b, starts.astype(np.int64), ends.astype(np.int64), np.int64(best), out)
    return out


def compiled() -> bool:
    """Whether compiled kernels are available (they are used for large cities only)."""
    return _compile() is not None
