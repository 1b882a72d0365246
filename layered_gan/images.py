"""Image helpers: tensors in [-1, 1] to PNG files and grids."""

import math
import os

import numpy as np
import torch
from PIL import Image


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
