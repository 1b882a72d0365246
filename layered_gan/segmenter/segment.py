"""Apply a trained segmenter to images of any size: mask PNGs and overlays.

    layered-gan segment --model runs/demo/distill/seed0 --images PHOTOS --out OUT

Each image's shorter side is rescaled to the segmenter's training resolution,
the mask is predicted and resized back to the image (Voynov et al., sec. 4).
OUT/masks/NAME.png holds the mask (0 / 255 at --threshold, or grey levels
with --soft), OUT/overlays/NAME.png the image with the foreground tinted red;
NAME is the image's path without extension (or its LMDB key), so
`layered-gan evaluate --pred OUT/masks ...` matches it.
"""

import os

import numpy as np
from tqdm import tqdm

from ..evaluation.sources import SegmenterMasks
from ..files import save_png


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
