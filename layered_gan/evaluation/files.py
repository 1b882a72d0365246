"""Atomic writes for evaluation outputs: a crash never leaves a half-written JSON, PNG or output folder."""

import json
import os
import shutil

import numpy as np
from PIL import Image

from ..errors import PathExists


def _atomic(path, write):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path, obj):
    def write(tmp):
        with open(tmp, "w") as fh:
            json.dump(obj, fh, indent=2)
    _atomic(path, write)


def save_png(array, path):
    """uint8 [H, W], [H, W, 1] or [H, W, 3] (or a PIL image) as PNG."""
    if not isinstance(array, Image.Image):
        array = np.asarray(array, np.uint8)
        array = Image.fromarray(array[..., 0] if array.ndim == 3 and array.shape[-1] == 1 else array)
    _atomic(path, lambda tmp: array.save(tmp, format="PNG"))


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
