#!/usr/bin/env python3
"""Regenerate the scenario-parameter tables in docs/model.md from the scenario schema.

The tables between the markers ``<!-- schema:start -->`` and ``<!-- schema:end -->``
in ``docs/model.md`` are generated from the pydantic JSON schema of a scenario
(``socialcredit.scenario.scenario_schema()``, what ``socialcredit schema`` prints).
Two facts the JSON schema does not carry are read from the same pydantic models:
defaults given by a factory (``[]``, ``{}``, a default sub-table) and whether a
number must be finite. Fields whose schema has no description get a short text
from ``FALLBACK`` below; a description in the schema always wins.

Run it where socialcredit and its dependencies import (the project's virtual environment);
from a source tree without an installed package it adds ``src/`` to the path.

Usage::

    python docs/gen_schema_tables.py            # rewrite the block in docs/model.md
    python docs/gen_schema_tables.py --check    # exit 1 if docs/model.md is out of date
    python docs/gen_schema_tables.py --print    # print the block only

Cross-field rules (shares summing to 1, descending thresholds, references to
existing names...) live in validators, not in the JSON schema; docs/model.md
describes them in prose next to the block.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

try:
    from socialcredit import scenario as scenario_module
except ImportError:  # running from a source tree without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from socialcredit import scenario as scenario_module

START = "<!-- schema:start -->"
END = "<!-- schema:end -->"
DOC = Path(__file__).resolve().parent / "model.md"
NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_+\-]*$"

#: Meanings for fields whose schema has no description (keyed "Definition.field").
FALLBACK = {
    "Scenario.name": "Scenario name (used in the run folder's manifest and the default run folder `runs/<name>`).",
    "Scenario.description": "Free text.",
    "Scenario.population": "Who lives in the city.",
    "Scenario.network": "The social network and how ties are cut.",
    "Scenario.agencies": "Agencies that record acts (at least one).",
    "Scenario.record_types": "Record types: the acts the platform records (at least one).",
    "Scenario.scoring": "The state score: points account and grades.",
    "Scenario.coupling": "How friends' scores enter the state score.",
    "Scenario.lists": "Red, black and named lists.",
    "Scenario.appeals": "The appeal procedure against false records.",
    "Scenario.effects": "Sanctions and privileges.",
    "Scenario.schemes": "Side scores beside the state's.",
    "TieKind.name": "Tie-kind name; the kind named `family` is the one `target = \"family\"` effects use.",
    "Agency.name": "Agency name, referenced by record types and surveillance effects.",
    "Agency.kind": "Label only; the engine does not use it.",
    "RecordType.name": "Record-type name; also keys the type's random streams.",
    "RecordType.category": "Label only; the engine does not use it.",
    "Grade.name": "Grade (or band) name.",
    "Coupling.mode": "`none`: S = P; `neighbour_mean`: S = (1-kappa) P + kappa W P; "
                     "`friedkin_johnsen`: S = (1-kappa) P + kappa W S, solved by Chebyshev-accelerated Jacobi iteration from S = P.",
    "NamedList.name": "List name (must differ from `black` and `red`).",
    "NamedList.grades": "Grades (of the state score) that put a citizen on this list.",
    "Condition.grades": "Grades of the state score that meet the condition.",
    "Condition.min_score": "With `scheme`: lowest side score that meets the condition (inclusive).",
    "Condition.max_score": "With `scheme`: side scores must lie below this (exclusive).",
    "Effect.name": "Effect name (column `effect_<name>` in metrics, `days_<name>` in citizens).",
    "Effect.when": "Who meets the condition: exactly one of grades, lists or a scheme band.",
    "Scheme.name": "Scheme name (columns `score_<name>` in citizens, `mean_<name>` in metrics).",
    "Scheme.start": "Everyone's starting points on this scheme.",
    "Scheme.min": "Lowest points (clip).",
    "Scheme.max": "Highest points (clip).",
    "Scheme.coupling": "The scheme's own coupling to neighbours (default kappa = 0: score = own points).",
}


def _num(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if value >= 2**32 and value & (value - 1) == 0:
            return f"2^{value.bit_length() - 1}"
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if value.is_integer() and abs(value) < 1e15:
            return _num(int(value))
        return repr(value)
    return str(value)


def _toml(value: Any) -> str:
    """A default value as it would be written in a scenario file."""
    if value is None:
        return "unset"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (bool, int, float)):
        return _num(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if hasattr(value, "model_dump"):
        return _toml(value.model_dump(exclude_defaults=True))
    return str(value)


def _interval(spec: dict[str, Any]) -> str:
    lo = hi = None
    if "minimum" in spec:
        lo = ("[", spec["minimum"])
    if "exclusiveMinimum" in spec:
        lo = ("(", spec["exclusiveMinimum"])
    if "maximum" in spec:
        hi = ("]", spec["maximum"])
    if "exclusiveMaximum" in spec:
        hi = (")", spec["exclusiveMaximum"])
    if lo and hi:
        return f"{lo[0]}{_num(lo[1])}, {_num(hi[1])}{hi[0]}"
    if lo:
        return ("≥ " if lo[0] == "[" else "> ") + _num(lo[1])
    if hi:
        return ("≤ " if hi[0] == "]" else "< ") + _num(hi[1])
    return ""


def _ref_name(spec: dict[str, Any]) -> str | None:
    ref = spec.get("$ref")
    return ref.rsplit("/", 1)[-1] if ref else None


def _describe(spec: dict[str, Any]) -> tuple[str, list[str]]:
    """(type text, bounds) of one property's schema."""
    bounds: list[str] = []
    if "anyOf" in spec:
        options = [o for o in spec["anyOf"] if o.get("type") != "null"]
        kind, inner = _describe(options[0]) if len(options) == 1 else (" or ".join(_describe(o)[0] for o in options), [])
        return f"{kind} (optional)", inner
    if _ref_name(spec):
        return "table", []
    if "enum" in spec:
        return "one of " + ", ".join(f"`{v}`" for v in spec["enum"]), []
    kind = spec.get("type")
    if kind == "array":
        item = spec.get("items", {})
        if _ref_name(item):
            text = "array of tables"
        else:
            item_kind, _ = _describe(item)
            text = f"list of {item_kind}s"
        if "minItems" in spec:
            bounds.append(f"≥ {spec['minItems']} item" + ("s" if spec["minItems"] != 1 else ""))
        return text, bounds
    if kind == "object":
        values = spec.get("additionalProperties", {})
        value_kind, value_bounds = _describe(values) if isinstance(values, dict) else ("value", [])
        bounds.extend(f"values {b}" for b in value_bounds)
        return f"map name → {value_kind}", bounds
    if kind == "string":
        if spec.get("pattern") == NAME_PATTERN:
            return "name", []
        if "maxLength" in spec:
            bounds.append(f"≤ {spec['maxLength']} characters")
        return "string", bounds
    interval = _interval(spec)
    if interval:
        bounds.append(interval)
    return {"number": "number", "integer": "integer", "boolean": "boolean"}.get(kind, str(kind)), bounds


