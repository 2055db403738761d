"""The Python entry point: run a scenario and get its results."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from .engine import Engine
from .resources import check_memory
from .runfolder import prepare_destination, read_manifest, read_table, write_run
from .scenario import Scenario, load_scenario


@dataclass
class Results:
    """A finished run: its metrics in memory and, when written, its run folder.

    Attributes
    ----------
    engine : Engine
        The engine after the last day (final state, ledger, ties).
    path : Path or None
        The run folder, when one was written.
    """

    engine: Engine
    path: Path | None = None

    @property
    def metrics(self) -> list[dict[str, Any]]:
        """One dict per scoring step (the rows of ``metrics.parquet``)."""
        return self.engine.metrics

    @property
    def summary(self) -> dict[str, Any]:
        """The last step's headline figures."""
        last = self.metrics[-1] if self.metrics else {}
        keys = ["blacklisted", "redlisted", "black_by_record", "black_by_error", "black_by_association",
                "ties_cut_cum", "ties_active"]
        out = {k: last.get(k) for k in keys}
        out.update({k: v for k, v in last.items() if k.startswith("grade_")})
        return out

    def table(self, name: str) -> pa.Table:
        """A table of the run folder (``metrics``, ``citizens``, ``records``, ``ties``, ``standing``)."""
        if self.path is None:
            raise ValueError("this run was not written to a folder; pass out=... to run()")
        return read_table(self.path, name)

    @classmethod
    def open(cls, path: str | Path) -> dict[str, Any]:
        """The manifest of an existing run folder."""
        return read_manifest(path)


def run(scenario: Scenario | str | Path, seed: int | None = None, out: str | Path | None = None,
        force: bool = False, progress: Callable[[int, int], None] | None = None,
        max_memory: float | None = None) -> Results:
    """Run a scenario for all its days and, if ``out`` is given, write the run folder.

    Parameters
    ----------
    scenario : Scenario or path
        A validated scenario, or a scenario file to load.
    seed : int, optional
        Overrides the scenario's seed.
    out : path, optional
        Run folder to write (atomically); refused if it exists unless ``force``.
    progress : callable(day, days), optional
        Called after every day.
    max_memory : float, optional
        Memory limit in bytes for the pre-run check (default: what is available).

    Raises
    ------
    ResourceError
        The run would not fit in memory (checked before anything is built).
    RunFolderError
        ``out`` exists and ``force`` is false.
    """
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    if out is not None:
        prepare_destination(Path(out), force)
    estimate = check_memory(scenario, max_memory)
    engine = Engine(scenario, seed=seed)
    engine.run(progress=progress)
    path = None
    if out is not None:
        path = write_run(engine, Path(out), force=force, extra={"memory_estimate_bytes": int(estimate["total"])})
    return Results(engine=engine, path=path)
