"""The synthetic city: citizens, their groups and their propensities.

A :class:`Population` is struct-of-arrays: one numpy column per attribute,
indexed by citizen id ``0..N-1``. Citizens are numbered group by group, so a
group is a contiguous id range (which keeps the block-model network local).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from . import kernels
from .rng import name_key, stream
from .scenario import Scenario

#: From this many citizens on, the propensities of the record types are drawn in parallel threads.
PARALLEL_DRAW_MIN_CITIZENS = 100_000


@dataclass(frozen=True)
class Population:
    """Citizens as columns.

    Attributes
    ----------
    group : int16 array (N,)
        Group index of each citizen (into ``scenario.population.groups``).
    group_sizes : int64 array (G,)
        Citizens per group; group g holds ids ``starts[g]..starts[g+1]-1``.
    base_rate : float64 array (C, N)
        Rate of acts of each record type per day before any rule:
        ``r_c * u[g, c] * m[i, c]``.
    """

    group: np.ndarray
    group_sizes: np.ndarray
    base_rate: np.ndarray

    @property
    def size(self) -> int:
        return int(self.group.shape[0])

    @property
    def starts(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.group_sizes)])

    def select(self, mask: np.ndarray) -> np.ndarray:
        """Citizen ids where ``mask`` holds."""
        return np.flatnonzero(mask)

    def groupby(self, values: np.ndarray, how: str = "mean") -> np.ndarray:
        """Aggregate a per-citizen column by group (``mean``, ``sum`` or ``median``)."""
        starts = self.starts
        out = np.empty(len(self.group_sizes))
        for g in range(len(self.group_sizes)):
            part = values[starts[g]:starts[g + 1]]
            if part.size == 0:
                out[g] = np.nan
            elif how == "mean":
                out[g] = part.mean()
            elif how == "sum":
                out[g] = part.sum()
            elif how == "median":
                out[g] = median(part)
            else:
                raise ValueError(f"unknown aggregation {how!r}; use mean, sum or median")
        return out


def median(values: np.ndarray) -> float:
    """``np.median(values)`` of a non-empty array without NaNs, the same bits, by a compiled selection where
    the kernels run (:func:`kernels.median`).

    A median is one or the mean of two order statistics, which every exact
    selection finds alike; the middle two of an even count are averaged as
    ``np.median`` does, ``(a + b) / 2``. Compiled, it holds no lock on the
    interpreter while it runs, so the books' thread leaves the engine's
    alone. A median of zero is always ``+0.0``.

    >>> median(np.array([3.0, 1.0, 2.0])), median(np.array([4.0, 1.0, 2.0, 3.0]))
    (2.0, 2.5)
    """
    found = kernels.median(values)
    return (float(np.median(values)) if found is None else found) + 0.0


def build_population(scenario: Scenario, seed: int) -> Population:
    """Draw group sizes ``Multinomial(N, shares)`` and each citizen's propensities.

    Propensity ``m[i, c] ~ Gamma(h_c, 1/h_c)`` (mean 1; ``h_c = inf`` gives 1),
    drawn from a stream keyed by the record type's name.

    >>> from socialcredit.scenario import load_scenario
    >>> pop = build_population(load_scenario("scenarios/reference.toml", ["population.size=50"]), 1)
    >>> pop.size, int(pop.group_sizes.sum())
    (50, 50)
    """
    spec = scenario.population
    n = spec.size
    shares = np.array([g.share for g in spec.groups], dtype=np.float64)
    sizes = stream(seed, "population").multinomial(n, shares / shares.sum())
    group = np.repeat(np.arange(len(sizes), dtype=np.int16), sizes)
    base_rate = np.empty((len(scenario.record_types), n), dtype=np.float64)

    def fill(c: int) -> None:
        rt = scenario.record_types[c]
        u = np.array([g.rate_multipliers.get(rt.name, 1.0) for g in spec.groups])
        row = rt.rate * u[group]
        if np.isfinite(rt.heterogeneity):
            h = rt.heterogeneity
            row = row * stream(seed, "propensity", name_key(rt.name)).gamma(h, 1.0 / h, size=n)
        base_rate[c] = row

    types = range(len(scenario.record_types))
    if n < PARALLEL_DRAW_MIN_CITIZENS:
        for c in types:
            fill(c)
    else:  # each type has its own stream and row, and numpy draws without the GIL: threads change no bit
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            list(pool.map(fill, types))
    return Population(group=group, group_sizes=sizes.astype(np.int64), base_rate=base_rate)
