"""What a training run optimizes: the models, the critic loss and the generator loss of one step.

- `PerturbGAN` (Bielski & Favaro 2019, eq. 3-4): a layered generator, its
  composite after a random shift of foreground and mask (and optional
  background contrast jitter); WGAN-GP critic with drift; generator loss
  -D(x^) + gamma1 mask-size hinge + gamma2 binarization.
- `StyleGAN2` (Karras et al. 2020): one generator; non-saturating logistic
  loss with lazy R1 and optional lazy path-length regularization, or
  (loss = "wgan-gp") PerturbGAN's critic loss for the single-output baseline
  of the paper's Table 3.
The training loop (`training/loop.py`) is shared.
"""

import math

import torch

from ..errors import BadValue
from ..losses import (drift_penalty, g_nonsaturating_loss, gradient_penalty, logistic_lazy_r1, mask_binarization,
                      mask_max_coverage_hinge, mask_size_hinge, wgan_d_loss, wgan_g_loss)
from ..networks import Discriminator, Generator, channel_widths
from ..networks.layered import LayeredGenerator
from ..networks.port import load_stylegan2
from ..perturbations import contrast_jitter, random_shift
from ..render import composite
from .labels4free import Labels4Free
from .monitors import mask_monitors


def _widths(m):
    return channel_widths(m["resolution"], m["channel_base"], m["channel_max"])


def _discriminator(cfg):
    m = cfg["model"]
    return Discriminator(m["resolution"], channels=_widths(m), mbstd_group=m.get("mbstd_group", 4), progressive=True,
                         formulation=m.get("formulation", "fast"))


def _mixing(G, batch, mixing_prob, device, rng):
    """(z, z2, inject_index): with probability mixing_prob a second latent takes over at a random layer."""
    z = torch.randn(batch, G.z_dim, generator=rng).to(device)
    if torch.rand([], generator=rng) < mixing_prob:
        z2 = torch.randn(batch, G.z_dim, generator=rng).to(device)
        return z, z2, int(torch.randint(1, G.n_latent, [], generator=rng))
    return z, None, None


def perturbed_composite(layers, shift_range, jitter, generator):
    """x^ = (1 - m') jitter(B) + m' F' with (F', m') randomly shifted by up to shift_range x resolution."""
    max_shift = round(shift_range * layers.mask.shape[-1])
    fg, mask, _ = random_shift(layers.foreground, layers.mask, max_shift, generator)
    return composite(contrast_jitter(layers.background, jitter, generator), fg, mask)


def _wgan_gp_critic(D, real, fake, alpha, lcfg, rng):
    real_scores, fake_scores = D(real, alpha=alpha), D(fake, alpha=alpha)
    gp = gradient_penalty(D, real, fake, rng, alpha=alpha)
    drift = drift_penalty(real_scores)
    adv = wgan_d_loss(real_scores, fake_scores)
    stats = {"loss/d_wgan": adv, "loss/gradient_penalty": gp, "loss/drift": drift,
             "scores/real": real_scores.mean(), "scores/fake": fake_scores.mean()}
    return adv + lcfg["gp_lambda"] * gp + lcfg["drift"] * drift, stats


def critic_loss(D, real, fake, alpha, lcfg, rng, step):
    """D's loss by `loss.type`: "wgan-gp" (PerturbGAN eq. 6) or "logistic" with lazy R1 (StyleGAN2)."""
    if lcfg["type"] == "wgan-gp":
        return _wgan_gp_critic(D, real, fake, alpha, lcfg, rng)
    if lcfg["type"] != "logistic":
        raise BadValue(f"loss.type must be 'wgan-gp' or 'logistic', got {lcfg['type']!r}")
    adv, r1, stats = logistic_lazy_r1(D, real, fake, step, lcfg["r1_gamma"], lcfg["r1_interval"], alpha=alpha)
    return adv + r1, stats


def generator_adversarial_loss(fake_scores, lcfg):
    """G's adversarial term matching critic_loss: -D(x^) (WGAN) or softplus(-D(x^)) (non-saturating)."""
    if lcfg["type"] == "wgan-gp":
        return wgan_g_loss(fake_scores), "loss/g_wgan"
    return g_nonsaturating_loss(fake_scores), "loss/g_nonsaturating"


