"""Labels4Free's networks (Abdal et al. 2021, sec. 3.1-3.2) around a frozen pretrained StyleGAN2 Generator.

- `BackgroundGenerator` (G_bg, sec. 3.2): the same G with the channels of its first layer zeroed,
  either the constant input (`zero="const"`, the 512-px car model's choice) or the first conv's
  output (`zero="conv"`, the others').
- `AuthorsAlphaNetwork` (A as in the authors' `bg_extractor_repro`, the network behind the paper's numbers;
  `labels4free.alpha_network = "authors"`): per-conv 1x1 convs to 3 channels, concatenation, 12 -> 6 merge
  convs, bicubic up-sampling with align_corners=True, a final sum and a 6 -> 1 conv.
- `AlphaNetwork` (`labels4free.alpha_network = "compact"`, this toolkit's earlier design): one 1x1 conv of
  both convs' features to `width` channels per block, merged by adding bilinearly up-sampled coarser outputs.
  Both start at `start_resolution`, merge coarse to fine with leaky ReLU and end in a sigmoid at image
  resolution; pixels of one resolution do not interact.
- `Labels4FreeGenerator`: foreground G(w), mask M = A(features of G(w)) and background G_bg(w') from
  an independent latent (the paper) or from the same one, untruncated (`same_latent`: the authors'
  `train.py`), as `Layers` for the composite of eq. 1: M G(w) + (1 - M) G_bg(w'). Its latent is the pair
  (z, z') stacked, [B, 2 z_dim], so it is called like the layered generator,
  `G(z, truncation=psi, noise=G.make_noise(B))`, by every sampler and evaluation.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import BadValue
from .layered import Layers

ZERO_TENSORS = ("const", "conv")
ALPHA_NETWORKS = ("authors", "compact")


class BackgroundGenerator(nn.Module):
    """G_bg: the frozen G with channels of its first layer zeroed (all of them unless `channels` is given)."""

    def __init__(self, generator, zero="conv", channels=None):
        super().__init__()
        if zero not in ZERO_TENSORS:
            raise BadValue(f"zero must be one of {ZERO_TENSORS} (the constant input or the first conv's output), "
                           f"got {zero!r}")
        width = generator.synthesis.const.shape[1]
        if channels is not None and not all(0 <= c < width for c in channels):
            raise BadValue(f"zeroed channels must lie in [0, {width}) (the first layer's width), got {channels}")
        keep = torch.ones(width)
        keep[list(range(width)) if channels is None else list(channels)] = 0
        self.generator = generator
        self.zero = zero
        self.register_buffer("keep", keep[None, :, None, None], persistent=False)

    def _pre_hook(self, module, args):  # zero the first conv's input: the constant
        return (args[0] * self.keep,) + args[1:]

    def _hook(self, module, args, out):  # zero the first conv's output
        return out * self.keep

    def forward(self, ws, noise=None):
        """Background images from W+ [B, n_latent, w_dim]; the hook lives only during this call."""
        conv = self.generator.synthesis.conv
        handle = (conv.register_forward_pre_hook(self._pre_hook) if self.zero == "const"
                  else conv.register_forward_hook(self._hook))
        try:
            return self.generator.synthesis(ws, noise=noise)
        finally:
            handle.remove()


def _check_start(resolutions, resolution, start_resolution):
    if start_resolution not in resolutions or start_resolution > resolution:
        raise BadValue(f"alpha start resolution must be one of the generator's {sorted(resolutions)} up to "
                       f"{resolution}, got {start_resolution}")
    return [r for r in sorted(resolutions) if start_resolution <= r <= resolution]


def _by_resolution(features):
    by_res = {}
    for f in features:
        by_res.setdefault(f.shape[-1], []).append(f)
    return by_res


class AuthorsAlphaNetwork(nn.Module):
    """A of the authors' `bg_extractor_repro` (model_new.py; ../shared/REFERENCE.md): every feature map of a
    block through its own 1x1 conv to 3 channels; the coarsest block's maps concatenated (6 channels) and
    up-sampled; at each next block concatenated with its two maps (12), 1x1 conv 12 -> 6, leaky ReLU 0.2,
    up-sampled (bicubic, align_corners=True); at the finest block added to its maps, 1x1 conv 6 -> 1, sigmoid.

    channels: {resolution: [width of each feature map at that resolution]} (two convs per block).
    """

    def __init__(self, channels, resolution, start_resolution):
        super().__init__()
        if start_resolution < 8:
            raise BadValue(f"the authors' alpha network reads blocks of two convs (8 px and up), got start "
                           f"resolution {start_resolution}")
        self.resolutions = _check_start(channels, resolution, start_resolution)
        self.to_rgb = nn.ModuleList(nn.ModuleList(nn.Conv2d(c, 3, 1) for c in channels[r]) for r in self.resolutions)
        self.merge = nn.ModuleList(nn.Conv2d(12, 6, 1) for _ in self.resolutions[1:-1])
        self.to_alpha = nn.Conv2d(6, 1, 1)

    def forward(self, features):
        """features: the generator's layer outputs coarse to fine (synthesis(..., return_features="all"))."""
        by_res = _by_resolution(features)
        x = None
        for i, (r, convs) in enumerate(zip(self.resolutions, self.to_rgb)):
            y = torch.cat([conv(f) for conv, f in zip(convs, by_res[r])], dim=1)
            if x is not None:
                x = F.interpolate(x, size=(r, r), mode="bicubic", align_corners=True)
            if i == len(self.resolutions) - 1:
                x = y if x is None else x + y
            elif x is None:
                x = y
            else:
                x = F.leaky_relu(self.merge[i - 1](torch.cat([x, y], dim=1)), 0.2)
        return torch.sigmoid(self.to_alpha(x))


