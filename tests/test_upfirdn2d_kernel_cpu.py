"""The upfirdn2d CUDA kernel compiled as C++ and run on the CPU (conftest: kernels_on_cpu) against the reference."""

import itertools
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from cuda_ops import upfirdn2d
from test_upfirdn2d import output_and_grads

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
RNG = np.random.default_rng(1)
FILTERS = {  # odd and even sizes, 2-D (one pass) and 1-D (two passes); none symmetric, so a flip shows
    "3x4": torch.tensor(RNG.normal(size=(3, 4)), dtype=torch.float32),
    "5x2": torch.tensor(RNG.normal(size=(5, 2)), dtype=torch.float32),
    "1x1": torch.tensor([[1.5]]),
    "3": torch.tensor(RNG.normal(size=3), dtype=torch.float32),
    "4": torch.tensor(RNG.normal(size=4), dtype=torch.float32),
}
PADDINGS = [(0, 0, 0, 0), (2, 1, 1, 3), (-1, 2, 3, -2), (1, -2, -1, 0)]  # (x0, x1, y0, y1)


def layouts(dtype, i):
    """Contiguous, channels-last and strided inputs in turn (the op makes them contiguous for the kernel)."""
    if i % 3 == 0:
        return torch.randn(2, 3, 7, 6).to(dtype)
    if i % 3 == 1:
        return torch.randn(2, 7, 6, 3).to(dtype).permute(0, 3, 1, 2)
    return torch.randn(2, 3, 7, 12).to(dtype)[..., ::2]


def error_bound(x, f, dtype, **kw):
    """What rounding may cost: epsilons of the dtype times the op applied to |x| and |f|."""
    eps = torch.finfo(dtype).eps
    ulps = (2 if f.ndim == 1 else 1) * eps if dtype in (torch.float16, torch.bfloat16) else 16 * eps
    return upfirdn2d(x.abs().double(), f.abs().double(), impl="ref", **kw) * ulps + torch.finfo(dtype).tiny


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_kernel_matches_reference(kernels_on_cpu, dtype):
    """Every up and down factor 1-4 (x and y differ), asymmetric and negative paddings, flip, filter shapes."""
    cases = itertools.product(range(1, 5), range(1, 5), PADDINGS, [False, True], FILTERS)
    for i, (up, down, pad, flip, fname) in enumerate(cases):
        kw = dict(up=(up, up % 4 + 1), down=(down, (down + 1) % 4 + 1), padding=pad, flip_filter=flip,
                  gain=4 if i % 2 else 1)
        x, f = layouts(dtype, i), FILTERS[fname]
        y = upfirdn2d(x, f, impl="cuda", **kw)
        expected = upfirdn2d(x.double(), f.double(), impl="ref", **kw)
        assert y.dtype == dtype and y.shape == expected.shape, kw
        err = (y.double() - expected).abs()
        bound = error_bound(x, f, dtype, **kw)
        assert (err <= bound).all(), f"filter {fname} {kw}: error {err.max():.3g}, bound {bound.max():.3g}"
    assert i == 4 * 4 * len(PADDINGS) * 2 * len(FILTERS) - 1


GRAD_CASES = [
    dict(up=2, padding=(2, 1, 2, 1), gain=4),
    dict(down=2, padding=1),
    dict(up=3, down=2, padding=(1, 0, 2, -1), flip_filter=True),
    dict(up=(2, 1), down=(1, 3), padding=(3, -1, 0, 2)),
]


@pytest.mark.parametrize("case", GRAD_CASES)
@pytest.mark.parametrize("separable", [True, False])
def test_kernel_gradients_match_reference(kernels_on_cpu, case, separable):
    """First and second derivatives: the backward pass is the kernel run with the adjoint padding."""
    x = torch.randn(3, 5, 17, 13, dtype=torch.float64, requires_grad=True)
    f = torch.tensor([1.0, 3.0, -2.0, 0.5], dtype=torch.float64)
    f = f if separable else f.outer(torch.tensor([0.5, 1.0, 3.0, 2.0], dtype=torch.float64))
    for a, b in zip(output_and_grads(x, f, "cuda", case), output_and_grads(x, f, "ref", case)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12 * b.abs().max().item())


