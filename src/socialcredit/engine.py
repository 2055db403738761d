"""The engine: owns the clock and runs the day's stages in order.

Each day: acts and their records (``records``), false records and appeals,
and on scoring days (``(t + 1) % K == 0``): points in effect, the coupled
score, grades, lists and causes (``scoring``, ``lists``), days under each
effect, tie cutting, the fear flag, and the effects now in force
(``effects``). Everything a day uses about a citizen's standing is as of
the last scoring step, after that step's tie cutting.

:class:`Engine` does ``step()`` (one day) and ``run(until=)``; stages are
plain functions that never advance time.

In cities of at least :data:`BOOKS_OFF_THREAD_MIN_CITIZENS` citizens the step's
two records of what happened, the metrics row and the change log, are written by
a second thread while the engine goes on to the next week: nothing the engine
computes reads them, they read only the step's own arrays (no later stage writes
into them) and a copy of the daily counters, and one step's books are finished
before the next step's begin, so what they hold is the same.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .effects import EffectState, effect_conditions, evaluate_effects, shared_rows
from .kernels import active_ends, add_ones, add_where, changed_rows, paired_products, stable_row_order
from .kernels import prepare as prepare_kernels
from .lists import CAUSE_NONE, ListRules, Listing, grades_and_lists
from .metrics import DAILY_COUNTERS, step_row
from .network import Ties, build_ties
from .population import Population, build_population
from .records import (BLOCK_DAYS, ActSampler, Candidates, Catalogue, Ledger, PointBook, draw_boost,
                      draw_candidates, false_records)
from .resources import LARGE_ARRAY_CITIZENS, keep_freed_memory
from .rng import keyed_base
from .scenario import Scenario
from .scoring import coupled_score, grade_index, needs_product, own_points, to_milli


@dataclass
class Standing:
    """Every citizen's standing as of the last scoring step."""

    points: np.ndarray        # own points P
    score: np.ndarray         # coupled score S
    grade: np.ndarray         # int8 grade index of S
    listing: Listing
    feared: np.ndarray        # an active neighbour is blacklisted
    side_scores: np.ndarray   # (S, N) side schemes' scores
    effects: EffectState


#: A citizen's score is logged again once it has moved this many points since it was last logged.
SCORE_RESOLUTION = 2.0

#: From this many citizens on, each step's metrics row and change log are written off the engine's thread.
#: In smaller cities the two threads' turns at the interpreter lock cost more than the overlap saves.
BOOKS_OFF_THREAD_MIN_CITIZENS = 300_000


