#!/usr/bin/env bash
# The checks a lent GPU machine is for, in one call of the `device` tool (bench/RESULTS.md, first section):
# build the fused CUDA ops, run every CUDA test (parity with the reference ops included), time the
# networks fast against plain on the GPU. Logs go to $OUT (default bench/gpu_out).
#
#   device run, carry [".whl"], command: bash bench/gpu_check.sh
#
# The device image has torch, click, numpy, scipy, pillow, tqdm, tensorboard and pytest, but not lmdb:
# carry its wheel for the machine's Python 3.12 in .whl/ (git-ignored), fetched here beforehand with
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 -d .whl lmdb
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bench/gpu_out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"
} 2>&1 | tee "$out/machine.txt"
python3 -m pytest -q -rs tests/test_cuda_build.py tests/test_bias_act.py tests/test_upfirdn2d.py \
    tests/test_stylegan2.py 2>&1 | tee "$out/cuda_tests.log"
tests=$?
python3 bench/bench_networks.py 2>&1 | tee "$out/bench_networks.log"  # on the GPU when there is one
exit $tests
