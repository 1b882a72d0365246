"""StyleGAN2 building blocks with equalized learning rate (Karras et al. 2020, sec. 2-4).

Every weight is stored N(0, 1) and scaled at run time by 1/sqrt(fan_in), so
Adam sees the same dynamic range in every layer.

Three formulations of the same computation are available (`formulation=`):
- 'fast' (default): modulation scales activations and demodulation scales
  outputs around one ordinary convolution shared by the batch; up-sampling
  convolutions run as a transposed convolution on the coarse grid followed by
  the FIR filter, down-sampling ones as FIR blur then a stride-2 convolution.
- 'plain': the straightforward one: per-sample modulated weights in a grouped
  convolution, up-sampling by zero insertion and FIR before the convolution,
  down-sampling by FIR and decimation after it.
- 'fused': 'fast' tuned for the CPU (bench/RESULTS.md, issue 21). Off CUDA,
  where no bias_act kernel fuses it, each layer's elementwise tail takes fewer
  passes: a synthesis layer's demodulation, noise, bias, leaky ReLU and gain
  three (ModulatedConv._fused_forward), a discriminator layer's bias goes inside
  its convolution and its gain into the weights (ConvLayer._fused_forward); the
  FIR runs as one 2-D pass and the tRGB images are up-sampled by a transposed
  convolution (fir_upsample2d). The 1x1 down-sampling skip convolution runs
  after the FIR has decimated.
All give the same result up to float rounding (tests check it); 'plain' is
kept as the baseline the benchmark measures against.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from cuda_ops import ACTIVATIONS, bias_act, setup_filter, upfirdn2d

FORMULATIONS = ("fast", "plain", "fused")


class EqualLinear(nn.Module):
    """Fully connected layer, equalized lr; `lr_mul` slows it down (mapping network: 0.01)."""

    def __init__(self, in_features, out_features, bias=True, bias_init=0.0, lr_mul=1.0, activation="linear"):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init) / lr_mul)) if bias else None
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x):
        x = F.linear(x, self.weight * self.weight_gain)
        b = None if self.bias is None else self.bias * self.lr_mul
        return bias_act(x, b, act=self.activation)

    def extra_repr(self):
        return f"{self.weight.shape[1]} -> {self.weight.shape[0]}, lr_mul={self.lr_mul}, act={self.activation}"


def upsample_conv_padding(kernel_size, filter_size):
    """FIR padding (p0, p1) that makes transposed-conv + FIR match zero-insert + FIR + conv.

    The transposed convolution of an H-sample input has 2H + k - 2 samples; the
    FIR pass must bring that back to 2H, centred as the plain formulation is.
    """
    p = filter_size - kernel_size - 1
    return (p + 1) // 2 + 1, p // 2 + 1


def conv2d_resample(x, weight, resample_filter, up=1, down=1, groups=1, formulation="fast", bias=None):
    """A k x k 'same' convolution (correlation) with optional 2x FIR up- or down-sampling.

    up=2: out[2H] = valid conv of FIR(zero_insert(x)) padded to the conv's full
    support; 'fast' computes it as a transposed convolution on the small grid
    followed by the FIR filter (4x fewer MACs).
    down=2: out[H/2] = FIR-and-decimate of the full-resolution conv; 'fast' blurs
    first and runs the conv with stride 2 (4x fewer MACs); 'fused' runs a 1x1 conv
    after the FIR has decimated (the FIR computes a quarter of the samples).
    bias [O]: added by the convolution ('fast' and 'fused' without up-sampling only).
    weight and bias are cast to x's dtype (float16 in the networks' float16 blocks).
    """
    k = weight.shape[-1]
    weight = weight.to(x.dtype)
    bias = None if bias is None else bias.to(x.dtype)
    if formulation == "fused" and resample_filter.ndim == 1 and not x.is_cuda:
        # One 2-D depthwise FIR pass instead of two 1-D ones: on channels-last tensors its backward is ~4x faster.
        resample_filter = resample_filter.outer(resample_filter)
    if bias is not None and (up != 1 or formulation == "plain"):
        raise ValueError("conv2d_resample adds a bias only without up-sampling and not in the 'plain' formulation")
    if up == 1 and down == 1:
        return F.conv2d(x, weight, bias, padding=k // 2, groups=groups)
    fk = resample_filter.shape[0]
    if down == 2:
        p = fk - 2 + k - 1
        p0, p1 = (p + 1) // 2, p // 2
        if formulation == "plain":  # full-resolution conv over its full support, then FIR and decimation
            x = F.conv2d(x, weight, padding=k - 1, groups=groups)
            return upfirdn2d(x, resample_filter, down=2, padding=(p0 - k + 1, p1 - k + 1, p0 - k + 1, p1 - k + 1))
        if k == 1 and formulation == "fused":  # a 1x1 conv commutes with the FIR: decimate first
            return F.conv2d(upfirdn2d(x, resample_filter, down=2, padding=(p0, p1, p0, p1)), weight, bias,
                            groups=groups)
        x = upfirdn2d(x, resample_filter, padding=(p0, p1, p0, p1))
        return F.conv2d(x, weight, bias, stride=2, groups=groups)
    if up != 2:
        raise ValueError(f"conv2d_resample supports up=2 or down=2, got up={up}, down={down}")
    p0, p1 = upsample_conv_padding(k, fk)
    if formulation == "plain":  # the FIR output spans the convolution's full support
        a0, a1 = p0 + k - 1, p1 + k - 2
        x = upfirdn2d(x, resample_filter, up=2, padding=(a0, a1, a0, a1), gain=4)
        return F.conv2d(x, weight, groups=groups)
    out_ch, in_ch = weight.shape[:2]
    # conv_transpose2d wants [in, out / groups, k, k] and convolves (no flip): undo both.
    w = weight.reshape(groups, out_ch // groups, in_ch, k, k).transpose(1, 2)
    w = w.reshape(groups * in_ch, out_ch // groups, k, k).flip([2, 3])
    x = F.conv_transpose2d(x, w, stride=2, groups=groups)
    return upfirdn2d(x, resample_filter, padding=(p0, p1, p0, p1), gain=4)


def fir_upsample2d(x, f):
    """upfirdn2d(x, f, up=2, padding=(2, 1, 2, 1), gain=4) for a 4-tap filter f (1-D separable or 2-D), as one
    transposed depthwise convolution on the coarse grid: no zero insertion, a quarter of the multiplications, and
    on channels-last images ~3x faster forward and backward than the zero-inserted FIR (formulation='fused')."""
    if f.shape[-1] != 4:
        raise ValueError(f"fir_upsample2d takes a 4-tap filter, got shape {tuple(f.shape)}")
    f = f.outer(f) if f.ndim == 1 else f
    c = x.shape[1]
    # out[j] = sum_i x[i] f[j + 1 - 2i]: the zero-inserted input convolved with f, the padding's offset in padding=1.
    return F.conv_transpose2d(x, (f * 4).to(x.dtype).expand(c, 1, 4, 4), stride=2, padding=1, groups=c)


def leaky_relu_clamp_(x, clamp):
    """The fused layers' last step: leaky ReLU in place, then clamp to [-clamp, clamp] (None: not clamped) out of
    place, since leaky_relu_ keeps its output for backward."""
    x = F.leaky_relu_(x, ACTIVATIONS["lrelu"].alpha)
    return x if clamp is None else x.clamp(-clamp, clamp)


def modulated_conv2d(x, weight, styles, demodulate=True, up=1, resample_filter=None, formulation="fast"):
    """StyleGAN2 modulated convolution (eq. 1-3): w'_ijk = s_i w_ijk, w'' = w' / sqrt(sum w'^2 + 1e-8).

    x [B, I, H, W]; weight [O, I, k, k] (already scaled for equalized lr); styles [B, I].
    """
    batch, in_ch = styles.shape
    out_ch, _, k, _ = weight.shape
    w = weight[None] * styles[:, None, :, None, None]  # [B, O, I, k, k]
    dcoefs = (w.square().sum([2, 3, 4]) + 1e-8).rsqrt() if demodulate else None  # [B, O]
    if formulation == "plain":
        if demodulate:
            w = w * dcoefs[:, :, None, None, None]
        x = x.reshape(1, batch * in_ch, *x.shape[2:])
        x = conv2d_resample(x, w.reshape(batch * out_ch, in_ch, k, k), resample_filter, up=up, groups=batch,
                            formulation="plain")
        return x.reshape(batch, out_ch, *x.shape[2:])
    x = x * styles[:, :, None, None].to(x.dtype)
    x = conv2d_resample(x, weight, resample_filter, up=up, formulation=formulation)
    if demodulate:
        x = x * dcoefs[:, :, None, None].to(x.dtype)
    return x


class ModulatedConv(nn.Module):
    """Affine style projection + modulated conv (+ noise, bias, activation): one synthesis layer.

    With to_rgb=True: a 1x1 conv without demodulation, noise or activation.
    conv_clamp: clamp the output to [-conv_clamp, conv_clamp] after bias and activation (stylegan2-ada's
    `conv_clamp`; None: no clamping).
    A float16 input (a float16 block, networks/stylegan2.py) computes in float16, its styles and weights first
    divided by their largest magnitudes (as stylegan2-ada does): demodulation undoes the scale, and the float16
    products stay in range.
    """

    def __init__(self, in_channels, out_channels, w_dim, kernel_size=3, up=1, resample_filter=(1, 3, 3, 1),
                 to_rgb=False, formulation="fast", conv_clamp=None):
        super().__init__()
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.noise_strength = None if to_rgb else nn.Parameter(torch.zeros([]))
        self.register_buffer("resample_filter", setup_filter(resample_filter), persistent=False)
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.up = up
        self.to_rgb = to_rgb
        self.formulation = formulation
        self.conv_clamp = conv_clamp

    def forward(self, x, w, noise=None):
        """x [B, I, H, W], w [B, w_dim]; noise [B or 1, 1, H', W'] or None (fresh Gaussian noise)."""
        styles = self.affine(w)
        if x.dtype == torch.float16 and not self.to_rgb:
            weight = self.weight * (self.weight_gain / self.weight.abs().amax(dim=[1, 2, 3], keepdim=True))
            styles = styles / styles.abs().amax(dim=1, keepdim=True)
        else:
            weight = self.weight * self.weight_gain
        if self.formulation == "fused" and not self.to_rgb and not x.is_cuda:
            return self._fused_forward(x, weight, styles, noise)
        x = modulated_conv2d(x, weight, styles, demodulate=not self.to_rgb, up=self.up,
                             resample_filter=self.resample_filter, formulation=self.formulation)
        if self.to_rgb:
            return bias_act(x, self.bias, clamp=self.conv_clamp)
        x = x + (self._noise(x, noise) * self.noise_strength).to(x.dtype)
        return bias_act(x, self.bias, act="lrelu", clamp=self.conv_clamp)

    @staticmethod
    def _noise(x, noise):
        if noise is None:
            return torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype)
        return noise

    def _fused_forward(self, x, weight, styles, noise):
        """formulation='fused': demodulation and bias in one pass, then noise and leaky ReLU in place, and the
        demodulation coefficients from a [B, I] x [I, O] product instead of the [B, O, I, k, k] modulated weights.
        lrelu(z) * gain = lrelu(z * gain) for gain > 0, so the gain goes into the coefficients."""
        dcoefs = (styles.square() @ weight.square().sum([2, 3]).T + 1e-8).rsqrt()  # [B, O]
        x = conv2d_resample(x * styles[:, :, None, None].to(x.dtype), weight, self.resample_filter, up=self.up,
                            formulation="fused")
        gain = ACTIVATIONS["lrelu"].gain
        # addcmul keeps its inputs, not its output, for backward: the output may be updated in place. The noise
        # goes in by add_, not addcmul_: addcmul_ with an operand broadcast over channels is ~10x slower on
        # channels-last tensors.
        out = torch.addcmul((self.bias * gain)[None, :, None, None].to(x.dtype), x,
                            (dcoefs * gain)[:, :, None, None].to(x.dtype))
        out.add_(self._noise(x, noise) * (self.noise_strength * gain))
        return leaky_relu_clamp_(out, self.conv_clamp)


class ConvLayer(nn.Module):
    """Equalized-lr conv (optionally FIR down-sampling by 2) + bias + leaky ReLU: a discriminator layer.

    conv_clamp: clamp the output to [-conv_clamp, conv_clamp] (stylegan2-ada's `conv_clamp`; None: no clamping).
    """

    def __init__(self, in_channels, out_channels, kernel_size, down=1, bias=True, activate=True,
                 resample_filter=(1, 3, 3, 1), formulation="fast", conv_clamp=None):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.register_buffer("resample_filter", setup_filter(resample_filter), persistent=False)
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.down = down
        self.act = "lrelu" if activate else "linear"
        self.formulation = formulation
        self.conv_clamp = conv_clamp

    def forward(self, x):
        if self.formulation == "fused" and self.act == "lrelu" and not x.is_cuda:
            return self._fused_forward(x)
        x = conv2d_resample(x, self.weight * self.weight_gain, self.resample_filter, down=self.down,
                            formulation=self.formulation)
        return bias_act(x, self.bias, act=self.act, clamp=self.conv_clamp)

    def _fused_forward(self, x):
        """formulation='fused': the activation's gain folded into weight and bias (lrelu(z) * gain =
        lrelu(z * gain) for gain > 0), the bias added by the convolution, the leaky ReLU in place: one pass
        after the convolution instead of three."""
        gain = ACTIVATIONS["lrelu"].gain
        x = conv2d_resample(x, self.weight * (self.weight_gain * gain), self.resample_filter, down=self.down,
                            formulation="fused", bias=None if self.bias is None else self.bias * gain)
        return leaky_relu_clamp_(x, self.conv_clamp)


def minibatch_stddev(x, group_size=4, num_features=1):
    """Append the std of features across groups of samples (Karras et al. 2018, sec. 3).

    Sample i is grouped with samples i + k * (B / G); G = the largest divisor of B up to group_size
    (group_size None: the whole batch, as stylegan2-ada's `mbstd_group_size=None`).
    """
    b, c, h, w = x.shape
    group_size = b if group_size is None else group_size
    g = max(d for d in range(1, min(group_size, b) + 1) if b % d == 0)
    y = x.reshape(g, -1, num_features, c // num_features, h, w)
    y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt()  # [B/G, F, C/F, H, W]
    y = y.mean(dim=[2, 3, 4])  # [B/G, F]
    y = y.reshape(-1, num_features, 1, 1).repeat(g, 1, h, w)
    return torch.cat([x, y], dim=1)
