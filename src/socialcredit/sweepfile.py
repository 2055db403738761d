"""Sweep files: a grid of rule variants declared in TOML beside the scenario.

    scenario = "rongcheng.toml"      # relative to this file
    replicates = 5
    seed = 1
    set = ["population.size=50000"]  # optional base overrides
    [grid]
    "coupling.kappa" = [0.1, 0.3, 0.5]
    "network.cut_probability" = [0.0, 0.05]

:func:`load_sweep_file` returns the keyword arguments of
:func:`socialcredit.sweep.sweep`; :func:`write_sweep_file` is its inverse.
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ScenarioError

SWEEP_FILE_KEYS = ("scenario", "replicates", "seed", "grid", "set")



def load_sweep_file(path: str | Path) -> dict[str, Any]:
    """Read a sweep file (TOML) into the keyword arguments of :func:`sweep`.

    The file::

        scenario = "reference.toml"        # relative to the sweep file
        replicates = 5
        seed = 7                           # optional, default 0
        set = ["population.size=2000"]     # optional base overrides
        [grid]
        "coupling.kappa" = [0.0, 0.25, 0.5]
        "network.cut_probability" = [0.0, 0.05]

    Unquoted dotted keys in ``[grid]`` (``coupling.kappa = [...]``) mean the
    same path.

    Returns
    -------
    dict
        ``scenario`` (Path, resolved against the sweep file's folder),
        ``replicates``, ``seed``, ``grid`` (path -> list) and ``overrides``
        (the ``set`` list), so that ``sweep(**load_sweep_file(p), out=...)`` runs it.

    Raises
    ------
    ScenarioError
        An unreadable file, invalid TOML, an unknown or missing key or a value
        of the wrong kind, naming the key.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(str(path), None, f"cannot read the sweep file ({exc.strerror})", "check the path") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(str(path), None, f"not valid TOML: {exc}",
                            "fix the TOML syntax at the line shown") from None
    where = f"in sweep file {path.name}"
    for key in raw:
        if key not in SWEEP_FILE_KEYS:
            raise ScenarioError(key, raw[key], f"unknown key {where}",
                                f"use only {', '.join(SWEEP_FILE_KEYS)}; scenario fields go in [grid] or set")
    for key in ("scenario", "replicates", "grid"):
        if key not in raw:
            raise ScenarioError(key, None, f"missing {where}", f"add {key} = ...")
    if not isinstance(raw["scenario"], str):
        raise ScenarioError("scenario", raw["scenario"], f"must be a path string {where}",
                            'e.g. scenario = "reference.toml"')
    for key in ("replicates", "seed"):
        value = raw.get(key, 0 if key == "seed" else 1)
        low = 1 if key == "replicates" else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ScenarioError(key, value, f"must be an integer >= {low} {where}", f"e.g. {key} = {max(low, 3)}")
    if not isinstance(raw["grid"], dict):
        raise ScenarioError("grid", raw["grid"], f"must be a table {where}",
                            '[grid] then "coupling.kappa" = [0.2, 0.5]')
    overrides = raw.get("set", [])
    if not isinstance(overrides, list) or not all(isinstance(o, str) and "=" in o for o in overrides):
        raise ScenarioError("set", overrides, f"must be a list of \"PATH=VALUE\" strings {where}",
                            'e.g. set = ["population.size=2000"]')
    grid = _flatten_grid(raw["grid"], "")
    from .sweep import expand_grid

    expand_grid(grid)  # checks every path has a non-empty list
    scenario = Path(raw["scenario"])
    if not scenario.is_absolute():
        scenario = path.parent / scenario
    return {"scenario": scenario, "replicates": raw["replicates"], "seed": raw.get("seed", 0),
            "grid": grid, "overrides": list(overrides)}


def _flatten_grid(table: dict[str, Any], prefix: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for key, value in table.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten_grid(value, f"{path}."))
        else:
            out[path] = value
    return out


def write_sweep_file(path: str | Path, spec: dict[str, Any]) -> Path:
    """Write ``spec`` (the dict :func:`load_sweep_file` returns) as a sweep file.

    ``load_sweep_file(write_sweep_file(p, spec)) == spec`` once the scenario
    path is resolved. The scenario path is written relative to the sweep
    file's folder when it lies below it.
    """
    path = Path(path)
    scenario = Path(spec["scenario"])
    try:
        scenario = scenario.resolve().relative_to(path.parent.resolve())
    except ValueError:
        scenario = scenario.resolve()
    lines = [f"scenario = {_toml(scenario.as_posix())}", f"replicates = {_toml(spec['replicates'])}",
             f"seed = {_toml(spec.get('seed', 0))}"]
    if spec.get("overrides"):
        lines.append(f"set = {_toml(list(spec['overrides']))}")
    lines.append("")
    lines.append("[grid]")
    lines += [f"{_toml(str(p))} = {_toml(list(v))}" for p, v in spec["grid"].items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _toml(value: Any) -> str:
    """A TOML value (scalars, arrays, inline tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k), ensure_ascii=False)} = {_toml(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} to TOML")
