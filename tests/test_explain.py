"""explain: one citizen's story, on a hand-made city whose story is known in advance, and
against the replay of a reference run."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import socialcredit as sc
from socialcredit.cli import main
from socialcredit.engine import SCORE_RESOLUTION
from socialcredit.explain import explain
from socialcredit.population import build_population
from socialcredit.rng import stream
from socialcredit.scenario import scenario_from_dict

# ---------------------------------------------------------------------------
# The hand-made city
# ---------------------------------------------------------------------------
#
# Four citizens. Citizen 0 ("her") is alone in group "target"; citizens 1-3 are in "others",
# whose rate of the only record type is multiplied by 0, so they never act. The ties form a
# path 1 - 0 - 2 - 3: her neighbour A = 1 has no other tie, her neighbour B = 2 is also tied
# to C = 3.
#
# She commits "offence" at 20 acts a day (P(no act on a given day) = e^-20), each recorded
# (coverage 1, delay 0) at -200 points, valid 14 days; points clip at 0, so her own points
# are 0 while any record is in effect. Deterrence on grade D is 0: once graded D at step 0
# (day 6) she stops acting. Her last records (day 6) expire on day 20, the day of step 2.
#
# Grades: A >= 750, D below; D is the black grade. Friedkin-Johnsen, kappa = 0.5, solved to
# 1e-10. Closed forms (W row-normalised):
#   step 0 (all ties): S0 = k(S1+S2)/2, S1 = (1-k)1000 + k S0, S2 = (1-k)1000 + k(S0+S3)/2,
#                      S3 = (1-k)1000 + k S2  ->  377.78, 688.89, 822.22, 911.11
#     so she (record) and A (association) are blacklisted, B and C are not; with
#     cut_probability 1 the tie 0-2 (one blacklisted end) is cut on day 6, the tie 0-1 (both
#     ends blacklisted) and 2-3 (neither) are not.
#   step 1 (ties 0-1, 2-3): S0 = k S1, S1 = (1-k)1000 + k S0 -> 333.33, 666.67; S2 = S3 = 1000.
#   step 2: her records have expired: everyone at 1000, nobody listed.

KAPPA = 0.5
HER, A, B, C = 0, 1, 2, 3
EDGES = [(HER, A), (HER, B), (B, C)]
THRESHOLD = 750.0


def _story_raw(seed: int, path, days: int) -> dict:
    return {
        "name": "story",
        "seed": seed,
        "days": days,
        "population": {"size": 4, "groups": [
            {"name": "target", "share": 0.25},
            {"name": "others", "share": 0.75, "rate_multipliers": {"offence": 0.0}},
        ]},
        "network": {"model": "edge_list", "path": str(path), "cut_probability": 1.0},
        "agencies": [{"name": "police", "coverage": 1.0, "delay_days": 0}],
        "record_types": [{"name": "offence", "agency": "police", "category": "offence", "rate": 20.0,
                          "points": -200, "validity_days": 14, "deterrence": {"D": 0.0}}],
        "scoring": {"start": 1000, "min": 0, "max": 1200, "every_days": 7,
                    "grades": [{"name": "A", "min": THRESHOLD}, {"name": "D", "min": 0}]},
        "coupling": {"mode": "friedkin_johnsen", "kappa": KAPPA, "tolerance": 1e-10},
        "lists": {"red_grades": ["A"], "black_grades": ["D"]},
    }


def _fj(points: np.ndarray, edges: list[tuple[int, int]], kappa: float = KAPPA) -> np.ndarray:
    """Closed-form Friedkin-Johnsen score (citizens without ties keep S = P)."""
    n = points.size
    adj = np.zeros((n, n))
    for u, v in edges:
        adj[u, v] = adj[v, u] = 1.0
    deg = adj.sum(axis=1)
    w = np.divide(adj, deg[:, None], out=np.zeros_like(adj), where=deg[:, None] > 0)
    k = np.where(deg > 0, kappa, 0.0)
    return np.linalg.solve(np.eye(n) - k[:, None] * w, (1 - k) * points)


@pytest.fixture(scope="module")
def story(tmp_path_factory):
    """The story city run for 21 days (3 steps), 14 days (2 steps) and 7 days (1 step)."""
    root = tmp_path_factory.mktemp("story")
    edges_file = root / "edges.txt"
    edges_file.write_text("0 1\n")  # placeholder, to validate the scenario while searching a seed
    # a seed whose group sizes put citizen 0 alone in "target" (sizes ~ Multinomial(4, shares))
    seed = next(s for s in range(1000)
                if build_population(scenario_from_dict(_story_raw(s, edges_file, 21)), s).group_sizes.tolist() == [1, 3])
    # edge-list labels are mapped onto citizens by the "network" stream's permutation
    # (docs/model.md 7.15): label the file so the ties land on the citizens we want
    place = stream(seed, "network").permutation(4)
    label = np.argsort(place)
    edges_file.write_text("".join(f"{label[u]} {label[v]}\n" for u, v in EDGES))
    runs = {}
    for days in (21, 14, 7):
        scenario = scenario_from_dict(_story_raw(seed, edges_file, days))
        runs[days] = sc.run(scenario, out=root / f"story-{days}").path
    ties = pq.read_table(runs[21] / "ties.parquet").to_pylist()
    assert sorted((t["source"], t["target"]) for t in ties) == sorted(EDGES), "the city is not the one designed"
    return runs


STEP0 = _fj(np.array([0.0, 1000, 1000, 1000]), EDGES)
STEP1 = _fj(np.array([0.0, 1000, 1000, 1000]), [(HER, A), (B, C)])


def test_design_numbers():
    """The closed forms the story relies on: A crosses the threshold, B does not."""
    assert np.allclose(STEP0, [3400 / 9, 6200 / 9, 7400 / 9, 8200 / 9])
    assert STEP0[HER] < THRESHOLD and STEP0[A] < THRESHOLD <= STEP0[B] <= STEP0[C]
    assert np.allclose(STEP1, [1000 / 3, 2000 / 3, 1000, 1000])


def test_her_records(story):
    her = explain(story[21], HER)
    assert her["citizen"] == HER and her["group"] == "target" and her["scenario"] == "story"
    recs = her["records"]
    # she acts every day before the first scoring step, never after (deterrence 0 on D)
    assert sorted({r["act_day"] for r in recs}) == list(range(7))
    for r in recs:
        assert r["type"] == "offence" and r["agency"] == "police"
        assert r["points"] == -200.0
        assert r["true"] is True and r["appealed"] is False and r["overturned_day"] is None
        assert r["effective_day"] == r["act_day"]  # delay 0
        assert r["end_day"] == r["act_day"] + 14  # validity 14
    assert [r["act_day"] for r in recs] == sorted(r["act_day"] for r in recs)
    person = pq.read_table(story[21] / "citizens.parquet").to_pylist()[HER]
    assert len(recs) == person["true_records"] == person["acts_offence"]
    assert her["acts"] == {"offence": len(recs)}
    # nobody else has a record
    for other in (A, B, C):
        assert explain(story[21], other)["records"] == []


def test_her_steps_points_scores_and_lists(story):
    her = explain(story[21], HER)
    steps = her["steps"]
    assert [s["step"] for s in steps] == [0, 1, 2]
    assert [s["day"] for s in steps] == [6, 13, 20]
    # own points exactly: 0 while her records are in effect, back to 1000 once they expire
    assert [s["points"] for s in steps] == [0.0, 0.0, 1000.0]
    assert [s["score"] for s in steps] == pytest.approx([STEP0[HER], STEP1[HER], 1000.0], abs=1e-6)
    assert all(s["score_exact"] for s in steps)  # her score moves by more than 2 points every step
    assert [s["grade"] for s in steps] == ["D", "D", "A"]
    assert [s["blacklisted"] for s in steps] == [True, True, False]
    assert [s["redlisted"] for s in steps] == [False, False, True]
    assert [s["cause"] for s in steps] == ["record", "record", "none"]
    assert her["blacklistings"] == [
        {"start_step": 0, "start_day": 6, "end_step": 2, "end_day": 20, "causes": ["record"]}]
    assert her["final"] == {"points": 1000.0, "score": 1000.0, "grade": "A", "blacklisted": False,
                            "redlisted": True, "cause": "none", "lists": [], "side_scores": {}}
    assert her["effects"] == []


def test_neighbour_blacklisted_by_association(story):
    a = explain(story[21], A)
    assert [s["points"] for s in a["steps"]] == [1000.0, 1000.0, 1000.0]
    assert [s["score"] for s in a["steps"]] == pytest.approx([STEP0[A], STEP1[A], 1000.0], abs=1e-6)
    assert [s["blacklisted"] for s in a["steps"]] == [True, True, False]
    assert [s["cause"] for s in a["steps"]] == ["association", "association", "none"]
    assert a["blacklistings"] == [
        {"start_step": 0, "start_day": 6, "end_step": 2, "end_day": 20, "causes": ["association"]}]
    # B and C are pulled down at step 0 but stay above the threshold
    for who, s0 in ((B, STEP0[B]), (C, STEP0[C])):
        other = explain(story[21], who)
        assert [s["score"] for s in other["steps"]] == pytest.approx([s0, 1000.0, 1000.0], abs=1e-6)
        assert not any(s["blacklisted"] for s in other["steps"])
        assert other["blacklistings"] == []


def test_ties_cut_and_who_cut_them(story):
    her = explain(story[21], HER)
    # cut_probability 1: the tie to B (one blacklisted end) goes at her first blacklisted step;
    # the tie to A (both ends blacklisted) stays
    assert her["ties_cut"] == [{"neighbour": B, "kind": "friend", "day": 6, "cut_by": "neighbour",
                                "why": "she was blacklisted"}]
    assert explain(story[21], B)["ties_cut"] == [{"neighbour": HER, "kind": "friend", "day": 6,
                                                  "cut_by": "citizen", "why": "the neighbour was blacklisted"}]
    assert explain(story[21], A)["ties_cut"] == []
    assert explain(story[21], C)["ties_cut"] == []
    net = her["network"]
    assert net["degree_start"] == 2 and net["degree_end"] == 1
    assert net["kappa"] == KAPPA and net["mode"] == "friedkin_johnsen"
    assert [nb["citizen"] for nb in net["neighbours"]] == [A]


def test_timeline_tells_the_story_in_day_order(story):
    her = explain(story[21], HER)
    days = [e["day"] for e in her["timeline"]]
    assert days == sorted(days)
    events = [e["event"] for e in her["timeline"]]
    assert sum(e.startswith("true record: offence by police") for e in events) == len(her["records"])
    assert any(e.startswith("step 0: grade D, black list, cause: record") for e in events)
    assert any(e.startswith("step 2: grade A, red list") for e in events)
    assert any(e.startswith("tie to 2 (friend) cut by the neighbour") for e in events)


def test_network_pull_is_explained_by_neighbours(story):
    """At the end of the 14-day run (step 1): her pull S - P = 1000/3, all from A."""
    for who, pull in ((HER, STEP1[HER] - 0.0), (A, STEP1[A] - 1000.0), (B, 0.0), (C, 0.0)):
        net = explain(story[14], who)["network"]
        assert net["pull"] == pytest.approx(pull, abs=1e-6)
        assert net["explained_pull"] == pytest.approx(net["pull"], abs=1e-6)
        assert sum(nb["contribution"] for nb in net["neighbours"]) == pytest.approx(net["pull"], abs=1e-6)
    her = explain(story[14], HER)["network"]
    assert her["neighbours"][0]["citizen"] == A
    assert her["neighbours"][0]["weight_share"] == 1.0
    assert her["neighbours"][0]["contribution"] == pytest.approx(KAPPA * (STEP1[A] - 0.0), abs=1e-6)


def test_network_pull_counts_ties_cut_at_the_last_step(story):
    """The 7-day run ends at step 0, after which the tie 0-2 was cut (cut_day 6). That tie was
    active in step 0's coupling (docs/outputs.md, ties.parquet), so it must enter the
    decomposition of the final pull: S - P = kappa * sum_j W_ij (S_j - P_i) over the ties
    active AT the last step (cut_day null or >= its day)."""
    for who in (HER, A, B, C):
        net = explain(story[7], who)["network"]
        assert net["pull"] == pytest.approx(STEP0[who] - (0.0 if who == HER else 1000.0), abs=1e-6)
        assert net.get("explained_pull", 0.0) == pytest.approx(net["pull"], abs=1e-6), who


def test_json_cli_matches_the_function(story):
    runner = CliRunner()
    for who in (HER, B):
        result = runner.invoke(main, ["explain", str(story[21]), str(who), "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output) == json.loads(json.dumps(explain(story[21], who)))
    plain = runner.invoke(main, ["explain", str(story[21]), str(HER)])
    assert plain.exit_code == 0, plain.output
    assert "Citizen 0" in plain.output and "cause: record" in plain.output


def test_unknown_citizen(story):
    for bad in (4, 100, -1):
        with pytest.raises(IndexError):
            explain(story[21], bad)
    result = CliRunner().invoke(main, ["explain", str(story[21]), "4"])
    assert result.exit_code == 2
    assert "citizen 4 is not in this run" in result.output


# ---------------------------------------------------------------------------
# Against the replay of a reference run
# ---------------------------------------------------------------------------


def _sample_citizens(run) -> list[int]:
    cit = pq.read_table(run / "citizens.parquet").to_pandas()
    picks = []
    for cause in ("record", "error", "association"):
        picks += cit.index[cit["black_cause"].astype(str) == cause][:2].tolist()
    picks += cit.index[cit["group"].astype(str) == "dissident"][:2].tolist()
    picks += [0, 1, len(cit) // 2, len(cit) - 1]
    return sorted(set(int(i) for i in picks))


def test_steps_match_replay(small_reference_run):
    run = small_reference_run.path
    citizens = _sample_citizens(run)
    assert len(citizens) >= 8
    stories = {c: explain(run, c) for c in citizens}
    steps = len(stories[citizens[0]]["steps"])
    assert steps == 52
    inexact = 0
    for k in range(steps):
        st = sc.standing_at(run, k)
        for c in citizens:
            row = stories[c]["steps"][k]
            assert row["step"] == k and row["day"] == st.day
            assert row["points"] == st.points[c], (c, k)  # exactly
            if row["score_exact"]:
                assert row["score"] == st.score[c], (c, k)  # exactly
            else:
                inexact += 1
                assert abs(row["score"] - st.score[c]) < SCORE_RESOLUTION, (c, k)
    assert inexact > 0  # the tolerance branch is exercised
    for c in citizens:  # the last step is exact
        assert stories[c]["steps"][-1]["score_exact"]


def test_network_pull_on_reference_run(small_reference_run):
    """Friedkin-Johnsen: the contributions add up to S - P (docs/audit.md), for citizens of a
    real run, including citizens one of whose ties was cut at the last scoring step."""
    run = small_reference_run.path
    ties = pq.read_table(run / "ties.parquet").to_pandas()
    last_day = int(pq.read_table(run / "metrics.parquet")["day"][-1].as_py())
    cut_last = ties[ties["cut_day"] == last_day]
    assert len(cut_last) > 0
    citizens = set(_sample_citizens(run)) | set(cut_last["source"].head(3).tolist())
    for c in sorted(citizens):
        net = explain(run, int(c))["network"]
        if net["degree_start"] == 0:
            continue
        assert net.get("explained_pull", 0.0) == pytest.approx(net["pull"], abs=1e-6), c
