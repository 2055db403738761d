"""How much memory a run will need, estimated before it starts.

The estimate counts the engine's arrays per citizen, per tie and per expected
record (the ledger), plus the peak of building the network. A run whose
estimate exceeds the memory available is refused before anything is built.
"""

from __future__ import annotations

import ctypes
import sys

import numpy as np

from .effects import multiplier_sharing
from .errors import ResourceError
from .kernels import PARALLEL_MIN_NNZ, splits, weight_dtype
from .scenario import Scenario

BYTES_PER_TIE_KEPT = 58        # ends, kind, cut day, active flag, CSR (both directions), positions, position -> tie,
                               # position -> kind
BYTES_SAVED_BY_FLOAT32_WEIGHTS = 8  # both stored weights of a tie as float32 (kernels.weight_dtype)
BYTES_PER_TIE_PACKED = 8       # cities that do not split, on the kernels: both entries as packed words
                               # (kernels.packed_entries)
BYTES_PER_TIE_BUILDING = 35    # generator keys and CSR sort buffers (int32), freed after building
BYTES_PER_RECORD = 48          # ledger columns, dated events, output columns
BYTES_PER_FAR_ENTRY = 16       # split cities: a far entry's slot, its slot's row and its product
BYTES_PER_SPLIT_CITIZEN = 16   # split cities: far entries before each row, each row's far sum
OVERHEAD = 130 * 2**20         # interpreter, numpy, scipy, pyarrow (not pandas: writing a run never imports it)
COMPILED_OVERHEAD = 120 * 2**20  # Numba and LLVM, loaded when the city is large enough for compiled kernels

#: From this many citizens on, one float64 per citizen is more than 32 MiB: above that size glibc's
#: malloc gives freed blocks back to the system, so each new temporary costs fresh, zeroed pages.
LARGE_ARRAY_CITIZENS = 4_000_000
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)


def expected_ties(scenario: Scenario) -> float:
    """Expected number of ties of the scenario's network."""
    net = scenario.network
    n = scenario.population.size
    if net.model == "sbm":
        shares = [g.share for g in scenario.population.groups]
        within = sum(s * n * net.k_in / 2 for s in shares)
        between = net.k_out / n * (n * n * (1 - sum(s * s for s in shares))) / 2
        return within + between
    if net.model == "watts_strogatz":
        return n * net.k / 2
    if net.model == "barabasi_albert":
        return n * net.m
    return n * 10.0  # edge list: unknown until read; a generous guess


def expected_records(scenario: Scenario) -> float:
    """Expected records over the run, before any rule lowers the rates."""
    n = scenario.population.size
    agencies = {a.name: a for a in scenario.agencies}
    total = 0.0
    for t in scenario.record_types:
        u = sum(g.share * g.rate_multipliers.get(t.name, 1.0) for g in scenario.population.groups)
        total += t.rate * u * n * scenario.days * min(1.0, agencies[t.agency].coverage * 3)
    total += sum(a.false_rate for a in scenario.agencies) * 2 * n * scenario.days / 365
    return total


def far_share(scenario: Scenario) -> float:
    """Expected share of a split city's stored entries that are far (``kernels.FAR_DISTANCE``).

    A small-world ring keeps its unrewired ties within reach; a block model's
    and preferential attachment's ties land anywhere, and an edge list is
    counted as if they all did.
    """
    net = scenario.network
    return net.rewire if net.model == "watts_strogatz" else 1.0


