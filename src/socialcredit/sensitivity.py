"""Global sensitivity analysis of a scenario: which parameters move the black list?

:func:`sensitivity` declares each parameter's range, draws a design with SALib
(Sobol' indices from a Saltelli sample, or Morris elementary effects), runs
every design point as one cell of a sweep (:func:`socialcredit.sweep.run_cells`,
so on the same Dask machinery, with seeds by index), then analyses each output
(by default the final ``blacklisted`` count, its ``black_by_error`` and
``black_by_association`` parts and ``ties_cut_cum``) and writes

- ``OUT/indices.parquet``: one row per output and parameter;
- ``OUT/indices.svg``: the indices as bars with their confidence intervals;
- ``OUT/sensitivity.json``: the method, ranges, sample size and seed;

beside the sweep's own files (``sweep.json``, ``runs/``, ``metrics/``,
``summary.parquet``), so ``socialcredit.query`` reads the folder as a sweep
folder with an extra ``indices`` view.

Integer fields (``population.size``, ``network.k``, ...) are rounded half up
before they reach the scenario. The analysis uses SALib's unrounded design,
so an integer parameter is treated as the continuous input of a step function.

SALib, Dask and matplotlib are imported inside the functions.

References: Saltelli (2002), Making best use of model evaluations to compute
sensitivity indices, Comput. Phys. Commun. 145, 280-297; Morris (1991),
Factorial sampling plans for preliminary computational experiments,
Technometrics 33, 161-174; Campolongo, Cariboni & Saltelli (2007), An
effective screening design for sensitivity analysis of large models,
Environ. Model. Softw. 22, 1509-1518 (mu_star).
"""

from __future__ import annotations

import json
import math
import os
import re
import types
import typing
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from .errors import ResumeError, ScenarioError
from .metrics import metric_columns
from .scenario import Scenario, load_scenario, scenario_from_dict

METHODS = ("sobol", "morris")
DEFAULT_OUTPUTS = ("blacklisted", "black_by_error", "black_by_association", "ties_cut_cum")
CONF_LEVEL = 0.95
COLUMNS = {
    "sobol": ("S1", "S1_conf", "ST", "ST_conf"),
    "morris": ("mu_star", "mu_star_conf", "sigma", "mu"),
}
_SPEC = re.compile(r"^\s*(?P<path>[^=\s]+)\s*=\s*(?P<lo>[^:]+?)\s*:\s*(?P<hi>[^:]+?)\s*$")
_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


# --------------------------------------------------------------------------
# Parameters: parsing, types, validation
# --------------------------------------------------------------------------

def parse_param(spec: str) -> tuple[str, float, float]:
    """Parse a CLI parameter range ``PATH=LO:HI`` into ``(path, lo, hi)``.

    Raises
    ------
    ScenarioError
        Bad syntax, a bound that is not a finite number, or ``lo >= hi``.

    Examples
    --------
    >>> parse_param("coupling.kappa=0.1:0.9")
    ('coupling.kappa', 0.1, 0.9)
    >>> parse_param("population.size=300:600")
    ('population.size', 300.0, 600.0)
    """
    m = _SPEC.match(spec)
    if not m:
        raise ScenarioError(spec.partition("=")[0].strip() or spec, spec, "a parameter range must look like PATH=LO:HI",
                            "e.g. --param coupling.kappa=0.1:0.9")
    path = m.group("path")
    bounds = []
    for which in ("lo", "hi"):
        text = m.group(which)
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise ScenarioError(path, text, f"the {'lower' if which == 'lo' else 'upper'} bound is not a finite number",
                                f"give two numbers, e.g. {path}=0.1:0.9")
        bounds.append(value)
    lo, hi = bounds
    _check_order(path, lo, hi)
    return path, lo, hi


def _check_order(path: str, lo: float, hi: float) -> None:
    if not lo < hi:
        raise ScenarioError(path, f"{lo}:{hi}", "the lower bound must be below the upper bound",
                            f"write the range as {path}=LO:HI with LO < HI, e.g. {path}={min(lo, hi)}:{max(lo, hi) or 1}"
                            if lo != hi else f"to fix the value instead, use --set {path}={lo}")


