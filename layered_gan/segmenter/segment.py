"""Apply a trained segmenter to images of any size: mask PNGs and overlays.

    python -m layered_gan.segmenter.segment --model runs/demo/distill/seed0 --images PHOTOS --out OUT

Each image's shorter side is rescaled to the segmenter's training resolution,
the mask is predicted and resized back to the image (Voynov et al., sec. 4).
OUT/masks/NAME.png holds the mask (0 / 255 at --threshold, or grey levels
with --soft), OUT/overlays/NAME.png the image with the foreground tinted red;
NAME is the image's path without extension (or its LMDB key), so
`python -m layered_gan.evaluation.evaluate --pred OUT/masks ...` matches it.
"""

import os

import click
import numpy as np
import torch
from tqdm import tqdm

from ..evaluation.evaluate import open_source
from ..evaluation.sources import SegmenterMasks
from ..files import save_png
from .model import load_segmenter


def overlay(image, mask, color=(255, 0, 0), alpha=0.5):
    """uint8 [H, W, 3]: the image with pixels where mask is true blended towards `color`."""
    out = np.asarray(image, np.float32).copy()
    out[mask] = (1 - alpha) * out[mask] + alpha * np.asarray(color, np.float32)
    return out.round().astype(np.uint8)


def segment_source(model, images, out, threshold=0.5, soft=False, chunk=32, progress=True):
    """Write OUT/masks and OUT/overlays for every image of a source; returns the number written."""
    pred = SegmenterMasks(images, model)
    names = images.names
    with tqdm(total=len(names), desc="segmenting", unit="img", disable=not progress) as bar:
        for start in range(0, len(names), chunk):
            batch = names[start:start + chunk]
            for name, prob in zip(batch, pred.masks(batch)):
                binary = prob > threshold
                mask = (prob * 255).round() if soft else binary * 255
                save_png(mask.astype(np.uint8), os.path.join(out, "masks", name + ".png"))
                save_png(overlay(images.image(name), binary), os.path.join(out, "overlays", name + ".png"))
                bar.update()
    return len(names)


@click.command()
@click.option("--model", required=True, help="segmenter.pt, or a folder holding it (a distill seed folder).")
@click.option("--images", required=True, help="Images: a folder (any sizes, sub-folders kept) or an LMDB.")
@click.option("--out", required=True, help="Output folder: masks/ and overlays/.")
@click.option("--threshold", default=0.5, show_default=True)
@click.option("--soft", is_flag=True, help="Write foreground probabilities as grey levels instead of 0 / 255.")
@click.option("--device", default="cuda" if torch.cuda.is_available() else "cpu", show_default=True)
def main(model, images, out, threshold, soft, device):
    """Segment a folder of images with a trained segmenter."""
    try:
        segmenter, _ = load_segmenter(model, device)
    except (OSError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--model") from None
    count = segment_source(segmenter, open_source(images, "--images"), out, threshold, soft)
    click.echo(f"{count} masks in {os.path.join(out, 'masks')}, overlays in {os.path.join(out, 'overlays')}")


if __name__ == "__main__":
    main()
