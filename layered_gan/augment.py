"""DiffAugment (Zhao et al., "Differentiable Augmentation for Data-Efficient GAN Training", NeurIPS 2020), the
policy the projected discriminator uses (Sauer et al. 2021): colour, translation, cutout, applied alike to real
and generated images, differentiable with respect to the images.

Every draw comes from `rng`, a CPU torch.Generator (the run's stream, so a resumed run augments exactly as an
uninterrupted one). Images are [B, C, H, W] in [-1, 1].

    images = diff_augment(images, rng)
"""

import torch
import torch.nn.functional as F


def _uniform(batch, rng, device):
    return torch.rand(batch, 1, 1, 1, generator=rng).to(device)


def colour(images, rng):
    """Per image: brightness + U(-0.5, 0.5), saturation x U(0, 2) around the pixel's channel mean, contrast
    x U(0.5, 1.5) around the image mean."""
    b, device = images.shape[0], images.device
    images = images + (_uniform(b, rng, device) - 0.5)
    grey = images.mean(1, keepdim=True)
    images = (images - grey) * (_uniform(b, rng, device) * 2) + grey
    mean = images.mean((1, 2, 3), keepdim=True)
    return (images - mean) * (_uniform(b, rng, device) + 0.5) + mean


def draw_translation(batch, height, width, rng, ratio=0.125):
    """[B, 2] integer offsets (dy, dx), each uniform in [-r, r] with r = round(ratio x size)."""
    ry, rx = int(height * ratio + 0.5), int(width * ratio + 0.5)
    return torch.stack([torch.randint(-ry, ry + 1, [batch], generator=rng),
                        torch.randint(-rx, rx + 1, [batch], generator=rng)], 1)


def translate(images, offsets):
    """Move each image's content by its (dy, dx) offset, filling what comes in with zeros."""
    b, _, h, w = images.shape
    offsets = offsets.to(images.device)
    padded = F.pad(images, (1, 1, 1, 1))  # row/column 0 and h+1 (w+1) are the zero fill
    rows = (torch.arange(h, device=images.device) - offsets[:, :1] + 1).clamp(0, h + 1)  # [B, H]
    cols = (torch.arange(w, device=images.device) - offsets[:, 1:] + 1).clamp(0, w + 1)  # [B, W]
    batch = torch.arange(b, device=images.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def draw_cutout(batch, height, width, rng, ratio=0.5):
    """[B, 4] boxes (top, left, box height, box width): a box of round(ratio x size), its centre uniform over the
    image, clipped at the border."""
    sh, sw = int(height * ratio + 0.5), int(width * ratio + 0.5)
    cy = torch.randint(0, height + (1 - sh % 2), [batch], generator=rng)
    cx = torch.randint(0, width + (1 - sw % 2), [batch], generator=rng)
    return torch.stack([cy - sh // 2, cx - sw // 2, torch.full_like(cy, sh), torch.full_like(cx, sw)], 1)


def cutout(images, boxes):
    """Zero each image inside its box (top, left, height, width); parts outside the image are ignored."""
    _, _, h, w = images.shape
    boxes = boxes.to(images.device)
    y = torch.arange(h, device=images.device)[None, :]
    x = torch.arange(w, device=images.device)[None, :]
    inside_y = (y >= boxes[:, :1]) & (y < boxes[:, :1] + boxes[:, 2:3])  # [B, H]
    inside_x = (x >= boxes[:, 1:2]) & (x < boxes[:, 1:2] + boxes[:, 3:4])  # [B, W]
    keep = ~(inside_y[:, :, None] & inside_x[:, None, :])
    return images * keep[:, None].to(images.dtype)


def diff_augment(images, rng, translation_ratio=0.125, cutout_ratio=0.5):
    """Colour, then translation, then cutout: Zhao et al.'s "color,translation,cutout" policy."""
    b, _, h, w = images.shape
    images = colour(images, rng)
    images = translate(images, draw_translation(b, h, w, rng, translation_ratio))
    return cutout(images, draw_cutout(b, h, w, rng, cutout_ratio))
