"""The data platform: acts, the records agencies make of them, and the ledger.

Acts of a type over a block of days are drawn as one Poisson count at the
*base* rates (``r_c u m``, which no rule changes), then the citizens who act in
proportion to those rates and the day of each act; each candidate act is kept
with probability equal to its rate
multiplier (deterrence, fear, sanctions; thinning), and multipliers above 1
add a second Poisson stream. The cost grows with acts, not citizen-days, and
the same citizen draws the same candidate acts in any two runs of one city.

The :class:`Ledger` holds every record; the :class:`PointBook` turns records
into per-citizen sums of points in effect, by applying each record's start
and end as dated events.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .kernels import search_ascending, search_guide, sort_spread, stable_row_order
from .rng import name_key, stream
from .scenario import Scenario
from .scoring import to_milli


@dataclass
class Catalogue:
    """The scenario's record types and agencies as arrays, indexed by type."""

    agency_of: np.ndarray        # int16 (C,)
    coverage: np.ndarray         # float64 (C,) q of the recording agency
    delay: np.ndarray            # int32 (C,)
    validity: np.ndarray         # int32 (C,)
    serious: np.ndarray          # bool (C,)
    points_milli: np.ndarray     # int64 (S+1, C): state scheme first, then side schemes
    deterrence: np.ndarray       # float64 (C, G) by grade index
    fear: np.ndarray             # float64 (C,)
    type_keys: list[int]         # stable stream keys of the type names

    @classmethod
    def of(cls, scenario: Scenario) -> Catalogue:
        agencies = {a.name: i for i, a in enumerate(scenario.agencies)}
        grades = scenario.grade_names
        types = scenario.record_types
        points = [[to_milli(t.points) for t in types]]
        for scheme in scenario.schemes:
            points.append([to_milli(scheme.points.get(t.name, 0.0)) for t in types])
        return cls(
            agency_of=np.array([agencies[t.agency] for t in types], dtype=np.int16),
            coverage=np.array([scenario.agencies[agencies[t.agency]].coverage for t in types]),
            delay=np.array([scenario.agencies[agencies[t.agency]].delay_days for t in types], dtype=np.int32),
            validity=np.array([t.validity_days for t in types], dtype=np.int32),
            serious=np.array([t.serious for t in types], dtype=bool),
            points_milli=np.array(points, dtype=np.int64),
            deterrence=np.array([[t.deterrence.get(g, 1.0) for g in grades] for t in types]),
            fear=np.array([t.fear for t in types]),
            type_keys=[name_key(t.name) for t in types],
        )


#: Candidate acts and false records are drawn this many days at a time (one stream per block).
BLOCK_DAYS = 7


class ActSampler:
    """Draws candidate acts of one type at the base rates.

    With ``ids``, the rates are those of these citizens only (ascending), every
    other citizen's rate being 0: the draws are the same as from the full rate
    vector with zeros elsewhere (adding zeros leaves every partial sum as it
    was, and a citizen of rate 0 is never the first whose partial sum exceeds a
    needle), at a cost that grows with the citizens of positive rate.
    ``guided`` (a sampler kept for the whole run) builds a search guide once
    (``kernels.search_guide``): the same citizens, found faster.
    """

    def __init__(self, base_rate: np.ndarray, ids: np.ndarray | None = None, guided: bool = False):
        self.cumulative = np.cumsum(base_rate)
        self.total = float(self.cumulative[-1]) if base_rate.size else 0.0
        self.ids = ids
        # a sampler kept for the whole run searches by a guide (kernels.search_guide), built once
        self.guide = search_guide(self.cumulative) if guided and base_rate.size else None

    def draw(self, rng: np.random.Generator, days: int = 1) -> np.ndarray:
        """Citizen ids of the candidate acts of ``days`` days (one entry per act, ascending)."""
        count = rng.poisson(self.total * days)
        # sorted needles let each search start where the last one ended
        needles = sort_spread(rng.random(count), 0.0, 1.0) * self.total
        found = search_ascending(self.cumulative, needles, self.guide)
        return (found if self.ids is None else self.ids[found]).astype(np.int32)


@dataclass
class Candidates:
    """A block of days' candidate acts at the base rates, with their uniforms.

    Sorted by day, then record type, then citizen; ``bounds[d]:bounds[d + 1]``
    are the acts of day ``first_day + d``.
    """

    first_day: int
    citizen: np.ndarray   # int32
    rtype: np.ndarray     # int16
    keep_u: np.ndarray    # an act is kept when keep_u < its rate multiplier
    record_u: np.ndarray  # a kept act is recorded when record_u < its recording probability
    bounds: np.ndarray    # int64 (days + 1,)

    def on(self, day: int) -> slice:
        """The positions of day ``day``'s candidate acts."""
        d = day - self.first_day
        return slice(int(self.bounds[d]), int(self.bounds[d + 1]))


