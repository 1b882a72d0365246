"""Just-in-time build of the CUDA kernels, cached between runs.

`load_plugin(name)` compiles `<name>.cpp` + `<name>.cu` beside this file with
torch.utils.cpp_extension and ninja and returns the module, or None (with one
warning) when no CUDA toolchain is usable. The kernels themselves live in
`<name>_kernel.cuh`; `compile_cpu_kernels()` builds the same headers as C++ for
the CPU (cpu/), so that tests run them without a GPU. Two traps of pip-installed
CUDA torch are handled here: CUDA_HOME may lack headers torch includes
(cusparse.h) and an unversioned libcudart.so; both ship in the pip CUDA runtime
wheels (site-packages/nvidia/cu*/include and lib/libcudart.so.N).
"""

import glob
import hashlib
import os
import shutil
import sys
import warnings

import torch

_HERE = os.path.dirname(os.path.abspath(__file__))
_plugins = {}
_warned = set()


def warn_once(key, message):
    """Warn the first time `key` is seen in this process."""
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def find_cuda_home():
    """The CUDA toolkit root: one holding bin/nvcc and include/cuda_runtime.h, or None."""
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"]
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))))
    candidates += sorted(glob.glob("/usr/local/cuda-*"), reverse=True)
    for root in candidates:
        if root and os.path.isfile(os.path.join(root, "bin", "nvcc")) and os.path.isfile(
            os.path.join(root, "include", "cuda_runtime.h")
        ):
            return root
    return None


def _pip_cuda_dirs():
    """include/ and lib/ folders of the pip NVIDIA wheels (nvidia/cu13, nvidia/cuda_runtime, ...)."""
    includes, libs = [], []
    for base in sys.path:
        for d in sorted(glob.glob(os.path.join(base, "nvidia", "*"))):
            if os.path.isdir(os.path.join(d, "include")):
                includes.append(os.path.join(d, "include"))
            if os.path.isdir(os.path.join(d, "lib")):
                libs.append(os.path.join(d, "lib"))
    return includes, libs


def _build_dir(name, files):
    """A cache folder named after the hash of every file the build reads (sources and kernel headers)."""
    digest = hashlib.sha1()
    for src in files:
        with open(src, "rb") as fh:
            digest.update(fh.read())
    digest.update(f"{torch.__version__}-{torch.version.cuda}".encode())
    root = os.environ.get("LAYERED_GAN_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "layered_gan"))
    path = os.path.join(root, "torch_extensions", f"{name}-{digest.hexdigest()[:12]}")
    os.makedirs(path, exist_ok=True)
    return path


def build_flags(cuda_home, build_dir):
    """Extra include paths and linker flags that make the build work on pip CUDA torch."""
    includes, ldflags = [], []
    pip_includes, pip_libs = _pip_cuda_dirs()
    if not os.path.isfile(os.path.join(cuda_home, "include", "cusparse.h")):
        includes += [d for d in pip_includes if os.path.isfile(os.path.join(d, "cusparse.h"))]
    lib_dirs = [os.path.join(cuda_home, "lib64"), os.path.join(cuda_home, "lib")]
    if not any(os.path.isfile(os.path.join(d, "libcudart.so")) for d in lib_dirs):
        versioned = [p for d in lib_dirs + pip_libs for p in sorted(glob.glob(os.path.join(d, "libcudart.so.*")))]
        if versioned:
            link_dir = os.path.join(build_dir, "cudart")
            os.makedirs(link_dir, exist_ok=True)
            link = os.path.join(link_dir, "libcudart.so")
            if not os.path.lexists(link):
                os.symlink(versioned[0], link)
            ldflags.append(f"-L{link_dir}")
    return includes, ldflags


def compile_plugin(name, verbose=False):
    """Compile and load the extension `name`; raises if it cannot be built."""
    from torch.utils import cpp_extension

    cuda_home = find_cuda_home()
    if cuda_home is None:
        raise RuntimeError("no CUDA toolkit found (need bin/nvcc and include/cuda_runtime.h; set CUDA_HOME)")
    if torch.version.cuda is None:
        raise RuntimeError(f"torch {torch.__version__} is a CPU build; the CUDA kernels need a CUDA build of torch")
    sources = [os.path.join(_HERE, f"{name}.cpp"), os.path.join(_HERE, f"{name}.cu")]
    build_dir = _build_dir(name, sources + _kernel_headers(name) + _host_headers(name))
    includes, ldflags = build_flags(cuda_home, build_dir)
    cpp_extension.CUDA_HOME = cuda_home  # torch guesses it at import time, sometimes wrongly
    os.environ.setdefault("CUDA_HOME", cuda_home)
    if not torch.cuda.is_available() and not os.environ.get("TORCH_CUDA_ARCH_LIST"):
        # Nothing to detect the architecture from: build for the data-centre GPUs we run on.
        os.environ["TORCH_CUDA_ARCH_LIST"] = "8.0;9.0"
    return cpp_extension.load(
        name=f"layered_gan_{name}",
        sources=sources,
        build_directory=build_dir,
        extra_include_paths=includes,
        extra_ldflags=ldflags,
        extra_cuda_cflags=["-O3"],
        verbose=verbose,
    )


def _kernel_headers(*names):
    return [os.path.join(_HERE, "kernel_common.cuh")] + [os.path.join(_HERE, f"{n}_kernel.cuh") for n in names]


def _host_headers(*names):
    """The host-side helpers a launcher shares with the CPU harness (only upfirdn2d has one)."""
    return [p for p in (os.path.join(_HERE, f"{n}_host.h") for n in names) if os.path.isfile(p)]


def compile_cpu_kernels(verbose=False):
    """Both CUDA kernels compiled as C++ and launched on the CPU (cpu/kernels_cpu.cpp), for tests.

    Same machinery and cache as the CUDA build; raises if no C++ compiler works.
    """
    from torch.utils import cpp_extension

    sources = [os.path.join(_HERE, "cpu", "kernels_cpu.cpp")]
    headers = (_kernel_headers("upfirdn2d", "bias_act") + _host_headers("upfirdn2d", "bias_act")
               + [os.path.join(_HERE, "cpu", "cuda_shim.h")])
    return cpp_extension.load(
        name="layered_gan_kernels_cpu",
        sources=sources,
        build_directory=_build_dir("kernels_cpu", sources + headers),
        extra_cflags=["-O2"],
        verbose=verbose,
    )


def load_plugin(name):
    """The compiled extension `name`, or None (warning once) when it cannot be built."""
    if name not in _plugins:
        try:
            _plugins[name] = compile_plugin(name)
        except Exception as exc:  # any toolchain failure falls back to the reference op
            warn_once(f"build-{name}", f"cuda_ops: could not build the {name} CUDA kernel ({exc}); "
                      "using the PyTorch reference implementation")
            _plugins[name] = None
    return _plugins[name]


def choose_impl(impl, x, name):
    """Resolve impl='auto'|'ref'|'cuda' for tensor `x`; returns 'ref' or 'cuda'."""
    if impl not in ("auto", "ref", "cuda"):
        raise ValueError(f"impl must be 'auto', 'ref' or 'cuda', got {impl!r}")
    if impl == "ref":
        return "ref"
    if not x.is_cuda:
        if impl == "cuda":
            raise ValueError(f"impl='cuda' needs a CUDA tensor, got one on {x.device}")
        return "ref"
    if load_plugin(name) is None:
        if impl == "cuda":
            raise RuntimeError(f"the {name} CUDA kernel could not be built (see the warning above)")
        return "ref"
    return "cuda"
