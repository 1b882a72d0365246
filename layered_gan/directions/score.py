"""Direction masks on generated images against the reference segmenter (synthetic-data runs).

The reference is `evaluation.generated`'s U-Net trained with the synthetic
dataset's ground truth; as in that protocol, images where it finds no object
are skipped and counted. Masks are scored raw (before the filters), so a
segmenting direction and random directions of the same norm compare fairly.
"""

import os

import numpy as np
import torch
from tqdm import tqdm

from ..checkpoint import load_checkpoint
from ..evaluation.metrics import iou_per_image
from ..segmenter.model import predict


def synthetic_settings(ckpt):
    """The synthetic-dataset settings of a StyleGAN2 run of ours (the reference is trained on its ground truth)."""
    path = os.path.join(ckpt, "checkpoint.pt") if os.path.isdir(ckpt) else ckpt
    config = load_checkpoint(path).get("config")
    if not config or config["data"]["source"] != "synthetic":
        raise ValueError(f"{ckpt} is not a run on the synthetic dataset; the reference segmenter needs its ground "
                         "truth")
    return config["data"]["synthetic"]


@torch.no_grad()
def score_masks(source, reference, num=2000, batch=100, min_area=0.01, seed=0, progress=True, desc="scoring masks"):
    """{'images', 'scored', 'skipped_no_object', 'iou' (mean foreground IoU), 'mask_coverage'} of a pair source."""
    generator = torch.Generator().manual_seed(seed)
    ious, coverage, skipped = [], [], 0
    for start in tqdm(range(0, num, batch), desc=desc, disable=not progress):
        pairs = source.sample(min(batch, num - start), generator)
        ref = predict(reference, pairs.image)[:, 0].cpu().numpy() > 0.5
        mask = pairs.mask[:, 0].cpu().numpy() > 0.5
        found = ref.reshape(len(ref), -1).mean(1) >= min_area
        skipped += int((~found).sum())
        if found.any():
            ious.append(iou_per_image(mask[found], ref[found])[0])
        coverage.append(mask.mean((1, 2)))
    ious = np.concatenate(ious or [np.zeros(0)])
    return {"images": num, "scored": int(len(ious)), "skipped_no_object": skipped,
            "iou": float(ious.mean()) if len(ious) else 0.0, "mask_coverage": float(np.concatenate(coverage).mean())}
