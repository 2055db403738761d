"""Random streams: one seed, split into child streams keyed by what they are for.

Every stage draws from its own stream, keyed by (stage, day, type, ...) and
never by call order or worker. Names are keyed by a stable hash, so adding a
record type leaves every other type's stream as it was: two runs of the same
city and seed that differ only in their rules draw the same acts for the same
citizens until the rules make them diverge (common random numbers).
"""

from __future__ import annotations

import zlib

import numpy as np

#: Stage keys. Never renumber: they fix every stream of every stored run.
STAGES = {
    "population": 1,
    "propensity": 2,
    "network": 3,
    "tie_kinds": 4,
    "acts": 5,
    "boost": 6,
    "false_records": 7,
    "tie_cut": 8,
    "audit": 9,
}


def name_key(name: str) -> int:
    """Stable 32-bit key of a name (CRC-32), used inside stream keys."""
    return zlib.crc32(name.encode("utf-8"))


def stream(seed: int, stage: str, *keys: int) -> np.random.Generator:
    """The generator for one (stage, keys...) cell of the run's randomness.

    >>> a = stream(7, "acts", 3, name_key("petition")).random()
    >>> b = stream(7, "acts", 3, name_key("petition")).random()
    >>> a == b
    True
    """
    seq = np.random.SeedSequence(seed, spawn_key=(STAGES[stage], *keys))
    return np.random.Generator(np.random.PCG64(seq))


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def keyed_base(seed: int, stage: str, key: int) -> np.uint64:
    """The 64-bit base of one (seed, stage, key) cell's keyed uniforms (:func:`uniform_of_keys`)."""
    return np.random.SeedSequence(seed, spawn_key=(STAGES[stage], key)).generate_state(1, np.uint64)[0]


def uniform_of_keys(base: np.uint64, ids: np.ndarray) -> np.ndarray:
    """One uniform in [0, 1) per id, a pure function of the base and the id (SplitMix64's finaliser).

    The compiled tie-cutting scan (``kernels.cut_and_fear``) computes the same bits.
    """
    with np.errstate(over="ignore"):
        z = ids.astype(np.uint64) * _GOLDEN + base
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def keyed_uniform(seed: int, stage: str, key: int, ids: np.ndarray) -> np.ndarray:
    """One uniform in [0, 1) per id, a pure function of (seed, stage, key, id).

    Used where the set of items that need a draw depends on the rules (ties
    with one blacklisted end): each tie keeps its own number whatever else
    changed. The mixing function is SplitMix64's finaliser.
    """
    return uniform_of_keys(keyed_base(seed, stage, key), ids)
