"""What machine a benchmark ran on, recorded beside its figures.

The solver's pass is bound by gathering neighbours' scores from the caches, so
the same code runs at twice the speed on one processor as on another with the
same number of cores (``benchmarks/RESULTS.md``): a figure means little
without the processor's model and cache sizes, which every benchmark's JSON
carries under ``"machine"``.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path


def _cpu_model() -> str:
    """The processor's model name (Linux's ``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _caches() -> dict[str, str]:
    """Data and unified cache sizes of the first core by level (``{"L1d": "48K", "L2": "2048K", ...}``)."""
    caches: dict[str, str] = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level, kind, size = ((index / name).read_text().strip() for name in ("level", "type", "size"))
        except OSError:
            continue
        if kind == "Instruction":
            continue
        caches[f"L{level}{'d' if kind == 'Data' else ''}"] = size
    return caches


def _memory_gib() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


def describe() -> dict:
    """Python version, processor model, logical CPUs, caches (per core, L3 shared) and memory."""
    memory = _memory_gib()
    return {"python": platform.python_version(), "processor": _cpu_model(), "cpus": os.cpu_count(),
            "caches": _caches(), "memory_gib": None if memory is None else round(memory, 1)}


if __name__ == "__main__":
    import json

    print(json.dumps(describe(), indent=2))
