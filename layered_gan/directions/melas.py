"""Melas-Kyriazi et al. (seed 002, sec. 3.1 and appendix A.1): a latent direction that lights the object.

    L(v) = lambda L_c(v) + L_s(v)                                   (eq. 1)
    L_s  = ||S(G(z + eps v)) - S(G(z))||^2, S the Sobel-Feldman edge energy
    L_c  = -<G(z + eps v), r>, summed over channels, r the radial prior

The paper prints L_c = +<G(z + eps v), r> and says lambda > 0 brightens the
foreground; minimizing that would darken the centre. The sign is fixed by
behaviour here: lambda > 0 makes the centre brighter (v_l), lambda < 0 darker
(v_d). Both terms are divided by H x W (the same factor, so lambda keeps its
meaning). v is a unit vector (v = u / ||u||, u optimized with Adam), z drawn
afresh at every step. Defaults: lambda = +-5, Adam lr 0.05, 1000 steps, and the
perturbation radius eps = 0.2 the paper uses for StyleGAN2 (2 for BigBiGAN).
"""

import math

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .. import rng

SOBEL = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])  # g = [1 2 1]^T [1 0 -1]


def sobel(images):
    """S(x)_ij = sum_c (g * x_c)_ij^2 + (g^T * x_c)_ij^2 at the valid positions: [N, 3, H, W] -> [N, H - 2, W - 2]."""
    n, c, h, w = images.shape
    kernels = torch.stack([SOBEL, SOBEL.T])[:, None].to(images)
    out = F.conv2d(images.reshape(n * c, 1, h, w), kernels)  # correlation = convolution up to sign; squared
    return out.square().sum(1).reshape(n, c, h - 2, w - 2).sum(1)


def radial_prior(height, width):
    """r_ij = 1 - dist(ij, centre) / alpha, alpha = sqrt((H - 1)^2 + (W - 1)^2) / 4: 1 at the centre, -1 at corners."""
    alpha = math.sqrt((height - 1) ** 2 + (width - 1) ** 2) / 4
    i = torch.arange(height, dtype=torch.float32)[:, None] - (height - 1) / 2
    j = torch.arange(width, dtype=torch.float32)[None] - (width - 1) / 2
    return 1 - (i.square() + j.square()).sqrt() / alpha


def loss_terms(shifted, base_edges, prior):
    """(L_c, L_s) per image, divided by H x W: shifted [N, 3, H, W]; base_edges = sobel(G(z)); prior [H, W]."""
    area = shifted.shape[-2] * shifted.shape[-1]
    centre = -(shifted.sum(1) * prior).sum((1, 2)) / area
    consistency = (sobel(shifted) - base_edges).square().sum((1, 2)) / area
    return centre, consistency


def find_direction(space, lam=5.0, eps=0.2, steps=1000, lr=0.05, batch=16, seed=0, progress=True):
    """Optimize eq. (1) over unit directions in `space` (a LatentSpace). Returns (v [dim], last step's terms)."""
    generator = rng.generator(seed)
    u = torch.randn(space.dim, generator=generator).to(space.device).requires_grad_()
    optimizer = torch.optim.Adam([u], lr=lr)
    prior = None
    bar = tqdm(range(steps), desc=f"melas lambda={lam:+g}", disable=not progress)
    for _ in bar:
        codes, noise = space.sample(batch, generator)
        with torch.no_grad():
            base = space.render(codes, noise)
            base_edges = sobel(base)
        prior = radial_prior(*base.shape[-2:]).to(base) if prior is None else prior
        v = u / u.norm()
        centre, consistency = loss_terms(space.render(codes + eps * v, noise), base_edges, prior)
        loss = lam * centre.mean() + consistency.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        terms = {"loss": loss.item(), "L_c": centre.mean().item(), "L_s": consistency.mean().item()}
        bar.set_postfix(terms)
    with torch.no_grad():
        return u / u.norm(), terms
