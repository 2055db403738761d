"""Replay a run folder: every citizen's points, score and grade at any step.

The folder stores no citizens x steps table. A step's standing is recomputed
from the ledger (records in effect on that day, in integer milli-points) and
the ties active that day, with the same functions the engine used, so the
replayed values are bit-identical to the run's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from .kernels import row_sums
from .network import weighted_adjacency
from .runfolder import read_manifest, read_table
from .scenario import Scenario, scenario_from_dict
from .scoring import MILLI, coupled_score, grade_index, own_points


@dataclass(frozen=True)
class StepStanding:
    """Points, score and grade of every citizen at one scoring step."""

    step: int
    day: int
    points: np.ndarray
    score: np.ndarray
    grade: np.ndarray  # int8 index into the scenario's grades


def run_scenario(run: str | Path) -> Scenario:
    """The resolved scenario stored in a run folder's manifest."""
    # the manifest writes inf as the string "inf", which pydantic reads back as a float
    return scenario_from_dict(read_manifest(run)["scenario"])


def standing_at(run: str | Path, step: int) -> StepStanding:
    """Replay scoring step ``step`` of a run folder.

    Raises ``IndexError`` for a step the run did not reach.
    """
    scenario = run_scenario(run)
    k = scenario.scoring.every_days
    steps = scenario.days // k
    if not 0 <= step < steps:
        raise IndexError(f"step {step} is outside 0..{steps - 1}")
    day = (step + 1) * k - 1
    n = scenario.population.size
    rec = read_table(run, "records")
    effective = rec["effective_day"].to_numpy()
    validity = np.array([t.validity_days for t in scenario.record_types])
    end = effective + validity[_type_codes(rec, scenario)]
    overturned = _filled(rec["overturned_day"], np.iinfo(np.int32).max)
    in_effect = (effective <= day) & (day < end) & (day < overturned)
    milli = np.round(rec["points"].to_numpy() * MILLI).astype(np.int64)
    raw = np.zeros(n, dtype=np.int64)
    np.add.at(raw, rec["citizen"].to_numpy()[in_effect], milli[in_effect])
    sc = scenario.scoring
    points = own_points(raw, sc.start, sc.min, sc.max)
    adjacency = adjacency_at(run, day, n)
    strength = row_sums(adjacency)
    score, _ = coupled_score(points, adjacency, scenario.coupling, strength)
    return StepStanding(step=step, day=day, points=points, score=score, grade=grade_index(score, sc.grades))


def adjacency_at(run: str | Path, day: int, n: int):
    """The weighted adjacency the scoring step on ``day`` used (ties cut that day still count).

    Built in the engine's own entry order, so products with it are bit-identical.
    """
    ties = read_table(run, "ties")
    active = _filled(ties["cut_day"], np.iinfo(np.int32).max) >= day  # cut after this step's scoring
    src = ties["source"].to_numpy()
    return weighted_adjacency(src, ties["target"].to_numpy(), ties["weight"].to_numpy() * active, n)


def _filled(column, fill: int) -> np.ndarray:
    """A nullable integer column as int64, nulls replaced by ``fill``."""
    return pc.fill_null(column, fill).to_numpy().astype(np.int64)


def _type_codes(records, scenario: Scenario) -> np.ndarray:
    col = records["type"].combine_chunks()
    names = col.dictionary.to_pylist()
    remap = np.array([scenario.type_names.index(x) for x in names], dtype=np.int64)
    return remap[col.indices.to_numpy()]
