"""A Labels4Free run's samples and real-image masks by projection (Abdal et al. 2021).

    layered-gan labels4free sample --ckpt runs/l4f_demo --num 1000 --out samples/l4f [--lmdb]
    layered-gan labels4free project --ckpt runs/l4f_demo --images PHOTOS --out masks/

A Labels4Free run is also a pair source as it stands: `layered-gan distill --ckpt runs/l4f_demo
--threshold 0.9` distills from it online, `--pairs DIR` from what `sample` wrote.
"""

import os

import torch
from tqdm import tqdm

from .. import rng
from ..files import save_png, write_json
from ..images import to_uint8
from ..projection import project as project_images
from ..projection import zero_noise
from ..render import composite
from ..runs import load_run
from ..sampling import sample_layers

SAMPLE_PARTS = ("images", "foregrounds", "backgrounds", "alphas", "masks")


def load_l4f_run(ckpt, device):
    """(Labels4FreeGenerator of a run's EMA weights, its config)."""
    run = load_run(ckpt, "labels4free", device=device)
    return run.G, run.config


@torch.no_grad()
def write_samples(G, num, out, threshold=0.9, truncation=1.0, seed=0, batch=64, device="cpu", progress=True):
    """OUT/{images,foregrounds,backgrounds,alphas,masks}/{index:08d}.png for `num` samples of a Labels4Free
    generator: image = composite(background, foreground, alpha) (eq. 1, before the layers are clipped to the
    image range), mask = alpha > threshold.

    Latents and noise are drawn in whole batches as the pair stream draws them, so the same seed and batch
    give the same samples as `--lmdb`; OUT/images and OUT/masks are what `distill --pairs OUT` reads."""
    gen = rng.generator(seed)
    for start in tqdm(range(0, num, batch), desc="sampling", unit="batch", disable=not progress):
        layers = sample_layers(G, batch, gen, truncation, device)
        layers = type(layers)(*(t[:num - start] for t in layers))
        parts = {"images": composite(layers.background, layers.foreground, layers.mask),
                 "foregrounds": layers.foreground, "backgrounds": layers.background,
                 "alphas": layers.mask * 2 - 1, "masks": (layers.mask > threshold).float() * 2 - 1}
        for part, tensors in parts.items():
            for i, array in enumerate(to_uint8(tensors)):
                save_png(array, os.path.join(out, part, f"{start + i:08d}.png"))


def project_masks(G, D, ds, out, steps=500, lr=0.05, feature_weight=0.0, plus=True, threshold=0.9, batch=8,
                  device="cpu"):
    """OUT/{reconstructions,alphas,masks}/NAME.png, OUT/latents.pt and OUT/losses.json for the images of `ds`:
    each projected into W+ (or W) of a Labels4Free generator (L1 + optional D features, Adam from w_avg), the
    alpha network's output > threshold its mask (Labels4Free sec. 4). Returns {name: {first, last}} losses."""
    names, latents, losses = [], [], {}
    for start in tqdm(range(0, len(ds), batch), desc="projecting", unit="batch"):
        index = range(start, min(start + batch, len(ds)))
        target = torch.stack([ds[i] for i in index]).to(device)
        result = project_images(G.generator, target, steps, lr, D=D, feature_weight=feature_weight, plus=plus)
        with torch.no_grad():
            image, alpha = G.foreground(result.ws, zero_noise(G.generator, len(index), device))
        parts = {"reconstructions": image, "alphas": alpha * 2 - 1, "masks": (alpha > threshold).float() * 2 - 1}
        for j, i in enumerate(index):
            name = os.path.splitext(ds.key(i).decode())[0]
            names.append(name)
            losses[name] = {"first": float(result.losses[0, j]), "last": float(result.losses[-1, j])}
            for part, tensors in parts.items():
                save_png(to_uint8(tensors[j:j + 1])[0], os.path.join(out, part, name + ".png"))
        latents.append(result.ws.cpu())
    torch.save({"names": names, "ws": torch.cat(latents)}, os.path.join(out, "latents.pt"))
    write_json(os.path.join(out, "losses.json"), losses)
    return losses
