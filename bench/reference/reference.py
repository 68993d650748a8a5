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
- train-relations (pytorch rows only): SpERT's training step (Eberts & Ulges 2020) as its published
  code (lavis-nlp/spert) runs it, on the first sentences of --data's *_train.json: see the section
  "Span/relation extraction" below.
- train-binder (pytorch rows only): BINDER's training step (Zhang et al. 2023, microsoft/binder:
  two encoders, text and type descriptions, contrastive span/type losses) on the first sentences
  with entities of --binder-train, with the types of --binder-types, on the candidates and hard
  masks of ours: see the section "BINDER" below.

Inputs: the first catalog items in file order (--catalog, column ProductName and Description), or a
plain file of titles (--titles) whose descriptions are each title's next eight titles joined with
". ", as in trainer/src/bench.rs. The catalog's derived tags are not recomputed here: training
targets are seeded pseudo-random labels at first sub-words (speed does not depend on their values).

Only torch and transformers are needed for --device cuda; onnxruntime/onnx only for the CPU rows.
"""
import argparse
import csv
import json
import math
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=".cache/models/all-MiniLM-L6-v2")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--catalog", help="catalog CSV (ProductName, Description)")
    p.add_argument("--titles", help="plain text file of titles, one a line (instead of --catalog)")
    p.add_argument("--batch-size", type=int, help="default 16; train-binder 8")
    p.add_argument("--title-tokens", type=int, default=48)
    p.add_argument("--description-tokens", type=int, default=128)
    p.add_argument("--shapes", default="fixed", choices=["fixed", "natural"])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup-steps", type=int, default=2)
    p.add_argument("--tag-titles", type=int, default=1000)
    p.add_argument("--tag-titles-batch1", type=int)
    p.add_argument("--repetitions", type=int, default=3)
    p.add_argument("--lambda", dest="lam", type=float, default=1.0)
    p.add_argument("--lr", type=float, help="default 5e-5; train-binder 3e-5")
    p.add_argument("--weight-decay", type=float, help="default 0.01; train-binder 0")
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--labels", type=int, default=9, help="number of tag labels (O + B/I x 4 types)")
    p.add_argument(
        "--workloads",
        default="train-multitask,train-ner,tag1,tag32",
        help="comma-separated subset of train-multitask,train-ner,tag1,tag32,train-relations,train-binder",
    )
    # train-relations (SpERT): the data and the recipe, as `trainer bench --task relations`.
    p.add_argument("--data", help="relation data directory (SpERT JSON: *_train.json, *_types.json)")
    p.add_argument("--span-method", default="spert", help="only spert (SpERT.MT's additions are ours alone)")
    p.add_argument("--neg-entities", type=int, default=100)
    p.add_argument("--neg-relations", type=int, default=100)
    p.add_argument("--max-span-words", type=int, default=10)
    p.add_argument("--warmup", type=float, default=0.1, help="warm-up share of the linear schedule")
    # train-binder (BINDER): the data, as `trainer bench --task binder --train FILE --types FILE`.
    p.add_argument("--binder-train", help="BINDER training sentences (token-per-line IOB2)")
    p.add_argument("--binder-types", help="BINDER entity types (JSON array of {name, description})")
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


def resolve_defaults(args, workload):
    """The defaults of --batch-size, --lr and --weight-decay, which depend on the workload."""
    binder = workload == "train-binder"  # BINDER's recipe: batch 8, lr 3e-5, no weight decay
    for name, general, for_binder in (("batch_size", 16, 8), ("lr", 5e-5, 3e-5), ("weight_decay", 0.01, 0.0)):
        if getattr(args, name) is None:
            setattr(args, name, for_binder if binder else general)


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

    def train_relations(self):
        """SpERT's training step (see the section "Span/relation extraction"), timed as `train`."""
        torch, args = self.torch, self.args
        from tokenizers import Tokenizer

        if not args.data:
            sys.exit("train-relations needs --data DIR (SpERT JSON)")
        if args.span_method != "spert":
            sys.exit(f"--span-method {args.span_method}: the reference has SpERT only (spert)")
        b = args.batch_size
        total = args.warmup_steps + args.steps
        needed = b * total
        train_path, types_path = relation_files(args.data)
        with open(types_path, encoding="utf-8") as f:
            types = json.load(f, object_pairs_hook=OrderedDict)
        entity_types = {name: i + 1 for i, name in enumerate(types["entities"])}
        relation_types = {
            name: (i + 1, bool(spec.get("symmetric", False)))
            for i, (name, spec) in enumerate(types["relations"].items())
        }
        with open(train_path, encoding="utf-8") as f:
            raw = json.load(f)
        if len(raw) < needed:
            sys.exit(f"need {needed} training sentences for {total} steps of batch {b}, have {len(raw)}")
        tokenizer = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.no_truncation()
        ids = {t: tokenizer.token_to_id(t) for t in ("[CLS]", "[SEP]", "[UNK]")}
        docs = [SpanDocument(d, tokenizer, ids, entity_types, relation_types) for d in raw[:needed]]
        subwords = sum(len(d.encoding) for d in docs)

        bert = self.BertModel.from_pretrained(args.model).float()  # with its pooler, as SpERT's
        torch.manual_seed(args.seed)
        model = span_relation_model(
            torch, bert, ids["[CLS]"], 1 + len(entity_types), len(relation_types), prop_drop=0.1
        ).to(self.device)
        self.attention = getattr(bert.config, "_attn_implementation", None)
        model.train()
        named = list(model.named_parameters())
        no_decay = ("bias", "LayerNorm.bias", "LayerNorm.weight")
        groups = [
            {"params": [p for n, p in named if not any(nd in n for nd in no_decay)], "weight_decay": args.weight_decay},
            {"params": [p for n, p in named if any(nd in n for nd in no_decay)], "weight_decay": 0.0},
        ]
        optimizer = TransformersAdamW.create(
            torch, groups, lr=args.lr, weight_decay=args.weight_decay, correct_bias=False
        )
        warm = args.warmup * total

        def schedule(step):  # transformers' get_linear_schedule_with_warmup
            if step < warm:
                return step / max(1.0, warm)
            return max(0.0, (total - step) / max(1.0, total - warm))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        rng = random.Random(args.seed)
        shape = (
            f"{b} sentences a step ({subwords / len(docs):.1f} sub-words on average), {args.span_method}, "
            f"{args.neg_entities} + {args.neg_relations} negatives"
        )
        print(
            f"[{self.name()}] timing {args.steps} span/relation steps ({shape}) after {args.warmup_steps} warm-up ...",
            file=sys.stderr,
        )
        self.gpu_reset()
        rates, phases = [], []
        fields = ("encodings", "context_masks", "entity_masks", "entity_sizes", "rels", "rel_masks")
        for step in range(total):
            # SpERT's data loader: sampling and collating, before the step (ours does it inside).
            batch = spert_collate(
                torch,
                [
                    spert_train_sample(
                        torch, d, rng, args.neg_entities, args.neg_relations, args.max_span_words, len(relation_types)
                    )
                    for d in docs[step * b : (step + 1) * b]
                ],
            )
            batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
            self.sync()
            start = time.perf_counter()
            with self.autocast():
                entity_logits, rel_logits = model(*(batch[k] for k in fields))
                loss = spert_loss(torch, entity_logits.float(), rel_logits.float(), batch)
            self.sync()
            forward = time.perf_counter()
            loss.backward()
            self.sync()
            backward = time.perf_counter()
            if args.clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            optimizer.step()
            scheduler.step()
            model.zero_grad()
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

    def train_binder(self):
        """BINDER's training step (see the section "BINDER"), timed as `train_relations`."""
        torch, args = self.torch, self.args
        from tokenizers import Tokenizer

        if not args.binder_train or not args.binder_types:
            sys.exit("train-binder needs --binder-train FILE (IOB2) and --binder-types FILE (JSON)")
        b = args.batch_size
        total = args.warmup_steps + args.steps
        needed = b * total
        types = read_binder_types(args.binder_types)
        index = {name: i for i, (name, _) in enumerate(types)}
        sentences = read_iob2(args.binder_train)
        tokenizer = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.no_truncation()
        ids = {t: tokenizer.token_to_id(t) for t in ("[CLS]", "[SEP]", "[UNK]")}
        text = self.BertModel.from_pretrained(args.model, add_pooling_layer=False).float()
        type_encoder = self.BertModel.from_pretrained(args.model, add_pooling_layer=False).float()
        max_positions = text.config.max_position_embeddings
        # The training examples: sentences with at least one entity, in file order.
        examples = []
        for number, (words, tags) in enumerate(sentences):
            spans = iob2_spans(tags)
            missing = sorted({ty for ty, _, _ in spans if ty not in index})
            if missing:
                sys.exit(f"training sentence {number}: entity type {missing[0]} is not described in {args.binder_types}")
            entities = [((s, e), index[ty]) for ty, s, e in spans]
            if not entities:
                continue
            encoding, word_spans = subword_sentence(tokenizer, ids, words)
            if len(encoding) > max_positions:
                sys.exit(f"training sentence {number}: {len(encoding)} sub-words, more than {max_positions}")
            examples.append((encoding, word_spans, entities))
            if len(examples) == needed:
                break
        if len(examples) < needed:
            sys.exit(f"need {needed} training sentences with entities for {total} steps of batch {b}, have {len(examples)}")
        descriptions = [binder_description(tokenizer, d) for _, d in types]
        subwords = sum(len(e[0]) for e in examples)

        torch.manual_seed(args.seed)
        model = binder_model(torch, text, type_encoder).to(self.device)
        self.attention = getattr(text.config, "_attn_implementation", None)
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        opt_kwargs = {"lr": args.lr, "weight_decay": args.weight_decay}
        if self.tuned and self.device.type == "cuda":
            opt_kwargs["fused"] = True
        optimizer = torch.optim.AdamW(params, **opt_kwargs)
        # transformers' get_linear_schedule_with_warmup without warm-up (the Trainer's default).
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, (total - step) / max(1, total)))
        type_ids, type_mask = pad_rows(torch, descriptions)
        type_ids, type_mask = type_ids.to(self.device), type_mask.to(self.device)
        shape = f"{b} sentences a step ({subwords / len(examples):.1f} sub-words on average), {len(types)} types described"
        print(
            f"[{self.name()}] timing {args.steps} BINDER steps ({shape}) after {args.warmup_steps} warm-up ...",
            file=sys.stderr,
        )
        self.gpu_reset()
        rates, phases = [], []
        for step in range(total):
            # BINDER's feature building and collator: the batch and its masks before the step
            # (ours builds the candidates and loss rows inside it).
            batch = binder_batch(torch, examples[step * b : (step + 1) * b], len(types))
            batch = {k: v if v is None else v.to(self.device, non_blocking=True) for k, v in batch.items()}
            self.sync()
            start = time.perf_counter()
            with self.autocast():
                scores = model(
                    batch["ids"], batch["mask"], type_ids, type_mask,
                    batch["starts"], batch["ends"], batch["firsts"], batch["lasts"], batch["widths"],
                )
                loss = binder_loss(torch, [s.float() for s in scores], batch)
            self.sync()
            forward = time.perf_counter()
            loss.backward()
            self.sync()
            backward = time.perf_counter()
            if args.clip > 0:
                torch.nn.utils.clip_grad_norm_(params, args.clip)
            optimizer.step()
            scheduler.step()
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
# Span/relation extraction: SpERT's training step, as lavis-nlp/spert runs it
#
# Measured as `trainer bench --task relations --workloads train-relations` measures ours
# (trainer/src/bench.rs): the first batch * (warmup + steps) documents of --data's *_train.json in
# file order, batches of --batch-size consecutive documents, each sentence [CLS] + its words'
# sub-words + [SEP] (a word with none becomes [UNK]) padded to the batch's longest, the encoder
# from --model, f32, dropout 0.1. What SpERT does (spert/sampling.py, models.py, loss.py,
# spert_trainer.py), written anew here:
# - sampling (its create_train_sample): every gold entity; up to --neg-entities spans of 1 to
#   --max-span-words words that are no gold entity's span (random.sample); one positive relation
#   per (head, tail) entity pair, multi-hot over the relation types; up to --neg-relations ordered
#   pairs of gold entities with different spans and no gold relation (random.sample). SpERT
#   samples in its data loader, so here a batch is sampled and collated before its step, outside
#   the timed region. Ours samples inside the step (RelationLoss::loss draws the negatives), so our
#   forward phase includes the sampling and the building of the index tensors.
# - model: BertModel as SpERT builds it (pooler included; its output is unused and gets no
#   gradient); a span = [CLS] state ⊕ max-pool of its sub-word states ⊕ width embedding (25 dims,
#   100 rows); a pair = max-pool of the states strictly between its spans (zeros when there are
#   none) ⊕ head pool ⊕ tail pool ⊕ head width ⊕ tail width; dropout 0.1 and one linear layer each
#   (entities: "none" + types, relations: one logit per type); weights N(0, 0.02), biases 0; pairs
#   in chunks of max_pairs (1000, configs/example_train.conf).
# - loss: entity cross-entropy averaged over the batch's sampled spans + relation binary
#   cross-entropy averaged over the types, then over the sampled pairs (left out when the batch
#   has no pair).
# - optimizer: transformers 4.x's AdamW(correct_bias=False) (TransformersAdamW: eps 1e-6, its
#   default; decoupled weight decay after the update), weight decay --weight-decay except for
#   parameters whose name contains "bias" or "LayerNorm.weight" (SpERT's _get_optimizer_params),
#   global-norm clipping at --clip, a linear warm-up (--warmup) / decay schedule over the timed
#   run's steps, stepped after the update as SpERT does (ours keeps --lr constant in `bench`: the
#   same cost), then zero_grad. Phases: forward through the loss, backward, optimizer (clipping,
#   update, schedule, zero_grad, reading the loss).


