#!/usr/bin/env bash
# Reproduce the demo weights of assets/weights (docs/demo-weights.md):
#   1. the demo synthetic cohort (generated once into the data folder),
#   2. GMIC trained on 128 px patches around the cohort's findings,
#   3. GMIC fine-tuned on whole 672 x 448 windows (image labels),
#   4. DMV (view-wise, image only) trained end to end from GMIC's trunk.
# Usage: bash scripts/train-demo-weights.sh [OUT_DIR]   (default assets/weights; COHORT=tiny for a dry run)
# Runs on CUDA when present (about 15 minutes on an H200 at the default epochs), else on the CPU (many hours). Each phase stops at its epoch count, its
# patience, or its time budget in minutes (GMIC_PATCH_MIN, GMIC_FINE_MIN, DMV_MIN), whichever comes first;
# the checkpoints record the epochs actually run.
# PATCH_OUT=DIR keeps the stage-1 (patch) checkpoint there instead of in a temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-assets/weights}
workers=${WORKERS:-$(nproc)}
mkdir -p "$out"
run() { echo "+ mammo-robust $*"; python3 -m core.cli "$@"; }
common=(--cohort "${COHORT:-demo}" --seed 0 --spacing-mm 0.3 --input-size 672x448 --workers "$workers"
        --threads "${THREADS:-$workers}")
gmic=(--K 4 --crop-shape 48x48)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

run phantom --preset "${COHORT:-demo}" --workers "$workers"
run train gmic "${common[@]}" "${gmic[@]}" --out "${PATCH_OUT:-$tmp}/gmic-patches.pt" --patch-size 128 --lr 0.001 \
    --batch-size 32 --samples-per-epoch 2048 --epochs "${GMIC_PATCH_EPOCHS:-56}" --patience 30 \
    --max-minutes "${GMIC_PATCH_MIN:-600}"
cp "${PATCH_OUT:-$tmp}"/gmic-patches-curves.* "$out/" 2>/dev/null || true
run train gmic "${common[@]}" "${gmic[@]}" --out "$out/gmic-demo.pt" --init "${PATCH_OUT:-$tmp}/gmic-patches.pt" \
    --lr 0.0002 --batch-size 8 --samples-per-epoch 416 --epochs "${GMIC_FINE_EPOCHS:-100}" --patience 30 \
    --max-minutes "${GMIC_FINE_MIN:-600}"
run train dmv "${common[@]}" --out "$out/dmv-demo.pt" --init-trunk "$out/gmic-demo.pt" --lr 0.0003 \
    --batch-size 8 --samples-per-epoch 416 --epochs "${DMV_EPOCHS:-14}" --patience 8 \
    --max-minutes "${DMV_MIN:-600}"
