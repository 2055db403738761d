"""The reference model of ``shared/MODEL.md`` written the agent-based way, in Mesa 3.

This is the side-by-side baseline for socialcredit's vectorised engine (issue
"Scale and speed"): the same model, written the way a competent Mesa 3 user
would write it, so that the engine's speed can be compared with the tool one
would otherwise reach for. It is deliberately *not* vectorised: every citizen
is a :class:`mesa.Agent` with its own ``step()``, its own ledger (a Python
list of :class:`Record`) and its own score; the ties are a networkx graph; the
model's ``step()`` is one day; a :class:`mesa.DataCollector` collects the
metrics at every scoring step. It is a fair baseline, not a strawman: the
per-citizen act rates are cached between scoring steps (they only change
there), and acts are drawn with a small exact Poisson sampler on the model's
``random`` stream rather than with numpy's scalar ``rng.poisson`` (same law,
about a third of the per-call cost).

Every parameter is read from a validated socialcredit ``Scenario`` (so
``--set``-style overrides work), e.g.::

    import socialcredit as sc
    scenario = sc.load_scenario("scenarios/reference.toml", ["population.size=500", "days=182"])
    model = ReferenceModel(scenario, seed=3)
    model.run()
    model.last_row()["blacklisted"]

Randomness goes only through Mesa's own generators, seeded by Mesa's ``seed``
argument (default: ``scenario.seed``): ``model.rng`` (numpy) for group sizes,
propensities and false-record counts, ``model.random`` (stdlib) for the
network, acts, recording, false-record targets, appeals and tie cutting. The
draws are *not* the engine's (the engine keys every draw by what it is for);
the two agree in law, which ``tests/test_mesa_baseline.py`` checks.

Only the features the reference model uses are implemented: groups with rate
multipliers, an SBM network with tie kinds (weights, cut probabilities),
agencies with coverage, delay and false records, record types with
heterogeneity, deterrence, fear and ``serious``, the three coupling modes,
red/black lists with causes, appeals, and ``surveillance`` effects on grades
or the red/black list (target ``self``). Anything else (side schemes, named
lists, ``rate`` effects, family spill-over, ``system = false``, other network
generators) raises ``NotImplementedError`` rather than silently differing;
``ban``/``privilege`` effects have no consequence inside the model and are
ignored (their day counts are not kept).
"""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from dataclasses import dataclass

import mesa
import networkx as nx

CAUSES = ("record", "error", "association")

#: Above this rate the stdlib inversion sampler hands over to numpy (never reached by the reference model).
_INVERSION_MAX_RATE = 30.0


def poisson(lam: float, random) -> int:
    """One Poisson(``lam``) draw by inversion from ``random()`` uniforms (exact for small ``lam``).

    >>> import random
    >>> poisson(0.0, random.Random(1).random)
    0
    """
    u = random()
    p = math.exp(-lam)
    cdf = p
    k = 0
    while u >= cdf and p > 0.0:
        k += 1
        p *= lam / k
        cdf += p
    return k


@dataclass(slots=True)
class Record:
    """One entry of a citizen's ledger."""

    type: int             # index of the record type
    made: int             # day the record was made (the act's day, or the false record's day)
    effective: int        # day it takes effect: made + D_a
    end: int              # first day it is no longer valid: effective + V_c
    false: bool           # a false record
    overturned: int | None  # overturn day of an appealed false record, else None

    def in_effect(self, day: int) -> bool:
        return self.effective <= day < self.end and (self.overturned is None or day < self.overturned)


