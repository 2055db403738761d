"""What-if jobs: start them in child processes, follow them, cancel them.

A job runs a shipped scenario unchanged (the *base*) and with the user's
changes (the *variant*), same population, days and seed, in a child process:
a fresh Python interpreter running ``python -m socialcredit.web.worker FOLDER``
(:mod:`socialcredit.web.worker`). A fresh interpreter, unlike a forked or
``multiprocessing``-spawned child, never re-runs the module that started the
server, shares no lock or socket with it, and can be terminated at any moment
without harm to the server. Its folder
``ROOT/whatif/<id>/`` holds ``job.json`` (what to run, written here before the
child starts), the child's ``progress.json`` and ``result.json`` or
``error.json``, the ``variant`` run folder, and ``status.json`` once the job
has ended (written here). Base runs are cached in ``ROOT/whatif/bases/<key>``,
keyed by scenario file content, population, days, seed and package version,
so a second what-if on the same city runs only its variant.

At most ``max_jobs`` jobs run at once; one more is refused with
:class:`TooManyJobs`. A job whose process dies (an error, a crash, a kill) is
marked failed with what is known; a cancelled job's process is terminated and
its partial folders removed; the server keeps answering either way.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .. import __version__
from .paths import WHATIF, read_json, write_json

BASES = "bases"
TERMINAL = ("done", "failed", "cancelled", "interrupted")
MAX_LISTED = 200


class TooManyJobs(RuntimeError):
    """As many jobs as allowed are running already (answered with 429)."""


class JobConflict(RuntimeError):
    """The job is not in a state that allows the request (answered with 409)."""


def _start(folder: Path) -> subprocess.Popen:
    """Start ``python -m socialcredit.web.worker FOLDER``, importing this very copy of socialcredit."""
    package_parent = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    with open(folder / "worker.log", "wb") as log:
        return subprocess.Popen([sys.executable, "-m", "socialcredit.web.worker", str(folder)], cwd=str(folder),
                                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                close_fds=True)


def base_key(scenario_file: Path, city: dict[str, Any]) -> str:
    """The cache folder name of a base run: scenario, city and a digest of what makes it unique."""
    digest = hashlib.sha256(scenario_file.read_bytes())
    digest.update(json.dumps(city, sort_keys=True).encode())
    digest.update(__version__.encode())
    return (f"{scenario_file.stem}-n{city['population.size']}-d{city['days']}-s{city['seed']}-"
            f"{digest.hexdigest()[:10]}")


class Jobs:
    """The what-if jobs of one served folder.

    Parameters
    ----------
    root : Path
        The served folder (resolved).
    max_jobs : int
        Jobs allowed to run at once.
    max_memory : float, optional
        Memory limit in bytes for each run's pre-run check (default: what is available).
    """

    def __init__(self, root: Path, max_jobs: int, max_memory: float | None = None):
        self.root, self.max_jobs, self.max_memory = root, max_jobs, max_memory
        self.folder = root / WHATIF
        self._live: dict[str, subprocess.Popen] = {}
        self._lock = threading.RLock()

    # -- starting --------------------------------------------------------------------------------------------------
    def submit(self, scenario: str, scenario_file: Path, city: dict[str, Any], changes: dict[str, Any],
               defaults: dict[str, Any]) -> str:
        """Start a job and return its id; :class:`TooManyJobs` if ``max_jobs`` are running."""
        with self._lock:
            running = self.running()
            if running >= self.max_jobs:
                raise TooManyJobs(f"{running} what-if runs are computing already, the most this server allows "
                                  f"(--max-jobs {self.max_jobs}); wait for one to finish or cancel one, then retry")
            job_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)
            folder = self.folder / job_id
            folder.mkdir(parents=True)
            base = f"{WHATIF}/{BASES}/{base_key(scenario_file, city)}"
            write_json(folder / "job.json", {
                "id": job_id, "created": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                "root": str(self.root), "scenario": scenario, "scenario_file": str(scenario_file),
                "city": city, "changes": changes, "defaults": defaults, "base": base,
                "variant": f"{WHATIF}/{job_id}/variant", "max_memory": self.max_memory,
            })
            self._live[job_id] = _start(folder)
            return job_id

    def running(self) -> int:
        """Jobs whose process is alive now (ended ones are settled first)."""
        with self._lock:
            for job_id in list(self._live):
                self._settle(job_id)
            return len(self._live)

    # -- following -------------------------------------------------------------------------------------------------
    def _settle(self, job_id: str) -> None:
        """If the job's process has ended, record how the job ended (status.json) and forget the process."""
        process = self._live.get(job_id)
        if process is None or process.poll() is None:
            return
        folder = self.folder / job_id
        self._remove_partials(folder, process.pid)
        if (folder / "result.json").is_file():
            write_json(folder / "status.json", {"status": "done"})
        else:
            error = read_json(folder / "error.json")
            code = process.returncode
            if error:
                message = f"{error.get('type', 'Error')}: {error.get('message', '')}"
            elif code is not None and code < 0:
                message = f"the run process was killed by signal {-code} before it finished"
            else:
                message = f"the run process ended with exit code {code} before it finished"
            write_json(folder / "status.json", {"status": "failed", "error": message})
        del self._live[job_id]

    def status(self, folder: Path) -> dict[str, Any]:
        """Everything the page shows about the job in ``folder`` (JSON-ready)."""
        job_id = folder.name
        with self._lock:
            self._settle(job_id)
            live = job_id in self._live
        job = read_json(folder / "job.json") or {}
        out = {k: job.get(k) for k in ("id", "created", "scenario", "city", "changes", "defaults", "base", "variant")}
        out["id"] = job_id
        final = read_json(folder / "status.json")
        if live:
            progress = read_json(folder / "progress.json") or {}
            out.update(status="running", stage=progress.get("stage", "starting"), day=progress.get("day", 0),
                       days=progress.get("days", 0), fraction=progress.get("fraction", 0.0))
        elif final:
            out.update(status=final["status"], error=final.get("error"))
        elif (folder / "result.json").is_file():  # finished after the server that started it stopped
            out.update(status="done")
        else:  # no process and no final word: the server that started it stopped
            out.update(status="interrupted", error="the server stopped while this job was running; run it again")
        if out["status"] == "done":
            out["result"] = read_json(folder / "result.json")
            out["fraction"] = 1.0
        return out

    def list(self) -> list[dict[str, Any]]:
        """The latest jobs, newest first (without their comparisons)."""
        if not self.folder.is_dir():
            return []
        folders = sorted((p for p in self.folder.iterdir() if (p / "job.json").is_file() and not p.is_symlink()),
                         reverse=True)[:MAX_LISTED]
        out = []
        for folder in folders:
            info = self.status(folder)
            info.pop("result", None)
            out.append(info)
        return out

    # -- stopping --------------------------------------------------------------------------------------------------
    def cancel(self, folder: Path, why: str = "cancelled by the user") -> dict[str, Any]:
        """Terminate a running job, remove its partial and variant folders, mark it cancelled."""
        job_id = folder.name
        with self._lock:
            self._settle(job_id)
            process = self._live.get(job_id)
            if process is None:
                state = self.status(folder)["status"]
                raise JobConflict(f"job {job_id} is {state}; only a running job can be cancelled")
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if (folder / "result.json").is_file():  # it finished just before the signal
                self._settle(job_id)
                return self.status(folder)
            del self._live[job_id]
            self._remove_partials(folder, process.pid)
            shutil.rmtree(folder / "variant", ignore_errors=True)
            (folder / "progress.json").unlink(missing_ok=True)
            write_json(folder / "status.json", {"status": "cancelled", "error": why})
        return self.status(folder)

    def _remove_partials(self, folder: Path, pid: int | None) -> None:
        """Remove what a dead child left half-written: partial run folders and temporary files."""
        if pid is None:
            return
        job = read_json(folder / "job.json") or {}
        places = [folder, self.root / job["base"]] if job.get("base") else [folder]
        for place in places:
            parent = place if place == folder else place.parent
            found = [p for pattern in (f".*.partial-{pid}", f".*.old-{pid}", f".*.tmp-{pid}-*")
                     for p in parent.glob(pattern)]
            for leftover in found:
                if leftover.is_dir() and not leftover.is_symlink():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink(missing_ok=True)

    def shutdown(self) -> None:
        """Cancel every running job (the server is stopping)."""
        with self._lock:
            for job_id in list(self._live):
                try:
                    self.cancel(self.folder / job_id, why="the server stopped while this job was running")
                except JobConflict:
                    pass
