#!/usr/bin/env bash
# The first thing to run on a GPU machine (issue 27), under 8 minutes: build the CUDA ops, op parity and gradients,
# every training mode for a few ticks (grids and a checkpoint), a CPU checkpoint resumed on the GPU, two-GPU
# torchrun when two GPUs are present, perturb_car128's phase changes from the README's prepared data, and a speed
# table (img/s per mode). Each check's log is in $OUT (default bench/gpu_out); a summary ends the output and the
# exit status is the number of failed checks.
#
#   bash bench/gpu_check.sh              # on the GPU (device tool: carry [".whl"], command: bash bench/gpu_check.sh)
#   bash bench/gpu_check.sh --dry-run    # the same checks on the CUDA stand-in (tests/cuda_standin.py), CPU only
#
# --dry-run runs every command on the stand-in device `standin` (CUDA's placement and generator rules, two
# devices) with toy networks; CI runs it. Parity of the CUDA kernels needs the GPU: the dry run skips it.
# The device image has torch, click, numpy, scipy, pillow, tqdm, tensorboard and pytest, but not lmdb: carry
# its wheel for the machine's Python in .whl/ (git-ignored), fetched here beforehand with
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 -d .whl lmdb
set -uo pipefail
cd "$(dirname "$0")/.."
dry=0
[ "${1:-}" = "--dry-run" ] && dry=1
out=${OUT:-bench/gpu_out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" LAYERED_GAN_CACHE="${LAYERED_GAN_CACHE:-$(cd "$out" && pwd)/cache}"
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi

if [ $dry = 1 ]; then
    lg=(python3 tests/cuda_standin.py) dev=standin gpus=2 launch=tests/cuda_standin.py bench=(--standin --toy --steps 2 --warmup 1)
    # toy networks: 16 px, widths 8 (Labels4Free keeps the shipped 32-px generator it reads)
    small=(--set model.resolution=16 --set model.z_dim=16 --set model.w_dim=16 --set model.n_mlp=1
           --set model.channel_base=128 --set model.channel_max=8 --set model.mbstd_group=4 --set model.projected_resolution=64
           --set schedule.start_resolution=16 --set schedule.batch=8)
    car=(--set model.z_dim=16 --set model.w_dim=16 --set model.n_mlp=1 --set model.channel_base=128 --set model.channel_max=8
         --set model.mbstd_group=4 --set schedule.batch=8)
    kimg=0.048 tick=0.016
else
    lg=(python3 -m layered_gan) dev=cuda gpus=$(nvidia-smi -L 2>/dev/null | wc -l) launch=train.py bench=()
    small=() car=(--set schedule.batch=16)
    kimg=2 tick=0.5
fi
data=(--set data.source=synthetic --set 'data.synthetic={"resolution": 64, "count": 512, "test_count": 64, "seed": 0}'
      --set workers=0 --set log.grid_size=4 --set log.fid_kimg=0)
ticks=(--set "schedule.total_kimg=$kimg" --set "log.tick_kimg=$tick" --set "log.checkpoint_kimg=$tick")

failed=()
check() {  # check NAME COMMAND...: run COMMAND, its output in $out/NAME.log; say ok or FAILED with the log's tail
    local name=$1 start=$SECONDS
    shift
    if "$@" > "$out/$name.log" 2>&1; then
        echo "ok      $name ($((SECONDS - start)) s)"
    else
        echo "FAILED  $name ($((SECONDS - start)) s), last lines of $out/$name.log:"
        tail -n 15 "$out/$name.log" | sed 's/^/        /'
        failed+=("$name")
    fi
}

{ date -u +"%Y-%m-%d %H:%M UTC"
  if [ $dry = 1 ]; then echo "dry run on the CUDA stand-in (device 'standin', 2 devices), $(nproc) CPU cores"
  else nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; fi
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"
} 2>&1 | tee "$out/machine.txt"

if [ $dry = 1 ]; then  # what a machine without a CUDA torch reports; not a failure here
    python3 -m layered_gan build-ops 2>&1 | sed 's/^/build-ops: /'
else
    check build-ops python3 -m layered_gan build-ops
    check op-parity python3 -m pytest -q -rs tests/test_cuda_build.py tests/test_bias_act.py tests/test_upfirdn2d.py \
        tests/test_stylegan2.py
fi

rm -rf "$out/runs"
for cfg in demo stylegan2_demo l4f_demo demo_projected; do
    extra=("${small[@]}")
    [ "$cfg" = l4f_demo ] && extra=()
    [ "$cfg" = demo ] || [ "$cfg" = demo_projected ] && [ $dry = 1 ] && extra+=(--set model.init=null)
    check "train-$cfg" "${lg[@]}" train --cfg "$cfg" --out "$out/runs/$cfg" --device "$dev" "${data[@]}" "${ticks[@]}" "${extra[@]}"
    [ -f "$out/runs/$cfg/checkpoint.pt" ] && [ -f "$out/runs/$cfg/layers.png" ] || failed+=("train-$cfg: no checkpoint or grid")
done

# a checkpoint written on the CPU, continued on the device
half=$(python3 -c "print($kimg / 2)")
check resume-cpu-run python3 -m layered_gan train --cfg stylegan2_demo --out "$out/runs/resume" --device cpu \
    "${data[@]}" "${ticks[@]}" "${small[@]}" --set "schedule.total_kimg=$half"
check resume-on-device "${lg[@]}" train --resume "$out/runs/resume" --device "$dev" --set "schedule.total_kimg=$kimg"

if [ "$gpus" -ge 2 ]; then
    extra=("${small[@]}")
    [ $dry = 1 ] && extra+=(--set model.init=null)
    check torchrun-2 python3 -m torch.distributed.run --standalone --nproc_per_node=2 "$launch" train --cfg demo \
        --out "$out/runs/torchrun" --device "$dev" "${data[@]}" "${ticks[@]}" "${extra[@]}"
else
    echo "skipped torchrun-2 (fewer than two GPUs)"
fi

# perturb_car128 from the README's preparation line, through its phase changes 8 -> 128 px
python3 - "$out/car_images" <<'EOF'
import os, sys
import numpy as np
from PIL import Image
os.makedirs(sys.argv[1], exist_ok=True)
rng = np.random.default_rng(0)
for i in range(24):
    Image.fromarray(rng.integers(0, 256, (150, 200, 3), dtype=np.uint8)).save(f"{sys.argv[1]}/{i:03d}.png")
EOF
rm -rf "$out/car_lmdb"
check prepare python3 -m layered_gan prepare "$out/car_images" "$out/car_lmdb" --size 64 --size 128 --org-to-crop 1.125
phase=$(python3 -c "print($kimg / 10)")
check train-perturb_car128 "${lg[@]}" train --cfg perturb_car128 --data "$out/car_lmdb" --out "$out/runs/car128" \
    --device "$dev" --set workers=0 --set log.grid_size=4 --set "schedule.phase_kimg=$phase" \
    --set "schedule.total_kimg=$kimg" --set "log.tick_kimg=$phase" --set "log.checkpoint_kimg=$kimg" "${car[@]}"
grep -q "128px" "$out/train-perturb_car128.log" || failed+=("train-perturb_car128: never reached 128 px")

check speed python3 bench/bench_modes.py "${bench[@]}"
cat "$out/speed.log"

echo "${#failed[@]} failed${failed[*]:+: ${failed[*]}}"
exit ${#failed[@]}
