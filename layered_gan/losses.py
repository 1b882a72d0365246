"""GAN losses and regularizers, and PerturbGAN's mask terms (sec. 3.2)."""

import torch
import torch.nn.functional as F


def d_logistic_loss(real_scores, fake_scores):
    """Discriminator logistic loss: softplus(D(fake)) + softplus(-D(real)) (Goodfellow et al. 2014)."""
    return F.softplus(fake_scores).mean() + F.softplus(-real_scores).mean()


def g_nonsaturating_loss(fake_scores):
    """Generator non-saturating loss: softplus(-D(G(z)))."""
    return F.softplus(-fake_scores).mean()


def r1_penalty(real_images, real_scores):
    """R1 (Mescheder et al. 2018): E ||grad_x D(x)||^2 on real images; real_images must require grad."""
    (grad,) = torch.autograd.grad(real_scores.sum(), real_images, create_graph=True)
    return grad.square().sum([1, 2, 3]).mean()


def gradient_penalty(D, real, fake, generator=None, **d_kwargs):
    """WGAN-GP (Gulrajani et al. 2017): E (||grad D(x~)||_2 - 1)^2, x~ = z x + (1 - z) x^, z ~ U(0, 1) per sample."""
    zeta = torch.rand(real.shape[0], 1, 1, 1, generator=generator, device="cpu").to(real)
    mixed = (zeta * real.detach() + (1 - zeta) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(mixed, **d_kwargs).sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).square().mean()


def wgan_d_loss(real_scores, fake_scores):
    """Critic loss E D(x^) - E D(x)."""
    return fake_scores.mean() - real_scores.mean()


def drift_penalty(real_scores):
    """E D(x)^2 on real scores, keeping the critic near zero (Karras et al. 2018)."""
    return real_scores.square().mean()


def wgan_g_loss(fake_scores):
    """Generator adversarial loss -E D(x^)."""
    return -fake_scores.mean()


def mask_size_shortfall(mask, eta):
    """max(0, eta - mean(m)) per sample [B]: how far each mask's coverage falls short of eta."""
    return F.relu(eta - mask.flatten(1).mean(1))


def mask_size_hinge(mask, eta):
    """PerturbGAN mask size term: mask_size_shortfall averaged over the batch."""
    return mask_size_shortfall(mask, eta).mean()


def mask_binarization(mask):
    """PerturbGAN binarization term: E min(m, 1 - m)."""
    return torch.minimum(mask, 1 - mask).mean()


def mask_max_coverage_hinge(mask, limit):
    """max(0, mean(m) - limit) per sample, averaged (Labels4Free's background coverage; an ablation here)."""
    return F.relu(mask.flatten(1).mean(1) - limit).mean()


def logistic_lazy_r1(D, real, fake, step, r1_gamma, r1_interval, **d_kwargs):
    """StyleGAN2's D loss (Karras et al. 2020; Labels4Free sec. 3.3): (logistic loss, lazy R1 term, stats).

    The R1 term is gamma / 2 x R1 on the real images, x r1_interval, on steps that are multiples of
    r1_interval (lazy regularization) and 0 otherwise. d_kwargs go to D (e.g. alpha=).
    """
    lazy = r1_gamma > 0 and step % r1_interval == 0
    real = real.detach().requires_grad_(lazy)
    real_scores, fake_scores = D(real, **d_kwargs), D(fake, **d_kwargs)
    adv = d_logistic_loss(real_scores, fake_scores)
    stats = {"loss/d_logistic": adv, "scores/real": real_scores.mean(), "scores/fake": fake_scores.mean()}
    if not lazy:
        return adv, 0.0, stats
    stats["loss/r1"] = r1_penalty(real, real_scores)
    return adv, r1_gamma / 2 * stats["loss/r1"] * r1_interval, stats
