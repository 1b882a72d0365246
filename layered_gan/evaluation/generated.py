"""Scoring generated masks with a supervised reference segmenter (PerturbGAN Table 1 protocol).

The papers run a pretrained detector on generated composites (PerturbGAN Tables 1-2: Mask R-CNN on LSUN;
Labels4Free Table 2: Detectron2, multi-instance samples rejected). Its weights cannot ship here, so the
reference is the user's (`ExternalReference`): a TorchScript file or a Python callable `module:name` taking
images [B, 3, H, W] in [-1, 1] and returning either a per-pixel object probability [B, 1, H, W]
(output="probability") or instance masks [B, K, H, W] (output="instances": one channel per detection,
all-zero channels for none). On the synthetic dataset a U-Net trained on the train split's ground truth
plays that role by default (it must reach 0.9 IoU on held-out real images). Composites are segmented at the
reference's resolution (smaller ones up-sampled, as the paper does 64 -> 128); those where it finds no
object are skipped and counted, and with instance masks those with more than one (Labels4Free's
rejection); generated masks are binarized at --threshold (0.5; Labels4Free's Table 2 protocol: 0.9) and
compared with its masks: fg / bg IoU, mIoU, F1, precision, recall and accuracy (metrics.py). Any pair
source (`segmenter.pairs`: image, mask) can be scored this way: a layered or Labels4Free generator here,
latent-direction masks in `layered-gan directions score`.

    layered-gan score-generated --ckpt runs/demo --num 2000
    layered-gan score-generated --ckpt runs/l4f_demo --threshold 0.9
    layered-gan score-generated --ckpt runs/l4f_car --reference maskrcnn_car.ts --reference-output instances \
        --reference-size 512 --threshold 0.9
"""

import importlib.util
import os

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .. import rng
from ..data.dataset import ImageDataset
from ..data.synthetic import build_synthetic, split_paths
from ..errors import BadValue, MissingPath
from ..paths import REPO_ROOT, cache_dir
from ..segmenter.model import build_segmenter, load_segmenter, predict, save_segmenter
from ..segmenter.pairs import LayeredGeneratorPairs
from ..segmenter.training import fit, repeat
from .baselines import centre_disc
from .evaluate import evaluate
from .metrics import METRICS, Scores, iou_per_image
from .sources import FileSource, SegmenterMasks

SHIPPED_REFERENCES = os.path.join(REPO_ROOT, "checkpoints", "reference")


def held_out_iou(model, root, progress=False):
    """Mean per-image foreground IoU of the reference on the held-out split."""
    images, masks = (FileSource(p) for p in split_paths(root, "test"))
    return evaluate(SegmenterMasks(images, model), masks, progress=progress)["summary"]["per_image"]["fg_iou"]


def train_reference(synthetic, steps=1200, batch=32, width=16, lr=1e-3, seed=0, device="cpu", progress=True,
                    backbone="unet"):
    """A U-Net trained with ground truth on the synthetic train split; cached by its settings.

    synthetic: the config's synthetic-dataset settings (resolution, count, test_count, seed).
    backbone: "unet" (from scratch) or "efficientnet" (the ImageNet encoder, fine-tuned; segmenter.model).
    A file of the same name in checkpoints/reference/ (the demo's is shipped there) is used when its
    recorded settings are these. Returns (model, held-out foreground IoU).
    """
    root = build_synthetic(**synthetic, progress=progress)
    res = synthetic["resolution"]
    kind = "unet" if backbone == "unet" else f"{backbone}-unet"
    name = f"{os.path.basename(root)}-{kind}{width}-{steps}steps-seed{seed}.pt"
    settings = {"synthetic": dict(synthetic), "steps": steps, "batch": batch, "width": width, "lr": lr, "seed": seed,
                **({} if backbone == "unet" else {"backbone": backbone})}
    path = cache_dir("reference", name)
    for found in (os.path.join(SHIPPED_REFERENCES, name), path):
        if os.path.isfile(found):
            model, meta = load_segmenter(found, device)
            if meta.get("settings", settings) == settings:  # files cached before settings were recorded: by name
                return model, meta["test_iou"]
    torch.manual_seed(seed)
    model = build_segmenter(res, width, backbone=backbone).to(device)
    images, masks = split_paths(root, "train")
    ds = ImageDataset(images, res, crop="center", hflip=True, masks=masks)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, drop_last=True,
                                         generator=rng.generator(seed))
    fit(model, repeat(loader), steps, lr, device=device, progress=progress, desc="reference U-Net")
    iou = held_out_iou(model, root)
    save_segmenter(model, path, test_iou=iou, settings=settings)
    return model, iou


def synthetic_settings(cfg, ckpt):
    """The synthetic-dataset settings of a run's config (the reference is trained on their ground truth)."""
    if not cfg or cfg["data"]["source"] != "synthetic":
        raise BadValue(f"{ckpt} is not a run on the synthetic dataset; the reference segmenter needs its ground "
                       "truth")
    return cfg["data"]["synthetic"]


REFERENCE_OUTPUTS = ("probability", "instances")