def test_kernel_gradcheck_and_gradgradcheck(kernels_on_cpu):
    x = torch.randn(1, 2, 5, 4, dtype=torch.float64, requires_grad=True)
    f = torch.tensor([[1.0, 2.0, -1.0], [0.5, 0.0, 2.0]], dtype=torch.float64)
    fn = lambda t: upfirdn2d(t, f, up=2, down=3, padding=(1, 2, 2, -1), impl="cuda")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


def test_grid_stride_loop_covers_outputs_beyond_the_grid(kernels_on_cpu):
    x = torch.randn(2, 3, 40, 40)
    f = FILTERS["3x4"]
    expected = upfirdn2d(x, f, up=2, padding=(1, 2, 0, 1), impl="ref")
    y = upfirdn2d(x, f, up=2, padding=(1, 2, 0, 1), impl="cuda")
    assert kernels_on_cpu.last_grid() == -(-y.numel() // 256)
    kernels_on_cpu.set_max_blocks(3)  # 768 threads for 2 * 3 * 79 * 79 outputs
    torch.testing.assert_close(upfirdn2d(x, f, up=2, padding=(1, 2, 0, 1), impl="cuda"), expected)
    assert kernels_on_cpu.last_grid() == 3


def test_half_precision_accumulates_in_float(kernels_on_cpu):
    """256 taps summed in half would be off by many units in the last place; in float the sum is rounded once."""
    x = (torch.rand(1, 2, 20, 20) * 0.5 + 0.5).half()
    f = torch.ones(16, 16)
    y = upfirdn2d(x, f, impl="cuda").double()
    expected = upfirdn2d(x.double(), f.double(), impl="ref")
    assert ((y - expected).abs() <= expected.abs() * (torch.finfo(torch.float16).eps / 2 + 1e-5)).all()


def test_empty_batch_and_channels(kernels_on_cpu):
    """Nothing to launch: the output and the gradient are empty tensors of the right shapes."""
    f = FILTERS["3x4"]
    for shape in [(0, 3, 6, 5), (2, 0, 6, 5)]:
        x = torch.randn(shape, requires_grad=True)
        y = upfirdn2d(x, f, up=2, padding=1, impl="cuda")
        assert y.shape == (*shape[:2], 6 * 2 + 2 - 3 + 1, 5 * 2 + 2 - 4 + 1)
        (gx,) = torch.autograd.grad(y.sum(), x)
        assert gx.shape == x.shape


HUGE_INPUT = """
import sys, time, torch
from cuda_ops import upfirdn2d
from cuda_ops._build import compile_cpu_kernels
kernels = compile_cpu_kernels()
planes, size = 32769, 256  # 2^31 + 2^16 input elements
try:
    x = torch.empty(1, planes, size, size, dtype=torch.float16)  # pages never written cost no memory
except RuntimeError:
    sys.exit(3)
ends = [slice(0, 2), slice(planes - 2, planes)]
for s in ends:
    x[:, s] = torch.randn(1, 2, size, size)
f = torch.randn(2, 3)
start = time.time()
y = kernels.upfirdn2d(x, f, 1, 1, 4, 4, 0, 0, 0, 0, False)
print("grid", kernels.last_grid(), "seconds", round(time.time() - start, 1))
for s in ends:
    expected = upfirdn2d(x[:, s].double(), f.double(), down=4, impl="ref")
    print("error", ((y[:, s].double() - expected).abs() / (expected.abs() + 1e-3)).max().item())
"""


@pytest.mark.slow
def test_input_over_2_31_elements(cpu_kernel_module):
    """Planes past 2^31 elements are read at their 64-bit offsets, with the grid at its cap (own process: a
    32-bit offset reads outside the tensor and may crash)."""
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", HUGE_INPUT], env=env, cwd=ROOT, text=True, capture_output=True,
                          timeout=120)
    if proc.returncode == 3:
        pytest.skip("cannot reserve 4.3 GB of address space")
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    lines = proc.stdout.split("\n")
    assert lines[0].startswith(f"grid {cpu_kernel_module.max_blocks_default()} "), proc.stdout
    errors = [float(line.split()[1]) for line in lines if line.startswith("error")]
    assert len(errors) == 2 and max(errors) < 2e-3, proc.stdout
