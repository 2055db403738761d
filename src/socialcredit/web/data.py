"""The data behind the pages, read from run and sweep folders (JSON-ready).

Every function takes a folder already checked by :mod:`socialcredit.web.paths`.
The metric charts come straight from ``metrics.parquet``; a citizen's story
from :func:`socialcredit.explain.explain`; the audit
(:func:`socialcredit.audit.audit`), which can take seconds on a large run, is
computed only when asked for and kept per run folder, keyed by the SHA-256 of
its manifest (:class:`AuditCache`).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..lists import CAUSES
from ..runfolder import MANIFEST, read_manifest
from .paths import jsonable

BLACK_CAUSES = CAUSES[1:]
EGO_LIMIT = 300


def meta(manifest: dict[str, Any]) -> dict[str, Any]:
    """What the charts need to know about a run besides its metrics: names, sizes, grades and lists."""
    sc = manifest.get("scenario", {})
    grades = sc.get("scoring", {}).get("grades", [])
    types = sc.get("record_types", [])
    return {
        "scenario": manifest.get("scenario_name"), "seed": manifest.get("seed"),
        "citizens": manifest.get("citizens"), "days": manifest.get("days"), "ties": manifest.get("ties"),
        "steps": manifest.get("steps"), "every_days": sc.get("scoring", {}).get("every_days"),
        "grades": [{"name": g["name"], "min": g["min"]} for g in grades],
        "black_grades": sc.get("lists", {}).get("black_grades", []),
        "red_grades": sc.get("lists", {}).get("red_grades", []),
        "groups": [g["name"] for g in sc.get("population", {}).get("groups", [])],
        "types": [{"name": t["name"], "category": t.get("category", "other")} for t in types],
        "criticism": [t["name"] for t in types if t.get("category") == "criticism"],
        "kinds": [k["name"] for k in sc.get("network", {}).get("kinds", [])],
        "system": sc.get("system", True), "kappa": sc.get("coupling", {}).get("kappa"),
    }


def metrics(run: Path) -> dict[str, Any]:
    """``metrics.parquet`` column by column (NaN as null), with the run's :func:`meta`."""
    table = pq.read_table(run / "metrics.parquet")
    columns = {name: table[name].to_pylist() for name in table.column_names}
    return jsonable({"meta": meta(read_manifest(run)), "columns": columns})


_summaries: dict[tuple[str, int], dict[str, Any]] = {}


def run_summary(root: Path, run: Path) -> dict[str, Any]:
    """One line of the run list: name, scenario, citizens, days, blacklisted at the end, date, report."""
    stat = (run / MANIFEST).stat()
    key = (str(run), stat.st_mtime_ns)
    if key not in _summaries:
        if len(_summaries) > 10_000:
            _summaries.clear()
        manifest = read_manifest(run)
        try:
            last = pq.read_table(run / "metrics.parquet", columns=["blacklisted"])["blacklisted"].to_pylist()
            black = last[-1] if last else 0
        except (OSError, KeyError, ValueError):
            black = None
        _summaries[key] = {
            "scenario": manifest.get("scenario_name"), "citizens": manifest.get("citizens"),
            "days": manifest.get("days"), "seed": manifest.get("seed"), "blacklisted": black,
            "date": time.strftime("%Y-%m-%d %H:%M", time.localtime(stat.st_mtime)),
        }
    out = dict(_summaries[key])
    out.update(name=run.relative_to(root).as_posix(), report=(run / "report.html").is_file())
    return out


def blacklist(run: Path, limit: int = 100) -> dict[str, Any]:
    """The citizens on the black list at the end, by cause (the first ``limit`` of each, lowest score first)."""
    table = pq.read_table(run / "citizens.parquet",
                          columns=["citizen", "group", "points", "score", "grade", "blacklisted", "black_cause"])
    black = table.filter(table["blacklisted"])
    out: dict[str, Any] = {"total": black.num_rows, "citizens": table.num_rows, "causes": {}}
    for cause in BLACK_CAUSES:
        mine = black.filter(pc.equal(pc.cast(black["black_cause"], "string"), cause))
        order = np.argsort(mine["score"].to_numpy(), kind="stable")[:limit]
        rows = mine.take(order).select(["citizen", "group", "grade", "points", "score"]).to_pylist()
        out["causes"][cause] = {"count": mine.num_rows, "shown": rows}
    return jsonable(out)


