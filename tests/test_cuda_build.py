"""The CUDA kernels compile and link here, with or without a GPU (skipped only without nvcc)."""

import os
import subprocess
import sys

import pytest
import torch

from cuda_ops._build import find_cuda_home

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BUILD = """
import sys
from cuda_ops._build import compile_plugin
module = compile_plugin(sys.argv[1])
print(sorted(name for name in dir(module) if not name.startswith("_")))
"""


@pytest.mark.skipif(find_cuda_home() is None, reason="no CUDA toolkit (nvcc) on this machine")
@pytest.mark.skipif(torch.version.cuda is None, reason="torch is a CPU build")
def test_kernels_compile_link_and_load(tmp_path):
    env = dict(os.environ, LAYERED_GAN_CACHE=str(tmp_path), PYTHONPATH=ROOT)
    if not torch.cuda.is_available():
        env.setdefault("TORCH_CUDA_ARCH_LIST", "9.0")  # one architecture keeps the build short
    # Both builds in parallel: each is mostly one nvcc and one host-compiler process.
    procs = {op: subprocess.Popen([sys.executable, "-c", BUILD, op], env=env, cwd=ROOT, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for op in ("upfirdn2d", "bias_act")}
    for op, proc in procs.items():
        out, _ = proc.communicate(timeout=900)
        assert proc.returncode == 0, f"building {op} failed:\n{out[-4000:]}"
        assert f"'{op}'" in out.splitlines()[-1], out[-2000:]
        built = [f for _, _, files in os.walk(tmp_path) for f in files if f == f"layered_gan_{op}.so"]
        assert built, f"no shared library for {op} under {tmp_path}"
