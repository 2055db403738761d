"""Red and black lists, named lists and the cause of each blacklisting."""

from __future__ import annotations

import numpy as np
import pytest

from socialcredit.engine import Engine
from socialcredit.lists import (
    CAUSE_ASSOCIATION,
    CAUSE_ERROR,
    CAUSE_NONE,
    CAUSE_RECORD,
    CAUSES,
    ListRules,
    assign_lists,
)
from socialcredit.scenario import load_scenario

# grades: 0 AAA, 1 AA, 2 A (red) | 3 B, 4 C, 5 D (black)
BLACK = np.array([False, False, False, True, True, True])
RED = ~BLACK


def _assign(grade, grade_true, grade_own, serious_true=None, serious_false=None, serious_blacklists=True,
            named=None, tracked=None):
    n = len(grade)
    rules = ListRules(BLACK, RED, serious_blacklists, named or [])
    return assign_lists(
        rules, np.array(grade, np.int8), np.array(grade_true, np.int8), np.array(grade_own, np.int8),
        np.array(serious_true if serious_true is not None else [0] * n),
        np.array(serious_false if serious_false is not None else [0] * n),
        np.array(tracked if tracked is not None else np.zeros((len(named or []), n), int)),
    )


def test_list_rules_of_reference(reference_path):
    rules = ListRules.of(load_scenario(reference_path, ["population.size=50"]))
    np.testing.assert_array_equal(rules.black_grade, BLACK)
    np.testing.assert_array_equal(rules.red_grade, RED)
    assert rules.serious_blacklists and rules.named_grades == []


def test_hand_made_causes():
    # citizen: grade of S, grade of P(true records), grade of P(all records)
    out = _assign(
        grade=[2, 3, 3, 3, 5, 0, 2, 2],
        grade_true=[2, 3, 2, 2, 4, 0, 2, 2],
        grade_own=[2, 3, 4, 2, 4, 0, 2, 2],
        serious_true=[0, 0, 0, 0, 0, 0, 1, 0],
        serious_false=[0, 0, 0, 0, 0, 0, 0, 1],
    )
    assert out.black.tolist() == [False, True, True, True, True, False, True, True]
    assert out.red.tolist() == [True, False, False, False, False, True, False, False]
    assert [CAUSES[c] for c in out.cause] == [
        "none",         # grade A: not listed
        "record",       # true records alone give a black grade
        "error",        # only with the false records is P black
        "association",  # own points are red, the friends pull S down
        "record",
        "none",
        "record",       # red grade, but a true serious record in effect
        "error",        # red grade, a false serious record in effect
    ]
    assert not (out.black & out.red).any()


def test_serious_record_blacklists_by_itself_only_when_the_rule_is_on():
    on = _assign([0, 0], [0, 0], [0, 0], serious_true=[1, 0], serious_false=[0, 2])
    assert on.black.tolist() == [True, True] and on.red.tolist() == [False, False]
    assert on.cause.tolist() == [CAUSE_RECORD, CAUSE_ERROR]
    off = _assign([0, 0], [0, 0], [0, 0], serious_true=[1, 0], serious_false=[0, 2], serious_blacklists=False)
    assert off.black.tolist() == [False, False] and off.red.tolist() == [True, True]
    assert off.cause.tolist() == [CAUSE_NONE, CAUSE_NONE]


def test_true_serious_record_wins_over_false_black_grade():
    out = _assign([4], [2], [4], serious_true=[1])
    assert out.cause.tolist() == [CAUSE_RECORD]


def test_association_when_only_coupling_blacklists():
    out = _assign([3, 3], [2, 2], [2, 2])
    assert out.cause.tolist() == [CAUSE_ASSOCIATION, CAUSE_ASSOCIATION]


def test_named_lists_by_grade_or_record():
    named = [np.array([False] * 5 + [True]), np.zeros(6, bool)]
    out = _assign([5, 2, 2], [5, 2, 2], [5, 2, 2], named=named, tracked=[[0, 0, 0], [0, 3, 0]])
    assert out.named.tolist() == [[True, False, False], [False, True, False]]