def ego_network(run: Path, citizen: int, limit: int = EGO_LIMIT) -> dict[str, Any]:
    """A citizen's ties at the start of the run: each neighbour's kind, cut day, grade and score at the end."""
    ties = pq.read_table(run / "ties.parquet", columns=["source", "target", "kind", "weight", "cut_day"],
                         filters=[[("source", "=", citizen)], [("target", "=", citizen)]])
    src, dst = ties["source"].to_numpy(), ties["target"].to_numpy()
    other = np.where(src == citizen, dst, src)
    cut = ties["cut_day"].to_pylist()
    kinds = ties["kind"].to_pylist()
    weights = ties["weight"].to_pylist()
    order = sorted(range(other.size), key=lambda i: (kinds[i], cut[i] is not None, int(other[i])))[:limit]
    ids = [int(other[i]) for i in order]
    info = {}
    if ids:
        rows = pq.read_table(run / "citizens.parquet", columns=["citizen", "group", "score", "grade", "blacklisted"],
                             filters=[("citizen", "in", ids)]).to_pylist()
        info = {r["citizen"]: r for r in rows}
    neighbours = [{"citizen": j, "kind": kinds[i], "weight": weights[i], "cut_day": cut[i],
                   "group": info[j]["group"], "grade": info[j]["grade"], "score": info[j]["score"],
                   "blacklisted": info[j]["blacklisted"]} for i, j in zip(order, ids)]
    return jsonable({"citizen": citizen, "degree": int(other.size), "shown": len(neighbours),
                     "neighbours": neighbours})


def citizen(run: Path, citizen_id: int) -> dict[str, Any]:
    """A citizen's story (:func:`socialcredit.explain.explain`), her ego network and the run's grades."""
    from ..explain import explain

    story = explain(run, citizen_id)
    return jsonable({"story": story, "ego": ego_network(run, citizen_id), "meta": meta(read_manifest(run))})


def sweep(folder: Path) -> dict[str, Any]:
    """A sweep's summary (mean and 95 % CI per cell) with its parameter and measure names."""
    from ..query import part_files
    from ..sweep import SUMMARY, SWEEP_JSON, summarise

    spec = json.loads((folder / SWEEP_JSON).read_text(encoding="utf-8"))
    expected = len(spec.get("cells", [])) * int(spec.get("replicates", 1))
    finished = part_files(folder, "runs")
    if (folder / SUMMARY).is_file():
        table = pq.read_table(folder / SUMMARY)
    elif finished:
        import pyarrow as pa

        runs = pa.concat_tables([pq.read_table(f, partitioning=None) for f in finished], promote_options="default")
        labels = spec.get("cell_labels") or spec.get("cells") or [{}]
        params = list(dict.fromkeys(k for cell in labels for k in cell))
        table = summarise(runs, [p for p in params if p in runs.column_names])
    else:
        table = None
    names = table.column_names if table is not None else []
    params = names[names.index("cell") + 1:names.index("runs")] if "runs" in names else []
    measures = [n[:-5] for n in names if n.endswith("_mean")]
    return jsonable({
        "scenario": spec.get("scenario_resolved", {}).get("name") or Path(str(spec.get("scenario", ""))).stem,
        "replicates": spec.get("replicates"), "cells": len(spec.get("cells", [])), "seed": spec.get("seed"),
        "overrides": spec.get("overrides", []), "finished": len(finished), "expected": expected,
        "params": params, "measures": measures, "rows": table.to_pylist() if table is not None else [],
    })


def sweep_series(folder: Path, measure: str) -> dict[str, Any]:
    """Mean of ``measure`` over replicates, per cell and scoring step (for a chart over time)."""
    from ..sweep import read_metrics

    table = read_metrics(folder)
    if table.num_rows == 0 or measure not in table.column_names:
        return {"measure": measure, "cells": []}
    cell = table["cell"].to_numpy()
    day = table["day"].to_numpy()
    values = np.asarray(table[measure].to_numpy(zero_copy_only=False), dtype=np.float64)
    out = []
    for k in np.unique(cell):
        mine = cell == k
        days = np.unique(day[mine])
        means = [float(np.nanmean(values[mine & (day == d)])) for d in days]
        out.append({"cell": int(k), "day": days.tolist(), "mean": means})
    return jsonable({"measure": measure, "cells": out})


class AuditCache:
    """Audits of run folders, computed once per folder and manifest, at most ``size`` kept.

    Two requests for the same run wait for one computation rather than starting two.
    """

    def __init__(self, size: int = 8):
        self.size = size
        self._done: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, run: Path) -> dict[str, Any]:
        """The audit of ``run`` (computed now if not cached)."""
        from ..audit import audit

        key = (str(run), hashlib.sha256((run / MANIFEST).read_bytes()).hexdigest())
        with self._lock:
            if key in self._done:
                self._done.move_to_end(key)
                return self._done[key]
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            with self._lock:
                if key in self._done:
                    return self._done[key]
            result = jsonable(audit(run))
            with self._lock:
                self._done[key] = result
                self._locks.pop(key, None)
                while len(self._done) > self.size:
                    self._done.popitem(last=False)
        return result
