#!/usr/bin/env bash
# Train CT denoising network candidates side by side on one GPU with the shared recipe, for the
# speed / quality comparison in docs/ct_denoise.md (the 3x-MONAI target).
#
# Usage:
#   bash benchmarks/ct_candidates_gpu.sh OUT_DIR STEPS 'NAME|RECIPE OPTIONS' ...
# e.g.
#   bash benchmarks/ct_candidates_gpu.sh runs/gpu 7200 \
#     'fold|--set model.unshuffle=[2,2,2]' \
#     'gates2|--set model.unshuffle=[2,2,2] --set model.gated_levels=2' \
#     'monai|--set model.backend=monai --set model.channels=[16,32,64,128] --set model.num_res_units=2'
#
# Every candidate runs stage 1's recipe (default.yaml) for STEPS steps with the patch schedule
# stretched to match and a validation every STEPS / 8 steps, on the data of the docs' runs
# (CT_DATA, default ../shared/data/ct; CT_CACHE, default OUT_DIR/simulations, keeps the
# simulated low-dose inputs between rounds). Then score each with
#   python benchmarks/bench_ct_quality.py --weights OUT_DIR/NAME/ct_denoise.safetensors \
#     --no-classical --no-adapt
#
# The low-dose simulations are made once, on all cores, before the candidates start (a run
# with train.steps=0 per candidate fills data.cache), and each candidate then gets an equal
# share of the CPU threads. A first round that simulated inside one candidate while the others,
# and a test run, competed for 16 cores reached step 900 of 7200 in eight minutes.
# DEVICE=cpu runs the same on the CPU (a check of the script, with a small STEPS).
set -euo pipefail
[ $# -ge 3 ] || { sed -n '2,12p' "$0"; exit 2; }
out=$1 steps=$2
shift 2
data=${CT_DATA:-../shared/data/ct}
device=${DEVICE:-cuda}
cores=$(nproc)
threads=$(( cores / $# > 0 ? cores / $# : 1 ))
cache=${CT_CACHE:-$out/simulations}
mkdir -p "$out"
common=(--data "$data/totalsegmentator_ct_dicom"
        --set "data.val=$data/totalsegmentator_ct.nii.gz" --set data.realizations=4
        --set "data.cache=$cache")
start=$(date +%s)
# once per candidate, with its own options: a data option such as data.attenuation_scales makes
# draws of its own, and the draws two candidates share are found in the cache the second time
for spec in "$@"; do
  name=${spec%%|*}
  read -r -a options <<<"${spec#*|}"
  suite --quiet train ct-denoise "${common[@]}" "${options[@]}" --set "data.workers=$cores" \
    --set train.steps=0 --device cpu --out "$out/.simulate/$name" >>"$out/simulate.log" 2>&1
done
echo "simulations cached in $(( $(date +%s) - start )) s"
pids=()
for spec in "$@"; do
  name=${spec%%|*}
  read -r -a options <<<"${spec#*|}"
  suite --quiet --threads "$threads" train ct-denoise "${common[@]}" --set data.workers=1 \
    --set "train.steps=$steps" \
    --set "train.patch_schedule=[[0,[64,64,16]],[$(( steps / 2 )),[96,96,16]]]" \
    --set "train.validate_every=$(( steps / 8 ))" "${options[@]}" --device "$device" \
    --out "$out/$name" >"$out/$name.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
echo "trained in $(( $(date +%s) - start )) s"
for spec in "$@"; do
  name=${spec%%|*}
  echo "== $name: $(tail -n 1 "$out/$name/log.csv" 2>/dev/null || tail -n 2 "$out/$name.log")"
done
exit "$status"
