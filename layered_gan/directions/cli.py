"""`python -m layered_gan.directions find|anchors|masks|score`: search directions, write (image, mask) pairs."""

import json
import os

import click
import torch

from ..evaluation.generated import score_masks, synthetic_settings, train_reference
from ..files import write_json
from ..images import save_image_grid
from ..runs import load_stylegan2, run_config
from ..segmenter.filters import default_filters
from ..segmenter.pairs import PairStream, export_pairs
from .anchors import anchor_options, invert_images, save_anchors
from .candidates import SOURCES, candidate_directions, load_directions, save_directions, with_signs
from .latent import BRIGHTNESS, SPACES, LatentSpace
from .masks import DirectionPairs, direction_source, direction_space, shift_row
from .melas import find_direction, loss_terms, radial_prior, sobel
from .voynov import RULES, score_candidates

DEFAULTS = {"voynov": {"steps": 200, "lr": 0.005, "batch": 4}, "melas": {"steps": 1000, "lr": 0.05, "batch": 16}}
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _checked(fn, *args, **kwargs):
    """Run fn, turning missing files and invalid inputs into a clear command-line error."""
    try:
        return fn(*args, **kwargs)
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def cli():
    """Latent segmenting directions in a StyleGAN2 generator (Voynov et al.; Melas-Kyriazi et al.)."""


@torch.no_grad()
def save_strips(space, shifts, names, out, samples, seed):
    """OUT/strips/{row:03d}_{name}.png: one row [G(z - h), G(z), G(z + h)] per sample, the same z for every row."""
    codes, noise = space.sample(samples, torch.Generator().manual_seed(seed))
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


def print_table(rows, columns):
    """Rows of dicts as aligned columns (None as '-')."""
    click.echo("  ".join(f"{c:>11s}" for c in columns))
    for r in rows:
        click.echo("  ".join(f"{r[c]:>11.4f}" if isinstance(r[c], float) else f"{'-' if r[c] is None else r[c]!s:>11s}"
                             for c in columns))


def find_voynov(space, candidates, num, scale, signs, rule, steps, lr, batch, eval_batch, pca_samples, mode, seed):
    directions, names = candidate_directions(candidates, space, num, seed, pca_samples)
    if signs:
        directions, names = with_signs(directions, names)
    shifts = scale * directions
    scores = score_candidates(space, shifts, steps, lr, batch, eval_batch, seed, mode)
    ranked = RULES[rule](scores)
    if not ranked:
        raise click.ClickException(f"rule {rule} kept no candidate (all assign >= 99 % of pixels to one operator); "
                                   "try other candidates or a larger --scale")
    rows = voynov_table(scores, ranked, names)
    print_table(sorted(rows, key=lambda r: (r["rank"] is None, r["rank"] or 0, r["loss"])),
                ["row", "name", "rank", "loss", "distance", "share", "coverage"])
    click.echo(f"rule {rule}: row {ranked[0]} ({names[ranked[0]]}) is the segmenting direction")
    return shifts, names, rows, ranked[0], None


@torch.no_grad()
def melas_figures(space, shift, eval_batch, seed, mode):
    """L_c, L_s, the gain in centre brightness (L_c(G(z)) - L_c) and the coverage of [G(z + shift) > G(z)], held out."""
    pairs = DirectionPairs(space, shift, mode=mode).sample(eval_batch, torch.Generator().manual_seed(seed + 1))
    codes, noise = space.sample(eval_batch, torch.Generator().manual_seed(seed + 1))  # the same latents again
    base = space.render(codes, noise)
    prior = radial_prior(*base.shape[-2:]).to(base)
    edges = sobel(base)
    centre, consistency = loss_terms(space.render(codes + shift, noise), edges, prior)
    base_centre, _ = loss_terms(base, edges, prior)
    return {"L_c": centre.mean().item(), "centre_gain": (base_centre - centre).mean().item(),
            "L_s": consistency.mean().item(), "coverage": pairs.mask.mean().item()}


def find_melas(space, lam, eps, steps, lr, batch, eval_batch, seed, mode):
    rows, vectors = [], []
    for name, sign, offset in (("v_l", 1, 0), ("v_d", -1, 1)):
        v, _ = find_direction(space, sign * lam, eps, steps, lr, batch, seed + offset)
        vectors.append(v.cpu())
        rows.append({"row": len(rows), "name": name, "lambda": sign * lam,
                     **{k: round(x, 5) for k, x in melas_figures(space, eps * v, eval_batch, seed, mode).items()}})
    print_table(rows, ["row", "name", "lambda", "L_c", "centre_gain", "L_s", "coverage"])
    click.echo(f"cos(v_l, v_d) = {float(vectors[0] @ vectors[1]):.4f}; mask: row 0 brighter than row 1")
    return eps * torch.stack(vectors), ["v_l", "v_d"], rows, 0, 1


