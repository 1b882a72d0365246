"""Scoring generated masks with a supervised reference segmenter (PerturbGAN Table 1 protocol).

The paper runs Mask R-CNN on generated composites; on the synthetic dataset a
U-Net trained on the train split's ground truth plays that role (it must reach
0.9 IoU on held-out real images). Composites are segmented at the reference's
resolution (smaller ones up-sampled, as the paper does 64 -> 128); those where
it finds no object are skipped and counted; generated masks are binarized at
0.5 and compared with its masks.

    python -m layered_gan.evaluation.generated --ckpt runs/demo --num 2000
"""

import json
import os

import click
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..data.dataset import ImageDataset
from ..data.synthetic import build_synthetic, split_paths
from ..paths import cache_dir
from ..render import composite
from ..segmenter.model import build_segmenter, load_segmenter, predict, save_segmenter
from ..segmenter.pairs import layered_noise
from ..segmenter.training import fit, repeat
from .evaluate import evaluate
from .metrics import iou_per_image
from .sources import FileSource, SegmenterMasks


def held_out_iou(model, root, progress=False):
    """Mean per-image foreground IoU of the reference on the held-out split."""
    images, masks = (FileSource(p) for p in split_paths(root, "test"))
    return evaluate(SegmenterMasks(images, model), masks, progress=progress)["summary"]["per_image"]["fg_iou"]


def train_reference(synthetic, steps=1200, batch=32, width=16, lr=1e-3, seed=0, device="cpu", progress=True):
    """A U-Net trained with ground truth on the synthetic train split; cached by its settings.

    synthetic: the config's synthetic-dataset settings (resolution, count, test_count, seed).
    Returns (model, held-out foreground IoU).
    """
    root = build_synthetic(**synthetic, progress=progress)
    res = synthetic["resolution"]
    path = cache_dir("reference", f"{os.path.basename(root)}-unet{width}-{steps}steps-seed{seed}.pt")
    if os.path.isfile(path):
        model, meta = load_segmenter(path, device)
        return model, meta["test_iou"]
    torch.manual_seed(seed)
    model = build_segmenter(res, width).to(device)
    images, masks = split_paths(root, "train")
    ds = ImageDataset(images, res, crop="center", hflip=True, masks=masks)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, drop_last=True,
                                         generator=torch.Generator().manual_seed(seed))
    fit(model, repeat(loader), steps, lr, device=device, progress=progress, desc="reference U-Net")
    iou = held_out_iou(model, root)
    save_segmenter(model, path, test_iou=iou)
    return model, iou


@torch.no_grad()
def score_generated(G, reference, num=2000, batch=100, min_area=0.01, seed=0, device="cpu", progress=True):
    """Table 1 protocol on `num` unshifted composites of G (its EMA copy). Returns a dict of figures."""
    gen = torch.Generator().manual_seed(seed)
    ious, full, soft, means, skipped = [], [], [], [], 0
    for start in tqdm(range(0, num, batch), desc="scoring composites", disable=not progress):
        n = min(batch, num - start)
        layers = G(torch.randn(n, G.z_dim, generator=gen).to(device), noise=layered_noise(G, n, device, gen))
        x = composite(layers.background, layers.foreground, layers.mask).clamp(-1, 1)
        size = reference.resolution
        if x.shape[-1] != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        ref = predict(reference, x)[:, 0].numpy() > 0.5
        mask = F.interpolate(layers.mask, size=size, mode="nearest")[:, 0].cpu().numpy()
        found = ref.reshape(n, -1).mean(1) >= min_area
        skipped += int((~found).sum())
        ious.append(iou_per_image(mask[found] > 0.5, ref[found])[0])
        full.append(iou_per_image(np.ones_like(ref[found]), ref[found])[0])
        soft.append(((mask > 0.1) & (mask < 0.9)).mean())
        means.append(mask.mean())
    ious, full = np.concatenate(ious), np.concatenate(full)
    return {"composites": num, "scored": int(len(ious)), "skipped_no_object": skipped,
            "iou": float(ious.mean()) if len(ious) else 0.0, "full_mask_iou": float(full.mean()) if len(full) else 0.0,
            "soft_mask_share": float(np.mean(soft)), "mask_mean": float(np.mean(means))}


@click.command()
@click.option("--ckpt", required=True, help="Run folder or checkpoint of a layered generator.")
@click.option("--num", default=2000, show_default=True, help="Generated composites to score.")
@click.option("--steps", default=1200, show_default=True, help="Training steps of the reference U-Net.")
@click.option("--out", default=None, help="JSON file for the figures (default: RUN/generated_eval.json).")
@click.option("--device", default="cuda" if torch.cuda.is_available() else "cpu", show_default=True)
def main(ckpt, num, steps, out, device):
    """Score a layered generator's masks against the reference segmenter (synthetic data only)."""
    from ..generate import load_generator

    G, cfg = load_generator(ckpt, device)
    if cfg["data"]["source"] != "synthetic":
        raise click.BadParameter("this protocol needs a run on the synthetic dataset (its ground truth trains the "
                                 "reference)", param_hint="--ckpt")
    reference, ref_iou = train_reference(cfg["data"]["synthetic"], steps=steps, device=device)
    if ref_iou < 0.9:
        click.echo(f"warning: the reference reaches only {ref_iou:.3f} IoU on held-out images (target 0.9)", err=True)
    figures = {"reference_test_iou": ref_iou, **score_generated(G, reference, num, device=device)}
    print(json.dumps(figures, indent=2))
    out = out or os.path.join(ckpt if os.path.isdir(ckpt) else os.path.dirname(ckpt), "generated_eval.json")
    with open(out, "w") as fh:
        json.dump(figures, fh, indent=2)


if __name__ == "__main__":
    main()
