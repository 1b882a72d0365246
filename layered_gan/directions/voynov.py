"""Voynov et al., "Big GANs Are Watching You" (seeds 000 sec. 3.1-3.2, 001 appendix B): segmenting directions.

A shift h is segmenting when two affine colour operators A_1, A_2 (3x3 + 3
each) explain its effect on every pixel: G(z + h)_xy = A_i(xy)(G(z)_xy) (eq. 1).
For each candidate the operators minimize the restoration loss

    L_h(A_1, A_2) = E_z mean_xy min_i ||A_i(G(z)_xy) - G(z + h)_xy||^2      (000 eq. 2-4)

(000 sums over pixels; the mean keeps L comparable across resolutions) with
200 Adam steps, lr 0.005, batch 4, pixels in [0, 1]. A_1 starts at c + 0.1
(lighter), A_2 at c - 0.1 (darker). Held-out images then give L_h, the mean
operator distance D_h = mean_xy ||A_1(G(z)_xy) - A_2(G(z)_xy)|| and the share of
pixels that eq. (5) assigns to A_1. Ranking rules:

- '000': among the 70 % of candidates with the lowest L_h, decreasing D_h;
- '001': drop candidates assigning >= 99 % of pixels to one operator, keep the
  top 20 % by D_h, then the 10 with the lowest L_h, by increasing L_h.
"""

import math

import torch
from tqdm import tqdm

from .. import rng
from .latent import brightness, to_unit

INIT_OFFSET = 0.1


def apply_operators(A, b, x):
    """Both operators on every pixel: A [2, 3, 3], b [2, 3], x [N, 3, H, W] -> [2, N, 3, H, W]."""
    return torch.einsum("kij,njhw->knihw", A, x) + b[:, None, :, None, None]


def restoration_errors(A, b, x, shifted):
    """||A_i(x_xy) - shifted_xy||^2 for i = 1, 2: [2, N, H, W]."""
    return (apply_operators(A, b, x) - shifted[None]).square().sum(2)


def restoration_loss(A, b, x, shifted):
    """L_h (000 eq. 3) on one batch, averaged over pixels and images."""
    return restoration_errors(A, b, x, shifted).min(0).values.mean()


def fit_operators(pairs, steps=200, lr=0.005, batch=4, generator=None, device="cpu"):
    """A [2, 3, 3], b [2, 3] minimizing L_h (000 eq. 4); pairs(n, generator) -> (x, shifted) in [0, 1]."""
    A = torch.eye(3, device=device).repeat(2, 1, 1).requires_grad_()
    b = (INIT_OFFSET * torch.tensor([[1.0], [-1.0]], device=device)).repeat(1, 3).requires_grad_()
    optimizer = torch.optim.Adam([A, b], lr=lr)
    for _ in range(steps):
        loss = restoration_loss(A, b, *pairs(batch, generator))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return A.detach(), b.detach()


def score_operators(A, b, x, shifted, mode="gray"):
    """{'loss': L_h, 'distance': D_h, 'share': of pixels assigned to A_1 (eq. 5), 'coverage': of the mask}.

    On held-out pairs; the mask is Voynov's approximation of eq. (5): [brightness(G(z + h)) > brightness(G(z))].
    """
    errors = restoration_errors(A, b, x, shifted)
    applied = apply_operators(A, b, x)
    return {"loss": errors.min(0).values.mean().item(),
            "distance": (applied[0] - applied[1]).norm(dim=1).mean().item(),
            "share": (errors[0] <= errors[1]).float().mean().item(),
            "coverage": (brightness(shifted, mode) > brightness(x, mode)).float().mean().item()}


class ShiftPairs:
    """(G(z), G(z + h)) in [0, 1] from a LatentSpace: a callable for fit_operators."""

    def __init__(self, space, shift):
        self.space, self.shift = space, shift

    @torch.no_grad()
    def __call__(self, n, generator):
        codes, noise = self.space.sample(n, generator)
        return to_unit(self.space.render(codes, noise)), to_unit(self.space.render(codes + self.shift, noise))


def score_candidates(space, shifts, steps=200, lr=0.005, batch=4, eval_batch=16, seed=0, mode="gray", progress=True):
    """Fit and score every candidate shift [K, dim]: a list of score_operators dicts plus 'A', 'b'.

    Every candidate sees the same latents (fit: seed; held-out scoring: seed + 1).
    """
    results = []
    for shift in tqdm(shifts, desc="fitting colour operators", unit="direction", disable=not progress):
        pairs = ShiftPairs(space, shift.to(space.device))
        A, b = fit_operators(pairs, steps, lr, batch, rng.generator(seed), space.device)
        held_out = pairs(eval_batch, rng.generator(seed + 1))
        results.append({**score_operators(A, b, *held_out, mode=mode), "A": A.cpu(), "b": b.cpu()})
    return results


def rank_000(scores, keep=0.7):
    """Candidate indices, best first: the `keep` share with the lowest L_h, by decreasing D_h (000 sec. 3.2)."""
    by_loss = sorted(range(len(scores)), key=lambda i: scores[i]["loss"])
    kept = by_loss[:max(1, math.ceil(keep * len(scores)))]
    return sorted(kept, key=lambda i: -scores[i]["distance"])


def rank_001(scores, one_class=0.99, top_distance=0.2, top_loss=10):
    """Candidate indices, best first (001 appendix B.2): no one-class candidates, top 20 % by D_h, 10 lowest L_h."""
    valid = [i for i, s in enumerate(scores) if max(s["share"], 1 - s["share"]) < one_class]
    if not valid:
        return []
    by_distance = sorted(valid, key=lambda i: -scores[i]["distance"])
    far = by_distance[:max(1, math.ceil(top_distance * len(valid)))]
    return sorted(far, key=lambda i: scores[i]["loss"])[:top_loss]


RULES = {"000": rank_000, "001": rank_001}