@cli.command()
@click.option("--ckpt", required=True, help="StyleGAN2 run folder of ours or a StyleGAN2-port checkpoint.")
@click.option("--method", required=True, type=click.Choice(["voynov", "melas"]))
@click.option("--out", required=True, help="Folder: directions.pt, candidates.json, strips/.")
@click.option("--space", default="w", show_default=True, type=click.Choice(SPACES), help="Latent space searched.")
@click.option("--truncation", default=1.0, show_default=True, help="Truncation psi.")
@click.option("--seed", default=0, show_default=True)
@click.option("--steps", type=click.IntRange(1), help="Adam steps [voynov 200 per candidate, melas 1000].")
@click.option("--lr", type=float, help="Adam learning rate [voynov 0.005, melas 0.05].")
@click.option("--batch", type=click.IntRange(1), help="Latents per step [voynov 4, melas 16].")
@click.option("--eval-batch", default=16, show_default=True, type=click.IntRange(1),
              help="Held-out latents the figures are computed on.")
@click.option("--candidates", default="sefa", show_default=True,
              help=f"voynov: {', '.join(SOURCES)} or a file of directions ([K, dim] .pt or .npy).")
@click.option("--num", default=20, show_default=True, type=click.IntRange(1), help="voynov: candidate directions.")
@click.option("--signs/--no-signs", default=True, show_default=True, help="voynov: each candidate and its negation.")
@click.option("--scale", default=5.0, show_default=True, help="voynov: ||h|| of the candidate shifts.")
@click.option("--rule", default="001", show_default=True, type=click.Choice(sorted(RULES)),
              help="voynov: ranking of paper version 000 or 001.")
@click.option("--pca-samples", default=10000, show_default=True, help="voynov: w samples for --candidates pca.")
@click.option("--brightness", "mode", default="gray", show_default=True, type=click.Choice(BRIGHTNESS),
              help="Mask brightness: grayscale (Voynov 001, Melas-Kyriazi) or the RGB norm (Voynov 000).")
@click.option("--lam", default=5.0, show_default=True, help="melas: lambda (v_l with +lam, v_d with -lam).")
@click.option("--eps", default=0.2, show_default=True, help="melas: perturbation radius (StyleGAN2: 0.2).")
@click.option("--strip-samples", default=4, show_default=True, help="Samples per strip of G(z - h), G(z), G(z + h).")
@click.option("--device", default=DEVICE, show_default=True)
def find(ckpt, method, out, space, truncation, seed, steps, lr, batch, eval_batch, candidates, num, signs, scale, rule,
         pca_samples, mode, lam, eps, strip_samples, device):
    """Search segmenting directions: print the candidates table, save directions.pt and the strips."""
    given = dict(steps=steps, lr=lr, batch=batch)
    settings = {k: DEFAULTS[method][k] if v is None else v for k, v in given.items()}
    latent = LatentSpace(_checked(load_stylegan2, ckpt), space, truncation, device)
    if method == "voynov":
        found = _checked(find_voynov, latent, candidates, num, scale, signs, rule, eval_batch=eval_batch,
                         pca_samples=pca_samples, mode=mode, seed=seed, **settings)
        extra = dict(rule=rule, candidates=candidates, scale=scale)
    else:
        found = find_melas(latent, lam, eps, eval_batch=eval_batch, seed=seed, mode=mode, **settings)
        extra = dict(lam=lam, eps=eps)
    shifts, names, rows, lighter, darker = found
    save_directions(os.path.join(out, "directions.pt"), method, ckpt, latent, shifts, names, rows, lighter, darker,
                    mode, seed=seed, **settings, **extra)
    write_json(os.path.join(out, "candidates.json"),
               [{k: v.tolist() if torch.is_tensor(v) else v for k, v in r.items()} for r in rows])
    save_strips(latent, shifts, names, out, strip_samples, seed)
    click.echo(f"wrote {os.path.join(out, 'directions.pt')}, candidates.json and {len(names)} strips in "
               f"{os.path.join(out, 'strips')}")


@cli.command()
@click.option("--ckpt", required=True, help="StyleGAN2 run folder of ours or a StyleGAN2-port checkpoint.")
@click.option("--images", required=True, help="Real images: a folder, a zip or an LMDB (e.g. the training data).")
@click.option("--out", required=True, help="anchors.pt to write.")
@click.option("--num", default=1000, show_default=True, type=click.IntRange(1), help="Images inverted (the first N).")
@click.option("--steps", default=200, show_default=True, type=click.IntRange(1), help="Adam steps per image.")
@click.option("--lr", default=0.05, show_default=True)
@click.option("--batch", default=32, show_default=True, type=click.IntRange(1), help="Images inverted together.")
@click.option("--device", default=DEVICE, show_default=True)
def anchors(ckpt, images, out, num, steps, lr, batch, device):
    """Invert real images into W (L1 projection from w_avg) to sample direction masks around (masks/distill)."""
    G = _checked(load_stylegan2, ckpt).to(device)
    ws, losses = _checked(invert_images, G, images, num, steps, lr, batch, device)
    save_anchors(out, ws, losses, ckpt, images, steps=steps, lr=lr)
    click.echo(f"wrote {len(ws)} anchors to {out}; mean final L1 {losses.mean():.4f}")


