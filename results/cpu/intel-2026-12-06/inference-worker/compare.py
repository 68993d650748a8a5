#!/usr/bin/env python3
"""The worker after the inference changes against the build before them in run.sh's reports: per round, the mean of
ours-a and ours-b (after) over base (before); the median over rounds."""
import glob, json, os, statistics
from collections import defaultdict

here = os.path.dirname(os.path.abspath(__file__))
runs = defaultdict(dict)
for f in sorted(glob.glob(os.path.join(here, "r*-p*-*.json"))):
    rnd, p, side = os.path.basename(f)[:-5].split("-", 2)
    report = json.load(open(f))
    runs[(p, rnd)][side] = {k: v["titles_per_s"] for k, v in report["tagging"].items()}
print("| workers | measure | after / before titles/s, per round | ratio per round | median |")
print("|---|---|---|---|---|")
for p in sorted({p for p, _ in runs}):
    for key in ["batch_1", "batch_1_per_worker", "batch_32"]:
        cells, ratios = [], []
        for rnd in sorted(r for q, r in runs if q == p):
            x = runs[(p, rnd)]
            if key not in x.get("base", {}):
                continue
            after = (x["ours-a"][key] + x["ours-b"][key]) / 2
            ratios.append(after / x["base"][key])
            cells.append(f"{after:.1f} / {x['base'][key]:.1f}")
        if ratios:
            print(f"| {p[1:]} | {key} | {'; '.join(cells)} | {'; '.join(f'{r:.2f}x' for r in ratios)} | "
                  f"**{statistics.median(ratios):.2f}x** [{min(ratios):.2f}–{max(ratios):.2f}] |")
