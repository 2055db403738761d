"""Parameter sweeps: every cell of a grid, every replicate, run on Dask.

A sweep runs one scenario many times: once per *cell* (a set of field
overrides by dotted path, e.g. ``{"coupling.kappa": 0.3}``) and *replicate*
(a seed). Replicate ``r`` runs on :func:`replicate_seed` ``(seed, r)`` in every
cell, so cells are compared on common random numbers, and each run depends on
its (cell, replicate) index only, never on the worker that ran it: the output
is bit-identical for any number of workers and any completion order.

The output folder ``OUT``::

    OUT/sweep.json                            what was swept (written first)
    OUT/metrics/cell=K/replicate=R.parquet    every step of run (K, R)
    OUT/runs/cell=K/replicate=R.parquet       its last step, one row (written last)
    OUT/summary.parquet                       per cell: mean and 95 % CI of every measure

Each file is written under a hidden temporary name and renamed into place, and
a run's ``runs`` file is written after its ``metrics`` file, so a ``runs`` file
marks a finished run. Running the same sweep again into the same ``OUT``
resumes it: finished runs are skipped, the others are run (again).

Read the tables with :func:`read_runs` / :func:`read_metrics`, polars or DuckDB
(``'OUT/runs/*/*.parquet'``), or ``pyarrow.dataset.dataset(OUT / "runs",
partitioning="hive")``. The files hold their own ``cell`` column, so plain
``pyarrow.parquet.read_table(OUT / "runs")``, which infers ``cell=K`` as a
dictionary column, needs ``partitioning=None``.

Dask is imported only when a sweep runs; ``import socialcredit`` stays light.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import threading
import tomllib
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import ResourceError, ResumeError, ScenarioError, ScenarioErrors
from .sweepfile import load_sweep_file, write_sweep_file  # noqa: F401  (re-exported)
from .scenario import Scenario, load_scenario, parse_value, scenario_from_dict

SWEEP_JSON = "sweep.json"
SUMMARY = "summary.parquet"
FORMAT_VERSION = 1
#: Columns of the runs table that identify a run rather than measure it.
ID_COLUMNS = ("cell", "replicate", "seed")
#: Metrics columns that are the same in every run (not summarised).
CLOCK_COLUMNS = ("step", "day")
#: Measures shown by :func:`print_summary`.
HEADLINE = ("blacklisted", "black_by_error", "black_by_association", "ties_cut_cum")
#: Keys of a sweep file.


# --------------------------------------------------------------------------
# Cells and seeds
# --------------------------------------------------------------------------

def expand_grid(grid: dict[str, list]) -> list[dict[str, Any]]:
    """The cells of a grid: the cartesian product of its value lists.

    Parameters
    ----------
    grid : dict
        Dotted scenario path -> list of values.

    Returns
    -------
    list of dict
        One dict path -> value per cell. The first path varies slowest, the
        last fastest, in the order of the lists. An empty grid has one cell,
        ``{}`` (the scenario as it is).

    Raises
    ------
    ScenarioError
        A path whose values are not a non-empty list.

    Examples
    --------
    >>> expand_grid({"coupling.kappa": [0.2, 0.5], "population.size": [50, 100]})
    ... # doctest: +NORMALIZE_WHITESPACE
    [{'coupling.kappa': 0.2, 'population.size': 50}, {'coupling.kappa': 0.2, 'population.size': 100},
     {'coupling.kappa': 0.5, 'population.size': 50}, {'coupling.kappa': 0.5, 'population.size': 100}]
    """
    if not isinstance(grid, dict):
        raise ScenarioError("grid", grid, "a grid must be a table of path -> list of values",
                            'e.g. {"coupling.kappa": [0.2, 0.5]}')
    for path, values in grid.items():
        if not isinstance(values, (list, tuple)) or not values:
            raise ScenarioError(f"grid.{path}", values, "each grid path needs a non-empty list of values",
                                f'e.g. "{path}" = [value1, value2]')
    paths = list(grid)
    return [dict(zip(paths, combo)) for combo in itertools.product(*(list(grid[p]) for p in paths))]


def replicate_seed(sweep_seed: int, replicate: int) -> int:
    """The run seed of replicate ``replicate``: a child of the sweep seed, keyed by its index.

    The same in every cell (common random numbers), and independent of the
    number of replicates, cells or workers. A 63-bit non-negative integer.

    Examples
    --------
    >>> replicate_seed(0, 0) == replicate_seed(0, 0) != replicate_seed(0, 1)
    True
    """
    for name, value in (("seed", sweep_seed), ("replicate", replicate)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    state = np.random.SeedSequence(int(sweep_seed), spawn_key=(int(replicate),)).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))


# --------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------

def sweep(scenario: str | Path, grid: dict[str, list], replicates: int, out: str | Path, seed: int = 0,
          workers: int | None = None, scheduler: str | None = None, progress: bool = True,
          overrides: list[str] | tuple = ()) -> pa.Table:
    """Run every cell of ``grid`` ``replicates`` times and return the summary table.

    ``run_cells(scenario, expand_grid(grid), ...)``; see :func:`run_cells`.

    Examples
    --------
    >>> table = sweep("scenarios/reference.toml", {"coupling.kappa": [0.2, 0.5]}, replicates=2,
    ...               out="sweeps/kappa", overrides=["population.size=50"])  # doctest: +SKIP
    >>> table.column("blacklisted_mean").to_pylist()  # doctest: +SKIP
    """
    return run_cells(scenario, expand_grid(grid), replicates, out, seed=seed, workers=workers,
                     scheduler=scheduler, progress=progress, overrides=overrides)


def run_cells(scenario: str | Path, cells: list[dict[str, Any]], replicates: int, out: str | Path,
              seed: int = 0, workers: int | None = None, scheduler: str | None = None, progress: bool = True,
              overrides: list[str] | tuple = (), cell_labels: list[dict] | None = None,
              *, _chaos: str | Path | None = None) -> pa.Table:
    """Run each cell ``replicates`` times on Dask, write ``OUT`` and return the summary.

    Parameters
    ----------
    scenario : path
        The scenario file.
    cells : list of dict
        One dict of overrides (dotted path -> value, already parsed) per cell,
        applied after ``overrides``. Cell ``K`` is ``cells[K]``.
    replicates : int
        Runs per cell. Replicate ``r`` runs on ``replicate_seed(seed, r)`` in
        every cell; the scenario's own ``seed`` is not used.
    out : path
        The sweep folder (see the module docstring). Created if missing; an
        existing one is resumed if its ``sweep.json`` describes this sweep.
    seed : int
        The sweep seed.
    workers : int, optional
        Worker processes of the embedded ``LocalCluster`` (default: one per
        CPU, at most one per run left to do). Ignored with ``scheduler``.
    scheduler : str, optional
        Address of a running Dask scheduler to use instead. Its workers must
        import this version of socialcredit and see ``out`` at the same path.
    progress : bool
        Show a progress bar over runs.
    overrides : list of "PATH=VALUE"
        Base overrides for every cell (as ``--set``).
    cell_labels : list of dict, optional
        One dict per cell giving the parameter columns of the runs and summary
        tables in place of the cell's paths (e.g. a sample's parameters in the
        units a sampler drew them). Default: the cell itself.
    _chaos : path, optional
        TEST ONLY (fault injection). Path of a marker file: the first task that
        manages to create it kills its own worker process (SIGKILL) after
        writing its metrics file and before its runs file, so Dask must retry
        it elsewhere. Never use it outside the tests.

    Returns
    -------
    pyarrow.Table
        The summary, one row per cell (as ``OUT/summary.parquet``): ``cell``,
        the parameter columns, ``runs``, then ``<m>_mean``, ``<m>_ci_low`` and
        ``<m>_ci_high`` for every numeric measure ``m`` of the runs table
        (95 % t-interval of the mean; equal to the mean with one replicate).

    Raises
    ------
    ScenarioError
        A base override or a cell is invalid (raised before anything runs or
        is written, naming the cell and the field).
    ResumeError
        ``out`` holds a different sweep, or is not a sweep folder.
    ResourceError
        The embedded cluster's concurrent runs would not fit in memory.
    """
    scenario = Path(scenario)
    replicates = _positive_int(replicates, "replicates", 1)
    seed = _positive_int(seed, "seed", 0)
    if workers is not None:
        workers = _positive_int(workers, "workers", 1)
    if not isinstance(cells, (list, tuple)) or not cells or not all(isinstance(c, dict) for c in cells):
        raise ValueError("cells must be a non-empty list of dicts (path -> value)")
    cells = [_plain(dict(c)) for c in cells]
    if cell_labels is not None:
        if len(cell_labels) != len(cells) or not all(isinstance(lab, dict) for lab in cell_labels):
            raise ValueError(f"cell_labels must be one dict per cell ({len(cells)}), got {len(cell_labels)}")
        cell_labels = [_plain(dict(lab)) for lab in cell_labels]
    overrides = list(overrides)

    # 1. Validate everything before anything runs or is written.
    base = load_scenario(scenario, overrides)
    raw = _read_raw(scenario)
    base_changes = _parse_overrides(overrides)
    changes = []
    largest = base
    for k, cell in enumerate(cells):
        merged = {**base_changes, **cell}
        if "seed" in cell:
            raise ScenarioError("seed", cell["seed"],
                                f"sweep cell {k} sets the scenario seed, which a sweep does not use",
                                "vary replicates and the sweep seed instead")
        try:
            sc = scenario_from_dict(raw, merged)  # = load_scenario(scenario, overrides + cell)
        except ScenarioError as exc:
            raise _in_cell(exc, k, cell) from None
        if sc.population.size > largest.population.size:
            largest = sc
        changes.append(merged)
    params = _param_columns(cell_labels if cell_labels is not None else cells)
    seeds = [replicate_seed(seed, r) for r in range(replicates)]

    # 2. The sweep folder: new, or the same sweep to resume.
    out = Path(out)
    spec = {
        "format_version": FORMAT_VERSION,
        "package": "socialcredit",
        "version": _version(),
        "scenario": str(scenario),
        "overrides": overrides,
        "scenario_resolved": base.to_dict(),
        "cells": cells,
        "cell_labels": cell_labels,
        "replicates": replicates,
        "seed": seed,
        "replicate_seeds": seeds,
    }
    pending = [(k, r) for k in range(len(cells)) for r in range(replicates)]
    if (out / SWEEP_JSON).exists():
        _check_same_sweep(out, spec)
        _remove_partials(out)
        pending = [(k, r) for k, r in pending if not _run_file(out, "runs", k, r).exists()]
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ResumeError(f"{out} exists and is not a sweep folder (it has no {SWEEP_JSON}); "
                          "choose another --out, or empty it")
    n_workers = min(workers or os.cpu_count() or 1, max(len(pending), 1))
    if pending and scheduler is None:
        _check_memory(largest, n_workers)
    if not (out / SWEEP_JSON).exists():
        out.mkdir(parents=True, exist_ok=True)
        _write_bytes(out / SWEEP_JSON, (json.dumps(spec, indent=2) + "\n").encode("utf-8"))

    # 3. Run what is left, one task per (cell, replicate).
    if pending:
        _run_pending(raw, changes, params, seeds, out, pending, len(cells) * replicates, n_workers,
                     scheduler, progress, None if _chaos is None else str(_chaos))

    # 4. The summary, from the runs files alone (sorted by cell, replicate).
    summary = summarise(read_runs(out, len(cells), replicates), params[0])
    _write_table(summary, out / SUMMARY)
    return summary


def _run_pending(raw: dict, changes: list[dict], params: tuple, seeds: list[int], out: Path,
                 pending: list[tuple[int, int]], total: int, n_workers: int, scheduler: str | None,
                 progress: bool, chaos: str | None) -> None:
    from distributed import Client, LocalCluster, as_completed
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    names, types, rows = params
    cluster = None
    if scheduler is None:
        with warnings.catch_warnings():
            # without a dashboard the scheduler's bare HTTP server just moves off a busy port 8787: not news
            warnings.filterwarnings("ignore", message="Port .* is already in use", category=UserWarning)
            cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                   env={"NUMBA_NUM_THREADS": "1"})  # one core per worker: no oversubscription
    try:
        with Client(cluster if cluster is not None else scheduler) as client:
            schema = pa.schema([pa.field(n, t) for n, t in zip(names, types)])
            # a worker runs more than one city: loading the kernels pays (a cluster says how many workers it has)
            several = len(pending) > (len(client.scheduler_info().get("workers", {})) or n_workers)
            futures = [
                client.submit(_run_task, raw, changes[k], k, r, seeds[r], str(out), schema, rows[k], chaos, several,
                              retries=2, pure=False, key=f"socialcredit-sweep-cell{k}-rep{r}-{os.urandom(4).hex()}")
                for k, r in pending
            ]
            columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("runs"), TimeElapsedColumn())
            with Progress(*columns, disable=not progress, transient=False) as bar:
                task = bar.add_task(f"sweep {out.name}", total=total, completed=total - len(pending))
                try:
                    for future in as_completed(futures):
                        future.result()  # re-raises a task's error here
                        bar.advance(task)
                except BaseException:
                    client.cancel(futures)
                    raise
    finally:
        if cluster is not None:
            cluster.close()


def _run_task(raw: dict, changes: dict, cell: int, replicate: int, seed: int, out: str, schema: pa.Schema,
              labels: list, chaos: str | None, several: bool = False) -> tuple[int, int]:
    """One run, in a worker: build the scenario, run it, write its two files.

    ``several``: the worker is likely to run more cities, so it loads the
    compiled kernels, which small cities then use as well (the same bits).
    """
    from . import kernels
    from .engine import Engine

    if several:
        kernels.load()
    engine = Engine(scenario_from_dict(raw, changes), seed=seed)
    engine.run()
    rows = engine.metrics
    n = len(rows)
    # int32 ids: the type pyarrow's hive partitioning infers for the cell=K folders
    ids = {"cell": pa.array(np.full(n, cell, np.int32)), "replicate": pa.array(np.full(n, replicate, np.int32)),
           "seed": pa.array(np.full(n, seed, np.int64))}
    metrics = pa.Table.from_pylist(rows)
    clash = [f.name for f in schema if f.name in metrics.column_names]
    if clash:
        raise ValueError(f"parameter columns {clash} are named like metrics columns; rename these cell labels")
    metrics = pa.table({**ids, **{name: metrics.column(name) for name in metrics.column_names}})
    _write_table(metrics, _run_file(Path(out), "metrics", cell, replicate))
    if chaos is not None:
        _chaos_strike(chaos)
    run = {k: v.slice(0, 1) for k, v in ids.items()}
    run.update({f.name: pa.array([v], f.type) for f, v in zip(schema, labels)})
    last = metrics.slice(n - 1, 1)
    run.update({name: last.column(name) for name in last.column_names if name not in run})
    _write_table(pa.table(run), _run_file(Path(out), "runs", cell, replicate))
    return cell, replicate


def _chaos_strike(marker: str) -> None:
    """TEST ONLY: the first caller to create ``marker`` kills its own process."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)


