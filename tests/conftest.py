import importlib
import os
import random
import shutil

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same random state."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def cpu_kernel_module():
    """The CUDA kernels compiled as C++ for the CPU: built once (~40 s), cached like the CUDA build."""
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        pytest.skip("no C++ compiler")
    from cuda_ops._build import compile_cpu_kernels

    return compile_cpu_kernels()


@pytest.fixture
def kernels_on_cpu(cpu_kernel_module, monkeypatch):
    """Within a test, impl='cuda' runs the CPU-compiled kernels on CPU tensors through the ops' own autograd code."""
    from cuda_ops import _build

    for name in ("upfirdn2d", "bias_act"):
        monkeypatch.setitem(_build._plugins, name, cpu_kernel_module)
        module = importlib.import_module(f"cuda_ops.{name}")
        monkeypatch.setattr(module, "choose_impl", lambda impl, x, name: "cuda" if impl == "cuda" else "ref")
    cpu_kernel_module.set_max_blocks(cpu_kernel_module.max_blocks_default())
    yield cpu_kernel_module
    cpu_kernel_module.set_max_blocks(cpu_kernel_module.max_blocks_default())


def pytest_configure(config):
    """Register the CUDA stand-in's device before any test runs: registered after a CPU backward pass, autograd's
    device threads do not know it (an internal assert in its backward)."""
    import cuda_standin

    cuda_standin.install()


@pytest.fixture
def standin():
    """The CUDA stand-in (tests/cuda_standin.py) active for the test: device "standin" with CUDA's rules."""
    import cuda_standin

    with cuda_standin.active():
        yield cuda_standin
