"""The StyleGAN2 objective (Karras et al. 2020): one generator; non-saturating logistic loss with lazy R1 and
optional lazy path-length regularization (sec. 3.2), or (loss.type = "wgan-gp") PerturbGAN's critic loss
for the single-output baseline of PerturbGAN's Table 3."""

import math

import torch

from .base import Fake, Objective, critic_loss, d_scores, generator_adversarial_loss, mixing_latents


class StyleGAN2(Objective):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.pl_mean = torch.zeros([])

    def lazy_intervals(self):
        """G: the path-length interval when that term is on."""
        g_interval = self.lcfg.get("pl_interval", 4) if self.lcfg.get("pl_weight") else None
        return {**super().lazy_intervals(), "G": g_interval}

    def fake(self, G, batch, phase, rng, device):
        z, z2, inject = mixing_latents(G, batch, self.cfg["mixing_prob"], device, rng, phase.resolution)
        ws = G.styles(z, z2, inject)
        return Fake(G.synthesis(ws, resolution=phase.resolution, alpha=phase.alpha), ws=ws)

    def critic(self, D, real, fake, phase, rng, step):
        return critic_loss(D, real, fake, phase.alpha, self.lcfg, rng, step)

    def g_loss(self, G, D, batch, phase, rng, step, device):
        fake, _, ws = self.fake(G, batch, phase, rng, device)
        adv, adv_name = generator_adversarial_loss(d_scores(D, fake, phase.alpha, rng), self.lcfg)
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

    @torch.no_grad()
    def grids(self, G_ema, z, noise, phase):
        return {"samples": G_ema(z, noise=noise, resolution=phase.resolution, alpha=phase.alpha)}

    def state_dict(self):
        return {"pl_mean": self.pl_mean}

    def load_state_dict(self, state):
        self.pl_mean = state["pl_mean"]
