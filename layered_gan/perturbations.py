"""Perturbations of generated layers, applied after the generator and unknown to it (PerturbGAN sec. 3.2)."""

import torch


SHIFT_DRAWS = ("integer", "rounded")
JITTER_STATS = ("image", "channel")


def draw_shift(batch, max_shift, draw="integer", generator=None):
    """Per-sample whole-pixel shifts [B, 2]: "integer" uniform over -δ..δ, or "rounded" round(U(-δ, δ)) as the
    authors' code draws them (the end values half as likely)."""
    if draw == "integer":
        return torch.randint(-max_shift, max_shift + 1, (batch, 2), generator=generator, device="cpu")
    return torch.round((torch.rand(batch, 2, generator=generator, device="cpu") * 2 - 1) * max_shift).long()


def random_shift(foreground, mask, max_shift, generator=None, draw="integer"):
    """Shift F and m together by a per-sample whole-pixel Δ (draw_shift) in [-δ, δ]²; zeros enter from outside.

    Returns (F', m', Δ [B, 2] as (dy, dx)) with F'[p] = F[p + Δ], m'[p] = m[p + Δ] (sec. 3.2, eq. 2).
    """
    b, _, h, w = mask.shape
    if max_shift == 0:
        return foreground, mask, torch.zeros(b, 2, dtype=torch.long, device=mask.device)
    delta = draw_shift(b, max_shift, draw, generator).to(mask.device)
    layers = torch.nn.functional.pad(torch.cat([foreground, mask], 1), [max_shift] * 4)
    rows = torch.arange(h, device=mask.device)[None, :] + max_shift + delta[:, :1]  # [B, H]
    cols = torch.arange(w, device=mask.device)[None, :] + max_shift + delta[:, 1:]  # [B, W]
    batch = torch.arange(b, device=mask.device)[:, None, None]
    shifted = layers.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    return shifted[:, :-1], shifted[:, -1:], delta


def random_placement(foreground, mask, min_scale, generator=None):
    """Scale F and m together by s ~ U(min_scale, 1) about the image centre and move them by t, uniform over the
    offsets keeping the scaled canvas inside the image; zeros enter from outside (bilinear resampling).

    Returns (F', m', params [B, 3] as (s, ty, tx), t in units of half the image side) with
    F'(p) = F((p - t) / s) in coordinates running over [-1, 1]. A generalization of the shift of eq. 2 that
    places a layered generator's object at sizes and positions the generator rarely draws (for distillation).
    """
    b = mask.shape[0]
    scale = min_scale + (1 - min_scale) * torch.rand(b, generator=generator, device="cpu")
    offset = (torch.rand(b, 2, generator=generator, device="cpu") * 2 - 1) * (1 - scale)[:, None]
    theta = torch.zeros(b, 2, 3)  # grid_sample's theta maps output coordinates (x, y) to input ones
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / scale
    theta[:, 0, 2], theta[:, 1, 2] = -offset[:, 1] / scale, -offset[:, 0] / scale
    layers = torch.cat([foreground, mask], 1)
    grid = torch.nn.functional.affine_grid(theta.to(layers), list(layers.shape), align_corners=False)
    placed = torch.nn.functional.grid_sample(layers, grid, mode="bilinear", padding_mode="zeros",
                                             align_corners=False)
    return placed[:, :-1], placed[:, -1:], torch.cat([scale[:, None], offset], 1).to(mask.device)


def contrast_jitter(background, strength, generator=None, stats="image"):
    """Scale B around its mean by c ~ U(1 - s, 1 + s) per image, clamped to B's own range (ablation d); mean,
    min and max over the whole image (`stats="image"`) or per channel (`"channel"`, the authors' code)."""
    if strength == 0:
        return background
    b, ch = background.shape[:2]
    c = 1 + (torch.rand(b, 1, 1, 1, generator=generator, device="cpu").to(background) * 2 - 1) * strength
    flat = background.flatten(1) if stats == "image" else background.flatten(2)
    shape = (b, 1, 1, 1) if stats == "image" else (b, ch, 1, 1)
    mean = flat.mean(-1).view(shape)
    lo, hi = flat.min(-1).values.view(shape), flat.max(-1).values.view(shape)
    return torch.maximum(torch.minimum(mean + c * (background - mean), hi), lo)
