"""Labels4Free's networks (Abdal et al. 2021, sec. 3.1-3.2) around a frozen pretrained StyleGAN2 Generator.

- `BackgroundGenerator` (G_bg, sec. 3.2): the same G with the channels of its first layer zeroed,
  either the constant input (`zero="const"`, the 512-px car model's choice) or the first conv's
  output (`zero="conv"`, the others').
- `AlphaNetwork` (A, sec. 3.1, fig. 3): 1x1 convs compress the features of the synthesis layers
  (both convs of each block) from `start_resolution` on; coarse-to-fine merge with 2x up-sampling
  and leaky ReLU; a sigmoid at image resolution. Pixels of one resolution do not interact.
- `Labels4FreeGenerator`: foreground G(w), mask M = A(features of G(w)) and background G_bg(w') from
  an independent latent, as `Layers` for the composite of eq. 1: M G(w) + (1 - M) G_bg(w'). Its
  latent is the pair (z, z') stacked, [B, 2 z_dim], so it is called like the layered generator,
  `G(z, truncation=psi, noise=G.make_noise(B))`, by every sampler and evaluation.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import BadValue
from .layered import Layers

ZERO_TENSORS = ("const", "conv")


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


class AlphaNetwork(nn.Module):
    """A: features of the synthesis layers at start_resolution ... resolution -> mask [B, 1, R, R] in (0, 1).

    channels: {resolution: total width of the features given at that resolution} (the features of one
    resolution are concatenated: 2 x the block's width for both of its convs).
    """

    def __init__(self, channels, resolution, start_resolution, width=32):
        super().__init__()
        if start_resolution not in channels or start_resolution > resolution:
            raise BadValue(f"alpha start resolution must be one of the generator's {sorted(channels)} up to "
                           f"{resolution}, got {start_resolution}")
        self.resolutions = [r for r in sorted(channels) if start_resolution <= r <= resolution]
        self.compress = nn.ModuleList(nn.Conv2d(channels[r], width, 1) for r in self.resolutions)
        self.to_alpha = nn.Conv2d(width, 1, 1)

    def forward(self, features):
        """features: the generator's layer outputs coarse to fine (synthesis(..., return_features="all"))."""
        by_res = {}
        for f in features:
            by_res.setdefault(f.shape[-1], []).append(f)
        x = None
        for r, compress in zip(self.resolutions, self.compress):
            y = compress(torch.cat(by_res[r], dim=1))
            x = y if x is None else F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False) + y
            x = F.leaky_relu(x, 0.2)
        return torch.sigmoid(self.to_alpha(x))


class Labels4FreeGenerator(nn.Module):
    """Frozen G (foreground), its channel-zeroed copy G_bg (background) and the trainable alpha network."""

    def __init__(self, generator, zero="conv", zero_channels=None, alpha_start_resolution=32, alpha_width=32):
        super().__init__()
        generator.eval().requires_grad_(False)
        self.background = BackgroundGenerator(generator, zero, zero_channels)
        synthesis = generator.synthesis
        channels = {4: synthesis.const.shape[1], **{2 ** (i + 3): 2 * b.conv1.weight.shape[0]
                                                    for i, b in enumerate(synthesis.blocks)}}
        self.alpha = AlphaNetwork(channels, synthesis.resolution, alpha_start_resolution, alpha_width)
        self.z_dim = 2 * generator.z_dim  # (z, z') stacked

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
        truncation psi on the foreground only."""
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be [B, {self.z_dim}]: the foreground and background latents stacked, "
                             f"got {list(z.shape)}")
        noise_fg, noise_bg = noise if noise is not None else (None, None)
        G = self.generator
        z_fg, z_bg = z.chunk(2, dim=1)
        foreground, mask = self.foreground(G.styles(z_fg, truncation=truncation), noise_fg)
        background = self.background(G.styles(z_bg), noise=noise_bg)
        return Layers(background, foreground, mask)
