#!/usr/bin/env bash
# Speed harness: runs `trainer bench` (ours) and the PyTorch / onnxruntime reference
# (bench/reference/reference.py) back to back on the same shapes and inputs, then prints one table:
# a row per workload and reference, ours, the reference, and the ratio ours / reference.
#
#   bench/run.sh [--device cpu|cuda] [--model DIR] [--tag-model DIR] [--titles FILE | --catalog FILE]
#                [--batch-size N] [--title-tokens N] [--description-tokens N] [--shapes fixed|natural]
#                [--steps N] [--warmup-steps N] [--tag-titles N] [--tag-titles-batch1 N]
#                [--repetitions N] [--workloads LIST] [--threads N] [--out DIR]
#                [--precision f32|bf16] [--matmul f32|int8|quantized] [--skip-ours] [--skip-reference]
#   bench/run.sh --relations [--data DIR] [--span-method spert] [--device ...] [--model DIR]
#                [--batch-size N] [--steps N] [--warmup-steps N] [--threads N] [--out DIR] [--skip-*]
#   bench/run.sh --binder [--train FILE] [--types FILE] [--device ...] [--model DIR]
#                [--batch-size N] [--steps N] [--warmup-steps N] [--threads N] [--out DIR] [--skip-*]
#
# --relations: the span/relation training step instead (SpERT): ours is `trainer bench --task
# relations --span-method spert --workloads train-relations --data DIR`, the reference SpERT's step
# as its published code runs it (reference.py's train-relations: transformers' BertModel, SpERT's
# sampling, model, loss and AdamW(correct_bias=False)); the first batch * (warmup + steps) sentences
# of DIR's *_train.json in file order (DIR default $MULTITAG_DATA/conll04), batch 2, each sentence
# at its own length. The reference samples each batch before its step, as SpERT's data loader does;
# ours samples inside the step. Reports land in runs/bench/DEVICE/relations by default.
#
# --binder: BINDER's training step instead: ours is `trainer bench --task binder --workloads
# train-binder --train FILE --types FILE`, the reference BINDER's step in PyTorch on our shapes
# (reference.py's train-binder: two transformers BertModels, text and type descriptions, BINDER's
# heads, scores and contrastive losses over our candidates with hard masks, torch.optim.AdamW
# at lr 3e-5 without weight decay); the first batch * (warmup + steps) sentences with an entity of
# FILE (token-per-line IOB2; default $MULTITAG_DATA/bc5cdr/train.tsv, types
# data/binder/bc5cdr_types.json) in file order, batch 8, each sentence whole at its own length,
# every type's description encoded each step. The reference builds each batch's candidates and
# loss rows before its step, as BINDER's collator does; ours builds them inside the step. Reports
# land in runs/bench/DEVICE/binder by default.
#
# --tag-model: the model our tagging workloads use (e.g. the q8_0 export in public/model, which is
# what onnxruntime int8 compares with); default --model with a fresh head.
# --matmul: how that exported model multiplies (default f32, dequantized at load; int8 is the
# like-for-like match for onnxruntime int8, and on CPUs with AVX-512 VNNI an 8-bit kernel).
# --precision: our training's compute precision (bf16: mixed precision, f32 master weights); the
# reference always runs f32 eager and, on CUDA, a tuned variant with bf16 autocast.
# Defaults: training batch 16 x 48 title tokens (descriptions 128) on CPU, 32 x 64 on CUDA; tagging
# the first 1,000 titles at batch 1 and 32; 5 timed training steps after 2 warm-up steps, 3 tagging
# repetitions. Input: the catalog ($MULTITAG_DATA/myntra_products/myntra_products_catalog.csv,
# MULTITAG_DATA defaulting to ../shared/data), or --titles FILE (one title a line) where there is no
# catalog (the GPU machine).
#
# Environment: TRAINER_BIN (our binary; default target/release/trainer, built if missing; on CUDA
# target/cuda/release/trainer when it exists), PYTHON (the reference's interpreter; default
# .cache/bench-venv/bin/python, created by bench/reference/setup.sh on CPU, and on CUDA
# /opt/torch/.venv/bin/python when present). Reports land in --out (default runs/bench/DEVICE):
# ours.json, reference.json, table.md.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

