"""`layered-gan`: every command of the toolkit, as subcommands of one installed entry point.

    layered-gan --help
    layered-gan train --cfg demo            # also: python train.py --cfg demo
    layered-gan encode --ckpt runs/demo ... # also: python encode.py ...

Each package's commands live in its own `cli.py` (this one: the root package's); the library modules hold
no click code. Errors follow `command.py`: a user's mistake is one line on stderr and exit code 2.
"""

import os
from dataclasses import fields

import click
import torch

from . import encoding
from .command import command, device_option, group
from .data.cli import synthetic
from .data.dataset import ImageDataset
from .directions.cli import anchor_options
from .directions.cli import cli as directions
from .directions.latent import BRIGHTNESS
from .convert import LAYOUTS, convert as convert_file
from .distill import VAL_SEED, distill_seeds, pair_source, pairs_resolution, real_sources
from .errors import BadValue, about
from .evaluation.baselines import METHODS
from .evaluation.cli import baselines, benchmarks, evaluate, fid, gt_mask_options, score_generated
from .evaluation.evaluate import open_source
from .files import partial_folder, write_json
from .evaluation.sources import SourceSubset
from .generate import named_images, parse_seeds, save_samples
from .labels4free import (SAMPLE_PARTS, load_l4f_run, project_masks, save_bg_gradients, save_trgb_ssim,
                          write_samples)
from .labels4free_analysis import crop_targets, layer_gradient_norms, rank_layers, suggest_start, trgb_noise_sensitivity
from .runs import load_run, load_stylegan2
from .sampling import generate_layers, layered_noise
from .prepare import prepare as prepare_lmdb
from .segmenter.cli import filter_options, pairs, segment
from .segmenter.filters import FilterChain, default_filters
from .segmenter.pairs import LayeredGeneratorPairs, PairStream, export_pairs, fixed_pairs
from .training.cli import train

# ----------------------------------------------------------------------------------------------------------------
# generate


@command("generate")
@click.option("--ckpt", required=True, help="Run folder or checkpoint file.")
@click.option("--seeds", default="0-15", show_default=True, help="Seeds, e.g. 0-7,12.")
@click.option("--truncation", default=1.0, show_default=True, help="Truncation psi around the average w.")
@click.option("--out", required=True, help="Output folder.")
@click.option("--grid/--singles", default=True, show_default=True,
              help="One layered grid (rows: background, foreground, mask, composite; a plain generator: one row "
                   "of images) or one PNG per layer and seed.")
@device_option
def generate(ckpt, seeds, truncation, out, grid, device):
    """Generate samples from a checkpoint: layers and composites, or a plain generator's images."""
    seeds = parse_seeds(seeds)
    with about("--ckpt"):
        G = load_run(ckpt, device=device).G
    save_samples(named_images(generate_layers(G, seeds, truncation, device)), seeds, out, grid)
    print(f"{len(seeds)} samples written to {out}")


# ----------------------------------------------------------------------------------------------------------------
# encode (also `python encode.py`)


def option_group(cls, options, prefix=""):
    """An option group dataclass built from (and taking out of) a command's keyword options."""
    return cls(**{f.name: options.pop(prefix + f.name) for f in fields(cls)})


_ENC = encoding.Options()  # the defaults, kept in encoding.py's option groups


@command("encode")
@click.option("--ckpt", required=True, help="PerturbGAN run folder or checkpoint (EMA generator and D).")
@click.option("--images", default=None, help="Images: a folder (any sizes, sub-folders kept) or an LMDB.")
@click.option("--out", required=True, help="Output folder (rerun with the same options to resume).")
@click.option("--gt", default=None, help="Ground-truth masks with the images' names: evaluation + baselines.")
@click.option("--synthetic-test", type=click.IntRange(min=1), default=None,
              help="Instead of --images/--gt: the first N held-out images of the run's synthetic dataset.")
@click.option("--max-images", type=click.IntRange(min=1), default=None, help="Only the first N images (by name).")
@click.option("--chunk", default=_ENC.training.chunk, show_default=True, type=click.IntRange(min=1),
              help="Images per encoder (the paper's 100).")
@click.option("--steps", default=_ENC.training.steps, show_default=True, help="Adam steps per encoder.")
@click.option("--lr", default=_ENC.training.lr, show_default=True)
@click.option("--batch", default=_ENC.training.batch, show_default=True, type=click.IntRange(min=2),
              help="Minibatch drawn (with replacement) from the chunk each step.")
