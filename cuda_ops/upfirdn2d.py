"""upfirdn2d: upsample, pad, FIR-filter and downsample a batch of images in one op.

For each channel of x [N, C, H, W] and each axis:

    y = downsample_down( filter_f( pad_padding( upsample_up(x) ) ) ) * gain

- upsample_up inserts up - 1 zeros after every sample (length H * up);
- padding (x0, x1, y0, y1) adds zeros, negative values crop;
- filter_f is a true convolution with f ("valid" extent), or a correlation
  when flip_filter=True; f is 2-D [fh, fw] or 1-D [k] (separable: applied
  along x then along y);
- downsample_down keeps every down-th sample, starting at the first.

Output size per axis: (H * up + y0 + y1 - fh) // down + 1.
"""

import torch
import torch.nn.functional as F

from ._build import choose_impl, load_plugin


def setup_filter(f, normalize=True, separable=None, device=None):
    """A float32 filter tensor from a list (e.g. [1, 3, 3, 1]), normalized to sum 1.

    A 1-D list gives a separable filter unless separable=False, which returns
    its outer product.
    """
    f = torch.as_tensor(f, dtype=torch.float32, device=device)
    if f.ndim not in (1, 2):
        raise ValueError(f"a FIR filter must be 1-D or 2-D, got shape {tuple(f.shape)}")
    if f.ndim == 1 and separable is False:
        f = f.outer(f)
    if normalize:
        f = f / f.sum()
    return f


def _pair(v, name):
    if isinstance(v, int):
        return v, v
    if len(v) == 2:
        return int(v[0]), int(v[1])
    raise ValueError(f"{name} must be an int or (x, y), got {v!r}")


def parse_padding(padding):
    """An int, (px, py) or (x0, x1, y0, y1) as the 4-tuple (x0, x1, y0, y1)."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    padding = tuple(int(p) for p in padding)
    if len(padding) == 2:
        return padding[0], padding[0], padding[1], padding[1]
    if len(padding) == 4:
        return padding
    raise ValueError(f"padding must be an int, (px, py) or (x0, x1, y0, y1), got {padding!r}")


def upfirdn2d(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1, impl="auto"):
    """Upsample, pad, filter and downsample x [N, C, H, W] with FIR filter f (see module doc).

    f: 2-D [fh, fw], 1-D [k] (separable) or None (identity). The filter is a
    constant: no gradient flows to it. Differentiable twice in x.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"upfirdn2d expects x of shape [N, C, H, W], got {getattr(x, 'shape', type(x))}")
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    if f.ndim not in (1, 2):
        raise ValueError(f"upfirdn2d filter must be 1-D or 2-D, got shape {tuple(f.shape)}")
    upx, upy = _pair(up, "up")
    downx, downy = _pair(down, "down")
    if min(upx, upy, downx, downy) < 1:
        raise ValueError(f"up and down must be >= 1, got up={up}, down={down}")
    pad = parse_padding(padding)
    fh, fw = (f.shape[0], f.shape[0]) if f.ndim == 1 else f.shape
    out_w = (x.shape[3] * upx + pad[0] + pad[1] - fw) // downx + 1
    out_h = (x.shape[2] * upy + pad[2] + pad[3] - fh) // downy + 1
    if out_w < 1 or out_h < 1:
        raise ValueError(f"upfirdn2d output would be empty ({out_h}x{out_w}) for input {tuple(x.shape)}, "
                         f"filter {tuple(f.shape)}, up={up}, down={down}, padding={padding}")
    f = f.to(device=x.device)
    if choose_impl(impl, x, "upfirdn2d") == "cuda":
        return _upfirdn2d_cuda(x, f, upx, upy, downx, downy, pad, flip_filter, gain)
    return _upfirdn2d_ref(x, f, upx, upy, downx, downy, pad, flip_filter, gain)


