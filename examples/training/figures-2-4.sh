#!/usr/bin/env bash
# The study's training experiments on the synthetic demo cohort (docs/training-experiments.md):
#   Figure 2: AUC against the low-pass radius R for the checkpoints of one training run;
#   Figure 4: GMIC trained on low-pass-filtered images (R = 0.5 cycles/mm, in training and validation) against
#             GMIC trained on unperturbed images, over the same sweep, with paired DeLong tests per R.
# Two designs:
#   top:   a new GMIC top (last global stage, saliency layer, local network, attention, fusion) trained on the
#          frozen stages 0-3 of the shipped demo GMIC's trunk, 12 epochs of 512 windows, on unperturbed and on
#          filtered images (same seed, same steps): Figure 2 from both runs' checkpoints, Figure 4a;
#   whole: every layer of the shipped demo GMIC fine-tuned for 6 epochs of 416 whole windows, on filtered and
#          on unperturbed images (same seed, same steps): Figure 4b, and a third checkpoint series (Figure 2).
# Usage: bash examples/training/figures-2-4.sh [WORK_DIR]   (default: <data folder>/training-experiments)
# Checkpoints and scores stay in WORK_DIR (outside git); figures land in WORK_DIR/figure2-*, WORK_DIR/figure4-*.
# Resumable: a training whose kept checkpoint exists, and a scoring whose CSV exists, are skipped, so a second
# call after an interruption (or after editing the figure steps) redoes only what is missing.
# Variables (the defaults are what docs/training-experiments.md shows):
#   EPOCHS="1 2 3 4 6 8 12"  checkpoints of the unperturbed top run scored for Figure 2
#   FILTERED_EPOCHS="1 2 4 8 12"  checkpoints of the filtered top run scored for Figure 2
#   RADIUS=0.5               the training filter (cycles/mm)
#   THREADS=1                torch threads per training (two trainings run at once)
# Measured cost (2 CPU cores shared with other jobs, demo cohort already generated): the two top runs together
# 47-50 min wall (~8 CPU-minutes each; 90-250 s preprocessing, ~500 s trunk outputs, then 1.5-5 min per epoch);
# the whole-network runs 15-31 min each, at the same time (they reuse the top runs' cached crops); 2-12 min per
# scored checkpoint (1656 scores: 184 test images x 9 conditions; ~2 CPU-minutes), 20 scorings; the reports
# 2 min; ~4 h in all on that machine. `mammo-robust phantom --preset demo` takes ~2.5 min and 5.8 GB (once).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1
data=$(python3 -c "from core.paths import data_dir; print(data_dir())")
work=${1:-$data/training-experiments}
radius=${RADIUS:-0.5}
tag=$(echo "$radius" | tr -d .)
epochs=${EPOCHS:-1 2 3 4 6 8 12}
filtered_epochs=${FILTERED_EPOCHS:-1 2 4 8 12}
sweep=examples/training/lowpass-sweep.toml
mkdir -p "$work/scores"
mr() { echo "+ mammo-robust $*"; python3 -m core.cli "$@"; }
train() {  # train OUT LOG ARGS...: one training in the background, skipped when its kept checkpoint exists
    local out=$1 log=$2
    shift 2
    if [ -f "$out" ]; then echo "have $out"; else mr train gmic "$@" --out "$out" > "$log" 2>&1 & fi
}

mr phantom --preset demo --seed 0
common=(--cohort demo --epochs 12 --seed 0 --init-trunk assets/weights/gmic-demo-fast.pt --freeze-trunk
        --unfreeze-stages 1 --saliency-target 1.0 --window-samples 1 --lr 0.0003 --ema 0.99 --batch-size 8
        --samples-per-epoch 512 --patience 12 --save-every 1 --K 4 --crop-shape 48x48 --spacing-mm 0.3
        --input-size 672x448 --threads "${THREADS:-1}" --workers 1)
