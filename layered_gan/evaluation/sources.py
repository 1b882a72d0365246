"""Images and masks by name, for evaluate, baselines and segment.

A source has `names` (sorted) and reads by name: `image(name)` (PIL RGB),
`mask(name)` (float32 [H, W] in [0, 1]) and `masks(names)` (a list, batched
where that is faster). Files come from a folder (name = path relative to the
folder, without extension) or an LMDB (name = key); other sources compute
masks from images (baselines, a trained segmenter).
"""

import os

import numpy as np
import torch

from ..data.dataset import to_tensor
from ..data.readers import ImageFolderReader, open_reader
from ..errors import BadValue
from ..segmenter.model import predict


ENCODINGS = ("auto", "255", "01", "labels")


def mask_array(img, name, encoding="auto", fg_values=None, soft=False):
    """A mask file's image as float32 [H, W] in [0, 1], read by its declared encoding.

    "255": grey levels / 255 (0/255 binary masks, or soft ones); "01": the values 0 and 1; "labels": a
    palette or label image whose `fg_values` (default: every value but 0 and 255, the VOC void) are the
    foreground; "auto" tells them apart: a palette image is labels, values in {0, 1} are 01, a mask
    reaching 255 is 255. Any other mask is refused naming the file, since reading it as 0/255 would score
    it as empty; with `soft` (predictions), grey levels that never reach 255 are read / 255.
    """
    if fg_values is not None or encoding == "labels" or (encoding == "auto" and img.mode == "P"):
        raw = np.asarray(img if img.mode in ("P", "L", "I", "I;16") else img.convert("L"))
        fg = np.isin(raw, list(fg_values)) if fg_values is not None else (raw != 0) & (raw != 255)
        return fg.astype(np.float32)
    raw = np.asarray(img.convert("L"))
    top = int(raw.max()) if raw.size else 0
    if encoding == "01" or (encoding == "auto" and top <= 1):
        if top > 1:
            raise BadValue(f"mask {name} has values up to {top}, not 0/1 (the declared encoding)")
        return raw.astype(np.float32)
    if encoding == "255" or top == 255 or soft:
        return raw.astype(np.float32) / 255
    values = np.unique(raw)
    shown = ", ".join(str(v) for v in values[:8]) + (", ..." if len(values) > 8 else "")
    raise BadValue(f"mask {name} has values {{{shown}}}: neither 0/255 nor 0/1; if it is a label image, give its "
                   "foreground values (--fg-values), or declare its encoding (--gt-encoding)")


class FileSource:
    """A folder of images or an LMDB (raw LSUN-style or prepared) read by name; masks by `mask_array`'s
    encoding (predictions: soft=True)."""

    def __init__(self, path, encoding="auto", fg_values=None, soft=False):
        if encoding not in ENCODINGS:
            raise BadValue(f"mask encoding must be one of {', '.join(ENCODINGS)}, got {encoding!r}")
        self.path, self.encoding, self.fg_values, self.soft = path, encoding, fg_values, soft
        self.reader = open_reader(path)
        self.index = {}
        for i in range(len(self.reader)):
            key = self.reader.key(i).decode(errors="replace")
            name = os.path.splitext(key)[0] if isinstance(self.reader, ImageFolderReader) else key
            if name in self.index:
                raise BadValue(f"{path}: two files share the name {name!r} "
                               f"({self.reader.key(self.index[name]).decode()} and {key}); names must be unique")
            self.index[name] = i
        self.names = sorted(self.index)

    def image(self, name):
        if name not in self.index:
            raise KeyError(f"{self.path} has no entry named {name!r}")
        return self.reader.read(self.index[name])

    def mask(self, name):
        if name not in self.index:
            raise KeyError(f"{self.path} has no entry named {name!r}")
        raw = self.reader.read(self.index[name], raw=True)  # a palette or label image keeps its values
        return mask_array(raw, f"{name} in {self.path}", self.encoding, self.fg_values, self.soft)

    def masks(self, names):
        return [self.mask(n) for n in names]


class SourceSubset:
    """A source restricted to some of its names (kept sorted)."""

    def __init__(self, source, names):
        self.source, self.names = source, sorted(names)

    def __getattr__(self, name):
        return getattr(self.source, name)


class MaskFunction:
    """Masks computed from a source's images: fn(uint8 [H, W, 3]) -> [H, W] mask (a baseline)."""

    def __init__(self, images, fn):
        self.images, self.fn, self.names = images, fn, images.names

    def image(self, name):
        return self.images.image(name)

    def mask(self, name):
        return np.asarray(self.fn(np.asarray(self.image(name))), dtype=np.float32)

    def masks(self, names):
        return [self.mask(n) for n in names]


class SegmenterMasks(MaskFunction):
    """Foreground probabilities of a trained segmenter (segmenter.model.predict), batched by image size."""

    def __init__(self, images, model):
        super().__init__(images, None)
        self.model = model

    def mask(self, name):
        return self.masks([name])[0]

    def masks(self, names):
        tensors = [to_tensor(self.image(n)) for n in names]
        out = [None] * len(names)
        for shape in {t.shape for t in tensors}:
            which = [i for i, t in enumerate(tensors) if t.shape == shape]
            probs = predict(self.model, torch.stack([tensors[i] for i in which]))
            for i, p in zip(which, probs):
                out[i] = p[0].numpy()
        return out
