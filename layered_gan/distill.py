"""Distillation: a U-Net segmenter for real images, trained on generated (image, mask) pairs.

Voynov et al. (sec. 4), Melas-Kyriazi et al. (appendix) and Labels4Free
(Table 4) turn generated pairs into a fast segmenter: filtered pairs, a U-Net
with per-pixel BCE, Adam 1e-3, lr x 0.2 after 8 000 of 12 000 steps, batch 95.
Pairs come online (never the same pair twice) from a layered or Labels4Free run
(--ckpt: composite, mask > --threshold) or from latent directions (--directions:
G(z), direction mask), or are read from an exported folder (--pairs: LMDBs of
`python -m layered_gan.segmenter.pairs` or `... directions masks`, or PNG
folders). Validation: held-out generated pairs of the online source (tuning
without labels) and, when ground truth exists (a generator trained on the
synthetic dataset: its held-out split; or --real-images/--real-masks), real
images, predicted as `segment` does. Several seeds give mean +- std.

    python -m layered_gan.distill --ckpt runs/demo --out runs/demo/distill --seeds 0-2
    python -m layered_gan.distill --directions dirs/voynov/directions.pt --out dirs/voynov/distill
    python -m layered_gan.distill --pairs pairs/voynov --real-images IMAGES --real-masks MASKS --out distill/
    python -m layered_gan.segmenter.segment --model runs/demo/distill/seed0 --images PHOTOS --out masks/
"""

import json
import os

import click
import numpy as np
import torch

from .data.dataset import ImageDataset
from .data.readers import open_reader
from .data.synthetic import build_synthetic, split_paths
from .directions.anchors import anchor_options
from .directions.candidates import load_directions
from .directions.latent import BRIGHTNESS
from .directions.masks import direction_source
from .evaluation.evaluate import evaluate, listing, report
from .evaluation.metrics import METRICS, Scores
from .evaluation.sources import FileSource, SegmenterMasks, SourceSubset
from .files import write_json
from .generate import parse_seeds
from .runs import run_config
from .segmenter.filters import default_filters
from .segmenter.model import BACKBONES, build_segmenter, predict, save_segmenter
from .segmenter.pairs import PairStream, filter_options, fixed_pairs, generator_source
from .segmenter.training import fit, repeat

VAL_SEED = 1_000_003  # the held-out pair stream; training streams use the run seeds


def score_pairs(model, pairs):
    """Scores summary of the model on generated pairs (their masks binarized at 0.5)."""
    scores = Scores()
    scores.update(predict(model, pairs.image)[:, 0], pairs.mask[:, 0] > 0.5)
    return scores.summary()


def pair_source(ckpt, directions, lighter, darker, mode, threshold, truncation, device, anchors=None,
                anchor_noise=0.2):
    """(online pair source or None, the config of its generator's training run or None).

    directions: a directions file's masks (its generator, or ckpt instead; lighter, darker: its rows or 'none';
    mode: the brightness; anchors: inverted real images to sample around); else ckpt: a layered or Labels4Free
    run's composites and masks; else None.
    """
    if directions:
        try:
            source = direction_source(directions, ckpt, lighter, darker, mode, device, anchors, anchor_noise)
            return source, run_config(ckpt or load_directions(directions)["ckpt"])
        except (FileNotFoundError, ValueError) as exc:
            raise click.UsageError(str(exc)) from None
    given = [f"--{name}" for name, value in (("lighter", lighter), ("darker", darker), ("brightness", mode),
                                             ("anchors", anchors)) if value]
    if given:
        raise click.UsageError(f"{', '.join(given)} go with --directions")
    return generator_source(ckpt, threshold, truncation, device) if ckpt else (None, None)


def pairs_resolution(pairs_dir):
    """The side of the first image of an exported pairs folder."""
    try:
        return min(open_reader(os.path.join(pairs_dir, "images")).read(0).size)
    except (FileNotFoundError, ValueError) as exc:
        raise click.UsageError(f"--pairs {pairs_dir}: {exc}") from None


def real_sources(cfg, real_images, real_masks):
    """(images, masks) sources with ground truth: given paths, or the synthetic held-out split of the generator's
    run (cfg, None when unknown); else None."""
    if real_images or real_masks:
        if not (real_images and real_masks):
            raise click.UsageError("--real-images and --real-masks go together")
    elif cfg is not None and cfg["data"]["source"] == "synthetic":
        real_images, real_masks = split_paths(build_synthetic(**cfg["data"]["synthetic"]), "test")
    else:
        return None
    images, masks = FileSource(real_images), FileSource(real_masks)
    unpaired = sorted(set(images.names) ^ set(masks.names))
    if unpaired:
        raise click.UsageError(f"{len(unpaired)} names are in only one of {real_images} and {real_masks}: "
                               f"{listing(unpaired)}")
    return images, masks


