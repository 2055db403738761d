"""Sanctions and privileges: named effects with consequences inside the model.

* ``surveillance``: multiplies the chance that an act is recorded (e.g. grade C
  "checked regularly");
* ``rate``: multiplies the rate of some record types (e.g. a benefit cut that
  raises the risk of loan arrears: a poverty trap);
* ``ban`` and ``privilege``: counted as days per citizen (travel ban,
  leadership ban, school priority, deposit-free rental, partner-matching
  visibility fed by a side score).

An effect applies to citizens meeting its condition (a grade, a list, or a
band of a side scheme's score), or with ``target = "family"`` to their
family-tie neighbours instead (children barred from private schools).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .lists import Listing
from .scenario import Effect, Scenario


@dataclass
class EffectState:
    """What the effects in force imply, as of the last scoring step."""

    applies: np.ndarray            # bool (F, N): effect f applies to citizen i
    record_multiplier: np.ndarray  # float64 (A, N): surveillance per agency
    rate_multiplier: np.ndarray    # float64 (C, N): act-rate multiplier per type
    rate_raised: np.ndarray        # bool (C,): some citizen's rate multiplier exceeds 1


def evaluate_effects(scenario: Scenario, grade: np.ndarray, listing: Listing,
                     side_scores: np.ndarray, family: sp.csr_matrix | None) -> EffectState:
    """Which effects apply to whom, and the multipliers they imply.

    Parameters
    ----------
    grade : int8 (N,)
        Current grade index.
    listing : Listing
        Current lists.
    side_scores : float (S, N)
        Current score of each side scheme.
    family : csr_matrix or None
        Adjacency of active family ties (for ``target = "family"``).
    """
    n = grade.size
    effects = scenario.effects
    applies = np.zeros((len(effects), n), dtype=bool)
    rec = np.ones((len(scenario.agencies), n))
    rate = np.ones((len(scenario.record_types), n))
    agencies = {a.name: i for i, a in enumerate(scenario.agencies)}
    types = {t.name: i for i, t in enumerate(scenario.record_types)}
    for f, effect in enumerate(effects):
        mask = condition_mask(scenario, effect, grade, listing, side_scores)
        if effect.target == "family":
            mask = (family @ mask.astype(np.float64)) > 0 if family is not None else np.zeros(n, dtype=bool)
        applies[f] = mask
        if effect.kind == "surveillance":
            rows = [agencies[a] for a in effect.agencies] or range(len(scenario.agencies))
            for a in rows:
                rec[a, mask] *= effect.multiplier
        elif effect.kind == "rate":
            for c in (types[t] for t in effect.record_types):
                rate[c, mask] *= effect.multiplier
    return EffectState(applies=applies, record_multiplier=rec, rate_multiplier=rate,
                       rate_raised=(rate > 1.0).any(axis=1))


def condition_mask(scenario: Scenario, effect: Effect, grade: np.ndarray, listing: Listing,
                   side_scores: np.ndarray) -> np.ndarray:
    """Citizens meeting an effect's condition (before any family spill-over)."""
    when = effect.when
    if when.grades:
        wanted = np.array([g in when.grades for g in scenario.grade_names])
        return wanted[grade]
    if when.lists:
        named = [nl.name for nl in scenario.lists.named]
        mask = np.zeros(grade.size, dtype=bool)
        for name in when.lists:
            if name == "black":
                mask |= listing.black
            elif name == "red":
                mask |= listing.red
            else:
                mask |= listing.named[named.index(name)]
        return mask
    s = [sc.name for sc in scenario.schemes].index(when.scheme)
    score = side_scores[s]
    mask = np.ones(grade.size, dtype=bool)
    if when.min_score is not None:
        mask &= score >= when.min_score
    if when.max_score is not None:
        mask &= score < when.max_score
    return mask
