"""The dataset every training mode reads: images (and optional masks) as tensors in [-1, 1].

Crops (PerturbGAN sec. 4, ablation e):
- 'random': resize to a square of round(org_to_crop x resolution), aspect ratio
  squashed as in the paper, then a random crop of `resolution`;
- 'center': shorter side to `resolution`, then a centre crop (the layout
  prepared LMDBs of the StyleGAN2 port use).
Optional horizontal flip. Several sources concatenate into one dataset; the
resolution can change between phases of progressive training
(`set_resolution`, then start a new DataLoader iterator).
"""

import bisect
import warnings

import numpy as np
import torch
from PIL import Image

from .. import rng
from ..errors import BadValue
from .readers import DecodeError, PreparedLmdbReader, decode_image, is_prepared_lmdb, open_reader
from .synthetic import build_synthetic, split_paths

CROPS = ("random", "center")
HUGE_RESIZE = 64  # a resize to more than this x the crop's pixels samples only the crop's region


def crop_box(width, height, resolution, crop, org_to_crop, generator=None):
    """(resize_w, resize_h, left, top) of the crop for an image of the given size."""
    if crop == "random":
        side = max(resolution, round(org_to_crop * resolution))
        offsets = torch.randint(0, side - resolution + 1, [2], generator=generator).tolist()
        return side, side, offsets[0], offsets[1]
    scale = resolution / min(width, height)
    rw, rh = max(resolution, round(width * scale)), max(resolution, round(height * scale))
    return rw, rh, (rw - resolution) // 2, (rh - resolution) // 2


def prepared_read_size(reader, resolution, crop, org_to_crop):
    """The size to read from a prepared LMDB for crops at `resolution`: the crop's source size (the reader makes
    it from a larger stored size if needed), else `resolution` itself when stored (resized up by the crop).
    BadValue naming the `layered-gan prepare` command that makes the data when the LMDB holds neither."""
    wanted = round(org_to_crop * resolution) if crop == "random" else resolution
    if wanted <= reader.sizes[-1]:
        return wanted
    if resolution in reader.sizes:
        return resolution
    how, option = (f" and org_to_crop {org_to_crop}", f" --org-to-crop {org_to_crop}") if crop == "random" else ("", "")
    raise BadValue(f"prepared LMDB {reader.path} holds sizes {', '.join(map(str, reader.sizes))}, but {resolution} px "
                   f"with crop {crop!r}{how} needs {wanted}x{wanted}: run `layered-gan prepare SRC NEW_OUT --size "
                   f"{resolution}{option}` on the original images SRC and train on NEW_OUT (smaller sizes are made "
                   "from the largest on reading)")


def check_data(data, resolutions):
    """Before training: BadValue (one line, with the command that makes the data) unless every prepared LMDB in
    a config's `data` section gives crops at each of `resolutions` (every resolution the schedule uses)."""
    sources = [data["source"]] if isinstance(data["source"], str) else data["source"]
    for path in sources:
        if path != "synthetic" and is_prepared_lmdb(path):
            reader = PreparedLmdbReader(path)
            for resolution in sorted(resolutions, reverse=True):  # the largest missing one names the --size
                prepared_read_size(reader, resolution, data.get("crop", "random"), data.get("org_to_crop", 1.125))


