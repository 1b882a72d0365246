"""The PerturbGAN objective (Bielski & Favaro 2019, eq. 3-4): a layered generator whose composite, after a
random shift of foreground and mask (and optional background contrast jitter), must fool the critic;
WGAN-GP critic with drift (or logistic with lazy R1); generator loss
-D(x^) + gamma1 mask-size hinge + gamma2 binarization (+ an optional mask-coverage cap).

Settings of section `perturb` where the authors' code departs from the paper's text or is more specific:
shift_draw ("integer": uniform over -δ..δ; "rounded": round(U(-δ, δ)), the code), jitter_stats ("image" or
"channel": the code's per-channel mean, min and max), mask_terms ("unshifted": eq. 3 on m, the paper;
"shifted": on the shifted m', the code)."""

import torch

from ... import rng
from ...errors import BadValue
from ...losses import mask_binarization, mask_max_coverage_hinge, mask_size_hinge
from ...networks.projected import ProjectedDiscriminator
from ...perturbations import contrast_jitter, random_shift
from ...render import composite
from ...runs import load_stylegan2
from ..monitors import mask_monitors
from .base import Fake, Objective, critic_loss, d_scores, generator_adversarial_loss, mixing_latents


def perturbed_composite(layers, pcfg, generator, jitter=True):
    """(x^, m'): x^ = (1 - m') jitter(B) + m' F' with (F', m') randomly shifted by up to shift_range x resolution
    (settings of the `perturb` section; jitter=False leaves B alone)."""
    max_shift = round(pcfg["shift_range"] * layers.mask.shape[-1])
    fg, mask, _ = random_shift(layers.foreground, layers.mask, max_shift, generator, pcfg.get("shift_draw", "integer"))
    background = layers.background
    if jitter:
        background = contrast_jitter(background, pcfg["bg_jitter"], generator, pcfg.get("jitter_stats", "image"))
    return composite(background, fg, mask), mask


class PerturbGAN(Objective):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.pcfg = cfg["perturb"]

    def initialize(self, G, D):
        """With model.init, both layers and D from a StyleGAN2 run (a head start; the paper starts from scratch).
        D starts fresh when its kind differs from the run's (a projected D against a StyleGAN2 one, or back).
        Not part of build(): loading a finished run must not need it."""
        m = self.cfg["model"]
        if m.get("init"):
            source_G, source_D = load_stylegan2(m["init"], discriminator=True, option="model.init")
            G.init_from(source_G, empty_background=m.get("init_empty_background", False))
            if isinstance(D, ProjectedDiscriminator) == isinstance(source_D, ProjectedDiscriminator):
                own = D.state_dict()
                wrong = [k for k, v in source_D.state_dict().items() if k in own and own[k].shape != v.shape]
                if wrong:
                    raise BadValue(f"model.init: the discriminator of {m['init']} does not fit this config's "
                                   f"(shapes differ at {', '.join(wrong[:3])}): it needs the same widths and "
                                   "model.projected_resolution")
                # a port file's or NVIDIA pickle's D has only the full-resolution fromRGB: the others stay fresh
                D.load_state_dict({**own, **source_D.state_dict()})

    def fake(self, G, batch, phase, rng, device):
        z, z2, inject = mixing_latents(G, batch, self.cfg["mixing_prob"], device, rng, phase.resolution)
        ws = G.styles(z, z2, inject)
        layers = G.synthesize(*ws, resolution=phase.resolution, alpha=phase.alpha)
        image, shifted_mask = perturbed_composite(layers, self.pcfg, rng)
        if self.pcfg.get("mask_terms", "unshifted") == "shifted":
            layers = layers._replace(mask=shifted_mask)
        return Fake(image, layers, ws)

    def critic(self, D, real, fake, phase, rng, step):
        return critic_loss(D, real, fake, phase.alpha, self.lcfg, rng, step)

    def g_loss(self, G, D, batch, phase, rng, step, device):
        fake, layers, ws = self.fake(G, batch, phase, rng, device)
        adv, adv_name = generator_adversarial_loss(d_scores(D, fake, phase.alpha, rng), self.lcfg)
        size = mask_size_hinge(layers.mask, self.lcfg["eta"])
        binar = mask_binarization(layers.mask)
        binar_weight = self.lcfg["binarization_weight"] if phase.resolution >= self.lcfg["binarize_from"] else 0
        loss = adv + self.lcfg["size_weight"] * size + binar_weight * binar
        stats = {adv_name: adv, "loss/mask_size": size, "loss/binarization": binar}
        if self.lcfg.get("max_coverage_weight", 0):
            cover = mask_max_coverage_hinge(layers.mask, self.lcfg["max_coverage"])
            loss = loss + self.lcfg["max_coverage_weight"] * cover
            stats["loss/max_coverage"] = cover
        G.track_w_avg(*ws)
        return loss, stats, {"fake": fake.detach(), "mask": layers.mask.detach()}

    monitors = staticmethod(mask_monitors)

    @torch.no_grad()
    def grids(self, G_ema, z, noise, phase):
        """Rows: background, foreground, mask, foreground x mask, composite, shifted composite."""
        layers = G_ema(z, noise=noise, resolution=phase.resolution, alpha=phase.alpha)
        shifted, _ = perturbed_composite(layers, self.pcfg, rng.generator(0), jitter=False)
        return {"background": layers.background, "foreground": layers.foreground,
                "mask": (layers.mask * 2 - 1).expand(-1, 3, -1, -1), "foreground_x_mask": layers.foreground * layers.mask,
                "composite": composite(layers.background, layers.foreground, layers.mask), "shifted_composite": shifted}
