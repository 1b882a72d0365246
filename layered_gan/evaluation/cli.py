"""The evaluation commands: `layered-gan evaluate`, `score-generated`, `baselines`, `benchmarks` and `fid`."""

import json
import os

import click
import torch

from ..command import command, device_option
from ..data.dataset import ImageDataset, centre_crops
from ..data.synthetic import build_synthetic, split_paths
from ..runs import load_run
from ..errors import BadValue, about
from .baselines import METHODS, baseline
from .benchmarks import DATASETS, SIZE, BenchmarkSource, benchmark_items, export
from .evaluate import MISSING, comparison_table, evaluate as score, listing, open_source, report
from .fid import ENV, FIDScorer, run_features
from ..files import write_json
from .generated import score_generated as score_generated_masks
from .generated import REFERENCE_OUTPUTS, load_reference, synthetic_settings, train_reference
from .sources import ENCODINGS, MaskFunction
from ..segmenter.model import BACKBONES


def _fg_values(ctx, param, text):
    if text is None:
        return None
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers such as 1 or 1,2,15; got {text!r}") from None


def gt_mask_options(fn):
    """--gt-encoding and --fg-values: how ground-truth mask files are read (sources.mask_array)."""
    fn = click.option("--fg-values", default=None, callback=_fg_values,
                      help="Ground-truth label values that are foreground (palette or label images), e.g. 15 "
                           "or 1,2; default for palette images: every value but 0 and 255.")(fn)
    return click.option("--gt-encoding", type=click.Choice(ENCODINGS), default="auto", show_default=True,
                        help="Ground-truth masks: 255 (0/255 or grey), 01 (0/1), labels (palette or label "
                             "images, see --fg-values), auto (told apart; a mask that fits none is refused).")(fn)


@command("evaluate")
@click.option("--pred", required=True, help="Predicted masks: folder or LMDB (grey levels, 255 = foreground).")
@click.option("--gt", required=True, help="Ground-truth masks: folder or LMDB with the same names.")
@click.option("--images", default=None, help="The images (same names), shown in the cases picture.")
@click.option("--out", required=True, help="Folder for metrics.json and cases.png.")
@click.option("--threshold", default=0.5, show_default=True, help="Binarization threshold for predictions.")
@click.option("--missing", type=click.Choice(MISSING), default="error", show_default=True,
              help="Ground truth without prediction: an error, or scored as an empty prediction.")
@click.option("--cases", default=4, show_default=True, type=click.IntRange(min=0), help="Best and worst cases shown.")
@gt_mask_options
def evaluate(pred, gt, images, out, threshold, missing, cases, gt_encoding, fg_values):
    """Score predicted masks against ground-truth masks."""
    pred_src = open_source(pred, "--pred", soft=True)
    gt_src = open_source(gt, "--gt", encoding=gt_encoding, fg_values=fg_values)
    image_src = open_source(images, "--images") if images else None
    result = score(pred_src, gt_src, threshold, missing)
    result.update(pred=pred, gt=gt, images=images)
    report(result, out, pred_src, gt_src, image_src, cases, echo=click.echo)


@command("score-generated")
@click.option("--ckpt", required=True, help="Run folder or checkpoint of a layered or Labels4Free generator.")
@click.option("--num", default=2000, show_default=True, type=click.IntRange(min=1),
              help="Generated composites to score.")
@click.option("--threshold", default=0.5, show_default=True,
              help="Binarize generated masks at this value (Labels4Free's Table 2 protocol: 0.9).")
@click.option("--truncation", default=1.0, show_default=True, help="Truncation psi of the generator.")
@click.option("--steps", default=1200, show_default=True, type=click.IntRange(min=1),
              help="Training steps of the reference U-Net.")
@click.option("--reference", default=None,
              help="Reference segmenter: a TorchScript file or a Python callable as module:name or file.py:name "
                   "(images [B, 3, H, W] in [-1, 1] in; see --reference-output). Default: a U-Net trained on the "
                   "synthetic dataset's ground truth (runs on it only).")
@click.option("--reference-output", default="probability", show_default=True, type=click.Choice(REFERENCE_OUTPUTS),
              help="What --reference returns: object probability [B, 1, H, W] or instance masks [B, K, H, W].")
@click.option("--reference-size", default=None, type=click.IntRange(min=8),
              help="Resolution the composites are segmented at with --reference (default: the generator's; "
                   "PerturbGAN up-samples 64 -> 128).")
@click.option("--reject-multi/--keep-multi", default=True, show_default=True,
              help="Skip composites where the reference finds several instances (Labels4Free Table 2).")
@click.option("--reference-backbone", default="unet", show_default=True, type=click.Choice(BACKBONES),
              help="The default reference U-Net's encoder: from scratch, or the ImageNet EfficientNet-Lite0 "
                   "fine-tuned (ImageNet supervision the papers did not use).")
@click.option("--out", default=None, help="JSON file for the figures (default: RUN/generated_eval.json).")
@device_option
def score_generated(ckpt, num, threshold, truncation, steps, reference, reference_output, reference_size, reject_multi,
                    reference_backbone, out, device):
    """Score a generator's masks against a reference segmenter (yours, or on the synthetic dataset a U-Net)."""
    with about("--ckpt"):
        run = load_run(ckpt, device=device)
        G, cfg = run.G, run.config
        synthetic = None if reference else synthetic_settings(cfg, ckpt)
    if reference:
        with about("--reference"):
            size = reference_size or G(torch.zeros(1, G.z_dim, device=device)).mask.shape[-1]
            ref, extra = load_reference(reference, size, reference_output, device), {"reference": reference}
    else:
        ref, ref_iou = train_reference(synthetic, steps=steps, device=device, backbone=reference_backbone)
        extra = {"reference_test_iou": ref_iou, "reference_backbone": reference_backbone}
        if ref_iou < 0.9:
            click.echo(f"warning: the reference reaches only {ref_iou:.3f} IoU on held-out images (target 0.9)",
                       err=True)
    figures = {**extra, "truncation": truncation,
               **score_generated_masks(G, ref, num, device=device, threshold=threshold, truncation=truncation,
                                       reject_multi=reject_multi)}
    click.echo(json.dumps(figures, indent=2))
    write_json(out or os.path.join(ckpt if os.path.isdir(ckpt) else os.path.dirname(ckpt), "generated_eval.json"),
               figures)


