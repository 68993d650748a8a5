#!/usr/bin/env python3
"""Exports a trained tagger for the transformers.js reference of the browser benchmark.

Reads a Hugging Face BertForTokenClassification directory (what `trainer train` writes: config.json
with id2label, model.safetensors, tokenizer.json) and writes the layout transformers.js loads with
`dtype: "q8"`:

    OUT/config.json, OUT/tokenizer.json, OUT/tokenizer_config.json, OUT/onnx/model_quantized.onnx

The ONNX graph is transformers' model as exported by torch (inputs input_ids, attention_mask,
token_type_ids; output logits; batch and sequence dynamic), quantized the way transformers.js'
own conversion script makes its q8 files: onnxruntime's dynamic quantization, int8 weights per
output channel. No graph fusion: transformers.js users load the plain export.

Runs in the reference's environment (bench/reference/setup.sh): torch, transformers, onnx,
onnxruntime.
    python bench/browser/export_model.py --model runs/demo --out .cache/bench-browser/model
"""
import argparse
import json
import os
import shutil
import sys
import tempfile


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a BertForTokenClassification directory")
    p.add_argument("--out", required=True, help="the directory to write (replaced)")
    args = p.parse_args()

    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    model = AutoModelForTokenClassification.from_pretrained(args.model, attn_implementation="eager").eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    parent = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(parent, exist_ok=True)
    # Written beside OUT and moved into place, so an interrupted export leaves no half directory.
    work = tempfile.mkdtemp(prefix=".export-", dir=parent)
    os.chmod(work, 0o755)
    try:
        os.makedirs(os.path.join(work, "onnx"))
        model.config.save_pretrained(work)
        tokenizer.save_pretrained(work)
        fp32 = os.path.join(work, "model.onnx")
        sample = tokenizer(["a title", "another product title"], padding=True, return_tensors="pt")
        names = ["input_ids", "attention_mask", "token_type_ids"]
        axes = {n: {0: "batch", 1: "sequence"} for n in names}
        axes["logits"] = {0: "batch", 1: "sequence"}
        with torch.no_grad():
            torch.onnx.export(
                model,
                (),
                fp32,
                kwargs={n: sample[n] for n in names},
                input_names=names,
                output_names=["logits"],
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
        quantize_dynamic(
            fp32,
            os.path.join(work, "onnx", "model_quantized.onnx"),
            per_channel=True,
            weight_type=QuantType.QInt8,
        )
        os.remove(fp32)
        with open(os.path.join(work, "export.json"), "w", encoding="utf-8") as f:
            json.dump(
                {
                    "from": os.path.abspath(args.model),
                    "quantization": "onnxruntime quantize_dynamic, per-channel QInt8 weights",
                    "versions": {"torch": torch.__version__, "onnx": onnx.__version__},
                },
                f,
                indent=1,
            )
        if os.path.isdir(args.out):
            shutil.rmtree(args.out)
        os.replace(work, args.out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    size = os.path.getsize(os.path.join(args.out, "onnx", "model_quantized.onnx"))
    print(f"wrote {args.out} (model_quantized.onnx {size / 1e6:.1f} MB)", file=sys.stderr)


if __name__ == "__main__":
    main()
