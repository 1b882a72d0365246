"""Projection of images into a StyleGAN2 generator's W+ space by per-image latent optimization.

Labels4Free (Abdal et al. 2021, sec. 4) segments real images by projecting them into W+ and
reading the alpha network off the generator's features; Image2StyleGAN (Abdal et al. 2019) is the
optimization: start from the average w in every slot, minimize the L1 distance to the target
(plus, optionally, an L1 distance between discriminator features), Adam on the latents. The
encoder stage refines its encoder's estimate the same way: pass it as `ws`.

    result = project(G, images)                          # images [B, 3, R, R] in [-1, 1]
    result = project(G, images, ws=encoder_ws, D=D, feature_weight=0.1)
"""

from typing import NamedTuple

import torch
from tqdm import tqdm


class Projection(NamedTuple):
    ws: torch.Tensor  # [B, n_latent, w_dim], detached
    losses: torch.Tensor  # [steps + 1, B]: each image's loss before each step and after the last


def zero_noise(G, batch, device):
    """Noise inputs that add nothing: a projection should not depend on a random draw."""
    return [torch.zeros(batch, 1, s, s, device=device) for s in G.synthesis.noise_shapes()]


def project(G, target, steps=500, lr=0.05, ws=None, noise=None, D=None, feature_weight=0.0, plus=True,
            progress=False):
    """Optimize W+ latents so that G.synthesis(ws, noise) matches `target` [B, 3, R, R] (in [-1, 1]).

    G: a StyleGAN2 Generator, or anything with its `synthesis`, `n_latent` and `w_avg` ([w_dim], or one per
    slot [n_latent, w_dim]): networks.encoder.LayeredSynthesis (a layered generator's composite).
    ws: the starting latents (default: G.w_avg in every slot). noise: fixed noise (default zeros).
    plus=False optimizes one w per image (W space: the starting latents' first slot, repeated).
    D with feature_weight > 0 adds feature_weight x the L1 distance of D's block inputs
    (D(x, return_features=True)). Each image's loss depends only on its own latents, so a batch
    gives what one image at a time would. G and D are not changed.
    """
    if target.ndim != 4 or target.shape[-1] != G.synthesis.resolution:
        raise ValueError(f"targets must be [B, C, {G.synthesis.resolution}, {G.synthesis.resolution}] "
                         f"(the generator's resolution), got {list(target.shape)}")
    if feature_weight and D is None:
        raise ValueError("feature_weight > 0 needs a discriminator D")
    target, batch, device = target.detach(), target.shape[0], target.device
    if ws is None:
        ws = G.w_avg.detach().expand(batch, G.n_latent, -1)
    ws = ws.detach().clone().to(device)
    ws = (ws if plus else ws[:, :1]).requires_grad_(True)
    noise = zero_noise(G, batch, device) if noise is None else noise
    params = [p for m in (G, D) if m is not None for p in m.parameters()]
    trainable = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        if feature_weight:
            with torch.no_grad():
                target_features = D(target, return_features=True)[1]

        def losses_of(ws):  # [B]
            image = G.synthesis(ws.expand(-1, G.n_latent, -1), noise=noise)
            loss = (image - target).abs().mean((1, 2, 3))
            if feature_weight:
                features = D(image, return_features=True)[1]
                loss = loss + feature_weight * sum((features[k] - target_features[k]).abs().mean((1, 2, 3))
                                                   for k in features)
            return loss

        opt = torch.optim.Adam([ws], lr=lr)
        losses = []
        for _ in tqdm(range(steps), desc="projecting", disable=not progress):
            loss = losses_of(ws)
            losses.append(loss.detach())
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            opt.step()
        with torch.no_grad():
            losses.append(losses_of(ws))
    finally:
        for p, flag in zip(params, trainable):
            p.requires_grad_(flag)
    return Projection(ws.detach().expand(-1, G.n_latent, -1).clone(), torch.stack(losses))