class ExternalReference:
    """A user's reference segmenter (module docstring) run at `resolution` px; `min_area`: the share of the image
    a detection must cover to count."""

    def __init__(self, fn, resolution, output="probability"):
        if output not in REFERENCE_OUTPUTS:
            raise BadValue(f"reference output must be one of {REFERENCE_OUTPUTS}, got {output!r}")
        self.fn, self.resolution, self.output = fn, resolution, output

    def __call__(self, x, min_area):
        """(object mask bool [B, S, S], detected instances [B]) for images [B, 3, S, S]."""
        out = self.fn(x).float()
        if out.ndim != 4 or out.shape[0] != len(x) or out.shape[-2:] != x.shape[-2:] or (
                self.output == "probability" and out.shape[1] != 1):
            wanted = "[B, 1, H, W] probabilities" if self.output == "probability" else "[B, K, H, W] instances"
            raise BadValue(f"the reference returned {list(out.shape)} for images {list(x.shape)}; expected {wanted}")
        detections = (out > 0.5).cpu().numpy()
        counted = detections.reshape(*detections.shape[:2], -1).mean(2) >= min_area  # [B, K]
        mask = (detections & counted[:, :, None, None]).any(1)
        return mask, counted.sum(1)


class UNetReference:
    """A U-Net of segmenter.model (the synthetic dataset's reference): one object where it covers min_area."""

    def __init__(self, model):
        self.model, self.resolution = model, model.resolution

    def __call__(self, x, min_area):
        mask = predict(self.model, x)[:, 0].cpu().numpy() > 0.5
        return mask, (mask.reshape(len(mask), -1).mean(1) >= min_area).astype(np.int64)


def load_reference(spec, resolution, output="probability", device="cpu"):
    """ExternalReference from a TorchScript file (loaded on `device`, where the images will be) or a callable given as
    `module:name` (or `file.py:name`)."""
    if os.path.isfile(spec):
        fn = torch.jit.load(spec, map_location=device).eval()
    elif ":" in spec:
        module_name, name = spec.rsplit(":", 1)
        if module_name.endswith(".py"):
            if not os.path.isfile(module_name):
                raise MissingPath(f"--reference {spec}: {module_name} does not exist")
            loader = importlib.util.spec_from_file_location(os.path.basename(module_name)[:-3], module_name)
            module = importlib.util.module_from_spec(loader)
            loader.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
        fn = getattr(module, name, None)
        if not callable(fn):
            raise BadValue(f"--reference {spec}: {module_name} has no callable {name!r}")
    else:
        raise MissingPath(f"--reference {spec} is neither a TorchScript file nor a callable as module:name")
    return ExternalReference(fn, resolution, output)


@torch.no_grad()
def score_masks(source, reference, num=2000, batch=100, min_area=0.01, threshold=0.5, seed=0, progress=True,
                desc="scoring masks", reject_multi=True):
    """The reference protocol on `num` (image, mask) pairs of a pair source; returns a dict of figures.

    reference: an ExternalReference, or a U-Net (UNetReference). Images are segmented at the reference's
    resolution (bilinear up- or down-sampling; masks nearest); those where it finds no object covering
    `min_area` are skipped and counted, and (reject_multi) those with several instances. metrics: the
    per-image means of fg_iou, bg_iou, miou, f1, precision, recall, accuracy. iou: mean foreground
    IoU of mask > threshold; full_mask_iou: the same for an all-foreground mask (the floor to beat);
    centre_iou: the same for a centred disc covering as much as each mask (what its placement adds to
    its size: a mask that only follows the generators' centre bias scores no more); soft_mask_share:
    pixels in (0.1, 0.9); mask_mean: mean mask value; mask_coverage: share > threshold.
    """
    generator = rng.generator(seed)
    reference = reference if isinstance(reference, ExternalReference) else UNetReference(reference)
    size = reference.resolution
    ious, full, centre, soft, means, coverage, skipped, multi = [], [], [], [], [], [], 0, 0
    scores = Scores(threshold)
    for start in tqdm(range(0, num, batch), desc=desc, disable=not progress):
        pairs = source.sample(min(batch, num - start), generator)
        x = pairs.image
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        ref, instances = reference(x, min_area)
        mask = F.interpolate(pairs.mask.float(), size=size, mode="nearest")[:, 0].cpu().numpy()
        skipped += int((instances == 0).sum())
        multi += int((instances > 1).sum()) if reject_multi else 0
        found = (instances == 1) if reject_multi else (instances >= 1)
        if found.any():
            scores.update(mask[found], ref[found])
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

    metrics = scores.summary()["per_image"] if len(scores) else {k: 0.0 for k in METRICS}
    return {"images": num, "scored": int(len(ious)), "skipped_no_object": skipped, "skipped_multi_instance": multi,
            "threshold": threshold, "metrics": {k: metrics[k] for k in METRICS}, "iou": mean(ious),
            "full_mask_iou": mean(full), "centre_iou": mean(centre),
            "soft_mask_share": float(np.concatenate(soft).mean()), "mask_mean": float(np.concatenate(means).mean()),
            "mask_coverage": float(np.concatenate(coverage).mean())}


def score_generated(G, reference, num=2000, batch=100, min_area=0.01, seed=0, device="cpu", progress=True,
                    threshold=0.5, truncation=1.0, reject_multi=True):
    """Table 1 protocol on `num` unshifted composites of a layered or Labels4Free generator (its EMA copy),
    their soft masks binarized at `threshold`. Returns a dict of figures (score_masks)."""
    return score_masks(LayeredGeneratorPairs(G, truncation, None, device), reference, num, batch, min_area,
                       threshold, seed, progress, desc="scoring composites", reject_multi=reject_multi)
