#!/usr/bin/env python3
"""The PyTorch / onnxruntime reference for `trainer bench` (multitag, speed issue).

Runs the same workloads on the same shapes and inputs as `trainer bench` and writes the same JSON
schema (`multitag-bench/1`), one report per implementation:

- pytorch-eager: transformers' BertModel loaded from the same model directory (no pooler) plus a
  dropout + linear head with the same number of labels (9); training = token cross-entropy over
  first sub-words (+ lambda * the triplet loss -ln sigmoid(cos(t, d+) - cos(t, d-)) on mean-pooled
  embeddings; row i's negative is row i+1's description, in-batch, as in `trainer`), global-norm clipping at 1, AdamW
  (lr 5e-5, weight decay 0.01); tagging = tokenize, encoder + head, softmax/argmax, first sub-word
  per word, BIO spans to entities with character offsets, under inference_mode.
- pytorch-tuned (CUDA only): the same with TF32 allowed, bf16 autocast and fused AdamW.
- onnxruntime-fp32 / onnxruntime-int8 (CPU only, tagging only): the same encoder + head (with the
  softmax/argmax and a mean-pooled embedding output in the graph) exported to ONNX, fused with
  onnxruntime's BERT optimizer where it applies, and quantized with per-channel dynamic int8
  (QInt8 weights); tokenization with the `tokenizers` library directly.

Inputs: the first catalog items in file order (--catalog, column ProductName and Description), or a
plain file of titles (--titles) whose descriptions are each title's next eight titles joined with
". ", as in trainer/src/bench.rs. The catalog's derived tags are not recomputed here: training
targets are seeded pseudo-random labels at first sub-words (speed does not depend on their values).

Only torch and transformers are needed for --device cuda; onnxruntime/onnx only for the CPU rows.
"""
import argparse
import csv
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=".cache/models/all-MiniLM-L6-v2")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--catalog", help="catalog CSV (ProductName, Description)")
    p.add_argument("--titles", help="plain text file of titles, one a line (instead of --catalog)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--title-tokens", type=int, default=48)
    p.add_argument("--description-tokens", type=int, default=128)
    p.add_argument("--shapes", default="fixed", choices=["fixed", "natural"])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup-steps", type=int, default=2)
    p.add_argument("--tag-titles", type=int, default=1000)
    p.add_argument("--tag-titles-batch1", type=int)
    p.add_argument("--repetitions", type=int, default=3)
    p.add_argument("--lambda", dest="lam", type=float, default=1.0)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--labels", type=int, default=9, help="number of tag labels (O + B/I x 4 types)")
    p.add_argument(
        "--workloads",
        default="train-multitask,train-ner,tag1,tag32",
        help="comma-separated subset of train-multitask,train-ner,tag1,tag32",
    )
    p.add_argument(
        "--implementations",
        default="auto",
        help="comma-separated subset of pytorch-eager,pytorch-tuned,onnxruntime-fp32,onnxruntime-int8; "
        "auto = eager + tuned on CUDA, eager + both onnxruntime rows on CPU (when importable)",
    )
    p.add_argument("--threads", type=int, help="torch / onnxruntime intra-op threads (default: theirs)")
    p.add_argument("--json", help="write the reports here")
    p.add_argument("--single", action="store_true", help=argparse.SUPPRESS)  # internal: one child run
    p.add_argument("--onnx-dir", help=argparse.SUPPRESS)  # internal: the exported models
    return p.parse_args()


# ---------------------------------------------------------------------------------------------
# Input, identical to trainer/src/bench.rs


def read_input(args):
    if args.titles:
        with open(args.titles, encoding="utf-8") as f:
            titles = [line.strip() for line in f if line.strip()]
        if not titles:
            sys.exit(f"{args.titles}: no titles")
        n = len(titles)
        descriptions = [". ".join(titles[(i + k) % n] for k in range(1, 9)) for i in range(n)]
        return args.titles, titles, descriptions
    path = args.catalog or os.path.join(
        os.environ.get("MULTITAG_DATA", "../shared/data"), "myntra_products/myntra_products_catalog.csv"
    )
    titles, descriptions = [], []
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            title = (row.get("ProductName") or "").strip()
            if not title:
                continue
            titles.append(title)
            descriptions.append((row.get("Description") or "").strip())
    return path, titles, descriptions


