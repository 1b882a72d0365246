"""Real-image benchmarks in their distributed layouts, with the papers' preprocessing.

Voynov et al. and Melas-Kyriazi et al. score on CUB-200-2011 and Oxford Flowers centre-cropped to a square
and resized to 128, and on the saliency sets DUTS-TE, ECSSD and DUT-OMRON as full images, the shorter side
resized to 128 (their codes crop only CUB and Flowers); masks: foreground where the resized mask is above one
half. Layouts, relative to ROOT:

- cub: images.txt, images/CLASS/FILE.jpg, segmentations/CLASS/FILE.png (in ROOT
  or beside it, as the separate archive unpacks). Split file: ROOT/
  train_val_test_split.txt (Chen et al.'s 10 000 / 1 000 split, ReDO's file:
  "id 0|1|2" for train / val / test) by default, or --split-file; a file named
  train_test_split.txt follows the official convention ("id 1|0", 1 = train).
- flowers: jpg/image_NNNNN.jpg, segmim/segmim_NNNNN.jpg (background painted
  pure blue), setid.mat (trnid / valid / tstid for train / val / test).
- duts-te: DUTS-TE-Image/*.jpg, DUTS-TE-Mask/*.png.
- ecssd: images/*.jpg, ground_truth_mask/*.png.
- dut-omron: DUT-OMRON-image/*.jpg, pixelwiseGT-new-PNG/*.png.

    layered-gan benchmarks --dataset cub --root ~/data/CUB_200_2011 --split test --out data/cub
    # -> data/cub/images/NAME.png, data/cub/masks/NAME.png, for segment and evaluate
"""

import os
from typing import NamedTuple

import numpy as np
from PIL import Image
from scipy.io import loadmat
from tqdm import tqdm

from ..data.readers import IMAGE_EXTENSIONS, decode_image
from ..files import save_png
from ..errors import BadValue, MissingPath

SIZE = 128
FOLDER_PAIRS = {"duts-te": ("DUTS-TE-Image", "DUTS-TE-Mask"), "ecssd": ("images", "ground_truth_mask"),
                "dut-omron": ("DUT-OMRON-image", "pixelwiseGT-new-PNG")}
DATASETS = ("cub", "flowers") + tuple(FOLDER_PAIRS)


class Item(NamedTuple):
    name: str
    image: str  # path
    mask: str  # path
    blue_background: bool = False  # Flowers: the mask is an image with the background painted blue
    crop: bool = True  # centre-cropped to a square (CUB, Flowers), or the full image (the saliency sets)


def _need(path, what):
    if not os.path.exists(path):
        raise MissingPath(f"{path} does not exist; expected {what}")
    return path


def cub_items(root, split="test", split_file=None):
    ids = {}
    with open(_need(os.path.join(root, "images.txt"), "CUB-200-2011's images.txt")) as fh:
        for line in fh:
            if line.strip():
                i, rel = line.split()
                ids[int(i)] = rel
    seg_root = next((p for p in (os.path.join(root, "segmentations"),
                                 os.path.join(os.path.dirname(os.path.abspath(root)), "segmentations"))
                     if os.path.isdir(p)), None)
    if seg_root is None:
        raise MissingPath(f"no segmentations/ folder in {root} or beside it; unpack CUB's segmentations "
                          "archive there")
    split_file = split_file or os.path.join(root, "train_val_test_split.txt")
    official = os.path.basename(split_file) == "train_test_split.txt"
    codes = {"train": 1, "test": 0} if official else {"train": 0, "val": 1, "test": 2}
    if split not in codes:
        raise BadValue(f"split {split!r} is not in {split_file}'s convention; choose from {sorted(codes)}")
    chosen = []
    with open(_need(split_file, "a CUB split file (train_val_test_split.txt of Chen et al., or --split-file)")) as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            i, code = (int(v) for v in line.split())
            if i not in ids:
                raise BadValue(f"{split_file} line {n}: image id {i} is not in images.txt")
            if code == codes[split]:
                chosen.append(ids[i])
    return [Item(os.path.splitext(rel)[0], os.path.join(root, "images", rel),
                 os.path.join(seg_root, os.path.splitext(rel)[0] + ".png")) for rel in chosen]


