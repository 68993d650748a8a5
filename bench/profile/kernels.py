#!/usr/bin/env python3
"""Sums Nsight Compute's per-launch kernel durations (scripts/gpu/profile.sh's ncu CSV) by kernel
and by kernel and grid size: where the GPU time of the profiled steps goes.

usage: kernels.py NCU.csv[.xz] [STEPS] [TOP]   (STEPS: how many steps the CSV covers, default 3)
"""
import collections
import csv
import io
import lzma
import sys


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    path = sys.argv[1]
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 25
    opener = lzma.open if path.endswith(".xz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        # ncu interleaves the program's own output with its CSV rows, which are all quoted.
        rows = list(csv.DictReader(io.StringIO("".join(l for l in f if l.startswith('"')))))
    scale = {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3}
    by_kernel = collections.defaultdict(float)
    calls = collections.Counter()
    by_grid = collections.defaultdict(float)
    for r in rows:
        if r["Metric Name"] != "gpu__time_duration.sum":
            continue
        us = float(r["Metric Value"].replace(",", "")) * scale[r["Metric Unit"]]
        name = r["Kernel Name"][:60]
        by_kernel[name] += us
        calls[name] += 1
        by_grid[(name, r["Grid Size"])] += us
    total = sum(by_kernel.values())
    print(f"{len(rows)} launches, {total / 1e3:.1f} ms of kernel time, {total / 1e3 / steps:.1f} ms per step")
    print(f"{'share':>6} {'us/step':>9} {'calls/step':>10}  kernel")
    for name, us in sorted(by_kernel.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{100 * us / total:5.1f}% {us / steps:9.0f} {calls[name] / steps:10.0f}  {name}")
    print("\nlargest by kernel and grid:")
    for (name, grid), us in sorted(by_grid.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{100 * us / total:5.1f}% {us / steps:9.0f}  {name} grid {grid}")


if __name__ == "__main__":
    main()