def resize_crop(img, rw, rh, box, resample):
    """img resized to (rw, rh), then cropped to `box`. When the resized image would be huge (an extreme aspect
    ratio), only the box's source region is resampled, so memory stays bounded by the output size."""
    if rw * rh > HUGE_RESIZE * (box[2] - box[0]) * (box[3] - box[1]):
        sx, sy = img.width / rw, img.height / rh
        source = (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
        return img.resize((box[2] - box[0], box[3] - box[1]), resample, box=source)
    if img.size != (rw, rh):
        img = img.resize((rw, rh), resample)
    return img.crop(box)


def to_tensor(img):
    """PIL RGB (or L) -> float tensor [C, H, W] in [-1, 1]."""
    arr = np.asarray(img, dtype=np.float32)
    arr = arr[:, :, None] if arr.ndim == 2 else arr
    return torch.from_numpy(arr.transpose(2, 0, 1).copy()) / 127.5 - 1


class ImageDataset(torch.utils.data.Dataset):
    """Images from one or more sources, cropped to `resolution`; with `masks`, (image, mask) pairs.

    sources: paths (LMDB folder or image folder) or readers. masks: one mask
    source per image source (same keys), or None. Masks are returned in [0, 1],
    cropped and flipped exactly as their images.
    """

    def __init__(self, sources, resolution, crop="random", org_to_crop=1.125, hflip=False, max_images=None,
                 masks=None):
        if crop not in CROPS:
            raise BadValue(f"crop must be one of {CROPS}, got {crop!r}")
        sources = [sources] if isinstance(sources, str) or not isinstance(sources, (list, tuple)) else sources
        self.readers = [open_reader(s, max_images) if isinstance(s, str) else s for s in sources]
        if masks is not None:
            masks = [masks] if isinstance(masks, str) or not isinstance(masks, (list, tuple)) else masks
            if len(masks) != len(self.readers):
                raise ValueError(f"{len(masks)} mask sources for {len(self.readers)} image sources")
            masks = [open_reader(m) if isinstance(m, str) else m for m in masks]
        self.masks = masks
        self.ends = np.cumsum([len(r) for r in self.readers]).tolist()
        self.crop, self.org_to_crop, self.hflip = crop, org_to_crop, hflip
        self.skipped = 0
        self.set_resolution(resolution)

    def set_resolution(self, resolution):
        """Switch the output size (progressive growing); prepared LMDBs must hold it or a larger size."""
        self.resolution = int(resolution)
        self.read_sizes = [prepared_read_size(r, self.resolution, self.crop, self.org_to_crop)
                           if isinstance(r, PreparedLmdbReader) else None for r in self.readers]

    def __len__(self):
        return self.ends[-1]

    def locate(self, index):
        """(source number, index within that source)."""
        src = bisect.bisect_right(self.ends, index)
        return src, index - (self.ends[src - 1] if src else 0)

    def key(self, index):
        src, i = self.locate(index)
        return self.readers[src].key(i)

    def _load(self, index):
        src, i = self.locate(index)
        img = self.readers[src].read(i, self.read_sizes[src])
        if self.masks is None:
            return img, None
        key = self.readers[src].key(i)
        mask = decode_image(self.masks[src].read_bytes(key), f"mask {key.decode(errors='replace')}")
        return img, mask.convert("L")

    def __getitem__(self, index):
        """index: an int, or (int, seed) to make the random crop and flip a function of the seed."""
        generator = None
        if isinstance(index, (tuple, list)):
            index, seed = index
            generator = rng.generator(int(seed))
        for attempt in range(len(self)):
            try:
                img, mask = self._load((index + attempt) % len(self))
                break
            except DecodeError as exc:
                self.skipped += 1
                if self.skipped == 1:
                    warnings.warn(f"{exc}; skipping undecodable entries (this worker counts them in .skipped)",
                                  RuntimeWarning)
        else:
            raise BadValue("no entry of the dataset could be decoded")
        rw, rh, left, top = crop_box(img.width, img.height, self.resolution, self.crop, self.org_to_crop, generator)
        box = (left, top, left + self.resolution, top + self.resolution)
        flip = self.hflip and bool(torch.rand([], generator=generator) < 0.5)
        image = self._crop(img, rw, rh, box, flip, Image.BICUBIC)
        if mask is None:
            return to_tensor(image)
        mask = self._crop(mask, rw, rh, box, flip, Image.NEAREST)
        return to_tensor(image), (to_tensor(mask) + 1) / 2

    @staticmethod
    def _crop(img, rw, rh, box, flip, resample):
        img = resize_crop(img, rw, rh, box, resample)
        return img.transpose(Image.FLIP_LEFT_RIGHT) if flip else img


def dataset_from_config(data, resolution):
    """An ImageDataset from a config's `data` section.

    data["source"]: a path, a list of paths (concatenated), or "synthetic"
    (built on first use from data["synthetic"]: resolution, count, test_count,
    seed, family; data["split"] picks train or test). Other keys: crop, org_to_crop,
    hflip, max_images.
    """
    source = data["source"]
    if source == "synthetic":
        syn = data.get("synthetic", {})
        root = build_synthetic(resolution=syn.get("resolution", 64), count=syn.get("count", 20000),
                               test_count=syn.get("test_count", 2000), seed=syn.get("seed", 0),
                               family=syn.get("family", "shapes"))
        source = split_paths(root, data.get("split", "train"))[0]
    return ImageDataset(source, resolution, crop=data.get("crop", "random"), org_to_crop=data.get("org_to_crop", 1.125),
                        hflip=data.get("hflip", False), max_images=data.get("max_images"))


def centre_crops(data, resolution):
    """The images of a config's `data` section as centre crops without flips: what a metric or a labeller reads."""
    return dataset_from_config({**data, "crop": "center", "hflip": False}, resolution)


class ResumableSampler(torch.utils.data.Sampler):
    """Endless (index, seed) stream, a pure function of (seed, position): shuffled epochs, sharded by rank.

    Starting at `start` (images already consumed by all ranks) resumes the exact
    sequence, crops and flips included (the dataset seeds them from the pair).
    """

    def __init__(self, length, seed=0, start=0, rank=0, world_size=1):
        self.length, self.seed, self.start, self.rank, self.world_size = length, seed, start, rank, world_size

    def __iter__(self):
        position = self.start + self.rank
        while True:
            epoch, offset = divmod(position, self.length)
            order = torch.randperm(self.length, generator=rng.generator(self.seed * 100003 + epoch))
            while offset < self.length:
                yield int(order[offset]), self.seed * 1000003 + position
                position += self.world_size
                offset += self.world_size
            position = (epoch + 1) * self.length + (offset - self.length)