@click.option("--l1-weight", default=_ENC.loss.l1_weight, show_default=True)
@click.option("--feature-weight", default=_ENC.loss.feature_weight, show_default=True,
              help="Weight of the squared distance of D's features (0: no discriminator needed).")
@click.option("--feature-size", default=_ENC.loss.feature_size, show_default=True,
              help="D feature map used (its 8x8 one).")
@click.option("--offsets/--absolute", default=_ENC.training.offsets, show_default=True,
              help="Predict W+ offsets around the average w, or the codes themselves (the paper).")
@click.option("--width", default=_ENC.training.width, show_default=True, help="Encoder width (ResNet-18: 64).")
@click.option("--amortized", is_flag=True, help="One encoder on all images (saved as OUT/encoder.pt), then apply it.")
@click.option("--encoder", "encoder_path", default=None, help="Apply a saved encoder.pt without training.")
@click.option("--refine-steps", default=_ENC.refinement.steps, show_default=True,
              help="Projection steps from the encoder's codes.")
@click.option("--refine-lr", default=_ENC.refinement.lr, show_default=True)
@click.option("--refine-feature-weight", default=_ENC.refinement.feature_weight, show_default=True,
              help="Projection's D-feature L1 weight.")
@click.option("--org-to-crop", default=_ENC.output.org_to_crop, show_default=True,
              help="Squash to a square of this x the resolution, then centre crop (1.125: the training crops).")
@click.option("--threshold", default=_ENC.output.threshold, show_default=True,
              help="Binary masks: soft mask > threshold.")
@click.option("--baseline", "methods", multiple=True, type=click.Choice(METHODS), default=_ENC.output.methods,
              show_default=True, help="Baselines scored with --gt.")
@click.option("--sheet", default=_ENC.output.sheet, show_default=True, help="Images in the contact sheet.")
@click.option("--seed", default=_ENC.training.seed, show_default=True)
@gt_mask_options
@device_option
def encode(ckpt, images, out, gt, synthetic_test, max_images, amortized, encoder_path, gt_encoding, fg_values, device,
           **options):
    """Segment images by encoding them into a PerturbGAN run's layered generator (PerturbGAN sec. 3.3)."""
    if bool(synthetic_test) == bool(images) or (synthetic_test and gt):
        raise click.UsageError("give --images (and optionally --gt) or --synthetic-test N")
    if amortized and encoder_path:
        raise click.UsageError("--amortized trains an encoder, --encoder applies one: give one of them")
    settings = encoding.Options(option_group(encoding.Training, options), option_group(encoding.Loss, options),
                                option_group(encoding.Refinement, options, "refine_"),
                                option_group(encoding.Output, options))
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if device == "cuda" and world > 1:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    with about("--ckpt"):
        synthesis, D, cfg = encoding.load_layered_run(
            ckpt, device, bool(settings.loss.feature_weight or settings.refinement.feature_weight))
    if synthetic_test:
        sources = real_sources(cfg, None, None)  # the run's synthetic held-out split, images and masks paired
        if sources is None:
            raise BadValue(f"--synthetic-test: {ckpt} was not trained on the synthetic dataset; give --images and "
                           "--gt")
        source, gt_source, max_images = *sources, synthetic_test
    else:
        source = open_source(images, "--images")
        gt_source = open_source(gt, "--gt", encoding=gt_encoding, fg_values=fg_values) if gt else None
    if max_images:
        source = SourceSubset(source, source.names[:max_images])
    encoding.run(synthesis, D, source, out, gt_source, settings, amortized=amortized, encoder_path=encoder_path,
                 ckpt=ckpt, rank=rank, world=world, echo=click.echo)


# ----------------------------------------------------------------------------------------------------------------
# distill


@command("distill")
@click.option("--ckpt", default=None, help="Run folder or checkpoint of a layered or Labels4Free generator (the pair "
                                           "source); with --directions, a generator replacing the file's.")
@click.option("--directions", default=None, help="directions.pt of `layered-gan directions find`: direction masks as "
                                                 "the pair source.")
@click.option("--lighter", default=None, help="With --directions: the row lighting the object, or 'none' for G(z) "
                                              "(default: the file's).")
@click.option("--darker", default=None, help="With --directions: the row darkening the object, or 'none'.")
@click.option("--brightness", "mode", default=None, type=click.Choice(BRIGHTNESS),
              help="With --directions: the mask's brightness (default: the file's).")
