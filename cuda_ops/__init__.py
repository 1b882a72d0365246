"""Fused ops for StyleGAN2 networks: a CUDA kernel and an exact PyTorch reference behind one function each.

impl='auto' runs the CUDA kernel on CUDA tensors (built just in time, cached)
and the reference elsewhere; impl='ref' forces the reference, impl='cuda' the
kernel. Both are differentiable twice.
"""

from ._build import describe_ops
from .bias_act import ACTIVATIONS, bias_act, fused_leaky_relu
from .upfirdn2d import setup_filter, upfirdn2d

__all__ = ["ACTIVATIONS", "bias_act", "describe_ops", "fused_leaky_relu", "setup_filter", "upfirdn2d"]
