#!/usr/bin/env python3
"""Prints the comparison table of bench/run.sh from the two JSON reports (standard library only).

usage: table.py OURS.json REFERENCE.json [GPU_MEMORY.json]

Rows: one per workload and reference implementation, with medians, [min-max] over repetitions
and the ratio ours / reference (above 1: ours is faster). Then peak memory per workload (ratio
above 1: ours uses more), and each training step split into forward, backward and optimizer
(median ms; reference / ours, so above 1 again means ours is faster).
"""
import json
import sys

WORKLOADS = [
    ("train_multitask", "training, NER + triplet"),
    ("train_ner", "training, NER only"),
    ("tag_batch_1", "tagging, batch 1"),
    ("tag_batch_32", "tagging, batch 32"),
    ("train_relations", "training, SpERT spans + relations"),
    ("train_binder", "training, BINDER spans x type descriptions"),
]


def fmt(m):
    return f"{m['median']:.1f} [{m['min']:.1f}-{m['max']:.1f}]"


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    with open(sys.argv[1], encoding="utf-8") as f:
        ours = json.load(f)
    with open(sys.argv[2], encoding="utf-8") as f:
        refs = json.load(f)["reports"]
    gpu = {}
    if len(sys.argv) > 3:
        with open(sys.argv[3], encoding="utf-8") as f:
            gpu = json.load(f)
    print(
        f"device {ours['device']} | ours: {ours['implementation']}, {ours['threads']} threads | "
        f"model {ours['model']} ({ours['layers']} layers, hidden {ours['hidden_size']}, {ours['labels']} labels) | "
        f"{ours['shapes']} shapes | input {ours['input']}"
    )
    versions = {}
    for r in refs:
        versions.update(r.get("versions", {}))
    if versions:
        print("reference: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    for r in refs:
        notes = {k: r[k] for k in ("attention", "exporter", "fusion") if r.get(k)}
        if notes:
            print(f"  {r['implementation']}: " + "; ".join(f"{k} {v}" for k, v in notes.items()))
    print()
    print("| workload | shape | unit | ours median [min-max] | reference | reference median [min-max] | ours / reference |")
    print("|---|---|---|---|---|---|---|")
    for key, name in WORKLOADS:
        mine = ours["results"].get(key)
        if mine is None:
            continue
        for r in refs:
            theirs = r["results"].get(key)
            if theirs is None:
                continue
            if theirs["shape"] != mine["shape"]:
                print(f"warning: {key}: shapes differ: ours {mine['shape']!r}, {r['implementation']} {theirs['shape']!r}", file=sys.stderr)
            ratio = mine["median"] / theirs["median"] if theirs["median"] else float("nan")
            print(
                f"| {name} | {mine['shape']} | {mine['unit']} | {fmt(mine)} | {r['implementation']} | {fmt(theirs)} | {ratio:.2f}x |"
            )
    print()
    print("| peak memory while running | ours MiB | reference | reference MiB | ours / reference |")
    print("|---|---|---|---|---|")
    for key, name in WORKLOADS:
        mine = ours["results"].get(key)
        if mine is None or mine.get("peak_rss_mib") is None:
            continue
        for r in refs:
            theirs = r["results"].get(key)
            if theirs is None or theirs.get("peak_rss_mib") is None:
                continue
            print(
                f"| {name} (RSS) | {mine['peak_rss_mib']:.0f} | {r['implementation']} | {theirs['peak_rss_mib']:.0f} | "
                f"{mine['peak_rss_mib'] / theirs['peak_rss_mib']:.2f}x |"
            )
            if theirs.get("gpu_peak_mib") is not None:
                print(f"| {name} (torch max_memory_allocated) | n/a | {r['implementation']} | {theirs['gpu_peak_mib']:.0f} | |")
    print_phases(ours, refs)
    if gpu.get("ours") is not None and gpu.get("reference") is not None:
        print(
            f"| whole run, GPU memory per process (nvidia-smi) | {gpu['ours']:.0f} | reference process | {gpu['reference']:.0f} | "
            f"{gpu['ours'] / gpu['reference']:.2f}x |"
        )


def print_phases(ours, refs):
    """Training step by phase, where both sides report it (ratio above 1: ours is faster)."""
    rows = []
    for key, name in WORKLOADS:
        mine = ours["results"].get(key, {}).get("phases_ms")
        for r in refs:
            theirs = r["results"].get(key, {}).get("phases_ms")
            if mine and theirs:
                for phase in ("forward", "backward", "optimizer"):
                    ratio = theirs[phase] / mine[phase] if mine[phase] else float("nan")
                    rows.append(
                        f"| {name} | {phase} | {mine[phase]:.1f} | {r['implementation']} | {theirs[phase]:.1f} | {ratio:.2f}x |"
                    )
    if rows:
        print()
        print("| training step by phase (ms, medians) | phase | ours ms | reference | reference ms | reference / ours |")
        print("|---|---|---|---|---|---|")
        print("\n".join(rows))


if __name__ == "__main__":
    main()
