"""Exponential moving average of generator weights: a half-life in images with a ramp-up (StyleGAN2's code), or a
fixed decay per step (`ema.decay`: PerturbGAN's code decays 0.999 per step)."""

import torch


def ema_beta(batch, images_seen, half_life_kimg=10.0, rampup=0.05):
    """Decay per step: 0.5 ** (batch / half_life), the half-life capped at rampup x images seen early on.

    A fixed decay near 1 would leave a short run's average near its random
    initialization; the ramp-up lets it follow closely at first.
    """
    half_life = half_life_kimg * 1000
    if rampup:
        half_life = min(half_life, images_seen * rampup)
    return 0.5 ** (batch / max(half_life, 1e-8))


def step_beta(ema_cfg, batch, images_seen):
    """This step's decay: ema.decay when set (not null), else ema_beta of the half-life and ramp-up."""
    if ema_cfg.get("decay") is not None:
        return ema_cfg["decay"]
    return ema_beta(batch, images_seen, ema_cfg["half_life_kimg"], ema_cfg["rampup"])


@torch.no_grad()
def update_ema(ema, model, beta):
    for p_ema, p in zip(ema.parameters(), model.parameters()):
        p_ema.lerp_(p, 1 - beta)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)