def field_type(path: str) -> type:
    """``int`` or ``float``: the type of the numeric scenario field at a dotted path.

    Items of lists are addressed by index (``agencies[0].coverage``) or by name
    (``record_types.petition.points``), dict entries by key
    (``population.groups.dissident.rate_multipliers.petition``).

    Raises
    ------
    ScenarioError
        The path names no field, or a field that is not a number (bool, text, choice, list).

    Examples
    --------
    >>> field_type("population.size"), field_type("coupling.kappa")
    (<class 'int'>, <class 'float'>)
    """
    from pydantic import BaseModel

    tp: Any = Scenario
    walked = ""
    for m in _TOKEN.finditer(path):
        key, index = m.group(1), m.group(2)
        tp = _strip(tp)
        origin = typing.get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel) and index is None:
            if key not in tp.model_fields:
                where = f" under {walked}" if walked else ""
                raise ScenarioError(path, key, f"no field {key!r}{where}", f"use one of {sorted(tp.model_fields)}")
            tp = tp.model_fields[key].annotation
        elif origin is list:
            tp = typing.get_args(tp)[0]  # an item, by index or by name
        elif origin is dict and index is None:
            tp = typing.get_args(tp)[1]
        else:
            raise ScenarioError(path, m.group(0), f"cannot address {m.group(0)!r} after {walked or 'the top level'}",
                                "check the path against `socialcredit schema`")
        walked = path[:m.end()]
    tp = _strip(tp)
    if tp is int:
        return int
    if tp is float:
        return float
    name = getattr(tp, "__name__", None) or str(tp)
    raise ScenarioError(path, name, "is not a number field (int or float)",
                        "vary a numeric field; fix choices and flags with --set instead")


