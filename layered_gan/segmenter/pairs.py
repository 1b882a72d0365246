"""Generated (image, mask) pairs for distillation: sources, the online stream, and LMDB export.

A pair source draws `Pairs` from a random generator. Any mask method fits the
interface: the layered generator here (PerturbGAN: image = composite, mask =
m), and later Labels4Free (composite, alpha) or latent directions (G(z),
[G(z + h) brighter than G(z)]), whose `contrast` is the shifted image G(z + h)
that Voynov et al.'s histogram filter examines. For a layered generator the
mask is what the layer model "reads off", so `contrast` is the soft mask: a
confident mask is mostly 0 and 1, a hesitant one peaks in between.

    layered-gan pairs --ckpt runs/demo --num 100000 --out pairs/demo   # export to LMDB
"""

import io
import json
import os
import warnings
from typing import NamedTuple

import lmdb
import torch
from PIL import Image
from tqdm import tqdm

from .. import rng
from ..files import partial_folder, save_png, write_json
from ..images import to_uint8
from ..perturbations import random_placement
from ..render import composite
from ..runs import load_run
from ..sampling import sample_layers


class Pairs(NamedTuple):
    image: torch.Tensor  # [N, 3, H, W] in [-1, 1]
    mask: torch.Tensor  # [N, 1, H, W] in [0, 1] (binary when thresholded)
    contrast: torch.Tensor  # [N, C, H, W] in [0, 1]: what the histogram filter examines


class PairSource:
    """Interface: `sample(n, generator)` -> Pairs, all randomness drawn from `generator` (a CPU torch.Generator)."""

    def sample(self, n, generator):
        raise NotImplementedError


class LayeredGeneratorPairs(PairSource):
    """Composites of a layered generator with its mask, binarized at `threshold` unless None.

    placement: None for the generator's own layout (unshifted), or a minimum scale: the foreground and mask are
    then placed at a random size and position (`random_placement`) before compositing, so the pairs hold
    smaller and off-centre objects than the generator draws.
    """

    def __init__(self, G, truncation=1.0, threshold=0.5, device="cpu", placement=None):
        self.G, self.truncation, self.threshold, self.device = G, truncation, threshold, device
        self.placement = placement

    def sample(self, n, generator):
        layers = sample_layers(self.G, n, generator, self.truncation, self.device)
        foreground, soft = layers.foreground, layers.mask
        if self.placement is not None:
            foreground, soft, _ = random_placement(foreground, soft, self.placement, generator)
        image = composite(layers.background, foreground, soft).clamp(-1, 1)
        mask = soft if self.threshold is None else (soft > self.threshold).float()
        return Pairs(image, mask, soft)


class PairStream:
    """Endless filtered batches from one random stream: every pair comes from fresh latents and noise.

    The stream is a pure function of the seed; it is never rewound, so no pair repeats. It fails when
    the filters reject everything for 50 draws, and warns once when they keep under 5 % of the first
    1 000 pairs or more (drawing then takes over 20 times as long).
    """

    LOW_YIELD, LOW_YIELD_AFTER = 0.05, 1000

    def __init__(self, source, filters, batch, seed=0, draw=None):
        self.source, self.filters, self.batch = source, filters, batch
        self.draw = draw or batch  # pairs sampled per call to the source
        self.generator = rng.generator(seed)
        self.buffer = None
        self.warned = False

    def _fill(self):
        tries = 0
        while self.buffer is None or len(self.buffer.image) < self.batch:
            kept = self.filters(self.source.sample(self.draw, self.generator))
            tries = tries + 1 if len(kept.image) == 0 else 0
            if tries >= 50:
                raise RuntimeError(f"the filters rejected all of the last {50 * self.draw} generated pairs "
                                   f"({self.filters.report()}); loosen them or check the generator")
            report = self.filters.report()
            if (not self.warned and report["generated"] >= self.LOW_YIELD_AFTER
                    and report["kept"] < self.LOW_YIELD * report["generated"]):
                self.warned = True
                warnings.warn(f"the filters keep only {report['kept']} of {report['generated']} generated pairs "
                              f"({json.dumps(report['rejected'])} rejected); drawing will be slow: loosen the "
                              "rejecting filter (e.g. --no-histogram) or check the generator", stacklevel=2)
            self.buffer = kept if self.buffer is None else Pairs(*(torch.cat(t) for t in zip(self.buffer, kept)))

    def next_pairs(self):
        self._fill()
        out = Pairs(*(t[:self.batch] for t in self.buffer))
        self.buffer = Pairs(*(t[self.batch:] for t in self.buffer))
        return out

    def __iter__(self):
        while True:
            pairs = self.next_pairs()
            yield pairs.image, pairs.mask


