"""The allocator setting for large cities: freed large arrays are reused, not re-faulted."""

from __future__ import annotations

import subprocess
import sys

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
