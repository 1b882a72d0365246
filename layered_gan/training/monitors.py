"""What a layered run logs to reveal its failure modes (issue 4): layout collapse, soft or empty masks."""

import torch


def mask_monitors(extras):
    """Failure modes: mask mean and its spread over samples, mean IoU between different samples' masks
    (layout collapse), the mask's share on the image border, soft-mask share (0.1 < m < 0.9),
    composite diversity (mean per-pixel std over the batch)."""
    mask, per_sample = extras["mask"], extras["mask"].flatten(1).mean(1)
    border = torch.ones_like(mask[0, 0], dtype=torch.bool)
    border[2:-2, 2:-2] = False
    binary = (mask[:, 0] > 0.5).flatten(1).float()
    inter, union = binary @ binary.T, binary.sum(1)[:, None] + binary.sum(1)[None] - binary @ binary.T
    pairs = ~torch.eye(len(binary), dtype=torch.bool, device=mask.device)
    return {"mask/mean": per_sample.mean(), "mask/std_over_samples": per_sample.std(),
            "mask/pairwise_iou": (inter / union.clamp_min(1))[pairs].mean(),  # 1: one layout for all samples
            "mask/border_share": mask[:, 0, border].mean() / mask.mean().clamp_min(1e-8),
            "mask/soft_share": ((mask > 0.1) & (mask < 0.9)).float().mean(),
            "composite/diversity": extras["fake"].std(0).mean()}
