#!/usr/bin/env python3
"""Two builds of ours in one run of reports (rR-pN-SIDE.json, as bench/browser.sh names them):
per round, the mean of ours-a and ours-b over the other build's side; the median over rounds.

usage: compare_builds.py DIR SIDE [LABEL]   (e.g. `base`, the build before a change)"""
import glob, json, os, statistics, sys
from collections import defaultdict

here, other = sys.argv[1], sys.argv[2]
label = sys.argv[3] if len(sys.argv) > 3 else f"ours / {other}"
runs = defaultdict(dict)
for f in sorted(glob.glob(os.path.join(here, "r*-p*-*.json"))):
    rnd, p, side = os.path.basename(f)[:-5].split("-", 2)
    report = json.load(open(f))
    runs[(p, rnd)][side] = {k: v["titles_per_s"] for k, v in report["tagging"].items()}
print(f"| workers | measure | {label} titles/s, per round | ratio per round | median |")
print("|---|---|---|---|---|")
for p in sorted({p for p, _ in runs}):
    for key in ["batch_1", "batch_1_per_worker", "batch_32"]:
        cells, ratios = [], []
        for rnd in sorted(r for q, r in runs if q == p):
            x = runs[(p, rnd)]
            if key not in x.get(other, {}):
                continue
            ours = (x["ours-a"][key] + x["ours-b"][key]) / 2
            ratios.append(ours / x[other][key])
            cells.append(f"{ours:.1f} / {x[other][key]:.1f}")
        if ratios:
            print(f"| {p[1:]} | {key} | {'; '.join(cells)} | {'; '.join(f'{r:.2f}x' for r in ratios)} | "
                  f"**{statistics.median(ratios):.2f}x** [{min(ratios):.2f}–{max(ratios):.2f}] |")
