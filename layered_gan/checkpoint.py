"""Checkpoints: written atomically, read with torch.load(weights_only=True)."""

import os

import torch
from torch.utils._pytree import tree_map

from .errors import BadValue, MissingPath
from .files import atomic_write


def checkpoint_file(path):
    """A run folder's checkpoint.pt, or the checkpoint file given."""
    return os.path.join(path, "checkpoint.pt") if os.path.isdir(path) else path


def save_checkpoint(state, path):
    """torch.save of `state`'s tensors moved to the CPU (the file loads anywhere, with or without map_location),
    atomically (files.atomic_write): a crash never leaves a half-written checkpoint."""
    state = tree_map(lambda x: x.detach().cpu() if isinstance(x, torch.Tensor) else x, state)
    atomic_write(path, lambda fh: torch.save(state, fh))


def load_checkpoint(path, map_location="cpu"):
    """Tensors, numbers, strings and containers only: no arbitrary unpickling."""
    if not os.path.isfile(path):
        raise MissingPath(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        why = " ".join(str(exc).split()).split("WeightsUnpickler error: ")[-1].split(" Check the documentation")[0]
        raise BadValue(f"checkpoint {path} could not be read as a weights-only torch file (a run's checkpoint.pt "
                       f"or a StyleGAN2-port file): {why}") from None