# ---------------------------------------------------------------------------------------------
# Measurements


def quantile(sorted_xs, q):
    if not sorted_xs:
        return 0.0
    pos = q * (len(sorted_xs) - 1)
    lo, hi = int(pos // 1), int(-(-pos // 1))
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


def peak_rss_mib():
    try:
        with open("/proc/self/status") as f:
            m = re.search(r"VmHWM:\s+(\d+)", f.read())
        return int(m.group(1)) / 1024 if m else None
    except OSError:
        return None


def reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def measurement(unit, shape, xs, items, gpu_peak=None):
    xs = sorted(xs)
    out = {
        "unit": unit,
        "shape": shape,
        "median": quantile(xs, 0.5),
        "min": xs[0] if xs else 0.0,
        "max": xs[-1] if xs else 0.0,
        "q1": quantile(xs, 0.25),
        "q3": quantile(xs, 0.75),
        "repetitions": len(xs),
        "items_per_repetition": items,
        "peak_rss_mib": peak_rss_mib(),
    }
    if gpu_peak is not None:
        out["gpu_peak_mib"] = gpu_peak
    return out


# ---------------------------------------------------------------------------------------------
# Decoding, as crates/core/src/decode.rs: strict IOB2 spans over words, mean word probability.


def label_names(n):
    types = ["BRAND", "COLOR", "GENDER", "TYPE"]
    names = ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]
    return (names + [f"X{i}" for i in range(len(names), n)])[:n]


def decode(title, word_spans, tags, scores):
    entities, i, n = [], 0, len(tags)
    while i < n:
        tag = tags[i]
        if tag.startswith("B-"):
            label, j = tag[2:], i + 1
            while j < n and tags[j] == "I-" + label:
                j += 1
            start, end = word_spans[i][0], word_spans[j - 1][1]
            entities.append(
                {
                    "label": label,
                    "text": title[start:end],
                    "start": start,
                    "end": end,
                    "score": sum(scores[i:j]) / (j - i),
                }
            )
            i = j
        else:
            i += 1
    return entities


def words_of(encoding_word_ids, encoding_offsets):
    """Per word: (first sub-word position, char start, char end)."""
    words = {}
    for pos, (w, (s, e)) in enumerate(zip(encoding_word_ids, encoding_offsets)):
        if w is None:
            continue
        if w not in words:
            words[w] = [pos, s, e]
        else:
            words[w][2] = e
    return [words[k] for k in sorted(words)]


# ---------------------------------------------------------------------------------------------
# PyTorch