clean=$work/gmic-top-clean.pt
filtered=$work/gmic-top-lowpass$tag.pt
train "$clean" "$work/train-clean.log" "${common[@]}"
train "$filtered" "$work/train-lowpass$tag.log" "${common[@]}" --augment "lowpass:$radius" --augment-prob 1.0
wait
finetune=(--cohort demo --epochs 6 --seed 0 --init assets/weights/gmic-demo-fast.pt --saliency-target 1.0 --lr 0.0001
          --ema 0.99 --batch-size 8 --samples-per-epoch 416 --patience 6 --save-every 2 --K 4 --crop-shape 48x48
          --spacing-mm 0.3 --input-size 672x448 --threads "${THREADS:-1}" --workers 1)
train "$work/gmic-ft-lowpass$tag.pt" "$work/train-ft-lowpass$tag.log" "${finetune[@]}" \
    --augment "lowpass:$radius" --augment-prob 1.0
train "$work/gmic-ft-clean.pt" "$work/train-ft-clean.log" "${finetune[@]}"
wait

score() {  # score WEIGHTS CSV: the low-pass sweep on the demo test split, exported (skipped if CSV exists)
    local id
    if [ -f "$2" ]; then echo "have $2"; return; fi
    id=$(basename "$2" .csv)-$(date +%s)
    mr run "$sweep" --weights "$1" --run-id "$id" --quiet
    mr run --export "$id" "$2"
}
for e in $epochs; do
    name=$(printf 'gmic-top-clean-epoch%02d' "$e")
    score "$work/$name.pt" "$work/scores/$name.csv"
done
for e in $filtered_epochs; do
    name=$(printf "gmic-top-lowpass$tag-epoch%02d" "$e")
    score "$work/$name.pt" "$work/scores/$name.csv"
done
for e in 0 2 4 6; do  # epoch 0: the shipped demo GMIC, the starting state of the run
    name=$(printf "gmic-ft-lowpass$tag-epoch%02d" "$e")
    score "$work/$name.pt" "$work/scores/$name.csv"
done
score "$work/gmic-ft-clean-epoch06.pt" "$work/scores/gmic-ft-clean-epoch06.csv"  # same steps as the filtered run
score "$clean" "$work/scores/gmic-top-clean.csv"
score "$filtered" "$work/scores/gmic-top-lowpass$tag.csv"
score demo-fast "$work/scores/gmic-demo.csv"

# Figure 2: one table per training run holding its checkpoints (the report draws checkpoints_<level>.png)
python3 - "$work/scores" "$tag" <<'EOF'
import sys
from pathlib import Path

import pandas as pd

folder, tag = Path(sys.argv[1]), sys.argv[2]
for run in ("gmic-top-clean", f"gmic-top-lowpass{tag}", f"gmic-ft-lowpass{tag}"):
    parts = sorted(folder.glob(f"{run}-epoch*.csv"))
    pd.concat([pd.read_csv(p) for p in parts]).to_csv(folder / f"{run}-checkpoints.csv", index=False)
EOF
for run in gmic-top-clean "gmic-top-lowpass$tag" "gmic-ft-lowpass$tag"; do
    mr report "$work/scores/$run-checkpoints.csv" --out "$work/figure2-$run" --group weights --input-spacing-mm 0.3
done
# Figure 4: filtered-trained against normally trained, paired DeLong per R on the shared images
mr report "$work/scores/gmic-top-clean.csv" "$work/scores/gmic-top-lowpass$tag.csv" --out "$work/figure4-top" \
    --labels "top trained unperturbed,top trained low-pass R=$radius" --level image --input-spacing-mm 0.3
mr report "$work/scores/gmic-ft-clean-epoch06.csv" "$work/scores/gmic-ft-lowpass$tag-epoch06.csv" \
    "$work/scores/gmic-demo.csv" --out "$work/figure4-whole" --level image --input-spacing-mm 0.3 \
    --labels "fine-tuned unperturbed,fine-tuned low-pass R=$radius,shipped demo GMIC (start)"
