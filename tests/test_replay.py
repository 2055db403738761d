"""Replay: any step's points, scores and grades recomputed from a run folder, bit for bit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import socialcredit as sc
from socialcredit.replay import standing_at
from socialcredit.engine import SCORE_RESOLUTION
from socialcredit.scenario import load_scenario


def _check_step(run, engine, step):
    st = standing_at(run, step)
    row = engine.metrics[step]
    scenario = engine.scenario
    assert st.step == step and st.day == row["day"]
    counts = np.bincount(st.grade, minlength=len(scenario.grade_names))
    assert [row[f"grade_{g}"] for g in scenario.grade_names] == counts.tolist()
    assert row["mean_score"] == float(st.score.mean())
    assert row["mean_points"] == float(st.points.mean())
    return st


@pytest.mark.parametrize("step", [0, 1, 10, 25, 40, 51])
def test_replay_matches_the_engine_metrics(small_reference_run, step):
    _check_step(small_reference_run.path, small_reference_run.engine, step)


def test_last_step_equals_the_citizens_table(small_reference_run):
    st = standing_at(small_reference_run.path, 51)
    cit = pd.read_parquet(small_reference_run.path / "citizens.parquet")
    np.testing.assert_array_equal(st.points, cit["points"].to_numpy())
    np.testing.assert_array_equal(st.score, cit["score"].to_numpy())
    names = small_reference_run.engine.scenario.grade_names
    assert [names[g] for g in st.grade] == cit["grade"].astype(str).tolist()


def test_replay_agrees_with_the_standing_table(small_reference_run):
    """Grades rebuilt from the standing table's changes equal the replayed grades at every 5th step."""
    run = small_reference_run.path
    names = small_reference_run.engine.scenario.grade_names
    changes = pd.read_parquet(run / "standing.parquet")
    grade = np.full(1000, names.index("A"))  # everyone starts at P0 = 1000: grade A
    by_step = {s: g for s, g in changes.groupby("step")}
    for step in range(52):
        if step in by_step:
            part = by_step[step]
            grade[part["citizen"].to_numpy()] = [names.index(g) for g in part["grade"].astype(str)]
        if step % 5 == 0 or step == 51:
            np.testing.assert_array_equal(standing_at(run, step).grade, grade, err_msg=f"step {step}")


def test_replay_with_weighted_kinds_and_many_cut_ties(reference_path, tmp_path):
    scenario = load_scenario(reference_path, {
        "population.size": 800,
        "network.kinds": [{"name": "family", "share": 0.3, "weight": 2.0},
                          {"name": "colleague", "share": 0.7, "weight": 0.5}],
        "network.cut_probability": 0.4,
        "record_types.online_criticism.points": -60,
    })
    result = sc.run(scenario, out=tmp_path / "run")
    assert result.metrics[-1]["ties_cut_cum"] > 50
    for step in (0, 5, 20, 51):
        _check_step(result.path, result.engine, step)


def test_replay_step_out_of_range(small_reference_run):
    with pytest.raises(IndexError):
        standing_at(small_reference_run.path, 52)
    with pytest.raises(IndexError):
        standing_at(small_reference_run.path, -1)


def test_replay_when_every_tie_has_been_cut(make_tiny, tmp_path):
    """Ties only between a 'calm' and a 'listed' group; the listed are blacklisted by a
    serious record at the first step, so every tie is cut then (p_cut = 1). From the
    second step on, nobody has a tie: S = P. The ties table's cut_day has no null left."""
    scenario = make_tiny({
        "days": 21, "population.size": 60,
        "population.groups": [{"name": "calm", "share": 0.5, "rate_multipliers": {"bad": 0.0}},
                              {"name": "listed", "share": 0.5}],
        "network": {"model": "sbm", "k_in": 0.0, "k_out": 6.0, "cut_probability": 1.0},
        "coupling": {"mode": "friedkin_johnsen", "kappa": 0.4},
        "record_types[0].serious": True, "record_types[0].rate": 3.0, "record_types[0].points": -100,
        "record_types[0].validity_days": 365,
        "scoring.grades": [{"name": "A", "min": 500}, {"name": "B", "min": 0}],
        "lists": {"red_grades": ["A"], "black_grades": ["B"]},
    })
    result = sc.run(scenario, out=tmp_path / "run")
    ties = pd.read_parquet(result.path / "ties.parquet")
    assert len(ties) > 0 and ties["cut_day"].notna().all() and (ties["cut_day"] == 6).all()
    assert result.metrics[-1]["ties_active"] == 0
    for step in (0, 1, 2):
        st = _check_step(result.path, result.engine, step)
    np.testing.assert_array_equal(st.score, result.engine.standing.score)


def test_standing_rows_hold_the_replayed_values_and_the_logging_rule(small_reference_run):
    """Every standing row equals the replayed P and S at its step; between a citizen's rows her
    replayed S stays within SCORE_RESOLUTION points of her last logged S, and her grade stays the same."""
    run = small_reference_run.path
    names = small_reference_run.engine.scenario.grade_names
    rows = pd.read_parquet(run / "standing.parquet")
    logged_score = np.full(1000, 1000.0)
    logged_grade = np.full(1000, names.index("A"))
    for step in range(52):
        st = standing_at(run, step)
        part = rows[rows["step"] == step]
        ids = part["citizen"].to_numpy()
        np.testing.assert_array_equal(part["points"].to_numpy(), st.points[ids])
        np.testing.assert_array_equal(part["score"].to_numpy(), st.score[ids])
        np.testing.assert_array_equal([names.index(g) for g in part["grade"].astype(str)], st.grade[ids])
        logged_score[ids] = st.score[ids]
        logged_grade[ids] = st.grade[ids]
        quiet = np.setdiff1d(np.arange(1000), ids)
        assert (np.abs(st.score[quiet] - logged_score[quiet]) < SCORE_RESOLUTION).all(), step
        np.testing.assert_array_equal(st.grade[quiet], logged_grade[quiet])
