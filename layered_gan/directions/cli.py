"""`layered-gan directions find|anchors|masks|score`: search directions, write (image, mask) pairs."""

import json
import os
from dataclasses import fields

import click

from ..evaluation.generated import score_masks, synthetic_settings, train_reference
from ..files import write_json
from ..runs import load_stylegan2, run_config
from ..command import device_option, group
from ..errors import about
from ..segmenter.filters import FILTER_RULES, FILTER_RULES_HELP, default_filters
from ..segmenter.pairs import PairStream, export_pairs
from .anchors import invert_images, save_anchors
from .candidates import SOURCES, load_directions
from .latent import BRIGHTNESS, SPACES
from .masks import DirectionPairs, direction_source, direction_space, shift_row
from .search import OPTIMIZER, TRUNCATION, Search, find_directions, print_table
from .voynov import RULES


def anchor_options(fn):
    """--anchors and --anchor-noise: sample the direction masks around inverted real images."""
    fn = click.option("--anchor-noise", default=0.2, show_default=True,
                      help="With --anchors: code = anchor + this x (w - w_avg) (Voynov et al.'s 0.2).")(fn)
    return click.option("--anchors", default=None,
                        help="anchors.pt of `directions anchors`: sample around these inverted real images.")(fn)


@group("directions")
def cli():
    """Latent segmenting directions in a StyleGAN2 generator (Voynov et al.; Melas-Kyriazi et al.)."""


def _optimizer_help(name, what):
    """An optimizer option's help with each method's default."""
    return f"{what} [voynov {OPTIMIZER['voynov'][name]}, melas {OPTIMIZER['melas'][name]}]."


_SEARCH = {f.name: f.default for f in fields(Search)}  # the defaults, kept in search.py


@cli.command()
@click.option("--ckpt", required=True, help="StyleGAN2 run folder of ours or a StyleGAN2-port checkpoint.")
@click.option("--method", required=True, type=click.Choice(sorted(OPTIMIZER)))
@click.option("--out", required=True, help="Folder: directions.pt, candidates.json, strips/.")
@click.option("--space", default=_SEARCH["space"], show_default=True, type=click.Choice(SPACES),
              help="Latent space searched.")
@click.option("--truncation", default=None, type=float,
              help=f"Truncation psi [voynov {TRUNCATION['voynov']}, melas {TRUNCATION['melas']}: the authors' codes].")
@click.option("--seed", default=_SEARCH["seed"], show_default=True)
@click.option("--steps", type=click.IntRange(1), help=_optimizer_help("steps", "Adam steps (voynov: per candidate)"))
@click.option("--lr", type=float, help=_optimizer_help("lr", "Adam learning rate"))
@click.option("--batch", type=click.IntRange(1), help=_optimizer_help("batch", "Latents per step"))
@click.option("--eval-batch", default=_SEARCH["eval_batch"], show_default=True, type=click.IntRange(1),
              help="Held-out latents the figures are computed on.")
@click.option("--candidates", default=_SEARCH["candidates"], show_default=True,
              help=f"voynov: {', '.join(SOURCES)} or a file of directions ([K, dim] .pt or .npy).")
@click.option("--num", default=_SEARCH["num"], show_default=True, type=click.IntRange(1),
              help="voynov: candidate directions.")
@click.option("--signs/--no-signs", default=_SEARCH["signs"], show_default=True,
              help="voynov: each candidate and its negation.")
@click.option("--scale", default=_SEARCH["scale"], show_default=True, help="voynov: ||h|| of the candidate shifts.")
@click.option("--rule", default=_SEARCH["rule"], show_default=True, type=click.Choice(sorted(RULES)),
              help="voynov: ranking of paper version 000 or 001.")
@click.option("--pca-samples", default=_SEARCH["pca_samples"], show_default=True, type=click.IntRange(2),
              help="voynov: w samples for --candidates pca.")
@click.option("--brightness", "mode", default=_SEARCH["mode"], show_default=True, type=click.Choice(BRIGHTNESS),
              help="Mask brightness: grayscale (Voynov 001, Melas-Kyriazi) or the RGB norm (Voynov 000).")
@click.option("--lam", default=_SEARCH["lam"], show_default=True, help="melas: lambda (v_l with +lam, v_d with -lam).")
@click.option("--eps", default=_SEARCH["eps"], show_default=True, help="melas: perturbation radius (StyleGAN2: 0.2).")
@click.option("--strip-samples", default=_SEARCH["strip_samples"], show_default=True, type=click.IntRange(1),
              help="Samples per strip of G(z - h), G(z), G(z + h).")
@device_option
def find(ckpt, out, device, **search):
    """Search segmenting directions: print the candidates table, save directions.pt and the strips."""
    names = find_directions(ckpt, Search(**search), out, device, click.echo)
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
@device_option
def anchors(ckpt, images, out, num, steps, lr, batch, device):
    """Invert real images into W (L1 projection from w_avg) to sample direction masks around (masks/distill)."""
    with about("--ckpt"):
        G = load_stylegan2(ckpt).to(device)
    with about("--images"):
        ws, losses = invert_images(G, images, num, steps, lr, batch, device)
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
              help="Remove components smaller than this x the largest.")
@click.option("--filter-rules", default="code", show_default=True, type=click.Choice(FILTER_RULES),
              help=FILTER_RULES_HELP)
@anchor_options
@device_option
def masks(direction, out, num, fmt, ckpt, lighter, darker, mode, seed, batch, max_coverage, min_coverage, histogram,
          component_ratio, filter_rules, anchors, anchor_noise, device):
    """Write filtered (G(z), direction mask) pairs for distillation."""
    source = direction_source(direction, ckpt, lighter, darker, mode, device, anchors, anchor_noise)
    filters = default_filters(max_coverage, min_coverage, histogram, component_ratio, filter_rules)
    with about("--out"):
        export_pairs(PairStream(source, filters, batch, seed), num, out, fmt=fmt)
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
@device_option
def score(direction, rows, num, reference_steps, ckpt, mode, seed, batch, out, device):
    """Score direction masks against the reference segmenter on generated images (runs on the synthetic dataset).

    The protocol of `evaluation.generated` (images where the reference finds no object are skipped and counted);
    masks are scored raw, before the filters, so a segmenting direction and random directions of the same norm
    compare fairly. centre_iou scores a centred disc of each mask's size instead: a direction that only
    lights the centre scores no more than that.
    """
    with about("--direction"):
        state = load_directions(direction)
    space = direction_space(state, ckpt, device)
    generator = ckpt or state["ckpt"]
    reference, reference_iou = train_reference(synthetic_settings(run_config(generator), generator),
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
    print_table(results, ["row", "name", "iou", "centre_iou", "mask_coverage", "scored"], click.echo)
    best = max(results, key=lambda r: r["iou"])
    click.echo(f"reference held-out IoU {reference_iou:.4f}; best: row {best['row']} ({best['name']}) "
               f"IoU {best['iou']:.4f}")
    out = out or os.path.join(os.path.dirname(os.path.abspath(direction)), f"score_{rows}.json")
    write_json(out, {"direction": direction, "reference_test_iou": reference_iou, "brightness": mode, "rows": results,
                     "best": best})
    click.echo(f"wrote {out}")
