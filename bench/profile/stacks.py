#!/usr/bin/env python3
"""Attributes `perf script -F ip,sym` samples (recorded with --call-graph dwarf) of `trainer bench`
to what a training step spends its time on: forward / backward / optimizer / setup, and within
them the tensor operation (matmul, elementwise, reductions, copies ...) and model function.

build:  cargo build --profile profiling -p multitag-trainer   (release with debug info)
record: perf record --call-graph dwarf target/profiling/trainer bench ...
usage:  perf script -i perf.data -F ip,sym | python3 bench/profile/stacks.py
"""
import collections
import re
import sys

OP = re.compile(r"candle_core::tensor::Tensor::(\w+)|candle_core::tensor_cat::<impl candle_core::tensor::Tensor>::(\w+)")
MODEL = re.compile(r"multitag_model::(?:layers|encoder|losses|heads|ner)::([\w:]+)")


def classify(stack):
    """stack: leaf first."""
    text = "\n".join(stack)
    kernel = bool(stack) and stack[0].startswith("[k]")
    if "trainer::bench::Bench::train" not in text and "trainer::bench::Bench::step_loss" not in text:
        return "setup (model load, tokenizer, init)", ""
    if "build_examples" in text:
        return "setup (model load, tokenizer, init)", "tokenize"
    if "trainer::optim" in text:
        phase = "optimizer"
    elif "backprop" in text and "::backward" in text:
        phase = "backward"
    elif "step_loss" in text:
        phase = "forward"
    else:
        phase = "step, other"
    op = ""
    for frame in stack:
        m = OP.search(frame)
        if m:
            op = m.group(1) or m.group(2)
            break
    if not op:
        for frame in stack:
            if "BackpropOp" in frame or "backprop" in frame:
                break
    model = ""
    for frame in stack:
        m = MODEL.search(frame)
        if m:
            model = m.group(1)
            break
    label = op or "(other)"
    if kernel:
        label += " [kernel: page faults / mm]"
    return phase, f"{label} <- {model}" if model and phase == "forward" else label


def main():
    counts = collections.Counter()
    phases = collections.Counter()
    stack, total = [], 0
    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line.strip():
            if stack:
                phase, what = classify(stack)
                counts[(phase, what)] += 1
                phases[phase] += 1
                total += 1
            stack = []
            continue
        parts = line.strip().split(None, 1)
        sym = parts[1] if len(parts) > 1 else parts[0]
        if parts[0].startswith("ffffffff"):
            sym = "[k] " + sym
        stack.append(sym)
    print(f"{total} samples")
    for phase, n in phases.most_common():
        print(f"\n{phase}: {100 * n / total:.1f}%")
        for (p, what), c in counts.most_common():
            if p == phase and 100 * c / total >= 0.4:
                print(f"    {100 * c / total:5.1f}%  {what}")


if __name__ == "__main__":
    main()