class Reference:
    def __init__(self, args, titles, descriptions, tuned):
        import torch
        from transformers import BertModel, PreTrainedTokenizerFast

        self.torch = torch
        self.args = args
        self.tuned = tuned
        self.device = torch.device(args.device)
        self.titles = titles
        self.descriptions = descriptions
        self.tokenizer = PreTrainedTokenizerFast(tokenizer_file=os.path.join(args.model, "tokenizer.json"))
        self.tokenizer.pad_token = "[PAD]"
        self.tokenizer.model_max_length = 512
        self.BertModel = BertModel
        if tuned:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.set_float32_matmul_precision("high")

    def model(self, attention=None):
        torch = self.torch
        kwargs = {"attn_implementation": attention} if attention else {}
        bert = self.BertModel.from_pretrained(self.args.model, add_pooling_layer=False, **kwargs).float()
        torch.manual_seed(self.args.seed)
        model = torch.nn.ModuleDict(
            {
                "bert": bert,
                "dropout": torch.nn.Dropout(bert.config.hidden_dropout_prob),
                "classifier": torch.nn.Linear(bert.config.hidden_size, self.args.labels),
            }
        )
        torch.nn.init.normal_(model["classifier"].weight, std=0.02)
        torch.nn.init.zeros_(model["classifier"].bias)
        self.attention = getattr(bert.config, "_attn_implementation", None)
        return model.to(self.device)

    def autocast(self):
        import contextlib

        if self.tuned and self.device.type == "cuda":
            return self.torch.autocast("cuda", dtype=self.torch.bfloat16)
        return contextlib.nullcontext()

    def sync(self):
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()

    def gpu_reset(self):
        if self.device.type == "cuda":
            self.torch.cuda.reset_peak_memory_stats()

    def gpu_peak(self):
        if self.device.type == "cuda":
            return self.torch.cuda.max_memory_allocated() / 2**20
        return None

    @staticmethod
    def mean_pool(hidden, mask):
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-6)

    def pad(self, rows, width_fixed):
        """(ids, mask) padded to `width_fixed` (or the longest row), as trainer/src/bench.rs."""
        torch = self.torch
        width = max(max(len(r) for r in rows), width_fixed or 0)
        ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        return ids.to(self.device, non_blocking=True), mask.to(self.device, non_blocking=True)

    def train(self, multitask):
        torch, args = self.torch, self.args
        F = torch.nn.functional
        b = args.batch_size
        needed = b * (args.warmup_steps + args.steps)
        if len(self.titles) < needed:
            sys.exit(f"need {needed} items, have {len(self.titles)}")
        # Tokenized once before timing, as the Rust side does.
        enc = self.tokenizer(self.titles[:needed], truncation=True, max_length=args.title_tokens)
        title_ids = enc["input_ids"]
        gen = torch.Generator().manual_seed(args.seed)
        targets, weights = [], []
        for i, ids in enumerate(title_ids):
            t = torch.zeros(len(ids), dtype=torch.long)
            w = torch.zeros(len(ids))
            seen = set()
            for pos, word in enumerate(enc.word_ids(i)):
                if word is not None and word not in seen:
                    seen.add(word)
                    t[pos] = int(torch.randint(args.labels, (1,), generator=gen))
                    w[pos] = 1.0
            targets.append(t)
            weights.append(w)
        desc_ids = None
        if multitask:
            desc_ids = self.tokenizer(
                self.descriptions[:needed], truncation=True, max_length=args.description_tokens
            )["input_ids"]
        fixed_t = args.title_tokens if args.shapes == "fixed" else None
        fixed_d = args.description_tokens if args.shapes == "fixed" else None

        model = self.model()
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        opt_kwargs = {"lr": args.lr, "weight_decay": args.weight_decay}
        if self.tuned and self.device.type == "cuda":
            opt_kwargs["fused"] = True
        optimizer = torch.optim.AdamW(params, **opt_kwargs)
        shape = (
            f"{b}x{args.title_tokens} titles + {b}x{args.description_tokens} descriptions"
            if multitask
            else f"{b}x{args.title_tokens} titles"
        )
        print(f"[{self.name()}] timing {args.steps} training steps ({shape}) after {args.warmup_steps} warm-up ...", file=sys.stderr)
        self.gpu_reset()
        rates, phases = [], []
        for step in range(args.warmup_steps + args.steps):
            lo, hi = step * b, (step + 1) * b
            start = time.perf_counter()
            ids, mask = self.pad(title_ids[lo:hi], fixed_t)
            width = ids.shape[1]
            tgt = torch.zeros((b, width), dtype=torch.long)
            wts = torch.zeros((b, width))
            for i in range(b):
                n = len(targets[lo + i])
                tgt[i, :n] = targets[lo + i]
                wts[i, :n] = weights[lo + i]
            tgt, wts = tgt.to(self.device, non_blocking=True), wts.to(self.device, non_blocking=True)
            with self.autocast():
                hidden = model["bert"](input_ids=ids, attention_mask=mask).last_hidden_state
                logits = model["classifier"](model["dropout"](hidden))
                per_token = F.cross_entropy(
                    logits.float().reshape(-1, args.labels), tgt.reshape(-1), reduction="none"
                )
                loss = (per_token * wts.reshape(-1)).sum() / wts.sum().clamp(min=1.0)
                if multitask:
                    t = self.mean_pool(hidden, mask).float()
                    d_ids, d_mask = self.pad(desc_ids[lo:hi], fixed_d)
                    d = self.mean_pool(
                        model["bert"](input_ids=d_ids, attention_mask=d_mask).last_hidden_state, d_mask
                    ).float()
                    negatives = torch.roll(d, shifts=-1, dims=0)  # row i: row i+1's description
                    margin = F.cosine_similarity(t, d, dim=-1) - F.cosine_similarity(t, negatives, dim=-1)
                    loss = loss + args.lam * F.softplus(-margin).mean()  # -ln sigmoid(margin)
            self.sync()
            forward = time.perf_counter()
            loss.backward()
            self.sync()
            backward = time.perf_counter()
            if args.clip > 0:
                torch.nn.utils.clip_grad_norm_(params, args.clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            value = loss.item()
            self.sync()
            end = time.perf_counter()
            if value != value:
                sys.exit(f"loss is NaN at step {step}")
            if step >= args.warmup_steps:
                rates.append(b / (end - start))
                phases.append((forward - start, backward - forward, end - backward))
        out = measurement("seq/s", shape, rates, b, self.gpu_peak())
        out["phases_ms"] = {
            name: quantile(sorted(p[i] * 1e3 for p in phases), 0.5)
            for i, name in enumerate(("forward", "backward", "optimizer"))
        }
        return out

    def name(self):
        return "pytorch-tuned" if self.tuned else "pytorch-eager"

    def tag_all(self, model, titles, batch):
        torch, args = self.torch, self.args
        names = label_names(args.labels)
        out = []
        for k in range(0, len(titles), batch):
            chunk = titles[k : k + batch]
            enc = self.tokenizer(
                chunk,
                truncation=True,
                max_length=args.title_tokens,
                padding=True,
                return_offsets_mapping=True,
                return_tensors="pt",
            )
            ids = enc["input_ids"].to(self.device)
            mask = enc["attention_mask"].to(self.device)
            with torch.inference_mode(), self.autocast():
                hidden = model["bert"](input_ids=ids, attention_mask=mask).last_hidden_state
                probs = torch.softmax(model["classifier"](hidden).float(), dim=-1)
                best_prob, best = probs.max(dim=-1)
            best, best_prob = best.tolist(), best_prob.tolist()
            offsets = enc["offset_mapping"].tolist()
            for i, title in enumerate(chunk):
                words = words_of(enc.word_ids(i), offsets[i])
                tags = [names[best[i][w[0]]] for w in words]
                scores = [best_prob[i][w[0]] for w in words]
                out.append(decode(title, [(w[1], w[2]) for w in words], tags, scores))
        return out

    def tag(self, batch, count):
        model = self.model()
        model.eval()
        titles = self.titles[:count]
        print(f"[{self.name()}] timing tagging of {len(titles)} titles at batch {batch} ...", file=sys.stderr)
        self.tag_all(model, titles[:32], batch)
        self.sync()
        self.gpu_reset()
        rates = []
        for _ in range(self.args.repetitions):
            start = time.perf_counter()
            self.tag_all(model, titles, batch)
            self.sync()
            rates.append(len(titles) / (time.perf_counter() - start))
        return measurement(
            "titles/s",
            f"{len(titles)} titles, batch {batch}, <= {self.args.title_tokens} tokens",
            rates,
            len(titles),
            self.gpu_peak(),
        )


# ---------------------------------------------------------------------------------------------
# onnxruntime (CPU tagging)


class OnnxReference:
    """Tagging with onnxruntime from an exported directory (see `export`); imports no torch."""

    def __init__(self, args, titles, onnx_dir):
        import numpy as np
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.np, self.ort, self.args, self.titles = np, ort, args, titles
        self.tokenizer = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.tokenizer.enable_truncation(max_length=args.title_tokens)
        self.tokenizer.enable_padding(pad_id=self.tokenizer.token_to_id("[PAD]") or 0, pad_token="[PAD]")
        with open(os.path.join(onnx_dir, "notes.json"), encoding="utf-8") as f:
            self.notes = json.load(f)
        self.paths = {k: os.path.join(onnx_dir, v) for k, v in self.notes.pop("files").items()}

    @staticmethod
    def export(ref, workdir):
        """Exports encoder + head to workdir: fp32 (fused where possible) and int8, plus notes.json."""
        torch = ref.torch
        notes = {}
        # Eager attention exports to the MatMul/Softmax pattern onnxruntime's BERT fusion recognises.
        model = ref.model(attention="eager").cpu().eval()

        class Exportable(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, input_ids, attention_mask):
                hidden = self.m["bert"](input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
                probs = torch.softmax(self.m["classifier"](hidden), dim=-1)
                scores, labels = probs.max(dim=-1)
                return labels, scores, Reference.mean_pool(hidden, attention_mask)

        fp32 = os.path.join(workdir, "model.onnx")
        ids = torch.ones((2, 16), dtype=torch.long)
        mask = torch.ones((2, 16), dtype=torch.long)
        names = dict(
            input_names=["input_ids", "attention_mask"],
            output_names=["labels", "scores", "embedding"],
        )
        axes = {
            "input_ids": {0: "batch", 1: "seq"},
            "attention_mask": {0: "batch", 1: "seq"},
            "labels": {0: "batch", 1: "seq"},
            "scores": {0: "batch", 1: "seq"},
            "embedding": {0: "batch"},
        }
        print("[onnxruntime] exporting to ONNX ...", file=sys.stderr)
        with torch.no_grad():
            try:  # the TorchScript exporter: its graphs match onnxruntime's BERT fusions
                torch.onnx.export(
                    Exportable(model), (ids, mask), fp32, dynamo=False, opset_version=17, dynamic_axes=axes, **names
                )
                notes["exporter"] = "torchscript"
            except Exception as e:  # noqa: BLE001 - fall back to the dynamo exporter
                print(f"[onnxruntime] TorchScript export failed ({e}); trying dynamo", file=sys.stderr)
                batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
                torch.onnx.export(
                    Exportable(model),
                    (ids, mask),
                    fp32,
                    dynamo=True,
                    external_data=False,
                    dynamic_shapes=({0: batch, 1: seq}, {0: batch, 1: seq}),
                    **names,
                )
                notes["exporter"] = "dynamo"
        fused = os.path.join(workdir, "model.fused.onnx")
        notes["fusion"] = "none"
        try:
            from onnxruntime.transformers import optimizer

            cfg = model["bert"].config
            opt = optimizer.optimize_model(
                fp32, model_type="bert", num_heads=cfg.num_attention_heads, hidden_size=cfg.hidden_size, opt_level=1
            )
            opt.save_model_to_file(fused)
            notes["fusion"] = "onnxruntime.transformers bert " + json.dumps(
                {k: v for k, v in opt.get_fused_operator_statistics().items() if v}
            )
            fp32 = fused
        except Exception as e:  # noqa: BLE001 - fusion is an optimisation, not a requirement
            print(f"[onnxruntime] BERT fusion skipped: {e}", file=sys.stderr)
        from onnxruntime.quantization import QuantType, quantize_dynamic

        int8 = os.path.join(workdir, "model.int8.onnx")
        print("[onnxruntime] quantizing (dynamic, per-channel, QInt8 weights) ...", file=sys.stderr)
        import onnx

        quantize_dynamic(
            fp32,
            int8,
            per_channel=True,
            weight_type=QuantType.QInt8,
            # shape inference cannot type the outputs of onnxruntime's fused (contrib) operators
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        notes["files"] = {"onnxruntime-fp32": os.path.basename(fp32), "onnxruntime-int8": os.path.basename(int8)}
        with open(os.path.join(workdir, "notes.json"), "w", encoding="utf-8") as f:
            json.dump(notes, f)

    def session(self, impl):
        so = self.ort.SessionOptions()
        so.graph_optimization_level = self.ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.args.threads:
            so.intra_op_num_threads = self.args.threads
        return self.ort.InferenceSession(self.paths[impl], so, providers=["CPUExecutionProvider"])

    def tag_all(self, sess, titles, batch):
        np = self.np
        names = label_names(self.args.labels)
        out = []
        for k in range(0, len(titles), batch):
            chunk = titles[k : k + batch]
            encs = self.tokenizer.encode_batch(chunk)
            ids = np.array([e.ids for e in encs], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
            labels, scores, _ = sess.run(None, {"input_ids": ids, "attention_mask": mask})
            for i, (title, e) in enumerate(zip(chunk, encs)):
                words = words_of(e.word_ids, e.offsets)
                tags = [names[labels[i, w[0]]] for w in words]
                sc = [float(scores[i, w[0]]) for w in words]
                out.append(decode(title, [(w[1], w[2]) for w in words], tags, sc))
        return out

    def tag(self, impl, batch, count):
        sess = self.session(impl)
        titles = self.titles[:count]
        print(f"[{impl}] timing tagging of {len(titles)} titles at batch {batch} ...", file=sys.stderr)
        self.tag_all(sess, titles[:32], batch)
        rates = []
        for _ in range(self.args.repetitions):
            start = time.perf_counter()
            self.tag_all(sess, titles, batch)
            rates.append(len(titles) / (time.perf_counter() - start))
        return measurement(
            "titles/s", f"{len(titles)} titles, batch {batch}, <= {self.args.title_tokens} tokens", rates, len(titles)
        )


# ---------------------------------------------------------------------------------------------


def report(args, impl, source, results, threads, versions, extra=None):
    r = {
        "schema": "multitag-bench/1",
        "implementation": impl,
        "device": args.device,
        "threads": threads,
        "model": args.model,
        "labels": args.labels,
        "input": source,
        "shapes": args.shapes,
        "train_batch": args.batch_size,
        "title_tokens": args.title_tokens,
        "description_tokens": args.description_tokens,
        "variant": f"triplet-bpr λ={args.lam}",
        "warmup_steps": args.warmup_steps,
        "versions": versions,
        "results": results,
    }
    r.update(extra or {})
    return r


def run_single(args, impl, workload):
    """One implementation on one workload in this process: a report with one result."""
    import logging

    logging.getLogger().setLevel(logging.ERROR)
    source, titles, descriptions = read_input(args)
    count1 = args.tag_titles_batch1 or args.tag_titles
    key = {"train-multitask": "train_multitask", "train-ner": "train_ner", "tag1": "tag_batch_1", "tag32": "tag_batch_32"}
    if workload not in key:
        sys.exit(f"unknown workload {workload}")
    versions = {"python": platform.python_version()}
    extra = {}
    reset_peak_rss()
    if impl.startswith("pytorch-"):
        import torch
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        if args.threads:
            torch.set_num_threads(args.threads)
        if args.device == "cuda" and not torch.cuda.is_available():
            sys.exit("--device cuda: torch sees no CUDA device")
        versions.update(torch=torch.__version__, transformers=transformers.__version__)
        if args.device == "cuda":
            versions.update(gpu=torch.cuda.get_device_name(0), cuda=torch.version.cuda)
        threads = torch.get_num_threads()
        ref = Reference(args, titles, descriptions, tuned=impl == "pytorch-tuned")
        if workload == "train-multitask":
            m = ref.train(True)
        elif workload == "train-ner":
            m = ref.train(False)
        elif workload == "tag1":
            m = ref.tag(1, count1)
        else:
            m = ref.tag(32, args.tag_titles)
        extra["attention"] = getattr(ref, "attention", None)
    elif impl.startswith("onnxruntime-"):
        import onnxruntime

        versions.update(onnxruntime=onnxruntime.__version__)
        if workload not in ("tag1", "tag32"):
            return None
        ox = OnnxReference(args, titles, args.onnx_dir)
        m = ox.tag(impl, 1, count1) if workload == "tag1" else ox.tag(impl, 32, args.tag_titles)
        threads = args.threads or os.cpu_count()
        extra.update(ox.notes)
    else:
        sys.exit(f"unknown implementation {impl}")
    print(f"  [{impl}] {workload}: {m['median']:.1f} {m['unit']} (min {m['min']:.1f}, max {m['max']:.1f})", file=sys.stderr)
    return report(args, impl, source, {key[workload]: m}, threads, versions, extra)


def child_argv(argv, impl, workload, json_path, onnx_dir):
    """This script's arguments with --implementations/--workloads/--json replaced, for one child."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        name = a.split("=", 1)[0]
        if name in ("--implementations", "--workloads", "--json", "--onnx-dir"):
            skip = "=" not in a
            continue
        if a == "--single":
            continue
        out.append(a)
    out += ["--implementations", impl, "--workloads", workload, "--json", json_path, "--single"]
    if onnx_dir:
        out += ["--onnx-dir", onnx_dir]
    return out


def main():
    args = parse_args()
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    if args.single:
        r = run_single(args, args.implementations, workloads[0])
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"schema": "multitag-bench/1", "reports": [r] if r else []}, f)
        return
    if args.implementations == "auto":
        impls = ["pytorch-eager", "pytorch-tuned"] if args.device == "cuda" else ["pytorch-eager"]
        if args.device == "cpu":
            try:
                import onnx  # noqa: F401
                import onnxruntime  # noqa: F401

                impls += ["onnxruntime-fp32", "onnxruntime-int8"]
            except ImportError:
                print("onnxruntime/onnx not importable: skipping the onnxruntime rows", file=sys.stderr)
    else:
        impls = [i.strip() for i in args.implementations.split(",") if i.strip()]
    reports = []
    with tempfile.TemporaryDirectory() as workdir:
        onnx_dir = None
        if any(i.startswith("onnxruntime-") for i in impls) and any(w in ("tag1", "tag32") for w in workloads):
            import logging

            import transformers

            transformers.utils.logging.set_verbosity_error()
            transformers.utils.logging.disable_progress_bar()
            logging.getLogger().setLevel(logging.ERROR)
            source, titles, descriptions = read_input(args)
            onnx_dir = os.path.join(workdir, "onnx")
            os.makedirs(onnx_dir)
            OnnxReference.export(Reference(args, titles, descriptions, tuned=False), onnx_dir)
        # Each (implementation, workload) runs in a process of its own, so that its peak RSS is its
        # own and no run inherits another's heap or allocator caches (as `trainer bench` does).
        for impl in impls:
            merged = None
            for w in workloads:
                if impl.startswith("onnxruntime-") and w not in ("tag1", "tag32"):
                    continue
                out = os.path.join(workdir, f"{impl}-{w}.json")
                cmd = [sys.executable, os.path.abspath(__file__)] + child_argv(sys.argv[1:], impl, w, out, onnx_dir)
                if subprocess.run(cmd).returncode != 0:
                    sys.exit(f"{impl} {w} failed")
                with open(out, encoding="utf-8") as f:
                    child = json.load(f)["reports"]
                if not child:
                    continue
                if merged is None:
                    merged = child[0]
                else:
                    merged["results"].update(child[0]["results"])
            if merged:
                reports.append(merged)
    text = json.dumps({"schema": "multitag-bench/1", "reports": reports}, indent=2, ensure_ascii=False)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