@cli.command()
@click.option("--direction", required=True, help="directions.pt written by `find`.")
@click.option("--out", required=True, help="New folder for the pairs.")
@click.option("--num", required=True, type=click.IntRange(1), help="Pairs to write (after filtering).")
@click.option("--format", "fmt", default="lmdb", show_default=True, type=click.Choice(["lmdb", "png"]),
              help="lmdb: OUT/images and OUT/masks LMDBs, the distillation's --pairs format; png: two folders.")
@click.option("--ckpt", default=None, help="Generator (default: the one the directions were found in).")
@click.option("--lighter", default=None, help="Row of the directions file lighting the object, or 'none' for G(z).")
@click.option("--darker", default=None, help="Row darkening the object, or 'none' for G(z).")
@click.option("--brightness", "mode", default=None, type=click.Choice(BRIGHTNESS),
              help="Mask brightness (default: the file's).")
@click.option("--seed", default=0, show_default=True)
@click.option("--batch", default=64, show_default=True, type=click.IntRange(1), help="Pairs generated per step.")
@click.option("--max-coverage", default=0.5, show_default=True, help="Drop masks covering more.")
@click.option("--min-coverage", default=0.01, show_default=True, help="Drop masks covering less.")
@click.option("--histogram/--no-histogram", default=True, show_default=True,
              help="Drop low-contrast shifted images (12-bin histogram test).")
@click.option("--component-ratio", default=0.2, show_default=True,
              help="Remove 4-connected components smaller than this x the largest.")
@anchor_options
@click.option("--device", default=DEVICE, show_default=True)
def masks(direction, out, num, fmt, ckpt, lighter, darker, mode, seed, batch, max_coverage, min_coverage, histogram,
          component_ratio, anchors, anchor_noise, device):
    """Write filtered (G(z), direction mask) pairs for distillation."""
    source = _checked(direction_source, direction, ckpt, lighter, darker, mode, device, anchors, anchor_noise)
    filters = default_filters(max_coverage, min_coverage, histogram, component_ratio)
    _checked(export_pairs, PairStream(source, filters, batch, seed), num, out, fmt=fmt)
    click.echo(f"{num} pairs in {out}; filters: {json.dumps(filters.report())}")


@cli.command()
@click.option("--direction", required=True, help="directions.pt written by `find`.")
@click.option("--rows", default="chosen", show_default=True, type=click.Choice(["chosen", "each"]),
              help="chosen: the file's mask; each: every row alone, [G(z + row) brighter than G(z)], and the best.")
@click.option("--num", default=2000, show_default=True, type=click.IntRange(1), help="Generated images per mask.")
@click.option("--reference-steps", default=1200, show_default=True, help="Training steps of the reference U-Net.")
@click.option("--ckpt", default=None, help="Generator (default: the one the directions were found in).")
@click.option("--brightness", "mode", default=None, type=click.Choice(BRIGHTNESS),
              help="Mask brightness (default: the file's).")
@click.option("--seed", default=0, show_default=True)
@click.option("--batch", default=100, show_default=True, type=click.IntRange(1))
@click.option("--out", default=None, help="JSON file (default: score_{rows}.json beside the directions file).")
@click.option("--device", default=DEVICE, show_default=True)
def score(direction, rows, num, reference_steps, ckpt, mode, seed, batch, out, device):
    """Score direction masks against the reference segmenter on generated images (runs on the synthetic dataset).

    The protocol of `evaluation.generated` (images where the reference finds no object are skipped and counted);
    masks are scored raw, before the filters, so a segmenting direction and random directions of the same norm
    compare fairly. centre_iou scores a centred disc of each mask's size instead: a direction that only
    lights the centre scores no more than that.
    """
    state = _checked(load_directions, direction)
    space = _checked(direction_space, state, ckpt, device)
    generator = ckpt or state["ckpt"]
    reference, reference_iou = train_reference(_checked(synthetic_settings, run_config(generator), generator),
                                               steps=reference_steps, device=device)
    mode = mode or state["brightness"]
    if rows == "chosen":
        light, dark = (state[k] for k in ("lighter", "darker"))
        name = " vs ".join("G(z)" if i is None else state["names"][i] for i in (light, dark))
        sources = [("chosen", name, DirectionPairs(space, shift_row(state, "lighter"), shift_row(state, "darker"),
                                                   mode))]
    else:
        sources = [(i, name, DirectionPairs(space, shift, None, mode))
                   for i, (shift, name) in enumerate(zip(state["shifts"], state["names"]))]
    results = [{"row": row, "name": name, **score_masks(source, reference, num, batch, seed=seed, desc=f"row {row}")}
               for row, name, source in sources]
    print_table(results, ["row", "name", "iou", "centre_iou", "mask_coverage", "scored"])
    best = max(results, key=lambda r: r["iou"])
    click.echo(f"reference held-out IoU {reference_iou:.4f}; best: row {best['row']} ({best['name']}) "
               f"IoU {best['iou']:.4f}")
    out = out or os.path.join(os.path.dirname(os.path.abspath(direction)), f"score_{rows}.json")
    write_json(out, {"direction": direction, "reference_test_iou": reference_iou, "brightness": mode, "rows": results,
                     "best": best})
    click.echo(f"wrote {out}")
