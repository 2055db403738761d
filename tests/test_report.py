"""The HTML report: one self-contained file, every figure, sentences that match the numbers, and a real
browser that draws it (headless Chromium through Playwright; required when the CI variable is set)."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import socialcredit as sc
from socialcredit.report import FIGURE_IDS, write_report

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "scenarios" / "reference.toml"
# attributes and CSS that would make a browser fetch something
EXTERNAL = [
    r"<script\b[^>]*\bsrc\s*=", r"<link\b", r"<img\b", r"<iframe\b", r"<object\b", r"<embed\b", r"@import",
    r"\b(?:src|href|xlink:href|poster|data|action)\s*=\s*[\"']?\s*(?:https?:)?//",
    r"url\(\s*[\"']?\s*(?:https?:)?//",
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A small reference run (1,500 citizens) and its no-system twin (same city and seed)."""
    base = tmp_path_factory.mktemp("report-runs")
    run = sc.run(sc.load_scenario(REFERENCE, ["population.size=1500"]), out=base / "ref").path
    twin = sc.run(sc.load_scenario(REFERENCE, ["population.size=1500", "system=false"]), out=base / "twin").path
    return run, twin


@pytest.fixture(scope="module")
def full_report(runs, tmp_path_factory):
    """A report with a baseline and a comparison: every figure present."""
    run, twin = runs
    out = tmp_path_factory.mktemp("report") / "full.html"
    return write_report(run, out=out, baseline=twin, compare_with=twin)


@pytest.fixture
def fake_audit():
    """A hand-made audit of the documented shape (three groups, small numbers)."""
    groups = ["urban", "rural", "dissident"]
    return {
        "scenario": "reference", "citizens": 1500, "days": 364,
        "records": {"total": 900, "true": 880, "false": 20, "per_citizen_mean": 0.6, "per_citizen_median": 0.0,
                    "per_citizen_p99": 5.0, "per_citizen_max": 12, "citizens_with_records": 600,
                    "by_agency": [{"agency": "bank", "records": 500, "true": 485, "false": 15, "false_share": 0.03,
                                   "overturned": 4},
                                  {"agency": "court", "records": 400, "true": 395, "false": 5, "false_share": 0.0125,
                                   "overturned": 1}]},
        "false_records": {"count": 20, "share": 20 / 900, "appealed": 7, "overturned": 5,
                          "mean_days_in_effect": 80.5, "median_days_in_effect": 70.0,
                          "by_group": [{"group": g, "false_records": c, "per_1000_citizens": c / 0.5}
                                       for g, c in zip(groups, (8, 10, 2))]},
        "causes": {"blacklisted": 10, "record": 8, "error": 1, "association": 1},
        "causes_over_time": [{"step": 0, "day": 6, "record": 8, "error": 1, "association": 1}],
        "disparate_impact": {"reference_group": "rural", "groups": [
            {"group": "urban", "citizens": 855, "blacklisted": 100, "blacklist_rate": 0.117, "favourable_rate": 0.883,
             "impact_ratio": 0.98, "flagged": False},
            {"group": "rural", "citizens": 570, "blacklisted": 57, "blacklist_rate": 0.1, "favourable_rate": 0.9,
             "impact_ratio": 1.0, "flagged": False},
            {"group": "dissident", "citizens": 75, "blacklisted": 45, "blacklist_rate": 0.6, "favourable_rate": 0.4,
             "impact_ratio": 0.444, "flagged": True}]},
        "spillover": {"step": 51, "sampled": 2, "in_effect": 9, "mean_grade_changes": 1.5, "max_grade_changes": 2,
                      "records": [{"citizen": 4, "type": "loan_default", "agency": "bank", "effective_day": 40,
                                   "grade_changes": 2, "blacklist_changes": 1},
                                  {"citizen": 9, "type": "loan_default", "agency": "bank", "effective_day": 90,
                                   "grade_changes": 1, "blacklist_changes": 0}]},
        "isolation": {"mean_degree_loss_blacklisted": 4.2, "mean_degree_loss_others": 0.7, "isolated": 3,
                      "isolated_blacklisted": 2,
                      "largest_component": [{"step": -1, "day": -1, "size": 1500, "share": 1.0},
                                            {"step": 51, "day": 363, "size": 1490, "share": 1490 / 1500}]},
        "silenced": None,
    }


