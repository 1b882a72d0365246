"""GrabCut refinement of a segmenter's pseudo-labels, scored on held-out generated pairs (their masks as truth).

Self-training (segmenter/self_training.py) labels real images with a distilled segmenter; GrabCut started from
that mask is a classic refinement. Settings are chosen on generated data only, so this measures each variant
there: the segmenter's own mask, GrabCut from a rectangle, and GrabCut from the mask with "definite" labels
where the segmenter is confident (--sure) or far from its mask (band).

    python bench/grabcut_refinement.py --segmenter DISTILL/seed0 --ckpt L4F_RUN --num 300 --placement 0.5
"""

import os
import sys

import click
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from layered_gan.distill import pair_source  # noqa: E402
from layered_gan.evaluation.baselines import _cv2, grabcut, grabcut_mask  # noqa: E402
from layered_gan.evaluation.metrics import iou_per_image  # noqa: E402
from layered_gan.images import to_uint8  # noqa: E402
from layered_gan.segmenter.filters import default_filters  # noqa: E402
from layered_gan.segmenter.model import load_segmenter, predict  # noqa: E402
from layered_gan.segmenter.pairs import fixed_pairs  # noqa: E402


def refine(image, prob, sure=None, band=None):
    """GrabCut [H, W] bool from probabilities `prob` [H, W]: p > 0.5 probable foreground, else probable
    background; p > sure / p < 1 - sure definite (sure > 0.5); pixels over `band` px from the mask definite
    background. Neither moves a pixel across 0.5, so the start's foreground is p > 0.5."""
    cv2 = _cv2()
    mask = prob > 0.5
    if mask.all() or not mask.any():
        return mask  # GrabCut needs both kinds of pixel
    label = np.where(mask, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    if sure is not None:
        label[prob > sure], label[prob < 1 - sure] = cv2.GC_FGD, cv2.GC_BGD
    if band is not None:
        near = cv2.dilate(mask.astype(np.uint8), np.ones((2 * band + 1, 2 * band + 1), np.uint8))
        label[near == 0] = cv2.GC_BGD
    return grabcut(image, label)


@click.command()
@click.option("--segmenter", required=True, help="A distilled segmenter (folder or segmenter.pt).")
@click.option("--ckpt", required=True, help="The layered or Labels4Free run whose pairs it was distilled from.")
@click.option("--num", default=300, show_default=True, help="Held-out generated pairs.")
@click.option("--threshold", default=0.9, show_default=True, help="The pairs' mask threshold (as distilled).")
@click.option("--placement", default=None, type=float, help="As distilled (--placement).")
@click.option("--seed", default=777, show_default=True, help="The pairs' stream (not a training stream).")
def main(segmenter, ckpt, num, threshold, placement, seed):
    source, _ = pair_source(ckpt, None, None, None, None, threshold, 1.0, "cpu", placement=placement)
    pairs = fixed_pairs(source, default_filters(rules="code"), num, seed)
    model, _ = load_segmenter(segmenter)
    prob = predict(model, pairs.image)[:, 0].numpy()
    truth = pairs.mask[:, 0].numpy() > 0.5
    images = to_uint8(pairs.image)
    variants = {
        "the segmenter (p > 0.5)": lambda i: prob[i] > 0.5,
        "GrabCut from a rectangle 2 px inside the border": lambda i: grabcut_mask(images[i], 2),
        "GrabCut from the mask, all probable": lambda i: refine(images[i], prob[i]),
        "the same, definite at p > 0.9 / < 0.1": lambda i: refine(images[i], prob[i], sure=0.9),
        "the same, definite at p > 0.97 / < 0.03": lambda i: refine(images[i], prob[i], sure=0.97),
        "all probable, definite background 2 px from the mask": lambda i: refine(images[i], prob[i], band=2),
        "all probable, definite background 4 px from the mask": lambda i: refine(images[i], prob[i], band=4),
    }
    for name, mask in variants.items():
        fg_iou, _ = iou_per_image(np.stack([mask(i) for i in range(len(truth))]), truth)
        print(f"{name:55s} fg IoU {fg_iou.mean():.4f}")


if __name__ == "__main__":
    main()
