"""The report's figures: matplotlib drawings of a run, embedded as inline SVG.

Each ``_fig_*`` function draws one figure from a report context (the run's
metrics, audit and comparison) and returns its caption; :func:`figures`
renders them all to SVG text with element ids prefixed per figure, so several
figures can share one HTML page. matplotlib is imported by the caller only
when a report is written.
"""

from __future__ import annotations

import html
import io
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .report import _Context

CAUSE_LABELS = {"record": "own records", "error": "false records alone", "association": "friends' scores only"}
CAUSE_COLOURS = {"record": "#7f6a55", "error": "#e08214", "association": "#8073ac"}


def _esc(x: Any, quote: bool = False) -> str:
    return html.escape(str(x), quote=quote)


def figures(ctx: _Context) -> dict[str, tuple[str, str]]:
    """Figure id -> (inline SVG, caption HTML), for the figures this run has data for."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    style = {"svg.fonttype": "path", "svg.hashsalt": "socialcredit", "font.size": 9, "axes.titlesize": 10,
             "axes.spines.top": False, "axes.spines.right": False, "legend.frameon": False,
             "axes.grid": True, "grid.color": "#dddddd", "grid.linewidth": 0.6, "axes.axisbelow": True}
    figures: dict[str, tuple[str, str]] = {}
    with matplotlib.rc_context(style):
        def new(width: float = 7.2, height: float = 3.0) -> Figure:
            fig = Figure(figsize=(width, height), layout="constrained")
            FigureCanvasAgg(fig)
            return fig

        for make in (_fig_grades, _fig_causes, _fig_groups, _fig_ties, _fig_chilling, _fig_chilling_compare):
            made = make(ctx, new)
            if made is not None:
                fid, fig, caption = made
                figures[fid] = (_svg(fig, fid, caption), caption)
    return figures


def _svg(fig: Any, prefix: str, label: str) -> str:
    """The figure as an inline <svg>: no XML prolog or metadata, ids made unique per figure."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    text = re.sub(r'\s+xmlns(?::\w+)?="[^"]*"', "", text)  # the HTML parser knows the SVG namespace
    text = re.sub(r'\bid="', f'id="{prefix}-', text)
    text = text.replace("url(#", f"url(#{prefix}-").replace('href="#', f'href="#{prefix}-')
    plain = re.sub(r"<[^>]+>", "", label)
    return text.replace("<svg", f'<svg role="img" aria-label="{_esc(plain, quote=True)}"', 1)


def _days(ctx: _Context) -> np.ndarray:
    return ctx.metrics["day"] + 1  # a scoring step's day is 0-based: day d is the end of day d + 1


def _fig_grades(ctx: _Context, new: Any) -> tuple[str, Any, str] | None:
    cols = [g for g in ctx.grades if f"grade_{g}" in ctx.metrics]
    if not ctx.steps or not cols or not ctx.n:
        return None
    import matplotlib

    worst_first = cols[::-1]
    black = [g for g in worst_first if g in ctx.black_grades]  # worst first: darkest red first
    red = [g for g in worst_first if g not in ctx.black_grades]  # worst red-list grade first: lightest blue first
    shade = {g: matplotlib.colormaps["OrRd"](0.85 - 0.5 * i / max(len(black) - 1, 1)) for i, g in enumerate(black)}
    shade.update({g: matplotlib.colormaps["Blues"](0.3 + 0.55 * i / max(len(red) - 1, 1)) for i, g in enumerate(red)})
    colours = [shade[g] for g in worst_first]
    fig = new()
    ax = fig.add_subplot()
    ax.stackplot(_days(ctx), [100.0 * ctx.metrics[f"grade_{g}"] / ctx.n for g in worst_first], colors=colours,
                 labels=[f"{g} (black list)" if g in ctx.black_grades else g for g in worst_first],
                 linewidth=0.3, edgecolor="white")
    if "blacklisted" in ctx.metrics:
        ax.plot(_days(ctx), 100.0 * ctx.metrics["blacklisted"] / ctx.n, color="black", linewidth=1.2,
                linestyle="--", label="on the black list (all causes)")
    ax.set(xlim=(0, ctx.days), ylim=(0, 100), xlabel="day", ylabel="share of citizens (%)")
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], labels[::-1], loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    caption = ("<strong>Grades over time.</strong> Share of citizens in each grade at every scoring step, the "
               "worst grades at the bottom; the dashed line is the black list, which can also hold citizens "
               "listed for a serious record whatever their grade.")
    return "fig-grades", fig, caption


