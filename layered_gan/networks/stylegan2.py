"""StyleGAN2 generator (skip architecture) and residual discriminator (Karras et al. 2020, config F).

Any power-of-two resolution from 8 to 1024; widths from `channel_widths`.
The synthesis network and the discriminator also run at a lower current
resolution with a fade-in factor `alpha`, for progressive growing (PerturbGAN
sec. 3.4): at alpha = 0 the output is the up-sampled previous resolution's.

W+ layout (n_latent = 2 log2(resolution) - 2 slots): the 4x4 conv reads slot
0 and its tRGB slot 1; the block at resolution 2^r reads slots 2r - 5 (up
conv), 2r - 4 (conv) and 2r - 3 (tRGB). Noise inputs: one per conv layer,
2 log2(resolution) - 3 of them, the 4x4 conv's first.

`conv_clamp` (stylegan2-ada, Karras et al. 2020b): every conv layer's output (after bias and
activation) and every tRGB output is clamped to [-conv_clamp, conv_clamp]; the discriminator's skip
connections and fully connected layers are not. None (default): no clamping.

`num_fp16_res` (stylegan2-ada's mixed precision): the synthesis blocks and discriminator blocks of the top
num_fp16_res resolutions (8 px and up: `fp16_resolutions`) may compute in float16 (weights cast in the forward
pass, activations float16); everything else, the mapping network, the 4x4 layers, the tRGB image sum and D's
last layers, stays float32. They do so only after `set_fp16` (training with `--precision fp16`,
training/precision.py); otherwise every layer computes in float32, as stylegan2-ada's `force_fp32`. 0 (default):
no float16 block.
"""

import math

import torch
import torch.nn as nn

from cuda_ops import setup_filter, upfirdn2d

from .. import rng
from ..errors import BadValue
from .layers import FORMULATIONS, ConvLayer, EqualLinear, ModulatedConv, fir_upsample2d, minibatch_stddev