@command("baselines")
@click.option("--synthetic", is_flag=True,
              help="Use the built-in synthetic dataset's held-out split (the demo config's: 64 px, seed 0).")
@click.option("--images", default=None, help="Images (folder or LMDB), when not --synthetic.")
@click.option("--gt", default=None, help="Ground-truth masks with the images' names, when not --synthetic.")
@click.option("--out", required=True, help="Folder: METHOD/metrics.json, METHOD/cases.png, baselines.json.")
@click.option("--method", "methods", multiple=True, type=click.Choice(METHODS),
              default=("full", "centre", "grabcut"), show_default=True)
@click.option("--coverage", default=0.25, show_default=True, type=click.FloatRange(0, 1, min_open=True),
              help="Centre prior: share of the image covered.")
@click.option("--margin", default=4, show_default=True, type=click.IntRange(min=0),
              help="GrabCut: rectangle inset from the border (pixels).")
def baselines(synthetic, images, gt, out, methods, coverage, margin):
    """Score label-free baselines (full mask, centre prior, k-means, GrabCut) against ground truth."""
    if synthetic == bool(images and gt) or (images is None) != (gt is None):
        raise click.UsageError("give either --synthetic or both --images and --gt")
    if synthetic:
        images, gt = split_paths(build_synthetic(), "test")
    image_src, gt_src = open_source(images, "--images"), open_source(gt, "--gt")
    missing = sorted(set(gt_src.names) - set(image_src.names))
    if missing:
        raise BadValue(f"--gt: {len(missing)} ground-truth masks have no image: {listing(missing)}")
    summaries = {}
    for method in methods:
        try:
            pred = MaskFunction(image_src, baseline(method, coverage, margin))
        except ImportError as exc:
            raise BadValue(f"--method {method}: {exc}") from None
        click.echo(f"\n== {method}")
        result = score(pred, gt_src)
        result.update(method=method, images=images, gt=gt)
        report(result, os.path.join(out, method), pred, gt_src, image_src, echo=click.echo)
        summaries[method] = result["summary"]
    write_json(os.path.join(out, "baselines.json"), {"images": images, "gt": gt, "coverage": coverage,
                                                     "margin": margin, "summaries": summaries})
    comparison_table(summaries, click.echo)


@command("benchmarks")
@click.option("--dataset", required=True, type=click.Choice(DATASETS))
@click.option("--root", required=True, help="The dataset's folder, as unpacked.")
@click.option("--split", default=None, help="CUB / Flowers: train, val or test (default test).")
@click.option("--split-file", default=None, help="CUB: the split file (default ROOT/train_val_test_split.txt).")
@click.option("--size", default=SIZE, show_default=True, type=click.IntRange(min=1),
              help="Side after the centre crop.")
@click.option("--out", required=True, help="Folder for images/ and masks/.")
def benchmarks(dataset, root, split, split_file, size, out):
    """Export a benchmark, centre-cropped and resized, as images/ and masks/ PNG folders."""
    source = BenchmarkSource(benchmark_items(dataset, root, split, split_file), size)
    click.echo(f"{export(source, out)} {dataset} images and masks in {out}")


@command("fid")
@click.option("--ckpt", required=True,
              help="Run folder or checkpoint of a layered, Labels4Free or plain StyleGAN2 run, or a port file.")
@click.option("--real", default=None, help="Real images (folder or LMDB); default: the run's training data.")
@click.option("--num", default=10000, show_default=True, type=click.IntRange(min=2),
              help="Images of each kind (the papers use 10 000).")
@click.option("--inception", default=None, help=f"inception-2015-12-05.pt (TorchScript); default ${ENV}.")
@click.option("--features", "feature_net", default="inception", show_default=True,
              type=click.Choice(["inception", "reference"]),
              help="Inception, or the reference U-Net's encoder (runs on the synthetic dataset; no download).")
@click.option("--batch", default=100, show_default=True, type=click.IntRange(min=1))
@click.option("--out", default=None, help="JSON file for the figures.")
@device_option
def fid(ckpt, real, num, inception, feature_net, batch, out, device):
    """FID and KID between a generator's images (a layered one's composites) and real images."""
    with about("--ckpt"):
        run = load_run(ckpt, device=device)
        G, cfg = run.G, run.config
    features = run_features(cfg, feature_net, device, inception, ckpt)
    if cfg is None and not real:
        raise click.UsageError(f"{ckpt} carries no training config: give the real images with --real")
    res = cfg["model"]["resolution"] if cfg else G.synthesis.resolution  # a port file: a plain generator
    with about("--real" if real else "the run's data.source"):
        data = ImageDataset(real, res, crop="center") if real else \
            centre_crops(cfg["data"], res)
    scores = FIDScorer(features, data, num, batch, device)(G)
    figures = {"num": num, "real": real or "the run's training data", "ckpt": ckpt, "features": feature_net,
               **scores}
    click.echo(f"FID {figures['fid']:.3f}  KID {figures['kid']:.5f}  ({num} images each, {feature_net} features)")
    if out:
        write_json(out, figures)
