"""Data: image sources (LSUN LMDB, prepared LMDB, folders), the dataset, the synthetic scenes."""

from .dataset import ImageDataset
from .readers import open_reader

__all__ = ["ImageDataset", "open_reader"]