class TransformersAdamW:
    """Builds transformers 4.x's `AdamW` (gone from transformers 5) on torch.optim.Optimizer."""

    @staticmethod
    def create(torch, params, lr, weight_decay=0.0, betas=(0.9, 0.999), eps=1e-6, correct_bias=True):
        class AdamW(torch.optim.Optimizer):
            def __init__(self, groups):
                super().__init__(
                    groups, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, correct_bias=correct_bias)
                )

            @torch.no_grad()
            def step(self):
                for group in self.param_groups:
                    beta1, beta2 = group["betas"]
                    for p in group["params"]:
                        if p.grad is None:
                            continue
                        state = self.state[p]
                        if not state:
                            state["step"] = 0
                            state["exp_avg"] = torch.zeros_like(p)
                            state["exp_avg_sq"] = torch.zeros_like(p)
                        state["step"] += 1
                        m, v = state["exp_avg"], state["exp_avg_sq"]
                        m.mul_(beta1).add_(p.grad, alpha=1.0 - beta1)
                        v.mul_(beta2).addcmul_(p.grad, p.grad, value=1.0 - beta2)
                        denom = v.sqrt().add_(group["eps"])
                        step_size = group["lr"]
                        if group["correct_bias"]:
                            t = state["step"]
                            step_size *= math.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
                        p.addcdiv_(m, denom, value=-step_size)
                        if group["weight_decay"] > 0.0:
                            p.add_(p, alpha=-group["lr"] * group["weight_decay"])

        return AdamW(params)