def _upfirdn2d_ref(x, f, upx, upy, downx, downy, pad, flip_filter, gain):
    """Reference implementation: native PyTorch ops, so autograd is automatic."""
    n, c, h, w = x.shape
    x0, x1, y0, y1 = pad
    if upx > 1 or upy > 1:  # zero insertion
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
        x = x.reshape(n, c, h * upy, w * upx)
    # Zero padding that is the same on both sides of an axis is left to the convolutions: the same sums without
    # a padded copy (bench/RESULTS.md, issue 21). The rest is padded here; negative padding crops.
    cx = x0 if x0 == x1 and x0 > 0 else 0
    cy = y0 if y0 == y1 and y0 > 0 else 0
    if max(x0 - cx, x1 - cx, y0 - cy, y1 - cy) > 0:
        x = F.pad(x, [max(x0 - cx, 0), max(x1 - cx, 0), max(y0 - cy, 0), max(y1 - cy, 0)])
    x = x[:, :, max(-y0, 0): x.shape[2] - max(-y1, 0), max(-x0, 0): x.shape[3] - max(-x1, 0)]
    f = (f * gain ** (f.ndim / 2)).to(x.dtype)
    if not flip_filter:  # conv2d correlates; flipping makes it a true convolution
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 2:  # one depthwise convolution; the filter is expanded to every channel, not copied
        return F.conv2d(x, f.expand(c, 1, *f.shape), stride=(downy, downx), padding=(cy, cx), groups=c)
    x = F.conv2d(x, f.expand(c, 1, 1, f.shape[0]), stride=(1, downx), padding=(0, cx), groups=c)
    return F.conv2d(x, f[:, None].expand(c, 1, f.shape[0], 1), stride=(downy, 1), padding=(cy, 0), groups=c)


class _Upfirdn2dCuda(torch.autograd.Function):
    """One 2-D pass of the CUDA kernel; its backward is another pass (the adjoint), so it nests."""

    @staticmethod
    def forward(ctx, x, f, upx, upy, downx, downy, pad, flip_filter):
        acc_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        y = load_plugin("upfirdn2d").upfirdn2d(x.contiguous(), f.to(acc_dtype).contiguous(),
                                               upx, upy, downx, downy, *pad, flip_filter)
        ctx.save_for_backward(f)
        ctx.args = (x.shape, y.shape, upx, upy, downx, downy, pad, flip_filter)
        return y

    @staticmethod
    def backward(ctx, dy):
        (f,) = ctx.saved_tensors
        x_shape, y_shape, upx, upy, downx, downy, pad, flip_filter = ctx.args
        fh, fw = f.shape
        grad_pad = adjoint_padding(x_shape[3], y_shape[3], upx, downx, pad[0], fw) + \
            adjoint_padding(x_shape[2], y_shape[2], upy, downy, pad[2], fh)
        dx = _Upfirdn2dCuda.apply(dy, f, downx, downy, upx, upy, grad_pad, not flip_filter)
        return dx, None, None, None, None, None, None, None


def adjoint_padding(in_size, out_size, up, down, pad0, k):
    """Padding (p0, p1) of the adjoint pass: up and down swap, the filter flips.

    Upsampling dy by `down` puts sample m at m * down in filter space; the
    filtered signal index i + pad0 of the upsampled input sees taps i + pad0 - t,
    so the adjoint pads k - 1 - pad0 in front and enough behind to produce
    in_size * up samples before keeping every up-th.
    """
    return k - 1 - pad0, in_size * up + pad0 - out_size * down


def _upfirdn2d_cuda(x, f, upx, upy, downx, downy, pad, flip_filter, gain):
    f = f * gain ** (f.ndim / 2)
    if f.ndim == 2:
        return _Upfirdn2dCuda.apply(x, f, upx, upy, downx, downy, pad, flip_filter)
    x = _Upfirdn2dCuda.apply(x, f[None, :], upx, 1, downx, 1, (pad[0], pad[1], 0, 0), flip_filter)
    return _Upfirdn2dCuda.apply(x, f[:, None], 1, upy, 1, downy, (0, 0, pad[2], pad[3]), flip_filter)