def channel_widths(resolution, channel_base=32768, channel_max=512, multiplier=1.0):
    """Channels per resolution {4: c4, 8: c8, ..., resolution: c}: min(base / res, max) x multiplier.

    channel_base=32768, channel_max=512 is config F (the StyleGAN2 port's channel_multiplier=2).
    """
    check_resolution(resolution)
    return {2 ** r: max(1, int(min(channel_base // 2 ** r, channel_max) * multiplier))
            for r in range(2, int(math.log2(resolution)) + 1)}


def check_resolution(resolution):
    if resolution not in [2 ** r for r in range(3, 11)]:
        raise BadValue(f"resolution (model.resolution) must be a power of two from 8 to 1024, got {resolution}")
    return int(math.log2(resolution))


def check_formulation(formulation):
    if formulation not in FORMULATIONS:
        raise BadValue(f"formulation must be one of {FORMULATIONS}, got {formulation!r}")


def fp16_resolutions(resolution, num_fp16_res):
    """The block resolutions of a `resolution`-px network that compute in float16: the top num_fp16_res, 8 px
    and up (stylegan2-ada's rule)."""
    log2 = int(math.log2(resolution))
    return frozenset(2 ** r for r in range(max(log2 + 1 - num_fp16_res, 3), log2 + 1))


def set_fp16(module, enabled=True):
    """Let (or stop) the float16 blocks (num_fp16_res) of every synthesis network and discriminator in `module`
    compute in float16."""
    for m in module.modules():
        if isinstance(m, (SynthesisNetwork, Discriminator)):
            m.fp16 = enabled


def _in_block_dtype(net, x, res):
    """x in the dtype of net's block at `res` px: float16 or float32 after set_fp16, else x as it is."""
    if not net.fp16:
        return x
    return x.to(torch.float16 if res in net.fp16_resolutions else torch.float32)


def normalize_2nd_moment(x, eps=1e-8):
    """Pixel norm of the latent: x / sqrt(mean(x^2) + eps)."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class MappingNetwork(nn.Module):
    """z -> w: pixel norm then `num_layers` leaky-ReLU fully connected layers at lr x lr_mul."""

    def __init__(self, z_dim=512, w_dim=512, num_layers=8, lr_mul=0.01):
        super().__init__()
        self.layers = nn.ModuleList(
            EqualLinear(z_dim if i == 0 else w_dim, w_dim, lr_mul=lr_mul, activation="lrelu") for i in range(num_layers))

    def forward(self, z):
        x = normalize_2nd_moment(z)
        for layer in self.layers:
            x = layer(x)
        return x


class SynthesisBlock(nn.Module):
    """One resolution of the synthesis network: up-sampling conv, conv, tRGB."""

    def __init__(self, in_channels, out_channels, w_dim, img_channels, resample_filter, formulation, conv_clamp=None):
        super().__init__()
        self.conv0 = ModulatedConv(in_channels, out_channels, w_dim, up=2, resample_filter=resample_filter,
                                   formulation=formulation, conv_clamp=conv_clamp)
        self.conv1 = ModulatedConv(out_channels, out_channels, w_dim, formulation=formulation, conv_clamp=conv_clamp)
        self.to_rgb = ModulatedConv(out_channels, img_channels, w_dim, kernel_size=1, to_rgb=True,
                                    formulation=formulation, conv_clamp=conv_clamp)


class SynthesisNetwork(nn.Module):
    """W+ [B, n_latent, w_dim] -> image [B, img_channels, R, R] through skip tRGB outputs."""

    def __init__(self, resolution, w_dim=512, channels=None, img_channels=3, resample_filter=(1, 3, 3, 1),
                 formulation="fast", conv_clamp=None, num_fp16_res=0):
        super().__init__()
        log2 = check_resolution(resolution)
        check_formulation(formulation)
        channels = channels or channel_widths(resolution)
        self.resolution = resolution
        self.formulation = formulation
        self.num_fp16_res, self.fp16_resolutions = num_fp16_res, fp16_resolutions(resolution, num_fp16_res)
        self.fp16 = False  # set_fp16
        self.w_dim = w_dim
        self.img_channels = img_channels
        self.n_latent = 2 * log2 - 2
        self.num_noise = 2 * log2 - 3
        self.const = nn.Parameter(torch.randn(1, channels[4], 4, 4))
        self.conv_clamp = conv_clamp
        self.conv = ModulatedConv(channels[4], channels[4], w_dim, formulation=formulation, conv_clamp=conv_clamp)
        self.to_rgb = ModulatedConv(channels[4], img_channels, w_dim, kernel_size=1, to_rgb=True,
                                    formulation=formulation, conv_clamp=conv_clamp)
        self.blocks = nn.ModuleList(
            SynthesisBlock(channels[2 ** (r - 1)], channels[2 ** r], w_dim, img_channels, resample_filter, formulation,
                           conv_clamp) for r in range(3, log2 + 1))
        self.register_buffer("resample_filter", setup_filter(resample_filter), persistent=False)

    def noise_shapes(self):
        """Spatial size of each noise input, in order."""
        return [2 ** ((i + 1) // 2 + 2) for i in range(self.num_noise)]

    def make_noise(self, batch=1, device="cpu", generator=None):
        """Explicit noise tensors [batch, 1, s, s] on `device`, drawn from `generator` (rng.py's rule: a CPU generator,
        the same noise on every device) or, without one, from the device's own stream."""
        return [rng.randn((batch, 1, s, s), generator, device) for s in self.noise_shapes()]

    def upsample_rgb(self, img):
        if self.formulation == "fused" and not img.is_cuda:
            return fir_upsample2d(img, self.resample_filter)
        return upfirdn2d(img, self.resample_filter, up=2, padding=(2, 1, 2, 1), gain=4)

    def forward(self, ws, noise=None, resolution=None, alpha=1.0, return_features=False):
        """Images at `resolution` (default: full); alpha < 1 fades the last block in.

        noise: list of tensors (see make_noise) or None for fresh noise.
        return_features: also return feature maps, coarse to fine: True gives one per resolution (its last
        conv's output, 4x4 first); "all" gives every conv layer's output (the 4x4 conv, then each block's
        up-sampling conv and conv), what Labels4Free's alpha network reads.
        """
        if return_features not in (False, True, "all"):
            raise ValueError(f"return_features must be False, True or 'all', got {return_features!r}")
        if ws.ndim != 3 or ws.shape[1] != self.n_latent:
            raise ValueError(f"ws must be [B, {self.n_latent}, {self.w_dim}], got {tuple(ws.shape)}")
        num_blocks = check_resolution(resolution or self.resolution) - 2
        if num_blocks > len(self.blocks):
            raise ValueError(f"resolution {resolution} exceeds this network's {self.resolution}")
        noise = noise if noise is not None else [None] * self.num_noise
        x = self.const.expand(ws.shape[0], -1, -1, -1)
        x = self.conv(x, ws[:, 0], noise[0])
        img = self.to_rgb(x, ws[:, 1])
        features = [x]
        for i, block in enumerate(self.blocks[:num_blocks]):
            x = _in_block_dtype(self, x, 8 << i)
            x = block.conv0(x, ws[:, 2 * i + 1], noise[2 * i + 1])
            if return_features == "all":
                features.append(x)
            x = block.conv1(x, ws[:, 2 * i + 2], noise[2 * i + 2])
            features += [x]
            rgb = block.to_rgb(x, ws[:, 2 * i + 3])
            if i == num_blocks - 1 and alpha < 1:
                rgb = rgb * alpha
            img = self.upsample_rgb(img) + rgb  # float32: a float16 rgb is promoted
        if self.fp16:
            features = [f.float() for f in features]
        return (img, features) if return_features else img


class Generator(nn.Module):
    """Mapping + synthesis, with style mixing and truncation; keeps a running average w for truncation."""

    def __init__(self, resolution, z_dim=512, w_dim=512, n_mlp=8, lr_mlp=0.01, channels=None, img_channels=3,
                 resample_filter=(1, 3, 3, 1), formulation="fast", conv_clamp=None, num_fp16_res=0):
        super().__init__()
        self.z_dim = z_dim
        self.mapping = MappingNetwork(z_dim, w_dim, n_mlp, lr_mlp)
        self.synthesis = SynthesisNetwork(resolution, w_dim, channels, img_channels, resample_filter, formulation,
                                          conv_clamp, num_fp16_res)
        self.n_latent = self.synthesis.n_latent
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def track_w_avg(self, w, beta=0.995):
        """Update the running average of w (the truncation centre) during training, in w_avg's dtype (w may be
        bfloat16 under autocast)."""
        with torch.no_grad():
            self.w_avg.copy_(w.detach().to(self.w_avg.dtype).mean(0).lerp(self.w_avg, beta))

    def make_noise(self, batch=1, device="cpu", generator=None):
        return self.synthesis.make_noise(batch, device, generator)

    @torch.no_grad()
    def mean_w(self, n=4096, generator=None):
        """Average w over n random latents (what pretrained checkpoints usually ship)."""
        z = rng.randn((n, self.z_dim), generator, self.w_avg.device)
        return self.mapping(z).mean(0)

    def styles(self, z, z2=None, inject_index=None, truncation=1.0, truncation_w=None):
        """W+ [B, n_latent, w_dim]: w(z) in slots before inject_index, w(z2) from it on.

        truncation psi < 1 pulls each w towards truncation_w (default: the running average).
        """
        ws = [self.mapping(z)] + ([] if z2 is None else [self.mapping(z2)])
        if truncation != 1:
            center = self.w_avg if truncation_w is None else truncation_w
            ws = [center.lerp(w, truncation) for w in ws]
        if z2 is None:
            return ws[0][:, None].repeat(1, self.n_latent, 1)
        if inject_index is None or not 0 < inject_index < self.n_latent:
            raise ValueError(f"inject_index must be in [1, {self.n_latent - 1}] when mixing, got {inject_index}")
        return torch.cat([ws[0][:, None].repeat(1, inject_index, 1),
                          ws[1][:, None].repeat(1, self.n_latent - inject_index, 1)], dim=1)

    def forward(self, z, z2=None, inject_index=None, truncation=1.0, truncation_w=None, noise=None,
                resolution=None, alpha=1.0, return_ws=False):
        ws = self.styles(z, z2, inject_index, truncation, truncation_w)
        img = self.synthesis(ws, noise=noise, resolution=resolution, alpha=alpha)
        return (img, ws) if return_ws else img


class DiscriminatorBlock(nn.Module):
    """Residual block: two 3x3 convs (the second down-sampling) plus a 1x1 down-sampling skip, / sqrt 2."""

    def __init__(self, in_channels, out_channels, resample_filter, formulation, conv_clamp=None):
        super().__init__()
        self.conv0 = ConvLayer(in_channels, in_channels, 3, formulation=formulation, conv_clamp=conv_clamp)
        self.conv1 = ConvLayer(in_channels, out_channels, 3, down=2, resample_filter=resample_filter,
                               formulation=formulation, conv_clamp=conv_clamp)
        self.skip = ConvLayer(in_channels, out_channels, 1, down=2, bias=False, activate=False,
                              resample_filter=resample_filter, formulation=formulation)

    def forward(self, x):
        return (self.conv1(self.conv0(x)) + self.skip(x)) / math.sqrt(2)


class Discriminator(nn.Module):
    """Residual discriminator with minibatch stddev; progressive=True adds a fromRGB per resolution.

    mbstd_group None: the whole batch is one group.
    """

    def __init__(self, resolution, channels=None, img_channels=3, mbstd_group=4, mbstd_features=1,
                 resample_filter=(1, 3, 3, 1), progressive=False, formulation="fast", conv_clamp=None,
                 num_fp16_res=0):
        super().__init__()
        log2 = check_resolution(resolution)
        check_formulation(formulation)
        channels = channels or channel_widths(resolution)
        self.resolution = resolution
        self.num_fp16_res, self.fp16_resolutions = num_fp16_res, fp16_resolutions(resolution, num_fp16_res)
        self.fp16 = False  # set_fp16
        self.mbstd_group, self.mbstd_features = mbstd_group, mbstd_features
        self.conv_clamp = conv_clamp
        rgb_resolutions = [2 ** r for r in range(3, log2 + 1)] if progressive else [resolution]
        self.from_rgb = nn.ModuleDict({str(r): ConvLayer(img_channels, channels[r], 1, formulation=formulation,
                                                         conv_clamp=conv_clamp) for r in rgb_resolutions})
        # blocks[str(r)] takes r x r features to r/2 x r/2.
        self.blocks = nn.ModuleDict({str(2 ** r): DiscriminatorBlock(channels[2 ** r], channels[2 ** (r - 1)],
                                                                     resample_filter, formulation, conv_clamp)
                                     for r in range(log2, 2, -1)})
        self.final_conv = ConvLayer(channels[4] + mbstd_features, channels[4], 3, formulation=formulation,
                                    conv_clamp=conv_clamp)
        self.final_fc = EqualLinear(channels[4] * 16, channels[4], activation="lrelu")
        self.out = EqualLinear(channels[4], 1)
        self.register_buffer("resample_filter", setup_filter(resample_filter), persistent=False)

    def forward(self, img, alpha=1.0, return_features=False):
        """Scores [B, 1] for images at any resolution up to the network's; alpha < 1 fades the top block in.

        return_features: also a dict {size: features} of the input to each block and to the final layers.
        """
        res = img.shape[-1]
        check_resolution(res)
        if str(res) not in self.from_rgb:
            raise ValueError(f"no fromRGB layer for {res}x{res} input (built for {list(self.from_rgb)}); "
                             "use progressive=True for progressive growing")
        x = self.from_rgb[str(res)](_in_block_dtype(self, img, res))
        features = {}
        for r in [2 ** k for k in range(int(math.log2(res)), 2, -1)]:
            x = _in_block_dtype(self, x, r)
            features[r] = x
            x = self.blocks[str(r)](x)
            if r == res and alpha < 1:
                low = _in_block_dtype(self, upfirdn2d(img, self.resample_filter, down=2, padding=1), r // 2)
                x = self.from_rgb[str(r // 2)](low).lerp(_in_block_dtype(self, x, r // 2), alpha)
        x = _in_block_dtype(self, x, 4)
        features[4] = x
        x = minibatch_stddev(x, self.mbstd_group, self.mbstd_features)
        x = self.final_conv(x)
        x = self.out(self.final_fc(x.flatten(1)))
        return (x, features) if return_features else x