class OffThread:
    """One task at a time on a second thread; :meth:`wait` finishes it and raises what it raised.

    On a machine with two cores, most of a step outside the solver runs on one
    of them: bookkeeping that nothing downstream waits for can use the other.
    A task calls no parallel compiled kernel (Numba's workqueue threading layer
    runs one parallel region at a time in a process).
    """

    def __init__(self, name: str):
        self.name = name
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, task: Callable[[], None]) -> None:
        """Run ``task`` once the one before it has finished."""
        self.wait()
        self._thread = threading.Thread(target=self._run, args=(task,), name=self.name, daemon=True)
        self._thread.start()

    def _run(self, task: Callable[[], None]) -> None:
        try:
            task()
        except BaseException as exc:  # noqa: BLE001 - handed to the engine's thread by wait()
            self._error = exc

    def wait(self) -> None:
        """Finish the task under way, if any; raise its exception on this thread."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error


@dataclass
class Changes:
    """The compact history of standings: one row per citizen and step where something changed.

    A row is logged when the citizen's grade, lists or cause changed, or when her
    score moved by at least :data:`SCORE_RESOLUTION` points since her last row.
    Between two rows her score stayed within that distance of the last logged
    value; ``replay.standing_at`` recomputes any step exactly.
    """

    chunks: list[tuple] = field(default_factory=list)
    logged_score: np.ndarray | None = None

    def add(self, step: int, day: int, old: Standing, new: Standing) -> None:
        if self.logged_score is None:
            self.logged_score = old.score.copy()
        lst, prev = new.listing, old.listing
        ids = changed_rows((new.grade, lst.black, lst.red, lst.cause), (old.grade, prev.black, prev.red, prev.cause),
                           new.score, self.logged_score, SCORE_RESOLUTION)
        if ids.size:
            self.logged_score[ids] = new.score[ids]
            self.chunks.append((ids.astype(np.int32), np.full(ids.size, step, np.int32), np.full(ids.size, day, np.int32),
                                new.points[ids], new.score[ids], new.grade[ids], lst.black[ids], lst.red[ids],
                                lst.cause[ids]))


class Engine:
    """A running simulation of one scenario and seed.

    Parameters
    ----------
    scenario : Scenario
        The validated scenario.
    seed : int, optional
        Overrides ``scenario.seed``.

    Examples
    --------
    >>> from socialcredit.scenario import load_scenario
    >>> eng = Engine(load_scenario("scenarios/reference.toml", ["population.size=50"]))
    >>> eng.run(until=14)
    >>> eng.day, len(eng.metrics)
    (14, 2)
    """

    def __init__(self, scenario: Scenario, seed: int | None = None):
        t0 = time.perf_counter()
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        if scenario.population.size >= LARGE_ARRAY_CITIZENS:
            keep_freed_memory()  # reuse the steps' large temporaries instead of zeroing fresh pages
        prepare_kernels(scenario.population.size)  # Numba's import overlaps the build
        self.day = 0
        self.step_index = 0
        self.timings: dict[str, float] = {"build": 0.0, "acts": 0.0, "scoring": 0.0}
        self.population: Population = build_population(scenario, self.seed)
        self.ties: Ties = build_ties(scenario.network, self.population, self.seed)
        self.degree_start = self.ties.degree(active_only=False)
        self.catalogue = Catalogue.of(scenario)
        self.rules = ListRules.of(scenario)
        self.samplers = [ActSampler(row, guided=True) for row in self.population.base_rate]
        self.boosts: list[ActSampler | None] = [None] * len(scenario.record_types)
        self._candidates: Candidates | None = None  # this block's candidate acts (drawn on its first day)
        self._false: tuple = ()                      # this block's false records and their day bounds
        self._block_start = 0
        tracked = [np.array([t in nl.record_types for t in scenario.type_names]) for nl in scenario.lists.named]
        n, days, n_types = self.population.size, scenario.days, len(scenario.record_types)
        self.book = PointBook(n, days, self.catalogue, tracked)
        self.ledger = Ledger()
        self.daily = {name: np.zeros((days, n_types), dtype=np.int64) for name in DAILY_COUNTERS}
        first, self._condition_of = effect_conditions(scenario)
        self.condition_days = np.zeros((len(first), n), dtype=np.int32)  # days each distinct condition held
        self.acts_by_citizen = np.zeros((n_types, n), dtype=np.int32)
        self._metrics: list[dict[str, float | int]] = []
        self._changes = Changes()
        self._books = OffThread("socialcredit-books") if n >= BOOKS_OFF_THREAD_MIN_CITIZENS else None
        self.ties_cut_total = 0
        self.period_start = 0
        self.cut_p = np.array([k.cut_probability if k.cut_probability is not None else scenario.network.cut_probability
                               for k in scenario.network.kinds])
        kinds = [k.name for k in scenario.network.kinds]
        spills = any(e.target == "family" for e in scenario.effects) and "family" in kinds
        self._family_kind = kinds.index("family") if spills else -1
        self._family_ids = np.flatnonzero(self.ties.kind == self._family_kind) if spills else None
        self._family_ends: tuple | None = None  # (family ties cut so far, their ends) as of the last look
        self.standing = self._initial_standing()
        self._update_boosts(self.standing)
        self.timings["build"] = time.perf_counter() - t0

    @property
    def metrics(self) -> list[dict[str, float | int]]:
        """One row per scoring step so far (``metrics.step_row``)."""
        self._settle_books()
        return self._metrics

    @property
    def changes(self) -> Changes:
        """The change log of standings so far."""
        self._settle_books()
        return self._changes

    def _settle_books(self) -> None:
        if self._books is not None:
            self._books.wait()

    # -- the clock -----------------------------------------------------------
    def step(self) -> None:
        """Advance one day: acts and records, then score if it is a scoring day."""
        if self.day >= self.scenario.days:
            raise RuntimeError(f"the run is over: it has {self.scenario.days} days")
        self._advance(self.day)

    def run(self, until: int | None = None, progress: Callable[[int, int], None] | None = None) -> None:
        """Run up to day ``until`` (default: the scenario's last day).

        The days up to the next scoring day are done together (within a block
        of drawn candidates): the standing that governs them cannot change
        before then, so the draws, records and their order are those of
        :meth:`step` day by day. ``progress(day, days)`` is called after each
        such stretch.
        """
        end = self.scenario.days if until is None else min(until, self.scenario.days)
        every = self.scenario.scoring.every_days
        while self.day < end:
            t = self.day
            scoring_day, block_last = (t // every + 1) * every - 1, (t // BLOCK_DAYS + 1) * BLOCK_DAYS - 1
            self._advance(min(scoring_day, block_last, end - 1))
            if progress is not None:
                progress(self.day, self.scenario.days)
        self._settle_books()

    def _advance(self, last: int) -> None:
        """Days ``self.day`` to ``last`` (no scoring day before ``last``): acts and records, then scoring."""
        t0 = time.perf_counter()
        self._acts_and_records(self.day, last)
        t1 = time.perf_counter()
        self.timings["acts"] += t1 - t0
        if (last + 1) % self.scenario.scoring.every_days == 0:
            self._score(last)
            self.timings["scoring"] += time.perf_counter() - t1
        self.day = last + 1
        if self.day == self.scenario.days:
            self._count_effect_days(self.period_start, self.day - 1)
            self._settle_books()

    # -- stages --------------------------------------------------------------
    def _initial_standing(self) -> Standing:
        sc = self.scenario
        n = self.population.size
        start = np.full(n, float(sc.scoring.start))
        grade = grade_index(start, sc.scoring.grades)
        listing = Listing(black=np.zeros(n, bool), red=np.zeros(n, bool),
                          cause=np.full(n, CAUSE_NONE, np.int8), named=np.zeros((len(sc.lists.named), n), bool))
        side = np.array([np.full(n, float(s.start)) for s in sc.schemes]).reshape(len(sc.schemes), n)
        effects = evaluate_effects(sc, grade, listing, side, self._family_ties()) if sc.system else _no_effects(sc, n)
        return Standing(points=start, score=start.copy(), grade=grade, listing=listing,
                        feared=np.zeros(n, bool), side_scores=side, effects=effects)

    def _draw_block(self, t: int) -> None:
        """Draw the candidate acts and false records of the block of days starting on day ``t``."""
        days = min(BLOCK_DAYS, self.scenario.days - t)
        self._candidates = draw_candidates(self.samplers, self.catalogue.type_keys, self.seed, t, days)
        citizens, types, appealed, day = false_records(self.scenario, self.catalogue, self.population.starts,
                                                       self.seed, t, days)
        self._false = (citizens, types.astype(np.int16), appealed, day, np.searchsorted(day, np.arange(t, t + days + 1)))
        self._block_start = t

    def _keep_probability(self, ids: np.ndarray, types: np.ndarray) -> np.ndarray:
        """Each candidate act's rate multiplier ``M[c, i]`` (kept when its keep uniform is below it)."""
        st = self.standing
        cat = self.catalogue
        if not self.scenario.system:
            return np.ones(ids.size)
        m = cat.deterrence[types, st.grade[ids]]
        m = m * np.where(st.feared[ids], cat.fear[types], 1.0)
        for row, rtypes in shared_rows(st.effects.rate_multiplier):
            sel = np.flatnonzero(np.isin(types, rtypes))
            m[sel] = m[sel] * row[ids[sel]]
        return m

    def _record_probability(self, ids: np.ndarray, types: np.ndarray) -> np.ndarray:
        """Each act's chance of being recorded: its agency's coverage times the surveillance multipliers."""
        cat = self.catalogue
        factor = np.ones(ids.size)
        agency = cat.agency_of[types]
        for row, agencies in shared_rows(self.standing.effects.record_multiplier):
            sel = np.flatnonzero(np.isin(agency, agencies))
            factor[sel] = row[ids[sel]]
        return np.minimum(1.0, cat.coverage[types] * factor)

    def _acts_and_records(self, first: int, last: int) -> None:
        """Acts, true and false records of days ``first`` to ``last`` (one block, one standing).

        The ledger gets them day by day: a day's true records (by type, candidates
        before boost acts), then its false records.
        """
        cat = self.catalogue
        n_types = len(self.scenario.record_types)
        if first % BLOCK_DAYS == 0:
            self._draw_block(first)
        cand = self._candidates
        days = last - first + 1
        per_day = np.diff(cand.bounds[first - cand.first_day:last + 2 - cand.first_day])
        span = slice(cand.on(first).start, cand.on(last).stop)
        ids, types = cand.citizen[span], cand.rtype[span]
        day = np.repeat(np.arange(first, last + 1, dtype=np.int32), per_day)
        kept = cand.keep_u[span] < self._keep_probability(ids, types)
        ids, types, record_u, day = ids[kept], types[kept], cand.record_u[span][kept], day[kept]
        extra = [(d, c, *draw_boost(boost, self.seed, d, cat.type_keys[c])) for d in range(first, last + 1)
                 for c, boost in enumerate(self.boosts) if boost is not None and boost.total > 0]
        if extra:  # boost acts follow the kept candidates of their day and type
            ids = np.concatenate([ids] + [e[2] for e in extra])
            types = np.concatenate([types] + [np.full(e[2].size, e[1], dtype=np.int16) for e in extra])
            record_u = np.concatenate([record_u] + [e[3] for e in extra])
            day = np.concatenate([day] + [np.full(e[2].size, e[0], dtype=np.int32) for e in extra])
        cells = (day - first).astype(np.int64) * n_types + types  # a day's cell of each act, type by type
        if extra:  # in day-and-type order, each day's boost acts after its kept candidates
            order, _ = stable_row_order(cells, days * n_types)
            ids, types, record_u, day, cells = ids[order], types[order], record_u[order], day[order], cells[order]
        self.daily["acts"][first:last + 1] = np.bincount(cells, minlength=days * n_types).reshape(days, n_types)
        add_ones(self.acts_by_citizen, types, ids)
        recorded = record_u < self._record_probability(ids, types)
        ids, types, day = ids[recorded], types[recorded], day[recorded]
        self.daily["true_records"][first:last + 1] = np.bincount(
            cells[recorded], minlength=days * n_types).reshape(days, n_types)
        citizens_f, types_f, appealed_f, day_f, bounds = self._false
        false = slice(int(bounds[first - self._block_start]), int(bounds[last + 1 - self._block_start]))
        citizens_f, types_f, appealed_f, day_f = citizens_f[false], types_f[false], appealed_f[false], day_f[false]
        np.add.at(self.daily["false_records"], (day_f, types_f), 1)
        is_false = np.concatenate([np.zeros(ids.size, bool), np.ones(citizens_f.size, bool)])
        day = np.concatenate([day, day_f])
        by_day = (day - first).astype(np.int64) * 2 + is_false  # by day, true records first
        order, _ = stable_row_order(by_day, 2 * days)
        self._enter(np.concatenate([ids, citizens_f])[order], np.concatenate([types, types_f])[order], day[order],
                    is_false[order], np.concatenate([np.zeros(ids.size, bool), appealed_f])[order])

    def _enter(self, citizens: np.ndarray, types: np.ndarray, day: np.ndarray, is_false: np.ndarray,
               appealed: np.ndarray) -> None:
        """Records made on ``day``: scheduled in the point book and added to the ledger (in this order)."""
        if citizens.size == 0:
            return
        cat = self.catalogue
        effective = day + cat.delay[types].astype(np.int64)
        overturn_day = effective + self.scenario.appeals.days
        end = np.where(appealed, np.minimum(effective + cat.validity[types], overturn_day), effective + cat.validity[types])
        counted = appealed & (overturn_day < self.scenario.days)
        np.add.at(self.daily["overturned"], (overturn_day[counted], types[counted]), 1)
        self.book.schedule(citizens, types, effective, end, is_false)
        self.ledger.add(citizens, types, day, effective, is_false, np.where(appealed, overturn_day, -1))

    def _score(self, t: int) -> None:
        sc = self.scenario
        old = self.standing
        self._count_effect_days(self.period_start, t)
        self.period_start = t + 1
        new, iterations = self._new_standing(t)
        if sc.system:
            ties_cut, new.feared = self.ties.cut_and_fear(new.listing.black, keyed_base(self.seed, "tie_cut", self.step_index),
                                                          self.cut_p, t)
            self.ties_cut_total += ties_cut
            new.effects = evaluate_effects(sc, new.grade, new.listing, new.side_scores, self._family_ties())
            self._update_boosts(new)
        else:  # the platform keeps its books, but nothing acts on them
            ties_cut = 0
        self.standing = new
        step = self.step_index
        # the counters of the days up to t, copied where the books are written off the thread: the next
        # days' acts add to the counters meanwhile
        daily = self.daily
        if self._books is not None:
            daily = {name: table[:t + 1].copy() for name, table in daily.items()}
        row_args = (sc, self.population, step, t, t + 1 - sc.scoring.every_days, new.grade, new.listing, new.score,
                    new.points, daily, ties_cut, self.ties_cut_total, self.ties.n_active,
                    new.effects.applied_counts(), new.side_scores, iterations)

        def books() -> None:
            self._changes.add(step, t, old, new)
            self._metrics.append(step_row(*row_args))

        if self._books is None:
            books()
        else:
            self._books.submit(books)
        self.step_index += 1

    def _new_standing(self, t: int) -> tuple[Standing, int]:
        sc = self.scenario
        book = self.book
        book.advance(t)
        scoring = sc.scoring
        bounds = (scoring.start, scoring.min, scoring.max)
        points_true = own_points(book.state_true, *bounds)
        points = own_points(book.state_true, *bounds, extra_milli=book.state_false)
        strength = self.ties.weighted_degree()
        adjacency = self.ties.adjacency
        own = [points] + [own_points(book.side[s], scheme.start, scheme.min, scheme.max)
                          for s, scheme in enumerate(sc.schemes)]
        couplings = [sc.coupling] + [scheme.coupling for scheme in sc.schemes]
        product = self._first_products(own, couplings)
        score, iterations = coupled_score(points, adjacency, sc.coupling, strength, product[0])
        grade, listing = grades_and_lists(self.rules, scoring.grades, score, points_true, points, book.serious_true,
                                          book.serious_false, book.tracked)
        side = np.empty((len(sc.schemes), points.size))
        for s, scheme in enumerate(sc.schemes):
            side[s], _ = coupled_score(own[1 + s], adjacency, scheme.coupling, strength, product[1 + s])
        return Standing(points=points, score=score, grade=grade, listing=listing, feared=self.standing.feared,
                        side_scores=side, effects=self.standing.effects), iterations

    def _first_products(self, own: list[np.ndarray], couplings: list) -> list[np.ndarray | None]:
        """``A P`` for each scheme whose coupled score starts from it, two per pass where that pays.

        The state's score and the side scores all begin with a product of the same matrix; a pass is
        bound by gathering neighbours' values, so two products in one pass cost little more than one.
        """
        wanted = [s for s, coupling in enumerate(couplings) if needs_product(coupling)]
        found = paired_products(self.ties.adjacency, [own[s] for s in wanted]) if len(wanted) > 1 else None
        product: list[np.ndarray | None] = [None] * len(own)
        for s, p in zip(wanted, found or []):
            product[s] = p
        return product

    def _update_boosts(self, st: Standing) -> None:
        """Extra act streams where the full rate multiplier exceeds 1 for some citizen."""
        cat = self.catalogue
        base = self.population.base_rate
        raised_by_row: dict[int, np.ndarray] = {}  # types that share a rate multiplier share its raised citizens
        for c in range(len(self.scenario.record_types)):
            self.boosts[c] = None
            if not self.scenario.system:
                continue
            row = st.effects.rate_multiplier.get(c)
            if (cat.deterrence[c] == 1.0).all() and cat.fear[c] == 1.0:
                # the full multiplier is the effects' rate factor itself (1 * 1 * factor, bit for bit)
                if row is None:
                    continue
                if id(row) not in raised_by_row:
                    raised_by_row[id(row)] = np.flatnonzero(row > 1.0)
                raised = raised_by_row[id(row)]
                full = row[raised]
            else:
                can_exceed = cat.deterrence[c].max() > 1.0 or cat.fear[c] > 1.0 or st.effects.rate_raised(c)
                if not can_exceed:
                    continue
                every = cat.deterrence[c, st.grade] * np.where(st.feared, cat.fear[c], 1.0)
                every = every * st.effects.rate_factor(c, slice(None))
                raised = np.flatnonzero(every > 1.0)
                full = every[raised]
            if raised.size:
                self.boosts[c] = ActSampler(base[c, raised] * (full - 1.0), ids=raised)

    def effect_days_of(self, effect: int) -> np.ndarray:
        """int32 (N,): days the effect applied to each citizen, up to the last day run (a view)."""
        return self.condition_days[self._condition_of[effect]]

    def _count_effect_days(self, first: int, last: int) -> None:
        if last >= first and self.condition_days.size:
            add_where(self.condition_days, last - first + 1, self.standing.effects.conditions)

    def _family_ties(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Ends of the active family ties, when some effect spills over to family.

        Kept until a family tie is cut (family ties are rarely cut, and the ends of
        a million of them cost a pass each time).
        """
        if self._family_ids is None:
            return None
        cut = int(self.ties.cuts_by_kind[self._family_kind])
        if self._family_ends is None or self._family_ends[0] != cut:
            self._family_ends = (cut, *active_ends(self._family_ids, self.ties.active, self.ties.src, self.ties.dst))
        return self._family_ends[1], self._family_ends[2]


def _no_effects(scenario: Scenario, n: int) -> EffectState:
    first, condition_of = effect_conditions(scenario)
    return EffectState(conditions=np.zeros((len(first), n), bool), condition_of=condition_of, record_multiplier={},
                       rate_multiplier={})


__all__ = ["Engine", "Standing", "to_milli"]
