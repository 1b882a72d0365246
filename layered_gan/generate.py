"""Samples from a trained generator: per-seed layers or a layered grid (a plain StyleGAN2: images or a grid).

    layered-gan generate --ckpt runs/demo --seeds 0-7 --truncation 0.7 --out samples/
"""

import os

import torch

from .checkpoint import checkpoint_file
from .errors import BadValue
from .images import save_image_grid
from .networks.port import port_models, read_port_checkpoint
from .render import composite
from .segmenter.pairs import sample_layers
from .training.loop import load_models


def parse_seeds(text):
    """'0-3,7' -> [0, 1, 2, 3, 7]."""
    seeds = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        try:
            seeds += list(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            raise BadValue(f"--seeds must look like 0-7,9; got {text!r}") from None
    return seeds


def run_config(ckpt):
    """The config of a training run of ours (folder or checkpoint); None for other checkpoints (port files)."""
    state = read_port_checkpoint(checkpoint_file(ckpt))
    return state.get("config") if isinstance(state, dict) else None


def load_generator(ckpt, device="cpu"):
    """The EMA generator (layered, Labels4Free or plain) of a run folder or checkpoint file, and the run's config
    (None for a StyleGAN2 port checkpoint)."""
    path = checkpoint_file(ckpt)
    state = read_port_checkpoint(path)  # a run of ours, or a port file (with its argparse `args`)
    if "g_ema" in state:
        return port_models(state, path).G.to(device).eval().requires_grad_(False), None
    G, _ = load_models(state)
    return G.to(device).eval().requires_grad_(False), state["config"]


@torch.no_grad()
def generate_layers(G, seeds, truncation=1.0, device="cpu"):
    """Layers (or, from a plain generator, images) for each seed: the latent and the noise inputs are drawn from
    that seed alone."""
    out = [sample_layers(G, 1, torch.Generator().manual_seed(seed), truncation, device) for seed in seeds]
    if isinstance(out[0], torch.Tensor):
        return torch.cat(out)
    return type(out[0])(*(torch.cat(t) for t in zip(*out)))


def named_images(layers):
    """{row name: [N, 3, H, W] in [-1, 1]} for a grid: the layers and their composite, or a plain generator's
    images."""
    if isinstance(layers, torch.Tensor):
        return {"image": layers}
    return {"background": layers.background, "foreground": layers.foreground,
            "mask": (layers.mask * 2 - 1).expand(-1, 3, -1, -1),
            "composite": composite(layers.background, layers.foreground, layers.mask)}


def save_samples(images, seeds, out, grid=True):
    """OUT/layers.png, a grid of `named_images` (a row each, a column per seed), or one OUT/seed{S}_{row}.png each."""
    if grid:
        save_image_grid(torch.cat(list(images.values())), os.path.join(out, "layers.png"), nrow=len(seeds))
        return
    for name, batch in images.items():
        for seed, img in zip(seeds, batch):
            save_image_grid(img[None], os.path.join(out, f"seed{seed:04d}_{name}.png"), nrow=1)