def test_serious_record_blacklists_in_the_engine(make_tiny):
    sc = make_tiny({
        "record_types[0].serious": True,
        "record_types[0].points": -1,   # the grade stays A: only the serious rule can list
        "record_types[0].rate": 0.05,
        "days": 14,
    })
    eng = Engine(sc)
    eng.run()
    ledger = eng.ledger.arrays()
    hit = np.zeros(sc.population.size, bool)
    hit[ledger["citizen"][ledger["act_day"] <= 13]] = True  # delay 0, valid 30 days
    assert hit.any() and not hit.all()
    st = eng.standing
    assert (st.grade == 0).all()
    np.testing.assert_array_equal(st.listing.black, hit)
    np.testing.assert_array_equal(st.listing.red, ~hit)
    assert (st.listing.cause[hit] == CAUSE_RECORD).all()


@pytest.fixture(scope="module")
def reference_engine(reference_path):
    eng = Engine(load_scenario(reference_path, ["population.size=2000"]))
    eng.run()
    return eng


def test_reference_invariants_every_step(reference_engine):
    sc = reference_engine.scenario
    for row in reference_engine.metrics:
        assert row["black_by_record"] + row["black_by_error"] + row["black_by_association"] == row["blacklisted"]
        assert sum(row[f"grade_{g}"] for g in sc.grade_names) == 2000
        # everything below A is black, A and above is red, nobody is both
        black_grades = sum(row[f"grade_{g}"] for g in ("B", "C", "D"))
        assert row["blacklisted"] >= black_grades
        assert row["redlisted"] + row["blacklisted"] == 2000
    st = reference_engine.standing
    assert not (st.listing.black & st.listing.red).any()
    assert ((st.listing.cause != CAUSE_NONE) == st.listing.black).all()
    # by record really means own true points are black (or a true serious record)
    book = reference_engine.book
    from socialcredit.scoring import grade_index, own_points

    p_true = own_points(book.state_true, 1000, 0, 1200)
    by_record = (grade_index(p_true, sc.scoring.grades) >= 3) | (book.serious_true > 0)
    np.testing.assert_array_equal(st.listing.cause == CAUSE_RECORD, st.listing.black & by_record)
    assert reference_engine.metrics[-1]["blacklisted"] > 0


@pytest.mark.parametrize("serious_blacklists", [True, False])
def test_grades_and_lists_compiled_is_grade_index_then_assign_lists(serious_blacklists):
    """The one-pass compiled version gives the grades, lists, causes and named lists of the plain steps."""
    from socialcredit import kernels
    from socialcredit.lists import grades_and_lists
    from socialcredit.scenario import Grade
    from socialcredit.scoring import grade_index

    grades = [Grade(name="A", min=1030), Grade(name="B", min=960), Grade(name="C", min=850), Grade(name="D", min=0)]
    rules = ListRules(black_grade=np.array([False, False, False, True]), red_grade=np.array([True, False, False, False]),
                      serious_blacklists=serious_blacklists,
                      named_grades=[np.array([False, False, True, True]), np.array([True, False, False, False])])
    rng = np.random.default_rng(4)
    n = 100_000
    assert n * 8 >= kernels.PARALLEL_MIN_NNZ  # large enough for the compiled pass
    # scores on and around every threshold, and out of range
    score = rng.choice(np.array([-5.0, 0.0, 849.999, 850.0, 959.99, 960.0, 1030.0, 1400.0]), n) + rng.choice([0.0, 1e-9], n)
    points_true = rng.choice(np.array([0.0, 700.0, 849.0, 850.0, 1000.0]), n)
    points = np.minimum(points_true, rng.choice(np.array([600.0, 849.0, 900.0, 1200.0]), n))
    serious_true = rng.integers(0, 2, n).astype(np.int32) * (rng.random(n) < 0.1)
    serious_false = rng.integers(0, 3, n).astype(np.int32) * (rng.random(n) < 0.1)
    tracked = rng.integers(0, 2, (2, n)).astype(np.int32)
    grade, listing = grades_and_lists(rules, grades, score, points_true, points, serious_true, serious_false, tracked)
    plain_grade = grade_index(score, grades)
    plain = assign_lists(rules, plain_grade, grade_index(points_true, grades), grade_index(points, grades),
                         serious_true, serious_false, tracked)
    np.testing.assert_array_equal(grade, plain_grade)
    for field in ("black", "red", "cause", "named"):
        np.testing.assert_array_equal(getattr(listing, field), getattr(plain, field), err_msg=field)
    assert grade.dtype == plain_grade.dtype and listing.cause.dtype == plain.cause.dtype
    assert len(set(listing.cause.tolist())) == 4  # every cause occurs
