"""What every training objective has: the interface the loop (training/loop.py) calls, and the critic
losses the modes share.

Each step the loop calls `d_loss` (the critic's step on real images and fresh fakes), then `g_loss`
(the trained generator's step), then logs `monitors(extras)` and, now and then, `grids`. `fake` draws
one batch of fakes in every mode the same way: fake(G, batch, phase, rng, device) -> Fake.
"""

import math
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F

from ...errors import BadValue
from ...losses import (drift_penalty, g_nonsaturating_loss, gradient_penalty, logistic_lazy_r1, wgan_d_loss,
                       wgan_g_loss)
from ...networks.projected import ProjectedDiscriminator
from ...runs import build_models


class Fake(NamedTuple):
    image: torch.Tensor  # [B, 3, H, W]: what the critic sees
    layers: Optional[object] = None  # networks.layered.Layers of a layered generator
    ws: Optional[object] = None  # the styles the image was drawn from


class Objective:
    """A training mode: its networks, its two losses, what it logs and the image rows it shows."""

    def __init__(self, cfg):
        self.cfg, self.lcfg = cfg, cfg["loss"]

    def build(self):
        """(G, D) of the config, freshly initialized (runs.build_models)."""
        return build_models(self.cfg)

    def initialize(self, G, D):
        """A fresh run's starting weights, beyond build()'s (e.g. PerturbGAN's model.init); none by default."""

    def lazy_intervals(self):
        """{"G": steps, "D": steps} between lazy regularization steps of each network (None: not lazy), for the
        Adam rescaling of config `lazy_adam` (StyleGAN2 sec. 3.1). D: R1 of the logistic loss."""
        return {"G": None, "D": self.lcfg["r1_interval"] if self.lcfg.get("type", "logistic") == "logistic" else None}

    def fake(self, G, batch, phase, rng, device):
        """A Fake for `batch` fresh latents, all randomness from `rng` (a CPU torch.Generator)."""
        raise NotImplementedError

    def critic(self, D, real, fake, phase, rng, step):
        """(D's loss, stats) on a batch of reals and (detached) fakes."""
        raise NotImplementedError

    def d_loss(self, G, D, real, phase, rng, step):
        with torch.no_grad():
            fake = self.fake(G, real.shape[0], phase, rng, real.device).image
        return self.critic(D, real, fake, phase, rng, step)

    def g_loss(self, G, D, batch, phase, rng, step, device):
        """(G's loss, stats, extras): extras hold detached tensors for monitors ("fake", and "mask")."""
        raise NotImplementedError

    @staticmethod
    def monitors(extras):
        """{name: scalar tensor} logged every tick, from g_loss's extras."""
        return {"composite/diversity": extras["fake"].std(0).mean()}

    def grids(self, G_ema, z, noise, phase):
        """{row name: images in [-1, 1]} for fixed latents and noise."""
        raise NotImplementedError

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def mixing_latents(G, batch, mixing_prob, device, rng, resolution):
    """(z, z2, inject_index): with probability mixing_prob a second latent takes over at a random layer among
    those active at `resolution` (2 log2(resolution) - 2 style slots; StyleGAN's code draws the crossover
    below its current layer count too), so every mixing draw mixes."""
    z = torch.randn(batch, G.z_dim, generator=rng).to(device)
    if torch.rand([], generator=rng) < mixing_prob:
        z2 = torch.randn(batch, G.z_dim, generator=rng).to(device)
        active = min(G.n_latent, 2 * int(math.log2(resolution)) - 2)
        return z, z2, int(torch.randint(1, active, [], generator=rng))
    return z, None, None


def _wgan_gp_critic(D, real, fake, alpha, lcfg, rng):
    real_scores, fake_scores = D(real, alpha=alpha), D(fake, alpha=alpha)
    gp = gradient_penalty(D, real, fake, rng, alpha=alpha)
    drift = drift_penalty(real_scores)
    adv = wgan_d_loss(real_scores, fake_scores)
    stats = {"loss/d_wgan": adv, "loss/gradient_penalty": gp, "loss/drift": drift,
             "scores/real": real_scores.mean(), "scores/fake": fake_scores.mean()}
    return adv + lcfg["gp_lambda"] * gp + lcfg["drift"] * drift, stats


def d_scores(D, images, alpha, rng):
    """D's scores: the projected D augments (DiffAugment, drawing from rng) and ignores alpha; the StyleGAN2 D
    takes alpha (progressive growing; None: no fade) and draws nothing."""
    if isinstance(D, ProjectedDiscriminator):
        return D(images, rng=rng)
    return D(images) if alpha is None else D(images, alpha=alpha)


def _hinge_critic(D, real, fake, alpha, rng):
    real_scores, fake_scores = d_scores(D, real, alpha, rng), d_scores(D, fake, alpha, rng)
    adv = F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()
    return adv, {"loss/d_hinge": adv, "scores/real": real_scores.mean(), "scores/fake": fake_scores.mean()}


def critic_loss(D, real, fake, alpha, lcfg, rng, step):
    """D's loss by `loss.type`: "wgan-gp" (PerturbGAN eq. 6), "logistic" with lazy R1 (StyleGAN2), or "hinge"
    without R1 (Projected GAN, Sauer et al. 2021)."""
    if lcfg["type"] == "wgan-gp":
        return _wgan_gp_critic(D, real, fake, alpha, lcfg, rng)
    if lcfg["type"] == "hinge":
        return _hinge_critic(D, real, fake, alpha, rng)
    if lcfg["type"] != "logistic":
        raise BadValue(f"loss.type must be 'wgan-gp', 'logistic' or 'hinge', got {lcfg['type']!r}")
    adv, r1, stats = logistic_lazy_r1(D, real, fake, step, lcfg["r1_gamma"], lcfg["r1_interval"], alpha=alpha)
    return adv + r1, stats


def generator_adversarial_loss(fake_scores, lcfg):
    """G's adversarial term matching critic_loss: -D(x^) (WGAN, hinge) or softplus(-D(x^)) (non-saturating)."""
    if lcfg["type"] == "wgan-gp":
        return wgan_g_loss(fake_scores), "loss/g_wgan"
    if lcfg["type"] == "hinge":
        return wgan_g_loss(fake_scores), "loss/g_hinge"
    return g_nonsaturating_loss(fake_scores), "loss/g_nonsaturating"
