#!/usr/bin/env bash
# One short GPU lease for issue 17 (docs/demo-weights-0.1mm.md): the 0.1 mm recipe's stages in the order that
# keeps a usable result if time runs out -- dense, top, DMV (on the top's trunk), then whole-window GMIC with
# whatever time is left -- each with a time budget taken from one overall deadline, and each finished stage's
# checkpoint copied to OUT_DIR at once (split in 15 MiB parts, since a lease brings back files of at most
# 16 MiB; `cat NAME.part* > NAME` joins them). Logs and curves go to OUT_DIR/logs.tar.gz after every stage.
# Usage: bash scripts/device-demo-weights-0.1mm.sh OUT_DIR [SECONDS [RECIPE_OPTION...]]
#   SECONDS (default 540): the deadline from now; a stage gets a share of what is left, so that the whole
#   run ends before it (stage set-up, caches and test scoring are not under the stages' own budgets:
#   OVERHEAD_S per stage, default 75, is kept back for them). RECIPE_OPTIONs go to the recipe (--smoke).
# Variables are the recipe's (EXTRA, WORKERS, *_EPOCHS, *_SAMPLES, ...); WORK (default <data>/demo-weights-0.1mm);
# DENSE_TRUNK: the trunk of a dense stage made elsewhere (e.g. on a CPU; 5.6 MB, see the recipe), so that the
# lease skips that stage.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: device-demo-weights-0.1mm.sh OUT_DIR [SECONDS]}
total=${2:-540}
start=$(date +%s)
overhead=${OVERHEAD_S:-75}
mkdir -p "$out"
work=${WORK:-$(python3 -c "from core.paths import data_dir; print(data_dir())")/demo-weights-0.1mm}
recipe=(bash scripts/train-demo-weights-0.1mm.sh "${@:3}" "$work")

left_s() { echo $((total - ($(date +%s) - start))); }
# minutes for a stage: SHARE of what is left after the overhead of REST stages (this one included), at most CAP
minutes() {
    awk -v left="$(left_s)" -v rest="$1" -v share="$2" -v cap="$3" -v oh="$overhead" \
        'BEGIN { m = (left - rest * oh) * share / 60; if (m > cap) m = cap; if (m < 0.3) m = 0.3; printf "%.2f", m }'
}
ship() {  # ship NAME...: the stage checkpoints that exist, in parts; then the logs
    for name in "$@"; do
        [ -f "$work/$name" ] || continue
        rm -f "$out/$name".part*
        split -b 15M -d "$work/$name" "$out/$name.part"
    done
    tar -czf "$out/logs.tar.gz" -C "$work" --exclude='*.pt' . 2>/dev/null || true
    echo "[$(($(date +%s) - start)) s] shipped: $(cd "$out" && ls | tr '\n' ' ')"
}
announce() {  # announce NAME: a line saying which stage the recipe runs next, with the time used and left
    echo "[$(($(date +%s) - start)) s, $(left_s) s left] stage $1"
}

announce cohorts+dense
DENSE_MIN=$(minutes 4 0.45 3.0) UNTIL=dense "${recipe[@]}" || echo "dense failed"
ship gmic-dense.pt
announce top
TOP_MIN=$(minutes 3 0.40 2.0) UNTIL=top "${recipe[@]}" || echo "top failed"
[ -f "$work/gmic-top.pt" ] && rm -f "$out"/gmic-dense.pt.part*
ship gmic-top.pt
announce dmv
DMV_MIN=$(minutes 2 0.35 1.5) WHOLE_EPOCHS=0 "${recipe[@]}" || echo "dmv failed"
ship dmv.pt
if [ "$(left_s)" -gt $((overhead + 60)) ]; then
    announce whole
    WHOLE_MIN=$(minutes 1 1.0 10) UNTIL=whole "${recipe[@]}" || echo "whole failed"
    # whole starts from the top (its epoch 0) and keeps the best validated epoch: it replaces the top
    [ -f "$work/gmic-whole.pt" ] && rm -f "$out"/gmic-top.pt.part*
    ship gmic-whole.pt
fi
echo "[$(($(date +%s) - start)) s] done"
