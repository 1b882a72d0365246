"""Segmentation metrics on binary or soft masks (numpy or torch, [..., H, W], foreground = 1).

The figures the papers report: foreground and background IoU, mIoU (their mean),
F1, precision, recall and pixel accuracy with masks binarized at a threshold
(0.5 unless given), and max F_beta over 255 thresholds with beta^2 = 0.3 (the
saliency convention Voynov et al. and Melas-Kyriazi et al. follow). Each is
aggregated two ways, and `Scores.summary` names them:

- ``all_pixels``: one confusion matrix summed over the whole set, then the ratio;
- ``per_image``: the ratio per image, then the mean over images.

Three max F_beta figures, by name: ``f_max`` (per image only) is the authors' `F_max` (Voynov et al.'s and
Melas-Kyriazi et al.'s code): per-image F_beta at each threshold averaged over the images, then the maximum
over thresholds, the figure the papers print; ``max_fbeta`` per image is each image's own best threshold,
then the mean (optimistic: at least f_max); ``max_fbeta`` all pixels pools the counts, then the maximum.

A ratio whose denominator is empty (e.g. precision when nothing is predicted)
is 1 when the image has no error at all and 0 otherwise: an empty prediction of
an empty ground truth scores 1 everywhere.
"""

import numpy as np

BETA2 = 0.3
LEVELS = 255  # max F_beta thresholds: foreground where prediction > k / 255, k = 0 .. 254
METRICS = ("fg_iou", "bg_iou", "miou", "f1", "precision", "recall", "accuracy")


def _array(mask):
    mask = mask.detach().cpu().numpy() if hasattr(mask, "detach") else np.asarray(mask)
    return mask.reshape(-1, *mask.shape[-2:])


def _binary(mask, threshold=0.5):
    mask = _array(mask)
    return mask if mask.dtype == bool else mask > threshold


