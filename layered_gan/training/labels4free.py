"""The Labels4Free objective (Abdal et al. 2021, sec. 3.3 and 4.6): train an alpha network on a frozen StyleGAN2.

The composite of eq. 1, I = M G(w) + (1 - M) G_bg(w'), with w, w' from independent latents (W
space, no style mixing, truncation psi on G only), goes to a discriminator trained from scratch.
Only the alpha network and D train. Alpha network loss:
    alpha_adv_weight x softplus(-D(I)) + lambda1 B(M) + lambda2 C(M) + lambda3 E(M)
with B(M) = min(M, 1 - M) (binarization), C(M) = relu(phi1 - mean M) (foreground coverage) and
E(M) = relu(phi2 - mean(1 - M)) (background coverage), each per image then averaged.
D loss: d_adv_weight x logistic loss + lazy R1 on real images (gamma 10 every 16 steps).
The paper's "weight of the non-saturating discriminator loss 0.1" is `d_adv_weight`; the authors'
code instead scales the alpha network's adversarial term (`sat_weight`): `alpha_adv_weight`.

Config: model.ckpt (a StyleGAN2-port checkpoint or a `stylegan2_*` run of ours), model.resolution
(must be the checkpoint's), the discriminator's widths (model.channel_base, channel_max,
mbstd_group); section `labels4free`: truncation, zero ("const" / "conv"), zero_channels (null:
all), alpha_start_resolution, alpha_width.
"""

import os

import torch

from ..errors import BadValue, MissingPath
from ..losses import (g_nonsaturating_loss, logistic_lazy_r1, mask_binarization, mask_max_coverage_hinge,
                      mask_size_hinge)
from ..networks import Discriminator, channel_widths
from ..networks.labels4free import Labels4FreeGenerator
from ..networks.port import load_stylegan2
from ..render import composite
from .monitors import mask_monitors


class Labels4Free:
    def __init__(self, cfg):
        self.cfg, self.lcfg, self.acfg = cfg, cfg["loss"], cfg["labels4free"]

    def build(self):
        """(Labels4FreeGenerator around the frozen G of model.ckpt, a fresh Discriminator)."""
        m = self.cfg["model"]
        if not os.path.exists(m["ckpt"]):
            raise MissingPath(f"model.ckpt: {m['ckpt']} does not exist; give a StyleGAN2 checkpoint with "
                              "--set model.ckpt=PATH (l4f_demo: first run train.py --cfg stylegan2_demo)")
        G = load_stylegan2(m["ckpt"], formulation=m.get("formulation", "fast"))
        if G.synthesis.resolution != m["resolution"]:
            raise BadValue(f"model.resolution is {m['resolution']} but the generator in model.ckpt "
                           f"({m['ckpt']}) draws {G.synthesis.resolution} px images")
        net = Labels4FreeGenerator(G, self.acfg["zero"], self.acfg["zero_channels"],
                                   self.acfg["alpha_start_resolution"], self.acfg["alpha_width"])
        D = Discriminator(m["resolution"], channels=channel_widths(m["resolution"], m["channel_base"], m["channel_max"]),
                          mbstd_group=m["mbstd_group"], formulation=m.get("formulation", "fast"))
        return net, D

    def fake(self, G, batch, rng, device):
        """(composite I of eq. 1, its Layers) for fresh independent latents of foreground and background."""
        layers = G(torch.randn(batch, G.z_dim, generator=rng).to(device), truncation=self.acfg["truncation"])
        return composite(layers.background, layers.foreground, layers.mask), layers

    def regularizers(self, mask):
        """Weighted mask terms {stat name: (weight, value)}: lambda1 B(M), lambda2 C(M) at phi1, lambda3 E(M) at phi2."""
        lc = self.lcfg
        terms = {"loss/binarization": (lc["binarization_weight"], mask_binarization(mask)),
                 "loss/fg_coverage": (lc["fg_coverage_weight"], mask_size_hinge(mask, lc["fg_coverage"]))}
        if lc["bg_coverage_weight"]:  # E(M) = relu(phi2 - mean(1 - M)) = relu(mean M - (1 - phi2))
            terms["loss/bg_coverage"] = (lc["bg_coverage_weight"], mask_max_coverage_hinge(mask, 1 - lc["bg_coverage"]))
        return terms

    def d_loss(self, G, D, real, phase, rng, step):
        with torch.no_grad():
            fake, _ = self.fake(G, real.shape[0], rng, real.device)
        adv, r1, stats = logistic_lazy_r1(D, real, fake, step, self.lcfg["r1_gamma"], self.lcfg["r1_interval"])
        return self.lcfg["d_adv_weight"] * adv + r1, stats

    def g_loss(self, G, D, batch, phase, rng, step, device):
        fake, layers = self.fake(G, batch, rng, device)
        adv = g_nonsaturating_loss(D(fake))
        loss = self.lcfg["alpha_adv_weight"] * adv
        stats = {"loss/g_nonsaturating": adv}
        for name, (weight, value) in self.regularizers(layers.mask).items():
            loss = loss + weight * value
            stats[name] = value
        return loss, stats, {"fake": fake.detach(), "mask": layers.mask.detach()}

    monitors = staticmethod(mask_monitors)

    @torch.no_grad()
    def grids(self, G_ema, z, noise, phase):
        """Rows: foreground G(w), background G_bg(w'), mask, foreground x mask, composite."""
        layers = G_ema(z, truncation=self.acfg["truncation"], noise=noise)
        return {"foreground": layers.foreground, "background": layers.background,
                "mask": (layers.mask * 2 - 1).expand(-1, 3, -1, -1), "foreground_x_mask": layers.foreground * layers.mask,
                "composite": composite(layers.background, layers.foreground, layers.mask)}

    def initialize(self, G, D):
        pass

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass
