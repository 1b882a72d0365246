"""Just-in-time build of the CUDA kernels, cached between runs.

`load_plugin(name)` compiles `<name>.cpp` (the Python binding: checks, output, device, stream; with torch's headers)
and `<name>.cu` (the kernel launch: CUDA headers only, see launch.h, so nvcc takes seconds) beside this file with
torch.utils.cpp_extension and ninja and returns the module, or None (with one warning) when no CUDA toolchain is
usable; `build_plugin(name)` also says whether it built or found the build (`layered-gan build-ops`). Each
architecture gets machine code and the newest also PTX, which newer GPUs JIT-compile (`cuda_arch_flags`). A build
holds an flock on its cache folder: processes (or nodes sharing the folder) that build at once wait for the first
and load its build. The kernels themselves live in `<name>_kernel.cuh`; `compile_cpu_kernels()` builds the same
headers as C++ for the CPU (cpu/), so that tests run them without a GPU. Two traps of pip-installed CUDA torch are
handled here: CUDA_HOME may lack headers torch includes (cusparse.h) and an unversioned libcudart.so; both ship in
the pip CUDA runtime wheels (site-packages/nvidia/cu*/include and lib/libcudart.so.N).
"""

import fcntl
import glob
import hashlib
import importlib.util
import os
import re
import shutil
import sys
import time
import warnings

import torch

OPS = ("upfirdn2d", "bias_act")
DEFAULT_ARCHS = "8.0;9.0"  # no TORCH_CUDA_ARCH_LIST and no GPU to ask: the data-centre GPUs we run on
_ARCH = re.compile(r"(\d+)\.(\d+)([af]?)(\+PTX)?")
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


def cannot_build():
    """Why the CUDA kernels cannot be built here (no toolkit, or a CPU build of torch), or None."""
    if find_cuda_home() is None:
        return "no CUDA toolkit found (need bin/nvcc and include/cuda_runtime.h; set CUDA_HOME)"
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU build; the CUDA kernels need a CUDA build of torch"
    return None


def _local_capabilities():
    """The local GPUs' compute capabilities, each capped at the newest torch was built for (nvcc may not know
    newer ones; those GPUs JIT-compile that one's PTX)."""
    built = [divmod(int(a[3:]), 10) for a in torch.cuda.get_arch_list() if a.startswith("sm_") and a[3:].isdigit()]
    local = [torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())]
    return sorted({min(c, max(built)) if built else c for c in local})


def cuda_arch_flags(arch_list=None, capabilities=None):
    """nvcc's -gencode flags (machine code for each architecture, PTX for the newest) and where the list came from.

    The architectures: `arch_list` (TORCH_CUDA_ARCH_LIST syntax, e.g. "8.0;9.0" or "8.6 9.0a 9.0+PTX"; default: that
    variable), else `capabilities` ((major, minor) pairs; default: the local GPUs'), else DEFAULT_ARCHS. A GPU newer
    than all of them JIT-compiles the newest one's PTX; "+PTX" adds PTX for another one.
    """
    entries = [e for e in re.split(r"[;\s]+", os.environ.get("TORCH_CUDA_ARCH_LIST", "") if arch_list is None
                                    else arch_list) if e]
    source = "TORCH_CUDA_ARCH_LIST"
    if entries in ([], ["native"]):
        capabilities = _local_capabilities() if capabilities is None else capabilities
        entries, source = [f"{major}.{minor}" for major, minor in capabilities], "the local GPUs"
        if not entries:
            entries, source = DEFAULT_ARCHS.split(";"), "no GPU here; the default"
    archs = []
    for entry in entries:
        match = _ARCH.fullmatch(entry)
        if match is None:
            raise ValueError(f"{source}: {entry!r} is not a CUDA architecture like 8.6, 9.0a or 9.0+PTX")
        major, minor, variant, ptx = match.groups()
        archs.append((int(major), int(minor), variant, bool(ptx)))
    newest = max((major, minor) for major, minor, _, _ in archs)
    flags = []
    for major, minor, variant, ptx in sorted(archs):
        num = f"{major}{minor}"
        flags.append(f"-gencode=arch=compute_{num}{variant},code=sm_{num}{variant}")
        if ptx or (major, minor) == newest:  # PTX of an arch-specific variant (9.0a) would not run on newer GPUs
            flags.append(f"-gencode=arch=compute_{num},code=compute_{num}")
    return list(dict.fromkeys(flags)), source


def describe_archs(flags):
    """What cuda_arch_flags' flags build, e.g. "sm_80 sm_90 compute_90"."""
    return " ".join(flag.rsplit("code=", 1)[1] for flag in flags)


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


