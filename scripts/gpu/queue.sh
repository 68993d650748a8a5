#!/usr/bin/env bash
# Table 1's runs as a queue: one `trainer compare` process per variant and seed, at most PARALLEL
# at a time on the one GPU, seed-major so that whole seeds finish first. Runs already in a job's
# runs.jsonl are skipped. Started detached by scripts/gpu/compare.sh. A training step keeps the
# H100 busy (scripts/gpu/profile.sh), so more processes do not raise the total rate, and each
# holds up to 13 GB of GPU memory: ten at once ran out of memory.
set -uo pipefail
out=/tmp/mt/compare
parallel=${PARALLEL:-4}
variants=${VARIANTS:-baseline,triplet-bpr:0.03,triplet-bpr:0.1,triplet-bpr:0.3,triplet-bpr:1,triplet-sigmoid:1,infonce:0.1}
for seed in $(seq "${FIRST_SEED:-1}" "${LAST_SEED:-5}"); do
  for variant in ${variants//,/ }; do
    dir="$out/${variant//[:.]/_}-s$seed"
    [ -s "$dir/runs.jsonl" ] && continue
    while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do sleep 2; done
    echo "$(date +%T) start $variant seed $seed"
    RAYON_NUM_THREADS=2 "$TRAINER" compare --model "$BASE" --device cuda --out "$dir" \
      --first-seed "$seed" --seeds 1 --variants "$variant" > "$dir.log" 2>&1 &
  done
done
wait
echo "$(date +%T) queue done"
