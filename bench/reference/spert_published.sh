#!/usr/bin/env bash
# Trains and evaluates the published SpERT code (lavis-nlp/spert) on our base encoder, for the
# check "our SpERT within 2 relation-F1 points of the published recipe on the same encoder".
#
#   bench/reference/spert_published.sh SPERT_DIR [--seed N] [--data DIR] [--model DIR] [--out DIR]
#       [--train-file NAME] [--epochs N] [--train-limit N] [--valid-limit N] [--test-limit N]
#       [--sampling-processes N] [--threads N] [--force]
#
# SPERT_DIR: a work tree of lavis-nlp/spert, e.g. exported from the mirror outside this repository
# (their code is never copied into it):
#   mkdir -p /tmp/spert && git -C /work/.mirror/lavis-nlp+spert/repo archive HEAD | tar -x -C /tmp/spert
#
# What it runs: their `spert.py train` with a config equivalent to configs/example_train.conf
# (batch 2, 100 + 100 negatives, 20 epochs, lr 5e-5, warm-up 0.1, weight decay 0.01, clipping 1,
# size embedding 25, dropout 0.1, spans up to 10 words, max_pairs 1000, final_eval, 4 sampling
# processes) on $DATA/conll04_train.json (validation conll04_dev.json, types conll04_types.json),
# with model_path our base encoder (default .cache/models/all-MiniLM-L6-v2), on the CPU, seeded;
# then their `spert.py eval` (as configs/example_eval.conf) of the final model on conll04_test.json.
# Two settings differ from example_train.conf, both forced by the encoder, not by the recipe:
# - tokenizer_path: BertTokenizer needs vocab.txt, which the MiniLM directory lacks; it is derived
#   from tokenizer.json (the WordPiece vocabulary in id order) into OUT/work/tokenizer;
# - lowercase: taken from tokenizer.json's normalizer (true for MiniLM, an uncased vocabulary).
#   SpERT's default (false, for bert-base-cased) would leave capitalised words unknown: on CoNLL04
#   11,112 of 41,854 words become [UNK]. Before training, every word of the three files is
#   tokenized both by SpERT's tokenizer and by tokenizer.json (what `trainer` uses); the run stops
#   if any word's sub-words differ.
# The published final models were trained on train+dev (their README); pass
# --train-file conll04_train_dev.json for that. Limits (--*-limit N: the first N documents of a
# file, as a truncated copy in OUT/work/data) and --epochs are for smoke tests.
# --threads N: torch's intra-op threads (OMP_NUM_THREADS; default torch's, one per core). Where
# another job keeps the cores busy use 1: oversubscribed OpenMP threads stall (on 2 shared cores an
# AdamW step over MiniLM took 3 s at 2 threads, 0.1 s at 1). --sampling-processes N: their data
# loader's workers (4, as published); SpERT spawns them anew every epoch and evaluation (about
# 30 s each time on 2 busy cores); 0 samples in the main process (other random draws, the same
# distribution).
#
# Output (OUT, default runs/spert-published/seed-N): train.log and eval.log (their console),
# log/ and save/ (their log_path and save_path: CSVs, predictions, the final model),
# work/ (configs, tokenizer, shims, truncated data), and test_scores.json: entity and relation
# (strict = SpERT's "with NEC", and boundaries = "without NEC") precision/recall/F1, micro and
# macro, in percent, plus the dev scores after the last epoch and the seconds of each epoch.
#
# Compatibility shims, applied at run time from outside their code (OUT/work/shim/sitecustomize.py,
# first on PYTHONPATH, so every process of the run, spawned ones included, loads it; their files
# are never edited):
# 1. `transformers.AdamW`: removed in transformers 5 (SpERT does `from transformers import AdamW`
#    and calls it with correct_bias=False). Installed as transformers 4.x's AdamW exactly (eps 1e-6
#    default, no bias correction when correct_bias=False, decoupled weight decay applied after the
#    update), not torch.optim.AdamW (which always corrects the bias and decays before the update).
# 2. `SpERT.init_weights`: SpERT's __init__ ends with transformers 4's `self.init_weights()`;
#    transformers 5 expects `post_init()` there (it registers `all_tied_weights_keys`, without
#    which `from_pretrained` fails). The shim makes that call `post_init()` (which itself ends in
#    `init_weights()`); the initialisation is the same, N(0, 0.02) for SpERT's layers.
# 3. `spert.util.check_version`: torch.loads MODEL/pytorch_model.bin to compare SpERT versions;
#    the base model and every model transformers 5 saves have model.safetensors only. The shim
#    reads the keys from model.safetensors and applies the same check.
# 4. `transformers.get_linear_schedule_with_warmup`: still exported by transformers 5; the shim
#    adds it from transformers.optimization only if a later version drops the top-level name.
# Not shims: scikit-learn (their evaluator's precision_recall_fscore_support) is not in the bench
# venv, so it is pip-installed once into $MULTITAG_CACHE/spert-published-pydeps (default .cache),
# which the shim appends to the end of sys.path (the venv's numpy and torch stay first).
# tensorboardX and spacy are optional in their code (spert/opt.py) and absent. Differences that
# remain: attention runs through transformers 5's default (sdpa; the same arithmetic as the eager
# attention of their pinned transformers 4.1.1 up to float rounding), and torch 2.x's RNG streams.
#
# Environment: PYTHON (default .cache/bench-venv/bin/python, made by bench/reference/setup.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

