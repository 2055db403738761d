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
from numpy.random.bit_generator import ISeedSequence

from . import kernels

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
    spawn_key = (STAGES[stage], *keys)
    words = kernels.seed_state(_assembled_entropy(seed, spawn_key))
    if words is None:
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=spawn_key)))
    return np.random.Generator(np.random.PCG64(_SeedState(words)))


class _SeedState(ISeedSequence):
    """A seed sequence whose state is already known: ``SeedSequence(seed, spawn_key)``'s, from the kernels."""

    __slots__ = ("words",)

    def __init__(self, words: np.ndarray):
        self.words = words

    def generate_state(self, n_words: int, dtype=np.uint64) -> np.ndarray:
        if n_words != self.words.size or np.dtype(dtype) != np.uint64:
            raise ValueError("a stream's seed state holds four 64-bit words, what a PCG64 asks for")
        return self.words


def _words32(n: int) -> list[int]:
    """A non-negative integer as little-endian 32-bit words, as ``SeedSequence`` reads it (0 is one word)."""
    n = int(n)
    if n < 0:
        raise ValueError("expected non-negative integer")
    words = [n & 0xFFFFFFFF]
    n >>= 32
    while n:
        words.append(n & 0xFFFFFFFF)
        n >>= 32
    return words


def _assembled_entropy(seed: int, spawn_key: tuple) -> np.ndarray:
    """``SeedSequence(seed, spawn_key=spawn_key)``'s entropy words: the seed's, padded to the pool of 4, then the key's."""
    words = _words32(seed)
    words += [0] * (4 - len(words))
    for key in spawn_key:
        words += _words32(key)
    return np.array(words, dtype=np.uint32)


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def keyed_base(seed: int, stage: str, key: int) -> np.uint64:
    """The 64-bit base of one (seed, stage, key) cell's keyed uniforms (:func:`uniform_of_keys`)."""
    spawn_key = (STAGES[stage], key)
    words = kernels.seed_state(_assembled_entropy(seed, spawn_key))  # the first word is generate_state(1)'s
    if words is None:
        return np.random.SeedSequence(seed, spawn_key=spawn_key).generate_state(1, np.uint64)[0]
    return words[0]


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