# --------------------------------------------------------------------------
# Reading and summarising
# --------------------------------------------------------------------------

def read_runs(out: str | Path, n_cells: int | None = None, replicates: int | None = None) -> pa.Table:
    """The runs table of a sweep folder, one row per (cell, replicate), sorted.

    With ``n_cells`` and ``replicates`` every run must be there; without them
    (read from ``sweep.json``) the same.
    """
    out = Path(out)
    if n_cells is None or replicates is None:
        spec = json.loads((out / SWEEP_JSON).read_text(encoding="utf-8"))
        n_cells, replicates = len(spec["cells"]), spec["replicates"]
    tables = _read_tables([_run_file(out, "runs", k, r) for k in range(n_cells) for r in range(replicates)])
    return pa.concat_tables(tables, promote_options="default")


def read_metrics(out: str | Path) -> pa.Table:
    """Every finished run's metrics rows, sorted by cell, replicate and step."""
    out = Path(out)
    tables = _read_tables([_run_file(out, "metrics", k, r) for k, r in _finished(out)])
    return pa.concat_tables(tables, promote_options="default") if tables else pa.table({})


def _read_tables(paths: list[Path]) -> list[pa.Table]:
    """The Parquet files at ``paths``, in that order, read a few at a time.

    The runs files are small and wide (one column per measure); pyarrow reads
    part of each without the interpreter lock, so a few threads shorten the
    sweep's last, serial step (6 runs files: 29 -> 23-26 ms).
    """
    workers = max(1, min(8, len(paths), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda path: pq.read_table(path, partitioning=None), paths))


