"""The served folder: which names the app accepts and where they lead.

Every URL that names a run, a sweep or a what-if job goes through
:func:`resolve` (or :func:`run_folder` / :func:`sweep_folder`), which takes a
*relative name* such as ``reference`` or ``whatif/20240101-120000-ab12cd/variant``
and refuses anything that could lead outside the served folder: absolute
paths, drive letters, ``..`` and ``.`` parts, empty parts (``a//b``),
backslashes, NUL bytes, hidden parts (the partial folders of runs being
written) and symbolic links whose target lies outside the folder. A folder is
only served if every file in it also resolves inside the served folder, so a
run folder whose ``report.html`` links to ``/etc/passwd`` is refused as a
whole. Refusals raise :class:`NotFound`, which the app answers with 404.

:func:`scan` lists the run and sweep folders under the root without following
links; :func:`atomic_write` is the one way the app writes a small file.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
from pathlib import Path
from typing import Any

from ..query import SWEEP_MANIFEST
from ..runfolder import MANIFEST

#: The folder (under the root) where what-if jobs and their cached base runs live.
WHATIF = "whatif"
MAX_NAME = 512
MAX_DEPTH = 6
MAX_FOLDERS = 5000
_DRIVE = re.compile(r"^[A-Za-z]:")
_JOB_ID = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$")


class NotFound(LookupError):
    """A name that is not a servable folder or file inside the root (answered with 404)."""


def check_name(name: str) -> list[str]:
    """The parts of a relative ``/``-separated name, or :class:`NotFound` if the name is unsafe.

    Examples
    --------
    >>> check_name("sweeps/kappa")
    ['sweeps', 'kappa']
    >>> check_name("../etc/passwd")
    Traceback (most recent call last):
    ...
    socialcredit.web.paths.NotFound: '../etc/passwd' is not a name inside the served folder: use a relative name without '..', '.', empty or hidden parts, backslashes or a leading '/'
    """
    bad = NotFound(f"{name[:80]!r} is not a name inside the served folder: use a relative name without "
                   "'..', '.', empty or hidden parts, backslashes or a leading '/'")
    if not isinstance(name, str) or not name or len(name) > MAX_NAME:
        raise bad
    if "\x00" in name or "\\" in name or name.startswith("/") or _DRIVE.match(name):
        raise bad
    parts = name.split("/")
    if any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        raise bad
    return parts


def inside(root: Path, path: Path) -> bool:
    """Whether ``path`` resolves (links followed) to ``root`` or a path under it."""
    try:
        return path.resolve(strict=True).is_relative_to(root)
    except (OSError, RuntimeError):
        return False


def resolve(root: Path, name: str) -> Path:
    """The real path of ``name`` under the (resolved) ``root``; :class:`NotFound` if unsafe or missing."""
    parts = check_name(name)
    candidate = root.joinpath(*parts)
    try:
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        raise NotFound(f"there is no folder or file named {name!r} in the served folder") from None
    if not real.is_relative_to(root):
        raise NotFound(f"{name!r} leads outside the served folder (a link to elsewhere); it is not served")
    return real


def _contents_inside(root: Path, folder: Path, name: str, recursive: bool) -> None:
    """:class:`NotFound` if any link in ``folder`` (or below, if ``recursive``) leads outside ``root``."""
    entries = folder.rglob("*") if recursive else folder.iterdir()
    for count, entry in enumerate(entries):
        if count > 100_000:
            raise NotFound(f"{name!r} holds too many files to be served")
        if entry.is_symlink() and not inside(root, entry):
            raise NotFound(f"{name!r} holds a link to a file outside the served folder; it is not served")


def run_folder(root: Path, name: str) -> Path:
    """The run folder ``name`` (it has ``manifest.json``), checked as :func:`resolve` describes."""
    return _marked_folder(root, name, MANIFEST, "run", recursive=False)


def sweep_folder(root: Path, name: str) -> Path:
    """The sweep folder ``name`` (it has ``sweep.json``), every file in it checked."""
    return _marked_folder(root, name, SWEEP_MANIFEST, "sweep", recursive=True)


def _marked_folder(root: Path, name: str, marker: str, kind: str, recursive: bool) -> Path:
    """A folder below ``root`` that holds ``marker``, with no link in it leading outside ``root``."""
    path = resolve(root, name)
    if not path.is_dir() or not (path / marker).is_file():
        raise NotFound(f"{name!r} is not a {kind} folder in the served folder (no {marker}); "
                       f"pick a {kind} from the list on the home page")
    _contents_inside(root, path, name, recursive=recursive)
    return path


def run_file(root: Path, run: Path, filename: str) -> Path:
    """A file directly inside a checked run folder, refused if missing or a link leaving the root."""
    if "/" in filename or filename.startswith("."):
        raise NotFound(f"{filename!r} is not a file of a run folder")
    path = run / filename
    if not path.is_file() or not inside(root, path):
        raise NotFound(f"this run folder has no {filename}")
    return path.resolve()


def job_folder(root: Path, job_id: str) -> Path:
    """The folder of what-if job ``job_id`` (``whatif/<id>``); :class:`NotFound` for a malformed id."""
    if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
        raise NotFound(f"{job_id[:40]!r} is not a what-if job id (they look like 20240101-120000-ab12cd)")
    path = resolve(root, f"{WHATIF}/{job_id}")
    if not (path / "job.json").is_file():
        raise NotFound(f"there is no what-if job {job_id}")
    return path


def scan(root: Path) -> dict[str, list[str]]:
    """Relative names of the run and sweep folders under ``root`` (links not followed, hidden skipped).

    The ``whatif`` folder is left out: its runs are listed as what-if jobs.
    """
    runs: list[str] = []
    sweeps: list[str] = []
    seen = 0
    for here, dirs, files in os.walk(root, followlinks=False):
        rel = Path(here).relative_to(root)
        depth = len(rel.parts)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not (depth == 0 and d == WHATIF))
        seen += 1
        if seen > MAX_FOLDERS:
            break
        if depth and MANIFEST in files:
            runs.append(rel.as_posix())
            dirs[:] = []
        elif depth and SWEEP_MANIFEST in files:
            sweeps.append(rel.as_posix())
            dirs[:] = []
        elif depth >= MAX_DEPTH:
            dirs[:] = []
    return {"runs": sorted(runs), "sweeps": sorted(sweeps)}


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a hidden temporary file renamed into place."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def jsonable(data: Any) -> Any:
    """``data`` with NaN and infinite numbers as None, tuples as lists and numpy scalars as Python ones.

    Examples
    --------
    >>> jsonable({"a": float("nan"), "b": (1, 2.5)})
    {'a': None, 'b': [1, 2.5]}
    """
    if isinstance(data, dict):
        return {str(k): jsonable(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [jsonable(v) for v in data]
    if hasattr(data, "item") and not isinstance(data, (str, bytes)):
        data = data.item()
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, Path):
        return str(data)
    return data


def write_json(path: Path, data: Any) -> None:
    """:func:`atomic_write` of ``data`` as JSON (NaN written as null)."""
    atomic_write(path, json.dumps(jsonable(data), indent=2, default=str) + "\n")


def read_json(path: Path) -> Any:
    """A JSON file's content, or None if it is missing or not (yet) valid JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
