"""Segmentation metrics on binary masks (numpy or torch, [..., H, W], foreground = True / 1)."""

import numpy as np


def _binary(mask, threshold=0.5):
    mask = np.asarray(mask)
    return mask > threshold if mask.dtype != bool else mask


def iou_per_image(pred, gt, threshold=0.5):
    """(foreground IoU, background IoU) per image, arrays [N]; an empty union counts as 1."""
    pred, gt = _binary(pred, threshold), _binary(gt, threshold)
    pred, gt = pred.reshape(-1, *pred.shape[-2:]), gt.reshape(-1, *gt.shape[-2:])

    def iou(a, b):
        inter, union = (a & b).sum((1, 2)), (a | b).sum((1, 2))
        return np.where(union > 0, inter / np.maximum(union, 1), 1.0)

    return iou(pred, gt), iou(~pred, ~gt)


def mean_iou(pred, gt, threshold=0.5):
    """Per-image mean of foreground and background IoU (mIoU), averaged over images; and foreground IoU."""
    fg, bg = iou_per_image(pred, gt, threshold)
    return float(((fg + bg) / 2).mean()), float(fg.mean())
