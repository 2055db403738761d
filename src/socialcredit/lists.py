"""Red and black lists, named lists, and the cause of each blacklisting.

A citizen is blacklisted when her grade is a black grade or (where serious
records blacklist) a serious record is in effect; red-listed when her grade
is a red grade and she is not blacklisted. Each blacklisting has exactly one
of three causes:

* ``record``: her own points from true records alone, clipped, give a black
  grade, or a true serious record is in effect;
* ``error``: not by record, but her own points with the false records give a
  black grade, or a false serious record is in effect;
* ``association``: neither; only the coupling to her neighbours pulls her
  score into a black grade.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import kernels
from .scenario import Grade, Scenario
from .scoring import grade_index

CAUSES = ("none", "record", "error", "association")
CAUSE_NONE, CAUSE_RECORD, CAUSE_ERROR, CAUSE_ASSOCIATION = range(4)


@dataclass(frozen=True)
class ListRules:
    """The scenario's list rules as arrays over grade indices."""

    black_grade: np.ndarray   # bool (G,)
    red_grade: np.ndarray     # bool (G,)
    serious_blacklists: bool
    named_grades: list[np.ndarray]  # bool (G,) per named list

    @classmethod
    def of(cls, scenario: Scenario) -> ListRules:
        grades = scenario.grade_names
        rules = scenario.lists
        return cls(
            black_grade=np.array([g in rules.black_grades for g in grades]),
            red_grade=np.array([g in rules.red_grades for g in grades]),
            serious_blacklists=rules.serious_blacklists,
            named_grades=[np.array([g in nl.grades for g in grades]) for nl in rules.named],
        )


@dataclass
class Listing:
    """Who is on which list after a scoring step."""

    black: np.ndarray   # bool (N,)
    red: np.ndarray     # bool (N,)
    cause: np.ndarray   # int8 (N,), index into CAUSES
    named: np.ndarray   # bool (L, N)


def grades_and_lists(rules: ListRules, grades: list[Grade], score: np.ndarray, points_true: np.ndarray,
                     points: np.ndarray, serious_true: np.ndarray, serious_false: np.ndarray,
                     tracked: np.ndarray) -> tuple[np.ndarray, Listing]:
    """The grade of the coupled score, and the lists and causes from it and the own points.

    :func:`assign_lists` on the grades of S, of P from true records alone and of
    P (``scoring.grade_index``); large cities do it all in one compiled pass
    (``kernels.grades_and_lists``), with the same results.
    """
    fused = kernels.grades_and_lists(score, points_true, points, np.array([g.min for g in grades], dtype=np.float64),
                                     rules.black_grade, rules.red_grade, rules.serious_blacklists, serious_true,
                                     serious_false, tracked, _named_grades(rules, len(grades)))
    if fused is not None:
        grade, black, red, cause, named = fused
        return grade, Listing(black=black, red=red, cause=cause, named=named)
    grade = grade_index(score, grades)
    return grade, assign_lists(rules, grade, grade_index(points_true, grades), grade_index(points, grades),
                               serious_true, serious_false, tracked)


def _named_grades(rules: ListRules, n_grades: int) -> np.ndarray:
    """bool (L, G): the grades that put a citizen on each named list."""
    return np.array(rules.named_grades, dtype=bool).reshape(len(rules.named_grades), n_grades)


def assign_lists(rules: ListRules, grade: np.ndarray, grade_true: np.ndarray, grade_own: np.ndarray,
                 serious_true: np.ndarray, serious_false: np.ndarray, tracked: np.ndarray) -> Listing:
    """Lists and causes from grades of S, of P from true records, and of P.

    Parameters
    ----------
    grade : int8 (N,)
        Grade of the coupled score S.
    grade_true, grade_own : int8 (N,)
        Grades of own points from true records alone, and from all records.
    serious_true, serious_false : int (N,)
        Serious records in effect, true and false.
    tracked : int (L, N)
        Records in effect of each named list's record types.

    >>> r = ListRules(np.array([False, True]), np.array([True, False]), True, [])
    >>> g = np.array([0, 1, 1, 1], dtype=np.int8)
    >>> out = assign_lists(r, g, np.array([0, 1, 0, 0]), np.array([0, 1, 1, 0]),
    ...                    np.zeros(4, int), np.zeros(4, int), np.zeros((0, 4), int))
    >>> out.black.tolist(), out.cause.tolist()
    ([False, True, True, True], [0, 1, 2, 3])
    """
    serious = (serious_true > 0) | (serious_false > 0)
    black = rules.black_grade[grade]
    if rules.serious_blacklists:
        black = black | serious
    red = rules.red_grade[grade] & ~black
    by_record = rules.black_grade[grade_true]
    by_error = rules.black_grade[grade_own]
    if rules.serious_blacklists:
        by_record = by_record | (serious_true > 0)
        by_error = by_error | (serious_false > 0)
    cause = np.where(
        ~black, CAUSE_NONE,
        np.where(by_record, CAUSE_RECORD, np.where(by_error, CAUSE_ERROR, CAUSE_ASSOCIATION)),
    ).astype(np.int8)
    named = np.zeros((len(rules.named_grades), grade.size), dtype=bool)
    for k, by_grade in enumerate(rules.named_grades):
        named[k] = by_grade[grade] | (tracked[k] > 0)
    return Listing(black=black, red=red, cause=cause, named=named)