def _strip(tp: Any) -> Any:
    """Remove Annotated[...] and Optional[...] around a type."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def _value(kind: type, x: float) -> int | float:
    return _round_half_up(x) if kind is int else float(x)


def _base_raw(scenario: str | Path, overrides: list[str]) -> tuple[Scenario, dict[str, Any]]:
    """The scenario with overrides, validated, and its resolved plain data (to validate design points against)."""
    if isinstance(scenario, Scenario):
        raise TypeError("sensitivity() needs the scenario file (its runs are built from it on the Dask workers); "
                        "pass the path and give changes as overrides=['PATH=VALUE', ...]")
    for text in overrides:
        if "=" not in str(text):
            raise ScenarioError(str(text), text, "an override must look like PATH=VALUE", "e.g. --set coupling.kappa=0.3")
    base = load_scenario(scenario, overrides)
    return base, _inf(base.to_dict())


def _inf(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _inf(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_inf(v) for v in obj]
    if obj in ("inf", "-inf"):
        return float(obj)
    return obj


def _validate_point(raw: dict[str, Any], point: dict[str, Any], what: str, path: str | None = None) -> None:
    try:
        scenario_from_dict(raw, point)
    except ScenarioError as exc:
        errors = getattr(exc, "errors", [exc])
        first = errors[0]
        where = path or first.path
        raise ScenarioError(
            where, point[path] if path else point,
            f"{what} is not a valid scenario: {first.path}: {first.rule} (got {first.value!r})",
            f"narrow the range of {where}" + (f" ({first.hint})" if first.hint else ""),
        ) from None


# --------------------------------------------------------------------------
# The analysis
# --------------------------------------------------------------------------

def sensitivity(
    scenario: str | Path,
    params: Mapping[str, tuple[float, float]],
    method: str = "sobol",
    samples: int = 64,
    out: str | Path | None = None,
    seed: int = 0,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = True,
    outputs: Sequence[str] = DEFAULT_OUTPUTS,
    overrides: Sequence[str] = (),
    num_levels: int = 4,
) -> pa.Table:
    """Sobol' or Morris sensitivity of a scenario's final metrics to parameter ranges.

    Parameters
    ----------
    scenario : path
        The scenario file (the sweep's workers build every run from it).
    params : mapping of dotted path -> (lo, hi)
        The parameters varied and their ranges, e.g. ``{"coupling.kappa": (0.1, 0.9)}``
        (:func:`parse_param` turns ``"coupling.kappa=0.1:0.9"`` into one item). Both bounds
        are validated against the scenario schema before anything runs, and so is every
        design point. Integer fields are rounded half up.
    method : {"sobol", "morris"}
        ``"sobol"``: Saltelli's sample (``SALib.sample.sobol``, first and total order only,
        ``samples * (D + 2)`` runs for ``D`` parameters; ``samples`` should be a power of 2)
        analysed by ``SALib.analyze.sobol``. ``"morris"``: ``samples`` trajectories
        (``samples * (D + 1)`` runs) on a ``num_levels`` grid, analysed by
        ``SALib.analyze.morris``.
    samples : int
        Sobol' base sample size ``N``, or the number of Morris trajectories.
    out : path, optional
        Sweep folder to write (default ``runs/<scenario name>-<method>``). Resuming follows
        :func:`socialcredit.sweep.run_cells`.
    seed : int
        Seeds the design, the bootstrap confidence intervals and (by index) every run.
    workers, scheduler, progress
        Passed to :func:`socialcredit.sweep.run_cells`.
    outputs : sequence of str
        Metrics columns analysed, each taken from the run's last scoring step.
    overrides : sequence of "PATH=VALUE"
        Fixed overrides applied to every run (like ``--set``).
    num_levels : int
        Morris grid levels (even; SALib's default 4).

    Returns
    -------
    pyarrow.Table
        One row per output and parameter: ``output``, ``param``, then ``S1``, ``S1_conf``,
        ``ST``, ``ST_conf`` (sobol) or ``mu_star``, ``mu_star_conf``, ``sigma``, ``mu``
        (morris). Confidence half-widths are at the 95 % level (bootstrap, 100 resamples).
        Morris effects are in output units per full range of the parameter (SALib divides
        by the step on the unit scale). An output that is constant over all runs has
        undefined Sobol' indices (NaN, with a warning).

    Raises
    ------
    ScenarioError
        A parameter path that is not a numeric field, a range with ``lo >= hi``, a bound or
        design point the scenario schema refuses, or an unknown output.

    Notes
    -----
    Every design point is one sweep cell with one replicate, and every run uses the sweep's
    replicate-0 seed: the design points share their random numbers (common random numbers),
    so differences between runs come from the parameters, not from the draws. The indices
    therefore describe the model at that seed; rerun with other ``seed`` values to see how
    much they move.

    Examples
    --------
    >>> sensitivity("scenarios/reference.toml", {"coupling.kappa": (0.1, 0.9)}, method="morris",
    ...             samples=4, out=os.path.join(tempfile.mkdtemp(), "sa"), progress=False,
    ...             overrides=["population.size=200", "days=14"]).column_names  # doctest: +SKIP
    ['output', 'param', 'mu_star', 'mu_star_conf', 'sigma', 'mu']
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {METHODS}")
    if int(samples) != samples or samples < 2:
        raise ValueError(f"samples must be an integer >= 2 (got {samples!r}); e.g. 64 for sobol, 10 for morris")
    samples = int(samples)
    if method == "morris" and (num_levels < 2 or num_levels % 2):
        raise ValueError(f"num_levels must be even and >= 2 (got {num_levels}); SALib's default is 4")
    if not params:
        raise ScenarioError("params", {}, "no parameter to vary", "give at least one PATH=LO:HI range")
    outputs = list(outputs)
    if not outputs:
        raise ValueError("no output to analyse; give at least one metrics column, e.g. blacklisted")

    overrides = [str(o) for o in overrides]
    base, raw = _base_raw(scenario, overrides)
    fixed = {o.partition("=")[0].strip(): o.partition("=")[2].strip() for o in overrides}
    names: list[str] = []
    bounds: list[list[float]] = []
    kinds: list[type] = []
    for path, rng in params.items():
        try:
            lo, hi = (float(v) for v in rng)
        except (TypeError, ValueError):
            raise ScenarioError(path, rng, "a range must be two numbers (lo, hi)", f"e.g. {path}=0.1:0.9") from None
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ScenarioError(path, rng, "both bounds must be finite numbers", f"e.g. {path}=0.1:0.9")
        _check_order(path, lo, hi)
        if path in fixed:
            raise ScenarioError(path, fixed[path], "is both varied and fixed by an override", "drop one of the two")
        kind = field_type(path)
        if kind is int and not _round_half_up(lo) < _round_half_up(hi):
            raise ScenarioError(path, f"{lo}:{hi}", "an integer field needs at least two integers in its range",
                                f"widen the range, e.g. {path}={_round_half_up(lo)}:{_round_half_up(lo) + 1}")
        for what, v in (("lower bound", lo), ("upper bound", hi)):
            _validate_point(raw, {path: _value(kind, v)}, f"the {what} {path}={_value(kind, v)}", path)
        names.append(path)
        bounds.append([lo, hi])
        kinds.append(kind)
    known = metric_columns(base)
    unknown = [o for o in outputs if o not in known]
    if unknown:
        raise ScenarioError("outputs", unknown, "not a metrics column of this scenario",
                            f"use columns of metrics.parquet, e.g. {', '.join(DEFAULT_OUTPUTS)}")

    problem = {"num_vars": len(names), "names": names, "bounds": bounds}
    design = _sample(problem, method, samples, seed, num_levels)
    cells = [{p: _value(k, x) for p, k, x in zip(names, kinds, row)} for row in design]
    labels = [{p: float(x) for p, x in zip(names, row)} for row in design]  # the design as drawn, unrounded
    for i, cell in enumerate(cells):
        _validate_point(raw, cell, f"design point {i} ({', '.join(f'{p}={v}' for p, v in cell.items())})")

    out = Path(out) if out is not None else Path("runs") / f"{base.name}-{method}"
    from . import sweep

    sweep.run_cells(scenario, cells, replicates=1, out=out, seed=seed, workers=workers, scheduler=scheduler,
                    progress=progress, overrides=overrides, cell_labels=labels)
    runs = _runs_by_cell(out, labels, outputs)
    table = _analyse(problem, method, design, runs, outputs, seed, num_levels)

    _write_parquet(table, out / "indices.parquet")
    _write_text(out / "sensitivity.json", json.dumps({
        "method": method, "samples": samples, "runs": len(cells), "seed": seed,
        "num_levels": num_levels if method == "morris" else None, "conf_level": CONF_LEVEL,
        "params": {p: {"lo": b[0], "hi": b[1], "type": k.__name__} for p, b, k in zip(names, bounds, kinds)},
        "outputs": outputs, "overrides": overrides,
    }, indent=2) + "\n")
    plot_indices(table, out / "indices.svg", title=f"{base.name}: {method} sensitivity ({len(cells)} runs)")
    return table


def _sample(problem: dict[str, Any], method: str, samples: int, seed: int, num_levels: int) -> np.ndarray:
    if method == "sobol":
        from SALib.sample import sobol

        return sobol.sample(problem, samples, calc_second_order=False, seed=seed)
    from SALib.sample import morris

    return morris.sample(problem, samples, num_levels=num_levels, seed=seed)


def _runs_by_cell(out: Path, labels: list[dict[str, float]], outputs: list[str]) -> pa.Table:
    """The sweep's runs table, one row per design point in cell order, checked against the design."""
    from . import sweep

    runs = sweep.read_runs(out, len(labels), 1)
    got = runs.column("cell").to_pylist()
    if got != list(range(len(labels))):
        raise ResumeError(f"{out} holds runs for cells {_span(got)}, not one per design point 0..{len(labels) - 1}; "
                          f"choose another --out")
    for path in labels[0]:
        if path in runs.column_names:
            stored = np.asarray(runs.column(path).to_numpy(zero_copy_only=False), dtype=float)
            wanted = np.array([lab[path] for lab in labels], dtype=float)
            if not np.allclose(stored, wanted, rtol=1e-12, atol=0):
                raise ResumeError(f"{out} holds runs of a different design ({path} differs); choose another --out")
    missing = [o for o in outputs if o not in runs.column_names]
    if missing:
        raise ScenarioError("outputs", missing, "not a column of the sweep's runs table",
                            f"use one of {[c for c in runs.column_names if c not in ('cell', 'replicate', 'seed')]}")
    return runs


def _span(cells: list[int]) -> str:
    if not cells:
        return "none"
    return f"{min(cells)}..{max(cells)} ({len(cells)} rows)"


def _analyse(problem: dict[str, Any], method: str, design: np.ndarray, runs: pa.Table, outputs: list[str],
             seed: int, num_levels: int) -> pa.Table:
    rows: dict[str, list[Any]] = {"output": [], "param": [], **{c: [] for c in COLUMNS[method]}}
    n = len(design)
    for output in outputs:
        y = np.asarray(runs.column(output).to_numpy(zero_copy_only=False), dtype=float)
        constant = bool(np.ptp(y) == 0)
        if method == "sobol":
            if constant:
                warnings.warn(f"output {output!r} is {y[0]:g} in all {n} runs: its Sobol' indices are undefined (NaN)",
                              stacklevel=3)
                res = {c: np.full(problem["num_vars"], np.nan) for c in COLUMNS[method]}
            else:
                from SALib.analyze import sobol

                res = sobol.analyze(problem, y, calc_second_order=False, conf_level=CONF_LEVEL, seed=seed)
        else:
            from SALib.analyze import morris

            res = morris.analyze(problem, design, y, conf_level=CONF_LEVEL, num_levels=num_levels, seed=seed)
        for j, name in enumerate(problem["names"]):
            rows["output"].append(output)
            rows["param"].append(name)
            for c in COLUMNS[method]:
                rows[c].append(float(np.asarray(res[c], dtype=float)[j]))
    return pa.table({k: pa.array(v, pa.string() if k in ("output", "param") else pa.float64()) for k, v in rows.items()})


def _write_parquet(table: pa.Table, path: Path) -> None:
    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def plot_indices(table: pa.Table, path: str | Path, title: str | None = None) -> Path:
    """Bar chart of a sensitivity table (one panel per output, whiskers = 95 % CI), saved by its suffix (SVG).

    Sobol': S1 and ST side by side per parameter. Morris: mu_star with its CI, and sigma beside it.
    """
    import matplotlib
    from matplotlib.figure import Figure

    path = Path(path)
    cols = table.column_names
    sobol = "ST" in cols
    outputs = list(dict.fromkeys(table.column("output").to_pylist()))
    params = list(dict.fromkeys(table.column("param").to_pylist()))
    data = table.to_pydict()
    fig = Figure(figsize=(max(5.0, 1.2 * len(params) + 2.5), 2.4 * len(outputs) + 0.6), layout="constrained")
    axes = fig.subplots(len(outputs), 1, squeeze=False)[:, 0]
    x = np.arange(len(params))
    bars = (("S1", "S1_conf", "first order S1"), ("ST", "ST_conf", "total order ST")) if sobol else \
        (("mu_star", "mu_star_conf", "mu* (mean |effect|)"), ("sigma", None, "sigma (spread of effects)"))
    width = 0.38
    for ax, output in zip(axes, outputs):
        idx = [i for i, o in enumerate(data["output"]) if o == output]
        by_param = {data["param"][i]: i for i in idx}
        for b, (col, conf, label) in enumerate(bars):
            vals = np.array([data[col][by_param[p]] if p in by_param else np.nan for p in params], dtype=float)
            err = None
            if conf is not None:
                err = np.array([data[conf][by_param[p]] if p in by_param else np.nan for p in params], dtype=float)
                err = np.nan_to_num(err, nan=0.0)
            ax.bar(x + (b - 0.5) * width, np.nan_to_num(vals, nan=0.0), width, yerr=err, capsize=3, label=label,
                   color=("#4C72B0", "#DD8452")[b], ecolor="#222222")
        values = np.array([data[c][i] for i in idx for c in (bars[0][0], bars[1][0])], dtype=float)
        if np.isnan(values).all():
            note = "undefined: the output is the same in every run"
        elif not sobol and np.nan_to_num(values).max() == 0:
            note = "no effect: no parameter step changed the output"
        else:
            note = None
        if note:
            ax.text(0.5, 0.5, note, transform=ax.transAxes, ha="center", va="center", fontsize=9, color="#555555")
        if sobol:
            reach = np.array([data[c][i] + sign * data[f"{c}_conf"][i] for i in idx for c in ("S1", "ST")
                              for sign in (-1, 1)], dtype=float)
            low, high = (np.nanmin(np.r_[reach, 0.0]), np.nanmax(np.r_[reach, 1.0])) if not np.isnan(reach).all() \
                else (0.0, 1.0)
            ax.set_ylim(low - 0.05, high + 0.05)
        ax.set_title(output, loc="left", fontsize=10)
        ax.set_xticks(x, params, fontsize=8)
        ax.axhline(0, color="#888888", linewidth=0.6)
        if sobol:
            ax.set_ylabel("index")
        else:
            ax.set_ylabel("effect (output units\nper full range)", fontsize=8)
    axes[0].legend(fontsize=8, loc="upper right")
    if title:
        fig.suptitle(title, fontsize=11)
    with matplotlib.rc_context({"svg.hashsalt": "socialcredit", "svg.fonttype": "none"}):
        tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
        fmt = path.suffix.lstrip(".").lower() or "svg"
        fig.savefig(tmp, format=fmt, **({"metadata": {"Date": None}} if fmt in ("svg", "pdf") else {}))
        os.replace(tmp, path)
    return path
