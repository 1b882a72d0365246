"""Searching segmenting directions (`layered-gan directions find`): the settings, both methods' searches, and
what a search writes (directions.pt, candidates.json, strips/)."""

import os
from dataclasses import dataclass
from typing import Optional

import torch

from .. import rng
from ..errors import BadValue
from ..files import write_json
from ..images import save_image_grid
from ..runs import load_stylegan2
from .candidates import candidate_directions, save_directions, with_signs
from .latent import LatentSpace
from .masks import DirectionPairs
from .melas import find_direction, loss_terms, radial_prior, sobel
from .voynov import RULES, score_candidates

OPTIMIZER = {"voynov": {"steps": 200, "lr": 0.005, "batch": 4}, "melas": {"steps": 1000, "lr": 0.05, "batch": 16}}
# Truncation psi of the sampled latents: Melas-Kyriazi et al.'s code samples w at psi 0.5; Voynov et al. do not truncate
TRUNCATION = {"voynov": 1.0, "melas": 0.5}


@dataclass(frozen=True)
class Search:
    """A direction search's settings. steps, lr, batch: Adam's (None: the method's, OPTIMIZER); candidates, num,
    signs, scale, rule, pca_samples: Voynov et al.'s; lam, eps: Melas-Kyriazi et al.'s; mode: the masks'
    brightness; eval_batch: held-out latents of the figures; strip_samples: rows of each strip; truncation: psi
    (None: the method's, TRUNCATION)."""
    method: str
    space: str = "w"
    truncation: Optional[float] = None
    seed: int = 0
    steps: Optional[int] = None
    lr: Optional[float] = None
    batch: Optional[int] = None
    eval_batch: int = 16
    candidates: str = "sefa"
    num: int = 20
    signs: bool = True
    scale: float = 5.0
    rule: str = "001"
    pca_samples: int = 10000
    mode: str = "gray"
    lam: float = 5.0
    eps: float = 0.2
    strip_samples: int = 4

    def optimizer(self):
        """{steps, lr, batch}: the given ones, else the method's."""
        given = dict(steps=self.steps, lr=self.lr, batch=self.batch)
        return {k: OPTIMIZER[self.method][k] if v is None else v for k, v in given.items()}

    def psi(self):
        """The truncation given, else the method's."""
        return TRUNCATION[self.method] if self.truncation is None else self.truncation


def print_table(rows, columns, echo=print):
    """Rows of dicts as aligned columns (None as '-')."""
    echo("  ".join(f"{c:>11s}" for c in columns))
    for r in rows:
        echo("  ".join(f"{r[c]:>11.4f}" if isinstance(r[c], float) else f"{'-' if r[c] is None else r[c]!s:>11s}"
                       for c in columns))


@torch.no_grad()
def save_strips(space, shifts, names, out, samples, seed):
    """OUT/strips/{row:03d}_{name}.png: one row [G(z - h), G(z), G(z + h)] per sample, the same z for every row."""
    codes, noise = space.sample(samples, rng.generator(seed))
    for row, (shift, name) in enumerate(zip(shifts.to(space.device), names)):
        images = torch.stack([space.render(codes + s, noise) for s in (-shift, 0 * shift, shift)], 1)
        save_image_grid(images.flatten(0, 1), os.path.join(out, "strips", f"{row:03d}_{name}.png"), nrow=3)


def voynov_table(scores, ranked, names):
    rows = []
    for i, (s, name) in enumerate(zip(scores, names)):
        rank = ranked.index(i) + 1 if i in ranked else None
        rows.append({"row": i, "name": name, "rank": rank, **{k: v for k, v in s.items() if k in ("A", "b")},
                     **{k: round(v, 5) for k, v in s.items() if k not in ("A", "b")}})
    return rows


