"""(image, mask) pairs from latent directions: a pair source for the distillation and the export.

    mask = [brightness(G(z + lighter)) > brightness(G(z + darker))], a missing shift meaning G(z):
    Voynov et al. (000 sec. 3.2, 001 sec. 3): lighter = h, darker = none;
    Melas-Kyriazi et al. (002 eq. 2): lighter = eps v_l, darker = eps v_d; eq. (3): one of them none.

The filters are the distillation's (`segmenter.filters`: coverage, the 12-bin
histogram test, small components); the histogram test examines `contrast`, the
image shifted along `lighter` (along `darker` when there is no lighter shift).
"""

import torch

from ..runs import load_stylegan2
from ..segmenter.pairs import Pairs, PairSource
from ..errors import BadValue
from .anchors import load_anchors
from .candidates import load_directions
from .latent import LatentSpace, brightness, to_unit


class DirectionPairs(PairSource):
    """Pairs (G(z), direction mask, shifted image) from a LatentSpace and one or two shifts [dim] (None: no shift)."""

    def __init__(self, space, lighter=None, darker=None, mode="gray"):
        if lighter is None and darker is None:
            raise BadValue("a direction mask needs a lighter or a darker shift (or both)")
        self.space, self.mode = space, mode
        self.lighter, self.darker = (None if s is None else s.to(space.device) for s in (lighter, darker))

    @torch.no_grad()
    def sample(self, n, generator):
        codes, noise = self.space.sample(n, generator)
        image = self.space.render(codes, noise)
        light, dark = (image if s is None else self.space.render(codes + s, noise) for s in (self.lighter, self.darker))
        light, dark = to_unit(light), to_unit(dark)
        mask = (brightness(light, self.mode) > brightness(dark, self.mode)).float()[:, None]
        return Pairs(image.clamp(-1, 1), mask, light if self.lighter is not None else dark)


def shift_row(state, which, value=None):
    """The shift row a --lighter/--darker value names: None (from the file), 'none', or an index."""
    if value is None:
        index = state[which]
    elif value == "none":
        return None
    else:
        try:
            index = int(value)
        except ValueError:
            raise BadValue(f"--{which} takes a row of the directions file or 'none', got {value!r}") from None
    if index is not None and not 0 <= index < len(state["shifts"]):
        raise BadValue(f"--{which} {index}: the directions file has rows 0-{len(state['shifts']) - 1} "
                       f"({', '.join(state['names'])})")
    return None if index is None else state["shifts"][index]


def direction_space(state, ckpt=None, device="cpu", anchors=None, anchor_noise=0.2):
    """The LatentSpace a directions file's shifts live in (ckpt overrides the file's generator; anchors: an
    anchors file of `directions anchors` to sample around)."""
    codes = None if anchors is None else load_anchors(anchors)
    space = LatentSpace(load_stylegan2(ckpt or state["ckpt"]), state["space"], state["truncation"], device, codes,
                        anchor_noise)
    if state["shifts"].shape[1] != space.dim:
        raise BadValue(f"the directions hold {state['shifts'].shape[1]}-d shifts; this generator's {state['space']} "
                       f"space has {space.dim} dimensions")
    return space


def direction_source(path, ckpt=None, lighter=None, darker=None, mode=None, device="cpu", anchors=None,
                     anchor_noise=0.2):
    """DirectionPairs from a directions file (its generator, space and truncation; ckpt overrides the generator).

    lighter, darker: rows of the file's shifts, 'none' for G(z), or None for the file's choice;
    mode: the brightness of the mask (None: the file's); anchors, anchor_noise: see direction_space.
    """
    state = load_directions(path)
    light, dark = shift_row(state, "lighter", lighter), shift_row(state, "darker", darker)
    space = direction_space(state, ckpt, device, anchors, anchor_noise)
    return DirectionPairs(space, light, dark, mode or state["brightness"])
