"""One StyleGAN2 iteration: a discriminator step (logistic loss + R1) then a generator step
(non-saturating loss), with style mixing. Shared by the smoke run and the benchmark."""

import random

import torch

from ..losses import d_logistic_loss, g_nonsaturating_loss, r1_penalty


def sample_ws(G, batch, mixing_prob=0.9, device="cpu"):
    """W+ for a batch; with probability mixing_prob two latents cross over at a random layer."""
    z = torch.randn(batch, G.z_dim, device=device)
    if random.random() < mixing_prob:
        return G.styles(z, torch.randn(batch, G.z_dim, device=device), random.randint(1, G.n_latent - 1))
    return G.styles(z)


def d_step(G, D, opt_d, real, r1_gamma=10.0, mixing_prob=0.9):
    """Update D on real images and fresh fakes; R1 weighted by gamma / 2. Returns the losses."""
    with torch.no_grad():
        fake = G.synthesis(sample_ws(G, real.shape[0], mixing_prob, real.device))
    real = real.detach().requires_grad_(r1_gamma > 0)
    real_scores = D(real)
    loss = d_logistic_loss(real_scores, D(fake))
    r1 = r1_penalty(real, real_scores) if r1_gamma > 0 else torch.zeros([], device=real.device)
    opt_d.zero_grad(set_to_none=True)
    (loss + r1_gamma / 2 * r1).backward()
    opt_d.step()
    return {"d_loss": loss.item(), "r1": r1.item()}


def g_step(G, D, opt_g, batch, mixing_prob=0.9, device="cpu"):
    """Update G with the non-saturating loss (D's weights get no gradient). Returns the loss."""
    ws = sample_ws(G, batch, mixing_prob, device)
    G.track_w_avg(ws[:, 0])
    D.requires_grad_(False)
    try:
        loss = g_nonsaturating_loss(D(G.synthesis(ws)))
    finally:
        D.requires_grad_(True)
    opt_g.zero_grad(set_to_none=True)
    loss.backward()
    opt_g.step()
    return {"g_loss": loss.item()}