def distill(batches, resolution, val_pairs, real, seed, steps=12000, lr=1e-3, milestones=None, gamma=0.2, width=32,
            depth=3, every=1000, real_check=200, device="cpu", progress=True, backbone="unet"):
    """Train one segmenter from `batches` (image, mask); returns (model, figures).

    val_pairs: held-out generated Pairs or None; real: (images, masks) sources or None.
    """
    torch.manual_seed(seed)
    model = build_segmenter(resolution, width, depth, backbone).to(device)

    def validate(model):
        figures = {}
        if val_pairs is not None:
            figures["val_pairs_fg_iou"] = score_pairs(model, val_pairs)["per_image"]["fg_iou"]
        if real is not None:
            check = evaluate(SegmenterMasks(SourceSubset(real[0], real[0].names[:real_check]), model),
                             SourceSubset(real[1], real[1].names[:real_check]),
                             progress=False)
            figures[f"real_fg_iou_first{real_check}"] = check["summary"]["per_image"]["fg_iou"]
        return figures

    history = fit(model, batches, steps, lr, milestones, gamma, device, validate, every, progress,
                  desc=f"distill seed {seed}")
    figures = {"seed": seed, "history": history}
    if val_pairs is not None:
        figures["generated_val"] = score_pairs(model, val_pairs)
    if real is not None:
        figures["real"] = evaluate(SegmenterMasks(real[0], model), real[1], progress=progress)
    return model, figures


def mean_std(summaries):
    """{aggregation: {metric: [mean, std]}} over runs (std with ddof=1; 0 for one run)."""
    out = {}
    for agg in ("per_image", "all_pixels"):
        out[agg] = {}
        for metric in summaries[0][agg]:
            values = np.array([s[agg][metric] for s in summaries])
            out[agg][metric] = [float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0]
    return out


def format_mean_std(name, stats):
    lines = [f"{name}: mean +- std over seeds", f"{'metric':12s} {'per image':>17s} {'all pixels':>17s}"]
    for metric in METRICS + ("max_fbeta",):
        (m1, s1), (m2, s2) = stats["per_image"][metric], stats["all_pixels"][metric]
        lines.append(f"{metric:12s} {m1:8.4f} +- {s1:.4f} {m2:8.4f} +- {s2:.4f}")
    return "\n".join(lines)


@click.command()
@click.option("--ckpt", default=None, help="Run folder or checkpoint of a layered or Labels4Free generator (the pair "
                                           "source); with --directions, a generator replacing the file's.")
@click.option("--directions", default=None, help="directions.pt of `python -m layered_gan.directions find`: direction "
                                                 "masks as the pair source.")
@click.option("--lighter", default=None, help="With --directions: the row lighting the object, or 'none' for G(z) "
                                              "(default: the file's).")
@click.option("--darker", default=None, help="With --directions: the row darkening the object, or 'none'.")
@click.option("--brightness", "mode", default=None, type=click.Choice(BRIGHTNESS),
              help="With --directions: the mask's brightness (default: the file's).")
@anchor_options
@click.option("--out", required=True, help="Folder: seed{S}/segmenter.pt, seed{S}/real/, summary.json.")
@click.option("--seeds", default="0", show_default=True, help="Seeds, e.g. 0-2: one segmenter each, mean +- std.")
@click.option("--steps", default=12000, show_default=True)
@click.option("--batch", default=95, show_default=True)
@click.option("--lr", default=1e-3, show_default=True)
@click.option("--decay-at", "decay_at", multiple=True, type=int, help="Steps where lr x gamma (default 2/3 of steps).")
@click.option("--gamma", default=0.2, show_default=True)
@click.option("--width", default=32, show_default=True, help="U-Net base width.")
@click.option("--depth", default=3, show_default=True, help="U-Net down-samplings (backbone unet).")
@click.option("--backbone", default="unet", show_default=True, type=click.Choice(BACKBONES),
              help="unet: from scratch (the papers' setting); efficientnet: the ImageNet EfficientNet-Lite0 as "
                   "the encoder, fine-tuned (ImageNet supervision the papers did not use).")
@click.option("--pairs", "pairs_dir", default=None, help="Train on an exported pairs folder instead of online pairs "
                                                         "(--ckpt or --directions then only give validation pairs).")
