"""Label-free baseline masks: full image, centre disc, 2-cluster colour k-means."""

import numpy as np
from scipy.cluster.vq import kmeans2


def full_mask(size):
    return np.ones((size, size), dtype=bool)


def centre_disc(size, coverage=0.25):
    """A centred disc covering `coverage` of the image."""
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size - 0.5
    return np.hypot(xx, yy) <= np.sqrt(coverage / np.pi)


def kmeans_mask(image, seed=0):
    """Cluster pixel colours (uint8 [H, W, 3]) in two; foreground = the cluster less present on the border."""
    h, w, _ = image.shape
    pixels = image.reshape(-1, 3).astype(np.float64)
    _, labels = kmeans2(pixels, 2, minit="++", seed=seed)
    labels = labels.reshape(h, w)
    border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    fg_label = 0 if (border == 0).mean() < 0.5 else 1
    return labels == fg_label
