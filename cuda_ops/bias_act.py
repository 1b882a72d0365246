"""bias_act: add a per-channel bias, apply an activation, scale by a gain and clamp, in one op.

    y = clamp(act(x + b) * gain, -clamp, clamp)

b is broadcast along dimension `dim` of x. Each activation has its customary
gain (sqrt 2 for the ReLU family and swish, 1 otherwise) and, for lrelu and
elu, a default alpha.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ._build import choose_impl, load_plugin


@dataclass(frozen=True)
class Activation:
    code: int  # index understood by the CUDA kernel
    ref: callable  # reference: (z, alpha) -> act(z)
    gain: float
    alpha: float = 0.0


ACTIVATIONS = {
    "linear": Activation(0, lambda z, a: z, 1.0),
    "relu": Activation(1, lambda z, a: F.relu(z), math.sqrt(2)),
    "lrelu": Activation(2, lambda z, a: F.leaky_relu(z, a), math.sqrt(2), 0.2),
    "tanh": Activation(3, lambda z, a: torch.tanh(z), 1.0),
    "sigmoid": Activation(4, lambda z, a: torch.sigmoid(z), 1.0),
    "elu": Activation(5, lambda z, a: F.elu(z, a), 1.0, 1.0),
    "selu": Activation(6, lambda z, a: F.selu(z), 1.0),
    "softplus": Activation(7, lambda z, a: F.softplus(z), 1.0),
    "swish": Activation(8, lambda z, a: z * torch.sigmoid(z), math.sqrt(2)),
}


def bias_act(x, b=None, dim=1, act="linear", alpha=None, gain=None, clamp=None, impl="auto"):
    """clamp(act(x + b) * gain) with b [x.shape[dim]] broadcast along `dim`.

    alpha and gain default to the activation's own; clamp=None disables
    clamping. Differentiable twice in x and b.
    """
    if act not in ACTIVATIONS:
        raise ValueError(f"unknown activation {act!r}; choose one of {', '.join(ACTIVATIONS)}")
    spec = ACTIVATIONS[act]
    alpha = float(spec.alpha if alpha is None else alpha)
    gain = float(spec.gain if gain is None else gain)
    clamp = float(-1 if clamp is None else clamp)
    if b is not None:
        if b.ndim != 1 or not -x.ndim <= dim < x.ndim or b.shape[0] != x.shape[dim]:
            raise ValueError(f"bias of shape {tuple(b.shape)} does not match dimension {dim} of x {tuple(x.shape)}")
        dim = dim % x.ndim
    if choose_impl(impl, x, "bias_act") == "cuda":
        return _BiasActCuda.apply(x, b, dim, spec.code, alpha, gain, clamp)
    return _bias_act_ref(x, b, dim, spec, alpha, gain, clamp)


def fused_leaky_relu(x, bias, negative_slope=0.2, scale=2 ** 0.5):
    """Leaky ReLU of x + bias (bias along dim 1), times scale: the StyleGAN2 port's activation."""
    return bias_act(x, bias, dim=1, act="lrelu", alpha=negative_slope, gain=scale)


def _bias_act_ref(x, b, dim, spec, alpha, gain, clamp):
    if b is not None:
        x = x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)]).to(x.dtype)
    x = spec.ref(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def _bias_grad(dz, b, dim):
    """Gradient for b: dz summed over every dimension but `dim`."""
    if b is None:
        return None
    return dz.sum([i for i in range(dz.ndim) if i != dim]).to(b.dtype)


def _run(x, b, dy, ddz, mode, dim, code, alpha, gain, clamp):
    """One pass of the kernel. mode 0: y; 1: dy * dy/dz; 2: ddz * dy * d2y/dz2."""
    empty = x.new_empty([0])
    step = 1
    for size in x.shape[dim + 1:]:
        step *= size
    step = max(step, 1)  # a zero-sized trailing dimension: nothing to compute, but the binding wants step >= 1
    return load_plugin("bias_act").bias_act(
        x.contiguous(), empty if b is None else b.to(x.dtype).contiguous(),
        empty if dy is None else dy.contiguous(), empty if ddz is None else ddz.contiguous(),
        mode, code, alpha, gain, clamp, step)


class _BiasActCuda(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b, dim, code, alpha, gain, clamp):
        ctx.save_for_backward(x, b)
        ctx.args = (dim, code, alpha, gain, clamp)
        return _run(x, b, None, None, 0, dim, code, alpha, gain, clamp)

    @staticmethod
    def backward(ctx, dy):
        x, b = ctx.saved_tensors
        dz = _BiasActGradCuda.apply(dy, x, b, *ctx.args)
        return dz, _bias_grad(dz, b, ctx.args[0]), None, None, None, None, None


class _BiasActGradCuda(torch.autograd.Function):
    """dz = dy * act'(x + b) * gain (zero where clamped); its own backward gives second derivatives."""

    @staticmethod
    def forward(ctx, dy, x, b, dim, code, alpha, gain, clamp):
        ctx.save_for_backward(dy, x, b)
        ctx.args = (dim, code, alpha, gain, clamp)
        return _run(x, b, dy, None, 1, dim, code, alpha, gain, clamp)

    @staticmethod
    def backward(ctx, ddz):
        dy, x, b = ctx.saved_tensors
        d_dy = _run(x, b, ddz, None, 1, *ctx.args)
        d_x = _run(x, b, dy, ddz, 2, *ctx.args)
        return d_dy, d_x, _bias_grad(d_x, b, ctx.args[0]), None, None, None, None, None
