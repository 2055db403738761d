"""Explain and compare on a large run folder, without loading the ledger.

    socialcredit run scenarios/reference.toml --out benchmarks/out/province --force \
        --set population.size=10000000 --set network.model=watts_strogatz --set network.k=20 \
        --set network.rewire=0.1
    python benchmarks/bench_explain.py benchmarks/out/province [OTHER_RUN] [--citizens 5]

Each call runs in a fresh process, so its peak memory (VmHWM) is its own.
``explain`` is timed for citizens drawn at random; ``compare`` compares the run
with OTHER_RUN (default: with itself, which reads exactly as much). Printed
beside them: the size of the ledger (``records.parquet``: rows, bytes on disk
and bytes in memory if it were loaded whole), so the peak can be read against it.
The bytes in memory are the rows times the width of each column as Arrow holds
it (a dictionary column's indices, a bit per flag). Parquet's own "uncompressed"
sizes are no measure of that: they count dictionary-encoded pages, three times
smaller than the columns read back.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys, time
from socialcredit.compare import compare
from socialcredit.explain import explain
kind, a, b = sys.argv[1], sys.argv[2], sys.argv[3]
t0 = time.perf_counter()  # after the imports: the call alone
if kind == "explain":
    size = len(explain(a, int(b))["records"])
else:
    size = len(compare(a, b)["transitions"])
seconds = time.perf_counter() - t0
hwm = [int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
print(json.dumps({"seconds": seconds, "peak_bytes": hwm, "size": size}))
"""


def _row_bytes(schema) -> float:
    """Bytes a row of these columns takes in Arrow's memory (fixed-width columns, as the ledger's are)."""
    import pyarrow as pa

    def width(t) -> float:
        if pa.types.is_dictionary(t):
            return width(t.index_type)
        return t.bit_width / 8

    return sum(width(field.type) for field in schema)


def measure(kind: str, a: str, b: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, kind, a, b], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("other", type=Path, nargs="?")
    parser.add_argument("--citizens", type=int, default=5)
    args = parser.parse_args()
    import numpy as np
    import pyarrow.parquet as pq

    manifest = json.loads((args.run / "manifest.json").read_text())
    meta = pq.ParquetFile(args.run / "records.parquet").metadata
    ledger = {"rows": meta.num_rows, "row_groups": meta.num_row_groups,
              "bytes_on_disk": (args.run / "records.parquet").stat().st_size,
              "bytes_in_memory": int(meta.num_rows * _row_bytes(meta.schema.to_arrow_schema()))}
    rng = np.random.default_rng(0)
    ids = rng.integers(0, manifest["citizens"], size=args.citizens).tolist()
    stories = [measure("explain", str(args.run), str(i)) for i in ids]
    compared = measure("compare", str(args.run), str(args.other or args.run))
    print(json.dumps({
        "citizens": manifest["citizens"], "ledger": ledger,
        "explain": {"runs": len(stories), "median_s": statistics.median(s["seconds"] for s in stories),
                    "max_s": max(s["seconds"] for s in stories),
                    "median_peak_gib": statistics.median(s["peak_bytes"] for s in stories) / 2**30},
        "compare": {"seconds": compared["seconds"], "peak_gib": compared["peak_bytes"] / 2**30},
    }, indent=2))


if __name__ == "__main__":
    main()
