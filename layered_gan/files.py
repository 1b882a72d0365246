"""Files the toolkit writes: atomically (a crash never leaves a half-written checkpoint, JSON or PNG), and
output folders completed under a temporary name (`partial_folder`)."""

import json
import os
import shutil

import numpy as np
from PIL import Image

from .errors import PathExists


def atomic_write(path, write):
    """write(fh) to a temporary binary file beside `path`, flushed to disk, then renamed to `path` (and the
    folder's entry flushed too): a crash or power loss leaves the old file or the new one, never a part."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path, obj):
    atomic_write(path, lambda fh: fh.write(json.dumps(obj, indent=2).encode()))


def save_png(array, path):
    """uint8 [H, W], [H, W, 1] or [H, W, 3] (or a PIL image) as PNG."""
    if not isinstance(array, Image.Image):
        array = np.asarray(array, np.uint8)
        array = Image.fromarray(array[..., 0] if array.ndim == 3 and array.shape[-1] == 1 else array)
    atomic_write(path, lambda fh: array.save(fh, format="PNG"))


def partial_folder(root):
    """ROOT.partial, new and empty, for a folder written there and renamed to ROOT when complete.

    ROOT must not exist (FileExistsError): outputs are never merged into an older folder.
    """
    if os.path.exists(root):
        raise PathExists(f"{root} exists; choose a new folder")
    partial = root.rstrip("/") + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    return partial