def _finished(out: Path) -> list[tuple[int, int]]:
    """(cell, replicate) of every runs file in ``out``."""
    done = []
    for path in (out / "runs").glob("cell=*/replicate=*.parquet"):
        done.append((int(path.parent.name.removeprefix("cell=")), int(path.stem.removeprefix("replicate="))))
    return sorted(done)


def summarise(runs: pa.Table, params: Sequence[str]) -> pa.Table:
    """Per cell: the parameter columns, ``runs`` and mean / 95 % CI of every measure."""
    from scipy.stats import t as student_t

    cell = runs.column("cell").to_numpy()
    replicate = runs.column("replicate").to_numpy()
    order = np.lexsort((replicate, cell))
    runs = runs.take(pa.array(order))
    cell = cell[order]
    starts = np.flatnonzero(np.r_[True, cell[1:] != cell[:-1]])
    counts = np.diff(np.r_[starts, cell.size])
    skip = set(ID_COLUMNS) | set(params) | set(CLOCK_COLUMNS)
    measures = [f.name for f in runs.schema if f.name not in skip
                and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))]
    columns: dict[str, Any] = {"cell": pa.array(cell[starts], pa.int32())}
    first = runs.take(pa.array(starts))
    for name in params:
        columns[name] = first.column(name)
    columns["runs"] = pa.array(counts, pa.int64())
    # Student's t quantile for each number of replicates in a cell (one scipy call each, not one per measure)
    quantile = {n: float(student_t.ppf(0.975, n - 1)) for n in set(counts.tolist()) if n > 1}
    for name in measures:
        values = np.asarray(runs.column(name).to_numpy(zero_copy_only=False), dtype=np.float64)
        mean, low, high = (np.empty(starts.size) for _ in range(3))
        for i, (s, n) in enumerate(zip(starts, counts)):
            x = values[s:s + n]
            mean[i] = x.mean()
            if n > 1:
                half = quantile[n] * x.std(ddof=1) / math.sqrt(n)
                low[i], high[i] = mean[i] - half, mean[i] + half
            else:
                low[i] = high[i] = mean[i]
        columns[f"{name}_mean"] = mean
        columns[f"{name}_ci_low"] = low
        columns[f"{name}_ci_high"] = high
    return pa.table(columns)