class AlphaNetwork(nn.Module):
    """A: features of the synthesis layers at start_resolution ... resolution -> mask [B, 1, R, R] in (0, 1).

    channels: {resolution: total width of the features given at that resolution} (the features of one
    resolution are concatenated: 2 x the block's width for both of its convs).
    """

    def __init__(self, channels, resolution, start_resolution, width=32):
        super().__init__()
        self.resolutions = _check_start(channels, resolution, start_resolution)
        self.compress = nn.ModuleList(nn.Conv2d(channels[r], width, 1) for r in self.resolutions)
        self.to_alpha = nn.Conv2d(width, 1, 1)

    def forward(self, features):
        """features: the generator's layer outputs coarse to fine (synthesis(..., return_features="all"))."""
        by_res = _by_resolution(features)
        x = None
        for r, compress in zip(self.resolutions, self.compress):
            y = compress(torch.cat(by_res[r], dim=1))
            x = y if x is None else F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False) + y
            x = F.leaky_relu(x, 0.2)
        return torch.sigmoid(self.to_alpha(x))


class Labels4FreeGenerator(nn.Module):
    """Frozen G (foreground), its channel-zeroed copy G_bg (background) and the trainable alpha network."""

    def __init__(self, generator, zero="conv", zero_channels=None, alpha_start_resolution=32, alpha_width=32,
                 alpha_network="compact", same_latent=False):
        super().__init__()
        if alpha_network not in ALPHA_NETWORKS:
            raise BadValue(f"alpha_network must be one of {ALPHA_NETWORKS}, got {alpha_network!r}")
        generator.eval().requires_grad_(False)
        self.background = BackgroundGenerator(generator, zero, zero_channels)
        synthesis = generator.synthesis
        channels = {4: [synthesis.const.shape[1]], **{2 ** (i + 3): [b.conv1.weight.shape[0]] * 2
                                                      for i, b in enumerate(synthesis.blocks)}}
        if alpha_network == "authors":
            self.alpha = AuthorsAlphaNetwork(channels, synthesis.resolution, alpha_start_resolution)
        else:
            self.alpha = AlphaNetwork({r: sum(c) for r, c in channels.items()}, synthesis.resolution,
                                      alpha_start_resolution, alpha_width)
        self.same_latent = same_latent
        self.z_dim = 2 * generator.z_dim  # (z, z') stacked; z' unused with same_latent

    @property
    def generator(self):
        return self.background.generator

    def make_noise(self, batch=1, device="cpu", generator=None):
        """Explicit noise for (foreground, background)."""
        return tuple(self.generator.make_noise(batch, device, generator) for _ in range(2))

    def foreground(self, ws, noise=None):
        """(G(w), A(features of G(w))) from W+ [B, n_latent, w_dim]: also the route for projected real images."""
        image, features = self.generator.synthesis(ws, noise=noise, return_features="all")
        return image, self.alpha(features)

    def forward(self, z, truncation=1.0, noise=None):
        """Layers(background G_bg(w'), foreground G(w), mask A(w)) for z = (z, z') stacked [B, 2 z_dim];
        truncation psi on the foreground only; with same_latent the background reads z, untruncated."""
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be [B, {self.z_dim}]: the foreground and background latents stacked, "
                             f"got {list(z.shape)}")
        noise_fg, noise_bg = noise if noise is not None else (None, None)
        G = self.generator
        z_fg, z_bg = z.chunk(2, dim=1)
        foreground, mask = self.foreground(G.styles(z_fg, truncation=truncation), noise_fg)
        background = self.background(G.styles(z_fg if self.same_latent else z_bg), noise=noise_bg)
        return Layers(background, foreground, mask)
