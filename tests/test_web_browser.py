"""The web app in a real browser: headless Chromium (Debian's, through Playwright) against a live server.

Opens the run list, a run's page (Plotly draws its charts), runs a what-if (progress, then the comparison with the
changed run's lines differing from the unchanged run's), and opens a citizen's story from the black list (timeline and
ego network). A screenshot of every page goes to the test's output folder. With the CI variable set, a missing
browser fails the test instead of skipping it (.ci/run installs Debian's chromium).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import socialcredit as sc
from socialcredit.scenario import load_scenario
from socialcredit.web import create_app
from socialcredit.web.serve import background

ROOT = Path(__file__).resolve().parents[1]
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def server(tmp_path_factory, reference_path):
    """A live server on loopback over a folder with one 1,500-citizen reference run."""
    root = tmp_path_factory.mktemp("browser-served")
    sc.run(load_scenario(reference_path, ["population.size=1500"]), out=root / "ref")
    with background(create_app(root, max_population=5_000, scenarios_dir=ROOT / "scenarios")) as base:
        yield base


def _traces(page, chart: str) -> dict[str, list]:
    """name -> y values of every trace Plotly drew in ``chart``."""
    return page.evaluate(f"""() => Object.fromEntries(document.getElementById({chart!r}).data
        .map((t) => [t.name, Array.from(t.y)]))""")


def test_browse_run_whatif_and_citizen_in_chromium(server, tmp_path, chromium):
    sync_playwright, launch_options = chromium

    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"screenshots: {shots}")
    console, errors, requests = [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(**launch_options)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(WAIT_MS)
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))

            # 1. the run list
            page.goto(server, wait_until="load")
            assert page.title() == "Runs and sweeps · socialcredit lab"
            page.screenshot(path=str(shots / "1-runs.png"), full_page=True)

            # 2. a run: Plotly draws every figure from the JSON endpoints, then the audit arrives
            page.click("#runs a[href='/runs/ref']")
            page.wait_for_selector("#chart-grades[data-ready='1'] svg.main-svg")
            for chart in ("chart-causes", "chart-groups", "chart-ties", "chart-criticism"):
                page.wait_for_selector(f"#{chart}[data-ready='1'] svg.main-svg")
            page.wait_for_selector("#audit[data-ready='1'] #disparate-impact")
            page.wait_for_selector("#chart-component[data-ready='1']")
            box = page.locator("#chart-grades svg.main-svg").first.bounding_box()
            assert box and box["width"] > 300 and box["height"] > 200
            grades = _traces(page, "chart-grades")
            assert "on the black list (all causes)" in grades and max(grades["on the black list (all causes)"]) > 0
            page.screenshot(path=str(shots / "2-run.png"), full_page=True)

            # 3. the what-if explorer: a bad value gets its message beside the field, a good one runs
            page.click("header nav a[href='/whatif']")
            page.wait_for_selector("#whatif-form")
            page.fill("input[name='population.size']", "1200")
            page.fill("input[name='coupling.kappa']", "1.5")
            page.click("#run-whatif")
            message = page.wait_for_selector("[id='error-coupling.kappa']:not([hidden])")
            assert "less than 1" in message.inner_text()
            assert "invalid" in page.get_attribute("[data-field='coupling.kappa']", "class")
            page.screenshot(path=str(shots / "3-whatif-form.png"), full_page=True)
            page.fill("input[name='coupling.kappa']", "0")
            page.fill("input[name='record_types.online_criticism.points']", "-120")
            page.click("#run-whatif")
            page.wait_for_url("**/whatif/2*")
            page.wait_for_selector("#job-state[data-status]")
            page.wait_for_selector("#results[data-ready='1']")
            assert page.get_attribute("#job-state", "data-status") == "done"
            assert page.is_hidden("#progress-box")
            for chart in ("chart-black", "chart-grades", "chart-ties", "chart-criticism"):
                page.wait_for_selector(f"#{chart}[data-ready='1'] svg.main-svg")
            black = _traces(page, "chart-black")
            unchanged, changed = black["all causes (unchanged)"], black["all causes (changed)"]
            assert len(unchanged) == len(changed) and unchanged != changed  # the chart shows the change
            ties = _traces(page, "chart-ties")
            assert ties["ties cut (changed)"] != ties["ties cut (unchanged)"]
            row = page.inner_text("#headline tr[data-measure='blacklisted']").split()
            assert row[1].replace(",", "") == str(unchanged[-1]) and row[2].replace(",", "") == str(changed[-1])
            page.screenshot(path=str(shots / "4-whatif-result.png"), full_page=True)

            # 4. the changed run's own page
            page.click("#link-variant")
            page.wait_for_selector("#chart-grades[data-ready='1'] svg.main-svg")

            # 5. a citizen's story, picked from the black list by cause
            page.goto(server + "runs/ref", wait_until="load")
            link = page.locator("#cause-record a.citizen-link").first
            citizen = link.inner_text().strip()
            link.click()
            page.wait_for_url(f"**/runs/ref/citizens/{citizen}")
            page.wait_for_selector("#chart-timeline[data-ready='1'] svg.main-svg")
            page.wait_for_selector("#chart-ego[data-ready='1'] svg.main-svg")
            assert "BLACK list" in page.inner_text("#story-now")
            timeline = _traces(page, "chart-timeline")
            assert {"own points P", "score S"} <= set(timeline) and len(timeline["score S"]) == 52
            ego = page.evaluate("() => document.getElementById('chart-ego').data.map((t) => t.name)")
            assert f"citizen {citizen}" in ego and any(n.startswith("grade ") for n in ego)
            page.screenshot(path=str(shots / "5-citizen.png"), full_page=True)
        finally:
            browser.close()

    expected = [c for c in console if c.startswith("error") and "422" not in c]  # the refused kappa of step 3
    assert not expected, console
    assert not errors, errors
    assert all(u.startswith((server, "data:", "about:")) for u in requests), [u for u in requests if not u.startswith(server)]
    for name in ("1-runs", "2-run", "3-whatif-form", "4-whatif-result", "5-citizen"):
        assert (shots / f"{name}.png").stat().st_size > 20_000, name