def relation_files(data):
    """--data's training and types files: the one *_train.json and *_types.json, as `trainer`."""

    def one(ending):
        names = sorted(n for n in os.listdir(data) if n.endswith(ending) and not n.endswith("_train_dev.json"))
        if len(names) != 1:
            sys.exit(f"{data}: expected one *{ending}, found {names}")
        return os.path.join(data, names[0])

    return one("_train.json"), one("_types.json")


class SpanDocument:
    """A sentence as SpERT's reader makes it: sub-word ids, each word's sub-word span, entities
    (sub-word span, type index from 1, width in words) and relations (head, tail, type index from
    1; a symmetric type's arguments in sentence order)."""

    def __init__(self, doc, tokenizer, ids, entity_types, relation_types):
        self.encoding = [ids["[CLS]"]]
        self.word_spans = []
        enc = tokenizer.encode(doc["tokens"], is_pretokenized=True, add_special_tokens=False)
        per_word = [[] for _ in doc["tokens"]]
        for i, w in zip(enc.ids, enc.word_ids):
            if w is not None:
                per_word[w].append(i)
        for sub in per_word:
            start = len(self.encoding)
            self.encoding += sub or [ids["[UNK]"]]
            self.word_spans.append((start, len(self.encoding)))
        self.encoding.append(ids["[SEP]"])
        self.entities = []
        for e in doc["entities"]:
            span = (self.word_spans[e["start"]][0], self.word_spans[e["end"] - 1][1])
            self.entities.append((span, entity_types[e["type"]], e["end"] - e["start"], e["start"]))
        self.relations = []
        for r in doc["relations"]:
            index, symmetric = relation_types[r["type"]]
            head, tail = r["head"], r["tail"]
            if symmetric and self.entities[tail][3] < self.entities[head][3]:
                head, tail = tail, head
            self.relations.append((head, tail, index))


