"""Perturbations of generated layers, applied after the generator and unknown to it (PerturbGAN sec. 3.2)."""

import torch


def random_shift(foreground, mask, max_shift, generator=None):
    """Shift F and m together by a per-sample whole-pixel Δ ~ U{-δ..δ}²; zeros enter from outside.

    Returns (F', m', Δ [B, 2] as (dy, dx)) with F'[p] = F[p + Δ], m'[p] = m[p + Δ] (sec. 3.2, eq. 2).
    """
    b, _, h, w = mask.shape
    if max_shift == 0:
        return foreground, mask, torch.zeros(b, 2, dtype=torch.long, device=mask.device)
    delta = torch.randint(-max_shift, max_shift + 1, (b, 2), generator=generator, device="cpu").to(mask.device)
    layers = torch.nn.functional.pad(torch.cat([foreground, mask], 1), [max_shift] * 4)
    rows = torch.arange(h, device=mask.device)[None, :] + max_shift + delta[:, :1]  # [B, H]
    cols = torch.arange(w, device=mask.device)[None, :] + max_shift + delta[:, 1:]  # [B, W]
    batch = torch.arange(b, device=mask.device)[:, None, None]
    shifted = layers.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    return shifted[:, :-1], shifted[:, -1:], delta


def contrast_jitter(background, strength, generator=None):
    """Scale B around its per-image mean by c ~ U(1 - s, 1 + s), clamped to B's own range (ablation d)."""
    if strength == 0:
        return background
    b = background.shape[0]
    c = 1 + (torch.rand(b, 1, 1, 1, generator=generator, device="cpu").to(background) * 2 - 1) * strength
    flat = background.flatten(1)
    mean = flat.mean(1).view(b, 1, 1, 1)
    lo, hi = flat.min(1).values.view(b, 1, 1, 1), flat.max(1).values.view(b, 1, 1, 1)
    return torch.maximum(torch.minimum(mean + c * (background - mean), hi), lo)
