import itertools

import numpy as np
import pytest
import scipy.signal
import torch

from cuda_ops import setup_filter, upfirdn2d


def output_and_grads(x, f, impl, case):
    """upfirdn2d(x) with one implementation, the gradient of its squared norm, and that gradient's own (double
    backward)."""
    y = upfirdn2d(x, f, impl=impl, **case)
    (gx,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
    (ggx,) = torch.autograd.grad(gx.square().sum(), x)
    return y, gx, ggx


def direct_upfirdn2d(x, f, up, down, pad, flip_filter, gain):
    """The definition, one channel at a time: zero insertion, pad/crop, scipy 2-D convolution, striding."""
    upx, upy = up
    downx, downy = down
    x0, x1, y0, y1 = pad
    f = np.outer(f, f) if f.ndim == 1 else f
    x = x.numpy()
    n, c, h, w = x.shape
    u = np.zeros((n, c, h * upy, w * upx))
    u[:, :, ::upy, ::upx] = x
    v = np.zeros((n, c, h * upy + y0 + y1, w * upx + x0 + x1))
    ys, xs = slice(max(-y0, 0), h * upy - max(-y1, 0)), slice(max(-x0, 0), w * upx - max(-x1, 0))
    v[:, :, max(y0, 0): max(y0, 0) + ys.stop - ys.start, max(x0, 0): max(x0, 0) + xs.stop - xs.start] = u[:, :, ys, xs]
    op = scipy.signal.correlate2d if flip_filter else scipy.signal.convolve2d
    out = np.stack([np.stack([op(v[i, j], f, mode="valid") for j in range(c)]) for i in range(n)])
    return torch.from_numpy(out[:, :, ::downy, ::downx] * gain)


def _pairs(v):
    return (v, v) if isinstance(v, int) else v


RNG = np.random.default_rng(0)
FILTERS = {
    "fir4_separable": setup_filter([1, 3, 3, 1]).double().numpy(),
    "random3_separable": RNG.normal(size=3),
    "random3x5": RNG.normal(size=(3, 5)),
    "identity1x1": np.ones((1, 1)),
}
# Symmetric padding runs inside the reference's convolutions, the rest as an explicit pad or crop: every mix.
PADDINGS = [(0, 0, 0, 0), (1, 1, 1, 1), (2, 1, 2, 1), (1, 2, 0, 3), (-1, 2, 1, -2), (2, 2, 1, 3), (-1, -1, 2, 2)]
UPS = [1, 2, 3, (2, 1)]
DOWNS = [1, 2, 3, (1, 2)]


@pytest.mark.parametrize("fname", list(FILTERS))
def test_reference_matches_definition(fname):
    f = FILTERS[fname]
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    checked = 0
    for up, down, pad, flip, gain in itertools.product(UPS, DOWNS, PADDINGS, [False, True], [1, 4]):
        (upx, upy), (downx, downy) = _pairs(up), _pairs(down)
        fh, fw = (f.shape[0],) * 2 if f.ndim == 1 else f.shape
        if x.shape[3] * upx + pad[0] + pad[1] < fw or x.shape[2] * upy + pad[2] + pad[3] < fh:
            continue
        expected = direct_upfirdn2d(x, f, (upx, upy), (downx, downy), pad, flip, gain)
        got = upfirdn2d(x, torch.from_numpy(f), up=up, down=down, padding=pad, flip_filter=flip, gain=gain, impl="ref")
        assert got.shape == expected.shape, (up, down, pad)
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10, msg=f"up={up} down={down} pad={pad} flip={flip}")
        checked += 1
    assert checked > 250


def test_padding_forms_and_output_size():
    x = torch.randn(1, 2, 8, 8)
    f = setup_filter([1, 3, 3, 1])
    torch.testing.assert_close(upfirdn2d(x, f, padding=1), upfirdn2d(x, f, padding=(1, 1, 1, 1)))
    torch.testing.assert_close(upfirdn2d(x, f, padding=(2, 1)), upfirdn2d(x, f, padding=(2, 2, 1, 1)))
    assert upfirdn2d(x, f, up=2, padding=(2, 1, 2, 1)).shape[-2:] == (16, 16)
    assert upfirdn2d(x, f, down=2, padding=1).shape[-2:] == (4, 4)
    assert upfirdn2d(x, None, padding=(-2, -2, -1, -1)).shape[-2:] == (6, 4)


def test_separable_equals_outer_product():
    x = torch.randn(2, 3, 7, 9, dtype=torch.float64)
    f = torch.tensor([1.0, -2.0, 5.0], dtype=torch.float64)
    a = upfirdn2d(x, f, up=2, down=3, padding=(1, 2, 0, 1), gain=3)
    b = upfirdn2d(x, f.outer(f), up=2, down=3, padding=(1, 2, 0, 1), gain=3)
    torch.testing.assert_close(a, b)


def test_bad_arguments_are_named():
    x = torch.randn(1, 1, 4, 4)
    with pytest.raises(ValueError, match="padding"):
        upfirdn2d(x, None, padding=(1, 2, 3))
    with pytest.raises(ValueError, match="empty"):
        upfirdn2d(x, torch.ones(3, 3), padding=-2)
    with pytest.raises(ValueError, match="up and down"):
        upfirdn2d(x, None, up=0)
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        upfirdn2d(torch.randn(4, 4), None)
    with pytest.raises(ValueError, match="impl"):
        upfirdn2d(x, None, impl="fast")
    with pytest.raises(ValueError, match="CUDA tensor"):
        upfirdn2d(x, None, impl="cuda")


GRAD_CASES = [
    dict(up=2, padding=(2, 1, 2, 1), gain=4),
    dict(down=2, padding=1),
    dict(down=(1, 2), padding=(2, 2, 0, 1)),
    dict(up=3, down=2, padding=(1, 0, 2, -1), flip_filter=True),
]


@pytest.mark.parametrize("case", GRAD_CASES)
@pytest.mark.parametrize("separable", [True, False])
def test_reference_gradcheck_and_gradgradcheck(case, separable):
    x = torch.randn(1, 2, 5, 4, dtype=torch.float64, requires_grad=True)
    f = torch.tensor([1.0, 2.0, -1.0], dtype=torch.float64)
    f = f if separable else f.outer(torch.tensor([0.5, 1.0, 3.0], dtype=torch.float64))
    fn = lambda t: upfirdn2d(t, f, impl="ref", **case)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("case", GRAD_CASES + [dict(up=(2, 1), down=(1, 3), padding=(3, -1, 0, 2))])
@pytest.mark.parametrize("separable", [True, False])
def test_cuda_matches_reference(case, dtype, separable):
    x = torch.randn(3, 5, 17, 13, device="cuda", dtype=dtype, requires_grad=True)
    f = setup_filter([1, 3, 3, 1], separable=separable, device="cuda")
    tol = dict(rtol=1e-2, atol=1e-2) if dtype == torch.float16 else dict(rtol=1e-5, atol=1e-5)
    for a, b in zip(output_and_grads(x, f, "cuda", case), output_and_grads(x, f, "ref", case)):
        torch.testing.assert_close(a.float(), b.float(), **tol)


@cuda
def test_cuda_gradgradcheck():
    x = torch.randn(1, 2, 5, 4, dtype=torch.float64, device="cuda", requires_grad=True)
    f = torch.tensor([[1.0, 2.0, -1.0], [0.5, 0.0, 2.0]], dtype=torch.float64, device="cuda")
    fn = lambda t: upfirdn2d(t, f, up=2, down=3, padding=(1, 2, 2, 0), impl="cuda")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))
