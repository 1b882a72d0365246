"""Candidate latent directions and the directions file.

Candidates (unit vectors, then scaled to ||h|| = 5 as in Voynov et al. 000 sec. 3.2):
- 'sefa': closed-form factorization (Shen & Zhou 2021): the top eigenvectors of
  A^T A, A the style projections (`affine`) of every modulated convolution,
  stacked, each output row scaled to unit norm. Directions in W.
- 'pca': principal components of sampled w (GANSpace, Haerkoenen et al. 2020). In W.
- 'random': Gaussian directions (the baseline the segmenting direction must beat).
- a file: a [K, dim] tensor (.pt, or a dict with 'directions') or a .npy array.
Both signs of each are candidates unless told otherwise: a direction that lights the
object and its negation (which lights the background) are different candidates.

A directions file (`find`'s output, `masks`' input) is a torch file holding
{'format', 'method', 'ckpt', 'space', 'truncation', 'shifts' [K, dim] (scaled,
ready to add to a code), 'names', 'table' (one dict of figures per shift),
'lighter', 'darker' (the rows of the chosen mask, an index or None for G(z)),
'brightness' (the mask's: 'gray' or 'rgb'), 'settings'}.
"""

import os

import numpy as np
import torch

from .. import rng
from ..checkpoint import load_checkpoint, save_checkpoint
from ..errors import BadValue, MissingPath
from ..networks.layers import ModulatedConv

FORMAT = "layered_gan.directions/1"
SOURCES = ("sefa", "pca", "random")


@torch.no_grad()
def sefa(G, k):
    """The k closed-form factorization directions of G's W space [k, w_dim], by decreasing eigenvalue."""
    weights = torch.cat([m.affine.weight for m in G.synthesis.modules() if isinstance(m, ModulatedConv)])
    weights = weights / weights.norm(dim=1, keepdim=True)
    _, vectors = torch.linalg.eigh(weights.T @ weights)  # ascending eigenvalues
    return vectors.T.flip(0)[:k].contiguous()


@torch.no_grad()
def pca(space, k, samples=10000, seed=0, batch=1000):
    """The top k principal directions [k, dim] of `samples` codes drawn from space (a LatentSpace in W)."""
    generator = rng.generator(seed)
    codes = torch.cat([space.sample(min(batch, samples - i), generator)[0].cpu() for i in range(0, samples, batch)])
    _, _, vh = torch.linalg.svd(codes - codes.mean(0), full_matrices=False)
    return vh[:k]


def random_directions(dim, k, seed=0):
    """k Gaussian unit directions [k, dim]."""
    v = torch.randn(k, dim, generator=rng.generator(seed))
    return v / v.norm(dim=1, keepdim=True)


def read_directions_array(path, dim):
    """A user's directions file -> unit directions [K, dim]."""
    if path.endswith(".npy"):
        array = torch.from_numpy(np.load(path, allow_pickle=False)).float()
    else:
        array = load_checkpoint(path)
        array = array.get("directions", array.get("shifts")) if isinstance(array, dict) else array
        if not isinstance(array, torch.Tensor):
            raise BadValue(f"{path} holds no [K, {dim}] tensor (nor a dict with 'directions' or 'shifts')")
    array = array.float().reshape(-1, array.shape[-1]) if array.ndim == 1 else array.float()
    if array.ndim != 2 or array.shape[1] != dim:
        raise BadValue(f"{path}: directions must be [K, {dim}] for this latent space, got {list(array.shape)}")
    norms = array.norm(dim=1, keepdim=True)
    if (norms == 0).any():
        raise BadValue(f"{path}: direction {int((norms[:, 0] == 0).nonzero()[0])} is all zeros")
    return array / norms


def candidate_directions(source, space, k, seed=0, pca_samples=10000):
    """(unit directions [K, dim], names) from 'sefa', 'pca', 'random' or a file path."""
    if source in ("sefa", "pca") and space.space != "w":
        raise BadValue(f"{source} directions live in W; use --space w (or give a file of z directions)")
    if source == "sefa":
        directions = sefa(space.G, k)
    elif source == "pca":
        directions = pca(space, k, pca_samples, seed)
    elif source == "random":
        directions = random_directions(space.dim, k, seed)
    elif not os.path.isfile(source):
        raise MissingPath(f"--candidates {source!r}: neither one of {', '.join(SOURCES)} nor an existing file")
    else:
        directions = read_directions_array(source, space.dim)
        source = os.path.basename(source)
    return directions.cpu(), [f"{source}{i}" for i in range(len(directions))]


def with_signs(directions, names):
    """Each direction and its negation: [2K, dim] and names ending in + and -."""
    return (torch.cat([torch.stack([d, -d]) for d in directions]),
            [f"{n}{s}" for n in names for s in "+-"])


def save_directions(path, method, ckpt, space, shifts, names, table, lighter, darker, brightness, **settings):
    """Write a directions file; settings: how they were found (recorded as they are)."""
    save_checkpoint({"format": FORMAT, "method": method, "ckpt": ckpt, "space": space.space,
                     "truncation": float(space.truncation), "shifts": shifts.detach().cpu().float(),
                     "names": list(names), "table": table, "lighter": lighter, "darker": darker,
                     "brightness": brightness, "settings": settings}, path)


def load_directions(path):
    """A directions file written by `find` (checked)."""
    state = load_checkpoint(path)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise BadValue(f"{path} is not a directions file of `layered-gan directions find` "
                       f"(no format {FORMAT!r}); a plain array of directions goes to find --candidates")
    return state