@click.option("--val-pairs", default=1000, show_default=True, help="Held-out generated pairs for validation.")
@click.option("--every", default=1000, show_default=True, help="Validate every N steps.")
@click.option("--real-images", default=None, help="Real images with ground truth (default: the synthetic held-out "
                                                  "split when the generator trained on synthetic data).")
@click.option("--real-masks", default=None, help="Their ground-truth masks (same names).")
@click.option("--real-check", default=200, show_default=True, help="Real images scored at each validation.")
@filter_options
@click.option("--device", default="cuda" if torch.cuda.is_available() else "cpu", show_default=True)
def main(ckpt, directions, lighter, darker, mode, anchors, anchor_noise, out, seeds, steps, batch, lr, decay_at, gamma,
         width, depth, backbone, pairs_dir, val_pairs, every, real_images, real_masks, real_check, max_coverage,
         min_coverage, histogram, component_ratio, threshold, truncation, device):
    """Train U-Net segmenters on generated pairs (a layered or Labels4Free run, latent directions, or an exported
    folder) and score them."""
    seeds = parse_seeds(seeds)
    source, cfg = pair_source(ckpt, directions, lighter, darker, mode, threshold, truncation, device, anchors,
                              anchor_noise)
    if source is None and not pairs_dir:
        raise click.UsageError("no pairs: give --ckpt (a layered or Labels4Free run), --directions or --pairs")
    filters = dict(max_coverage=max_coverage, min_coverage=min_coverage, histogram=histogram,
                   component_ratio=component_ratio)
    val_filters = default_filters(**filters) if source is not None else None
    val = fixed_pairs(source, val_filters, val_pairs, VAL_SEED) if source is not None else None
    real = real_sources(cfg, real_images, real_masks)
    if val is None and real is None:
        raise click.UsageError("nothing to validate on: with --pairs alone give --real-images and --real-masks, or "
                               "--ckpt / --directions (generated validation pairs)")
    resolution = val.image.shape[-1] if val is not None else pairs_resolution(pairs_dir)
    settings = dict(ckpt=ckpt, directions=directions, lighter=lighter, darker=darker, brightness=mode, anchors=anchors,
                    anchor_noise=anchor_noise if anchors else None, steps=steps, batch=batch, lr=lr,
                    decay_at=list(decay_at), gamma=gamma, width=width, depth=depth, backbone=backbone,
                    pairs=pairs_dir, threshold=threshold, truncation=truncation, **filters)
    runs = {}
    for seed in seeds:
        if pairs_dir:
            ds = ImageDataset(os.path.join(pairs_dir, "images"), resolution, crop="center", hflip=True,
                              masks=os.path.join(pairs_dir, "masks"))
            loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, drop_last=True,
                                                 generator=torch.Generator().manual_seed(seed))
            batches, train_filters = repeat(loader), None
        else:
            train_filters = default_filters(**filters)
            batches = PairStream(source, train_filters, batch, seed)
        model, figures = distill(batches, resolution, val, real, seed, steps, lr, list(decay_at) or None, gamma,
                                 width, depth, every, real_check, device, backbone=backbone)
        figures["filters"] = train_filters.report() if train_filters else "pairs read from " + pairs_dir
        real_summary = figures["real"]["summary"] if real is not None else None
        run_dir = os.path.join(out, f"seed{seed}")
        save_segmenter(model, os.path.join(run_dir, "segmenter.pt"), seed=seed, **settings,
                       generated_val=figures.get("generated_val"), real=real_summary)
        if real is not None:
            report(figures["real"], os.path.join(run_dir, "real"), SegmenterMasks(real[0], model), real[1], real[0],
                   echo=click.echo)
        write_json(os.path.join(run_dir, "figures.json"), {k: v for k, v in figures.items() if k != "real"})
        runs[seed] = {"generated_val": figures.get("generated_val"), "filters": figures["filters"],
                      "real": real_summary}
    summary = {"settings": settings, "seeds": seeds,
               "validation_pairs": val_filters.report() if val_filters else None, "runs": runs}
    if val is not None:
        summary["generated_val"] = mean_std([r["generated_val"] for r in runs.values()])
        click.echo(format_mean_std("held-out generated pairs", summary["generated_val"]))
    if real is not None:
        summary["real"] = mean_std([r["real"] for r in runs.values()])
        click.echo(format_mean_std(f"real held-out images ({runs[seeds[0]]['real']['images']})", summary["real"]))
    write_json(os.path.join(out, "summary.json"), summary)
    click.echo(f"filters on the last run's pairs: {json.dumps(runs[seeds[-1]]['filters'])}")
    click.echo(f"wrote {os.path.join(out, 'summary.json')}")


if __name__ == "__main__":
    main()
