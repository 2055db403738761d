"""Small shared fixtures: scenario paths, raw scenario dicts and one small reference run.

Helpers are handed out as fixtures (not imported) because pytest runs with
``--import-mode=importlib``, which keeps ``tests/`` off ``sys.path``.
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import pytest

from socialcredit.scenario import load_scenario, scenario_from_dict

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"
REFERENCE = SCENARIOS / "reference.toml"

# Overrides that switch off every rule that changes act rates or recording
# chances in reference.toml: no effects (surveillance), no deterrence, no fear.
NEUTRAL = {
    "effects": [],
    "record_types.online_criticism.deterrence": {},
    "record_types.online_criticism.fear": 1.0,
    "record_types.petition.deterrence": {},
    "record_types.petition.fear": 1.0,
}


def _tiny_raw() -> dict:
    """A minimal valid scenario: one group, no ties, one agency, two record types."""
    return {
        "name": "tiny",
        "seed": 3,
        "days": 28,
        "population": {"size": 20, "groups": [{"name": "g", "share": 1.0}]},
        "network": {"model": "sbm", "k_in": 0.0, "k_out": 0.0},
        "agencies": [{"name": "office", "coverage": 1.0, "delay_days": 0}],
        "record_types": [
            {"name": "bad", "agency": "office", "rate": 0.0, "points": -10, "validity_days": 30},
            {"name": "good", "agency": "office", "rate": 0.0, "points": 5, "validity_days": 30},
        ],
        "scoring": {
            "start": 1000, "min": 0, "max": 1200, "every_days": 7,
            "grades": [{"name": "A", "min": 960}, {"name": "B", "min": 850}, {"name": "D", "min": 0}],
        },
        "coupling": {"mode": "none", "kappa": 0.0},
        "lists": {"red_grades": ["A"], "black_grades": ["B", "D"]},
    }


@pytest.fixture(scope="session")
def reference_path() -> Path:
    return REFERENCE


@pytest.fixture(scope="session")
def scenarios_dir() -> Path:
    return SCENARIOS


@pytest.fixture
def reference_raw() -> dict:
    """reference.toml as plain data (a fresh copy per test)."""
    return tomllib.loads(REFERENCE.read_text(encoding="utf-8"))


@pytest.fixture
def tiny_raw() -> dict:
    """A fresh minimal raw scenario (see ``_tiny_raw``)."""
    return _tiny_raw()


@pytest.fixture
def make_tiny():
    """Factory: ``make_tiny(overrides)`` validates the tiny scenario with overrides."""

    def make(overrides: dict | None = None, raw: dict | None = None):
        return scenario_from_dict(copy.deepcopy(raw or _tiny_raw()), overrides)

    return make


@pytest.fixture
def neutral() -> dict:
    """Overrides removing every rate/recording rule from reference.toml."""
    return copy.deepcopy(NEUTRAL)


@pytest.fixture(scope="session")
def small_reference_run(tmp_path_factory):
    """reference.toml at 1,000 citizens, run once and written to a run folder."""
    import socialcredit as sc

    out = tmp_path_factory.mktemp("runs") / "reference-1000"
    scenario = load_scenario(REFERENCE, ["population.size=1000"])
    return sc.run(scenario, out=out)


# --- a real browser: Debian's Chromium driven by Playwright ----------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def chromium():
    """``(sync_playwright, launch_options)`` for Debian's Chromium.

    Skips when Playwright or Chromium is missing, but fails under CI (``.ci/run``
    installs Debian's chromium), so the browser tests can never pass by not running.
    """
    import os

    def unavailable(why: str) -> None:
        if os.environ.get("CI"):
            pytest.fail(f"{why}: CI must run the browser test (.ci/run installs Debian's chromium)")
        pytest.skip(why)

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[test]')")
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    return sync_playwright, {"executable_path": CHROMIUM, "args": CHROMIUM_ARGS}
