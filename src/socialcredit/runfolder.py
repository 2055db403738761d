"""The run folder: Parquet tables and a manifest, written atomically.

A run is written into a hidden temporary folder beside its destination and
renamed into place only when every file is complete, so a run killed at any
moment never leaves a folder that looks complete. ``manifest.json`` is
written last and holds a SHA-256 of every table. The schema is documented in
``docs/outputs.md``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .columns import categorical, column, table
from .errors import RunFolderError
from .kernels import stable_row_order, take
from .lists import CAUSES
from .scoring import MILLI

if TYPE_CHECKING:
    from .engine import Engine

TABLES = ("metrics", "citizens", "records", "ties", "standing")
MANIFEST = "manifest.json"
FORMAT_VERSION = 1
ROW_GROUP = 1 << 17  # rows per Parquet row group: small enough for filters to skip most of a table
# Encodings beside the defaults (zstd level 1; dictionary pages for categorical columns only).
# Dictionary pages also for numeric columns of few distinct values (a weight per kind, days, points per
# record type): faster to write and smaller. No compression for columns of near-random bits (scores,
# the other end of each tie), where zstd saves 10-30 % of their size for a third of the write.
# Measured on Rongcheng's tables (one thread): 2.47 s -> 2.01 s, 80 -> 84 MB. A name also stands for
# its family of columns "<name>_...": the citizens' "score" covers each scheme's "score_<scheme>".
DICTIONARY_COLUMNS = {"ties": {"weight", "cut_day"}, "records": {"act_day", "effective_day", "points"},
                      "standing": {"step", "day", "points"}}
UNCOMPRESSED_COLUMNS = {"ties": {"target"}, "standing": {"score"}, "citizens": {"score"}}
# no min/max statistics for measures whose every row group spans about the whole range: they could
# never let a reader skip one, and computing them is a sixth of the writing (ids, days, steps, causes
# and grades keep theirs)
UNFILTERED_COLUMNS = {"ties": {"weight"}, "records": {"points"}, "standing": {"points", "score"},
                      "citizens": {"points", "score", "acts", "true_records", "false_records", "days", "sanction_days",
                                   "privilege_days", "degree_start", "degree_end"}}


def _nullable(values: np.ndarray) -> pa.Array:
    return column(values, null=values < 0)


def build_tables(engine: Engine) -> dict[str, pa.Table]:
    """Every output table of a finished run, as Arrow tables."""
    return {name: build() for name, build in table_builders(engine).items()}


def table_builders(engine: Engine) -> dict[str, Callable[[], pa.Table]]:
    """One function per output table that builds it, so a writer holds a table only while it writes it.

    The tables that usually take longest come first, so that writers working in parallel finish
    at about the same time (Rongcheng's five tables on two threads: 1.65 -> 1.50 s).
    """
    return {"records": lambda: _records_table(engine), "ties": lambda: _ties_table(engine),
            "standing": lambda: _standing_table(engine), "citizens": lambda: _citizens_table(engine),
            "metrics": lambda: _metrics_table(engine)}


def _by_citizen(citizen: np.ndarray, n: int) -> np.ndarray:
    """The stable order of rows by citizen (``np.argsort(citizen, kind="stable")``, by a counting sort)."""
    order, _ = stable_row_order(citizen, n)
    return order


def _metrics_table(engine: Engine) -> pa.Table:
    if not engine.metrics:
        return table({"step": np.empty(0, np.int64)})
    # column by column: the int64 and double columns pa.Table.from_pylist would infer
    rows = engine.metrics
    return table({name: np.array([row[name] for row in rows], dtype=_metric_dtype(value))
                  for name, value in rows[0].items()})


def _metric_dtype(value: float | int) -> type:
    """The numpy type of a metrics column, from one of its values."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"metrics values are ints or floats, not {type(value).__name__}")
    return np.int64 if isinstance(value, int) else np.float64


def _citizens_table(engine: Engine) -> pa.Table:
    sc = engine.scenario
    st = engine.standing
    pop = engine.population
    ties = engine.ties
    n = pop.size
    grades = sc.grade_names
    who, is_false = engine.ledger.column("citizen"), engine.ledger.column("is_false")
    true_counts = np.bincount(who[~is_false], minlength=n)
    false_counts = np.bincount(who[is_false], minlength=n)
    del who, is_false
    citizens: dict[str, Any] = {
        "citizen": np.arange(n, dtype=np.int32),
        "group": categorical(pop.group, sc.group_names),
        "points": st.points,
        "score": st.score,
        "grade": categorical(st.grade, grades),
        "blacklisted": st.listing.black,
        "redlisted": st.listing.red,
        "black_cause": categorical(st.listing.cause, list(CAUSES)),
    }
    for k, nl in enumerate(sc.lists.named):
        citizens[f"list_{nl.name}"] = st.listing.named[k]
    for s, scheme in enumerate(sc.schemes):
        citizens[f"score_{scheme.name}"] = st.side_scores[s]
    for c, name in enumerate(sc.type_names):
        citizens[f"acts_{name}"] = engine.acts_by_citizen[c]
    citizens["true_records"] = true_counts.astype(np.int32)
    citizens["false_records"] = false_counts.astype(np.int32)
    sanction = np.zeros(n, dtype=np.int32)
    privilege = np.zeros(n, dtype=np.int32)
    for f, effect in enumerate(sc.effects):
        days = engine.effect_days_of(f)  # a view, shared by effects of the same condition
        citizens[f"days_{effect.name}"] = days
        if effect.kind == "privilege":
            privilege += days
        else:
            sanction += days
    citizens["sanction_days"] = sanction
    citizens["privilege_days"] = privilege
    citizens["degree_start"] = engine.degree_start
    citizens["degree_end"] = ties.degree(active_only=True)
    return table(citizens)


def _records_table(engine: Engine) -> pa.Table:
    sc = engine.scenario
    ledger = engine.ledger.arrays()
    agencies = [a.name for a in sc.agencies]
    order = _by_citizen(ledger["citizen"], engine.population.size)  # one citizen's records are contiguous, by day
    ledger = {k: take(v, order) for k, v in ledger.items()}
    types = ledger["type"].astype(np.int64)
    records = {
        "citizen": ledger["citizen"],
        "type": categorical(types, sc.type_names),
        "agency": categorical(engine.catalogue.agency_of[types], agencies),
        "act_day": ledger["act_day"],
        "effective_day": ledger["effective_day"],
        "points": engine.catalogue.points_milli[0, types] / MILLI,
        "is_false": ledger["is_false"],
        "overturned_day": _nullable(ledger["overturned_day"]),
    }
    return table(records)


def _ties_table(engine: Engine) -> pa.Table:
    sc = engine.scenario
    ties = engine.ties
    return table({
        "source": ties.src,
        "target": ties.dst,
        "kind": categorical(ties.kind, [k.name for k in sc.network.kinds]),
        "weight": ties.weight,
        "cut_day": _nullable(ties.cut_day),
    })


STANDING_DTYPES = (np.int32, np.int32, np.int32, np.float64, np.float64, np.int8, bool, bool, np.int8)


def _standing_table(engine: Engine) -> pa.Table:
    """The whole standing table (for readers in memory; the run folder streams it by :func:`write_standing`)."""
    return pa.concat_tables(list(_standing_row_groups(engine)))


def _standing_row_groups(engine: Engine) -> Iterator[pa.Table]:
    """The standing table in slices of :data:`ROW_GROUP` rows, one citizen's history contiguous, by step.

    Each slice is gathered from the change log's chunks rather than from one sorted copy of the whole
    log: a chunk is one step's rows with ids ascending, so the citizens of one slice are a contiguous
    range of every chunk, and a stable sort of those ranges by citizen puts them in the table's order
    (the rows of the table sorted as a whole, same bytes, a fraction of the memory).
    """
    grades = engine.scenario.grade_names
    chunks = engine.changes.chunks
    if not chunks:
        yield _standing_slice([np.empty(0, dt) for dt in STANDING_DTYPES], grades)
        return
    counts = np.zeros(engine.population.size, dtype=np.int64)
    for chunk in chunks:
        counts[chunk[0]] += 1  # a chunk holds each citizen at most once
    ends = np.cumsum(counts)  # the table's rows up to each citizen's last
    starts = np.arange(0, int(ends[-1]), ROW_GROUP, dtype=np.int64)
    stops = np.minimum(starts + ROW_GROUP, ends[-1])
    first = np.searchsorted(ends, starts, side="right")  # the citizen of each slice's first row
    last = np.searchsorted(ends, stops - 1, side="right")  # and of its last
    skip = starts - (ends[first] - counts[first])  # rows of the first citizen in the slice before
    bounds = [(np.searchsorted(c[0], first), np.searchsorted(c[0], last + 1)) for c in chunks]
    for g in range(starts.size):
        cols = [np.concatenate([c[i][lo[g]:hi[g]] for c, (lo, hi) in zip(chunks, bounds, strict=True)])
                for i in range(len(STANDING_DTYPES))]
        order = _by_citizen(cols[0] - first[g], int(last[g] - first[g]) + 1)[skip[g]:skip[g] + stops[g] - starts[g]]
        yield _standing_slice([take(c, order) for c in cols], grades)


def _standing_slice(cols: list[np.ndarray], grades: list[str]) -> pa.Table:
    return table({
        "citizen": cols[0], "step": cols[1], "day": cols[2], "points": cols[3], "score": cols[4],
        "grade": categorical(cols[5], grades),
        "blacklisted": cols[6], "redlisted": cols[7],
        "black_cause": categorical(cols[8], list(CAUSES)),
    })


def write_standing(engine: Engine, path: Path) -> None:
    """Write the standing table to Parquet slice by slice (bytes equal to :func:`write_table` of the whole)."""
    writer = None
    try:
        for group in _standing_row_groups(engine):
            if writer is None:
                writer = pq.ParquetWriter(path, group.schema, **_parquet_options(group.schema, "standing"))
            writer.write_table(group, row_group_size=ROW_GROUP)
    finally:
        if writer is not None:
            writer.close()


def write_table(table: pa.Table, path: Path, name: str) -> None:
    """Write one of a run folder's tables to Parquet with the encodings chosen for its columns."""
    pq.write_table(table, path, row_group_size=ROW_GROUP, **_parquet_options(table.schema, name))


def _parquet_options(schema: pa.Schema, name: str) -> dict[str, Any]:
    """The Parquet writer's options for the columns of table ``name``."""
    # dictionary pages for categorical and few-valued columns only: for ids and scores they cost time
    # and, on ids in order, space (the ties table of 20 M rows: 2.1x faster, half the size)
    dictionary = [f.name for f in schema
                  if pa.types.is_dictionary(f.type) or _listed(f.name, DICTIONARY_COLUMNS.get(name, ()))]
    plain = {c for c in schema.names if _listed(c, UNCOMPRESSED_COLUMNS.get(name, ()))}
    compression = {c: "none" if c in plain else "zstd" for c in schema.names}
    levels = {c: 1 for c in schema.names if c not in plain}
    statistics = [c for c in schema.names if not _listed(c, UNFILTERED_COLUMNS.get(name, ()))]
    return {"compression": compression, "compression_level": levels or None, "use_dictionary": dictionary,
            "write_statistics": statistics}


def _listed(column: str, names) -> bool:
    """Whether ``column`` is one of ``names`` or of a family ``<name>_...`` of one of them."""
    return any(column == n or column.startswith(n + "_") for n in names)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def prepare_destination(out: Path, force: bool) -> None:
    """Refuse an existing destination unless ``force``; checked before a run starts."""
    if out.exists() and not force:
        raise RunFolderError(f"{out} exists already; use --force to replace it, or choose another --out")
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"{out} exists and is not a folder; choose another --out")


