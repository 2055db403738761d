"""The scenario: every rule and parameter of a run, declared and checked once.

A scenario file (TOML) becomes a frozen :class:`Scenario` only through
:func:`load_scenario` (or :func:`scenario_from_dict`). Unknown keys are
rejected, every number is range-checked, every reference to an agency,
record type, group, grade, list or scheme must exist, and each problem is
reported as a :class:`~socialcredit.errors.ScenarioError` naming the field
path, the value, the rule and the fix. The engine only ever sees the
validated object.
"""

from __future__ import annotations

import math
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ScenarioError, ScenarioErrors

Name = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_+\-]*$", max_length=64)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
NonNegative = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class Group(_Strict):
    """A population group (e.g. urban, rural, dissident)."""

    name: Name = Field(description="Group name, referenced by agencies and reports.")
    share: float = Field(gt=0.0, le=1.0, description="Expected share of the population.")
    rate_multipliers: dict[str, NonNegative] = Field(
        default_factory=dict,
        description="Multiplier u[g,c] on the act rate of record type c (1 where unset).",
    )


class Population(_Strict):
    """Who lives in the city."""

    size: int = Field(ge=2, le=2_000_000_000, description="Number of citizens N.")
    groups: list[Group] = Field(min_length=1, description="Groups; sizes ~ Multinomial(N, shares).")

    @model_validator(mode="after")
    def _shares_sum_to_one(self) -> Population:
        total = sum(g.share for g in self.groups)
        if abs(total - 1.0) > 1e-6:
            raise _rule("groups", total, "group shares must sum to 1", "rescale the shares so they add up to 1")
        _unique([g.name for g in self.groups], "groups")
        return self


class TieKind(_Strict):
    """A kind of tie (family, friend, colleague) with its weight in the coupling."""

    name: Name
    share: float = Field(gt=0.0, le=1.0, description="Share of ties of this kind.")
    weight: float = Field(default=1.0, gt=0.0, allow_inf_nan=False, description="Weight in W.")
    cut_probability: Probability | None = Field(
        default=None, description="Overrides network.cut_probability for ties of this kind."
    )


