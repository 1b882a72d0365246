"""Samples from a trained generator: per-seed layers or a layered grid (a plain StyleGAN2: images or a grid).

    python -m layered_gan.generate --ckpt runs/demo --seeds 0-7 --truncation 0.7 --out samples/
"""

import os

import click
import torch

from .images import save_image_grid
from .render import composite
from .runs import load_run
from .sampling import generate_layers


def parse_seeds(text):
    """'0-3,7' -> [0, 1, 2, 3, 7]."""
    seeds = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        try:
            seeds += list(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            raise click.BadParameter(f"seeds must look like 0-7,9; got {text!r}") from None
    return seeds


def named_images(layers):
    """{row name: [N, 3, H, W] in [-1, 1]} for a grid: the layers and their composite, or a plain generator's
    images."""
    if isinstance(layers, torch.Tensor):
        return {"image": layers}
    return {"background": layers.background, "foreground": layers.foreground,
            "mask": (layers.mask * 2 - 1).expand(-1, 3, -1, -1),
            "composite": composite(layers.background, layers.foreground, layers.mask)}


@click.command()
@click.option("--ckpt", required=True, help="Run folder or checkpoint file.")
@click.option("--seeds", default="0-15", show_default=True, help="Seeds, e.g. 0-7,12.")
@click.option("--truncation", default=1.0, show_default=True, help="Truncation psi around the average w.")
@click.option("--out", required=True, help="Output folder.")
@click.option("--grid/--singles", default=True, show_default=True,
              help="One layered grid (rows: background, foreground, mask, composite; a plain generator: one row "
                   "of images) or one PNG per layer and seed.")
@click.option("--device", default="cuda" if torch.cuda.is_available() else "cpu", show_default=True)
def main(ckpt, seeds, truncation, out, grid, device):
    """Generate samples from a checkpoint: layers and composites, or a plain generator's images."""
    seeds = parse_seeds(seeds)
    G = load_run(ckpt, device=device).G
    images = named_images(generate_layers(G, seeds, truncation, device))
    if grid:
        save_image_grid(torch.cat(list(images.values())), os.path.join(out, "layers.png"), nrow=len(seeds))
    else:
        for name, batch in images.items():
            for seed, img in zip(seeds, batch):
                save_image_grid(img[None], os.path.join(out, f"seed{seed:04d}_{name}.png"), nrow=1)
    print(f"{len(seeds)} samples written to {out}")


if __name__ == "__main__":
    main()