def draw_candidates(samplers: list[ActSampler], type_keys: list[int], seed: int, first_day: int,
                    days: int) -> Candidates:
    """Every type's candidate acts on the ``days`` days from ``first_day``.

    Per type, from stream ``("acts", first_day, type_key)``: one count
    ``Poisson(days * sum of base rates)``, the actors by inverse CDF, then a
    day, a keep uniform and a record uniform per act. Giving each act of a
    Poisson count a uniform day splits it into independent
    ``Poisson(sum of base rates)`` counts per day, the law of drawing day by
    day, at one stream per type and block instead of per type and day. The
    draws depend only on the base rates, never on the rules, so two runs of one
    city and seed have the same candidates on every day.
    """
    parts = []
    for c, (sampler, key) in enumerate(zip(samplers, type_keys)):
        rng = stream(seed, "acts", first_day, key)
        ids = sampler.draw(rng, days)
        offset = rng.integers(0, days, size=ids.size)
        parts.append((ids, np.full(ids.size, c, dtype=np.int16), offset, rng.random(ids.size), rng.random(ids.size)))
    citizen, rtype, offset, keep_u, record_u = (np.concatenate(col) for col in zip(*parts))
    # day, then type; citizens stay ascending
    order, _ = stable_row_order(offset * len(samplers) + rtype, days * len(samplers))
    bounds = np.zeros(days + 1, dtype=np.int64)
    np.cumsum(np.bincount(offset, minlength=days), out=bounds[1:])
    return Candidates(first_day=first_day, citizen=citizen[order], rtype=rtype[order], keep_u=keep_u[order],
                      record_u=record_u[order], bounds=bounds)


def draw_boost(boost: ActSampler, seed: int, day: int, type_key: int) -> tuple[np.ndarray, np.ndarray]:
    """Extra acts of one type on one day at the rates ``base * (multiplier - 1)``, and their record uniforms.

    Thinning candidates at ``min(1, multiplier)`` plus these extra acts gives
    ``Poisson(base * multiplier)``. The boost rates change with each scoring
    step, so boosts are drawn day by day (stream ``("boost", day, type_key)``).
    """
    rng = stream(seed, "boost", day, type_key)
    ids = boost.draw(rng)
    return ids, rng.random(ids.size)


@dataclass
class Ledger:
    """Every record the platform holds, appended day by day."""

    _chunks: list[tuple] = field(default_factory=list)

    def add(self, citizen: np.ndarray, rtype: np.ndarray, act_day: int | np.ndarray, effective: np.ndarray,
            is_false: bool | np.ndarray, overturned: np.ndarray | None = None) -> None:
        """Append records; ``act_day`` and ``is_false`` are one value for all or one per record."""
        n = citizen.size
        if n == 0:
            return
        if overturned is None:
            overturned = np.full(n, -1, dtype=np.int32)
        self._chunks.append((
            citizen.astype(np.int32), rtype.astype(np.int16), np.full(n, act_day, dtype=np.int32),
            effective.astype(np.int32), np.full(n, is_false), overturned.astype(np.int32),
        ))

    def __len__(self) -> int:
        return sum(c[0].size for c in self._chunks)

    def column(self, name: str) -> np.ndarray:
        """One column of the ledger (see :meth:`arrays`), without building the others."""
        names = ("citizen", "type", "act_day", "effective_day", "is_false", "overturned_day")
        dtypes = (np.int32, np.int16, np.int32, np.int32, bool, np.int32)
        i = names.index(name)
        return np.concatenate([c[i] for c in self._chunks]) if self._chunks else np.empty(0, dtype=dtypes[i])

    def arrays(self) -> dict[str, np.ndarray]:
        """The ledger as columns: citizen, type, act_day, effective_day, is_false, overturned_day (-1: never)."""
        names = ("citizen", "type", "act_day", "effective_day", "is_false", "overturned_day")
        dtypes = (np.int32, np.int16, np.int32, np.int32, bool, np.int32)
        if not self._chunks:
            return {k: np.empty(0, dtype=d) for k, d in zip(names, dtypes)}
        return {k: np.concatenate([c[i] for c in self._chunks]) for i, k in enumerate(names)}


