"""The documentation stays true to the code: schema tables and README commands."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_model_md_schema_tables_are_current():
    out = subprocess.run([sys.executable, str(ROOT / "docs" / "gen_schema_tables.py"), "--check"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"<!-- (main|tests) -->\n```bash\n(.+?)\n```", readme)
    assert [name for name, _ in blocks] == ["main", "tests"]
    main_cmd, test_cmd = (cmd for _, cmd in blocks)
    assert "socialcredit run scenarios/rongcheng.toml" in main_cmd
    assert "pytest" in test_cmd
    ci = (ROOT / ".ci" / "run").read_text()
    assert "<!-- tests -->" in ci


def test_every_documented_scenario_file_exists():
    for name in ("reference", "rongcheng", "seed-articles", "no-system"):
        assert (ROOT / "scenarios" / f"{name}.toml").is_file()