def spert_train_sample(torch, doc, rng, neg_entities, neg_relations, max_span, relation_types):
    """SpERT's create_train_sample: tensors of one document (see the section comment)."""
    context = len(doc.encoding)

    def span_mask(start, end):
        mask = torch.zeros(context, dtype=torch.bool)
        mask[start:end] = True
        return mask

    def between_mask(s1, s2):
        start, end = (s1[1], s2[0]) if s1[1] < s2[0] else (s2[1], s1[0])
        return span_mask(start, end)

    pos_spans = [e[0] for e in doc.entities]
    pos_types = [e[1] for e in doc.entities]
    pos_sizes = [e[2] for e in doc.entities]
    # positive relations: one per (head entity, tail entity), multi-hot over types 1..R
    by_pair = OrderedDict()
    for head, tail, ty in doc.relations:
        by_pair.setdefault((head, tail), []).append(ty)
    rels, rel_span_pairs, rel_types = [], [], []
    for (head, tail), types in by_pair.items():
        s1, s2 = doc.entities[head][0], doc.entities[tail][0]
        rels.append((pos_spans.index(s1), pos_spans.index(s2)))
        rel_span_pairs.append((s1, s2))
        rel_types.append([float(t in types) for t in range(1, relation_types + 1)])
    # negative entities: every other span of up to max_span words, size by size
    candidates = []
    words = len(doc.word_spans)
    for size in range(1, max_span + 1):
        for i in range(words - size + 1):
            span = (doc.word_spans[i][0], doc.word_spans[i + size - 1][1])
            if span not in pos_spans:
                candidates.append((span, size))
    negatives = rng.sample(candidates, min(len(candidates), neg_entities))
    # negative relations: unrelated ordered pairs of gold entities with different spans
    pairs = [
        (s1, s2) for s1 in pos_spans for s2 in pos_spans if s1 != s2 and (s1, s2) not in rel_span_pairs
    ]
    neg_pairs = rng.sample(pairs, min(len(pairs), neg_relations))

    spans = pos_spans + [n[0] for n in negatives]
    rel_masks = [between_mask(s1, s2) for s1, s2 in rel_span_pairs + neg_pairs]
    rels += [(pos_spans.index(s1), pos_spans.index(s2)) for s1, s2 in neg_pairs]
    rel_types += [[0.0] * relation_types] * len(neg_pairs)
    sample = {
        "encodings": torch.tensor(doc.encoding, dtype=torch.long),
        "context_masks": torch.ones(context, dtype=torch.bool),
    }
    if spans:
        sample["entity_masks"] = torch.stack([span_mask(*s) for s in spans])
        sample["entity_sizes"] = torch.tensor(pos_sizes + [n[1] for n in negatives], dtype=torch.long)
        sample["entity_types"] = torch.tensor(pos_types + [0] * len(negatives), dtype=torch.long)
        sample["entity_sample_masks"] = torch.ones(len(spans), dtype=torch.bool)
    else:
        sample["entity_masks"] = torch.zeros((1, context), dtype=torch.bool)
        sample["entity_sizes"] = torch.zeros(1, dtype=torch.long)
        sample["entity_types"] = torch.zeros(1, dtype=torch.long)
        sample["entity_sample_masks"] = torch.zeros(1, dtype=torch.bool)
    if rels:
        sample["rels"] = torch.tensor(rels, dtype=torch.long)
        sample["rel_masks"] = torch.stack(rel_masks)
        sample["rel_types"] = torch.tensor(rel_types, dtype=torch.float32)
        sample["rel_sample_masks"] = torch.ones(len(rels), dtype=torch.bool)
    else:
        sample["rels"] = torch.zeros((1, 2), dtype=torch.long)
        sample["rel_masks"] = torch.zeros((1, context), dtype=torch.bool)
        sample["rel_types"] = torch.zeros((1, relation_types), dtype=torch.float32)
        sample["rel_sample_masks"] = torch.zeros(1, dtype=torch.bool)
    return sample


