"""The CUDA kernels compile and link here, with or without a GPU (skipped only without nvcc); their launch code
compiles without torch; the architectures built; the build lock; `layered-gan build-ops`."""

import os
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner

from cuda_ops import _build
from cuda_ops._build import build_locked, cuda_arch_flags, find_cuda_home
from layered_gan.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BUILD = """
import sys
from cuda_ops._build import build_plugin
module, built = build_plugin(sys.argv[1])
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


@pytest.mark.skipif(find_cuda_home() is None, reason="no CUDA toolkit (nvcc) on this machine")
@pytest.mark.parametrize("op", _build.OPS)
def test_launch_code_compiles_without_torch(op, tmp_path):
    """nvcc compiles each .cu with no torch include path, with torch's nvcc defines and the architecture flags."""
    from torch.utils.cpp_extension import COMMON_NVCC_FLAGS

    flags, _ = cuda_arch_flags("8.0;9.0")
    cmd = [os.path.join(find_cuda_home(), "bin", "nvcc"), "-O3", "-std=c++17", *COMMON_NVCC_FLAGS, *flags,
           "-c", os.path.join(ROOT, "cuda_ops", f"{op}.cu"), "-o", str(tmp_path / f"{op}.o")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]


def test_arch_flags_build_each_architecture_and_ptx_for_the_newest(monkeypatch):
    def gencode(arch, code):
        return f"-gencode=arch=compute_{arch},code={code}"

    assert cuda_arch_flags("9.0;8.0") == ([gencode(80, "sm_80"), gencode(90, "sm_90"), gencode(90, "compute_90")],
                                         "TORCH_CUDA_ARCH_LIST")
    # Space-separated, an arch-specific variant (its PTX would not run on newer GPUs: the plain one's is built),
    # and +PTX for an older one too.
    flags, _ = cuda_arch_flags("7.5+PTX 9.0a")
    assert flags == [gencode(75, "sm_75"), gencode(75, "compute_75"), gencode("90a", "sm_90a"),
                     gencode(90, "compute_90")]
    assert cuda_arch_flags("10.0;12.0")[0][-1] == gencode(120, "compute_120")
    # The variable, when set, wins over the local GPUs; unset (or "native"), the GPUs; no GPU: the default.
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "8.6")
    assert cuda_arch_flags(capabilities=[(9, 0)]) == ([gencode(86, "sm_86"), gencode(86, "compute_86")],
                                                      "TORCH_CUDA_ARCH_LIST")
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "native")
    assert cuda_arch_flags(capabilities=[(9, 0), (8, 0)]) == (
        [gencode(80, "sm_80"), gencode(90, "sm_90"), gencode(90, "compute_90")], "the local GPUs")
    monkeypatch.delenv("TORCH_CUDA_ARCH_LIST")
    assert cuda_arch_flags(capabilities=[]) == (cuda_arch_flags("8.0;9.0")[0], "no GPU here; the default")
    # A local GPU newer than torch's build gets the newest architecture torch has, and JIT-compiles its PTX.
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: ["sm_80", "sm_90", "sm_90a"])
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i: [(10, 0), (8, 6), (8, 6)][i])
    assert cuda_arch_flags() == ([gencode(86, "sm_86"), gencode(90, "sm_90"), gencode(90, "compute_90")],
                                 "the local GPUs")
    with pytest.raises(ValueError, match="'sm_90' is not a CUDA architecture"):
        cuda_arch_flags("8.0;sm_90")


STUB_BUILD = """
import os, sys, time
from cuda_ops._build import build_locked, _import
build_dir, log = sys.argv[1:]
open(os.path.join(build_dir, f"ready-{os.getpid()}"), "w").close()
while len([f for f in os.listdir(build_dir) if f.startswith("ready-")]) < 2:  # start together
    time.sleep(0.01)

def build():  # a stub compiler: logs, takes a second, writes a module
    with open(log, "a") as fh:
        fh.write(f"start {os.getpid()}\\n")
    time.sleep(1)
    path = os.path.join(build_dir, "stub_extension.py")
    with open(path, "w") as fh:
        fh.write("VALUE = 42\\n")
    with open(log, "a") as fh:
        fh.write(f"end {os.getpid()}\\n")
    return _import(path)

module, built = build_locked(build_dir, build)
print(module.VALUE, built)
"""