@anchor_options
@click.option("--out", required=True, help="Folder: seed{S}/segmenter.pt, seed{S}/real/, summary.json.")
@click.option("--seeds", default="0", show_default=True, help="Seeds, e.g. 0-2: one segmenter each, mean +- std.")
@click.option("--steps", default=12000, show_default=True, type=click.IntRange(min=1))
@click.option("--batch", default=95, show_default=True, type=click.IntRange(min=1))
@click.option("--lr", default=1e-3, show_default=True)
@click.option("--decay-at", "decay_at", multiple=True, type=int, help="Steps where lr x gamma (default 2/3 of steps).")
@click.option("--gamma", default=0.2, show_default=True)
@click.option("--width", default=32, show_default=True, help="U-Net base width.")
@click.option("--depth", default=3, show_default=True, help="U-Net down-samplings.")
@click.option("--pairs", "pairs_dir", default=None, help="Train on an exported pairs folder instead of online pairs "
                                                         "(--ckpt or --directions then only give validation pairs).")
@click.option("--val-pairs", default=1000, show_default=True, help="Held-out generated pairs for validation.")
@click.option("--every", default=1000, show_default=True, help="Validate every N steps.")
@click.option("--real-images", default=None, help="Real images with ground truth (default: the synthetic held-out "
                                                  "split when the generator trained on synthetic data).")
@click.option("--real-masks", default=None, help="Their ground-truth masks (same names).")
@click.option("--real-check", default=200, show_default=True, help="Real images scored at each validation.")
@filter_options
@device_option
def distill(ckpt, directions, lighter, darker, mode, anchors, anchor_noise, out, seeds, steps, batch, lr, decay_at,
            gamma, width, depth, pairs_dir, val_pairs, every, real_images, real_masks, real_check, max_coverage,
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
                    decay_at=list(decay_at), gamma=gamma, width=width, depth=depth,
                    pairs=pairs_dir, threshold=threshold, truncation=truncation, **filters)
    distill_seeds(out, seeds, source, filters, val, val_filters, real, resolution, settings, every, real_check, device,
                  click.echo)
    click.echo(f"wrote {os.path.join(out, 'summary.json')}")


# ----------------------------------------------------------------------------------------------------------------
# prepare


@command("prepare")
@click.argument("src")
@click.argument("out")
@click.option("--size", "sizes", type=click.IntRange(min=1), multiple=True, required=True,
              help="Training resolution (repeatable).")
@click.option("--org-to-crop", default=1.0, show_default=True,
              help="Store round(x * size) for random crops (PerturbGAN: 1.125).")
@click.option("--crop", type=click.Choice(["squash", "center"]), default="squash", show_default=True,
              help="squash: resize to a square (PerturbGAN); center: shorter side, centre crop (StyleGAN2 port).")
@click.option("--quality", default=95, show_default=True, type=click.IntRange(1, 100), help="JPEG quality.")
@click.option("--workers", default=os.cpu_count() or 1, show_default=True, type=click.IntRange(min=1))
@click.option("--max-images", type=click.IntRange(min=1), default=None,
              help="Only the first N images (the papers use 100 000).")
def prepare(src, out, sizes, org_to_crop, crop, quality, workers, max_images):
    """Prepare SRC (raw LSUN LMDB, prepared LMDB or image folder) as a multi-resolution LMDB at OUT."""
    written, skipped = prepare_lmdb(src, out, sizes, org_to_crop, crop, quality, workers, max_images)
    print(f"wrote {written} images to {out}" + (f"; skipped {skipped} undecodable entries" if skipped else ""))


# ----------------------------------------------------------------------------------------------------------------
# labels4free


@group("labels4free")
def labels4free():
    """Labels4Free tools: sample, project, trgb-ssim, bg-gradients."""


