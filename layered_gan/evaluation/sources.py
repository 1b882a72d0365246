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


def _mask_array(img):
    return np.asarray(img.convert("L"), dtype=np.float32) / 255


class FileSource:
    """A folder of images or an LMDB (raw LSUN-style or prepared) read by name."""

    def __init__(self, path):
        self.path = path
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
        return _mask_array(self.image(name))

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
