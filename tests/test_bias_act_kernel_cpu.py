"""The bias_act CUDA kernel compiled as C++ and run on the CPU (conftest: kernels_on_cpu) against the reference.

Through the op's autograd code, the forward pass runs mode 0, the backward mode 1, and the double backward
modes 1 (for dy) and 2 (for x and b).
"""

import pytest
import torch

from cuda_ops import ACTIVATIONS, bias_act

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]


def value_and_derivatives(x, b, dy, ddz, **kw):
    """y; dz = dy * dy/dz (and its bias sum); the gradients of <dz, ddz> in dy, x and b (zero if unused)."""
    y = bias_act(x, b, **kw)
    dz, db = torch.autograd.grad(y, (x, b), dy, create_graph=True)
    return (y, dz, db) + torch.autograd.grad((dz * ddz).sum(), (dy, x, b), materialize_grads=True)


def close_enough(got, expected, dtype):
    """Within a few epsilons of the dtype, relative to the largest value of the result."""
    eps = torch.finfo(dtype).eps
    ulps = 4 * eps if dtype in (torch.float16, torch.bfloat16) else 64 * eps
    return ((got.double() - expected).abs() <= ulps * (expected.abs() + expected.abs().max())).all()


def off_the_clamp(x, b, dim, clamp):
    """x with every element whose x + b lands exactly on +-clamp moved 1 % towards zero (a bfloat16 sum can)."""
    shape = [1] * x.dim()
    shape[dim] = -1
    tie = (x.double() + b.double().reshape(shape)).abs() == clamp
    return torch.where(tie, x * 0.99, x)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_kernel_matches_reference(kernels_on_cpu, dtype):
    """Every activation, with and without clamping, bias along a middle and the last dimension, any layout."""
    checked = 0
    for act in ACTIVATIONS:
        for clamp in (None, 1.5):
            for dim, layout in [(1, "contiguous"), (1, "channels_last"), (3, "strided")]:
                base = torch.randn(2, 5, 4, 6) * 2
                if layout == "channels_last":
                    base = base.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
                elif layout == "strided":
                    base = torch.randn(2, 5, 4, 12)[..., ::2] * 2
                leaves = [base, torch.randn(base.shape[dim]), torch.randn(base.shape), torch.randn(base.shape)]
                inputs = [t.to(dtype) for t in leaves]
                if clamp is not None:  # off the clamp itself: a tie there has no one right derivative
                    inputs[0] = off_the_clamp(inputs[0], inputs[1], dim, clamp)
                inputs = [t.requires_grad_() for t in inputs]
                exact = [t.detach().double().requires_grad_() for t in inputs]
                got = value_and_derivatives(*inputs, dim=dim, act=act, clamp=clamp, impl="cuda")
                expected = value_and_derivatives(*exact, dim=dim, act=act, clamp=clamp, impl="ref")
                for name, g, e in zip(["y", "dz", "db", "d_dy", "d_x", "d_b"], got, expected):
                    assert g.dtype == dtype, name
                    assert close_enough(g, e, dtype), f"{act} clamp={clamp} dim={dim} {layout}: {name}"
                checked += 1
    assert checked == len(ACTIVATIONS) * 2 * 3


def test_clamping_zeroes_the_derivatives(kernels_on_cpu):
    x = torch.linspace(-3, 3, 61).reshape(1, 61).requires_grad_()
    y = bias_act(x, act="linear", gain=1, clamp=1.0, impl="cuda")
    (dz,) = torch.autograd.grad(y.sum(), x)
    assert y.abs().max() == 1.0
    assert torch.equal(dz, (x.abs() < 1.0).float())  # as torch.clamp: strictly inside


@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_kernel_gradcheck_and_gradgradcheck(kernels_on_cpu, act):
    x = (torch.randn(2, 3, 4, dtype=torch.float64) * 2).requires_grad_()
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    fn = lambda x, b: bias_act(x, b, act=act, clamp=0.8, impl="cuda")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))


def test_grid_stride_loop_covers_elements_beyond_the_grid(kernels_on_cpu):
    x, b = torch.randn(4, 8, 9, 7), torch.randn(8)
    kernels_on_cpu.set_max_blocks(2)  # 512 threads for 2016 elements
    torch.testing.assert_close(bias_act(x, b, act="swish", impl="cuda"), bias_act(x, b, act="swish", impl="ref"))
    assert kernels_on_cpu.last_grid() == 2


def test_empty_tensors(kernels_on_cpu):
    """Zero-sized dimensions before, at and after the bias dimension."""
    for shape in [(0, 3, 4), (2, 3, 0, 4), (2, 0, 5)]:
        x = torch.randn(shape, requires_grad=True)
        b = torch.randn(shape[1], requires_grad=True)
        y = bias_act(x, b, act="lrelu", impl="cuda")
        gx, gb = torch.autograd.grad(y.sum(), (x, b))
        assert y.shape == gx.shape == x.shape and gb.shape == b.shape
        assert torch.equal(gb, torch.zeros_like(b))