device=cpu model="" tag_model="" titles="" catalog="" batch="" title_tokens="" description_tokens=128
shapes=fixed steps=5 warmup=2 tag_titles=1000 tag_titles_batch1="" repetitions=3 out="" threads=""
workloads="train-multitask,train-ner,tag1,tag32" skip_ours=0 skip_reference=0 precision=f32 matmul=""
relations=0 data="" span_method=spert binder=0 train="" types=""
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    --tag-model) tag_model="$2"; shift 2 ;;
    --titles) titles="$2"; shift 2 ;;
    --catalog) catalog="$2"; shift 2 ;;
    --batch-size) batch="$2"; shift 2 ;;
    --title-tokens) title_tokens="$2"; shift 2 ;;
    --description-tokens) description_tokens="$2"; shift 2 ;;
    --shapes) shapes="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --warmup-steps) warmup="$2"; shift 2 ;;
    --tag-titles) tag_titles="$2"; shift 2 ;;
    --tag-titles-batch1) tag_titles_batch1="$2"; shift 2 ;;
    --repetitions) repetitions="$2"; shift 2 ;;
    --workloads) workloads="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --precision) precision="$2"; shift 2 ;;
    --matmul) matmul="$2"; shift 2 ;;
    --skip-ours) skip_ours=1; shift ;;
    --skip-reference) skip_reference=1; shift ;;
    --relations) relations=1; shift ;;
    --data) data="$2"; shift 2 ;;
    --span-method) span_method="$2"; shift 2 ;;
    --binder) binder=1; shift ;;
    --train) train="$2"; shift 2 ;;
    --types) types="$2"; shift 2 ;;
    -h|--help) sed -n '2,51p' "$0"; exit 0 ;;
    *) echo "bench/run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ "$relations" = 1 ]; then
  workloads=train-relations
  batch="${batch:-2}"
  data="${data:-${MULTITAG_DATA:-../shared/data}/conll04}"
  [ -d "$data" ] || { echo "bench/run.sh: no relation data directory $data (--data DIR)" >&2; exit 1; }
fi
if [ "$binder" = 1 ]; then
  [ "$relations" = 0 ] || { echo "bench/run.sh: --relations or --binder, not both" >&2; exit 2; }
  workloads=train-binder
  batch="${batch:-8}"
  train="${train:-${MULTITAG_DATA:-../shared/data}/bc5cdr/train.tsv}"
  types="${types:-data/binder/bc5cdr_types.json}"
  [ -f "$train" ] || { echo "bench/run.sh: no BINDER training file $train (--train FILE)" >&2; exit 1; }
  [ -f "$types" ] || { echo "bench/run.sh: no BINDER types file $types (--types FILE)" >&2; exit 1; }
fi
case "$device" in
  cpu) batch="${batch:-16}" title_tokens="${title_tokens:-48}" ;;
  cuda) batch="${batch:-32}" title_tokens="${title_tokens:-64}" ;;
  *) echo "bench/run.sh: --device cpu or cuda" >&2; exit 2 ;;
esac
model="${model:-${MULTITAG_CACHE:-.cache}/models/all-MiniLM-L6-v2}"
tag_titles_batch1="${tag_titles_batch1:-$tag_titles}"
if [ "$relations" = 1 ]; then
  out="${out:-runs/bench/$device/relations}"
elif [ "$binder" = 1 ]; then
  out="${out:-runs/bench/$device/binder}"
else
  out="${out:-runs/bench/$device}"
fi
mkdir -p "$out"

# Input: the same titles (and descriptions) for both sides.
input=()
if [ "$relations" = 1 ] || [ "$binder" = 1 ]; then
  : # the relation data's or BINDER's training file, not the catalog
elif [ -n "$titles" ]; then
  input=(--titles "$titles")
else
  catalog="${catalog:-${MULTITAG_DATA:-../shared/data}/myntra_products/myntra_products_catalog.csv}"
  if [ ! -f "$catalog" ]; then
    echo "bench/run.sh: no catalog at $catalog; pass --titles FILE or set MULTITAG_DATA" >&2
    exit 1
  fi
  input=(--catalog "$catalog")
fi
[ -d "$model" ] || { echo "bench/run.sh: no model directory $model (trainer fetch-model)" >&2; exit 1; }

# Our binary.
bin="${TRAINER_BIN:-}"
if [ -z "$bin" ] && [ "$device" = cuda ] && [ -x target/cuda/release/trainer ]; then
  bin=target/cuda/release/trainer
fi
if [ -z "$bin" ]; then
  bin="${CARGO_TARGET_DIR:-target}/release/trainer"
  if [ "$skip_ours" = 0 ] && [ ! -x "$bin" ]; then
    echo "building $bin ..." >&2
    cargo build --release -p multitag-trainer >&2
  fi
