"""The command line: run, check and schema, through click's CliRunner."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from socialcredit.cli import main
from socialcredit.runfolder import read_manifest
from socialcredit.scenario import scenario_schema

SMALL = ["--set", "population.size=200", "--set", "days=14"]


def _text(result) -> str:
    out = result.output or ""
    try:
        err = result.stderr or ""
    except ValueError:  # older click without separate stderr
        err = ""
    return out if err and err in out else out + err


@pytest.fixture
def runner():
    return CliRunner()


def test_run_with_out_set_seed_quiet(runner, reference_path, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(main, ["run", str(reference_path), "--out", str(out), "--seed", "5", "--quiet", *SMALL])
    assert result.exit_code == 0, _text(result)
    manifest = read_manifest(out)
    assert manifest["seed"] == 5 and manifest["citizens"] == 200 and manifest["steps"] == 2
    assert manifest["scenario"]["population"]["size"] == 200
    text = _text(result)
    assert "black list" in text and str(out) in text


def test_run_refuses_existing_folder_then_force_replaces(runner, reference_path, tmp_path):
    out = tmp_path / "run"
    args = ["run", str(reference_path), "--out", str(out), "--quiet", *SMALL]
    assert runner.invoke(main, args).exit_code == 0
    first = read_manifest(out)["sha256"]
    again = runner.invoke(main, args)
    assert again.exit_code == 2
    assert "--force" in _text(again)
    forced = runner.invoke(main, [*args, "--force", "--seed", "9"])
    assert forced.exit_code == 0, _text(forced)
    assert read_manifest(out)["seed"] == 9 and read_manifest(out)["sha256"] != first


def test_run_default_out_is_runs_slash_name(runner, reference_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(main, ["run", str(reference_path), "--quiet", *SMALL])
    assert result.exit_code == 0, _text(result)
    assert read_manifest(tmp_path / "runs" / "reference")["scenario_name"] == "reference"


def test_run_with_progress_bar(runner, reference_path, tmp_path):
    result = runner.invoke(main, ["run", str(reference_path), "--out", str(tmp_path / "r"), *SMALL])
    assert result.exit_code == 0, _text(result)


def test_bad_set_gives_exit_2_naming_the_field(runner, reference_path, tmp_path):
    for command in (["run", "--out", str(tmp_path / "x")], ["check"]):
        result = runner.invoke(main, [command[0], str(reference_path), *command[1:], "--set", "agencies[3].coverage=1.5"])
        assert result.exit_code == 2
        text = _text(result)
        assert "agencies[3].coverage" in text and "1.5" in text
    assert not (tmp_path / "x").exists()
    result = runner.invoke(main, ["check", str(reference_path), "--set", "coupling.kapa=0.3"])
    assert result.exit_code == 2 and "coupling.kapa" in _text(result)
    result = runner.invoke(main, ["check", str(reference_path), "--set", "coupling.kappa"])
    assert result.exit_code == 2 and "PATH=VALUE" in _text(result)


def test_check(runner, reference_path):
    result = runner.invoke(main, ["check", str(reference_path), "--set", "population.size=1234"])
    assert result.exit_code == 0, _text(result)
    text = _text(result)
    assert "valid scenario 'reference'" in text and "1,234 citizens" in text and "GiB" in text


def test_check_missing_file(runner, tmp_path):
    result = runner.invoke(main, ["check", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2 and "nope.toml" in _text(result)


def test_schema_is_valid_json(runner):
    result = runner.invoke(main, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.output) == scenario_schema()
    compact = runner.invoke(main, ["schema", "--indent", "0"])
    assert json.loads(compact.output) == scenario_schema()


def test_max_memory_refuses_before_running(runner, reference_path, tmp_path):
    out = tmp_path / "big"
    result = runner.invoke(main, ["run", str(reference_path), "--out", str(out), "--max-memory", "0.001", "--quiet"])
    assert result.exit_code == 2
    assert "GiB" in _text(result) and "--max-memory" in _text(result)
    assert not out.exists()


def test_version_and_help(runner):
    assert runner.invoke(main, ["--version"]).exit_code == 0
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("run", "check", "schema"):
        assert command in result.output