usage() { sed -n '2,8p' "$0"; }
[ $# -ge 1 ] || { usage >&2; exit 2; }
case "$1" in -h|--help) sed -n '2,66p' "$0"; exit 0 ;; esac
spert_dir="$1"; shift
seed=1 data="${MULTITAG_DATA:-../shared/data}/conll04" model="" out="" train_file=conll04_train.json
epochs=20 train_limit="" valid_limit="" test_limit="" sampling=4 threads="" force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --seed) seed="$2"; shift 2 ;;
    --data) data="$2"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --train-file) train_file="$2"; shift 2 ;;
    --epochs) epochs="$2"; shift 2 ;;
    --train-limit) train_limit="$2"; shift 2 ;;
    --valid-limit) valid_limit="$2"; shift 2 ;;
    --test-limit) test_limit="$2"; shift 2 ;;
    --sampling-processes) sampling="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --force) force=1; shift ;;
    -h|--help) sed -n '2,66p' "$0"; exit 0 ;;
    *) echo "spert_published.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
cache="${MULTITAG_CACHE:-.cache}"
model="${model:-$cache/models/all-MiniLM-L6-v2}"
out="${out:-runs/spert-published/seed-$seed}"

[ -f "$spert_dir/spert.py" ] && [ -f "$spert_dir/spert/models.py" ] || {
  echo "spert_published.sh: $spert_dir is not a lavis-nlp/spert work tree (no spert.py, spert/models.py)" >&2
  echo "  export one: mkdir -p /tmp/spert && git -C /work/.mirror/lavis-nlp+spert/repo archive HEAD | tar -x -C /tmp/spert" >&2
  exit 1
}
for f in "$data/$train_file" "$data/conll04_dev.json" "$data/conll04_test.json" "$data/conll04_types.json"; do
  [ -f "$f" ] || { echo "spert_published.sh: no $f" >&2; exit 1; }
done
[ -f "$model/config.json" ] && [ -f "$model/tokenizer.json" ] || {
  echo "spert_published.sh: $model is no model directory (config.json, tokenizer.json; trainer fetch-model)" >&2
  exit 1
}

py="${PYTHON:-}"
if [ -z "$py" ]; then
  [ -x .cache/bench-venv/bin/python ] || bash bench/reference/setup.sh
  py=.cache/bench-venv/bin/python
fi
py="$(cd "$(dirname "$py")" && pwd)/$(basename "$py")"
spert_dir="$(cd "$spert_dir" && pwd)"
model="$(cd "$model" && pwd)"
data="$(cd "$data" && pwd)"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
# SpERT's config reader splits lines at '=' and values at spaces.
case "$out$model$data" in *[\ =]*) echo "spert_published.sh: paths with spaces or '=' break SpERT's config reader" >&2; exit 1 ;; esac

