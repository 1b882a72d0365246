"""Distillation: a U-Net segmenter for real images, trained on generated (image, mask) pairs.

Voynov et al. (sec. 4), Melas-Kyriazi et al. (appendix) and Labels4Free
(Table 4) turn generated pairs into a fast segmenter: filtered pairs, a U-Net
with per-pixel BCE, Adam 1e-3, lr x 0.2 after 8 000 of 12 000 steps, batch 95.
Pairs come online (never the same pair twice) from a layered or Labels4Free run
(--ckpt: composite, mask > --threshold) or from latent directions (--directions:
G(z), direction mask), or are read from an exported folder (--pairs: LMDBs of
`layered-gan pairs` or `... directions masks`, or PNG
folders). Validation: held-out generated pairs of the online source (tuning
without labels) and, when ground truth exists (a generator trained on the
synthetic dataset: its held-out split; or --real-images/--real-masks), real
images, predicted as `segment` does. Several seeds give mean +- std.

    layered-gan distill --ckpt runs/demo --out runs/demo/distill --seeds 0-2
    layered-gan distill --directions dirs/voynov/directions.pt --out dirs/voynov/distill
    layered-gan distill --pairs pairs/voynov --real-images IMAGES --real-masks MASKS --out distill/
    layered-gan segment --model runs/demo/distill/seed0 --images PHOTOS --out masks/
"""

import json
import os

import numpy as np
import torch

from . import rng
from .data.dataset import ImageDataset
from .data.readers import open_reader
from .data.synthetic import build_synthetic, split_paths
from .directions.candidates import load_directions
from .directions.masks import direction_source
from .evaluation.evaluate import evaluate, listing, report
from .evaluation.metrics import METRICS, Scores
from .evaluation.sources import SegmenterMasks, SourceSubset
from .files import write_json
from .runs import run_config
from .errors import BadValue, UserError
from .evaluation.evaluate import open_source
from .segmenter.filters import default_filters
from .segmenter.model import build_segmenter, predict, save_segmenter
from .segmenter.pairs import PairStream, generator_source
from .segmenter.self_training import mixed_batches, pseudo_labels, real_share
from .segmenter.training import fit, repeat

VAL_SEED = 1_000_003  # the held-out pair stream; training streams use the run seeds


def score_pairs(model, pairs):
    """Scores summary of the model on generated pairs (their masks binarized at 0.5)."""
    scores = Scores()
    scores.update(predict(model, pairs.image)[:, 0], pairs.mask[:, 0] > 0.5)
    return scores.summary()


def pair_source(ckpt, directions, lighter, darker, mode, threshold, truncation, device, anchors=None,
                anchor_noise=0.2, placement=None):
    """(online pair source or None, the config of its generator's training run or None).

    directions: a directions file's masks (its generator, or ckpt instead; lighter, darker: its rows or 'none';
    mode: the brightness; anchors: inverted real images to sample around); else ckpt: a layered or Labels4Free
    run's composites and masks (placement: LayeredGeneratorPairs'); else None.
    """
    if directions and placement is not None:
        raise BadValue("--placement moves a layered or Labels4Free generator's layers; direction masks have none")
    if directions:
        source = direction_source(directions, ckpt, lighter, darker, mode, device, anchors, anchor_noise)
        return source, run_config(ckpt or load_directions(directions)["ckpt"])
    given = [f"--{name}" for name, value in (("lighter", lighter), ("darker", darker), ("brightness", mode),
                                             ("anchors", anchors)) if value]
    if given:
        raise BadValue(f"{', '.join(given)} go with --directions")
    return generator_source(ckpt, threshold, truncation, device, placement) if ckpt else (None, None)


def pairs_resolution(pairs_dir):
    """The side of the first image of an exported pairs folder."""
    try:
        return min(open_reader(os.path.join(pairs_dir, "images")).read(0).size)
    except UserError as exc:
        raise type(exc)(f"--pairs {pairs_dir}: {exc}") from None


def real_sources(cfg, real_images, real_masks):
    """(images, masks) sources with ground truth: given paths, or the synthetic held-out split of the generator's
    run (cfg, None when unknown); else None."""
    if real_images or real_masks:
        if not (real_images and real_masks):
            raise BadValue("--real-images and --real-masks go together")
    elif cfg is not None and cfg["data"]["source"] == "synthetic":
        real_images, real_masks = split_paths(build_synthetic(**cfg["data"]["synthetic"]), "test")
    else:
        return None
    images, masks = open_source(real_images, "--real-images"), open_source(real_masks, "--real-masks")
    unpaired = sorted(set(images.names) ^ set(masks.names))
    if unpaired:
        raise BadValue(f"--real-images, --real-masks: {len(unpaired)} names are in only one of {real_images} and "
                       f"{real_masks}: {listing(unpaired)}")
    return images, masks