def flowers_items(root, split="test"):
    keys = {"train": "trnid", "val": "valid", "test": "tstid"}
    if split not in keys:
        raise BadValue(f"Flowers split must be one of {sorted(keys)}, got {split!r}")
    ids = loadmat(_need(os.path.join(root, "setid.mat"), "Oxford Flowers' setid.mat"))[keys[split]].ravel()
    return [Item(f"image_{i:05d}", os.path.join(root, "jpg", f"image_{i:05d}.jpg"),
                 os.path.join(root, "segmim", f"segmim_{i:05d}.jpg"), True) for i in sorted(int(i) for i in ids)]


def _stems(folder):
    return {os.path.splitext(f)[0]: os.path.join(folder, f) for f in os.listdir(folder)
            if f.lower().endswith(IMAGE_EXTENSIONS)}


def folder_pair_items(root, dataset):
    image_dir, mask_dir = (os.path.join(root, d) for d in FOLDER_PAIRS[dataset])
    absent = [d for d in (image_dir, mask_dir) if not os.path.isdir(d)]
    if absent:
        raise MissingPath(f"{dataset} expects {image_dir}/ and {mask_dir}/; missing: {', '.join(absent)}")
    images, masks = _stems(image_dir), _stems(mask_dir)
    unpaired = sorted(set(images) ^ set(masks))
    if unpaired:
        raise BadValue(f"{dataset} in {root}: {len(unpaired)} files have no partner in the other folder: "
                       f"{', '.join(unpaired[:10])}")
    return [Item(n, images[n], masks[n], crop=False) for n in sorted(images)]


def benchmark_items(dataset, root, split=None, split_file=None):
    """The (name, image path, mask path) items of a benchmark; split: train / val / test (CUB, Flowers)."""
    if dataset == "cub":
        return cub_items(root, split or "test", split_file)
    if dataset == "flowers":
        return flowers_items(root, split or "test")
    if dataset not in FOLDER_PAIRS:
        raise BadValue(f"unknown dataset {dataset!r} (--dataset); choose from {DATASETS}")
    if split is not None:
        raise BadValue(f"--split {split}: {dataset} has no splits (it is a test set)")
    return folder_pair_items(root, dataset)


def centre_crop(img, size=SIZE, resample=Image.BICUBIC):
    """The largest centred square, resized to size x size."""
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return img.crop((left, top, left + side, top + side)).resize((size, size), resample)


def shorter_side(img, size=SIZE, resample=Image.BICUBIC):
    """The full image, resized so that its shorter side is `size` (aspect ratio kept)."""
    w, h = img.size
    scale = size / min(w, h)
    return img.resize((max(size, round(w * scale)), max(size, round(h * scale))), resample)


def _read(path):
    with open(_need(path, "an image"), "rb") as fh:
        return decode_image(fh.read(), path)


def load_item(item, size=SIZE):
    """(RGB PIL image, bool mask) after the centre crop and resize to size x size, or (item.crop false) the resize
    of the shorter side to size."""
    image, mask = _read(item.image), _read(item.mask)
    if image.size != mask.size:
        raise BadValue(f"{item.image} is {image.size[0]}x{image.size[1]} but its mask {item.mask} is "
                       f"{mask.size[0]}x{mask.size[1]}")
    if item.blue_background:
        rgb = np.asarray(mask, np.int16)
        fg = ~((rgb[..., 0] < 60) & (rgb[..., 1] < 60) & (rgb[..., 2] > 150))  # JPEG smears the pure blue
        mask = Image.fromarray(fg.astype(np.uint8) * 255)
    resize = centre_crop if item.crop else shorter_side
    gray = np.asarray(resize(mask.convert("L"), size, Image.BILINEAR), np.float32)
    return resize(image, size), gray > 127.5


class BenchmarkSource:
    """A benchmark as an evaluate/segment source (sources.py), preprocessed on the fly."""

    def __init__(self, items, size=SIZE):
        self.items, self.size = {it.name: it for it in items}, size
        self.names = sorted(self.items)

    def image(self, name):
        return load_item(self.items[name], self.size)[0]

    def mask(self, name):
        return load_item(self.items[name], self.size)[1].astype(np.float32)

    def masks(self, names):
        return [self.mask(n) for n in names]


def export(source, out, progress=True):
    """OUT/images/NAME.png and OUT/masks/NAME.png (0 / 255) for every item."""
    for name in tqdm(source.names, desc="exporting", unit="img", disable=not progress):
        image, mask = load_item(source.items[name], source.size)
        save_png(np.asarray(image), os.path.join(out, "images", name + ".png"))
        save_png(mask.astype(np.uint8) * 255, os.path.join(out, "masks", name + ".png"))
    return len(source.names)
