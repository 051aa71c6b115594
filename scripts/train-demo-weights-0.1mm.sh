#!/usr/bin/env bash
# Demo weights at the study's resolution (issue 17; plan and cost in docs/demo-weights-0.1mm.md): GMIC and DMV
# trained on the synthetic cohort at its native 0.1 mm, with the official geometry and NYU constants:
# GMIC 2944 x 1920 windows, K = 6 patches of 256 x 256; DMV CC 2677 x 1942, MLO 2974 x 1748.
#   stage 0  cohorts: demo seed 0 (train/val/test) and the EXTRA seeds (training images), generated once;
#   stage 1  dense:  GMIC's global network and saliency layer on 256 px cuts against the findings' masks
#                    (--dense-target; a cut costs the same as at 0.3 mm and covers 25.6 mm of breast);
#   stage 2  top:    the last global stage, saliency layer, local network and fusion on whole windows of the
#                    frozen stages 0-3 of stage 1, with saliency targets and weight averaging;
#   stage 3  whole:  every layer on whole augmented windows from stage 2 (the most expensive stage: give it
#                    the GPU; WHOLE_EPOCHS=0 skips it and stage 2 is the GMIC);
#   stage 4  dmv:    DMV's last column stage and heads on the frozen trunk of the final GMIC.
# Usage: bash scripts/train-demo-weights-0.1mm.sh [--smoke] [--dry-run] [WORK_DIR]
#   WORK_DIR (default <data folder>/demo-weights-0.1mm, or ...-smoke) holds every stage's checkpoint, curves
#   and log, outside git. Resumable by stage: a stage whose checkpoint exists is skipped, so a second call
#   after an interruption (or in a later session) redoes only what is missing. Within a stage, a time budget
#   (DENSE_MIN, TOP_MIN, WHOLE_MIN, DMV_MIN: minutes) ends it after the epoch that passes it, with the best
#   epoch so far kept. Nothing is copied into assets/: the last lines say how to install the results.
#   --smoke    every stage for a few steps on the tiny cohort (tiny samples; checks the chain, not the AUC)
#   --dry-run  print the commands without running them (a stage prints even when its checkpoint exists)
# Runs on CUDA when present (train --device auto), else on the CPU with THREADS torch threads.
# Variables: EXTRA="1" (extra training seeds; "" none), THREADS (default 1 on the CPU), WORKERS (default nproc),
#   UNTIL=dense|top|whole (stop after that stage, e.g. a GPU run of stages 2-3), *_EPOCHS, *_SAMPLES per
#   stage, DMV_WINDOW_SAMPLES (noisy cached windows per DMV image, default 2), DENSE_TRUNK (a dense stage
#   made elsewhere, as its trunk alone: the top stage starts from it with --init-trunk),
#   GEOMETRY=official|reduced (reduced: 0.4 mm, windows / 4, patches 64 px; for the smoke test only),
#   COHORT (default demo; tiny with --smoke), RESUME=1 (top and whole keep their state every epoch: a time
#   budget pauses such a stage and ends the recipe, the next call continues it; for CPU sessions).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
smoke=0
dry=0
work=
for arg in "$@"; do
    case $arg in
        --smoke) smoke=1 ;;
        --dry-run) dry=1 ;;
        -*) echo "unknown option $arg" >&2; exit 2 ;;
        *) work=$arg ;;
    esac
done
data=$(python3 -c "from core.paths import data_dir; print(data_dir())")
if [ "$smoke" = 1 ]; then
    cohort=${COHORT:-tiny}
    work=${work:-$data/demo-weights-0.1mm-smoke}
    # a few steps per stage: 2 epochs (resume and epoch logic), 4 samples per epoch
    : "${DENSE_EPOCHS:=1}" "${DENSE_SAMPLES:=4}" "${TOP_EPOCHS:=2}" "${TOP_SAMPLES:=4}" "${WHOLE_EPOCHS:=1}"
    : "${WHOLE_SAMPLES:=2}" "${DMV_EPOCHS:=2}" "${DMV_SAMPLES:=4}" "${TEST_SAMPLES:=1}" "${BATCH:=2}"
else
    cohort=${COHORT:-demo}
    work=${work:-$data/demo-weights-0.1mm}
fi
extra_seeds=${EXTRA-1}
workers=${WORKERS:-$(nproc)}
threads=${THREADS:-1}
if [ "${GEOMETRY:-official}" = reduced ]; then
    geometry=(--spacing-mm 0.4 --input-size 736x480)
    gmic=(--K 6 --crop-shape 64x64)
    dmv_size=(--spacing-mm 0.4 --input-size 669x485 --input-size-mlo 743x437)
else
    geometry=(--spacing-mm 0.1 --input-size 2944x1920)
    gmic=(--K 6 --crop-shape 256x256)
    dmv_size=(--spacing-mm 0.1 --input-size 2677x1942 --input-size-mlo 2974x1748)