def _fig_causes(ctx: _Context, new: Any) -> tuple[str, Any, str] | None:
    cols = [c for c in CAUSE_LABELS if f"black_by_{c}" in ctx.metrics]
    if not ctx.steps or not cols:
        return None
    fig = new()
    ax = fig.add_subplot()
    ax.stackplot(_days(ctx), [ctx.metrics[f"black_by_{c}"] for c in cols], colors=[CAUSE_COLOURS[c] for c in cols],
                 labels=[f"by {CAUSE_LABELS[c]}" for c in cols], linewidth=0.3, edgecolor="white")
    ax.set(xlim=(0, ctx.days), xlabel="day", ylabel="citizens on the black list")
    ax.set_ylim(bottom=0)
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], labels[::-1], loc="upper left", fontsize=8)
    caption = ("<strong>The black list by cause.</strong> Citizens on the black list at every scoring step: "
               "by their own (true) records, by false records alone (they would not be listed without them), "
               "and only through their friends' scores (their own points keep them off the list).")
    return "fig-causes", fig, caption


def _fig_groups(ctx: _Context, new: Any) -> tuple[str, Any, str] | None:
    groups = [g for g in ctx.groups if f"blacklist_rate_{g}" in ctx.metrics]
    if not ctx.steps or not groups:
        return None
    rates = [100.0 * ctx.last(f"blacklist_rate_{g}") for g in groups]
    di = {row["group"]: row for row in (ctx.audit.get("disparate_impact") or {}).get("groups", [])}
    flagged = [bool(di.get(g, {}).get("flagged")) for g in groups]
    fig = new(7.2, 0.6 + 0.42 * len(groups))
    ax = fig.add_subplot()
    y = np.arange(len(groups))
    ax.barh(y, rates, color=["#b2182b" if f else "#8c8c8c" for f in flagged], height=0.6)
    for yi, r in zip(y, rates):
        ax.text(r, yi, f" {r:.1f} %", va="center", fontsize=8)
    ax.axvline(100.0 * ctx.last("blacklisted") / max(ctx.n, 1), color="black", linestyle="--", linewidth=1)
    ax.set_yticks(y, groups)
    ax.invert_yaxis()
    ax.set_xlim(0, max(max(rates) * 1.18, 1.0))
    ax.set_xlabel("blacklisted at the last step (%)")
    ax.grid(axis="y", visible=False)
    caption = ("<strong>Blacklist rate by group</strong> at the last scoring step; the dashed line is the whole "
               "city." + (" Red bars: groups flagged by the four-fifths rule (see the disparate-impact table)."
                          if any(flagged) else ""))
    return "fig-groups", fig, caption


def _fig_ties(ctx: _Context, new: Any) -> tuple[str, Any, str] | None:
    comp = (ctx.audit.get("isolation") or {}).get("largest_component") or []
    if not ctx.steps or "ties_cut_cum" not in ctx.metrics:
        return None
    fig = new()
    axes = fig.subplots(1, 2 if comp else 1, squeeze=False)[0]
    days = np.concatenate([[0], _days(ctx)])
    ties = max(int(ctx.manifest.get("ties", 0)), 1)
    cut = np.concatenate([[0], ctx.metrics["ties_cut_cum"]])
    axes[0].plot(days, cut, color="#542788", linewidth=1.5)
    axes[0].set(xlim=(0, ctx.days), xlabel="day", ylabel="ties cut (cumulative)",
                title=f"Ties cut, of {ties:,}")
    axes[0].set_ylim(bottom=0)
    sec = axes[0].secondary_yaxis("right", functions=(lambda v: 100.0 * v / ties, lambda p: p * ties / 100.0))
    sec.set_ylabel("% of ties")
    if comp:
        cdays = [0 if c["step"] < 0 else c["day"] + 1 for c in comp]
        axes[1].plot(cdays, [100.0 * c["share"] for c in comp], color="#1b7837", linewidth=1.5)
        low = min(c["share"] for c in comp) * 100.0
        axes[1].set(xlim=(0, ctx.days), ylim=(max(0.0, min(low - 5.0, 90.0)), 100.5), xlabel="day",
                    ylabel="share of citizens (%)", title="Largest connected component")
    caption = ("<strong>Isolation.</strong> Ties cut because one end was on the black list (left)"
               + (" and the share of citizens in the largest group still connected by ties (right)." if comp
                  else "; the audit has no component sizes.") + " Day 0 is before any cut.")
    return "fig-ties", fig, caption