def spert_collate(torch, samples):
    """Stacks each field, zero-padding every dimension to the batch's largest (SpERT's padded_stack)."""
    out = {}
    for key in samples[0]:
        ts = [s[key] for s in samples]
        shape = [max(t.shape[d] for t in ts) for d in range(ts[0].dim())]
        padded = []
        for t in ts:
            p = torch.zeros(shape, dtype=t.dtype)
            p[tuple(slice(0, n) for n in t.shape)] = t
            padded.append(p)
        out[key] = torch.stack(padded)
    return out


def span_relation_model(
    torch, bert, cls_id, entity_classes, relation_types, size_embedding=25, prop_drop=0.1, max_pairs=1000
):
    """SpERT's network (models.py's SpERT, training forward) over `bert`."""
    nn = torch.nn
    hidden = bert.config.hidden_size

    class SpanRelationModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = bert
            self.rel_classifier = nn.Linear(3 * hidden + 2 * size_embedding, relation_types)
            self.entity_classifier = nn.Linear(2 * hidden + size_embedding, entity_classes)
            self.size_embeddings = nn.Embedding(100, size_embedding)
            self.dropout = nn.Dropout(prop_drop)
            for module in (self.rel_classifier, self.entity_classifier, self.size_embeddings):
                nn.init.normal_(module.weight, std=bert.config.initializer_range)
            nn.init.zeros_(self.rel_classifier.bias)
            nn.init.zeros_(self.entity_classifier.bias)

        def forward(self, encodings, context_masks, entity_masks, entity_sizes, rels, rel_masks):
            h = self.bert(input_ids=encodings, attention_mask=context_masks.float()).last_hidden_state
            batch = encodings.shape[0]
            sizes = self.size_embeddings(entity_sizes)
            # spans: max-pool of the sub-words under each mask (-1e30 elsewhere)
            floor = (entity_masks.unsqueeze(-1) == 0).float() * -1e30
            pooled = (floor + h.unsqueeze(1).repeat(1, entity_masks.shape[1], 1, 1)).max(dim=2)[0]
            cls = h.reshape(-1, hidden)[encodings.reshape(-1) == cls_id]  # one [CLS] a sentence
            entity_repr = torch.cat([cls.unsqueeze(1).repeat(1, pooled.shape[1], 1), pooled, sizes], dim=2)
            entity_logits = self.entity_classifier(self.dropout(entity_repr))
            # pairs, in chunks of max_pairs
            chunk = max(min(rels.shape[1], max_pairs), 1)
            h_large = h.unsqueeze(1).repeat(1, chunk, 1, 1)
            rel_logits = torch.zeros([batch, rels.shape[1], relation_types], device=h.device)
            for start in range(0, rels.shape[1], max_pairs):
                r = rels[:, start : start + max_pairs]
                m = rel_masks[:, start : start + max_pairs]
                hh = h_large[:, : r.shape[1]]
                pair = torch.stack([pooled[i][r[i]] for i in range(batch)]).view(batch, r.shape[1], -1)
                pair_sizes = torch.stack([sizes[i][r[i]] for i in range(batch)]).view(batch, r.shape[1], -1)
                context = (((m == 0).float() * -1e30).unsqueeze(-1) + hh).max(dim=2)[0]
                context[m.to(torch.uint8).any(-1) == 0] = 0  # adjacent or overlapping spans
                rel_repr = torch.cat([context, pair, pair_sizes], dim=2)
                rel_logits[:, start : start + max_pairs, :] = self.rel_classifier(self.dropout(rel_repr))
            return entity_logits, rel_logits

    return SpanRelationModel()