@pytest.fixture
def fake_compare(runs):
    run, twin = runs
    return {
        "a": str(run), "b": str(twin), "same_city": True, "notes": ["hand-made"],
        "aggregate": [{"measure": "blacklisted", "a": 232, "b": 348, "difference": -116}],
        "chilling": [{"group": g, "type": t, "acts_a": a, "acts_b": b, "difference": a - b, "ratio": a / b}
                     for g, t, a, b in [("urban", "online_criticism", 90, 120),
                                        ("dissident", "online_criticism", 30, 100),
                                        ("urban", "petition", 9, 10), ("dissident", "petition", 3, 10)]],
        "transitions": [{"grade_a": "A", "grade_b": "A", "citizens": 1100},
                        {"grade_a": "A", "grade_b": "B", "citizens": 50}],
        "list_changes": {"black_in_a_only": 1, "black_in_b_only": 117, "black_in_both": 231,
                         "examples": [{"citizen": 7, "grade_a": "A", "grade_b": "B", "black_a": False, "black_b": True,
                                       "cause_a": "none", "cause_b": "record"}]},
        "sanction_days": [{"group": "urban", "a": 10, "b": 0, "added": 10}],
    }


def section_text(page: str, sid: str) -> str:
    match = re.search(rf'<section id="{sid}">(.*?)</section>', page, re.S)
    assert match, f"no section {sid}"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", match.group(1))).split())


def figure_ids(page: str) -> list[str]:
    return re.findall(r'<figure class="sc-figure" id="([^"]+)">', page)


# --- (a) the file ------------------------------------------------------------------------------------------------

def test_default_report_is_one_self_contained_file(runs):
    run, _ = runs
    before = sorted(p.name for p in run.iterdir())
    path = write_report(run)
    assert path == run / "report.html"
    assert sorted(p.name for p in run.iterdir()) == sorted(before + ["report.html"] if "report.html" not in before
                                                           else before)
    page = path.read_text(encoding="utf-8")
    for pattern in EXTERNAL:
        assert not re.search(pattern, page, re.I), pattern
    assert "<script" not in page.lower()
    assert "Synthetic citizens only" in page
    manifest = json.loads((run / "manifest.json").read_text())
    assert f"seed {manifest['seed']}" in page and f"socialcredit {manifest['version']}" in page
    assert "<title>socialcredit report: reference</title>" in page
    # without a baseline or a comparison, no chilling figure, and the way to get one
    assert figure_ids(page) == [f for f in FIGURE_IDS if f != "fig-chilling"]
    assert "--baseline" in section_text(page, "silenced")


def test_full_report_has_every_figure_and_table(full_report):
    page = full_report.read_text(encoding="utf-8")
    for pattern in EXTERNAL:
        assert not re.search(pattern, page, re.I), pattern
    ids = figure_ids(page)
    assert set(FIGURE_IDS) <= set(ids) and len(ids) == len(set(ids))
    for fid in ids:
        block = re.search(rf'<figure class="sc-figure" id="{fid}">(.*?)</figure>', page, re.S).group(1)
        assert block.count("<svg") == 1 and "<figcaption>" in block
    svg_ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(svg_ids) == len(set(svg_ids)), "element ids repeat across figures"
    for heading in ("Records per agency", "False records", "Disparate impact", "Spill-over of false records",
                    "Isolation", "Criticism acts", "Sanction days"):
        assert f"<h3>{heading}</h3>" in page
    assert "four-fifths rule" in page
    assert section_text(page, "silenced").count("online_criticism") >= 3  # a row per group