def write_run(engine: Engine, out: Path, force: bool = False, extra: dict[str, Any] | None = None) -> Path:
    """Write a finished run to ``out`` atomically and return its path."""
    from . import __version__

    out = Path(out)
    prepare_destination(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(out)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        t0 = time.perf_counter()
        builders = table_builders(engine)

        def write(name: str) -> tuple[str, str]:
            path = tmp / f"{name}.parquet"
            if name == "standing":  # the largest table at scale: streamed, never held whole
                write_standing(engine, path)
            else:
                write_table(builders[name](), path, name)
            return path.name, sha256(path)

        # tables written in parallel (pyarrow writes without the GIL), at any size: the standing table,
        # the largest, is streamed, and the others held whole together cost less than it did held whole
        # (3 M citizens on two threads: 3.4-3.7 s and 0.6-0.8 GB over the run's memory; one at a time
        # holding the whole standing table, as before, 7.7-10.3 s and 1.0 GB)
        with ThreadPoolExecutor(max_workers=min(len(builders), os.cpu_count() or 1)) as pool:
            hashes = dict(sorted(pool.map(write, builders)))
        timings = dict(engine.timings)
        timings["write"] = time.perf_counter() - t0
        manifest = {
            "format_version": FORMAT_VERSION,
            "package": "socialcredit",
            "version": __version__,
            "scenario_name": engine.scenario.name,
            "seed": engine.seed,
            "days": engine.scenario.days,
            "citizens": engine.population.size,
            "ties": engine.ties.n_ties,
            "steps": len(engine.metrics),
            "timings_s": {k: round(v, 4) for k, v in timings.items()},
            "sha256": hashes,
            "scenario": engine.scenario.to_dict(),
            **(extra or {}),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a failed write leaves nothing behind
        raise
    _replace(tmp, out)
    return out


def _remove_stale_partials(out: Path) -> None:
    """Remove hidden partial folders of this destination left by killed runs."""
    leftovers = list(out.parent.glob(f".{out.name}.partial-*"))
    if not leftovers:
        return
    import psutil  # only where something was left: its import is tens of milliseconds

    for leftover in leftovers:
        pid = leftover.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def _replace(tmp: Path, out: Path) -> None:
    if out.exists():
        trash = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(trash)
        tmp.rename(out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        tmp.rename(out)


def read_manifest(run: str | Path) -> dict[str, Any]:
    """The manifest of a complete run folder (raises if it is not one)."""
    path = Path(run) / MANIFEST
    if not path.is_file():
        raise RunFolderError(f"{run} is not a complete run folder (no {MANIFEST}); rerun the scenario")
    return json.loads(path.read_text(encoding="utf-8"))


def read_table(run: str | Path, name: str) -> pa.Table:
    """One table of a run folder as an Arrow table."""
    if name not in TABLES:
        raise ValueError(f"unknown table {name!r}; use one of {TABLES}")
    read_manifest(run)
    return pq.read_table(Path(run) / f"{name}.parquet")