def print_summary(table: pa.Table, console: Any) -> None:
    """Print a summary table: per cell, mean [95 % CI] of the headline measures."""
    from rich.table import Table

    names = table.column_names
    params = names[names.index("cell") + 1:names.index("runs")] if "runs" in names else []
    shown = [m for m in HEADLINE if f"{m}_mean" in names]
    out = Table(title="sweep: mean [95 % CI] over replicates", show_header=True)
    out.add_column("cell", justify="right")
    for p in params:
        out.add_column(p, justify="right")
    out.add_column("runs", justify="right")
    for m in shown:
        out.add_column(m, justify="right")
    data = table.to_pylist()
    for row in data:
        cells = [str(row["cell"]), *(_fmt(row[p]) for p in params), str(row.get("runs", ""))]
        for m in shown:
            mean, low, high = row[f"{m}_mean"], row[f"{m}_ci_low"], row[f"{m}_ci_high"]
            cells.append(f"{mean:,.1f} [{low:,.1f}, {high:,.1f}]")
        out.add_row(*cells)
    console.print(out)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

def _positive_int(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _plain(obj: Any) -> Any:
    """Numpy scalars and arrays (e.g. from a sampler) as plain Python values."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _read_raw(path: Path) -> dict[str, Any]:
    """The scenario file as plain data, exactly as :func:`load_scenario` reads it (already checked)."""
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    net = raw.get("network")
    if isinstance(net, dict) and isinstance(net.get("path"), str) and not Path(net["path"]).is_absolute():
        net["path"] = str((path.parent / net["path"]).resolve())
    return raw


def _parse_overrides(overrides: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for text in overrides:
        key, _, value = str(text).partition("=")
        out[key.strip()] = parse_value(value.strip())
    return out


def _in_cell(exc: ScenarioError, k: int, cell: dict[str, Any]) -> ScenarioError:
    def one(e: ScenarioError) -> ScenarioError:
        return ScenarioError(e.path, e.value, f"in sweep cell {k} {cell!r}: {e.rule}", e.hint)

    if isinstance(exc, ScenarioErrors):
        return ScenarioErrors([one(e) for e in exc.errors])
    return one(exc)


def _param_columns(cells: list[dict[str, Any]]) -> tuple[list[str], list[pa.DataType], list[list]]:
    """Parameter column names, one Arrow type per column (fixed by all cells), and each cell's values."""
    names: list[str] = []
    for cell in cells:
        names += [k for k in cell if k not in names]
    for name in names:
        if name in ID_COLUMNS or name == "runs":
            raise ScenarioError(name, None, "a parameter column cannot be named like a sweep column",
                                f"rename it (reserved: {', '.join(ID_COLUMNS)}, runs)")
    types: list[pa.DataType] = []
    rows: list[list] = [[] for _ in cells]
    for name in names:
        values = [cell.get(name) for cell in cells]
        present = [v for v in values if v is not None]
        if present and all(isinstance(v, bool) for v in present):
            kind, convert = pa.bool_(), bool
        elif present and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in present):
            kind, convert = pa.int64(), int
        elif present and all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                             for v in present):
            kind, convert = pa.float64(), float
        elif present and all(isinstance(v, str) for v in present):
            kind, convert = pa.string(), str
        else:  # lists, tables or mixed kinds: their JSON text
            kind, convert = pa.string(), lambda v: json.dumps(v, sort_keys=True)
        types.append(kind)
        for row, v in zip(rows, values):
            row.append(None if v is None else convert(v))
    return names, types, rows


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def _check_same_sweep(out: Path, spec: dict[str, Any]) -> None:
    try:
        old = json.loads((out / SWEEP_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ResumeError(f"cannot read {out / SWEEP_JSON} ({exc}); choose another --out, or delete it") from None
    differ = []
    if _canonical(old.get("scenario_resolved")) != _canonical(spec["scenario_resolved"]):
        paths = _diff_paths(old.get("scenario_resolved"), json.loads(_canonical(spec["scenario_resolved"])), "")
        shown = ", ".join(paths[:5]) + (", ..." if len(paths) > 5 else "")
        differ.append(f"the scenario content (with overrides) differs at {shown}")
    if _canonical(old.get("cells")) != _canonical(spec["cells"]):
        differ.append(f"the grid differs ({len(old.get('cells') or [])} cells there, {len(spec['cells'])} here"
                      f"{'' if len(old.get('cells') or []) != len(spec['cells']) else ', with other values'})")
    if _canonical(old.get("cell_labels")) != _canonical(spec["cell_labels"]):
        differ.append("the cell labels differ")
    for key in ("replicates", "seed", "version"):  # another version may compute other results
        if key in spec and old.get(key) != spec[key]:
            differ.append(f"{key} is {old.get(key)!r} there, {spec[key]!r} here")
    if differ:
        raise ResumeError(f"{out} holds a different sweep: " + "; ".join(differ)
                          + ". To resume it, re-run it with its original settings (see sweep.json); "
                            "otherwise choose another --out, or delete the folder to start over.")


def _diff_paths(a: Any, b: Any, prefix: str) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in list(a) + [k for k in b if k not in a]:
            out += _diff_paths(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else key)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += _diff_paths(x, y, f"{prefix}[{i}]")
        return out
    return [] if _canonical(a) == _canonical(b) else [prefix or "<scenario>"]


def _check_memory(scenario: Scenario, n_workers: int) -> None:
    from .resources import available_memory, estimate_memory

    need = estimate_memory(scenario)["total"] * n_workers
    available = available_memory()
    if need > available:
        gib = 2.0**30
        raise ResourceError(f"{n_workers} concurrent runs of the largest cell need about {need / gib:.1f} GiB but only "
                            f"{available / gib:.1f} GiB are available; use fewer --workers")


def _run_file(out: Path, kind: str, cell: int, replicate: int) -> Path:
    return out / kind / f"cell={cell}" / f"replicate={replicate}.parquet"


def _remove_partials(out: Path) -> None:
    """Remove the hidden temporary files a killed sweep left behind."""
    for kind in ("metrics", "runs"):
        for leftover in (out / kind).glob("cell=*/.*.tmp-*"):
            leftover.unlink(missing_ok=True)
    for leftover in out.glob(".*.tmp-*"):
        leftover.unlink(missing_ok=True)


def _temp_name(path: Path) -> Path:
    return path.parent / f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}"


def _write_table(table: pa.Table, path: Path) -> None:
    """Write a Parquet file atomically: a hidden temporary file, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    try:
        pq.write_table(table, tmp, compression="zstd", compression_level=1)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_bytes(path: Path, data: bytes) -> None:
    tmp = _temp_name(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _version() -> str:
    from . import __version__

    return __version__


__all__ = ["expand_grid", "load_sweep_file", "print_summary", "read_runs", "replicate_seed", "run_cells",
           "summarise", "sweep", "write_sweep_file"]
