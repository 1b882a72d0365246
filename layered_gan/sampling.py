"""Drawing from a trained generator reproducibly: latents and noise inputs from one CPU torch.Generator, so
the same seed gives the same sample on any device (CUDA sampling cannot use a CPU generator)."""

import torch


def layered_noise(G, n, device, generator):
    """G.make_noise drawn from a CPU torch.Generator, then moved to `device`."""
    def move(x):
        return [move(t) for t in x] if isinstance(x, (list, tuple)) else None if x is None else x.to(device)

    return move(G.make_noise(n, "cpu", generator))


@torch.no_grad()
def sample_layers(G, n, generator, truncation=1.0, device="cpu"):
    """Layers of a layered (or Labels4Free) generator, or a plain generator's images, on `device` for n
    latents, then noise, drawn from `generator` in that order."""
    z = torch.randn(n, G.z_dim, generator=generator).to(device)
    return G(z, truncation=truncation, noise=layered_noise(G, n, device, generator))


@torch.no_grad()
def generate_layers(G, seeds, truncation=1.0, device="cpu"):
    """Layers (or, from a plain generator, images) for each seed: the latent and the noise inputs are drawn from
    that seed alone."""
    out = [sample_layers(G, 1, torch.Generator().manual_seed(seed), truncation, device) for seed in seeds]
    if isinstance(out[0], torch.Tensor):
        return torch.cat(out)
    return type(out[0])(*(torch.cat(t) for t in zip(*out)))
