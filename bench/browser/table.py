#!/usr/bin/env python3
"""The table of bench/browser.sh: reads its reports (rR-pN-{ours-a,reference,ours-b}.json in DIR)
and prints markdown, one row per measure and parallelism N (ours: N workers; the reference: N wasm
threads). Each round's ratio compares that round's reference with the mean of ours before and after
it; the last column is the median over rounds, with the range when there are several.

    python3 bench/browser/table.py runs/bench/browser > table.md
"""
import json
import os
import re
import statistics
import sys

NAME = re.compile(r"^r(\d+)-p(\d+)-(ours-a|reference|ours-b)\.json$")


def read(folder):
    runs = {}
    for name in sorted(os.listdir(folder)):
        m = NAME.match(name)
        if not m:
            continue
        path = os.path.join(folder, name)
        try:
            with open(path, encoding="utf-8") as f:
                report = json.load(f)
        except (OSError, ValueError) as e:
            sys.exit(f"{path}: {e}")
        runs.setdefault(int(m[2]), {}).setdefault(int(m[1]), {})[m[3]] = report
    return runs


def measures(report):
    """(label, value, higher is better) of one report."""
    out = [
        ("cold load, page to model ready (s)", (report.get("cold_load_ms") or 0) / 1000, False),
        ("warm load, reload from the cache (s)", (report.get("warm_load_ms") or 0) / 1000, False),
        ("first-visit transfer (MB)", report["first_visit_transfer_bytes"]["total"] / 1e6, False),
    ]
    for key, run in report["tagging"].items():
        batch = run["batch_size"]
        if key == "batch_1":
            label = "titles/s, one at a time (one title in flight)"
        elif key == "batch_1_per_worker":
            label = "titles/s, one title in flight per worker"
        else:
            label = f"titles/s, batches of {batch}"
        out.append((label, run["titles_per_s"], True))
    return out


def fmt(x):
    return f"{x:,.2f}" if x < 10 else f"{x:,.1f}"


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else "runs/bench/browser"
    runs = read(folder)
    if not runs:
        sys.exit(f"{folder}: no reports (rR-pN-SIDE.json)")
    any_report = next(iter(next(iter(runs.values())).values())).get("ours-a") or {}
    ref = next(
        (r["reference"] for p in runs.values() for r in p.values() if "reference" in r), {}
    )
    print(f"Browser: {any_report.get('browser', '?')}; reference: {ref.get('implementation', '?')}; "
          f"{any_report.get('titles', '?')} catalog titles; ours: model {any_report.get('model_manifest', '?')}, "
          f"worker build {(any_report.get('backend') or {}).get('simd', '?')}.\n")
    print("| parallel | measure | ours, before / after, per round | reference, per round | ours / reference, per round | median |")
    print("|---|---|---|---|---|---|")
    for n in sorted(runs):
        rounds = runs[n]
        higher = {}  # label -> whether higher is better, in first-seen order
        for r in rounds.values():
            for side in r.values():
                for label, _, better in measures(side):
                    higher.setdefault(label, better)
        for label, better in higher.items():
            ours_cells, ref_cells, ratio_cells, ratios = [], [], [], []
            for k in sorted(rounds):
                r = rounds[k]
                value = {s: dict((l, v) for l, v, _ in measures(r[s])).get(label) for s in r}
                ours = [value.get(s) for s in ("ours-a", "ours-b") if value.get(s) is not None]
                ours_cells.append(" / ".join(fmt(v) for v in ours) or "-")
                theirs = value.get("reference")
                ref_cells.append(fmt(theirs) if theirs is not None else "-")
                if ours and theirs:
                    mean = sum(ours) / len(ours)
                    # Ratios read "ours is N times better": speeds ours / theirs, times and bytes
                    # theirs / ours.
                    ratio = mean / theirs if better else theirs / mean
                    ratios.append(ratio)
                    ratio_cells.append(f"{ratio:.2f}x")
                else:
                    ratio_cells.append("-")
            if ratios:
                med = f"**{statistics.median(ratios):.2f}x**"
                if len(ratios) > 1:
                    med += f" [{min(ratios):.2f}–{max(ratios):.2f}]"
            else:
                med = "-"
            parallel = f"{n} worker{'s' if n > 1 else ''} / {n} thread{'s' if n > 1 else ''}"
            print(f"| {parallel} | {label} | {'; '.join(ours_cells)} | {'; '.join(ref_cells)} | {'; '.join(ratio_cells)} | {med} |")
    print("\nRatios read as \"ours is N times better\": speeds ours / reference, load times and bytes "
          "reference / ours; ours is the mean of the runs before and after the reference.")


if __name__ == "__main__":
    main()
