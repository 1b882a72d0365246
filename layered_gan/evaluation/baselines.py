"""Label-free baseline masks (scored by `layered-gan baselines`, evaluation/cli.py).

Full-image mask (PerturbGAN's "reference" and Table 2 "full mask"), a centre
prior (a centred ellipse of the image's aspect covering a fixed share),
2-cluster colour k-means, and GrabCut (Rother et al. 2004; OpenCV, optional
extra `pip install -e ".[grabcut]"`) started from a rectangle a few pixels
inside the border, as PerturbGAN's Table 2 baseline.

    layered-gan baselines --synthetic --out bench/baselines     # synthetic held-out split
    layered-gan baselines --images IMAGES --gt MASKS --out DIR --method grabcut
"""


import numpy as np
from scipy.cluster.vq import kmeans2

from ..errors import BadValue

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


def grabcut(image, label, rect=None, iterations=5, seed=0):
    """GrabCut on uint8 [H, W, 3] RGB, started from `rect` (x, y, w, h) when given, else from `label` [H, W] (OpenCV's
    GC_* codes; updated in place); definite and probable foreground count as foreground."""
    cv2 = _cv2()
    cv2.setRNGSeed(seed)
    cv2.grabCut(np.ascontiguousarray(image[..., ::-1]), label, rect, np.zeros((1, 65), np.float64),
                np.zeros((1, 65), np.float64), iterations, cv2.GC_INIT_WITH_RECT if rect else cv2.GC_INIT_WITH_MASK)
    return (label == cv2.GC_FGD) | (label == cv2.GC_PR_FGD)


def grabcut_mask(image, margin=4, iterations=5, seed=0):
    """GrabCut (uint8 [H, W, 3]) from the rectangle `margin` pixels inside the border."""
    h, w, _ = image.shape
    m = min(margin, (min(h, w) - 2) // 2)
    return grabcut(image, np.zeros((h, w), np.uint8), (m, m, w - 2 * m, h - 2 * m), iterations, seed)


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
    raise BadValue(f"unknown baseline {method!r}; choose from {METHODS}")
