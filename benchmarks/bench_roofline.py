"""Roofline of the scoring step: the solver kernel's memory traffic against a plain copy.

    python benchmarks/bench_roofline.py [--citizens 590000] [--degree 20] [--repeat 20]

Measures this machine's memory bandwidth with a plain ``numpy.copyto`` of a
large array (bytes read + bytes written per second), then times one
Chebyshev/Jacobi iteration of the Friedkin-Johnsen solver (``kernels.chebyshev_step``,
one fused pass) on a block-model network of the given size and counts the bytes it
must move at least: per stored entry 8 (weight) + 4 (column index) + 8 (the
neighbour's score, a gather), per citizen 8 (row pointer) + 5 x 8 (base,
coefficient, previous iterate, the two outputs) + 8 (own score). The ratio is the fraction of the copy
bandwidth the kernel reaches.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np


def copy_bandwidth(megabytes: int, repeat: int) -> float:
    """Bytes per second of a plain copy (read + write counted)."""
    src = np.ones(megabytes * 2**20 // 8)
    dst = np.empty_like(src)
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        samples.append(time.perf_counter() - t0)
    return 2 * src.nbytes / statistics.median(samples)


def kernel_bandwidth(citizens: int, degree: float, repeat: int) -> dict[str, float]:
    from socialcredit import kernels
    from socialcredit.network import _wrap, stochastic_block_model

    rng = np.random.default_rng(0)
    src, dst = stochastic_block_model(np.array([citizens]), degree, 0.0, rng)
    ties = _wrap(src, dst, np.zeros(src.size, np.int8), np.ones(1), citizens)
    adjacency = ties.adjacency
    x, previous, base, coef = (rng.random(citizens) for _ in range(4))
    jacobi, following = np.empty(citizens), np.empty(citizens)
    kernels.chebyshev_step(adjacency, x, previous, base, coef, 1.1, jacobi, following)  # compile / warm up
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        kernels.chebyshev_step(adjacency, x, previous, base, coef, 1.1, jacobi, following)
        samples.append(time.perf_counter() - t0)
    seconds = statistics.median(samples)
    moved = adjacency.nnz * (8 + 4 + 8) + citizens * (8 + 5 * 8 + 8)
    return {"stored_entries": int(adjacency.nnz), "median_s": seconds, "bytes": moved,
            "bytes_per_s": moved / seconds, "compiled": kernels._kernels is not None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--citizens", type=int, default=590_000)
    parser.add_argument("--degree", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--copy-mb", type=int, default=512)
    args = parser.parse_args()
    copy = copy_bandwidth(args.copy_mb, args.repeat)
    kernel = kernel_bandwidth(args.citizens, args.degree, args.repeat)
    print(json.dumps({"copy_gb_per_s": copy / 1e9, "kernel": kernel, "kernel_gb_per_s": kernel["bytes_per_s"] / 1e9,
                      "fraction_of_copy_bandwidth": kernel["bytes_per_s"] / copy}, indent=2))


if __name__ == "__main__":
    main()
