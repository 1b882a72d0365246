"""Anchors: real images inverted into a generator's W, to sample direction masks around them.

Voynov et al. (000 sec. 4) draw latents near encoded dataset images (BigBiGAN's encoder, z + 0.2 noise),
so the synthetic pairs look more like the data. Our generators have no encoder, so each image is
projected into W (`projection.project`, plus=False: L1 from w_avg); `LatentSpace(anchors=...)`
then samples anchor + alpha (w - w_avg).
"""

import torch
from tqdm import tqdm

from ..checkpoint import load_checkpoint, save_checkpoint
from ..data.dataset import ImageDataset
from ..errors import BadValue
from ..projection import project

FORMAT = "layered_gan.anchors/1"


def invert_images(G, images, num=None, steps=200, lr=0.05, batch=32, device="cpu", progress=True):
    """(ws [K, w_dim], final L1 losses [K]) of the first `num` images of `images` (a folder, LMDB or list)."""
    ds = ImageDataset(images, G.synthesis.resolution, crop="center", org_to_crop=1.0, max_images=num)
    ws, losses = [], []
    for start in tqdm(range(0, len(ds), batch), desc="inverting", unit="batch", disable=not progress):
        target = torch.stack([ds[i] for i in range(start, min(start + batch, len(ds)))]).to(device)
        result = project(G, target, steps, lr, plus=False)
        ws.append(result.ws[:, 0].cpu())
        losses.append(result.losses[-1].cpu())
    return torch.cat(ws), torch.cat(losses)


def save_anchors(path, ws, losses, ckpt, images, **settings):
    save_checkpoint({"format": FORMAT, "ws": ws, "losses": losses, "ckpt": ckpt, "images": images,
                     "settings": settings}, path)


def load_anchors(path):
    """The [K, w_dim] codes of an anchors file written by `directions anchors` (checked)."""
    state = load_checkpoint(path)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise BadValue(f"{path} is not an anchors file of `layered-gan directions anchors`")
    return state["ws"]
