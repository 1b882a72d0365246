import math

import numpy as np
import pytest
import torch

from cuda_ops import ACTIVATIONS, bias_act, fused_leaky_relu

SELU_SCALE, SELU_ALPHA = 1.0507009873554805, 1.6732632423543772

# Each activation written out from its definition, with its customary gain and alpha.
DEFINITIONS = {
    "linear": (lambda z, a: z, 1.0, None),
    "relu": (lambda z, a: np.maximum(z, 0), math.sqrt(2), None),
    "lrelu": (lambda z, a: np.where(z > 0, z, a * z), math.sqrt(2), 0.2),
    "tanh": (lambda z, a: (np.exp(z) - np.exp(-z)) / (np.exp(z) + np.exp(-z)), 1.0, None),
    "sigmoid": (lambda z, a: 1 / (1 + np.exp(-z)), 1.0, None),
    "elu": (lambda z, a: np.where(z > 0, z, a * (np.exp(z) - 1)), 1.0, 1.0),
    "selu": (lambda z, a: SELU_SCALE * np.where(z > 0, z, SELU_ALPHA * (np.exp(z) - 1)), 1.0, None),
    "softplus": (lambda z, a: np.log1p(np.exp(z)), 1.0, None),
    "swish": (lambda z, a: z / (1 + np.exp(-z)), math.sqrt(2), None),
}


def test_every_activation_is_defined():
    assert set(DEFINITIONS) == set(ACTIVATIONS)


@pytest.mark.parametrize("act", list(DEFINITIONS))
@pytest.mark.parametrize("dim,shape", [(1, (2, 5, 3, 4)), (2, (3, 2, 5)), (1, (4, 5))])
def test_reference_matches_definition(act, dim, shape):
    fn, gain, alpha = DEFINITIONS[act]
    x = torch.randn(shape, dtype=torch.float64) * 3
    b = torch.randn(shape[dim], dtype=torch.float64)
    bshape = [-1 if i == dim else 1 for i in range(len(shape))]
    z = (x + b.reshape(bshape)).numpy()
    expected = torch.from_numpy(fn(z, alpha) * gain)
    torch.testing.assert_close(bias_act(x, b, dim=dim, act=act, impl="ref"), expected)
    # explicit alpha, gain and clamp
    expected = torch.from_numpy(np.clip(fn(z, 0.3) * 0.7, -0.5, 0.5))
    torch.testing.assert_close(bias_act(x, b, dim=dim, act=act, alpha=0.3, gain=0.7, clamp=0.5, impl="ref"), expected)


def test_no_bias_and_fused_leaky_relu():
    x = torch.randn(2, 3, 4, 4)
    b = torch.randn(3)
    torch.testing.assert_close(bias_act(x, act="relu"), torch.relu(x) * math.sqrt(2))
    z = x + b[None, :, None, None]
    torch.testing.assert_close(fused_leaky_relu(x, b), torch.where(z > 0, z, 0.2 * z) * math.sqrt(2))
    torch.testing.assert_close(fused_leaky_relu(x, b, 0.1, 1.0), torch.where(z > 0, z, 0.1 * z))


def test_bad_arguments_are_named():
    x = torch.randn(2, 3, 4)
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        bias_act(x, act="gelu")
    with pytest.raises(ValueError, match="does not match dimension 1"):
        bias_act(x, torch.zeros(4))


@pytest.mark.parametrize("act", list(DEFINITIONS))
@pytest.mark.parametrize("clamp", [None, 0.8])
def test_reference_gradcheck_and_gradgradcheck(act, clamp):
    x = (torch.randn(2, 3, 4, dtype=torch.float64) * 2).requires_grad_()
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    fn = lambda x, b: bias_act(x, b, act=act, clamp=clamp, impl="ref")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
@pytest.mark.parametrize("act", list(DEFINITIONS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("clamp", [None, 1.0])
def test_cuda_matches_reference(act, dtype, clamp):
    x = (torch.randn(4, 8, 9, 7, device="cuda", dtype=dtype) * 2).requires_grad_()
    b = torch.randn(8, device="cuda", dtype=dtype, requires_grad=True)
    tol = dict(rtol=2e-2, atol=2e-2) if dtype == torch.float16 else dict(rtol=1e-4, atol=1e-4)
    outs = []
    for impl in ("cuda", "ref"):
        y = bias_act(x, b, act=act, clamp=clamp, impl=impl)
        gx, gb = torch.autograd.grad(y.square().sum(), (x, b), create_graph=True)
        ggx, ggb = torch.autograd.grad((gx.square().sum() + gb.square().sum()), (x, b), allow_unused=True)
        outs.append([y, gx, gb, ggx, ggb])
    for a, r in zip(*outs):
        if a is None or r is None:
            continue
        torch.testing.assert_close(a.float(), r.float(), **tol)


@cuda
@pytest.mark.parametrize("act", list(DEFINITIONS))
def test_cuda_gradgradcheck(act):
    x = (torch.randn(2, 3, 4, dtype=torch.float64, device="cuda") * 2).requires_grad_()
    b = torch.randn(3, dtype=torch.float64, device="cuda", requires_grad=True)
    fn = lambda x, b: bias_act(x, b, act=act, clamp=0.8, impl="cuda")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))
