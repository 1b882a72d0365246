"""Scoring generated masks with a supervised reference segmenter (PerturbGAN Table 1 protocol).

The paper runs Mask R-CNN on generated composites; on the synthetic dataset a
U-Net trained on the train split's ground truth plays that role (it must reach
0.9 IoU on held-out real images). Composites are segmented at the reference's
resolution (smaller ones up-sampled, as the paper does 64 -> 128); those where
it finds no object are skipped and counted; generated masks are binarized at
--threshold (0.5; Labels4Free's Table 2 protocol: 0.9) and compared with its
masks. Any pair source (`segmenter.pairs`: image, mask) can be scored this way:
a layered or Labels4Free generator here, latent-direction masks in
`python -m layered_gan.directions score`.

    python -m layered_gan.evaluation.generated --ckpt runs/demo --num 2000
    python -m layered_gan.evaluation.generated --ckpt runs/l4f_demo --threshold 0.9
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
from ..paths import REPO_ROOT, cache_dir
from ..segmenter.model import build_segmenter, load_segmenter, predict, save_segmenter
from ..segmenter.pairs import LayeredGeneratorPairs
from ..segmenter.training import fit, repeat
from .baselines import centre_disc
from .evaluate import evaluate
from .files import write_json
from .metrics import iou_per_image
from .sources import FileSource, SegmenterMasks

SHIPPED_REFERENCES = os.path.join(REPO_ROOT, "checkpoints", "reference")


def held_out_iou(model, root, progress=False):
    """Mean per-image foreground IoU of the reference on the held-out split."""
    images, masks = (FileSource(p) for p in split_paths(root, "test"))
    return evaluate(SegmenterMasks(images, model), masks, progress=progress)["summary"]["per_image"]["fg_iou"]


def train_reference(synthetic, steps=1200, batch=32, width=16, lr=1e-3, seed=0, device="cpu", progress=True):
    """A U-Net trained with ground truth on the synthetic train split; cached by its settings.

    synthetic: the config's synthetic-dataset settings (resolution, count, test_count, seed).
    A file of the same name in checkpoints/reference/ (the demo's is shipped there) is used when its
    recorded settings are these. Returns (model, held-out foreground IoU).
    """
    root = build_synthetic(**synthetic, progress=progress)
    res = synthetic["resolution"]
    name = f"{os.path.basename(root)}-unet{width}-{steps}steps-seed{seed}.pt"
    settings = {"synthetic": dict(synthetic), "steps": steps, "batch": batch, "width": width, "lr": lr, "seed": seed}
    path = cache_dir("reference", name)
    for found in (os.path.join(SHIPPED_REFERENCES, name), path):
        if os.path.isfile(found):
            model, meta = load_segmenter(found, device)
            if meta.get("settings", settings) == settings:  # files cached before settings were recorded: by name
                return model, meta["test_iou"]
    torch.manual_seed(seed)
    model = build_segmenter(res, width).to(device)
    images, masks = split_paths(root, "train")
    ds = ImageDataset(images, res, crop="center", hflip=True, masks=masks)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, drop_last=True,
                                         generator=torch.Generator().manual_seed(seed))
    fit(model, repeat(loader), steps, lr, device=device, progress=progress, desc="reference U-Net")
    iou = held_out_iou(model, root)
    save_segmenter(model, path, test_iou=iou, settings=settings)
    return model, iou


def synthetic_settings(cfg, ckpt):
    """The synthetic-dataset settings of a run's config (the reference is trained on their ground truth)."""
    if not cfg or cfg["data"]["source"] != "synthetic":
        raise ValueError(f"{ckpt} is not a run on the synthetic dataset; the reference segmenter needs its ground "
                         "truth")
    return cfg["data"]["synthetic"]


@torch.no_grad()
def score_masks(source, reference, num=2000, batch=100, min_area=0.01, threshold=0.5, seed=0, progress=True,
                desc="scoring masks"):
    """The reference protocol on `num` (image, mask) pairs of a pair source; returns a dict of figures.

    Images are segmented at the reference's resolution (bilinear up- or down-sampling; masks nearest);
    those where it finds less than `min_area` foreground are skipped and counted. iou: mean foreground
    IoU of mask > threshold; full_mask_iou: the same for an all-foreground mask (the floor to beat);
    centre_iou: the same for a centred disc covering as much as each mask (what its placement adds to
    its size: a mask that only follows the generators' centre bias scores no more); soft_mask_share:
    pixels in (0.1, 0.9); mask_mean: mean mask value; mask_coverage: share > threshold.
    """
    generator = torch.Generator().manual_seed(seed)
    size = reference.resolution
    ious, full, centre, soft, means, coverage, skipped = [], [], [], [], [], [], 0
    for start in tqdm(range(0, num, batch), desc=desc, disable=not progress):
        pairs = source.sample(min(batch, num - start), generator)
        x = pairs.image
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        ref = predict(reference, x)[:, 0].cpu().numpy() > 0.5
        mask = F.interpolate(pairs.mask.float(), size=size, mode="nearest")[:, 0].cpu().numpy()
        found = ref.reshape(len(ref), -1).mean(1) >= min_area
        skipped += int((~found).sum())
        if found.any():
            ious.append(iou_per_image(mask[found] > threshold, ref[found])[0])
            full.append(iou_per_image(np.ones_like(ref[found]), ref[found])[0])
            discs = np.stack([centre_disc(size, (m > threshold).mean()) for m in mask[found]])
            centre.append(iou_per_image(discs, ref[found])[0])
        soft.append(((mask > 0.1) & (mask < 0.9)).mean((1, 2)))
        means.append(mask.mean((1, 2)))
        coverage.append((mask > threshold).mean((1, 2)))
    ious, full, centre = (np.concatenate(v or [np.zeros(0)]) for v in (ious, full, centre))

    def mean(v):
        return float(v.mean()) if len(v) else 0.0

    return {"images": num, "scored": int(len(ious)), "skipped_no_object": skipped, "threshold": threshold,
            "iou": mean(ious), "full_mask_iou": mean(full), "centre_iou": mean(centre),
            "soft_mask_share": float(np.concatenate(soft).mean()), "mask_mean": float(np.concatenate(means).mean()),
            "mask_coverage": float(np.concatenate(coverage).mean())}


def score_generated(G, reference, num=2000, batch=100, min_area=0.01, seed=0, device="cpu", progress=True,
                    threshold=0.5, truncation=1.0):
    """Table 1 protocol on `num` unshifted composites of a layered or Labels4Free generator (its EMA copy),
    their soft masks binarized at `threshold`. Returns a dict of figures (score_masks)."""
    return score_masks(LayeredGeneratorPairs(G, truncation, None, device), reference, num, batch, min_area,
                       threshold, seed, progress, desc="scoring composites")


@click.command()
@click.option("--ckpt", required=True, help="Run folder or checkpoint of a layered or Labels4Free generator.")
@click.option("--num", default=2000, show_default=True, help="Generated composites to score.")
@click.option("--threshold", default=0.5, show_default=True,
              help="Binarize generated masks at this value (Labels4Free's Table 2 protocol: 0.9).")
@click.option("--truncation", default=1.0, show_default=True, help="Truncation psi of the generator.")
@click.option("--steps", default=1200, show_default=True, help="Training steps of the reference U-Net.")
@click.option("--out", default=None, help="JSON file for the figures (default: RUN/generated_eval.json).")
@click.option("--device", default="cuda" if torch.cuda.is_available() else "cpu", show_default=True)
def main(ckpt, num, threshold, truncation, steps, out, device):
    """Score a generator's masks against the reference segmenter (runs on the synthetic dataset only)."""
    from ..generate import load_generator

    G, cfg = load_generator(ckpt, device)
    try:
        synthetic = synthetic_settings(cfg, ckpt)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--ckpt") from None
    reference, ref_iou = train_reference(synthetic, steps=steps, device=device)
    if ref_iou < 0.9:
        click.echo(f"warning: the reference reaches only {ref_iou:.3f} IoU on held-out images (target 0.9)", err=True)
    figures = {"reference_test_iou": ref_iou, "truncation": truncation,
               **score_generated(G, reference, num, device=device, threshold=threshold, truncation=truncation)}
    click.echo(json.dumps(figures, indent=2))
    write_json(out or os.path.join(ckpt if os.path.isdir(ckpt) else os.path.dirname(ckpt), "generated_eval.json"),
               figures)


if __name__ == "__main__":
    main()