class PointBook:
    """Per-citizen sums of what is in effect, kept by dated start/end events.

    Tracks, per citizen: state milli-points from true and from false records,
    milli-points of each side scheme, serious records in effect (true, false),
    and records in effect of each tracked type set (named lists).
    """

    def __init__(self, n: int, days: int, catalogue: Catalogue, tracked: list[np.ndarray]):
        self.catalogue = catalogue
        self.state_true = np.zeros(n, dtype=np.int64)
        self.state_false = np.zeros(n, dtype=np.int64)
        self.side = np.zeros((catalogue.points_milli.shape[0] - 1, n), dtype=np.int64)
        self.serious_true = np.zeros(n, dtype=np.int32)
        self.serious_false = np.zeros(n, dtype=np.int32)
        self.tracked_types = tracked  # one bool (C,) mask per named list
        self.tracked = np.zeros((len(tracked), n), dtype=np.int32)
        # scheduled events not yet applied: chunks of (day, citizen, type, is_false) sorted by day, and a sign
        self._pending: list[tuple] = []
        self.days = days

    def schedule(self, citizen: np.ndarray, rtype: np.ndarray, effective: np.ndarray,
                 end: np.ndarray, is_false: bool | np.ndarray) -> None:
        """Records take effect on ``effective`` and leave on ``end`` (expiry or overturn).

        ``is_false``: one flag for all records, or one per record. The starts
        and the ends are each kept as one chunk sorted by day (one sort); what
        falls due is summed, so the order of events never matters (integer
        milli-points and counts).
        """
        flags = np.broadcast_to(np.asarray(is_false, dtype=bool), citizen.shape)
        for days, sign in ((effective, 1), (end, -1)):
            days = np.asarray(days, dtype=np.int64)
            inside = np.flatnonzero(days < self.days)
            if inside.size:
                order = inside[stable_row_order(days[inside], self.days)[0]]
                self._pending.append((days[order], citizen[order], rtype[order], flags[order], sign))

    def advance(self, through_day: int) -> None:
        """Apply every event dated up to and including ``through_day``.

        The events of all those days are applied together, a few ``np.add.at``
        per sum: the cost grows with the events applied, never with the number
        of citizens or of scheduling calls.
        """
        cat = self.catalogue
        due, pending = [], []
        for days, *event in self._pending:  # each chunk sorted by day: its due events lead it
            if days[0] > through_day:
                pending.append((days, *event))
                continue
            split = int(np.searchsorted(days, through_day, side="right"))
            due.append(tuple(column[:split] for column in event[:3]) + (event[3],))
            if split < days.size:
                pending.append((days[split:], *(column[split:] for column in event[:3]), event[3]))
        self._pending = pending
        if not due:
            return
        citizen = np.concatenate([e[0] for e in due])
        rtype = np.concatenate([e[1] for e in due])
        is_false = np.concatenate([e[2] for e in due])
        sign = np.repeat(np.array([e[3] for e in due], dtype=np.int64), [e[0].size for e in due])
        pts = cat.points_milli[:, rtype] * sign
        for flag, target in ((False, self.state_true), (True, self.state_false)):
            sel = is_false == flag
            np.add.at(target, citizen[sel], pts[0][sel])
        for s in range(self.side.shape[0]):
            np.add.at(self.side[s], citizen, pts[s + 1])
        counted = sign.astype(np.int32)
        ser = cat.serious[rtype]
        if ser.any():
            for flag, target in ((False, self.serious_true), (True, self.serious_false)):
                sel = ser & (is_false == flag)
                np.add.at(target, citizen[sel], counted[sel])
        for k, mask in enumerate(self.tracked_types):
            hit = mask[rtype]
            if hit.any():
                np.add.at(self.tracked[k], citizen[hit], counted[hit])


def false_records(scenario: Scenario, catalogue: Catalogue, starts: np.ndarray, seed: int, first_day: int,
                  days: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The false records of ``days`` days from ``first_day``: citizens, types, appealed, day.

    For each agency with a false-record rate and each group g,
    ``Poisson(days * n_g e_a b_g / 365)`` records on citizens drawn uniformly
    from g, of a type drawn uniformly among the agency's types with negative
    points (on the state score or, for a company feeding only a side scheme,
    there), each on a day drawn uniformly in the block (so each day's count is
    ``Poisson(n_g e_a b_g / 365)``, independently). Sorted by day; within a
    day, by agency and group in scenario order.
    """
    appeal_p = scenario.appeals.probability
    out_c, out_t, out_a, out_d = [], [], [], []
    for a_idx, agency in enumerate(scenario.agencies):
        if agency.false_rate <= 0:
            continue
        negative = (catalogue.points_milli < 0).any(axis=0)  # on the state score or a side scheme
        types = np.flatnonzero((catalogue.agency_of == a_idx) & negative)
        if types.size == 0:
            continue
        rng = stream(seed, "false_records", first_day, name_key(agency.name))  # groups drawn in scenario order
        for g_idx, group in enumerate(scenario.population.groups):
            size = int(starts[g_idx + 1] - starts[g_idx])
            if size == 0:
                continue
            rate = size * agency.false_rate * agency.false_rate_multipliers.get(group.name, 1.0) / 365.0
            count = rng.poisson(rate * days)
            if count == 0:
                continue
            out_c.append(starts[g_idx] + rng.integers(0, size, size=count))
            out_t.append(types[rng.integers(0, types.size, size=count)])
            out_a.append(rng.random(count) < appeal_p)
            out_d.append(first_day + rng.integers(0, days, size=count))
    if not out_c:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, np.empty(0, dtype=bool), empty
    day = np.concatenate(out_d)
    order, _ = stable_row_order(day - first_day, days)
    return np.concatenate(out_c)[order], np.concatenate(out_t)[order], np.concatenate(out_a)[order], day[order]