def spert_loss(torch, entity_logits, rel_logits, batch):
    """SpERT's loss.py: masked means of the entity cross-entropy and the relation BCE."""
    F = torch.nn.functional
    entity_masks = batch["entity_sample_masks"].reshape(-1).float()
    entity = F.cross_entropy(
        entity_logits.reshape(-1, entity_logits.shape[-1]), batch["entity_types"].reshape(-1), reduction="none"
    )
    loss = (entity * entity_masks).sum() / entity_masks.sum()
    rel_masks = batch["rel_sample_masks"].reshape(-1).float()
    count = rel_masks.sum()
    if count.item() != 0:
        rel = F.binary_cross_entropy_with_logits(
            rel_logits.reshape(-1, rel_logits.shape[-1]),
            batch["rel_types"].reshape(-1, rel_logits.shape[-1]),
            reduction="none",
        )
        rel = rel.sum(-1) / rel.shape[-1]
        loss = loss + (rel * rel_masks).sum() / count
    return loss


# ---------------------------------------------------------------------------------------------
# BINDER: its training step (Zhang et al., ICLR 2023; microsoft/binder's src/model.py), on the
# shapes and candidates of ours (crates/model/src/tasks/binder)
#
# Measured as `trainer bench --task binder --workloads train-binder` measures ours: the training
# examples are the sentences of --binder-train (token-per-line IOB2, as `trainer` reads it) that
# have at least one entity, in file order; batch i of the loop is examples [i*b, (i+1)*b) with
# b = --batch-size; each sentence whole as [CLS] + its words' sub-words + [SEP] (a word with none
# becomes [UNK]), padded to the batch's longest; the types of --binder-types in file order, each
# description `[CLS] description [SEP]` (at most 128 sub-words), all of them encoded at every
# step. f32, dropout 0.1 (the encoders' own and after each head). What BINDER does, written anew:
# - model: two BertModels (text and type encoder, no pooler) loaded from --model, separate
#   weights, both trained; a type's vector is its description's last-layer [CLS]; heads are
#   single linear layers to 128: start and end over a sub-word's state, span over
#   [h_first; h_last; width embedding(last - first + 1)] (max_position_embeddings + 1 rows), and
#   type start / end / span over the type's [CLS]; dropout after each, then L2 normalisation;
#   scores exp(log-scale) * cosine, one log-scale per kind from ln(1 / 0.07); weights N(0, 0.02),
#   biases 0.
# - candidates (as ours, not BINDER's L x L grid; the same scores where both have them): per
#   sentence [CLS] then each word's first sub-word (starts), [CLS] then each word's last (ends),
#   the (CLS, CLS) span then every word span [s, e) with no width cap (spans), in (s, e) order.
# - loss with hard masks (ours; BINDER's fp16 -9.2 soft mask is its choice of precision): per
#   (sentence, type) a threshold row, softmax over [CLS] (the positive) and the candidates that
#   are no gold mention of the type; per gold mention a NER row over the mention (the positive),
#   [CLS] and the same candidates; rows padded with -1e30, each kind's rows averaged;
#   0.5 * (0.2 start + 0.2 end + 0.6 span of the NER rows) + 0.5 * (the same of the threshold rows).
# - optimizer: torch.optim.AdamW (fused in pytorch-tuned on CUDA), --lr (3e-5 here),
#   --weight-decay (0 here), global-norm clipping at --clip, the learning rate decaying linearly
#   to 0 over the run's steps from the first (no warm-up), stepped after the update as the
#   Trainer does (ours keeps --lr constant in `bench`: the same cost), then zero_grad.
#   Phases: forward through the loss, backward, optimizer (clipping, update, schedule,
#   zero_grad, reading the loss). BINDER builds its masks in its feature preparation and data
#   collator, so here a batch's tensors and loss rows are built before its step, outside the timed
#   region; ours builds them inside the step (its forward phase).

BINDER_DESCRIPTION_TOKENS = 128  # crates/model/src/tasks/binder/tagger.rs DESCRIPTION_TOKENS
BINDER_LOG_SCALE = math.log(1 / 0.07)


def read_binder_types(path):
    """--binder-types: a JSON array of {"name", "description"}, as [(name, description)] in file order."""
    with open(path, encoding="utf-8") as f:
        records = json.load(f)
    if not isinstance(records, list) or not records:
        sys.exit(f"{path}: expected a non-empty JSON array of {{\"name\", \"description\"}} objects")
    types = []
    for i, r in enumerate(records):
        if not isinstance(r, dict) or not isinstance(r.get("name"), str) or not isinstance(r.get("description"), str):
            sys.exit(f"{path}: record [{i}] is not an object with string \"name\" and \"description\"")
        if r["name"] in (t[0] for t in types):
            sys.exit(f"{path}: type {r['name']!r} is listed twice")
        types.append((r["name"], r["description"]))
    return types


def iob2_parts(tag):
    """(prefix, type) of a B-/I- tag; None for O and invalid tags (crates/core/src/tags.rs)."""
    prefix, dash, ty = tag.partition("-")
    return (prefix, ty) if dash and prefix in ("B", "I") and ty else None