if [ -f "$out/test_scores.json" ] || [ -d "$out/log" ] || [ -d "$out/save" ]; then
  if [ "$force" = 1 ]; then
    rm -rf "$out/log" "$out/save" "$out/work" "$out/test_scores.json" "$out/train.log" "$out/eval.log"
  else
    echo "spert_published.sh: $out holds an earlier run; --force replaces it" >&2
    exit 1
  fi
fi
work="$out/work"
mkdir -p "$work/shim" "$work/tokenizer" "$work/data"

# scikit-learn for their evaluator, beside (not in) the bench venv.
pydeps="$(mkdir -p "$cache" && cd "$cache" && pwd)/spert-published-pydeps"
if ! PYTHONPATH="$pydeps" "$py" -c 'import sklearn.metrics' 2>/dev/null; then
  echo "installing scikit-learn into $pydeps (their evaluator needs it) ..." >&2
  "$py" -m pip install -q --disable-pip-version-check --target "$pydeps" scikit-learn >&2
fi

# ---------------------------------------------------------------------------------------------
# The shims (see the header).
cat >"$work/shim/sitecustomize.py" <<'PY'
"""Run-time compatibility shims for lavis-nlp/spert on torch 2 / transformers 5, written by
multitag's bench/reference/spert_published.sh (its header says what each is for). Nothing of
SpERT's is edited: modules are patched right after they are imported."""
import importlib.abc
import importlib.machinery
import math
import os
import sys

if os.environ.get("SPERT_PYDEPS"):
    sys.path.append(os.environ["SPERT_PYDEPS"])  # after site-packages: scikit-learn and its deps


def _adamw_class():
    import torch

    class AdamW(torch.optim.Optimizer):
        """transformers 4.x's AdamW (removed in transformers 5), same defaults and update."""

        def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0, correct_bias=True):
            if lr < 0.0:
                raise ValueError(f"Invalid learning rate: {lr} - should be >= 0.0")
            if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
                raise ValueError(f"Invalid beta parameters: {betas}")
            if eps < 0.0:
                raise ValueError(f"Invalid epsilon value: {eps} - should be >= 0.0")
            defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, correct_bias=correct_bias)
            super().__init__(params, defaults)

        @torch.no_grad()
        def step(self, closure=None):
            loss = None
            if closure is not None:
                with torch.enable_grad():
                    loss = closure()
            for group in self.param_groups:
                beta1, beta2 = group["betas"]
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    grad = p.grad
                    if grad.is_sparse:
                        raise RuntimeError("Adam does not support sparse gradients, please consider SparseAdam instead")
                    state = self.state[p]
                    if len(state) == 0:
                        state["step"] = 0
                        state["exp_avg"] = torch.zeros_like(p)
                        state["exp_avg_sq"] = torch.zeros_like(p)
                    exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                    state["step"] += 1
                    exp_avg.mul_(beta1).add_(grad, alpha=1.0 - beta1)
                    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
                    denom = exp_avg_sq.sqrt().add_(group["eps"])
                    step_size = group["lr"]
                    if group["correct_bias"]:
                        bias_correction1 = 1.0 - beta1 ** state["step"]
                        bias_correction2 = 1.0 - beta2 ** state["step"]
                        step_size = step_size * math.sqrt(bias_correction2) / bias_correction1
                    p.addcdiv_(exp_avg, denom, value=-step_size)
                    # decoupled weight decay, after the update (transformers 4.x's order)
                    if group["weight_decay"] > 0.0:
                        p.add_(p, alpha=-group["lr"] * group["weight_decay"])
            return loss

    return AdamW


def _has(module, name):
    try:
        getattr(module, name)
        return True
    except (ImportError, AttributeError):
        return False


def _patch_transformers(module):
    if not _has(module, "AdamW"):
        module.AdamW = _adamw_class()
    if not _has(module, "get_linear_schedule_with_warmup"):
        from transformers.optimization import get_linear_schedule_with_warmup

        module.get_linear_schedule_with_warmup = get_linear_schedule_with_warmup


def _patch_spert_models(module):
    from transformers import PreTrainedModel

    def init_weights(self):
        if not hasattr(self, "all_tied_weights_keys"):
            self.post_init()  # transformers 5: registers the tied keys, then calls init_weights()
        else:
            PreTrainedModel.init_weights(self)

    module.SpERT.init_weights = init_weights


