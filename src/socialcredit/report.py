"""One self-contained HTML report of a run folder: what happened, figures, audit tables.

The report is a single file that opens without network access: figures are
inline SVG drawn with matplotlib (imported here only when a report is
written, never by ``import socialcredit``), the style sheet is inline, and
there is no script, web font or external image. Its "What happened" section
is written from the numbers of the run and its audit
(:func:`socialcredit.audit.audit`); with a baseline run (the same city and
seed without the system) it shows the silenced criticism, and with a second
run (:func:`socialcredit.compare.compare`) the differences between the two.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from .figures import figures
from .runfolder import read_manifest

__all__ = ["write_report"]

FIGURE_IDS = ("fig-grades", "fig-causes", "fig-groups", "fig-ties", "fig-chilling")


def write_report(run: str | Path, out: str | Path | None = None, compare_with: str | Path | None = None,
                 baseline: str | Path | None = None, audit_data: dict[str, Any] | None = None,
                 compare_data: dict[str, Any] | None = None) -> Path:
    """Write one self-contained HTML report of a run folder and return its path.

    Parameters
    ----------
    run : path
        A complete run folder.
    out : path, optional
        The HTML file to write (default ``RUN/report.html``; an existing folder
        gets ``report.html`` inside it).
    compare_with : path, optional
        A second run folder to compare with (run A is ``run``, run B this one).
    baseline : path, optional
        The same city and seed without the system (``no-system.toml``, or
        ``--set system=false``), for the silenced criticism.
    audit_data, compare_data : dict, optional
        Results of :func:`socialcredit.audit.audit` and
        :func:`socialcredit.compare.compare`, if already computed; otherwise
        they are computed here.

    Returns
    -------
    Path
        The report file. It is written to a temporary file beside it first
        and renamed into place.

    Examples
    --------
    >>> import tempfile
    >>> import socialcredit as sc
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     scenario = sc.load_scenario("scenarios/reference.toml", ["population.size=50"])
    ...     path = write_report(sc.run(scenario, out=f"{tmp}/run").path)
    ...     page = path.read_text(encoding="utf-8")
    >>> path.name, "Synthetic citizens only" in page, page.count('<figure class="sc-figure"')
    ('report.html', True, 4)
    """
    run = Path(run)
    manifest = read_manifest(run)
    if audit_data is None:
        from .audit import audit

        audit_data = audit(run, baseline=baseline)
    if compare_data is None and compare_with is not None:
        from .compare import compare

        compare_data = compare(run, compare_with)
    table = pq.read_table(run / "metrics.parquet")
    metrics = {name: table[name].to_numpy(zero_copy_only=False) for name in table.column_names}
    ctx = _Context(run, manifest, metrics, audit_data or {}, compare_data)
    text = _page(ctx, figures(ctx))
    out = run / "report.html" if out is None else Path(out)
    if out.is_dir():
        out = out / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return out


class _Context:
    """Everything one report is made of, with a few derived facts."""

    def __init__(self, run: Path, manifest: dict[str, Any], metrics: dict[str, np.ndarray],
                 audit: dict[str, Any], compare: dict[str, Any] | None):
        self.run, self.manifest, self.metrics, self.audit, self.compare = run, manifest, metrics, audit, compare
        self.scenario = manifest.get("scenario", {})
        self.n = int(manifest.get("citizens", 0))
        self.days = int(manifest.get("days", 0))
        self.steps = int(metrics["step"].size) if "step" in metrics else 0
        self.grades = [g["name"] for g in self.scenario.get("scoring", {}).get("grades", [])]
        self.black_grades = set(self.scenario.get("lists", {}).get("black_grades", []))
        self.groups = [g["name"] for g in self.scenario.get("population", {}).get("groups", [])]
        self.system = bool(self.scenario.get("system", True))

    def last(self, column: str, default: float = 0) -> float:
        values = self.metrics.get(column)
        return values[-1].item() if values is not None and values.size else default


# --- formatting --------------------------------------------------------------------------------------------------

def _int(x: Any) -> str:
    return f"{int(round(float(x))):,}"


def _pct(x: float, digits: int = 1) -> str:
    return f"{100.0 * float(x):.{digits}f}\u00a0%"  # a no-break space: "17.0 %" never breaks before the sign


def _share(part: float, whole: float, digits: int = 1) -> str:
    return _pct(part / whole if whole else 0.0, digits)


def _pct_fine(x: float) -> str:
    """A percentage with one decimal, or two where one would round a share below 1 up to 100.0 %."""
    return _pct(x, 2 if 0.9995 <= x < 1.0 else 1)


def _num(x: Any, digits: int = 2) -> str:
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}".replace("-", "−")
    if isinstance(x, (float, np.floating)):
        return f"{float(x):,.{digits}f}".replace("-", "−")
    return "–" if x is None else str(x)


def _count(n: Any, noun: str, plural: str | None = None) -> str:
    """``1 citizen``, ``2 citizens``."""
    return f"{_int(n)} {noun if int(n) == 1 else plural or noun + 's'}"


def _esc(x: Any, quote: bool = False) -> str:
    return html.escape(str(x), quote=quote)


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str, Any]], caption: str = "",
           row_class: Any = None) -> str:
    """An HTML table; ``columns`` are (key, header, formatter); numbers are right-aligned."""
    if not rows:
        return '<p class="empty">No rows.</p>'
    head = "".join(f"<th scope=\"col\">{_esc(h)}</th>" for _, h, _ in columns)
    body = []
    for row in rows:
        cells = []
        for key, _, fmt in columns:
            value = row.get(key)
            numeric = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            shown = "–" if value is None else (fmt(value) if fmt else _num(value))
            cells.append(f'<td class="num">{_esc(shown)}</td>' if numeric else f"<td>{_esc(shown)}</td>")
        cls = row_class(row) if row_class else ""
        body.append((f'<tr class="{cls}">' if cls else "<tr>") + "".join(cells) + "</tr>")
    cap = f"<caption>{caption}</caption>" if caption else ""
    return (f'<div class="table-wrap"><table>{cap}<thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def _facts(pairs: list[tuple[str, str]]) -> str:
    items = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in pairs)
    return f'<dl class="facts">{items}</dl>'


# --- what happened -----------------------------------------------------------------------------------------------

def _story(ctx: _Context) -> list[str]:
    """Sentences written from the numbers (plain text, escaped by the caller)."""
    a, n, out = ctx.audit, ctx.n, []
    if not ctx.steps:
        return [f"The run has no scoring step ({ctx.days} days, scoring every "
                f"{ctx.scenario.get('scoring', {}).get('every_days', '?')} days): nothing was graded or listed."]
    black = ctx.last("blacklisted")
    verb = "are on the black list" if ctx.system else "would be on the black list (the system is off in this run)"
    out.append(f"After {ctx.days:,} days, {_int(black)} of {n:,} citizens ({_share(black, n)}) {verb}: "
               f"{_int(ctx.last('black_by_record'))} by their own records, "
               f"{_int(ctx.last('black_by_error'))} by false records alone, "
               f"{_int(ctx.last('black_by_association'))} only through their friends' scores.")
    red = ctx.last("redlisted")
    worst = [g for g in ctx.grades if g in ctx.black_grades]
    in_worst = ", ".join(f"{_int(ctx.last(f'grade_{g}'))} in {g}" for g in worst)
    out.append(f"{_int(red)} ({_share(red, n)}) {'are' if ctx.system else 'would be'} on the red list."
               + (f" In the black-list grades: {in_worst}." if worst else ""))
    ties, cut = int(ctx.manifest.get("ties", 0)), ctx.last("ties_cut_cum")
    iso = a.get("isolation") or {}
    if cut:
        line = f"{_int(cut)} ties ({_share(cut, ties)}) were cut"
        if iso.get("isolated"):
            line += f", and {_count(iso['isolated'], 'citizen')} lost every tie they had"
        line += "."
        if iso:
            line += (f" The blacklisted lost {iso.get('mean_degree_loss_blacklisted', 0):.1f} ties each on average, "
                     f"the others {iso.get('mean_degree_loss_others', 0):.1f}.")
        out.append(line)
    else:
        out.append(f"No tie of the {ties:,} was cut.")
    comp = iso.get("largest_component") or []
    if comp:
        first, end = comp[0], comp[-1]
        if end["size"] < first["size"]:
            out.append(f"The largest group of citizens still connected by ties shrank from {_int(first['size'])} "
                       f"to {_int(end['size'])} ({_pct_fine(end['share'])} of the city).")
        elif end["size"] == n:
            out.append(f"All {n:,} citizens are still connected by ties in one group.")
        else:
            out.append(f"The largest group of citizens connected by ties still holds {_int(end['size'])} "
                       f"({_pct_fine(end['share'])} of the city).")
    rec, fr = a.get("records"), a.get("false_records")
    if rec:
        out.append(f"The platform holds {_int(rec['total'])} records about {_int(rec['citizens_with_records'])} "
                   f"citizens: {rec['per_citizen_mean']:.1f} per citizen on average, median "
                   f"{_num(rec['per_citizen_median'], 0)}, at most {_int(rec['per_citizen_max'])}.")
    if fr:
        line = (f"{_int(fr['count'])} of them ({_pct(fr['share'])}) are false; {_int(fr['appealed'])} were "
                f"appealed and {_int(fr['overturned'])} overturned within the run.")
        if fr["count"]:
            line += (f" A false record that took effect counted for {fr['mean_days_in_effect']:.0f} days on "
                     f"average within the run (median {fr['median_days_in_effect']:.0f}).")
        out.append(line)
    out.extend(_story_impact(a.get("disparate_impact")))
    sp = a.get("spillover")
    if sp and sp.get("sampled") and not sp.get("max_grade_changes"):
        out.append(f"Taking away one false record in effect at the end ({sp['sampled']} sampled of "
                   f"{_int(sp['in_effect'])}) changes no other citizen's grade.")
    elif sp and sp.get("sampled"):
        flips = sum(r.get("blacklist_changes", 0) for r in sp.get("records", []))
        out.append(f"Taking away one false record in effect at the end ({sp['sampled']} sampled of "
                   f"{_int(sp['in_effect'])}) changes {sp['mean_grade_changes']:.2f} other citizens' grades on "
                   f"average, at most {_int(sp['max_grade_changes'])}; {_count(flips, 'other citizen')} would leave "
                   f"or join the black list in all.")
    out.extend(_story_silenced(a.get("silenced")))
    if ctx.compare:
        out.extend(_story_compare(ctx.compare))
    return out


def _story_impact(di: dict[str, Any] | None) -> list[str]:
    if not di or not di.get("groups"):
        return []
    ref = di.get("reference_group")
    ref_row = next((g for g in di["groups"] if g["group"] == ref), None)
    flagged = [g for g in di["groups"] if g.get("flagged")]
    if not flagged:
        return [f"No group fails the four-fifths rule: every group's share of citizens off the black list is at "
                f"least four-fifths of the {ref} group's."]
    parts = [f"{g['group']} ({_pct(g['blacklist_rate'])} blacklisted, impact ratio {g['impact_ratio']:.2f})"
             for g in flagged]
    base = f", against {_pct(ref_row['blacklist_rate'])} of the {ref} group, the least affected" if ref_row else ""
    return [f"The four-fifths rule flags {', '.join(parts)}{base}."]


def _story_silenced(si: dict[str, Any] | None) -> list[str]:
    if not si or not si.get("rows"):
        return []
    base = sum(r["acts_baseline"] for r in si["rows"])
    line = (f"Against the same city without the system, {_int(si['total_silenced'])} acts of criticism "
            f"({_share(si['total_silenced'], base)} of {_int(base)}) did not happen.")
    worst = max(si["rows"], key=lambda r: r.get("silenced_share", 0.0))
    if worst.get("silenced", 0) > 0:
        line += (f" The largest share fell silent among the {worst['group']} group's "
                 f"{worst['type'].replace('_', ' ')}: {_pct(worst['silenced_share'])}.")
    return [line]


def _story_compare(cp: dict[str, Any]) -> list[str]:
    lc = cp.get("list_changes") or {}
    out = []
    if lc:
        name = f"{cp['scenario_b']}, {cp.get('b')}" if cp.get("scenario_b") else cp.get("b")
        out.append(f"Compared with run B ({name}): {_int(lc.get('black_in_both', 0))} citizens are on the "
                   f"black list in both runs, {_int(lc.get('black_in_a_only', 0))} only in this run (A) and "
                   f"{_int(lc.get('black_in_b_only', 0))} only in B.")
    if cp.get("same_city") is False:
        out.append("The two runs are not the same city: citizen-by-citizen differences do not apply.")
    return out


# --- figures -----------------------------------------------------------------------------------------------------

CSS = """
:root { --ink: #1a1a1a; --muted: #595959; --rule: #d0d0d0; --flag: #b2182b; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 62rem; padding: 1.5rem 1.25rem 3rem; color: var(--ink); background: #fff;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", sans-serif; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; } h2 { font-size: 1.25rem; margin: 2.2rem 0 .6rem;
  border-bottom: 1px solid var(--rule); padding-bottom: .2rem; } h3 { font-size: 1.02rem; margin: 1.4rem 0 .4rem; }