def test_two_processes_building_at_once_build_once(tmp_path):
    """The second waits on the lock, then loads the first one's build instead of building again."""
    build_dir, log = tmp_path / "build", tmp_path / "log"
    build_dir.mkdir()
    env = dict(os.environ, PYTHONPATH=ROOT)
    procs = [subprocess.Popen([sys.executable, "-c", STUB_BUILD, str(build_dir), str(log)], env=env, cwd=ROOT,
                              text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
    outputs = sorted(proc.communicate(timeout=300)[0].strip().splitlines()[-1] for proc in procs)
    assert all(proc.returncode == 0 for proc in procs), outputs
    assert outputs == ["42 False", "42 True"]
    assert [line.split()[0] for line in log.read_text().splitlines()] == ["start", "end"]


def test_a_build_left_by_a_killed_process_is_redone(tmp_path):
    """torch's own lock file, left by a killed build, does not block; a finished build whose library is gone is
    rebuilt; a finished one is reused."""
    (tmp_path / "lock").write_text("")
    library = tmp_path / "stub_extension.py"
    builds = []

    def build():
        builds.append(os.path.exists(tmp_path / "lock"))
        library.write_text(f"VALUE = {len(builds)}\n")
        return _build._import(str(library))

    assert build_locked(str(tmp_path), build)[1] and builds == [False]
    module, built = build_locked(str(tmp_path), build)
    assert not built and module.VALUE == 1 and len(builds) == 1
    library.unlink()
    module, built = build_locked(str(tmp_path), build)
    assert built and module.VALUE == 2


def test_build_ops_says_in_one_line_when_nothing_can_be_built(monkeypatch):
    monkeypatch.setattr("layered_gan.cli.cannot_build", lambda: "torch 9.9+cpu is a CPU build")
    result = CliRunner().invoke(main, ["build-ops"])
    assert result.exit_code == 2 and result.stdout == "", result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "torch 9.9+cpu is a CPU build" in lines[0] and "PyTorch reference" in lines[0], lines


def test_build_ops_reports_each_op(monkeypatch, tmp_path):
    monkeypatch.setattr("layered_gan.cli.cannot_build", lambda: None)
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
    monkeypatch.setenv("LAYERED_GAN_CACHE", str(tmp_path))
    built = {"upfirdn2d": True, "bias_act": False}

    def stub(name, verbose=False):
        time.sleep(0.01)
        return None, built[name]

    monkeypatch.setattr(_build, "build_plugin", stub)
    result = CliRunner().invoke(main, ["build-ops"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("building for sm_80 sm_90 compute_90 (TORCH_CUDA_ARCH_LIST) with ")
    assert lines[0].endswith(os.path.join(str(tmp_path), "torch_extensions"))
    assert [line.split(" (")[0] for line in lines[1:]] == ["upfirdn2d: built", "bias_act: cached"]

    def failing(name, verbose=False):
        if name == "bias_act":
            raise RuntimeError("Error building extension 'layered_gan_bias_act': [1/3] nvcc ...\n"
                               "bias_act.cu(7): error: identifier \"x\" is undefined\nninja: build stopped")
        return None, False

    monkeypatch.setattr(_build, "build_plugin", failing)
    result = CliRunner().invoke(main, ["build-ops"])
    assert result.exit_code == 1, result.output
    assert [line.split(" (")[0] for line in result.stdout.splitlines()[1:]] == [
        "upfirdn2d: cached", 'bias_act: failed: bias_act.cu(7): error: identifier "x" is undefined']
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "8.0;Hopper")
    result = CliRunner().invoke(main, ["build-ops"])
    assert result.exit_code == 2 and "'Hopper' is not a CUDA architecture" in result.stderr, result.output


def test_the_start_line_names_the_ops_implementation(monkeypatch):
    """Nothing falls back silently: a CUDA run says whether each kernel was built (here: one was not)."""
    monkeypatch.setitem(_build._plugins, "upfirdn2d", object())
    monkeypatch.setitem(_build._plugins, "bias_act", None)
    assert _build.describe_ops("cuda:0") == ("fused ops: PyTorch reference for bias_act (its CUDA kernel could not "
                                             "be built: see the warning)")
    monkeypatch.setitem(_build._plugins, "bias_act", object())
    assert _build.describe_ops("cuda") == "fused ops: CUDA kernels (upfirdn2d, bias_act)"
    assert _build.describe_ops("meta").startswith("fused ops: PyTorch reference")