class Citizen(mesa.Agent):
    """A synthetic citizen: acts every day, and is scored, graded and listed every K days."""

    def __init__(self, model: ReferenceModel, node: int, group: int):
        super().__init__(model)
        self.node = node          # her node in model.G (citizens are numbered group by group)
        self.group = group
        # Base rate per record type: r_c * u[g, c] * m[i, c], with m ~ Gamma(h_c, 1/h_c) (1 where h_c = inf).
        self.base_rate = []
        for c, rt in enumerate(model.scenario.record_types):
            m = 1.0 if math.isinf(rt.heterogeneity) else model.rng.gamma(rt.heterogeneity, 1.0 / rt.heterogeneity)
            self.base_rate.append(rt.rate * model.group_multiplier[group][c] * m)
        self.ledger: list[Record] = []
        start = model.scenario.scoring.start
        self.points_true = self.points = self.score = self.next_score = float(start)
        self.serious_true = self.serious_false = False
        self.grade = model.grade_of(start)
        self.black = self.red = False
        self.cause: str | None = None
        self.feared = False
        self.update_rates()

    # -- every day ---------------------------------------------------------
    def step(self) -> None:
        """Today's acts of every type, each recorded by its agency with probability min(1, q_a s(grade))."""
        model = self.model
        rand = model.random.random
        for c, lam in enumerate(self.rate):
            if lam <= 0.0:
                continue
            n = poisson(lam, rand) if lam < _INVERSION_MAX_RATE else int(model.rng.poisson(lam))
            if n:
                model.acts[c] += n
                p = self.p_record[c]
                for _ in range(n):
                    if rand() < p:
                        model.add_record(self, c, model.day, is_false=False)

    # -- at a scoring step, in this order ----------------------------------
    def tally_points(self, day: int) -> None:
        """Own points from the records in effect on ``day`` (true alone, and with the false ones)."""
        model = self.model
        true_sum = false_sum = 0.0
        self.serious_true = self.serious_false = False
        for rec in self.ledger:
            if rec.in_effect(day):
                if rec.false:
                    false_sum += model.points[rec.type]
                    self.serious_false = self.serious_false or model.serious[rec.type]
                else:
                    true_sum += model.points[rec.type]
                    self.serious_true = self.serious_true or model.serious[rec.type]
        self.points_true = model.clip(model.start + true_sum)
        self.points = model.clip(model.start + true_sum + false_sum)
        self.score = self.points  # the coupling iterates from S = P

    def propose_score(self) -> None:
        """One Jacobi update S_i <- (1-k) P_i + k sum_j w_ij S_j / sum_j w_ij over her active ties."""
        model = self.model
        ties = model.G.adj[self.node]
        if not ties:
            self.next_score = self.points
            return
        citizens = model.citizens
        total = weight = 0.0
        for j, tie in ties.items():
            w = tie["weight"]
            total += w * citizens[j].score
            weight += w
        self.next_score = (1.0 - model.kappa) * self.points + model.kappa * total / weight

    def commit_score(self) -> float:
        change = abs(self.next_score - self.score)
        self.score = self.next_score
        return change

    def classify(self) -> None:
        """Grade of S, black and red list, and the cause of a blacklisting."""
        model = self.model
        self.grade = model.grade_of(self.score)
        serious = model.serious_blacklists and (self.serious_true or self.serious_false)
        self.black = model.black_grade[self.grade] or serious
        self.red = model.red_grade[self.grade] and not self.black
        if not self.black:
            self.cause = None
        elif model.black_grade[model.grade_of(self.points_true)] or (model.serious_blacklists and self.serious_true):
            self.cause = "record"
        elif model.black_grade[model.grade_of(self.points)] or (model.serious_blacklists and self.serious_false):
            self.cause = "error"
        else:
            self.cause = "association"

    def update_behaviour(self) -> None:
        """After tie cutting: the fear flag, then the rates and recording chances until the next step."""
        citizens = self.model.citizens
        self.feared = any(citizens[j].black for j in self.model.G.adj[self.node])
        self.update_rates()

    def update_rates(self) -> None:
        model = self.model
        self.rate = [
            base * model.deterrence[c][self.grade] * (model.fear[c] if self.feared else 1.0)
            for c, base in enumerate(self.base_rate)
        ]
        surveillance = [1.0] * len(model.coverage)
        for grades, lists, agencies, multiplier in model.surveillance_effects:
            if self.grade in grades or ("black" in lists and self.black) or ("red" in lists and self.red):
                for a in agencies:
                    surveillance[a] *= multiplier
        self.p_record = [min(1.0, model.coverage[a] * surveillance[a]) for a in model.agency_of]


