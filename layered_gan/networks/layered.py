"""PerturbGAN's layered generator (Bielski & Favaro 2019, sec. 3.1): one latent, three layers.

A background generator draws B (3 channels); a foreground generator draws F
(3 channels) and a mask logit, squashed by a sigmoid into m in [0, 1]. Both
read the same latent. Variants: 'two' (two StyleGAN2 generators, the paper's),
'shared_mapping' (one mapping network feeding two synthesis networks) and
'single' (ablation h: one generator with all seven channels).
"""

from typing import NamedTuple

import torch
import torch.nn as nn

from ..errors import BadValue
from .stylegan2 import Generator, SynthesisNetwork

VARIANTS = ("two", "shared_mapping", "single")


class Layers(NamedTuple):
    background: torch.Tensor  # [B, 3, H, W]
    foreground: torch.Tensor  # [B, 3, H, W]
    mask: torch.Tensor  # [B, 1, H, W], in [0, 1]


class LayeredGenerator(nn.Module):
    def __init__(self, resolution, z_dim=512, w_dim=512, n_mlp=8, lr_mlp=0.01, channels=None, variant="two",
                 formulation="fast", conv_clamp=None, num_fp16_res=0):
        super().__init__()
        if variant not in VARIANTS:
            raise BadValue(f"variant must be one of {VARIANTS}, got {variant!r}")
        self.variant = variant
        self.z_dim = z_dim
        kw = dict(channels=channels, formulation=formulation, conv_clamp=conv_clamp, num_fp16_res=num_fp16_res)
        if variant == "single":
            self.fg = Generator(resolution, z_dim, w_dim, n_mlp, lr_mlp, img_channels=7, **kw)
        else:
            self.fg = Generator(resolution, z_dim, w_dim, n_mlp, lr_mlp, img_channels=4, **kw)
        if variant == "two":
            self.bg = Generator(resolution, z_dim, w_dim, n_mlp, lr_mlp, img_channels=3, **kw)
        elif variant == "shared_mapping":
            self.bg_synthesis = SynthesisNetwork(resolution, w_dim, img_channels=3, **kw)
        self.n_latent = self.fg.n_latent

    @property
    def background_synthesis(self):
        """The synthesis network drawing the background (None for the single generator)."""
        if self.variant == "single":
            return None
        return self.bg.synthesis if self.variant == "two" else self.bg_synthesis

    def styles(self, z, z2=None, inject_index=None, truncation=1.0):
        """W+ for (foreground, background): the same latents through each generator's mapping."""
        ws = self.fg.styles(z, z2, inject_index, truncation)
        if self.variant == "two":
            return ws, self.bg.styles(z, z2, inject_index, truncation)
        return ws, ws

    def synthesize(self, ws_fg, ws_bg, noise=None, resolution=None, alpha=1.0):
        """Layers from W+. noise: None or (foreground noise list, background noise list)."""
        noise_fg, noise_bg = noise if noise is not None else (None, None)
        out = self.fg.synthesis(ws_fg, noise=noise_fg, resolution=resolution, alpha=alpha)
        if self.variant == "single":
            return Layers(out[:, 4:7], out[:, :3], torch.sigmoid(out[:, 3:4]))
        background = self.background_synthesis(ws_bg, noise=noise_bg, resolution=resolution, alpha=alpha)
        return Layers(background, out[:, :3], torch.sigmoid(out[:, 3:4]))

    def make_noise(self, batch=1, device="cpu", generator=None):
        """Explicit noise for (foreground, background) synthesis, for reproducible layers."""
        fg = self.fg.synthesis.make_noise(batch, device, generator)
        if self.variant == "single":
            return fg, None
        return fg, self.background_synthesis.make_noise(batch, device, generator)

    def forward(self, z, z2=None, inject_index=None, truncation=1.0, noise=None, resolution=None, alpha=1.0):
        return self.synthesize(*self.styles(z, z2, inject_index, truncation), noise, resolution, alpha)

    @torch.no_grad()
    def init_from(self, generator, empty_background=False):
        """Start both layers from a trained 3-channel StyleGAN2 `generator` of the same architecture.

        Every weight is copied; the foreground's tRGB rows for the mask keep their fresh initialization.
        empty_background: zero the background's first conv (weight, bias, noise strength), so that its
        output is zero as in Labels4Free's background generator (sec. 3.2): scenes without their object.
        Not in the paper (which trains from scratch): a head start for small budgets (configs/demo.json).
        """
        if self.variant == "single":
            raise BadValue("model.init needs two synthesis networks (variant 'two' or 'shared_mapping')")
        source = generator.state_dict()
        targets = [(self.fg, "")] + ([(self.bg, "")] if self.variant == "two" else
                                     [(self.bg_synthesis, "synthesis.")])
        for module, prefix in targets:
            own = module.state_dict()
            for key, value in own.items():
                src = source.get(prefix + key)
                fits = src is not None and (src.shape == value.shape or (
                    src.dim() > 0 and src.shape[1:] == value.shape[1:] and src.shape[0] < value.shape[0]))
                if not fits:
                    raise BadValue(f"model.init: the StyleGAN2 generator's {prefix + key} "
                                   f"{None if src is None else tuple(src.shape)} does not fit {tuple(value.shape)}; "
                                   "its resolution, widths, z_dim, w_dim and n_mlp must match the config's")
                if src.dim():
                    value[:len(src)].copy_(src)  # extra rows (the mask's tRGB) stay as initialized
                else:
                    value.copy_(src)
            module.load_state_dict(own)
        if empty_background:
            first = self.background_synthesis.conv
            for p in (first.weight, first.bias, first.noise_strength):
                p.zero_()

    def track_w_avg(self, ws_fg, ws_bg, beta=0.995):
        self.fg.track_w_avg(ws_fg[:, 0], beta)
        if self.variant == "two":
            self.bg.track_w_avg(ws_bg[:, 0], beta)