class Network(_Strict):
    """The social network and how ties are cut."""

    model: Literal["sbm", "watts_strogatz", "barabasi_albert", "edge_list"] = Field(
        description="Generator: stochastic block model by group, Watts-Strogatz, Barabasi-Albert, or a file."
    )
    k_in: NonNegative = Field(default=8.0, description="sbm: expected ties inside one's group.")
    k_out: NonNegative = Field(default=2.0, description="sbm: tie probability k_out/N between two citizens of different groups.")
    k: int = Field(default=20, ge=2, le=1000, description="watts_strogatz: ring neighbours (even).")
    rewire: Probability = Field(default=0.1, description="watts_strogatz: rewiring probability.")
    m: int = Field(default=10, ge=1, le=500, description="barabasi_albert: ties added per new citizen.")
    path: str | None = Field(default=None, description="edge_list: whitespace/comma separated file of node pairs.")
    kinds: list[TieKind] = Field(
        default_factory=lambda: [TieKind(name="friend", share=1.0)],
        min_length=1,
        description="Tie kinds, drawn per tie with these shares.",
    )
    cut_probability: Probability = Field(
        default=0.0, description="p_cut: chance a tie with exactly one blacklisted end is cut at a scoring step."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Network:
        if self.model == "watts_strogatz" and self.k % 2:
            raise _rule("k", self.k, "must be even for watts_strogatz", f"use {self.k + 1} or {self.k - 1}")
        if self.model == "edge_list" and not self.path:
            raise _rule("path", None, "required when model = 'edge_list'", "set network.path to an edge-list file")
        total = sum(k.share for k in self.kinds)
        if abs(total - 1.0) > 1e-6:
            raise _rule("kinds", total, "tie-kind shares must sum to 1", "rescale the shares so they add up to 1")
        _unique([k.name for k in self.kinds], "kinds")
        return self


class Agency(_Strict):
    """An agency (or company) delivering records to the platform."""

    name: Name
    kind: Literal["government", "court", "company"] = "government"
    coverage: Probability = Field(description="q_a: share of acts the agency sees and records.")
    delay_days: int = Field(default=0, ge=0, le=3650, description="D_a: days from record to effect.")
    false_rate: NonNegative = Field(default=0.0, description="e_a: false records per citizen-year.")
    false_rate_multipliers: dict[str, NonNegative] = Field(
        default_factory=dict, description="b_g: multiplier on the false-record rate per group (1 where unset)."
    )


class RecordType(_Strict):
    """A kind of act the platform records, with its points on the state score."""

    name: Name
    agency: Name = Field(description="The agency that records it.")
    rate: NonNegative = Field(description="r_c: base acts per citizen per day.")
    heterogeneity: float = Field(
        default=math.inf, gt=0.0, description="h_c: Gamma shape of the propensity (inf: everyone equal)."
    )
    points: float = Field(allow_inf_nan=False, description="delta_c: points on the state score.")
    validity_days: int = Field(ge=1, le=36500, description="V_c: days a record stays in effect.")
    serious: bool = Field(default=False, description="A serious record in effect blacklists by itself.")
    deterrence: dict[str, NonNegative] = Field(
        default_factory=dict, description="d_c(grade): multiplier on the act rate by grade (1 where unset)."
    )
    fear: NonNegative = Field(default=1.0, description="f_c: rate multiplier when an active neighbour is blacklisted.")
    category: Literal["offence", "debt", "criticism", "merit", "payment", "other"] = "other"


class Grade(_Strict):
    """A grade and the lowest score that reaches it."""

    name: Name
    min: float = Field(allow_inf_nan=False, description="Threshold: the highest grade whose min the score reaches.")


class Coupling(_Strict):
    """How friends' scores enter one's own."""

    mode: Literal["none", "neighbour_mean", "friedkin_johnsen"] = "friedkin_johnsen"
    kappa: float = Field(default=0.0, ge=0.0, lt=1.0, description="kappa: weight of the neighbours.")
    tolerance: float = Field(default=1e-6, gt=0.0, le=1.0, description="Solver stops when the largest change is below.")


class Scoring(_Strict):
    """The state platform's points account and grades."""

    start: float = Field(allow_inf_nan=False, description="P0: everyone's starting points.")
    min: float = Field(allow_inf_nan=False, description="P_min.")
    max: float = Field(allow_inf_nan=False, description="P_max.")
    every_days: int = Field(default=7, ge=1, le=3650, description="K: scoring cadence in days.")
    grades: list[Grade] = Field(min_length=1, description="Grades from best to worst, thresholds strictly descending.")

    @model_validator(mode="after")
    def _ordered(self) -> Scoring:
        if not self.min <= self.start <= self.max:
            raise _rule("start", self.start, f"must lie within [min, max] = [{self.min}, {self.max}]", "move start inside the range")
        _descending(self.grades, "grades")
        return self


class NamedList(_Strict):
    """A list defined by grades and/or specific records in effect."""

    name: Name
    grades: list[Name] = Field(default_factory=list)
    record_types: list[Name] = Field(default_factory=list, description="Any record of these types in effect lists the citizen.")

    @model_validator(mode="after")
    def _some_rule(self) -> NamedList:
        if not self.grades and not self.record_types:
            raise _rule("record_types", [], "a named list needs grades or record_types", "name the grades or record types that list a citizen")
        return self


class Lists(_Strict):
    """Red and black lists, and named lists over specific records."""

    red_grades: list[Name] = Field(default_factory=list, description="Grades that put a citizen on the red list.")
    black_grades: list[Name] = Field(default_factory=list, description="Grades that put a citizen on the black list.")
    serious_blacklists: bool = Field(default=True, description="A serious record in effect blacklists by itself.")
    named: list[NamedList] = Field(default_factory=list, description="Further lists, e.g. dishonest debtors.")


class Appeals(_Strict):
    """The appeal procedure against false records."""

    probability: Probability = Field(default=0.0, description="p_appeal: chance a false record is appealed.")
    days: int = Field(default=30, ge=0, le=36500, description="Overturned this many days after taking effect.")


class Condition(_Strict):
    """Who an effect applies to: a grade, a list, or a score band of a scheme."""

    grades: list[Name] = Field(default_factory=list)
    lists: list[Name] = Field(default_factory=list, description="'black', 'red' or a named list.")
    scheme: Name | None = Field(default=None, description="A side scheme whose score is tested.")
    min_score: float | None = None
    max_score: float | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Condition:
        used = sum([bool(self.grades), bool(self.lists), self.scheme is not None])
        if used != 1:
            raise _rule("", self.model_dump(exclude_defaults=True), "give exactly one of grades, lists or scheme", "e.g. when = {lists = ['black']}")
        if self.scheme is not None and self.min_score is None and self.max_score is None:
            raise _rule("min_score", None, "a scheme condition needs min_score and/or max_score", "e.g. when = {scheme = 'sesame', min_score = 700}")
        return self


class Effect(_Strict):
    """A sanction or privilege with a consequence inside the model."""

    name: Name
    kind: Literal["surveillance", "rate", "ban", "privilege"] = Field(
        description="surveillance: multiplies recording chance; rate: multiplies act rates; ban/privilege: counted as days."
    )
    when: Condition
    target: Literal["self", "family"] = Field(default="self", description="family: applies to family-tie neighbours instead.")
    multiplier: NonNegative = Field(default=1.0, description="surveillance and rate effects: the factor.")
    record_types: list[Name] = Field(default_factory=list, description="rate: the record types whose rate changes.")
    agencies: list[Name] = Field(default_factory=list, description="surveillance: agencies affected (all where empty).")

    @model_validator(mode="after")
    def _needs(self) -> Effect:
        if self.kind == "rate" and not self.record_types:
            raise _rule("record_types", [], "a rate effect needs record_types", "name the record types whose rate it multiplies")
        if self.kind in ("ban", "privilege") and self.multiplier != 1.0:
            raise _rule("multiplier", self.multiplier, f"a {self.kind} has no multiplier", "remove multiplier or use kind 'rate'")
        return self


class Scheme(_Strict):
    """A second score beside the state's (e.g. a commercial 350-950 score)."""

    name: Name
    start: float = Field(allow_inf_nan=False)
    min: float = Field(allow_inf_nan=False)
    max: float = Field(allow_inf_nan=False)
    points: dict[str, Annotated[float, Field(allow_inf_nan=False)]] = Field(
        description="Points per record type (types not named count 0).")
    coupling: Coupling = Field(default_factory=Coupling)
    bands: list[Grade] = Field(default_factory=list, description="Named bands, thresholds strictly descending.")

    @model_validator(mode="after")
    def _ordered(self) -> Scheme:
        if not self.min <= self.start <= self.max:
            raise _rule("start", self.start, f"must lie within [min, max] = [{self.min}, {self.max}]", "move start inside the range")
        _descending(self.bands, "bands")
        return self


class Scenario(_Strict):
    """A whole scenario: city, network, agencies, record types and rules."""

    name: Name
    description: str = ""
    seed: int = Field(default=0, ge=0, lt=2**63, description="Root seed of every random stream.")
    days: int = Field(ge=1, le=36500, description="T: days simulated.")
    population: Population
    network: Network
    agencies: list[Agency] = Field(min_length=1)
    record_types: list[RecordType] = Field(min_length=1)
    scoring: Scoring
    coupling: Coupling = Field(default_factory=Coupling)
    lists: Lists = Field(default_factory=Lists)
    appeals: Appeals = Field(default_factory=Appeals)
    effects: list[Effect] = Field(default_factory=list)
    schemes: list[Scheme] = Field(default_factory=list)
    system: bool = Field(
        default=True,
        description="false: records are kept and scores computed, but nothing acts on them "
                    "(no deterrence, fear, effects or tie cutting): the no-system baseline.",
    )

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        errors: list[ScenarioError] = []

        def need(path: str, value: str, allowed: list[str], what: str) -> None:
            if value not in allowed:
                errors.append(ScenarioError(path, value, f"unknown {what}", f"use one of {allowed}"))

        groups = [g.name for g in self.population.groups]
        agencies = [a.name for a in self.agencies]
        types = [t.name for t in self.record_types]
        grades = [g.name for g in self.scoring.grades]
        lists = ["black", "red"] + [n.name for n in self.lists.named]
        schemes = [s.name for s in self.schemes]
        for what, names, path in (
            ("agency", agencies, "agencies"), ("record type", types, "record_types"),
            ("list", lists, "lists.named"), ("scheme", schemes, "schemes"),
            ("effect", [e.name for e in self.effects], "effects"),
        ):
            try:
                _unique(names, path)
            except ValueError as exc:  # pragma: no cover - message re-raised below
                errors.append(ScenarioError(path, names, str(exc), f"give each {what} a distinct name"))
        for gi, g in enumerate(self.population.groups):
            for c in g.rate_multipliers:
                need(f"population.groups[{gi}].rate_multipliers.{c}", c, types, "record type")
        for ai, a in enumerate(self.agencies):
            for g in a.false_rate_multipliers:
                need(f"agencies[{ai}].false_rate_multipliers.{g}", g, groups, "group")
        for ti, t in enumerate(self.record_types):
            need(f"record_types[{ti}].agency", t.agency, agencies, "agency")
            if t.name.endswith("_cum"):
                errors.append(ScenarioError(f"record_types[{ti}].name", t.name, "names ending in '_cum' are reserved for cumulative metrics", "rename the record type"))
            for g in t.deterrence:
                need(f"record_types[{ti}].deterrence.{g}", g, grades, "grade")
        for key in ("red_grades", "black_grades"):
            for i, g in enumerate(getattr(self.lists, key)):
                need(f"lists.{key}[{i}]", g, grades, "grade")
        overlap = set(self.lists.red_grades) & set(self.lists.black_grades)
        if overlap:
            errors.append(ScenarioError("lists.red_grades", sorted(overlap), "a grade cannot be both red and black", "remove it from one of the two lists"))
        for li, nl in enumerate(self.lists.named):
            for i, g in enumerate(nl.grades):
                need(f"lists.named[{li}].grades[{i}]", g, grades, "grade")
            for i, c in enumerate(nl.record_types):
                need(f"lists.named[{li}].record_types[{i}]", c, types, "record type")
        for ei, e in enumerate(self.effects):
            for i, g in enumerate(e.when.grades):
                need(f"effects[{ei}].when.grades[{i}]", g, grades, "grade")
            for i, name in enumerate(e.when.lists):
                need(f"effects[{ei}].when.lists[{i}]", name, lists, "list")
            if e.when.scheme is not None:
                need(f"effects[{ei}].when.scheme", e.when.scheme, schemes, "scheme")
            for i, c in enumerate(e.record_types):
                need(f"effects[{ei}].record_types[{i}]", c, types, "record type")
            for i, a in enumerate(e.agencies):
                need(f"effects[{ei}].agencies[{i}]", a, agencies, "agency")
            if e.target == "family" and "family" not in [k.name for k in self.network.kinds]:
                errors.append(ScenarioError(f"effects[{ei}].target", "family", "no tie kind named 'family'", "add a 'family' kind to network.kinds"))
        for si, s in enumerate(self.schemes):
            for c in s.points:
                need(f"schemes[{si}].points.{c}", c, types, "record type")
        if self.scoring.every_days > self.days:
            errors.append(ScenarioError("scoring.every_days", self.scoring.every_days, f"longer than the run ({self.days} days)", "score at least once: lower every_days or raise days"))
        if errors:
            raise ScenarioErrors(errors)
        return self

    # -- convenience -------------------------------------------------------
    @property
    def grade_names(self) -> list[str]:
        return [g.name for g in self.scoring.grades]

    @property
    def group_names(self) -> list[str]:
        return [g.name for g in self.population.groups]

    @property
    def type_names(self) -> list[str]:
        return [t.name for t in self.record_types]

    def to_dict(self) -> dict[str, Any]:
        """The resolved scenario as plain data (JSON-safe: inf becomes the string 'inf')."""
        return _json_safe(self.model_dump(mode="python"))



# --------------------------------------------------------------------------
# Loading, overrides and error translation
# --------------------------------------------------------------------------

def load_scenario(path: str | Path, overrides: list[str] | dict[str, Any] | None = None) -> Scenario:
    """Read a TOML scenario file, apply ``--set`` overrides and validate it.

    Parameters
    ----------
    path : str or Path
        The scenario file.
    overrides : list of "PATH=VALUE" strings or dict, optional
        Field overrides by dotted path, e.g. ``["coupling.kappa=0.3"]``. Items
        of named lists may be addressed by name: ``record_types.petition.points``.

    Returns
    -------
    Scenario
        The validated, frozen scenario.

    Raises
    ------
    ScenarioError
        Naming the field path, the value, the rule broken and the fix.

    Examples
    --------
    >>> s = load_scenario("scenarios/reference.toml", ["population.size=50"])
    >>> s.population.size, s.coupling.kappa
    (50, 0.5)
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(str(path), None, f"cannot read the scenario file ({exc.strerror})", "check the path") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(str(path), None, f"not valid TOML: {exc}", "fix the TOML syntax at the line shown") from None
    net = raw.get("network")
    if isinstance(net, dict) and isinstance(net.get("path"), str) and not Path(net["path"]).is_absolute():
        net["path"] = str((path.parent / net["path"]).resolve())
    return scenario_from_dict(raw, overrides)


def scenario_from_dict(raw: dict[str, Any], overrides: list[str] | dict[str, Any] | None = None) -> Scenario:
    """Validate a scenario given as plain data (same rules as :func:`load_scenario`)."""
    raw = _deepcopy(raw)
    if overrides:
        items = overrides.items() if isinstance(overrides, dict) else (_split_override(o) for o in overrides)
        for key, value in items:
            set_path(raw, key, _deepcopy(value))
    try:
        return Scenario.model_validate(raw)
    except ScenarioError:
        raise
    except ValidationError as exc:
        raise _translate(exc, raw) from None


def _split_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ScenarioError(text, text, "an override must look like PATH=VALUE", "e.g. --set coupling.kappa=0.3")
    key, _, value = text.partition("=")
    return key.strip(), parse_value(value.strip())


def parse_value(text: str) -> Any:
    """Parse an override value as a TOML value; bare words stay strings."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def set_path(raw: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``raw[dotted] = value``; list items by ``[i]`` or by their ``name``."""
    tokens = [(m.group(1), m.group(2)) for m in _TOKEN.finditer(dotted)]
    if not tokens:
        raise ScenarioError(dotted, value, "empty override path", "e.g. --set coupling.kappa=0.3")
    node: Any = raw
    walked = ""
    for pos, (key, index) in enumerate(tokens):
        last = pos == len(tokens) - 1
        if isinstance(node, list):
            i = int(index) if index is not None else _index_by_name(node, key, walked, value)
            if not 0 <= i < len(node):
                raise ScenarioError(f"{walked}[{i}]", value, f"no item {i} (the list has {len(node)})", "use an existing index or name")
            walked += f"[{i}]"
            if last:
                node[i] = value
            else:
                node = node[i]
            continue
        if index is not None or not isinstance(node, dict):
            raise ScenarioError(walked or dotted, value, "cannot index here", "check the override path")
        walked = f"{walked}.{key}" if walked else key
        if last:
            node[key] = value
        else:
            node = node.setdefault(key, {})


def _index_by_name(items: list[Any], name: str, walked: str, value: Any) -> int:
    for i, item in enumerate(items):
        if isinstance(item, dict) and item.get("name") == name:
            return i
    names = [item.get("name") for item in items if isinstance(item, dict)]
    raise ScenarioError(f"{walked}.{name}", value, "no item with this name", f"use one of {names}")


_HINTS = {
    "extra_forbidden": "remove this key or fix its spelling",
    "missing": "add this field",
    "greater_than_equal": "use a value >= {ge}",
    "greater_than": "use a value > {gt}",
    "less_than_equal": "use a value <= {le}",
    "less_than": "use a value < {lt}",
    "literal_error": "use one of {expected}",
    "string_pattern_mismatch": "use letters, digits, '_', '+' or '-', starting with a letter",
    "too_short": "give at least {min_length} item(s)",
    "finite_number": "use a finite number",
}


def _translate(exc: ValidationError, raw: dict[str, Any]) -> ScenarioErrors:
    errors = []
    for err in exc.errors(include_url=False):
        ctx = err.get("ctx") or {}
        inner = ctx.get("error")
        loc = ".".join(str(p) for p in err["loc"]).replace(".[", "[")
        loc = re.sub(r"\.(\d+)(?=\.|$)", r"[\1]", loc)
        if isinstance(inner, ScenarioErrors):
            for sub in inner.errors:
                errors.append(_prefixed(loc, sub))
            continue
        if isinstance(inner, ScenarioError):
            errors.append(_prefixed(loc, inner))
            continue
        hint = _HINTS.get(err["type"], "see `socialcredit schema` for the allowed values")
        try:
            hint = hint.format(**ctx)
        except (KeyError, IndexError):
            pass
        value = err.get("input")
        if err["type"] == "missing":
            value = None
        errors.append(ScenarioError(loc, value, err["msg"].removeprefix("Value error, "), hint))
    return ScenarioErrors(errors)


def _prefixed(loc: str, err: ScenarioError) -> ScenarioError:
    path = ".".join(p for p in (loc, err.path) if p)
    return ScenarioError(path, err.value, err.rule, err.hint)


def _rule(field: str, value: Any, rule: str, hint: str) -> ScenarioError:
    # Raised inside validators; pydantic wraps it, _translate unwraps it.
    return ScenarioError(field, value, rule, hint)


def _unique(names: list[str], path: str) -> None:
    seen = set()
    for n in names:
        if n in seen:
            raise _rule(path, n, "duplicate name", "give each item a distinct name")
        seen.add(n)


def _descending(grades: list[Grade], path: str) -> None:
    _unique([g.name for g in grades], path)
    for i in range(1, len(grades)):
        if not grades[i].min < grades[i - 1].min:
            raise _rule(
                f"{path}[{i}].min", grades[i].min,
                f"grade thresholds must be strictly descending ({grades[i - 1].name} has {grades[i - 1].min})",
                f"give {grades[i].name} a threshold below {grades[i - 1].min}",
            )


def _deepcopy(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _deepcopy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_deepcopy(v) for v in obj]
    return obj


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return "inf" if obj > 0 else "-inf"
    return obj


def scenario_schema() -> dict[str, Any]:
    """The JSON schema of a scenario file (what ``socialcredit schema`` prints)."""
    return _json_safe(Scenario.model_json_schema())
