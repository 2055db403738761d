"""The per-step measures of a run: one row per scoring step.

Columns follow the reference model's list of measures: grade counts, list
sizes, acts and records per type (for the step and cumulative), ties cut and
active, score by group, blacklist rate by group, and the blacklisted split by
cause. The column names are documented in ``docs/outputs.md``.
"""

from __future__ import annotations

import numpy as np

from .lists import CAUSE_ASSOCIATION, CAUSE_ERROR, CAUSE_RECORD, Listing
from .population import Population
from .scenario import Scenario

#: Counters kept per day and record type, in this order.
DAILY_COUNTERS = ("acts", "true_records", "false_records", "overturned")


def step_row(scenario: Scenario, population: Population, step: int, day: int, first_day: int,
             grade: np.ndarray, listing: Listing, score: np.ndarray, points: np.ndarray,
             daily: dict[str, np.ndarray], ties_cut: int, ties_cut_total: int, ties_active: int,
             effects_applied: np.ndarray, side_scores: np.ndarray, iterations: int) -> dict[str, float | int]:
    """One metrics row for the scoring step on ``day`` covering days ``first_day..day``.

    ``effects_applied`` holds the number of citizens each effect applies to.
    """
    row: dict[str, float | int] = {"step": step, "day": day}
    counts = np.bincount(grade, minlength=len(scenario.scoring.grades))
    for g, name in enumerate(scenario.grade_names):
        row[f"grade_{name}"] = int(counts[g])
    row["blacklisted"] = int(listing.black.sum())
    row["redlisted"] = int(listing.red.sum())
    cause_counts = np.bincount(listing.cause, minlength=4)
    row["black_by_record"] = int(cause_counts[CAUSE_RECORD])
    row["black_by_error"] = int(cause_counts[CAUSE_ERROR])
    row["black_by_association"] = int(cause_counts[CAUSE_ASSOCIATION])
    for k, nl in enumerate(scenario.lists.named):
        row[f"list_{nl.name}"] = int(listing.named[k].sum())
    for counter in DAILY_COUNTERS:
        table = daily[counter]
        in_step, cumulative = table[first_day:day + 1].sum(axis=0), table[:day + 1].sum(axis=0)
        for c, name in enumerate(scenario.type_names):
            row[f"{counter}_{name}"] = int(in_step[c])
            row[f"{counter}_{name}_cum"] = int(cumulative[c])
    row["ties_cut"] = ties_cut
    row["ties_cut_cum"] = ties_cut_total
    row["ties_active"] = ties_active
    row["mean_points"] = float(points.mean())
    row["mean_score"] = float(score.mean())
    means = population.groupby(score, "mean")
    medians = population.groupby(score, "median")
    rates = population.groupby(listing.black.astype(np.float64), "mean")
    for g, name in enumerate(scenario.group_names):
        row[f"mean_score_{name}"] = float(means[g])
        row[f"median_score_{name}"] = float(medians[g])
        row[f"blacklist_rate_{name}"] = float(rates[g])
    for f, effect in enumerate(scenario.effects):
        row[f"effect_{effect.name}"] = int(effects_applied[f])
    for s, scheme in enumerate(scenario.schemes):
        row[f"scheme_mean_{scheme.name}"] = float(side_scores[s].mean())
    row["solver_iterations"] = iterations
    return row


def metric_columns(scenario: Scenario) -> list[str]:
    """The columns of ``metrics.parquet`` for a scenario, in order (as ``metrics.step_row`` writes them)."""
    cols = ["step", "day", *(f"grade_{g}" for g in scenario.grade_names),
            "blacklisted", "redlisted", "black_by_record", "black_by_error", "black_by_association",
            *(f"list_{nl.name}" for nl in scenario.lists.named)]
    for counter in DAILY_COUNTERS:
        for name in scenario.type_names:
            cols += [f"{counter}_{name}", f"{counter}_{name}_cum"]
    cols += ["ties_cut", "ties_cut_cum", "ties_active", "mean_points", "mean_score"]
    for g in scenario.group_names:
        cols += [f"mean_score_{g}", f"median_score_{g}", f"blacklist_rate_{g}"]
    cols += [f"effect_{e.name}" for e in scenario.effects]
    cols += [f"scheme_mean_{s.name}" for s in scenario.schemes]
    cols.append("solver_iterations")
    return cols
