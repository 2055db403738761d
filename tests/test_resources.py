"""The allocator setting for large cities: freed large arrays are reused, not re-faulted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CHURN = """
import resource, sys
import numpy as np
if sys.argv[1] == "keep":
    from socialcredit.resources import keep_freed_memory
    assert keep_freed_memory()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    a = np.empty(6_000_000)  # 48 MB, above glibc's largest automatic mmap threshold
    a[:] = 1.0
    del a
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", CHURN, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_keep_freed_memory_reuses_large_blocks():
    default, kept = _faults("default"), _faults("keep")
    # by default every 48 MB array is fresh memory the kernel must fault in and zero;
    # kept, only the first one is
    assert kept * 5 < default, (kept, default)


def test_engine_asks_for_it_only_for_large_cities(monkeypatch):
    import socialcredit.engine as engine
    from socialcredit.scenario import load_scenario

    calls = []
    monkeypatch.setattr(engine, "keep_freed_memory", lambda: calls.append(1) or True)
    engine.Engine(load_scenario("scenarios/reference.toml", ["population.size=200"]))
    assert calls == []
    monkeypatch.setattr(engine, "LARGE_ARRAY_CITIZENS", 100)
    engine.Engine(load_scenario("scenarios/reference.toml", ["population.size=200"]))
    assert calls == [1]


def test_available_memory_agrees_with_psutil():
    # the figure read from /proc/meminfo is psutil's (both move with the machine, so within 5 %)
    import psutil

    from socialcredit.resources import available_memory

    ours, theirs = available_memory(), float(psutil.virtual_memory().available)
    assert ours > 0 and abs(ours - theirs) <= 0.05 * theirs


def test_available_memory_falls_back_to_psutil(monkeypatch):
    import builtins

    import psutil

    from socialcredit import resources

    real_open = builtins.open

    def no_meminfo(path, *args, **kwargs):
        if str(path) == "/proc/meminfo":
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_meminfo)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: type("vm", (), {"available": 12345})())
    assert resources.available_memory() == 12345.0


def test_a_run_does_not_import_psutil(tmp_path):
    # its import costs tens of milliseconds of every run; a run needs it for nothing
    code = (
        "import sys, socialcredit as sc\n"
        f"sc.run('scenarios/reference.toml', out={str(tmp_path / 'run')!r}, force=True)\n"
        "print('psutil' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.split()[-1] == "False"