.scope { display: inline-block; border: 1px solid var(--ink); padding: .1rem .5rem; font-weight: 600;
  font-size: .85rem; letter-spacing: .02em; }
.meta { color: var(--muted); margin: .4rem 0 0; font-size: .92rem; }
nav { font-size: .9rem; margin: 1rem 0; color: var(--muted); } nav a { color: inherit; margin-right: .8rem; }
#what-happened p { margin: .45rem 0; max-width: 46rem; }
figure.sc-figure { margin: 1.2rem 0; break-inside: avoid; page-break-inside: avoid; }
figure.sc-figure svg { display: block; width: 100%; height: auto; max-width: 100%; }
figcaption { font-size: .88rem; color: var(--muted); margin-top: .3rem; max-width: 46rem; }
.table-wrap { overflow-x: auto; margin: .6rem 0 1rem; }
table { border-collapse: collapse; font-size: .88rem; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-size: .85rem; color: var(--muted); padding-bottom: .3rem; caption-side: top; }
th, td { padding: .22rem .6rem; border-bottom: 1px solid var(--rule); text-align: left; vertical-align: top; }
thead th { border-bottom: 1.5px solid var(--ink); font-weight: 600; }
td.num { text-align: right; } tr.flagged td { color: var(--flag); font-weight: 600; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1.2rem; font-size: .9rem; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; }
.note { font-size: .9rem; color: var(--muted); } code { font-size: .85em; background: #f3f3f3; padding: 0 .2em; }
footer { margin-top: 3rem; font-size: .82rem; color: var(--muted); border-top: 1px solid var(--rule);
  padding-top: .6rem; }
@media print { body { max-width: none; padding: 0; font-size: 10.5pt; } nav { display: none; }
  h2 { break-after: avoid; } table, .table-wrap { break-inside: avoid; } a { color: inherit; text-decoration: none; } }
@page { margin: 14mm; }
"""


def _page(ctx: _Context, figures: dict[str, tuple[str, str]]) -> str:
    from . import __version__

    sc, m = ctx.scenario, ctx.manifest
    name = m.get("scenario_name", sc.get("name", "run"))
    version = m.get("version", "?")
    made_by = version if version == __version__ else f"{version} (report by {__version__})"
    sections = [
        ("what-happened", "What happened", "".join(f"<p>{_esc(s)}</p>" for s in _story(ctx))),
        ("grades", "Grades and lists", _fig(figures, "fig-grades") + _fig(figures, "fig-causes")
         + _fig(figures, "fig-groups") + _impact_html(ctx)),
        ("platform", "The data platform", _records_html(ctx)),
        ("network", "Ties and isolation", _fig(figures, "fig-ties") + _isolation_html(ctx) + _spillover_html(ctx)),
        ("silenced", "Silenced criticism", _fig(figures, "fig-chilling") + _silenced_html(ctx)),
    ]
    if ctx.compare:
        sections.append(("compare", "Comparison with another run",
                         _fig(figures, "fig-chilling-compare") + _compare_html(ctx)))
    sections.append(("run", "The run", _run_html(ctx, made_by)))
    nav = " ".join(f'<a href="#{sid}">{_esc(title)}</a>' for sid, title, _ in sections)
    body = "".join(f'<section id="{sid}"><h2>{_esc(title)}</h2>{content}</section>' for sid, title, content in sections)
    system = "" if ctx.system else " · system switched off (baseline run)"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="socialcredit {_esc(__version__)}">
<title>socialcredit report: {_esc(name)}</title>
<style>{CSS}</style>
</head>
<body>
<header>
<h1>socialcredit report: {_esc(name)}</h1>
<p class="scope">Synthetic citizens only</p>
<p class="meta">Scenario <strong>{_esc(name)}</strong> · seed {_esc(m.get('seed', '?'))} · {ctx.n:,} citizens ·
{ctx.days:,} days · {ctx.steps:,} scoring steps · socialcredit {_esc(made_by)}{system}</p>
{f'<p class="meta">{_esc(sc["description"])}</p>' if sc.get("description") else ""}
</header>
<nav aria-label="Contents">{nav}</nav>
<main>{body}</main>
<footer>Made by socialcredit {_esc(__version__)} from the run folder <code>{_esc(ctx.run)}</code>. Every citizen,
record and tie in it is synthetic: the model describes no real person.</footer>
</body>
</html>
"""


def _fig(figures: dict[str, tuple[str, str]], fid: str) -> str:
    if fid not in figures:
        return ""
    svg, caption = figures[fid]
    return f'<figure class="sc-figure" id="{fid}">{svg}<figcaption>{caption}</figcaption></figure>'


def _missing(what: str) -> str:
    return f'<p class="note">The audit has no {_esc(what)}.</p>'


def _impact_html(ctx: _Context) -> str:
    di = ctx.audit.get("disparate_impact")
    if not di or not di.get("groups"):
        return _missing("disparate-impact table")
    threshold = di.get("threshold", 0.8)
    rows = [dict(r, flag="below four-fifths" if r.get("flagged") else "") for r in di["groups"]]
    table = _table(rows, [("group", "group", None), ("citizens", "citizens", None),
                          ("blacklisted", "blacklisted", None), ("blacklist_rate", "blacklist rate", _pct),
                          ("favourable_rate", "not blacklisted", _pct), ("impact_ratio", "impact ratio", _num),
                          ("flag", "four-fifths rule", None)], row_class=lambda r: "flagged" if r["flag"] else "")
    return (f"<h3>Disparate impact</h3><p class=\"note\">Impact ratio: a group's share of citizens <em>not</em> on "
            f"the black list divided by that of the best-off group ({_esc(di.get('reference_group'))}); below "
            f"{threshold:g} the four-fifths rule flags it.</p>" + table)


def _records_html(ctx: _Context) -> str:
    rec, fr = ctx.audit.get("records"), ctx.audit.get("false_records")
    if not rec:
        return _missing("record counts")
    out = [_facts([("records held", _int(rec["total"])), ("true", _int(rec["true"])), ("false", _int(rec["false"])),
                   ("citizens with a record", f"{_int(rec['citizens_with_records'])} of {ctx.n:,}"),
                   ("records per citizen", f"mean {rec['per_citizen_mean']:.2f}, median "
                    f"{_num(rec['per_citizen_median'], 0)}, 99th percentile {_num(rec['per_citizen_p99'], 0)}, "
                    f"max {_int(rec['per_citizen_max'])}")])]
    out.append("<h3>Records per agency</h3>" + _table(
        rec.get("by_agency", []), [("agency", "agency", None), ("records", "records", None), ("true", "true", None),
                                   ("false", "false", None), ("false_share", "false share", _pct),
                                   ("overturned", "overturned in the run", None)]))
    if fr:
        out.append("<h3>False records</h3>" + _facts([
            ("false records", f"{_int(fr['count'])} ({_pct(fr['share'], 2)} of all records)"),
            ("appealed", _int(fr["appealed"])), ("overturned within the run", _int(fr["overturned"])),
            ("days in effect within the run", f"mean {fr['mean_days_in_effect']:.1f}, "
             f"median {fr['median_days_in_effect']:.0f}")]))
        out.append(_table(fr.get("by_group", []), [("group", "group", None),
                                                   ("false_records", "false records", None),
                                                   ("per_1000_citizens", "per 1,000 citizens", lambda v: f"{v:.1f}")],
                          caption="False records by group of the citizen they are about."))
    return "".join(out)


def _isolation_html(ctx: _Context) -> str:
    iso = ctx.audit.get("isolation")
    if not iso:
        return _missing("isolation measures")
    comp = iso.get("largest_component") or []
    pairs = [("ties lost per blacklisted citizen", f"{iso['mean_degree_loss_blacklisted']:.2f}"),
             ("ties lost per other citizen", f"{iso['mean_degree_loss_others']:.2f}"),
             ("citizens who lost every tie", f"{_int(iso['isolated'])} ({_int(iso['isolated_blacklisted'])} "
              "of them blacklisted)")]
    if comp:
        pairs.append(("largest connected component", f"{_int(comp[0]['size'])} before any cut, "
                      f"{_int(comp[-1]['size'])} ({_pct_fine(comp[-1]['share'])}) at the end"))
    return "<h3>Isolation</h3>" + _facts(pairs)


def _spillover_html(ctx: _Context) -> str:
    sp = ctx.audit.get("spillover")
    if not sp:
        return _missing("spill-over measure")
    head = ("<h3>Spill-over of false records</h3><p class=\"note\">Each sampled false record in effect at the last "
            "step is taken away again, all else equal; the table counts the <em>other</em> citizens whose grade or "
            "black-list status would change.</p>")
    if not sp.get("sampled"):
        return head + f"<p>No false record was in effect at the last step ({_int(sp.get('in_effect', 0))}).</p>"
    return head + _facts([("sampled", f"{sp['sampled']} of {_int(sp['in_effect'])} false records in effect"),
                          ("other citizens' grades changed", f"mean {sp['mean_grade_changes']:.2f}, "
                           f"max {_int(sp['max_grade_changes'])}")]) + _table(
        sp.get("records", []), [("citizen", "citizen", str), ("type", "record type", None), ("agency", "agency", None),
                                ("effective_day", "effective day", str), ("grade_changes", "grades changed", None),
                                ("blacklist_changes", "black-list changes", None)])


def _silenced_html(ctx: _Context) -> str:
    si = ctx.audit.get("silenced")
    if not si:
        seed = ctx.manifest.get("seed", "SEED")
        return ("<p>Not measured: this report was made without a baseline. Run the same city and seed without the "
                "system, e.g. <code>socialcredit run scenarios/no-system.toml --set population.size="
                f"{ctx.n} --seed {_esc(seed)} --out BASELINE</code> for Rongcheng (for another scenario, "
                "<code>--set system=false</code>), and pass that folder as <code>--baseline BASELINE</code> "
                "(Python: <code>baseline=</code>).</p>")
    notes = "".join(f'<p class="note">{_esc(n)}</p>' for n in si.get("notes", []))
    base = sum(r.get("acts_baseline", 0) for r in si.get("rows", []))
    return (f"<p>Baseline: <code>{_esc(si.get('baseline', ''))}</code>. {_int(si['total_silenced'])} acts of "
            f"criticism ({_share(si['total_silenced'], base)} of the baseline's {_int(base)}) did not happen with "
            "the system.</p>" + notes + _table(
                si.get("rows", []), [("group", "group", None), ("type", "act", None),
                                     ("acts_baseline", "without the system", None), ("acts_run", "this run", None),
                                     ("silenced", "silenced", None), ("silenced_share", "share silenced", _pct)]))


def _compare_html(ctx: _Context) -> str:
    cp = ctx.compare or {}
    out = [f"<p>Run A: {_esc(cp.get('scenario_a', ''))} <code>{_esc(cp.get('a', ctx.run))}</code> (this run). "
           f"Run B: {_esc(cp.get('scenario_b', ''))} <code>{_esc(cp.get('b', '?'))}</code>. "
           f"{'The same city (citizens and ties).' if cp.get('same_city') else 'Not the same city.'}</p>"]
    out += [f'<p class="note">{_esc(n)}</p>' for n in cp.get("notes", [])]
    out.append(_table(cp.get("aggregate", []), [("measure", "measure", None), ("a", "A", None), ("b", "B", None),
                                                ("difference", "A − B", None)]))
    if cp.get("chilling"):
        out.append("<h3>Criticism acts</h3>" + _table(cp["chilling"], [
            ("group", "group", None), ("type", "act", None), ("acts_a", "A", None), ("acts_b", "B", None),
            ("difference", "A − B", None), ("ratio", "A / B", _num)]))
    if cp.get("transitions"):
        out.append("<h3>Grade in A and in B</h3>" + _transitions(cp["transitions"], ctx.grades))
    lc = cp.get("list_changes")
    if lc:
        out.append("<h3>Black list</h3>" + _facts([("in both", _int(lc.get("black_in_both", 0))),
                                                   ("only in A", _int(lc.get("black_in_a_only", 0))),
                                                   ("only in B", _int(lc.get("black_in_b_only", 0)))]))
        out.append(_table(lc.get("examples", []), [
            ("citizen", "citizen", str), ("grade_a", "grade A", None), ("grade_b", "grade B", None),
            ("black_a", "black A", None), ("black_b", "black B", None), ("cause_a", "cause A", None),
            ("cause_b", "cause B", None)], caption="Examples of citizens whose listing differs."))
    if cp.get("sanction_days"):
        out.append("<h3>Sanction days</h3>" + _table(cp["sanction_days"], [
            ("group", "group", None), ("a", "A", None), ("b", "B", None), ("added", "added in A", None)]))
    return "".join(out)


def _transitions(rows: list[dict[str, Any]], grades: list[str]) -> str:
    """A grade_a x grade_b count matrix, grades in the scenario's order."""
    rank = {g: i for i, g in enumerate(grades)}
    ga = sorted(dict.fromkeys(r["grade_a"] for r in rows), key=lambda g: rank.get(g, len(rank)))
    gb = sorted(dict.fromkeys(r["grade_b"] for r in rows), key=lambda g: rank.get(g, len(rank)))
    cell = {(r["grade_a"], r["grade_b"]): r["citizens"] for r in rows}
    head = "<th scope=\"col\">A \\ B</th>" + "".join(f"<th scope=\"col\">{_esc(g)}</th>" for g in gb)
    body = "".join("<tr><th scope=\"row\">" + _esc(a) + "</th>" + "".join(
        f'<td class="num">{_int(cell.get((a, b), 0))}</td>' for b in gb) + "</tr>" for a in ga)
    return (f'<div class="table-wrap"><table><caption>Citizens by grade in A (rows) and in B (columns).</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")


def _run_html(ctx: _Context, made_by: str) -> str:
    m, sc = ctx.manifest, ctx.scenario
    timings = m.get("timings_s", {})
    return _facts([
        ("scenario", str(m.get("scenario_name", sc.get("name", "?")))), ("seed", str(m.get("seed", "?"))),
        ("citizens", f"{ctx.n:,}"), ("ties", f"{int(m.get('ties', 0)):,}"), ("days", f"{ctx.days:,}"),
        ("scoring steps", f"{ctx.steps:,} (every {sc.get('scoring', {}).get('every_days', '?')} days)"),
        ("system", "on" if ctx.system else "off (baseline)"),
        ("groups", ", ".join(ctx.groups)), ("grades", ", ".join(ctx.grades)),
        ("black-list grades", ", ".join(g for g in ctx.grades if g in ctx.black_grades)),
        ("agencies", str(len(sc.get("agencies", [])))), ("record types", str(len(sc.get("record_types", [])))),
        ("socialcredit version", made_by),
        ("run time", ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())),
        ("run folder", str(ctx.run)),
    ]) + "<p class=\"note\">The full scenario is in the run folder's <code>manifest.json</code>.</p>"