def _patch_spert_util(module):
    original = module.check_version

    def check_version(config, model_class, model_path):
        bin_path = os.path.join(model_path, "pytorch_model.bin")
        st_path = os.path.join(model_path, "model.safetensors")
        if os.path.isdir(model_path) and not os.path.exists(bin_path) and os.path.exists(st_path):
            from safetensors import safe_open

            with safe_open(st_path, "pt") as f:
                keys = set(f.keys())
            loaded_version = config.to_dict().get("spert_version", "1.0")
            if "rel_classifier.weight" in keys and loaded_version != model_class.VERSION:
                raise Exception(
                    "Current SpERT version (%s) does not match the version of the loaded model (%s). "
                    "Use the code matching your version or train a new model." % (model_class.VERSION, loaded_version)
                )
            return
        return original(config, model_class, model_path)

    module.check_version = check_version


_PATCHES = {
    "transformers": _patch_transformers,
    "spert.models": _patch_spert_models,
    "spert.util": _patch_spert_util,
}


class _PatchAfterImport(importlib.abc.MetaPathFinder):
    """Finds the modules in _PATCHES as usual and patches each right after it has executed."""

    def find_spec(self, name, path, target=None):
        patch = _PATCHES.get(name)
        if patch is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            patch(sys.modules.get(name, module))  # transformers swaps in a lazy module

        spec.loader.exec_module = exec_and_patch
        return spec


sys.meta_path.insert(0, _PatchAfterImport())
PY

# ---------------------------------------------------------------------------------------------
# Tokenizer directory, truncated data, and the tokenization check.
lowercase="$("$py" - "$model" "$work/tokenizer" "$data" "$work/data" "$train_file" "${train_limit:-0}" \
  "${valid_limit:-0}" "${test_limit:-0}" <<'PY'
import json, os, sys
model, tok_dir, data, out_data, train_file = sys.argv[1:6]
limits = dict(zip((train_file, "conll04_dev.json", "conll04_test.json"), map(int, sys.argv[6:9])))
spec = json.load(open(os.path.join(model, "tokenizer.json"), encoding="utf-8"))
if spec["model"]["type"] != "WordPiece":
    sys.exit(f"{model}/tokenizer.json: a {spec['model']['type']} model; SpERT's BertTokenizer needs WordPiece")
norm = spec.get("normalizer") or {}
lower = bool(norm.get("lowercase", False))
if os.path.exists(os.path.join(model, "vocab.txt")):
    tok_dir = model
else:
    vocab = spec["model"]["vocab"]
    ids = sorted(vocab.values())
    if ids != list(range(len(ids))):
        sys.exit("tokenizer.json's vocabulary ids are not 0..n-1: no vocab.txt can be derived")
    with open(os.path.join(tok_dir, "vocab.txt"), "w", encoding="utf-8") as f:
        for token, _ in sorted(vocab.items(), key=lambda kv: kv[1]):
            f.write(token + "\n")
for name, limit in limits.items():
    if limit > 0:
        docs = json.load(open(os.path.join(data, name), encoding="utf-8"))[:limit]
        json.dump(docs, open(os.path.join(out_data, name), "w", encoding="utf-8"))
# Every word, tokenized as SpERT does (BertTokenizer, one word at a time, [UNK] for none) and as
# tokenizer.json does it for `trainer` (pre-split words, no special tokens).
import logging
logging.disable(logging.WARNING)
from tokenizers import Tokenizer
from transformers import BertTokenizer
ours = Tokenizer.from_file(os.path.join(model, "tokenizer.json"))
ours.no_padding()
ours.no_truncation()
theirs = BertTokenizer.from_pretrained(tok_dir, do_lower_case=lower)
unk = theirs.convert_tokens_to_ids("[UNK]")
words = differ = 0
for name in limits:
    for doc in json.load(open(os.path.join(data, name), encoding="utf-8")):
        enc = ours.encode(doc["tokens"], is_pretokenized=True, add_special_tokens=False)
        per_word = [[] for _ in doc["tokens"]]
        for i, w in zip(enc.ids, enc.word_ids):
            if w is not None:
                per_word[w].append(i)
        for w, token in enumerate(doc["tokens"]):
            a = theirs.encode(token, add_special_tokens=False) or [unk]
            words += 1
            differ += a != (per_word[w] or [unk])