def confusion(pred, gt, threshold=0.5):
    """Per-image counts [N, 4]: true positives, false positives, false negatives, true negatives."""
    pred, gt = _binary(pred, threshold), _binary(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth shape {gt.shape}")
    tp, fp, fn = (pred & gt).sum((1, 2)), (pred & ~gt).sum((1, 2)), (~pred & gt).sum((1, 2))
    return np.stack([tp, fp, fn, gt[0].size - tp - fp - fn], -1).astype(np.int64)


def _ratio(num, den, errors):
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    return np.where(den > 0, num / np.maximum(den, 1), np.where(errors == 0, 1.0, 0.0))


def rates(counts):
    """Every metric of METRICS from counts [..., 4] (tp, fp, fn, tn); arrays of shape [...]."""
    tp, fp, fn, tn = np.moveaxis(np.asarray(counts, np.int64), -1, 0)
    errors = fp + fn
    fg, bg = _ratio(tp, tp + errors, errors), _ratio(tn, tn + errors, errors)
    return {"fg_iou": fg, "bg_iou": bg, "miou": (fg + bg) / 2, "f1": _ratio(2 * tp, 2 * tp + errors, errors),
            "precision": _ratio(tp, tp + fp, errors), "recall": _ratio(tp, tp + fn, errors),
            "accuracy": _ratio(tp + tn, tp + tn + errors, errors)}


def threshold_counts(pred, gt):
    """Counts [N, LEVELS, 4] at each max-F_beta threshold k / 255 (foreground where prediction > it)."""
    pred, gt = _array(pred).astype(np.float64), _binary(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth shape {gt.shape}")
    n = len(pred)
    # level = number of thresholds a pixel exceeds: pred > k / 255  <=>  k < level
    level = np.clip(np.ceil(pred * LEVELS - 1e-6), 0, LEVELS).astype(np.int64).reshape(n, -1)
    offsets = np.arange(n)[:, None] * (LEVELS + 1)

    def above(selected):  # [N, LEVELS]: pixels of `selected` over each threshold
        hist = np.bincount((level + offsets)[selected], minlength=n * (LEVELS + 1)).reshape(n, LEVELS + 1)
        return np.cumsum(hist[:, ::-1], 1)[:, ::-1][:, 1:]

    fg = gt.reshape(n, -1)
    tp, fp = above(fg), above(~fg)
    fn, tn = fg.sum(1)[:, None] - tp, (~fg).sum(1)[:, None] - fp
    return np.stack([tp, fp, fn, tn], -1)


def f_beta(counts, beta2=BETA2):
    """F_beta from counts [..., 4]: (1 + b2) P R / (b2 P + R)."""
    r = rates(counts)
    p, rc = r["precision"], r["recall"]
    return np.where(beta2 * p + rc > 0, (1 + beta2) * p * rc / np.maximum(beta2 * p + rc, 1e-12), 0.0)


def max_f_beta(pred, gt, beta2=BETA2):
    """Per-image max over the 255 thresholds of F_beta, array [N]."""
    return f_beta(threshold_counts(pred, gt), beta2).max(1)


class Scores:
    """Accumulates masks batch by batch; `summary()` gives both aggregations, `per_image` the values by name."""

    def __init__(self, threshold=0.5, beta2=BETA2):
        self.threshold, self.beta2 = threshold, beta2
        self.names, self.counts, self.fbeta = [], [], []
        self.curve = np.zeros((LEVELS, 4), np.int64)
        self.f_curve = np.zeros(LEVELS)  # per-image F_beta at each threshold, summed over images

    def update(self, pred, gt, names=None):
        counts = confusion(pred, gt, self.threshold)
        curves = threshold_counts(pred, gt)
        self.counts.append(counts)
        f = f_beta(curves, self.beta2)
        self.fbeta.append(f.max(1))
        self.f_curve += f.sum(0)
        self.curve += curves.sum(0)
        self.names += list(names) if names is not None else [str(len(self.names) + i) for i in range(len(counts))]

    def __len__(self):
        return len(self.names)

    def per_image(self):
        """{metric: array [N]} including max_fbeta, in the order images were added."""
        if not self.names:
            raise ValueError("no images were scored")
        values = rates(np.concatenate(self.counts))
        values["max_fbeta"] = np.concatenate(self.fbeta)
        return values

    def summary(self):
        """{'all_pixels': {...}, 'per_image': {...}, 'images', 'threshold', 'beta2'}."""
        per_image = {k: float(v.mean()) for k, v in self.per_image().items()}
        per_image["f_max"] = float((self.f_curve / len(self)).max())
        all_pixels = {k: float(v) for k, v in rates(np.concatenate(self.counts).sum(0)).items()}
        all_pixels["max_fbeta"] = float(f_beta(self.curve, self.beta2).max())
        return {"images": len(self), "threshold": self.threshold, "beta2": self.beta2,
                "all_pixels": all_pixels, "per_image": per_image}


def format_table(summary):
    """The summary as a text table: one row per metric, columns all-pixels and per-image."""
    lines = [f"{summary['images']} images, threshold {summary['threshold']}, max F_beta with beta^2 = "
             f"{summary['beta2']} over {LEVELS} thresholds",
             f"{'metric':12s} {'all pixels':>11s} {'per image':>11s}"]
    for name in METRICS + ("max_fbeta", "f_max"):
        pooled = summary["all_pixels"].get(name)
        lines.append(f"{name:12s} {'-' if pooled is None else format(pooled, '.4f'):>11s} "
                     f"{summary['per_image'][name]:11.4f}")
    return "\n".join(lines)


def iou_per_image(pred, gt, threshold=0.5):
    """(foreground IoU, background IoU) per image, arrays [N]; an empty union counts as 1."""
    r = rates(confusion(pred, gt, threshold))
    return r["fg_iou"], r["bg_iou"]


def mean_iou(pred, gt, threshold=0.5):
    """Per-image mean of foreground and background IoU (mIoU), averaged over images; and foreground IoU."""
    r = rates(confusion(pred, gt, threshold))
    return float(r["miou"].mean()), float(r["fg_iou"].mean())