class PerturbGAN:
    def __init__(self, cfg):
        self.cfg, self.lcfg, self.pcfg = cfg, cfg["loss"], cfg["perturb"]

    def build(self):
        m = self.cfg["model"]
        G = LayeredGenerator(m["resolution"], m["z_dim"], m["w_dim"], m["n_mlp"], channels=_widths(m),
                             variant=m.get("variant", "two"), formulation=m.get("formulation", "fast"))
        return G, _discriminator(self.cfg)

    def initialize(self, G, D):
        """A fresh run's starting weights: with model.init, both layers and D from a StyleGAN2 run (a head
        start; the paper starts from scratch). Not part of build(): loading a finished run must not need it."""
        m = self.cfg["model"]
        if m.get("init"):
            source_G, source_D = load_stylegan2(m["init"], discriminator=True)
            G.init_from(source_G, empty_background=m.get("init_empty_background", False))
            D.load_state_dict(source_D.state_dict())

    def fake(self, G, batch, phase, rng, device):
        z, z2, inject = _mixing(G, batch, self.cfg["mixing_prob"], device, rng)
        ws = G.styles(z, z2, inject)
        layers = G.synthesize(*ws, resolution=phase.resolution, alpha=phase.alpha)
        return perturbed_composite(layers, self.pcfg["shift_range"], self.pcfg["bg_jitter"], rng), layers, ws

    def d_loss(self, G, D, real, phase, rng, step):
        with torch.no_grad():
            fake, _, _ = self.fake(G, real.shape[0], phase, rng, real.device)
        return critic_loss(D, real, fake, phase.alpha, self.lcfg, rng, step)

    def g_loss(self, G, D, batch, phase, rng, step, device):
        fake, layers, ws = self.fake(G, batch, phase, rng, device)
        adv, adv_name = generator_adversarial_loss(D(fake, alpha=phase.alpha), self.lcfg)
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
        shifted = perturbed_composite(layers, self.pcfg["shift_range"], 0.0, torch.Generator().manual_seed(0))
        return {"background": layers.background, "foreground": layers.foreground,
                "mask": (layers.mask * 2 - 1).expand(-1, 3, -1, -1), "foreground_x_mask": layers.foreground * layers.mask,
                "composite": composite(layers.background, layers.foreground, layers.mask), "shifted_composite": shifted}

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


class StyleGAN2:
    def __init__(self, cfg):
        self.cfg, self.lcfg = cfg, cfg["loss"]
        self.pl_mean = torch.zeros([])

    def build(self):
        m = self.cfg["model"]
        G = Generator(m["resolution"], m["z_dim"], m["w_dim"], m["n_mlp"], channels=_widths(m),
                      formulation=m.get("formulation", "fast"))
        return G, _discriminator(self.cfg)

    def fake(self, G, batch, phase, rng, device):
        z, z2, inject = _mixing(G, batch, self.cfg["mixing_prob"], device, rng)
        ws = G.styles(z, z2, inject)
        return G.synthesis(ws, resolution=phase.resolution, alpha=phase.alpha), ws

    def d_loss(self, G, D, real, phase, rng, step):
        with torch.no_grad():
            fake, _ = self.fake(G, real.shape[0], phase, rng, real.device)
        return critic_loss(D, real, fake, phase.alpha, self.lcfg, rng, step)

    def g_loss(self, G, D, batch, phase, rng, step, device):
        fake, ws = self.fake(G, batch, phase, rng, device)
        adv, adv_name = generator_adversarial_loss(D(fake, alpha=phase.alpha), self.lcfg)
        stats = {adv_name: adv}
        loss = adv
        interval = self.lcfg.get("pl_interval", 4)
        if self.lcfg.get("pl_weight", 0) and step % interval == 0:
            pl = self.path_length_penalty(G, ws, phase, rng)
            stats["loss/path_length"] = pl
            loss = loss + self.lcfg["pl_weight"] * interval * pl
        G.track_w_avg(ws[:, 0])
        return loss, stats, {"fake": fake.detach()}

    def path_length_penalty(self, G, ws, phase, rng):
        """(|J_w^T y| - a)^2 with y ~ N(0, I) / sqrt(HW) and a the running mean of the lengths (sec. 3.2)."""
        ws = ws.detach().requires_grad_(True)
        img = G.synthesis(ws, resolution=phase.resolution, alpha=phase.alpha)
        y = torch.randn(img.shape, generator=rng).to(img) / math.sqrt(img.shape[2] * img.shape[3])
        (grad,) = torch.autograd.grad((img * y).sum(), ws, create_graph=True)
        lengths = grad.square().sum(2).mean(1).sqrt()
        self.pl_mean = self.pl_mean.to(lengths).lerp(lengths.mean().detach(), 0.01)
        return (lengths - self.pl_mean).square().mean()

    @staticmethod
    def monitors(extras):
        return {"composite/diversity": extras["fake"].std(0).mean()}

    @torch.no_grad()
    def grids(self, G_ema, z, noise, phase):
        return {"samples": G_ema(z, noise=noise, resolution=phase.resolution, alpha=phase.alpha)}

    def initialize(self, G, D):
        pass

    def state_dict(self):
        return {"pl_mean": self.pl_mean}

    def load_state_dict(self, state):
        self.pl_mean = state["pl_mean"]


OBJECTIVES = {"perturb": PerturbGAN, "stylegan2": StyleGAN2, "labels4free": Labels4Free}


def make_objective(cfg):
    if cfg.get("mode") not in OBJECTIVES:
        raise BadValue(f"config mode {cfg.get('mode')!r} is not one of {', '.join(OBJECTIVES)}")
    return OBJECTIVES[cfg["mode"]](cfg)

