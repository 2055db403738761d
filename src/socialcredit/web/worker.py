"""The child process of a what-if job: run the base and the variant, compare them.

:func:`main` runs in a separate process (``python -m socialcredit.web.worker
FOLDER``), never in the server's, so a crash or a long computation cannot take
the app down. It reads ``job.json`` from the job folder and talks back only through
small files written atomically into that folder:

``progress.json``
    ``stage`` (``base``, ``variant``, ``compare``), ``day``, ``days`` and
    ``fraction`` of the whole job, rewritten at most every 0.1 s. The run
    stops (and reports an error) if the server that started it is gone.
``result.json``
    Written last, when both runs are written: the comparison
    (:func:`socialcredit.compare.compare` of the variant against the base)
    and the seconds each stage took.
``error.json``
    Written instead when anything fails: the error's type and message.

The base run goes to the shared cache folder named in ``job.json`` and is
reused by later jobs with the same scenario file, population, days and seed.
Both runs use the same seed and population, so they simulate the same city
with the same random draws (common random numbers): every difference between
them is caused by the changed rules.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from .paths import read_json, write_json

PROGRESS_EVERY_S = 0.1


class _Progress:
    """Writes ``progress.json``: the stage, the day within it and the job's overall fraction."""

    def __init__(self, folder: Path, stages: list[str]):
        self.folder, self.stages, self.last = folder, stages, 0.0
        self.parent = os.getppid()

    def __call__(self, stage: str, day: int, days: int, force: bool = False) -> None:
        """Report ``day`` of ``days`` of ``stage`` (at most every 0.1 s unless ``force``)."""
        if os.getppid() != self.parent:  # the server is gone: nobody will read the result
            raise SystemExit("the server that started this run stopped")
        now = time.monotonic()
        if not force and now - self.last < PROGRESS_EVERY_S and day < days:
            return
        self.last = now
        done = self.stages.index(stage) if stage in self.stages else len(self.stages)
        fraction = (done + (day / days if days else 1.0)) / max(len(self.stages), 1)
        write_json(self.folder / "progress.json", {"stage": stage, "day": day, "days": days,
                                                   "fraction": round(min(fraction, 1.0), 4)})


def _complete(run: Path) -> bool:
    """Whether ``run`` is a complete run folder (its manifest is written last)."""
    return (run / "manifest.json").is_file()


def _run(scenario: Any, out: Path, stage: str, progress: _Progress, max_memory: float | None) -> None:
    """Run ``scenario`` into the run folder ``out`` with progress reports (an existing complete ``out`` is kept)."""
    from ..api import run
    from ..errors import RunFolderError

    progress(stage, 0, scenario.days, force=True)
    try:
        run(scenario, out=out, max_memory=max_memory,
            progress=lambda day, days: progress(stage, day, days))
    except RunFolderError:
        if not _complete(out):  # another job wrote the same cached base meanwhile: that one is as good
            raise
    progress(stage, scenario.days, scenario.days, force=True)


def run_job(folder: Path) -> dict[str, Any]:
    """Run the job described by ``folder/job.json`` and return what ``result.json`` holds."""
    from ..compare import compare
    from ..scenario import load_scenario

    job = read_json(folder / "job.json")
    root = Path(job["root"])
    scenario_file = Path(job["scenario_file"])
    base = load_scenario(scenario_file, job["city"])
    variant = load_scenario(scenario_file, {**job["city"], **job["changes"]})
    base_path, variant_path = root / job["base"], root / job["variant"]
    cached = _complete(base_path)
    progress = _Progress(folder, ([] if cached else ["base"]) + ["variant"])
    seconds: dict[str, float] = {}
    if not cached:
        t0 = time.perf_counter()
        base_path.parent.mkdir(parents=True, exist_ok=True)
        _run(base, base_path, "base", progress, job.get("max_memory"))
        seconds["base"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    _run(variant, variant_path, "variant", progress, job.get("max_memory"))
    seconds["variant"] = round(time.perf_counter() - t0, 3)
    progress("compare", 1, 1, force=True)
    t0 = time.perf_counter()
    comparison = compare(variant_path, base_path)
    seconds["compare"] = round(time.perf_counter() - t0, 3)
    return {"base_cached": cached, "seconds": seconds, "compare": comparison}


def main(folder: str) -> None:
    """Process entry point: run the job, write ``result.json`` or ``error.json``, exit 0 or 1."""
    path = Path(folder)
    try:
        result = run_job(path)
    except BaseException as exc:  # noqa: BLE001 - every failure is reported to the page
        message = str(exc) or exc.__class__.__name__
        write_json(path / "error.json", {"type": exc.__class__.__name__, "message": message,
                                         "traceback": traceback.format_exc(limit=8)})
        sys.exit(1)
    write_json(path / "result.json", result)


if __name__ == "__main__":  # pragma: no cover - run as a child process by jobs.Jobs
    main(sys.argv[1])