def test_what_happened_matches_metrics(full_report, runs):
    run, _ = runs
    page = full_report.read_text(encoding="utf-8")
    text = section_text(page, "what-happened")
    manifest = json.loads((run / "manifest.json").read_text())
    last = pq.read_table(run / "metrics.parquet").to_pylist()[-1]
    n, black = manifest["citizens"], last["blacklisted"]
    assert (f"After {manifest['days']} days, {black:,} of {n:,} citizens ({100 * black / n:.1f} %) are on the black "
            f"list: {last['black_by_record']:,} by their own records, {last['black_by_error']:,} by false records "
            f"alone, {last['black_by_association']:,} only through their friends' scores.") in text
    assert last["black_by_record"] + last["black_by_error"] + last["black_by_association"] == black
    cut = last["ties_cut_cum"]
    assert cut > 0
    assert f"{cut:,} ties ({100 * cut / manifest['ties']:.1f} %) were cut" in text
    assert f"{last['redlisted']:,} ({100 * last['redlisted'] / n:.1f} %) are on the red list." in text
    records = pq.read_table(run / "records.parquet", columns=["is_false"]).column("is_false").to_pylist()
    assert f"The platform holds {len(records):,} records" in text
    assert f"{sum(records):,} of them" in text
    assert "The four-fifths rule flags dissident" in text  # a twentyfold critic is blacklisted far more often
    assert "acts of criticism" in text and "Compared with run B" in text


def test_report_from_hand_made_audit_and_comparison(runs, fake_audit, fake_compare, tmp_path):
    run, _ = runs
    page = write_report(run, out=tmp_path, audit_data=fake_audit).read_text(encoding="utf-8")
    assert "fig-chilling" not in figure_ids(page)
    silenced = section_text(page, "silenced")
    assert "Not measured" in silenced and "--baseline" in silenced and "system=false" in silenced
    text = section_text(page, "what-happened")
    assert "900 records about 600 citizens" in text and "20 of them (2.2 %) are false" in text
    assert "The four-fifths rule flags dissident (60.0 % blacklisted, impact ratio 0.44)" in text
    assert "3 citizens lost every tie" in text and "from 1,500 to 1,490 (99.3 % of the city)" in text
    assert '<tr class="flagged"><td>dissident</td>' in page

    page = write_report(run, out=tmp_path / "cmp.html", audit_data=fake_audit,
                        compare_data=fake_compare).read_text(encoding="utf-8")
    assert "fig-chilling" in figure_ids(page)  # from the comparison when there is no baseline
    assert "231 citizens are on the black list in both runs, 1 only in this run (A) and 117 only in B" in \
        section_text(page, "what-happened")
    assert "hand-made" in section_text(page, "compare")


def test_report_without_audit_still_draws_the_metrics(runs, tmp_path):
    run, _ = runs
    page = write_report(run, out=tmp_path / "r.html", audit_data={"silenced": None}).read_text(encoding="utf-8")
    assert figure_ids(page) == ["fig-grades", "fig-causes", "fig-groups", "fig-ties"]
    assert "The audit has no record counts" in page
    assert "After 364 days" in section_text(page, "what-happened")


def test_report_is_reproducible(runs, tmp_path):
    run, _ = runs
    a = write_report(run, out=tmp_path / "a.html").read_bytes()
    b = write_report(run, out=tmp_path / "b.html").read_bytes()
    assert a == b


def test_import_socialcredit_does_not_load_matplotlib():
    code = ("import sys, socialcredit, socialcredit.report; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# --- (b) a real browser ------------------------------------------------------------------------------------------

def test_report_renders_in_headless_chromium(full_report, tmp_path, chromium):
    sync_playwright, launch_options = chromium

    console, errors, requests = [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(**launch_options)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(full_report.as_uri(), wait_until="load")
            figures = page.query_selector_all("figure.sc-figure")
            assert {f.get_attribute("id") for f in figures} >= set(FIGURE_IDS)
            for figure in figures:
                svg = figure.query_selector("svg")
                assert svg is not None, figure.get_attribute("id")
                box = svg.bounding_box()
                assert box and box["width"] > 100 and box["height"] > 50, (figure.get_attribute("id"), box)
                assert figure.query_selector("figcaption").inner_text().strip()
            assert page.title() == "socialcredit report: reference"
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert not [c for c in console if c.startswith("error")], console
    assert not errors, errors
    assert all(u.startswith(("file:", "data:", "about:")) for u in requests), requests
    assert shot.stat().st_size > 50_000