class ReferenceModel(mesa.Model):
    """The reference social credit system over synthetic citizens; ``step()`` is one day.

    Parameters
    ----------
    scenario : socialcredit.Scenario
        A validated scenario (e.g. ``load_scenario("scenarios/reference.toml", overrides)``).
    seed : int, optional
        Passed to :class:`mesa.Model` as its ``seed``; default ``scenario.seed``.
    """

    def __init__(self, scenario, seed: int | None = None):
        super().__init__(seed=scenario.seed if seed is None else seed)
        t0 = time.perf_counter()
        _check_supported(scenario)
        self.scenario = scenario
        self.days = scenario.days
        self.day = 0
        sc = scenario.scoring
        self.start, self.p_min, self.p_max, self.every = float(sc.start), float(sc.min), float(sc.max), sc.every_days
        self.thresholds = [g.min for g in sc.grades]
        grades = [g.name for g in sc.grades]
        self.black_grade = [g in scenario.lists.black_grades for g in grades]
        self.red_grade = [g in scenario.lists.red_grades for g in grades]
        self.serious_blacklists = scenario.lists.serious_blacklists
        self.kappa = scenario.coupling.kappa
        self.coupling_mode = scenario.coupling.mode
        self.tolerance = scenario.coupling.tolerance

        agencies = [a.name for a in scenario.agencies]
        types = scenario.record_types
        self.coverage = [a.coverage for a in scenario.agencies]
        self.agency_of = [agencies.index(t.agency) for t in types]
        self.delay = [scenario.agencies[a].delay_days for a in self.agency_of]
        self.validity = [t.validity_days for t in types]
        self.points = [t.points for t in types]
        self.serious = [t.serious for t in types]
        self.fear = [t.fear for t in types]
        self.deterrence = [[t.deterrence.get(g, 1.0) for g in grades] for t in types]
        self.group_multiplier = [[g.rate_multipliers.get(t.name, 1.0) for t in types] for g in scenario.population.groups]
        self.surveillance_effects = [
            ({grades.index(g) for g in e.when.grades}, set(e.when.lists),
             [agencies.index(a) for a in e.agencies] or list(range(len(agencies))), e.multiplier)
            for e in scenario.effects if e.kind == "surveillance"
        ]
        self.p_appeal, self.appeal_days = scenario.appeals.probability, scenario.appeals.days
        # False records: (agency delay, e_a, b_g per group, its types with negative points).
        groups = [g.name for g in scenario.population.groups]
        self.false_sources = []
        for a, agency in enumerate(scenario.agencies):
            negative = [c for c, t in enumerate(types) if self.agency_of[c] == a and t.points < 0]
            if agency.false_rate > 0 and negative:
                self.false_sources.append((agency.false_rate, [agency.false_rate_multipliers.get(g, 1.0) for g in groups],
                                           negative))

        # Counters (cumulative, per record type) and the overturns due on later days.
        n_types = len(types)
        self.acts = [0] * n_types
        self.true_records = [0] * n_types
        self.false_records = [0] * n_types
        self.overturned = [0] * n_types
        self._overturns_due: dict[int, Counter] = defaultdict(Counter)
        self.ties_cut = self.ties_cut_cum = 0
        self.solver_iterations = 0
        self.scoring_step = -1

        # Citizens, group by group: sizes ~ Multinomial(N, shares).
        shares = [g.share for g in scenario.population.groups]
        n = scenario.population.size
        sizes = [int(s) for s in self.rng.multinomial(n, [s / sum(shares) for s in shares])]
        self.citizens: list[Citizen] = []
        self.members: list[list[Citizen]] = []
        for g, size in enumerate(sizes):
            self.members.append([Citizen(self, len(self.citizens) + i, g) for i in range(size)])
            self.citizens.extend(self.members[g])

        # Ties: a stochastic block model over the groups, every tie active (a cut tie is removed).
        self.G = _sbm(scenario.network, sizes, self.random)
        self.ties_start = self.G.number_of_edges()
        self._standing_counts()

        reporters = {"step": "scoring_step", "day": "day"}
        reporters.update({f"grade_{name}": (lambda m, g=g: m.grade_counts[g]) for g, name in enumerate(grades)})
        for key in ("blacklisted", "redlisted", "black_by_record", "black_by_error", "black_by_association",
                    "ties_cut", "ties_cut_cum"):
            reporters[key] = key
        reporters["ties_active"] = lambda m: m.G.number_of_edges()
        for counter in ("acts", "true_records", "false_records", "overturned"):
            for c, t in enumerate(types):
                reporters[f"{counter}_{t.name}_cum"] = lambda m, counter=counter, c=c: getattr(m, counter)[c]
        reporters["mean_score"] = "mean_score"
        reporters["solver_iterations"] = "solver_iterations"
        self.datacollector = mesa.DataCollector(model_reporters=reporters)
        self.timings = {"build": time.perf_counter() - t0, "acts": 0.0, "scoring": 0.0}

    # -- helpers -------------------------------------------------------------
    def clip(self, p: float) -> float:
        return min(max(p, self.p_min), self.p_max)

    def grade_of(self, score: float) -> int:
        """The highest grade whose threshold the score reaches; the lowest grade catches the rest."""
        for g, threshold in enumerate(self.thresholds):
            if score >= threshold:
                return g
        return len(self.thresholds) - 1

    def add_record(self, citizen: Citizen, c: int, day: int, is_false: bool, appealed: bool = False) -> None:
        effective = day + self.delay[c]
        overturn = effective + self.appeal_days if appealed else None
        citizen.ledger.append(Record(c, day, effective, effective + self.validity[c], is_false, overturn))
        if is_false:
            self.false_records[c] += 1
            if appealed:
                self._overturns_due[overturn][c] += 1
        else:
            self.true_records[c] += 1

    # -- the day -------------------------------------------------------------
    def step(self) -> None:
        t = self.day
        if t >= self.days:
            raise RuntimeError(f"the run is over: it has {self.days} days")
        t0 = time.perf_counter()
        # Acts and their records. The order of citizens does not matter (their acts are independent
        # and nothing they do today is seen before the next scoring step), so plain do(), not shuffle_do().
        self.agents.do("step")
        self.make_false_records(t)
        for c, k in self._overturns_due.pop(t, {}).items():
            self.overturned[c] += k
        t1 = time.perf_counter()
        self.timings["acts"] += t1 - t0
        if (t + 1) % self.every == 0:
            self.score(t)
            self.timings["scoring"] += time.perf_counter() - t1
        self.day += 1

    def make_false_records(self, t: int) -> None:
        """Per agency and group: Poisson(n_g e_a b_g / 365) false records on uniform members, appealed w.p. p_appeal."""
        for rate, multipliers, negative in self.false_sources:
            for g, members in enumerate(self.members):
                if not members:
                    continue
                for _ in range(int(self.rng.poisson(len(members) * rate * multipliers[g] / 365.0))):
                    citizen = self.random.choice(members)
                    c = self.random.choice(negative)
                    appealed = self.random.random() < self.p_appeal
                    self.add_record(citizen, c, t, is_false=True, appealed=appealed)

    def score(self, t: int) -> None:
        """The scoring step at the end of day t: points, coupling, grades and lists, tie cutting, fear."""
        self.scoring_step += 1
        self.agents.do("tally_points", t)
        self.solver_iterations = self.couple()
        self.agents.do("classify")
        self.ties_cut = self.cut_ties()
        self.ties_cut_cum += self.ties_cut
        self.agents.do("update_behaviour")
        self._standing_counts()
        self.datacollector.collect(self)

    def couple(self) -> int:
        """S = (1-k) P + k W S by Jacobi iteration from S = P until the largest change is below the tolerance."""
        if self.coupling_mode == "none" or self.kappa == 0.0:
            return 0
        iterations = 0
        while True:
            self.agents.do("propose_score")
            change = max(self.agents.map("commit_score"))
            iterations += 1
            if self.coupling_mode == "neighbour_mean" or change < self.tolerance:
                return iterations
            if iterations >= 100_000:
                raise RuntimeError(f"coupling did not converge (last change {change})")

    def cut_ties(self) -> int:
        """Each active tie with exactly one blacklisted end is cut with its kind's p_cut."""
        citizens = self.citizens
        cut = [(u, v) for u, v, p in self.G.edges(data="p_cut")
               if citizens[u].black != citizens[v].black and self.random.random() < p]
        self.G.remove_edges_from(cut)
        return len(cut)

    def _standing_counts(self) -> None:
        grades = Counter(c.grade for c in self.citizens)
        self.grade_counts = [grades.get(g, 0) for g in range(len(self.thresholds))]
        causes = Counter(c.cause for c in self.citizens if c.black)
        self.blacklisted = sum(causes.values())
        self.redlisted = sum(1 for c in self.citizens if c.red)
        self.black_by_record, self.black_by_error, self.black_by_association = (causes.get(k, 0) for k in CAUSES)
        self.mean_score = sum(c.score for c in self.citizens) / max(len(self.citizens), 1)

    # -- running ---------------------------------------------------------------
    def run(self, days: int | None = None) -> None:
        """Run ``days`` more days (default: to the scenario's last day)."""
        end = self.days if days is None else min(self.day + days, self.days)
        while self.day < end:
            self.step()

    def last_row(self) -> dict:
        """The DataCollector's last row (the latest scoring step) as a dict."""
        return {k: v[-1] for k, v in self.datacollector.model_vars.items()}