fi
[ "$dry" = 1 ] || mkdir -p "$work"
mr() { echo "+ mammo-robust $*"; [ "$dry" = 1 ] || python3 -m core.cli "$@"; }
stage() {  # stage NAME OUT ARGS...: one training, skipped when its checkpoint exists; log in WORK/NAME.log
    local name=$1 out=$2
    shift 2
    # done: its checkpoint exists and no paused state beside it (train --resume keeps <stem>.resume.pt
    # while a time budget has only paused the stage; the same command then continues it)
    if [ -f "$out" ] && [ ! -f "${out%.pt}.resume.pt" ] && [ "$dry" = 0 ]; then
        echo "stage $name: have $out"
        return
    fi
    echo "stage $name -> $out"
    if [ "$dry" = 1 ]; then mr train "$@" --out "$out"; return; fi
    # a killed stage reruns: from its last finished epoch with RESUME=1 (top, whole), else from the start
    mr train "$@" --out "$out" 2>&1 | tee -a "$work/$name.log"
    if [ -f "${out%.pt}.resume.pt" ]; then
        echo "stage $name paused by its time budget; run the recipe again to continue it"
        exit 0
    fi
}
until_done() {  # after stage NAME: stop here when UNTIL names it
    if [ "${UNTIL:-}" = "$1" ]; then echo "stopped after stage $1 (UNTIL=$1)"; exit 0; fi
}
budget() { [ -n "${1:-}" ] && echo "--max-minutes $1" || true; }

resume=()
[ "${RESUME:-0}" = 1 ] && resume=(--resume)
extra=()
mr phantom --preset "$cohort" --seed 0 --workers "$workers"
for seed in $extra_seeds; do
    mr phantom --preset "$cohort" --seed "$seed" --workers "$workers"
    extra+=(--extra-train "$cohort-$seed")
done
common=(--cohort "$cohort" --seed 0 --workers "$workers" --threads "$threads" --channels-last "${geometry[@]}")

dense=$work/gmic-dense.pt
if [ -n "${DENSE_TRUNK:-}" ]; then
    # a dense stage run elsewhere, kept as its trunk alone (core.training.checkpoints.write_trunk)
    echo "stage dense: trunk from $DENSE_TRUNK"
    dense_init=(--init-trunk "$DENSE_TRUNK")
else
    # shellcheck disable=SC2046
    stage dense "$dense" gmic "${common[@]}" "${gmic[@]}" "${extra[@]}" --patch-size 256 --dense-target \
        --lr 0.0003 --batch-size "${DENSE_BATCH:-16}" --samples-per-epoch "${DENSE_SAMPLES:-4000}" \
        --epochs "${DENSE_EPOCHS:-8}" --patience 8 $(budget "${DENSE_MIN:-}")
    dense_init=(--init "$dense")
fi
until_done dense

top=$work/gmic-top.pt
# shellcheck disable=SC2046
stage top "$top" gmic "${common[@]}" "${gmic[@]}" "${extra[@]}" "${dense_init[@]}" --freeze-trunk \
    --unfreeze-stages 1 --saliency-target 1.0 --window-samples "${TOP_WINDOW_SAMPLES:-0}" --lr 0.0003 \
    --ema 0.99 --batch-size "${BATCH:-8}" --samples-per-epoch "${TOP_SAMPLES:-1024}" \
    --epochs "${TOP_EPOCHS:-8}" --patience 4 "${resume[@]}" $(budget "${TOP_MIN:-}")
until_done top

gmic_final=$top
if [ "${WHOLE_EPOCHS:-6}" -gt 0 ]; then
    gmic_final=$work/gmic-whole.pt
    # shellcheck disable=SC2046
    stage whole "$gmic_final" gmic "${common[@]}" "${gmic[@]}" "${extra[@]}" --init "$top" \
        --saliency-target 1.0 --lr 0.0001 --ema 0.99 --batch-size "${BATCH:-8}" \
        --samples-per-epoch "${WHOLE_SAMPLES:-416}" --epochs "${WHOLE_EPOCHS:-6}" --patience 6 "${resume[@]}" \
        $(budget "${WHOLE_MIN:-}")
fi
until_done whole

dmv=$work/dmv.pt
# shellcheck disable=SC2046
stage dmv "$dmv" dmv --cohort "$cohort" --seed 0 --workers "$workers" --threads "$threads" --channels-last \
    "${dmv_size[@]}" \
    "${extra[@]}" --init-trunk "$gmic_final" --freeze-trunk --unfreeze-stages 1 \
    --window-samples "${DMV_WINDOW_SAMPLES:-2}" \
    --lr 0.0001 --batch-size "${DMV_BATCH:-16}" ${DMV_SAMPLES:+--samples-per-epoch "$DMV_SAMPLES"} \
    --epochs "${DMV_EPOCHS:-20}" --patience 10 --test-samples "${TEST_SAMPLES:-10}" $(budget "${DMV_MIN:-}")

echo "done: GMIC $gmic_final, DMV $dmv (checkpoints with their training record; curves beside them)"
echo "to ship them: cp $gmic_final assets/weights/gmic-demo.pt; cp $dmv assets/weights/dmv-demo.pt"
echo "(keep the 0.3 mm files first as the fast variant, issue 17 item 5)"