def read_iob2(path):
    """Token-per-line IOB2 as `trainer` reads it (crates/core/src/labeled.rs, read_conll): the token
    first, the tag last, blank lines between sentences, -DOCSTART- lines skipped; a sentence with a
    one-column line, an invalid tag or an I- that continues nothing is left out. [(words, tags)]."""
    sentences, words, tags, bad = [], [], [], False

    def finish():
        if not bad and words:
            previous = None
            for tag in tags:
                parts = iob2_parts(tag)
                ty = parts[1] if parts else None
                if tag.startswith("I-") and previous != ty:
                    return
                previous = ty
            sentences.append((list(words), list(tags)))

    with open(path, encoding="utf-8") as f:
        for line in f:
            columns = line.split()
            if not columns:
                finish()
                words, tags, bad = [], [], False
                continue
            if columns[0] == "-DOCSTART-" or bad:
                continue
            if columns[0].startswith("{") and not sentences and not words:
                sys.exit(f"{path}: JSONL; the reference reads token-per-line IOB2 only")
            tag = columns[-1]
            if len(columns) < 2 or (tag != "O" and iob2_parts(tag) is None):
                bad = True
                continue
            words.append(columns[0])
            tags.append(tag)
    finish()
    return sentences


def iob2_spans(tags):
    """Strict IOB2 entities [(type, start word, end word exclusive)] (spans_from_iob2)."""
    out, open_ = [], None
    for i, tag in enumerate(tags):
        parts = iob2_parts(tag)
        if parts and parts[0] == "I" and open_ and open_[0] == parts[1]:
            continue
        if open_:
            out.append((open_[0], open_[1], i))
            open_ = None
        if parts and parts[0] == "B":
            open_ = (parts[1], i)
    if open_:
        out.append((open_[0], open_[1], len(tags)))
    return out


def subword_sentence(tokenizer, ids, words):
    """[CLS] + each word's sub-words ([UNK] for a word with none) + [SEP], and each word's
    sub-word range (SubwordSentence::encode)."""
    enc = tokenizer.encode(words, is_pretokenized=True, add_special_tokens=False)
    per_word = [[] for _ in words]
    for i, w in zip(enc.ids, enc.word_ids):
        if w is not None:
            per_word[w].append(i)
    encoding, spans = [ids["[CLS]"]], []
    for sub in per_word:
        start = len(encoding)
        encoding += sub or [ids["[UNK]"]]
        spans.append((start, len(encoding)))
    encoding.append(ids["[SEP]"])
    return encoding, spans


def binder_description(tokenizer, text):
    """`[CLS] description [SEP]`, cut to its first 127 ids and its [SEP] (WordTokenizer::encode_text)."""
    out = tokenizer.encode(text).ids
    if len(out) > BINDER_DESCRIPTION_TOKENS:
        out = out[: BINDER_DESCRIPTION_TOKENS - 1] + out[-1:]
    return out