def fixed_pairs(source, filters, num, seed, batch=256):
    """`num` filtered pairs from a stream of its own (held-out validation pairs), on the CPU."""
    stream = PairStream(source, filters, min(batch, num), seed)
    chunks = [stream.next_pairs() for _ in range(-(-num // stream.batch))]
    return Pairs(*(torch.cat(t)[:num].cpu() for t in zip(*chunks)))


def _png_bytes(array):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


class _LmdbParts:
    """ROOT/images and ROOT/masks LMDBs, PNG values under keys 00000000...: the synthetic dataset's layout."""

    def __init__(self, root):
        self.envs = {}
        for part in ("images", "masks"):
            os.makedirs(os.path.join(root, part))
            self.envs[part] = lmdb.open(os.path.join(root, part), map_size=1 << 40)

    def write(self, start, images, masks):
        with self.envs["images"].begin(write=True) as ti, self.envs["masks"].begin(write=True) as tm:
            for i, (image, mask) in enumerate(zip(images, masks), start):
                ti.put(f"{i:08d}".encode(), _png_bytes(image))
                tm.put(f"{i:08d}".encode(), _png_bytes(mask))

    def close(self):
        for env in self.envs.values():
            env.close()


class _PngParts:
    """ROOT/images/{i:08d}.png and ROOT/masks/{i:08d}.png."""

    def __init__(self, root):
        self.root = root

    def write(self, start, images, masks):
        for i, (image, mask) in enumerate(zip(images, masks), start):
            save_png(image, os.path.join(self.root, "images", f"{i:08d}.png"))
            save_png(mask, os.path.join(self.root, "masks", f"{i:08d}.png"))

    def close(self):
        pass


EXPORT_FORMATS = {"lmdb": _LmdbParts, "png": _PngParts}


def export_pairs(stream, num, root, progress=True, fmt="lmdb"):
    """Write `num` pairs of a stream as ROOT/images and ROOT/masks, plus ROOT/manifest.json.

    fmt 'lmdb': two LMDBs (PNG values, keys 00000000...), the layout of the synthetic dataset, readable by
    ImageDataset(images, masks=masks) (`distill --pairs`); 'png': two folders of {i:08d}.png (read the same way).
    Written to ROOT.partial, then renamed; ROOT must not exist.
    """
    partial = partial_folder(root)
    parts = EXPORT_FORMATS[fmt](partial)
    written = 0
    with tqdm(total=num, desc="exporting pairs", unit="pair", disable=not progress) as bar:
        while written < num:
            pairs = stream.next_pairs()
            images = to_uint8(pairs.image)[:num - written]
            masks = (pairs.mask[:, 0].cpu().clamp(0, 1) * 255).round().to(torch.uint8).numpy()[:num - written]
            parts.write(written, images, masks)
            written += len(images)
            bar.update(len(images))
    parts.close()
    write_json(os.path.join(partial, "manifest.json"), {"pairs": num, "filters": stream.filters.report()})
    os.replace(partial, root)
    return root


def generator_source(ckpt, threshold, truncation, device, placement=None):
    """(LayeredGeneratorPairs, run config) from a run folder or checkpoint."""
    run = load_run(ckpt, "layered", device=device)
    return LayeredGeneratorPairs(run.G, truncation, threshold if threshold >= 0 else None, device,
                                 placement), run.config
