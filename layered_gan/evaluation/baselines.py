"""Label-free baseline masks and the command that scores them.

Full-image mask (PerturbGAN's "reference" and Table 2 "full mask"), a centre
prior (a centred ellipse of the image's aspect covering a fixed share),
2-cluster colour k-means, and GrabCut (Rother et al. 2004; OpenCV, optional
extra `pip install -e ".[grabcut]"`) started from a rectangle a few pixels
inside the border, as PerturbGAN's Table 2 baseline.

    python -m layered_gan.evaluation.baselines --synthetic --out bench/baselines     # synthetic held-out split
    python -m layered_gan.evaluation.baselines --images IMAGES --gt MASKS --out DIR --method grabcut
"""

import os

import click
import numpy as np
from scipy.cluster.vq import kmeans2

from ..data.synthetic import build_synthetic, split_paths
from ..files import write_json
from .evaluate import MatchError, comparison_table, evaluate, listing, open_source, report
from .sources import MaskFunction

METHODS = ("full", "centre", "kmeans", "grabcut")


def _shape(size):
    return (size, size) if np.isscalar(size) else tuple(size)


def full_mask(size):
    """All foreground; size: side or (height, width)."""
    return np.ones(_shape(size), dtype=bool)


def centre_disc(size, coverage=0.25):
    """A centred disc (an ellipse of the image's aspect when not square) covering `coverage` of the image."""
    h, w = _shape(size)
    yy, xx = np.mgrid[0:h, 0:w]
    return np.hypot((xx + 0.5) / w - 0.5, (yy + 0.5) / h - 0.5) <= np.sqrt(coverage / np.pi)


def kmeans_mask(image, seed=0):
    """Cluster pixel colours (uint8 [H, W, 3]) in two; foreground = the cluster less present on the border."""
    h, w, _ = image.shape
    pixels = image.reshape(-1, 3).astype(np.float64)
    _, labels = kmeans2(pixels, 2, minit="++", seed=seed)
    labels = labels.reshape(h, w)
    border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    fg_label = 0 if (border == 0).mean() < 0.5 else 1
    return labels == fg_label


def _cv2():
    try:
        import cv2
    except ImportError:
        raise ImportError("GrabCut needs OpenCV: pip install opencv-python-headless "
                          "(or pip install -e \".[grabcut]\")") from None
    return cv2


def grabcut_mask(image, margin=4, iterations=5, seed=0):
    """GrabCut (uint8 [H, W, 3]) from the rectangle `margin` pixels inside the border; definite and probable
    foreground count as foreground."""
    cv2 = _cv2()
    h, w, _ = image.shape
    m = min(margin, (min(h, w) - 2) // 2)
    mask = np.zeros((h, w), np.uint8)
    cv2.setRNGSeed(seed)
    cv2.grabCut(np.ascontiguousarray(image[..., ::-1]), mask, (m, m, w - 2 * m, h - 2 * m),
                np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64), iterations, cv2.GC_INIT_WITH_RECT)
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)


def baseline(method, coverage=0.25, margin=4):
    """The mask function of a method: uint8 [H, W, 3] image -> bool [H, W]."""
    if method == "full":
        return lambda img: full_mask(img.shape[:2])
    if method == "centre":
        return lambda img: centre_disc(img.shape[:2], coverage)
    if method == "kmeans":
        return kmeans_mask
    if method == "grabcut":
        _cv2()  # fail before any work when OpenCV is missing
        return lambda img: grabcut_mask(img, margin)
    raise ValueError(f"unknown baseline {method!r}; choose from {METHODS}")


@click.command()
@click.option("--synthetic", is_flag=True,
              help="Use the built-in synthetic dataset's held-out split (the demo config's: 64 px, seed 0).")
@click.option("--images", default=None, help="Images (folder or LMDB), when not --synthetic.")
@click.option("--gt", default=None, help="Ground-truth masks with the images' names, when not --synthetic.")
@click.option("--out", required=True, help="Folder: METHOD/metrics.json, METHOD/cases.png, baselines.json.")
@click.option("--method", "methods", multiple=True, type=click.Choice(METHODS),
              default=("full", "centre", "grabcut"), show_default=True)
@click.option("--coverage", default=0.25, show_default=True, help="Centre prior: share of the image covered.")
@click.option("--margin", default=4, show_default=True, help="GrabCut: rectangle inset from the border (pixels).")
def main(synthetic, images, gt, out, methods, coverage, margin):
    """Score label-free baselines (full mask, centre prior, k-means, GrabCut) against ground truth."""
    if synthetic == bool(images and gt) or (images is None) != (gt is None):
        raise click.UsageError("give either --synthetic or both --images and --gt")
    if synthetic:
        images, gt = split_paths(build_synthetic(), "test")
    image_src, gt_src = open_source(images, "--images"), open_source(gt, "--gt")
    missing = sorted(set(gt_src.names) - set(image_src.names))
    if missing:
        raise click.ClickException(f"{len(missing)} ground-truth masks have no image: {listing(missing)}")
    summaries = {}
    for method in methods:
        try:
            pred = MaskFunction(image_src, baseline(method, coverage, margin))
        except ImportError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"\n== {method}")
        try:
            result = evaluate(pred, gt_src)
        except MatchError as exc:
            raise click.ClickException(str(exc)) from None
        result.update(method=method, images=images, gt=gt)
        report(result, os.path.join(out, method), pred, gt_src, image_src, echo=click.echo)
        summaries[method] = result["summary"]
    write_json(os.path.join(out, "baselines.json"), {"images": images, "gt": gt, "coverage": coverage,
                                                     "margin": margin, "summaries": summaries})
    comparison_table(summaries, click.echo)


if __name__ == "__main__":
    main()