def pad_rows(torch, rows):
    """(ids, mask) padded with 0 to the longest row (crates/model/src/tokenize.rs collate)."""
    width = max(len(r) for r in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return ids, mask


def binder_batch(torch, examples, types):
    """A batch's tensors: the padded sentences, the candidates as rows of the encoded batch
    (Candidates::new) and, per kind, the loss rows as indices into the flattened (candidates,
    types) scores, the positive first, padded with the index of an appended -1e30 (BinderLoss)."""
    ids, mask = pad_rows(torch, [e[0] for e in examples])
    seq = ids.shape[1]
    starts, ends, spans = [], [], []
    blocks = []  # per sentence: (first start, first end, first span) candidate index, word spans
    for b, (_, word_spans, _) in enumerate(examples):
        row = b * seq
        blocks.append((len(starts), len(ends), len(spans)))
        starts.append(row)
        ends.append(row)
        spans.append((row, row, 1))
        for s, e in word_spans:
            starts.append(row + s)
            ends.append(row + e - 1)
        n = len(word_spans)
        for s in range(n):
            first = word_spans[s][0]
            for e in range(s + 1, n + 1):
                last = word_spans[e - 1][1] - 1
                spans.append((row + first, row + last, last - first + 1))
    counts = {"start": len(starts), "end": len(ends), "span": len(spans)}
    rows = {kind: ([], []) for kind in counts}  # (threshold, ner)
    for (_, word_spans, entities), (s0, e0, p0) in zip(examples, blocks):
        n = len(word_spans)
        for kind, cls in (("start", s0), ("end", e0), ("span", p0)):
            last = cls + (n * (n + 1) // 2 if kind == "span" else n)  # the block's candidates: cls..=last

            def of(span):
                s, e = span
                if kind == "start":
                    return cls + 1 + s
                if kind == "end":
                    return cls + e
                return cls + 1 + s * n - s * (s - 1) // 2 + (e - s - 1)  # (s, e) order

            for t in range(types):
                gold = sorted({of(span) for span, ty in entities if ty == t})
                flat = lambda c: c * types + t  # noqa: E731
                gold_set = set(gold)
                negatives = [flat(c) for c in range(cls + 1, last + 1) if c not in gold_set]
                rows[kind][0].append([flat(cls)] + negatives)
                for g in gold:
                    rows[kind][1].append([flat(g), flat(cls)] + negatives)

    def index(kind, rs):
        if not rs:
            return None
        floor = counts[kind] * types
        width = max(len(r) for r in rs)
        return torch.tensor([r + [floor] * (width - len(r)) for r in rs], dtype=torch.long)

    batch = {"ids": ids, "mask": mask}
    batch["starts"] = torch.tensor(starts, dtype=torch.long)
    batch["ends"] = torch.tensor(ends, dtype=torch.long)
    batch["firsts"] = torch.tensor([s[0] for s in spans], dtype=torch.long)
    batch["lasts"] = torch.tensor([s[1] for s in spans], dtype=torch.long)
    batch["widths"] = torch.tensor([s[2] for s in spans], dtype=torch.long)
    for kind, (threshold, ner) in rows.items():
        batch[f"{kind}_threshold"] = index(kind, threshold)
        batch[f"{kind}_ner"] = index(kind, ner)
    return batch


def binder_model(torch, text, type_encoder, dim=128, dropout=0.1):
    """BINDER's network over the two encoders (see the section comment): forward gives the
    start, end and span scores (candidates, types)."""
    nn = torch.nn
    F = nn.functional
    hidden = text.config.hidden_size

    class BinderModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.text_encoder = text
            self.type_encoder = type_encoder
            self.start_linear = nn.Linear(hidden, dim)
            self.end_linear = nn.Linear(hidden, dim)
            self.span_linear = nn.Linear(2 * hidden + dim, dim)
            self.width_embeddings = nn.Embedding(text.config.max_position_embeddings + 1, dim)
            self.type_start_linear = nn.Linear(hidden, dim)
            self.type_end_linear = nn.Linear(hidden, dim)
            self.type_span_linear = nn.Linear(hidden, dim)
            self.dropout = nn.Dropout(dropout)
            for name in ("start", "end", "span"):
                setattr(self, f"{name}_logit_scale", nn.Parameter(torch.tensor(BINDER_LOG_SCALE)))
            for module in self.children():
                if isinstance(module, (nn.Linear, nn.Embedding)):
                    nn.init.normal_(module.weight, std=text.config.initializer_range)
                if isinstance(module, nn.Linear):
                    nn.init.zeros_(module.bias)

        def project(self, layer, xs):
            return F.normalize(self.dropout(layer(xs)), dim=-1)

        @staticmethod
        def scores(xs, types, log_scale):
            return (xs @ types.t()) * log_scale.exp()

        def forward(self, ids, mask, type_ids, type_mask, starts, ends, firsts, lasts, widths):
            cls = self.type_encoder(input_ids=type_ids, attention_mask=type_mask).last_hidden_state[:, 0]
            rows = self.text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state.reshape(-1, hidden)
            span = torch.cat([rows[firsts], rows[lasts], self.width_embeddings(widths)], dim=-1)
            return (
                self.scores(
                    self.project(self.start_linear, rows[starts]),
                    self.project(self.type_start_linear, cls),
                    self.start_logit_scale,
                ),
                self.scores(
                    self.project(self.end_linear, rows[ends]), self.project(self.type_end_linear, cls), self.end_logit_scale
                ),
                self.scores(
                    self.project(self.span_linear, span), self.project(self.type_span_linear, cls), self.span_logit_scale
                ),
            )

    return BinderModel()


def binder_loss(torch, scores, batch, weights=(0.2, 0.2, 0.6), ner_weight=0.5, threshold_weight=0.5):
    """BinderLoss's total from the (start, end, span) scores and the batch's loss rows."""

    def contrastive(xs, rows):  # the mean over rows of -log softmax(row)[0]
        if rows is None:
            return xs.new_zeros(())
        flat = torch.cat([xs.reshape(-1), xs.new_full((1,), -1e30)])
        return -torch.log_softmax(flat[rows], dim=-1)[:, 0].mean()

    ner = threshold = 0
    for w, kind, xs in zip(weights, ("start", "end", "span"), scores):
        ner = ner + w * contrastive(xs, batch[f"{kind}_ner"])
        threshold = threshold + w * contrastive(xs, batch[f"{kind}_threshold"])
    return ner_weight * ner + threshold_weight * threshold


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
    key = {
        "train-multitask": "train_multitask",
        "train-ner": "train_ner",
        "tag1": "tag_batch_1",
        "tag32": "tag_batch_32",
        "train-relations": "train_relations",
        "train-binder": "train_binder",
    }
    if workload not in key:
        sys.exit(f"unknown workload {workload}")
    versions = {"python": platform.python_version()}
    extra = {}
    if workload == "train-relations":
        # Its input is --data's training file, not the catalog.
        if not impl.startswith("pytorch-"):
            return None
        source = relation_files(args.data)[0] if args.data else None
        titles, descriptions = [], []
        extra["variant"] = args.span_method
    elif workload == "train-binder":
        # Its input is --binder-train's sentences and --binder-types' descriptions.
        if not impl.startswith("pytorch-"):
            return None
        source = args.binder_train
        titles, descriptions = [], []
        extra["variant"] = "binder"
        extra["types"] = args.binder_types
    else:
        source, titles, descriptions = read_input(args)
    count1 = args.tag_titles_batch1 or args.tag_titles
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
        if workload == "train-relations":
            m = ref.train_relations()
        elif workload == "train-binder":
            m = ref.train_binder()
        elif workload == "train-multitask":
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
        resolve_defaults(args, workloads[0])
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