fi
if [ "$device" = cuda ]; then
  # The CUDA build links libcublas etc. dynamically; on the GPU machine they come with its PyTorch.
  for lib in /opt/torch/.venv/lib/python3*/site-packages/nvidia/cu13/lib; do
    [ -d "$lib" ] && export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  done
fi

# The reference's Python.
py="${PYTHON:-}"
if [ -z "$py" ]; then
  if [ -x .cache/bench-venv/bin/python ]; then
    py=.cache/bench-venv/bin/python
  elif [ "$device" = cuda ] && [ -x /opt/torch/.venv/bin/python ]; then
    py=/opt/torch/.venv/bin/python
  elif [ "$skip_reference" = 0 ]; then
    bash bench/reference/setup.sh
    py=.cache/bench-venv/bin/python
  fi
fi
if [ "$device" = cpu ] && [ -n "$py" ]; then
  bash bench/reference/setup.sh >/dev/null 2>&1 || true # no-op when up to date
fi

# GPU memory per process, sampled by nvidia-smi while the two runs go.
smi_pid=""
if [ "$device" = cuda ] && command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits -lms 200 >"$out/gpu-memory.csv" 2>/dev/null &
  smi_pid=$!
fi
trap '[ -n "$smi_pid" ] && kill "$smi_pid" 2>/dev/null || true' EXIT

common=(--device "$device" --model "$model" --batch-size "$batch" --title-tokens "$title_tokens"
  --description-tokens "$description_tokens" --shapes "$shapes" --steps "$steps"
  --warmup-steps "$warmup" --tag-titles "$tag_titles" --tag-titles-batch1 "$tag_titles_batch1"
  --repetitions "$repetitions" --workloads "$workloads")
ours_task=() ref_task=()
if [ "$relations" = 1 ]; then
  ours_task=(--task relations --data "$data" --span-method "$span_method")
  ref_task=(--data "$data" --span-method "$span_method")
elif [ "$binder" = 1 ]; then
  ours_task=(--task binder --train "$train" --types "$types")
  ref_task=(--binder-train "$train" --binder-types "$types")
fi
ours_pid="" ref_pid=""
if [ "$skip_ours" = 0 ]; then
  echo "== ours: $bin bench ${common[*]} ${ours_task[*]} ${input[*]}" >&2
  threads_env=()
  [ -n "$threads" ] && threads_env=(RAYON_NUM_THREADS="$threads")
  ours_extra=(--precision "$precision")
  [ -n "$tag_model" ] && ours_extra+=(--tag-model "$tag_model")
  [ -n "$matmul" ] && ours_extra+=(--matmul "$matmul")
  env "${threads_env[@]}" "$bin" bench "${common[@]}" "${ours_task[@]}" "${input[@]}" "${ours_extra[@]}" --json "$out/ours.json" &
  ours_pid=$!
  wait "$ours_pid"
fi
if [ "$skip_reference" = 0 ]; then
  echo "== reference: $py bench/reference/reference.py ${common[*]} ${ref_task[*]} ${input[*]}" >&2
  extra=()
  [ -n "$threads" ] && extra=(--threads "$threads")
  TRANSFORMERS_VERBOSITY=error PYTHONWARNINGS=ignore "$py" bench/reference/reference.py "${common[@]}" "${ref_task[@]}" "${input[@]}" "${extra[@]}" --json "$out/reference.json" &
  ref_pid=$!
  wait "$ref_pid"
fi

gpu_args=()
if [ -n "$smi_pid" ]; then
  kill "$smi_pid" 2>/dev/null || true
  wait "$smi_pid" 2>/dev/null || true
  smi_pid=""
  "$py" - "$out/gpu-memory.csv" "$ours_pid" "$ref_pid" >"$out/gpu-memory.json" <<'PY'
import json, sys
peak = {}
for line in open(sys.argv[1]):
    parts = [p.strip() for p in line.split(",")]
    if len(parts) == 2 and parts[1].isdigit():
        peak[parts[0]] = max(peak.get(parts[0], 0), int(parts[1]))
print(json.dumps({"ours": peak.get(sys.argv[2]), "reference": peak.get(sys.argv[3])}))
PY
  gpu_args=("$out/gpu-memory.json")
fi

if [ -f "$out/ours.json" ] && [ -f "$out/reference.json" ]; then
  "${py:-python3}" bench/table.py "$out/ours.json" "$out/reference.json" "${gpu_args[@]}" | tee "$out/table.md"
fi
