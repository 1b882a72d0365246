"""Image helpers: tensors in [-1, 1] to PNG files and grids."""

import math
import os

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont


def to_uint8(images):
    """[B, C, H, W] in [-1, 1] -> uint8 numpy [B, H, W, C]."""
    images = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return images.permute(0, 2, 3, 1).numpy()


def save_image_grid(images, path, nrow=None):
    """Tile a batch (1 or 3 channels, in [-1, 1]) into one PNG, nrow images per row."""
    arr = to_uint8(images)
    b, h, w, c = arr.shape
    nrow = nrow or math.ceil(math.sqrt(b))
    ncol = math.ceil(b / nrow)
    grid = np.zeros((ncol * h, nrow * w, c), dtype=np.uint8)
    for i in range(b):
        r, k = divmod(i, nrow)
        grid[r * h:(r + 1) * h, k * w:(k + 1) * w] = arr[i]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(grid[..., 0] if c == 1 else grid).save(path)
    return grid


def save_labelled_grid(rows, path, scale=4, label_width=96):
    """One row per {label: [N, C, H, W] in [-1, 1]} entry, each image enlarged `scale` times (nearest), the
    label written left of its row with PIL's default font. Returns the PIL image."""
    tiles = {name: to_uint8(images.repeat_interleave(scale, 2).repeat_interleave(scale, 3).expand(-1, 3, -1, -1))
             for name, images in rows.items()}
    n, h, w, _ = next(iter(tiles.values())).shape
    sheet = Image.new("RGB", (label_width + n * w, len(tiles) * h), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (name, arr) in enumerate(tiles.items()):
        draw.text((4, r * h + h // 2 - 6), name, fill="black", font=ImageFont.load_default())
        for k, tile in enumerate(arr):
            sheet.paste(Image.fromarray(tile), (label_width + k * w, r * h))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    sheet.save(path)
    return sheet
