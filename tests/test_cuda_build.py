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


def test_build_flags_find_pip_headers_and_unversioned_cudart(tmp_path, monkeypatch):
    """CUDA_HOME without cusparse.h or libcudart.so: both come from the pip runtime wheel's folders."""
    from cuda_ops._build import build_flags

    cuda_home = tmp_path / "cuda"
    (cuda_home / "include").mkdir(parents=True)
    (cuda_home / "lib64").mkdir()
    wheel = tmp_path / "site" / "nvidia" / "cu13"
    (wheel / "include").mkdir(parents=True)
    (wheel / "lib").mkdir()
    (wheel / "include" / "cusparse.h").write_text("")
    (wheel / "lib" / "libcudart.so.13").write_text("")
    monkeypatch.setattr(sys, "path", [str(tmp_path / "site")])
    build_dir = tmp_path / "build"
    build_dir.mkdir()
    includes, ldflags = build_flags(str(cuda_home), str(build_dir))
    assert includes == [str(wheel / "include")]
    assert ldflags == [f"-L{build_dir / 'cudart'}"]
    assert os.path.realpath(build_dir / "cudart" / "libcudart.so") == str(wheel / "lib" / "libcudart.so.13")
    # A complete toolkit needs nothing extra.
    (cuda_home / "include" / "cusparse.h").write_text("")
    (cuda_home / "lib64" / "libcudart.so").write_text("")
    assert build_flags(str(cuda_home), str(build_dir)) == ([], [])