def estimate_memory(scenario: Scenario) -> dict[str, float]:
    """Estimated peak memory of a run in bytes, by component.

    >>> from socialcredit.scenario import load_scenario
    >>> est = estimate_memory(load_scenario("scenarios/reference.toml"))
    >>> est["total"] > est["citizens"] > 0
    True
    """
    from .engine import BOOKS_OFF_THREAD_MIN_CITIZENS  # the engine imports this module

    n = scenario.population.size
    c = len(scenario.record_types)
    record_of, rate_of = multiplier_sharing(scenario)
    multipliers = len(set(record_of.values()) | set(rate_of.values()))  # distinct shared arrays
    s = len(scenario.schemes)
    f = len(scenario.effects)
    lists = len(scenario.lists.named)
    per_citizen = (
        16.25 * c                 # base rates, their cumulative sums and search guides (4 bytes per 16)
        + 2 * (8 * multipliers + f)  # effect multipliers and masks, old and new standing
        + 2 * (40 + 8 * s + lists)  # points, scores, grades, lists, old and new
        # and the standing before, while the books of its step are written off the engine's thread
        + (40 + 8 * s + lists) * (n >= BOOKS_OFF_THREAD_MIN_CITIZENS)
        + 24 + 8 * s + 4 * lists  # point book
        + 4 * f + 64              # effect days, solver and metrics buffers
    )
    ties = expected_ties(scenario)
    parts = {
        "citizens": float(n * per_citizen),
        "ties": float(ties * (BYTES_PER_TIE_KEPT + BYTES_PER_TIE_BUILDING)),
        "records": float(expected_records(scenario) * BYTES_PER_RECORD),
        "overhead": float(OVERHEAD + (COMPILED_OVERHEAD if 2 * ties >= PARALLEL_MIN_NNZ else 0)),
    }
    if weight_dtype(np.array([k.weight for k in scenario.network.kinds]), int(2 * ties)) == np.float32:
        parts["ties"] -= ties * BYTES_SAVED_BY_FLOAT32_WEIGHTS
        if not splits(n):
            parts["ties"] += ties * BYTES_PER_TIE_PACKED
    if splits(n):
        parts["ties"] += 2 * ties * far_share(scenario) * BYTES_PER_FAR_ENTRY + n * BYTES_PER_SPLIT_CITIZEN
    parts["total"] = sum(parts.values())
    return parts


def available_memory() -> float:
    """Bytes of memory available to a new run (``psutil.virtual_memory().available``).

    On Linux read straight from ``MemAvailable`` in ``/proc/meminfo``, the figure psutil reports
    there, which spares every run psutil's import (35-50 ms).
    """
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024.0
    except OSError:
        pass
    import psutil

    return float(psutil.virtual_memory().available)


def check_memory(scenario: Scenario, limit_bytes: float | None = None) -> dict[str, float]:
    """Refuse a run that would not fit: raise :class:`ResourceError` with the estimate."""
    est = estimate_memory(scenario)
    available = float(limit_bytes) if limit_bytes is not None else available_memory()
    if est["total"] > available:
        gib = 2.0**30
        raise ResourceError(
            f"this run needs about {est['total'] / gib:.1f} GiB (citizens {est['citizens'] / gib:.1f}, "
            f"ties {est['ties'] / gib:.1f}, records {est['records'] / gib:.1f}) but only "
            f"{available / gib:.1f} GiB are available; lower population.size or the network's degree, "
            f"or raise the limit with --max-memory"
        )
    return est


def keep_freed_memory() -> bool:
    """Let the C allocator reuse freed large blocks instead of handing them back to the system.

    A scoring step of a city of millions allocates and frees dozens of temporary
    arrays of 30-80 MB. glibc's malloc returns blocks above 32 MiB to the system
    when they are freed, so the next one starts on fresh pages that the kernel
    must zero: at 5 million citizens that was 9 % of the CPU time of a step.
    Raising malloc's mmap and trim thresholds keeps such blocks in the heap for
    reuse. The setting holds for the rest of the process (memory freed after a
    run is reused by the process, not returned to the system until it exits), so
    the engine asks for it only from :data:`LARGE_ARRAY_CITIZENS` citizens on.

    Returns whether the allocator took the setting (glibc on Linux); elsewhere
    it does nothing and returns False. Results never depend on it.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # pragma: no cover - not glibc (e.g. musl)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, 2**30)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