def distill(batches, resolution, val_pairs, real, seed, steps=12000, lr=1e-3, milestones=None, gamma=0.2, width=32,
            depth=3, every=1000, real_check=200, device="cpu", progress=True, backbone="unet", classes=1,
            imagenet_size=None):
    """Train one segmenter from `batches` (image, mask); returns (model, figures).

    val_pairs: held-out generated Pairs or None; real: (images, masks) sources or None.
    """
    torch.manual_seed(seed)
    model = build_segmenter(resolution, width, depth, backbone, classes=classes, imagenet_size=imagenet_size).to(device)

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
    for metric in METRICS + ("max_fbeta", "f_max"):
        (m1, s1), pooled = stats["per_image"][metric], stats["all_pixels"].get(metric)
        lines.append(f"{metric:12s} {m1:8.4f} +- {s1:.4f} " + ("-" if pooled is None else
                                                               f"{pooled[0]:8.4f} +- {pooled[1]:.4f}"))
    return "\n".join(lines)


def seed_batches(seed, source, filters, batch, pairs_dir, resolution):
    """(batches, FilterChain or None) of one seed: the online source's filtered pairs, or an exported folder's."""
    if pairs_dir:
        ds = ImageDataset(os.path.join(pairs_dir, "images"), resolution, crop="center", hflip=True,
                          masks=os.path.join(pairs_dir, "masks"))
        loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, drop_last=True,
                                             generator=rng.generator(seed))
        return repeat(loader), None
    train_filters = default_filters(**filters)
    return PairStream(source, train_filters, batch, seed), train_filters


def distill_seeds(out, seeds, source, filters, val, val_filters, real, resolution, settings, every=1000,
                  real_check=200, device="cpu", echo=print, unlabelled=None):
    """One segmenter per seed (OUT/seed{S}/: segmenter.pt, figures.json, real/), then OUT/summary.json with the
    mean +- std over seeds; returns the summary. source: the online pair source (filtered with `filters`) unless
    settings["pairs"] names an exported folder; val: held-out generated pairs or None; real: (images, masks) or
    None; settings: the command's (batch, steps, lr, decay_at, gamma, width, depth, classes used here), recorded;
    settings["self_train"] rounds of self-training on `unlabelled` real images [N, 3, R, R] follow each
    distillation (self_training.py; each round a fresh segmenter, its predecessor's figures in figures.json)."""
    s, pairs_dir = settings, settings["pairs"]
    runs = {}
    for seed in seeds:
        def train(batches):
            return distill(batches, resolution, val, real, seed, s["steps"], s["lr"], s["decay_at"] or None,
                           s["gamma"], s["width"], s["depth"], every, real_check, device,
                           backbone=s.get("backbone", "unet"), classes=s.get("classes", 1),
                           imagenet_size=s.get("imagenet_size"))

        batches, train_filters = seed_batches(seed, source, filters, s["batch"], pairs_dir, resolution)
        model, figures = train(batches)
        earlier = []
        for r in range(1, s.get("self_train", 0) + 1):
            earlier.append({"round": r - 1, "generated_val": figures.get("generated_val"),
                            "real": figures["real"]["summary"] if real is not None else None})
            labels = pseudo_labels(model, unlabelled)
            generated, _ = seed_batches(seed + 1_000 * r, source, filters, s["batch"] - real_share(s["batch"]),
                                        pairs_dir, resolution)
            model, figures = train(mixed_batches(generated, unlabelled, labels, s["batch"], seed + 1_000 * r))
            figures["pseudo_label_coverage"] = labels.mean().item()
        if earlier:
            figures["earlier_rounds"] = earlier
        figures["filters"] = train_filters.report() if train_filters else "pairs read from " + pairs_dir
        real_summary = figures["real"]["summary"] if real is not None else None
        run_dir = os.path.join(out, f"seed{seed}")
        save_segmenter(model, os.path.join(run_dir, "segmenter.pt"), seed=seed, **settings,
                       generated_val=figures.get("generated_val"), real=real_summary)
        if real is not None:
            report(figures["real"], os.path.join(run_dir, "real"), SegmenterMasks(real[0], model), real[1], real[0],
                   echo=echo)
        write_json(os.path.join(run_dir, "figures.json"), {k: v for k, v in figures.items() if k != "real"})
        runs[seed] = {"generated_val": figures.get("generated_val"), "filters": figures["filters"],
                      "real": real_summary, **({"earlier_rounds": earlier} if earlier else {})}
    summary = {"settings": settings, "seeds": seeds,
               "validation_pairs": val_filters.report() if val_filters else None, "runs": runs}
    if val is not None:
        summary["generated_val"] = mean_std([r["generated_val"] for r in runs.values()])
        echo(format_mean_std("held-out generated pairs", summary["generated_val"]))
    if real is not None:
        summary["real"] = mean_std([r["real"] for r in runs.values()])
        if s.get("self_train"):
            summary["real_before_self_training"] = mean_std([r["earlier_rounds"][0]["real"] for r in runs.values()])
            echo(format_mean_std("before self-training, real held-out images", summary["real_before_self_training"]))
        echo(format_mean_std(f"real held-out images ({runs[seeds[0]]['real']['images']})", summary["real"]))
    write_json(os.path.join(out, "summary.json"), summary)
    echo(f"filters on the last run's pairs: {json.dumps(runs[seeds[-1]]['filters'])}")
    return summary
