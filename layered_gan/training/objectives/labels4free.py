"""The Labels4Free objective (Abdal et al. 2021, sec. 3.3 and 4.6): train an alpha network on a frozen StyleGAN2.

The composite of eq. 1, I = M G(w) + (1 - M) G_bg(w'), with w, w' from independent latents (the paper; the
authors' train.py feeds the same latent: `labels4free.same_latent`) (W space, no style mixing, truncation psi
on G only), goes to a discriminator trained from scratch.
Only the alpha network and D train. Alpha network loss:
    alpha_adv_weight x softplus(-D(I)) + lambda1 B(M) + lambda2 C(M) + lambda3 E(M)
with B(M) = min(M, 1 - M) (binarization), C(M) = relu(phi1 - mean M) (foreground coverage) and
E(M) = relu(phi2 - mean(1 - M)) (background coverage), each per image then averaged.
D loss: d_adv_weight x logistic loss + lazy R1 on real images (gamma 10 every 16 steps); with the projected D
(loss.type "hinge"), d_adv_weight x hinge loss and -D(I) for the alpha network.
The paper's "weight of the non-saturating discriminator loss 0.1" is `d_adv_weight`; the authors'
code instead scales the alpha network's adversarial term (`sat_weight`): `alpha_adv_weight`.

Config: model.ckpt (a StyleGAN2-port checkpoint or a `stylegan2_*` run of ours), model.resolution
(must be the checkpoint's), the discriminator's widths (model.channel_base, channel_max,
mbstd_group); section `labels4free`: truncation, zero ("const" / "conv"), zero_channels (null: all),
alpha_start_resolution, alpha_width, alpha_network ("authors" / "compact"), same_latent. The networks are built by
runs.build_models.
"""

import torch

from ...losses import logistic_lazy_r1, mask_binarization, mask_max_coverage_hinge, mask_size_hinge
from ...render import composite
from ..monitors import mask_monitors
from .base import Fake, Objective, critic_loss, d_scores, generator_adversarial_loss


class Labels4Free(Objective):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.lcfg = {"type": "logistic", **self.lcfg}  # runs from before loss.type existed here
        self.acfg = cfg["labels4free"]

    def lazy_intervals(self):
        """The authors' train.py (rosinality's) keeps g_reg_every = 4 for the alpha network's Adam ratio though
        A has no lazy term; D: R1 every r1_interval steps."""
        return {"G": 4, "D": self.lcfg["r1_interval"]}

    def fake(self, G, batch, phase, rng, device):
        """The composite I of eq. 1 and its Layers, for fresh latents of foreground and background (independent,
        or the same with labels4free.same_latent; no progressive phases: `phase` is unused)."""
        layers = G(torch.randn(batch, G.z_dim, generator=rng).to(device), truncation=self.acfg["truncation"])
        return Fake(composite(layers.background, layers.foreground, layers.mask), layers)

    def regularizers(self, mask):
        """Weighted mask terms {stat name: (weight, value)}: lambda1 B(M), lambda2 C(M) at phi1, lambda3 E(M) at phi2."""
        lc = self.lcfg
        terms = {"loss/binarization": (lc["binarization_weight"], mask_binarization(mask)),
                 "loss/fg_coverage": (lc["fg_coverage_weight"], mask_size_hinge(mask, lc["fg_coverage"]))}
        if lc["bg_coverage_weight"]:  # E(M) = relu(phi2 - mean(1 - M)) = relu(mean M - (1 - phi2))
            terms["loss/bg_coverage"] = (lc["bg_coverage_weight"], mask_max_coverage_hinge(mask, 1 - lc["bg_coverage"]))
        return terms

    def critic(self, D, real, fake, phase, rng, step):
        if self.lcfg["type"] == "hinge":  # the projected D (Sauer et al. 2021): no R1
            adv, stats = critic_loss(D, real, fake, None, self.lcfg, rng, step)
            return self.lcfg["d_adv_weight"] * adv, stats
        adv, r1, stats = logistic_lazy_r1(D, real, fake, step, self.lcfg["r1_gamma"], self.lcfg["r1_interval"])
        return self.lcfg["d_adv_weight"] * adv + r1, stats

    def g_loss(self, G, D, batch, phase, rng, step, device):
        fake, layers, _ = self.fake(G, batch, phase, rng, device)
        adv, adv_name = generator_adversarial_loss(d_scores(D, fake, None, rng), self.lcfg)
        loss = self.lcfg["alpha_adv_weight"] * adv
        stats = {adv_name: adv}
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