print(f"tokenization check: {words} words, {differ} tokenized differently (lowercase={lower})", file=sys.stderr)
if differ:
    sys.exit("SpERT's tokenizer and tokenizer.json disagree: the runs would not share an input")
print("true" if lower else "false")
print(tok_dir)
PY
)"
tok_dir="$(echo "$lowercase" | sed -n 2p)"
lowercase="$(echo "$lowercase" | sed -n 1p)"
file_of() { # the data file SpERT reads: the truncated copy where a limit applies
  if [ -f "$work/data/$1" ]; then echo "$work/data/$1"; else echo "$data/$1"; fi
}

cat >"$work/train.conf" <<EOF
[1]
label = conll04_train
model_type = spert
model_path = $model
tokenizer_path = $tok_dir
train_path = $(file_of "$train_file")
valid_path = $(file_of conll04_dev.json)
types_path = $data/conll04_types.json
train_batch_size = 2
eval_batch_size = 1
neg_entity_count = 100
neg_relation_count = 100
epochs = $epochs
lr = 5e-5
lr_warmup = 0.1
weight_decay = 0.01
max_grad_norm = 1.0
rel_filter_threshold = 0.4
size_embedding = 25
prop_drop = 0.1
max_span_size = 10
store_predictions = true
store_examples = true
sampling_processes = $sampling
max_pairs = 1000
final_eval = true
log_path = $out/log
save_path = $out/save
seed = $seed
cpu = true
lowercase = $lowercase
EOF