def _model_field(def_name: str, field: str):
    model = getattr(scenario_module, def_name, None)
    if model is None or not hasattr(model, "model_fields"):
        return None
    return model.model_fields.get(field)


def _finite(field) -> bool:
    return field is not None and any(getattr(m, "allow_inf_nan", None) is False for m in field.metadata)


def _default(def_name: str, field: str, spec: dict[str, Any], required: bool) -> str:
    if required:
        return "**required**"
    if "default" in spec:
        return f"`{_toml(spec['default'])}`"
    info = _model_field(def_name, field)
    if info is not None and info.default_factory is not None:
        value = info.default_factory()
        if hasattr(value, "model_dump"):
            return "(all defaults)"
        if isinstance(value, list) and value and hasattr(value[0], "model_dump"):
            return "`[" + ", ".join(_toml(v) for v in value) + "]`"
        return f"`{_toml(value)}`"
    return ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _sections(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(path, definition name, definition) of every table, depth first, in field order."""
    defs = schema["$defs"]
    out: list[tuple[str, str, dict[str, Any]]] = []

    def walk(path: str, def_name: str, definition: dict[str, Any]) -> None:
        out.append((path, def_name, definition))
        for field, spec in definition.get("properties", {}).items():
            child = f"{path}.{field}" if path else field
            ref = _ref_name(spec)
            if ref:
                walk(child, ref, defs[ref])
            elif spec.get("type") == "array" and _ref_name(spec.get("items", {})):
                ref = _ref_name(spec["items"])
                walk(child + "[]", ref, defs[ref])

    walk("", "Scenario", schema)
    return out


def render() -> str:
    """The generated block, markers included."""
    schema = scenario_module.scenario_schema()
    lines = [
        START,
        "<!-- Generated by docs/gen_schema_tables.py from socialcredit.scenario.scenario_schema(); "
        "do not edit by hand, run `python docs/gen_schema_tables.py`. -->",
        "",
        "A *name* is 1 to 64 characters: a letter, then letters, digits, `_`, `+` or `-`. "
        "`[a, b]` is a closed interval, `(a, b]` excludes `a`. \"finite\": inf and nan are refused. "
        "`[]` after a path marks an array of tables (`[[agencies]]` in TOML); "
        "its items may be addressed in `--set` by index or name (`record_types.petition.points`).",
    ]
    seen: dict[str, str] = {}
    for path, def_name, definition in _sections(schema):
        title = f"`{path}`" if path else "Top level"
        description = definition.get("description", "").strip().splitlines()[0] if definition.get("description") else ""
        lines += ["", f"### {title}" + (f": {description}" if description else ""), ""]
        if def_name in seen:
            lines.append(f"Same fields as `{seen[def_name]}`.")
            continue
        seen[def_name] = path or "top level"
        lines += ["| field | type | meaning | bounds | default |", "|---|---|---|---|---|"]
        required = set(definition.get("required", []))
        for field, spec in definition.get("properties", {}).items():
            full = f"{path}.{field}" if path else field
            kind, bounds = _describe(spec)
            info = _model_field(def_name, field)
            if _finite(info) and kind.startswith("number"):
                bounds.append("finite")
            if kind == "table":
                kind = f"table (`{full}`)"
            elif kind == "array of tables":
                kind = f"array of tables (`{full}[]`)"
            meaning = spec.get("description") or FALLBACK.get(f"{def_name}.{field}", "")
            row = [f"`{full}`", kind, meaning, ", ".join(bounds), _default(def_name, field, spec, field in required)]
            lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    lines += ["", END]
    return "\n".join(lines)


def _split(text: str) -> tuple[str, str, str]:
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise SystemExit(f"error: {DOC} must contain exactly one {START} ... {END} block")
    head, rest = text.split(START, 1)
    block, tail = rest.split(END, 1)
    return head, START + block + END, tail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is out of date; change nothing")
    parser.add_argument("--print", dest="print_only", action="store_true", help="print the block and exit")
    parser.add_argument("--file", type=Path, default=DOC, help=f"the document to update (default: {DOC})")
    args = parser.parse_args(argv)
    block = render()
    if args.print_only:
        print(block)
        return 0
    text = args.file.read_text(encoding="utf-8")
    head, current, tail = _split(text)
    if current == block:
        if not args.check:
            print(f"{args.file}: schema tables up to date")
        return 0
    if args.check:
        print(f"{args.file}: schema tables are out of date; run python docs/gen_schema_tables.py", file=sys.stderr)
        return 1
    args.file.write_text(head + block + tail, encoding="utf-8")
    print(f"{args.file}: schema tables regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
