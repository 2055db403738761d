"""The social network: generators, tie kinds, and the weighted adjacency.

Ties are an undirected simple graph stored once per tie (``src < dst``) plus a
symmetric scipy CSR matrix whose stored values are ``weight * active``. A cut
sets both stored values of the tie to zero in place, so the sparsity pattern
never has to be rebuilt. Generators return the tie list; they are vectorised
(no Python loop over citizens) and draw from the ``network`` stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .errors import ScenarioError
from .kernels import (active_entries_of_rows, categories, cut_and_fear, distinct, entry_weights, inverse_permutation,
                      mark_neighbours, near_first, pair_keys, per_entry, ring_ties, row_sums, row_sums_of, sort_spread,
                      split_keys, splits, take, tie_entries, weight_dtype, zero_entries)
from .population import Population
from .rng import stream, uniform_of_keys
from .scenario import Network


@dataclass
class Ties:
    """The ties of the city and their state.

    Attributes
    ----------
    src, dst : int32 arrays (E,)
        The two ends of each tie, ``src < dst``.
    kind : int8 array (E,)
        Index into ``network.kinds``.
    kind_weights : float64 array (K,)
        The coupling weight of each tie kind (a tie's weight is ``kind_weights[kind]``).
    cut_day : int32 array (E,)
        Day the tie was cut, -1 while active.
    adjacency : scipy.sparse.csr_matrix (N, N)
        Symmetric; stored values are ``weight`` for active ties, 0 for cut ones,
        as float32 in large cities whose weights float32 holds exactly
        (``kernels.weight_dtype``: the same products, fewer bytes to read).
    """

    src: np.ndarray
    dst: np.ndarray
    kind: np.ndarray
    kind_weights: np.ndarray
    cut_day: np.ndarray
    adjacency: sp.csr_matrix
    _pos: np.ndarray  # (2, E) int32 (int64 past 2**31 entries): each tie's two entries in adjacency.data
    _weight: np.ndarray | None = None  # per-tie weights, only for tie lists built with them

    @property
    def n_ties(self) -> int:
        return int(self.src.shape[0])

    @property
    def weight(self) -> np.ndarray:
        """The weight of each tie in the coupling (from its kind, unless built with per-tie weights)."""
        return self.kind_weights[self.kind] if self._weight is None else self._weight

    @property
    def active(self) -> np.ndarray:
        """Whether each tie is still active (a view kept in step with ``cut_day``)."""
        if getattr(self, "_active", None) is None:
            self._active = self.cut_day < 0
        return self._active

    def degree(self, active_only: bool = True) -> np.ndarray:
        """Number of (active) ties of each citizen."""
        every = np.diff(self.adjacency.indptr).astype(np.int32)  # every tie, cut or not, keeps its two entries
        if not active_only:
            return every
        cut = np.flatnonzero(~self.active)  # fewer than the ties: count them off
        n = self.adjacency.shape[0]
        return every - (np.bincount(self.src[cut], minlength=n) + np.bincount(self.dst[cut], minlength=n)).astype(np.int32)

    def weighted_degree(self) -> np.ndarray:
        """Sum of active tie weights of each citizen (row sums of the adjacency); do not modify.

        Summed once, then kept up to date by :meth:`cut`, which sums again only the
        rows of the cut ties' ends, in storage order: the same bits as summing all rows.
        """
        if getattr(self, "_strength", None) is None:
            self._strength = row_sums(self.adjacency)
        return self._strength

    @property
    def cuts_by_kind(self) -> np.ndarray:
        """int64 (K,): cuts of ties of each kind so far, by :meth:`cut` (tells when ties must be looked up again)."""
        if getattr(self, "_cuts_by_kind", None) is None:
            self._cuts_by_kind = np.zeros(self.kind_weights.size, dtype=np.int64)
        return self._cuts_by_kind

    @property
    def n_active(self) -> int:
        """How many ties are still active: every tie less those :meth:`cut` has cut (no tie is cut twice)."""
        return self.n_ties - int(self.cuts_by_kind.sum())

    def cut(self, tie_ids: np.ndarray, day: int) -> None:
        """Cut ties (they stay cut): record the day and zero their weight."""
        self.cuts_by_kind[:] += np.bincount(self.kind[tie_ids], minlength=self.kind_weights.size)
        self.cut_day[tie_ids] = day
        self.active[tie_ids] = False
        zero_entries(self.adjacency, self._pos[0, tie_ids])
        zero_entries(self.adjacency, self._pos[1, tie_ids])
        if getattr(self, "_strength", None) is not None:
            # a row that ends several cut ties is summed again each time, to the same value
            row_sums_of(self.adjacency, np.concatenate([self.src[tie_ids], self.dst[tie_ids]]), self._strength)

    def _tie_of_positions(self) -> np.ndarray:
        """For every adjacency position, the tie it belongs to (built once)."""
        if getattr(self, "_tie_of", None) is None:
            self._tie_of = per_entry(self._pos, np.arange(self.n_ties, dtype=self._pos.dtype))
        return self._tie_of

    def _entry_kinds(self) -> np.ndarray:
        """For every adjacency position, the kind of its tie (built once; read in step with a row's entries)."""
        if getattr(self, "_entry_kind", None) is None:
            self._entry_kind = per_entry(self._pos, self.kind)
        return self._entry_kind

    def with_listed_neighbour(self, listed: np.ndarray) -> np.ndarray:
        """Citizens with at least one active tie to a listed citizen.

        Touches only the listed citizens' rows, so the cost grows with them, not
        with the whole network.
        """
        return mark_neighbours(self.adjacency, np.flatnonzero(listed), listed.size)

    def cut_and_fear(self, listed: np.ndarray, base: np.uint64, cut_p: np.ndarray, day: int) -> tuple[int, np.ndarray]:
        """Cut ties with one listed end by their keyed draws, then flag who has a listed neighbour.

        A candidate tie is cut when ``rng.uniform_of_keys(base, tie)`` is below
        ``cut_p`` of its kind. Returns the number cut and the fear flag over the
        ties left (:meth:`with_listed_neighbour`). Large cities do both in one
        compiled scan of the listed rows (``kernels.cut_and_fear``).
        """
        rows = np.flatnonzero(listed)
        fused = cut_and_fear(self.adjacency, rows, listed, self._tie_of_positions(), self._entry_kinds(), cut_p, base)
        if fused is not None:
            cut, feared = fused
        else:
            candidates = active_entries_of_rows(self.adjacency, rows, listed, self._tie_of_positions())
            cut = candidates[uniform_of_keys(base, candidates) < cut_p[self.kind[candidates]]]
        if cut.size:
            self.cut(cut, day)
        if fused is None:
            feared = self.with_listed_neighbour(listed)
        return int(cut.size), feared


def build_ties(spec: Network, population: Population, seed: int) -> Ties:
    """Generate the network of a scenario and wrap it as :class:`Ties`.

    >>> from socialcredit.scenario import load_scenario
    >>> from socialcredit.population import build_population
    >>> s = load_scenario("scenarios/reference.toml", ["population.size=200"])
    >>> ties = build_ties(s.network, build_population(s, 1), 1)
    >>> bool((ties.src < ties.dst).all()), ties.adjacency.shape
    (True, (200, 200))
    """
    rng = stream(seed, "network")
    n = population.size
    if spec.model == "sbm":
        src, dst = stochastic_block_model(population.group_sizes, spec.k_in, spec.k_out, rng)
    elif spec.model == "watts_strogatz":
        src, dst = watts_strogatz(n, spec.k, spec.rewire, rng)
    elif spec.model == "barabasi_albert":
        src, dst = barabasi_albert(n, spec.m, rng)
    else:
        src, dst = read_edge_list(Path(spec.path or ""), n, rng)
    shares = np.array([k.share for k in spec.kinds])
    if shares.size == 1:  # what the draw would give, without drawing a uniform per tie
        kind = np.zeros(src.shape[0], dtype=np.int8)
    else:
        kind = categories(shares, stream(seed, "tie_kinds"), src.shape[0])  # rng.choice's draws, found faster
    return _wrap(src, dst, kind, np.array([k.weight for k in spec.kinds], dtype=np.float64), n)


def _wrap(src: np.ndarray, dst: np.ndarray, kind: np.ndarray, kind_weights: np.ndarray, n: int,
          weight: np.ndarray | None = None) -> Ties:
    """The ties of a tie list: their CSR adjacency, and where each tie's two entries went.

    Weights come from the tie kinds; ``weight`` (one per tie) overrides them.
    """
    kind_weights = np.asarray(kind_weights, dtype=np.float64)
    if weight is None:
        stored = kind_weights.astype(weight_dtype(kind_weights, 2 * src.shape[0]))
        if stored.size == 1:  # one kind: every entry has its weight
            adjacency, pos = _csr(src, dst, lambda order: np.full(order.size, stored[0]), n)
        else:
            adjacency, pos = _csr(src, dst, lambda order: entry_weights(kind, stored, order), n)
    else:
        weight = np.asarray(weight, dtype=np.float64)
        stored = weight.astype(weight_dtype(weight, 2 * src.shape[0]))
        adjacency, pos = _csr(src, dst, lambda order: take(np.concatenate([stored, stored]), order), n)
    return Ties(src=src, dst=dst, kind=kind, kind_weights=kind_weights,
                cut_day=np.full(src.shape[0], -1, dtype=np.int32), adjacency=adjacency, _pos=pos, _weight=weight)


def weighted_adjacency(src: np.ndarray, dst: np.ndarray, weight: np.ndarray, n: int) -> sp.csr_matrix:
    """The symmetric CSR adjacency of a tie list with one weight per tie.

    Entries are stored in the same order as the engine's, so products with it
    are bit-identical to the engine's.
    """
    return _wrap(src, dst, np.zeros(src.shape[0], np.int8), np.ones(1), n, weight=weight).adjacency


def _csr(src: np.ndarray, dst: np.ndarray, values, n: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """Symmetric CSR of a tie list (rows in a stable order) and each tie's two positions.

    In cities that split their sums (``kernels.splits``) each row holds its near
    entries first, then its far ones, each part in the stable order.

    ``values(order)`` gives the stored values in entry order. Temporaries are
    freed as soon as they are used: building needs about 40 bytes per tie on
    top of what the ties keep.
    """
    e = src.shape[0]
    order, indptr, cols, where = tie_entries(src, dst, n)
    if splits(n):  # rows of large cities: near entries first, then far ones (kernels module docstring)
        index = where.dtype
        del where
        near_first(indptr, cols, order)
        where = inverse_permutation(order, index)
    data = values(order)
    del order
    return sp.csr_matrix((data, cols, indptr), shape=(n, n), copy=False), where.reshape(2, e)


# ---------------------------------------------------------------------------
# Generators. Each returns (src, dst) int32 with src < dst, no duplicates.
# ---------------------------------------------------------------------------

def stochastic_block_model(sizes: np.ndarray, k_in: float, k_out: float,
                           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Block model over contiguous groups: ``p_in = k_in/(n_g-1)``, ``p_out = k_out/N``.

    Within each block the number of ties is ``Binomial(n_g(n_g-1)/2, p)`` and
    the ties are a uniform subset of that size: exactly ``G(n_g, p)``.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    n = int(sizes.sum())
    starts = np.concatenate([[0], np.cumsum(sizes)])
    parts_src, parts_dst = [], []
    for g, ng in enumerate(sizes):
        if ng < 2:
            continue
        p = min(1.0, k_in / (ng - 1))
        m = rng.binomial(ng * (ng - 1) // 2, p)
        keys = _sample_pairs(m, ng, ng, rng, same=True)
        _append_ends(parts_src, parts_dst, keys, ng, starts[g], starts[g])
    p_out = min(1.0, k_out / n)
    for g in range(len(sizes)):
        for h in range(g + 1, len(sizes)):
            if sizes[g] == 0 or sizes[h] == 0:
                continue
            m = rng.binomial(sizes[g] * sizes[h], p_out)
            keys = _sample_pairs(m, sizes[g], sizes[h], rng, same=False)
            _append_ends(parts_src, parts_dst, keys, sizes[h], starts[g], starts[h])
    return _finish(parts_src, parts_dst)


def _append_ends(parts_src: list[np.ndarray], parts_dst: list[np.ndarray], keys: np.ndarray, nb: int,
                 first_a: int, first_b: int) -> None:
    """The two ends of pair keys ``i * nb + j``, as citizen ids from ``first_a`` and ``first_b`` (int32)."""
    lo, hi = split_keys(keys, nb)
    lo += np.int32(first_a)
    hi += np.int32(first_b)
    parts_src.append(lo)
    parts_dst.append(hi)


def _sample_pairs(m: int, na: int, nb: int, rng: np.random.Generator, same: bool) -> np.ndarray:
    """``m`` distinct pairs as keys ``i*nb + j``; for ``same``, unordered with i < j."""
    keys = np.empty(0, dtype=np.int64)
    while keys.size < m:
        k = m - keys.size
        k += k // 20 + 16
        i = rng.integers(0, na, size=k, dtype=np.int64)
        j = rng.integers(0, nb, size=k, dtype=np.int64)
        keys = _sorted_unique(pair_keys(keys, i, j, nb, same), spread=na * nb)
    if keys.size > m:
        drop = rng.choice(keys.size, size=keys.size - m, replace=False)
        keys = np.delete(keys, drop)
    return keys


def watts_strogatz(n: int, k: int, p: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Ring of ``n`` citizens each tied to ``k`` nearest, each tie rewired with prob ``p``.

    As in networkx's ``watts_strogatz_graph``: a rewired tie keeps its first end
    and gets a uniform new end, avoiding self-ties and duplicates (a tie whose
    new end keeps colliding stays where it was). Ring tie ``i`` joins ``i // (k/2)``
    and the citizen ``i % (k/2) + 1`` places further on; whether it is rewired is
    the ``i``-th uniform of the stream.

    Of a set of ties with the same ends, the first keeps them: an unrewired tie,
    else the rewired one of lowest number; the others draw again, for up to 20
    rounds. Only the rewired ties are sorted and looked up in each round (the
    unrewired ring keys come nearly sorted), so the cost grows with them.
    """
    if k >= n:
        raise ScenarioError("network.k", k, f"must be smaller than the population ({n})", "lower k or raise population.size")
    half = k // 2
    rewired = rng.random(n * half).reshape(n, half) < p
    fixed, start, original = ring_ties(rewired, n)  # rewired ties in the order of their numbers
    del rewired
    # ascending except for the ties that wrap round the ring, whose keys are small: two sorted runs
    fixed.sort(kind="stable")
    target = np.empty(start.size, dtype=np.int64)
    taken_keys, taken_by = np.empty(0, np.int64), np.empty(0, np.int64)  # sorted keys of settled rewired ties
    pending = np.arange(start.size)
    for _ in range(20):
        if pending.size == 0:
            break
        target[pending] = rng.integers(0, n, size=pending.size)
        pending, taken_keys, taken_by = _settle(pending, start, target, n, fixed, taken_keys, taken_by)
    reverted = np.minimum(start[pending], original[pending]) * n + np.maximum(start[pending], original[pending])
    keys = _sorted_unique(np.concatenate([fixed, taken_keys, reverted]), kind="stable")  # three sorted runs
    del fixed
    return split_keys(keys, n)


def _settle(pending: np.ndarray, start: np.ndarray, target: np.ndarray, n: int, fixed: np.ndarray,
            taken_keys: np.ndarray, taken_by: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One round of rewiring: which of the just-redrawn ties keep their new ends.

    ``pending`` numbers rewired ties (ascending, which is their order among all
    ties); ``taken_keys``/``taken_by`` hold the keys of the settled rewired ties
    and who holds each. A redrawn tie loses to a self-tie, to an unrewired tie
    with its ends (``fixed``) and to a lower-numbered tie with its ends, which
    may be a settled tie that then draws again. Returns the ties that draw again
    (ascending) and the updated settled keys.
    """
    a, b = start[pending], target[pending]
    loop = a == b
    ties = pending[~loop]
    keys = np.minimum(a, b)[~loop] * n + np.maximum(a, b)[~loop]
    order = np.argsort(keys, kind="stable")  # by key, then by number (sorted look-ups are cache-friendly)
    ties, keys = ties[order], keys[order]
    _, on_ring = _find(fixed, keys)
    again = [pending[loop], ties[on_ring]]
    ties, keys = ties[~on_ring], keys[~on_ring]
    first = np.ones(keys.size, dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    again.append(ties[~first])
    ties, keys = ties[first], keys[first]
    at, held = _find(taken_keys, keys)
    wins = np.zeros(keys.size, dtype=bool)
    wins[held] = ties[held] < taken_by[at[held]]
    again += [ties[held & ~wins], taken_by[at[wins]]]
    taken_by = taken_by.copy()
    taken_by[at[wins]] = ties[wins]
    new = ~held
    if new.any():
        taken_keys = np.concatenate([taken_keys, keys[new]])
        taken_by = np.concatenate([taken_by, ties[new]])
        order = np.argsort(taken_keys, kind="stable")
        taken_keys, taken_by = taken_keys[order], taken_by[order]
    return np.sort(np.concatenate(again)), taken_keys, taken_by


def barabasi_albert(n: int, m: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Preferential attachment: each new citizen ties to ``m`` distinct existing ones.

    Starts, like networkx, from a star of ``m + 1`` citizens, and draws targets
    uniformly from the list of tie ends so far (Batagelj and Brandes, 2005).
    The first citizens, where repeats are common and shape the hubs, are added
    one by one as networkx does; the rest are resolved for all citizens at
    once by pointer jumping, and the rare repeated targets redrawn.
    """
    if m >= n:
        raise ScenarioError("network.m", m, f"must be smaller than the population ({n})", "lower m or raise population.size")
    n_seq = min(n, max(m + 1, 200 * m))
    ends = [0] * m + list(range(1, m + 1))  # the star, as a list of tie ends
    ends_pairs = np.empty(2 * (m + (n - m - 1) * m), dtype=np.int64)
    ends_pairs[0:2 * m:2] = 0
    ends_pairs[1:2 * m:2] = np.arange(1, m + 1)
    pos = 2 * m
    for v in range(m + 1, n_seq):
        chosen: list[int] = []
        while len(chosen) < m:
            t = ends[int(rng.random() * len(ends))]
            if t not in chosen:
                chosen.append(t)
        for t in chosen:
            ends_pairs[pos] = v
            ends_pairs[pos + 1] = t
            pos += 2
            ends.extend((v, t))
    known = pos  # slots below this are fixed; the rest are resolved in bulk
    e = ends_pairs.size // 2
    k = np.arange(known // 2, e, dtype=np.int64)
    source = m + 1 + (k - m) // m
    limit = 2 * (m + (source - m - 1) * m)  # list length before the source joined
    ends_pairs[2 * k] = source
    ref = np.arange(2 * e, dtype=np.int64)
    redraw = np.arange(k.size)
    for _ in range(50):
        ref[2 * k[redraw] + 1] = (rng.random(redraw.size) * limit[redraw]).astype(np.int64)
        ptr = ref
        while True:  # pointer jumping until every slot points at a known one
            nxt = ptr[ptr]
            if np.array_equal(nxt, ptr):
                break
            ptr = nxt
        value = ends_pairs[ptr]
        targets = value[2 * k + 1].reshape(-1, m)
        order = np.argsort(targets, axis=1)
        srt = np.take_along_axis(targets, order, axis=1)
        dup = np.zeros(targets.shape, dtype=bool)
        np.put_along_axis(dup, order[:, 1:], srt[:, 1:] == srt[:, :-1], axis=1)
        redraw = np.flatnonzero(dup.ravel())
        if redraw.size == 0:
            break
    lo = value[0::2]
    hi = value[1::2]
    lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    keys = _sorted_unique((lo * n + hi)[lo != hi])
    return split_keys(keys, n)


def read_edge_list(path: Path, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Load a public, anonymous edge list (two columns of node labels).

    Lines starting with ``#`` or ``%`` are comments; columns are separated by
    whitespace or commas. Node labels are mapped onto citizens in random order,
    so groups are not tied to the file's numbering. Self-ties and duplicates
    are dropped. Only the topology is read: attributes are always generated.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ScenarioError("network.path", str(path), f"cannot read the edge list ({exc.strerror})", "check the path") from None
    pairs = []
    for no, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line[0] in "#%":
            continue
        cells = line.replace(",", " ").split()
        if len(cells) < 2:
            raise ScenarioError("network.path", f"{path}:{no}", "each line needs two node labels", "fix or remove that line")
        pairs.append((cells[0], cells[1]))
    if not pairs:
        raise ScenarioError("network.path", str(path), "the edge list has no ties", "use a file with one tie per line")
    labels, inverse = np.unique(np.array(pairs).ravel(), return_inverse=True)
    if labels.size > n:
        raise ScenarioError("population.size", n, f"smaller than the {labels.size} nodes of {path.name}",
                            f"set population.size to at least {labels.size}")
    place = rng.permutation(n)[: labels.size]
    ends = place[inverse.reshape(-1, 2)]
    lo, hi = ends.min(axis=1), ends.max(axis=1)
    keys = _sorted_unique((lo * n + hi)[lo != hi])
    return split_keys(keys, n)


def _find(sorted_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each key is in a sorted array of distinct keys, and whether it is there at all."""
    at = np.searchsorted(sorted_keys, keys)
    found = np.zeros(keys.size, dtype=bool)
    inside = at < sorted_keys.size
    found[inside] = sorted_keys[at[inside]] == keys[inside]
    return at, found


def _sorted_unique(keys: np.ndarray, kind: str = "quicksort", spread: int | None = None) -> np.ndarray:
    """Sorted distinct values (a sort and a diff: faster than np.unique's hash here).

    ``kind="stable"`` suits keys made of a few sorted runs (timsort merges them);
    ``spread``, keys drawn evenly from ``[0, spread)`` (``kernels.sort_spread``).
    """
    return distinct(np.sort(keys, kind=kind) if spread is None else sort_spread(keys, 0, spread))


def _finish(parts_src: list[np.ndarray], parts_dst: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    if not parts_src:
        return np.empty(0, dtype=np.int32), np.empty(0, dtype=np.int32)
    src = np.concatenate(parts_src).astype(np.int32, copy=False)
    dst = np.concatenate(parts_dst).astype(np.int32, copy=False)
    return src, dst