@labels4free.command()
@click.option("--ckpt", required=True, help="Labels4Free run folder or checkpoint.")
@click.option("--num", required=True, type=click.IntRange(min=1), help="Samples to write.")
@click.option("--out", required=True, help="New folder.")
@click.option("--threshold", default=0.9, show_default=True, help="Masks are alpha > threshold (the paper's 0.9).")
@click.option("--truncation", default=1.0, show_default=True, help="Truncation psi of the foreground generator.")
@click.option("--seed", default=0, show_default=True)
@click.option("--batch", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--lmdb", is_flag=True, help="Write OUT/images and OUT/masks LMDBs of (image, mask) pairs instead.")
@device_option
def sample(ckpt, num, out, threshold, truncation, seed, batch, lmdb, device):
    """Write aligned (image, foreground, background, alpha, mask) samples as PNGs, or (image, mask) LMDBs."""
    G, _ = load_l4f_run(ckpt, device)
    with about("--out"):
        partial = partial_folder(out)  # export_pairs writes to the same OUT.partial
    if lmdb:  # unfiltered; `layered-gan pairs` exports filtered pairs of the same source
        export_pairs(PairStream(LayeredGeneratorPairs(G, truncation, threshold, device), FilterChain([]), batch,
                                seed), num, out)
    else:
        write_samples(G, num, partial, threshold, truncation, seed, batch, device)
        write_json(os.path.join(partial, "manifest.json"),
                   {"ckpt": ckpt, "samples": num, "threshold": threshold, "truncation": truncation, "seed": seed,
                    "batch": batch, "parts": SAMPLE_PARTS})
        os.replace(partial, out)
    click.echo(f"{num} samples in {out}")


@labels4free.command()
@click.option("--ckpt", required=True, help="Labels4Free run folder or checkpoint.")
@click.option("--images", required=True, help="Folder (or LMDB) of real images; centre-cropped to the resolution.")
@click.option("--out", required=True, help="New folder: masks/, alphas/, reconstructions/, latents.pt, losses.json.")
@click.option("--steps", default=500, show_default=True, type=click.IntRange(min=1), help="Adam steps per image.")
@click.option("--lr", default=0.05, show_default=True)
@click.option("--feature-weight", default=0.0, show_default=True,
              help="Weight of the L1 distance of discriminator features (the run's model.ckpt must hold a D).")
@click.option("--w-plus/--w", "plus", default=True, show_default=True, help="Optimize in W+ or in W.")
@click.option("--threshold", default=0.9, show_default=True, help="Masks are alpha > threshold.")
@click.option("--batch", default=8, show_default=True, type=click.IntRange(min=1),
              help="Images projected together (independently).")
@device_option
def project(ckpt, images, out, steps, lr, feature_weight, plus, threshold, batch, device):
    """Masks of real images: project each into W+ (L1 + optional D features, Adam from w_avg), apply the alpha
    network (Labels4Free sec. 4)."""
    G, cfg = load_l4f_run(ckpt, device)
    D = None
    if feature_weight:
        with about("--feature-weight needs the discriminator of the run's model.ckpt"):
            _, D = load_stylegan2(cfg["model"]["ckpt"], discriminator=True)
        D = D.to(device)
    with about("--images"):
        ds = ImageDataset(images, G.generator.synthesis.resolution, crop="center", org_to_crop=1.0)
    with about("--out"):
        partial = partial_folder(out)
    losses = project_masks(G, D, ds, partial, steps, lr, feature_weight, plus, threshold, batch, device)
    os.replace(partial, out)
    mean = sum(v["last"] for v in losses.values()) / len(losses)
    click.echo(f"{len(losses)} masks in {os.path.join(out, 'masks')}; mean final loss {mean:.4f}")


def analysis_generator(ckpt, device):
    """The pretrained StyleGAN2 generator the analyses read."""
    with about("--ckpt"):
        return load_stylegan2(ckpt).to(device)


@labels4free.command("trgb-ssim")
@click.option("--ckpt", required=True, help="StyleGAN2-port checkpoint or stylegan2_* run.")
@click.option("--out", required=True, help="Folder for trgb_ssim.png and trgb_ssim.json.")
@click.option("--num", default=64, show_default=True, type=click.IntRange(min=1), help="Sampled images.")
@click.option("--batch", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--truncation", default=1.0, show_default=True)
@click.option("--min-drop", default=0.2, show_default=True,
              help="Suggest the first resolution whose mean SSIM is this much (relative) below the previous one's.")
@click.option("--seed", default=0, show_default=True)
@device_option
def trgb_ssim(ckpt, out, num, batch, truncation, min_drop, seed, device):
    """tRGB noise sensitivity per resolution by SSIM; suggests the alpha network's start (sec. 3.1)."""
    G = analysis_generator(ckpt, device)
    scores = trgb_noise_sensitivity(G, num, batch, truncation, seed, device)
    means = {r: float(s.mean()) for r, s in scores.items()}
    start, drops = suggest_start(means, min_drop)
    click.echo(f"{'layer':>5s} {'res':>5s} {'SSIM mean':>10s} {'std':>7s} {'drop':>7s}")
    for k, r in enumerate(scores, 1):
        drop = f"{drops[r]:7.1%}" if r in drops else f"{'':7s}"
        click.echo(f"{k:5d} {r:5d} {means[r]:10.4f} {float(scores[r].std()):7.4f} {drop}"
                   + ("  <- start" if r == start else ""))
    click.echo(f"suggested alpha start: {start} px (--set labels4free.alpha_start_resolution={start})")
    save_trgb_ssim(out, means, drops, start, num)


def parse_box(text):
    """'x0,y0,x1,y1' -> four floats."""
    try:
        box = [float(v) for v in text.split(",")]
    except ValueError:
        raise BadValue(f"--box: expected four fractions x0,y0,x1,y1, got {text!r}") from None
    if len(box) != 4:
        raise BadValue(f"--box: expected four fractions x0,y0,x1,y1, got {len(box)}")
    return box


@labels4free.command("bg-gradients")
@click.option("--ckpt", required=True, help="StyleGAN2-port checkpoint or stylegan2_* run.")
@click.option("--out", required=True, help="Folder for bg_gradients.png, bg_gradients_channels.png, .json.")
@click.option("--num", default=16, show_default=True, type=click.IntRange(min=1),
              help="Sampled images (and targets).")
@click.option("--box", default="0,0,0.25,0.25", show_default=True,
              help="Background crop of each sample, x0,y0,x1,y1 as fractions of the side (without --crops).")
@click.option("--crops", default=None, help="Folder of background crops to use instead (paired with samples).")
@click.option("--truncation", default=1.0, show_default=True)
@click.option("--channel-fraction", default=0.5, show_default=True,
              help="Suggest zeroing the top layer's channels with at least this x its largest norm.")
@click.option("--seed", default=0, show_default=True)
@device_option
def bg_gradients(ckpt, out, num, box, crops, truncation, channel_fraction, seed, device):
    """Rank synthesis layers by the gradients of reconstructing background crops (sec. 3.2)."""
    box = None if crops else parse_box(box)
    G = analysis_generator(ckpt, device)
    gen = torch.Generator().manual_seed(seed)
    ws = G.styles(torch.randn(num, G.z_dim, generator=gen).to(device), truncation=truncation)
    noise = layered_noise(G, num, device, gen)
    if crops:
        with about("--crops"):
            ds = ImageDataset(crops, G.synthesis.resolution, crop="center", org_to_crop=1.0)
        targets = torch.stack([ds[i % len(ds)] for i in range(num)]).to(device)
    else:
        with torch.no_grad():
            targets = crop_targets(G.synthesis(ws, noise=noise), box)
    norms = layer_gradient_norms(G, ws, targets, noise)
    ranking, channels = rank_layers(norms, channel_fraction)
    click.echo(f"{'rank':>4s} {'layer':>10s} {'sum of channel norms':>21s} {'max channel':>12s}")
    for k, (name, total) in enumerate(ranking, 1):
        click.echo(f"{k:4d} {name:>10s} {total:21.4g} {float(norms[name].max()):12.4g}")
    top = ranking[0][0]
    zero = {"const": "const", "4/conv": "conv"}.get(top)
    click.echo(f"top layer: {top}" + (f" (--set labels4free.zero={zero})" if zero else
                                      " (the background generator zeroes only const or 4/conv)"))
    click.echo(f"its channels at >= {channel_fraction:g} x the largest norm: {channels}"
               + (f" (--set 'labels4free.zero_channels={channels}')" if zero else ""))
    save_bg_gradients(out, norms, ranking, channels, num)


# ----------------------------------------------------------------------------------------------------------------
# layered-gan


@group(context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """Unsupervised object segmentation with layered GANs (PerturbGAN, Labels4Free, latent directions)."""


# ----------------------------------------------------------------------------------------------------------------
# convert


@command("convert")
@click.argument("src", type=click.Path(exists=True))
@click.argument("out", type=click.Path())
@click.option("--layout", type=click.Choice(LAYOUTS), default="port", show_default=True,
              help="port: the StyleGAN2 port's torch.save dict (g_ema, latent_avg, d); ours: a stylegan2-mode "
                   "checkpoint (config, G_ema, D) for model.init / model.ckpt.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
def convert(src, out, layout, overwrite):
    """Convert SRC (an NVIDIA TensorFlow or stylegan2-ada-pytorch .pkl, a StyleGAN2-port .pt, or a run of ours)
    to OUT. Pickles are read without TensorFlow and without running any code they carry."""
    convert_file(src, out, layout, overwrite)
    click.echo(f"wrote {out} ({layout} layout)")


COMMANDS = {
    "train": train, "generate": generate, "encode": encode, "evaluate": evaluate,
    "score-generated": score_generated, "baselines": baselines, "benchmarks": benchmarks, "segment": segment,
    "distill": distill, "pairs": pairs, "prepare": prepare, "synthetic": synthetic, "directions": directions,
    "labels4free": labels4free, "fid": fid, "convert": convert,
}
for _name, _command in COMMANDS.items():
    main.add_command(_command, _name)
