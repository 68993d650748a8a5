#!/usr/bin/env python3
"""The relaxed-SIMD worker against the SIMD128 one in run.sh's reports: per round, the mean of
ours-a and ours-b (relaxed) over plain (SIMD128, ?simd=plain); the median over rounds."""
import glob, json, os, statistics
from collections import defaultdict

here = os.path.dirname(os.path.abspath(__file__))
runs = defaultdict(dict)
for f in sorted(glob.glob(os.path.join(here, "r*-p*-*.json"))):
    rnd, p, side = os.path.basename(f)[:-5].split("-", 2)
    report = json.load(open(f))
    runs[(p, rnd)][side] = {k: v["titles_per_s"] for k, v in report["tagging"].items()}
print("| workers | measure | relaxed / SIMD128 titles/s, per round | ratio per round | median |")
print("|---|---|---|---|---|")
for p in sorted({p for p, _ in runs}):
    for key in ["batch_1", "batch_1_per_worker", "batch_32"]:
        cells, ratios = [], []
        for rnd in sorted(r for q, r in runs if q == p):
            x = runs[(p, rnd)]
            if key not in x.get("plain", {}):
                continue
            relaxed = (x["ours-a"][key] + x["ours-b"][key]) / 2
            ratios.append(relaxed / x["plain"][key])
            cells.append(f"{relaxed:.1f} / {x['plain'][key]:.1f}")
        if ratios:
            print(f"| {p[1:]} | {key} | {'; '.join(cells)} | {'; '.join(f'{r:.2f}x' for r in ratios)} | "
                  f"**{statistics.median(ratios):.2f}x** [{min(ratios):.2f}–{max(ratios):.2f}] |")