def _chilling(new: Any, rows: list[dict[str, Any]], key_a: str, key_b: str, label_a: str, label_b: str) -> Any:
    types = list(dict.fromkeys(r["type"] for r in rows))
    groups = list(dict.fromkeys(r["group"] for r in rows))
    fig = new(7.2, 2.9)
    axes = fig.subplots(1, len(types), squeeze=False)[0]
    y = np.arange(len(groups))
    for ax, t in zip(axes, types):
        mine = {r["group"]: r for r in rows if r["type"] == t}
        a = np.array([mine.get(g, {}).get(key_a, 0) for g in groups], dtype=float)
        b = np.array([mine.get(g, {}).get(key_b, 0) for g in groups], dtype=float)
        ax.barh(y - 0.2, b, height=0.38, color="#bababa", label=label_b)
        ax.barh(y + 0.2, a, height=0.38, color="#b2182b", label=label_a)
        for yi, ai, bi in zip(y, a, b):
            if bi:
                change = 100.0 * (ai - bi) / bi
                ax.text(max(ai, bi), yi, f" {'−' if change < 0 else '+'}{abs(change):.0f} %", va="center", fontsize=8)
        ax.set_yticks(y, groups if ax is axes[0] else [""] * len(groups))
        ax.invert_yaxis()
        ax.set_xlim(0, max(a.max(initial=0), b.max(initial=0), 1) * 1.3)
        ax.set(title=t.replace("_", " "), xlabel="acts in the run")
        ax.grid(axis="y", visible=False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles[::-1], labels[::-1], loc="outside upper center", ncols=2, fontsize=8)
    return fig


def _fig_chilling(ctx: _Context, new: Any) -> tuple[str, Any, str] | None:
    si = ctx.audit.get("silenced")
    if si and si.get("rows"):
        fig = _chilling(new, si["rows"], "acts_run", "acts_baseline", "this run", "without the system")
        caption = ("<strong>Chilling effect.</strong> Criticism acts per group over the whole run, with the "
                   f"system (this run) and without it (baseline {_esc(si.get('baseline', ''))}, same city and "
                   "seed); the percentages are the change against the baseline.")
        return "fig-chilling", fig, caption
    if ctx.compare and ctx.compare.get("chilling"):
        return _compare_chilling(ctx, new, "fig-chilling")
    return None


def _fig_chilling_compare(ctx: _Context, new: Any) -> tuple[str, Any, str] | None:
    si = ctx.audit.get("silenced")
    cp = ctx.compare
    if si and si.get("rows") and cp and cp.get("chilling") and not _same_path(si.get("baseline"), cp.get("b")):
        return _compare_chilling(ctx, new, "fig-chilling-compare")  # the baseline took fig-chilling
    return None


def _same_path(a: Any, b: Any) -> bool:
    return a is not None and b is not None and Path(a).resolve() == Path(b).resolve()


def _compare_chilling(ctx: _Context, new: Any, fid: str) -> tuple[str, Any, str]:
    fig = _chilling(new, ctx.compare["chilling"], "acts_a", "acts_b", "this run (A)", "compared run (B)")
    caption = ("<strong>Criticism, this run against the compared run.</strong> Criticism acts per group over the "
               f"whole run in this run (A) and in {_esc(ctx.compare.get('b', 'run B'))} (B); the percentages are "
               "the change of A against B.")
    return fid, fig, caption


# --- the page ----------------------------------------------------------------------------------------------------