def _sbm(network, sizes: list[int], random) -> nx.Graph:
    """The SBM of MODEL.md with networkx: p = k_in/(n_g-1) inside group g, k_out/N between groups."""
    n = sum(sizes)
    p = [[min(1.0, network.k_out / n)] * len(sizes) for _ in sizes]
    for g, size in enumerate(sizes):
        p[g][g] = min(1.0, network.k_in / (size - 1)) if size >= 2 else 0.0
    G = nx.stochastic_block_model(sizes, p, seed=random)  # simple, undirected; nodes 0..N-1 group by group
    kinds = network.kinds
    for u, v, tie in G.edges(data=True):
        kind = kinds[0] if len(kinds) == 1 else random.choices(kinds, weights=[k.share for k in kinds])[0]
        tie["weight"] = kind.weight
        tie["p_cut"] = kind.cut_probability if kind.cut_probability is not None else network.cut_probability
    return G


def _check_supported(scenario) -> None:
    unsupported = []
    if not scenario.system:
        unsupported.append("system = false")
    if scenario.network.model != "sbm":
        unsupported.append(f"network.model = {scenario.network.model!r}")
    if scenario.schemes:
        unsupported.append("side schemes")
    if scenario.lists.named:
        unsupported.append("named lists")
    for e in scenario.effects:
        if e.kind == "rate":
            unsupported.append(f"rate effect {e.name!r}")
        if e.target != "self":
            unsupported.append(f"effect {e.name!r} with target {e.target!r}")
        if e.kind == "surveillance" and e.when.scheme is not None:
            unsupported.append(f"effect {e.name!r} conditioned on a scheme")
    if unsupported:
        raise NotImplementedError("the Mesa baseline implements the reference model only; not: " + ", ".join(unsupported))


__all__ = ["Citizen", "Record", "ReferenceModel", "poisson"]
