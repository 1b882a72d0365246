"""GAN losses and regularizers."""

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