def cache_root():
    """Where builds are cached: $LAYERED_GAN_CACHE/torch_extensions (default ~/.cache/layered_gan/...)."""
    root = os.environ.get("LAYERED_GAN_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "layered_gan"))
    return os.path.join(root, "torch_extensions")


def _build_dir(name, files, flags=()):
    """A cache folder named after the hash of every file the build reads (sources and headers) and its flags."""
    digest = hashlib.sha1()
    for src in files:
        with open(src, "rb") as fh:
            digest.update(fh.read())
    digest.update(f"{torch.__version__}-{torch.version.cuda}-{' '.join(flags)}".encode())
    path = os.path.join(cache_root(), f"{name}-{digest.hexdigest()[:12]}")
    os.makedirs(path, exist_ok=True)
    return path


def _headers(folder=_HERE):
    return sorted(glob.glob(os.path.join(folder, "*.cuh")) + glob.glob(os.path.join(folder, "*.h")))


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


def _import(path):
    """The extension module in the shared library at `path`."""
    spec = importlib.util.spec_from_file_location(os.path.basename(path).split(".")[0], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_locked(build_dir, build):
    """(module, built): the extension `build()` makes in build_dir (returning the module), or the one an earlier
    build finished there.

    Holds an exclusive flock on build_dir/build.lock meanwhile, so processes that build at once (also on several
    nodes sharing the folder: Linux's NFS client maps flock to NFS locks) build once.
    """
    finished = os.path.join(build_dir, "finished")  # holds the library's file name
    with open(os.path.join(build_dir, "build.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.isfile(finished):
            with open(finished) as fh:
                library = os.path.join(build_dir, fh.read().strip())
            if os.path.isfile(library):
                return _import(library), False
        baton = os.path.join(build_dir, "lock")  # torch's own lock file: a killed build leaves it, and torch waits
        if os.path.exists(baton):
            os.remove(baton)
        module = build()
        with open(finished, "w") as fh:
            fh.write(os.path.basename(module.__file__))
        return module, True


def build_plugin(name, verbose=False, echo=None):
    """(module, built): the extension `name`, compiled or found in the cache; raises if it cannot be built.

    echo(line), if given, is told what is built, for which architectures, before it is.
    """
    from torch.utils import cpp_extension

    reason = cannot_build()
    if reason:
        raise RuntimeError(reason)
    cuda_home = find_cuda_home()
    sources = [os.path.join(_HERE, f"{name}.cpp"), os.path.join(_HERE, f"{name}.cu")]
    arch_flags, source = cuda_arch_flags()
    build_dir = _build_dir(name, sources + _headers(), arch_flags)

    def build():
        if echo:
            echo(f"cuda_ops: building the {name} CUDA kernel for {describe_archs(arch_flags)} ({source}) in "
                 f"{build_dir}")
        includes, ldflags = build_flags(cuda_home, build_dir)
        cpp_extension.CUDA_HOME = cuda_home  # torch guesses it at import time, sometimes wrongly
        os.environ.setdefault("CUDA_HOME", cuda_home)
        return cpp_extension.load(
            name=f"layered_gan_{name}",
            sources=sources,
            build_directory=build_dir,
            extra_include_paths=includes,
            extra_ldflags=ldflags,
            extra_cuda_cflags=["-O3"] + arch_flags,  # torch adds no arch flags of its own when given some
            verbose=verbose,
        )

    return build_locked(build_dir, build)


def build_all(verbose=False):
    """Build every op, or find it cached: yields (name, 'built' | 'cached' | 'failed: why', seconds)."""
    for name in OPS:
        start = time.time()
        try:
            status = "built" if build_plugin(name, verbose)[1] else "cached"
        except Exception as exc:  # reported; the other ops are still built
            status = f"failed: {build_error(exc)}"
        yield name, status, time.time() - start


def compile_cpu_kernels(verbose=False):
    """Both CUDA kernels compiled as C++ and launched on the CPU (cpu/kernels_cpu.cpp), for tests.

    Same machinery, lock and cache as the CUDA build; raises if no C++ compiler works.
    """
    from torch.utils import cpp_extension

    sources = [os.path.join(_HERE, "cpu", "kernels_cpu.cpp")]
    build_dir = _build_dir("kernels_cpu", sources + _headers() + _headers(os.path.join(_HERE, "cpu")))
    return build_locked(build_dir, lambda: cpp_extension.load(
        name="layered_gan_kernels_cpu",
        sources=sources,
        build_directory=build_dir,
        extra_cflags=["-O2"],
        verbose=verbose,
    ))[0]


def build_error(exc):
    """The line of a build error that says why: the first compiler error, else its first line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    return next((line for line in lines if re.search(r"\berror\b", line, re.I)
                 and not line.startswith("Error building extension")), lines[0])


def load_plugin(name):
    """The compiled extension `name`, or None (warning once) when it cannot be built; a build says so on stderr."""
    if name not in _plugins:
        try:
            _plugins[name] = build_plugin(name, echo=lambda line: print(line, file=sys.stderr, flush=True))[0]
        except Exception as exc:  # any toolchain failure falls back to the reference op
            warn_once(f"build-{name}", f"cuda_ops: could not build the {name} CUDA kernel ({build_error(exc)}); "
                      "using the PyTorch reference implementation")
            _plugins[name] = None
    return _plugins[name]


def describe_ops(device):
    """One line: which implementation the fused ops use on `device` (building the kernels now on CUDA, so that a
    build happens, or fails, before training rather than at its first step)."""
    if torch.device(device).type != "cuda":
        return f"fused ops: PyTorch reference (the CUDA kernels run on CUDA devices only; {device})"
    built = {name: load_plugin(name) is not None for name in ("upfirdn2d", "bias_act")}
    if all(built.values()):
        return "fused ops: CUDA kernels (upfirdn2d, bias_act)"
    missing = ", ".join(name for name, ok in built.items() if not ok)
    return f"fused ops: PyTorch reference for {missing} (its CUDA kernel could not be built: see the warning)"


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
