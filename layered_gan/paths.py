"""Where the toolkit caches what it builds (synthetic data, LMDB key lists, reference models)."""

import os


def cache_dir(*parts):
    """$LAYERED_GAN_CACHE (default ~/.cache/layered_gan) joined with parts."""
    root = os.environ.get("LAYERED_GAN_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "layered_gan"))
    return os.path.join(root, *parts)


REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
"""The clone the package runs from (an editable install): configs/, checkpoints/."""
