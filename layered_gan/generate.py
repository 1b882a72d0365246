"""Samples from a trained generator: per-seed layers or a layered grid (a plain StyleGAN2: images or a grid).

    layered-gan generate --ckpt runs/demo --seeds 0-7 --truncation 0.7 --out samples/
"""

import os

import torch

from .errors import BadValue
from .images import save_image_grid
from .render import composite


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
