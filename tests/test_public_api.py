"""The public namespace is pinned, and importing it stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import socialcredit

EXPECTED = [
    "Engine",
    "ResourceError",
    "Results",
    "RunFolderError",
    "Scenario",
    "ScenarioError",
    "SocialCreditError",
    "estimate_memory",
    "load_scenario",
    "run",
    "scenario_schema",
    "standing_at",
]

HEAVY = ("dask", "duckdb", "matplotlib", "playwright", "fastapi", "polars", "pandas", "rich", "networkx")


def test_all_is_pinned():
    assert socialcredit.__all__ == EXPECTED
    for name in EXPECTED:
        assert getattr(socialcredit, name) is not None
    public = {n for n in dir(socialcredit) if not n.startswith("_")}
    assert set(EXPECTED) <= public


def test_import_does_not_load_heavy_packages():
    code = (
        "import sys, socialcredit\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = [m for m in out.stdout.strip().split(",") if m]
    forbidden = [m for m in loaded if m in ("dask", "duckdb", "matplotlib", "playwright", "fastapi")]
    assert forbidden == [], out.stdout


def test_errors_subclass_builtins():
    assert issubclass(socialcredit.ScenarioError, ValueError)
    assert issubclass(socialcredit.ScenarioError, socialcredit.SocialCreditError)
    assert issubclass(socialcredit.ResourceError, MemoryError)
    assert issubclass(socialcredit.RunFolderError, FileExistsError)
    err = socialcredit.ScenarioError("agencies[3].coverage", 1.5, "must be <= 1", "use a value <= 1")
    assert err.path == "agencies[3].coverage" and err.value == 1.5 and err.hint == "use a value <= 1"
    assert str(err) == "agencies[3].coverage: must be <= 1 (got 1.5). Fix: use a value <= 1"


def test_version_is_a_string():
    assert isinstance(socialcredit.__version__, str) and socialcredit.__version__.count(".") >= 1


def test_run_accepts_a_path(reference_path):
    result = socialcredit.run(str(reference_path))
    assert len(result.metrics) == 52 and result.engine.population.size == 5000
    assert result.path is None
    assert set(result.summary) >= {"blacklisted", "redlisted", "black_by_record", "ties_cut_cum", "grade_A"}
    with pytest.raises(ValueError):
        result.table("citizens")