env_run=(env PYTHONPATH="$work/shim" SPERT_PYDEPS="$pydeps" TRANSFORMERS_VERBOSITY=error PYTHONWARNINGS=ignore)
[ -n "$threads" ] && env_run+=(OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads")

echo "== SpERT train (seed $seed, $epochs epochs, $(file_of "$train_file")) -> $out/train.log" >&2
start=$(date +%s%N)
(cd "$spert_dir" && "${env_run[@]}" "$py" spert.py train --config "$work/train.conf") 2>&1 | tee "$out/train.log"
train_ns=$(($(date +%s%N) - start))
final_model="$(ls -d "$out"/save/conll04_train/*/final_model 2>/dev/null | tail -1)"
[ -n "$final_model" ] && [ -f "$final_model/config.json" ] || {
  echo "spert_published.sh: training left no final model under $out/save (see $out/train.log)" >&2
  exit 1
}

cat >"$work/eval.conf" <<EOF
[1]
label = conll04_eval
model_type = spert
model_path = $final_model
tokenizer_path = $tok_dir
dataset_path = $(file_of conll04_test.json)
types_path = $data/conll04_types.json
eval_batch_size = 1
rel_filter_threshold = 0.4
size_embedding = 25
prop_drop = 0.1
max_span_size = 10
store_predictions = true
store_examples = true
sampling_processes = $sampling
max_pairs = 1000
log_path = $out/log
seed = $seed
cpu = true
lowercase = $lowercase
EOF

echo "== SpERT eval on $(file_of conll04_test.json) -> $out/eval.log" >&2
start=$(date +%s%N)
(cd "$spert_dir" && "${env_run[@]}" "$py" spert.py eval --config "$work/eval.conf") 2>&1 | tee "$out/eval.log"
eval_ns=$(($(date +%s%N) - start))

# ---------------------------------------------------------------------------------------------
# test_scores.json from their CSVs and log.
"$py" - "$out" "$seed" "$epochs" "$(file_of "$train_file")" "$(file_of conll04_test.json)" "$train_ns" \
  "$eval_ns" "$spert_dir" "$model" <<'PY'
import csv, datetime, glob, json, os, re, sys
out, seed, epochs, train_path, test_path, train_s, eval_s, spert_dir, model = sys.argv[1:10]

def last_row(pattern):
    paths = sorted(glob.glob(os.path.join(out, pattern)))
    if not paths:
        sys.exit(f"no {pattern} under {out}")
    with open(paths[-1], newline="") as f:
        rows = list(csv.DictReader(f, delimiter=";", quotechar="|"))
    return {k: float(v) for k, v in rows[-1].items()}

def scores(row):
    part = lambda p: {
        avg: {m: row[f"{p}_{m2}_{avg}"] for m, m2 in (("precision", "prec"), ("recall", "rec"), ("f1", "f1"))}
        for avg in ("micro", "macro")
    }
    return {"entities": part("ner"), "relations_strict": part("rel_nec"), "relations_boundaries": part("rel")}

# Epoch seconds: from each "Train epoch: k" line of their log to the next epoch's or the evaluation's.
stamps = []
log = sorted(glob.glob(os.path.join(out, "log/conll04_train/*/all.log")))[-1]
for line in open(log, encoding="utf-8"):
    m = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*\]  (Train epoch: \d+|Evaluate: \w+)", line)
    if m:
        stamps.append((datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f"), m.group(2)))
epoch_seconds = [
    (b[0] - a[0]).total_seconds() for a, b in zip(stamps, stamps[1:]) if a[1].startswith("Train epoch")
]
# Steady state, from their progress bar (1 s resolution): batch 1 to the last batch of each epoch,
# which leaves out the start of the epoch's sampling processes (spawned anew every epoch: about
# half a minute on 2 busy cores) and the first step.
bars = {}
text = open(os.path.join(out, "train.log"), encoding="utf-8", errors="replace").read()
for m in re.finditer(r"Train epoch (\d+):\s+\d+%\|[^|]*\| (\d+)/(\d+) \[(?:(\d+):)?(\d+):(\d+)<", text):
    epoch, it, n = int(m.group(1)), int(m.group(2)), int(m.group(3))
    t = int(m.group(4) or 0) * 3600 + int(m.group(5)) * 60 + int(m.group(6))
    b = bars.setdefault(epoch, {})
    if it in (1, n) and it not in b:
        b[it] = (t, n)
steady = [
    (b[n][0] - b[1][0]) / ((n - 1) * 2)
    for b in bars.values()
    for n in [next(iter(b.values()))[1]]
    if 1 in b and n in b and n > 1
]
sentences = len(json.load(open(train_path, encoding="utf-8")))
updates = (sentences // 2) * 2  # drop_last batches of 2: sentences seen per epoch
result = {
    "what": "lavis-nlp/spert (published code), trained and evaluated by bench/reference/spert_published.sh",
    "spert_dir": spert_dir,
    "model": model,
    "seed": int(seed),
    "epochs": int(epochs),
    "train_file": train_path,
    "train_sentences": sentences,
    "test_file": test_path,
    "test": scores(last_row("log/conll04_eval/*/eval_test.csv")),
    "dev_after_last_epoch": scores(last_row("log/conll04_train/*/eval_valid.csv")),
    "epoch_seconds": epoch_seconds,
    "seconds_per_sentence": [s / max(updates, 1) for s in epoch_seconds],
    "steady_seconds_per_sentence": steady,
    "train_process_seconds": int(train_s) / 1e9,
    "eval_process_seconds": int(eval_s) / 1e9,
    "units": "scores in percent; relations_strict = SpERT's 'with NEC' (our relations_strict)",
}
with open(os.path.join(out, "test_scores.json"), "w", encoding="utf-8") as f:
    json.dump(result, f, indent=2)
t = result["test"]
print(
    f"test ({os.path.basename(test_path)}): entities F1 {t['entities']['micro']['f1']:.2f}, "
    f"relations F1 {t['relations_strict']['micro']['f1']:.2f} strict "
    f"({t['relations_boundaries']['micro']['f1']:.2f} boundaries only), micro; macro: "
    f"{t['entities']['macro']['f1']:.2f} / {t['relations_strict']['macro']['f1']:.2f}"
)
print(
    "epochs: " + ", ".join(f"{s:.1f} s" for s in epoch_seconds)
    + f" for {updates} sentences ({1e3 * epoch_seconds[0] / max(updates, 1):.0f} ms a sentence in epoch 1"
    + (f"; {1e3 * steady[0]:.0f} ms from its second batch to its last" if steady else "")
    + ")"
)
print(f"scores: {os.path.join(out, 'test_scores.json')}")
PY
