"""Atomic writes for evaluation outputs: a crash never leaves a half-written JSON or PNG."""

import json
import os

import numpy as np
from PIL import Image


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
    """uint8 [H, W] or [H, W, 3] (or a PIL image) as PNG."""
    img = array if isinstance(array, Image.Image) else Image.fromarray(np.asarray(array, np.uint8))
    _atomic(path, lambda tmp: img.save(tmp, format="PNG"))
