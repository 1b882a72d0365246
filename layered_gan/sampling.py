"""Drawing from a trained generator reproducibly: latents and noise inputs from one CPU torch.Generator, so
the same seed gives the same sample on any device (rng.py)."""

import torch

from . import rng


@torch.no_grad()
def sample_layers(G, n, generator, truncation=1.0, device="cpu"):
    """Layers of a layered (or Labels4Free) generator, or a plain generator's images, on `device` for n
    latents, then noise, drawn from `generator` in that order."""
    z = rng.randn((n, G.z_dim), generator, device)
    return G(z, truncation=truncation, noise=G.make_noise(n, device, generator))


@torch.no_grad()
def generate_layers(G, seeds, truncation=1.0, device="cpu"):
    """Layers (or, from a plain generator, images) for each seed: the latent and the noise inputs are drawn from
    that seed alone."""
    out = [sample_layers(G, 1, rng.generator(seed), truncation, device) for seed in seeds]
    if isinstance(out[0], torch.Tensor):
        return torch.cat(out)
    return type(out[0])(*(torch.cat(t) for t in zip(*out)))
