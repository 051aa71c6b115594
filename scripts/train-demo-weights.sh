#!/usr/bin/env bash
# Reproduce the fast (0.3 mm) demo weights of assets/weights, weights="demo-fast" (docs/demo-weights.md):
#   1. the demo synthetic cohort and seeds 1-3 of the same preset (generated once into the data folder),
#   2. GMIC trained on 128 px patches around the cohort's findings,
#   3. GMIC fine-tuned on whole 672 x 448 windows (image labels),
#   4. GMIC's global network pretrained on the findings' masks (256 px patches, --dense-target),
#   5. GMIC's last global stage, saliency, local network and fusion on whole windows of the frozen stages,
#   6. DMV (view-wise, image only): the last column stage and the heads on GMIC's frozen trunk.
# Usage: bash scripts/train-demo-weights.sh [OUT_DIR]   (default assets/weights; COHORT=tiny for a dry run)
# Runs on CUDA when present, else on the CPU (stages 4-6 took ~1.5 hours on 2 cores; stages 2-3 on the CPU
# are many hours at these epoch counts). Each phase stops at its epoch count, its patience, or its time
# budget in minutes (GMIC_PATCH_MIN, GMIC_FINE_MIN, GMIC_DENSE_MIN), whichever comes first; the
# checkpoints record the epochs actually run.
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

for seed in 0 1 2 3; do run phantom --preset "${COHORT:-demo}" --seed "$seed" --workers "$workers"; done
extra=(--extra-train "${COHORT:-demo}-1")
run train gmic "${common[@]}" "${gmic[@]}" --out "${PATCH_OUT:-$tmp}/gmic-patches.pt" --patch-size 128 --lr 0.001 \
    --batch-size 32 --samples-per-epoch 2048 --epochs "${GMIC_PATCH_EPOCHS:-56}" --patience 30 \
    --max-minutes "${GMIC_PATCH_MIN:-600}"
cp "${PATCH_OUT:-$tmp}"/gmic-patches-curves.* "$out/" 2>/dev/null || true
run train gmic "${common[@]}" "${gmic[@]}" --out "$tmp/gmic-windows.pt" --init "${PATCH_OUT:-$tmp}/gmic-patches.pt" \
    --lr 0.0002 --batch-size 8 --samples-per-epoch 416 --epochs "${GMIC_FINE_EPOCHS:-100}" --patience 30 \
    --max-minutes "${GMIC_FINE_MIN:-600}"
run train gmic "${common[@]}" "${gmic[@]}" "${extra[@]}" --extra-train "${COHORT:-demo}-2" \
    --extra-train "${COHORT:-demo}-3" --out "$tmp/gmic-dense.pt" --init "$tmp/gmic-windows.pt" --patch-size 256 \
    --dense-target --lr 0.0003 --batch-size 16 --samples-per-epoch 4000 --epochs "${GMIC_DENSE_EPOCHS:-8}" \
    --patience 8 --max-minutes "${GMIC_DENSE_MIN:-600}"
run train gmic "${common[@]}" "${gmic[@]}" "${extra[@]}" --out "$out/gmic-demo-fast.pt" --init "$tmp/gmic-dense.pt" \
    --freeze-trunk --unfreeze-stages 1 --saliency-target 1.0 --window-samples 1 --lr 0.0003 --ema 0.99 \
    --batch-size 8 --samples-per-epoch 1024 --epochs "${GMIC_TOP_EPOCHS:-8}" --patience 4
run train dmv "${common[@]}" "${extra[@]}" --out "$out/dmv-demo-fast.pt" --init-trunk "$out/gmic-demo-fast.pt" \
    --freeze-trunk --unfreeze-stages 1 --window-samples 2 --lr 0.0001 --batch-size 16 \
    --epochs "${DMV_EPOCHS:-20}" --patience 10