def find_voynov(space, search, echo=print):
    opt = search.optimizer()
    directions, names = candidate_directions(search.candidates, space, search.num, search.seed, search.pca_samples)
    if search.signs:
        directions, names = with_signs(directions, names)
    shifts = search.scale * directions
    scores = score_candidates(space, shifts, opt["steps"], opt["lr"], opt["batch"], search.eval_batch, search.seed,
                              search.mode)
    ranked = RULES[search.rule](scores)
    if not ranked:
        raise BadValue(f"--rule {search.rule} kept no candidate (all assign >= 99 % of pixels to one operator); "
                       "try other --candidates or a larger --scale")
    rows = voynov_table(scores, ranked, names)
    print_table(sorted(rows, key=lambda r: (r["rank"] is None, r["rank"] or 0, r["loss"])),
                ["row", "name", "rank", "loss", "distance", "share", "coverage"], echo)
    echo(f"rule {search.rule}: row {ranked[0]} ({names[ranked[0]]}) is the segmenting direction")
    return shifts, names, rows, ranked[0], None


@torch.no_grad()
def melas_figures(space, shift, eval_batch, seed, mode):
    """L_c, L_s, the gain in centre brightness (L_c(G(z)) - L_c) and the coverage of [G(z + shift) > G(z)], held out."""
    pairs = DirectionPairs(space, shift, mode=mode).sample(eval_batch, rng.generator(seed + 1))
    codes, noise = space.sample(eval_batch, rng.generator(seed + 1))  # the same latents again
    base = space.render(codes, noise)
    prior = radial_prior(*base.shape[-2:]).to(base)
    edges = sobel(base)
    centre, consistency = loss_terms(space.render(codes + shift, noise), edges, prior)
    base_centre, _ = loss_terms(base, edges, prior)
    return {"L_c": centre.mean().item(), "centre_gain": (base_centre - centre).mean().item(),
            "L_s": consistency.mean().item(), "coverage": pairs.mask.mean().item()}


def find_melas(space, search, echo=print):
    opt, lam, eps = search.optimizer(), search.lam, search.eps
    rows, vectors = [], []
    for name, sign, offset in (("v_l", 1, 0), ("v_d", -1, 1)):
        v, _ = find_direction(space, sign * lam, eps, opt["steps"], opt["lr"], opt["batch"], search.seed + offset)
        vectors.append(v.cpu())
        figures = melas_figures(space, eps * v, search.eval_batch, search.seed, search.mode)
        rows.append({"row": len(rows), "name": name, "lambda": sign * lam,
                     **{k: round(x, 5) for k, x in figures.items()}})
    print_table(rows, ["row", "name", "lambda", "L_c", "centre_gain", "L_s", "coverage"], echo)
    echo(f"cos(v_l, v_d) = {float(vectors[0] @ vectors[1]):.4f}; mask: row 0 brighter than row 1")
    return eps * torch.stack(vectors), ["v_l", "v_d"], rows, 0, 1


def find_directions(ckpt, search, out, device="cpu", echo=print):
    """Search segmenting directions in the generator of `ckpt` as `search` says: print the candidates table, write
    OUT/directions.pt, OUT/candidates.json and OUT/strips/. Returns the directions' names."""
    latent = LatentSpace(load_stylegan2(ckpt), search.space, search.psi(), device)
    if search.method == "voynov":
        found = find_voynov(latent, search, echo)
        extra = dict(rule=search.rule, candidates=search.candidates, scale=search.scale)
    else:
        found = find_melas(latent, search, echo)
        extra = dict(lam=search.lam, eps=search.eps)
    shifts, names, rows, lighter, darker = found
    save_directions(os.path.join(out, "directions.pt"), search.method, ckpt, latent, shifts, names, rows, lighter,
                    darker, search.mode, seed=search.seed, **search.optimizer(), **extra)
    write_json(os.path.join(out, "candidates.json"),
               [{k: v.tolist() if torch.is_tensor(v) else v for k, v in r.items()} for r in rows])
    save_strips(latent, shifts, names, out, search.strip_samples, search.seed)
    return names
