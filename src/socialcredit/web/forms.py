"""The what-if form, generated from the scenario schema so that it never drifts from it.

:func:`build_form` chooses the controls for a scenario (its city: population,
days and seed; and its rules: coupling strength, tie-cutting probabilities,
each agency's false-record rate, the points of every criticism record type and
the grade thresholds) and takes everything else from
:func:`socialcredit.scenario_schema`: the input type, the bounds, the label
and the help text. Default values come from the chosen scenario. Items of
lists are addressed by name (``record_types.petition.points``), exactly as
``socialcredit run --set`` addresses them.

:func:`read_form` turns submitted text into overrides and validates both
scenarios (the unchanged "base" and the changed "variant") with
:func:`socialcredit.scenario.load_scenario`, the same validation as ``--set``.
Every problem comes back as ``{field: message}``, so the page can show each
message beside its input.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import ScenarioError, ScenarioErrors
from ..scenario import load_scenario, parse_value, scenario_schema

#: Controls that describe the city (applied to the base and the variant alike), in form order.
CITY = ("population.size", "days", "seed")
#: Headings of the form's sections, in order.
SECTIONS = {
    "city": "The city (the same for both runs)",
    "coupling": "Friends' scores",
    "ties": "Cutting ties to the blacklisted",
    "errors": "False records per citizen-year, by agency",
    "points": "Points for criticism and petitions",
    "grades": "Grade thresholds (lowest score of each grade)",
}
DEFAULT_POPULATION = 20_000
_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


@dataclass(frozen=True)
class Control:
    """One input of the form.

    Attributes
    ----------
    name : str
        Dotted override path by item name (the input's name), e.g. ``record_types.petition.points``.
    index_path : str
        The same path by list index, as a ``ScenarioError`` names it, e.g. ``record_types[4].points``.
    section : str
        Key of :data:`SECTIONS`.
    label, help : str
        Shown beside the input; ``help`` is the schema's description.
    type : str
        ``"integer"`` or ``"number"``, from the schema.
    minimum, maximum, exclusive_minimum, exclusive_maximum : float or None
        Bounds from the schema (``maximum`` of the population is also capped by the server's limit).
    nullable : bool
        The schema allows null: an empty input means "not set" (e.g. a tie kind that inherits
        ``network.cut_probability``).
    value : int, float or None
        The chosen scenario's value.
    """

    name: str
    index_path: str
    section: str
    label: str
    help: str
    type: str
    minimum: float | None
    maximum: float | None
    exclusive_minimum: float | None
    exclusive_maximum: float | None
    nullable: bool
    value: Any

    def allowed(self) -> str:
        """The bounds in words, e.g. ``from 0 up to (not including) 1``; empty when unbounded."""
        low = (f"{self.minimum:g}", "") if self.minimum is not None else (
            (f"{self.exclusive_minimum:g}", " (not including)") if self.exclusive_minimum is not None else None)
        high = (f"{self.maximum:g}", "") if self.maximum is not None else (
            (f"{self.exclusive_maximum:g}", " (not including)") if self.exclusive_maximum is not None else None)
        if low and high:
            return f"from {low[0]}{low[1]} up to {high[0]}{high[1]}"
        if low:
            return f"at least {low[0]}" if not low[1] else f"above {low[0]}"
        if high:
            return f"at most {high[0]}" if not high[1] else f"below {high[0]}"
        return ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form of the control (with ``allowed``, the bounds in words)."""
        return {**asdict(self), "allowed": self.allowed()}


def shipped_scenarios(folder: Path | None) -> dict[str, Path]:
    """The scenario files offered by the explorer: ``*.toml`` directly in ``folder``, by stem."""
    if folder is None or not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.toml")) if p.is_file() and not p.name.startswith(".")}


def schema_property(schema: dict[str, Any], index_path: str) -> tuple[dict[str, Any], bool]:
    """The schema of the field at ``index_path`` and whether it may be null.

    ``$ref`` and ``anyOf [X, null]`` are followed; list items are reached by ``[i]``.
    """
    node: dict[str, Any] = schema
    for key, index in ((m.group(1), m.group(2)) for m in _TOKEN.finditer(index_path)):
        node = _deref(schema, node)[0]
        node = node["items"] if index is not None else node["properties"][key]
    return _deref(schema, node)


def _deref(schema: dict[str, Any], node: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """``node`` with ``$ref`` and ``anyOf [X, null]`` resolved, and whether null was allowed."""
    nullable = False
    while True:
        if "$ref" in node:
            node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
        elif "anyOf" in node:
            options = [o for o in node["anyOf"] if o.get("type") != "null"]
            nullable = nullable or len(options) < len(node["anyOf"])
            merged = {k: v for k, v in node.items() if k != "anyOf"}
            node = {**options[0], **merged}
        else:
            return node, nullable


def _paths(data: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(section, name, index path, item label) of every control of a resolved scenario."""
    out = [("city", p, p, "population" if p == "population.size" else "") for p in CITY]
    out.append(("coupling", "coupling.kappa", "coupling.kappa", ""))
    out.append(("ties", "network.cut_probability", "network.cut_probability", "every tie"))
    for i, kind in enumerate(data["network"]["kinds"]):
        out.append(("ties", f"network.kinds.{kind['name']}.cut_probability",
                    f"network.kinds[{i}].cut_probability", f"{kind['name']} ties"))
    for i, agency in enumerate(data["agencies"]):
        out.append(("errors", f"agencies.{agency['name']}.false_rate", f"agencies[{i}].false_rate", agency["name"]))
    for i, rt in enumerate(data["record_types"]):
        if rt.get("category") == "criticism":
            out.append(("points", f"record_types.{rt['name']}.points", f"record_types[{i}].points", rt["name"]))
    for i, grade in enumerate(data["scoring"]["grades"]):
        out.append(("grades", f"scoring.grades.{grade['name']}.min", f"scoring.grades[{i}].min",
                    f"grade {grade['name']}"))
    return out


def _value(data: dict[str, Any], index_path: str) -> Any:
    """The value at ``index_path`` in a resolved scenario, or None where it is unset."""
    node: Any = data
    for key, index in ((m.group(1), m.group(2)) for m in _TOKEN.finditer(index_path)):
        node = node[int(index)] if index is not None else node.get(key)
        if node is None:
            return None
    return node


def _bound(prop: dict[str, Any], key: str) -> float | None:
    """A numeric bound of a schema property (None when absent)."""
    value = prop.get(key)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def build_form(scenario_file: Path, max_population: int, schema: dict[str, Any] | None = None) -> list[Control]:
    """The controls of the what-if form for one scenario file (see the module docstring)."""
    schema = scenario_schema() if schema is None else schema
    data = load_scenario(scenario_file).to_dict()
    controls = []
    for section, name, index_path, item in _paths(data):
        prop, nullable = schema_property(schema, index_path)
        value = _value(data, index_path)
        maximum = _bound(prop, "maximum")
        if name == "population.size":
            maximum = max_population if maximum is None else min(maximum, max_population)
            value = min(value, DEFAULT_POPULATION, max_population)
        title = prop.get("title", name.rsplit(".", 1)[-1])
        controls.append(Control(
            name=name, index_path=index_path, section=section,
            label=f"{item}: {title}" if item else title, help=prop.get("description", ""),
            type="integer" if prop.get("type") == "integer" else "number",
            minimum=_bound(prop, "minimum"), maximum=maximum,
            exclusive_minimum=_bound(prop, "exclusiveMinimum"), exclusive_maximum=_bound(prop, "exclusiveMaximum"),
            nullable=nullable, value=value,
        ))
    return controls


def _parse(control: Control, text: str) -> Any:
    """The value of one input, or a ``ValueError`` whose message is shown beside it."""
    text = text.strip()
    if not text:
        if control.nullable:
            return None
        raise ValueError(f"enter a number (this scenario has {control.value})")
    value = parse_value(text)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{text[:40]!r} is not a number; enter a number such as {control.value}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("enter a finite number")
    if control.type == "integer":
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError(f"must be a whole number (got {text[:40]}); enter one such as {round(value)}")
            value = int(value)
    elif isinstance(value, int):
        value = float(value)
    return value


def _message(err: ScenarioError) -> str:
    """A scenario error as shown beside its input: the rule, the value and the fix."""
    text = f"{err.rule} (got {err.value!r})"
    return f"{text}. Fix: {err.hint}" if err.hint else text


def _field_of(controls: list[Control], path: str) -> str:
    """The input named by a scenario error's path (by name or by index), or ``_form``."""
    for c in controls:
        if path in (c.index_path, c.name):
            return c.name
    return "_form"


def _add(errors: dict[str, str], controls: list[Control], err: ScenarioError) -> None:
    """File one scenario error under its input, or under ``_form`` (naming its path) if no input matches."""
    field = _field_of(controls, err.path)
    message = _message(err) if field != "_form" else f"{err.path or 'scenario'}: {_message(err)}"
    errors.setdefault(field, message)


def read_form(scenario_file: Path, controls: list[Control], data: Mapping[str, Any],
              max_population: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """Validate a submitted form: ``(city, changes, errors)``.

    ``city`` holds the city overrides (population, days, seed); ``changes``
    the rule overrides whose value differs from the scenario's. ``errors``
    maps input names (or ``"_form"``) to messages; it is empty when both
    scenarios validate.
    """
    errors: dict[str, str] = {}
    city: dict[str, Any] = {}
    changes: dict[str, Any] = {}
    known = {c.name for c in controls} | {"scenario"}
    for key in data:
        if key not in known:
            errors[str(key)[:80]] = "not a control of this form; remove it"
    for control in controls:
        raw = data.get(control.name)
        if raw is None:
            raw = "" if control.value is None else str(control.value)
        try:
            value = _parse(control, str(raw))
        except ValueError as exc:
            errors[control.name] = str(exc)
            continue
        if control.name == "population.size" and value > max_population:
            errors[control.name] = (f"at most {max_population:,} citizens on this server (its --max-population "
                                    f"limit); lower the population to {max_population:,} or less")
            continue
        if control.section == "city":
            city[control.name] = value
        elif value != control.value:
            changes[control.name] = value
    if errors:
        return city, changes, errors
    for overrides in (city, {**city, **changes}):
        try:
            load_scenario(scenario_file, overrides)
        except ScenarioErrors as exc:
            for err in exc.errors:
                _add(errors, controls, err)
        except ScenarioError as exc:
            _add(errors, controls, exc)
        if errors:
            break
    return city, changes, errors
