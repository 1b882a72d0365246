"""`layered-gan`: every command of the toolkit, as subcommands of one installed entry point.

    layered-gan --help
    layered-gan demo                        # the README's first command: train, draw and score the demo
    layered-gan train --cfg demo            # also: python train.py --cfg demo
    layered-gan encode --ckpt runs/demo ... # also: python encode.py ...

Each package's commands live in its own `cli.py` (this one: the root package's); the library modules hold
no click code. Errors follow `command.py`: a user's mistake is one line on stderr and exit code 2.
"""

import os
import time
from dataclasses import fields

import click

from cuda_ops._build import build_all, cache_root, cannot_build, cuda_arch_flags, describe_archs, find_cuda_home

from . import encoding
from .command import command, device_option, group
from .data.cli import synthetic
from .directions.cli import anchor_options
from .directions.cli import cli as directions
from .convert import LAYOUTS
from .convert import convert as convert_file
from .devices import place
from .directions.latent import BRIGHTNESS
from .distill import VAL_SEED, distill_seeds, pair_source, pairs_resolution, real_sources
from .errors import BadValue, UserError, about
from .evaluation.baselines import METHODS
from .evaluation.cli import baselines, benchmarks, evaluate, fid, gt_mask_options, score_generated
from .evaluation.evaluate import open_source
from .evaluation.sources import SourceSubset
from .data.dataset import ImageDataset, centre_crops
from .generate import named_images, parse_seeds, save_samples
from .networks.encoder import ENCODER_BACKBONES
from .labels4free.cli import labels4free
from .prepare import prepare as prepare_lmdb
from .runs import load_run
from .sampling import generate_layers
from .segmenter.cli import filter_options, pairs, segment
from .segmenter.filters import default_filters
from .segmenter.model import BACKBONES, UNET_PRESETS
from .segmenter.pairs import fixed_pairs
from .segmenter.self_training import load_images
from .training.cli import train
from .training.demo import format_summary, run_demo

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
@click.option("--perceptual-weight", default=_ENC.loss.perceptual_weight, show_default=True,
              help="Weight of an LPIPS-like distance on the ImageNet EfficientNet-Lite0's features (supervision the "
                   "papers did not use; 0: off).")
@click.option("--reduction", default=_ENC.loss.reduction, show_default=True, type=click.Choice(["mean", "sum"]),
              help="Eq. 7's terms as per-element means, or sums: the paper's L1 and squared L2 norms.")
@click.option("--size-weight", default=_ENC.loss.size_weight, show_default=True, type=click.FloatRange(min=0),
              help="Weight of PerturbGAN's mask size hinge on the encoded masks, max(0, eta - mean mask) (not in "
                   "eq. 7; keeps the encoder from reconstructing through the background alone).")
@click.option("--eta", default=_ENC.loss.eta, show_default=True, type=click.FloatRange(0, 1),
              help="The size hinge's minimum mask coverage (the demo's generator trained with 0.15).")
@click.option("--offsets/--absolute", default=_ENC.training.offsets, show_default=True,
              help="Predict W+ offsets around the average w, or the codes themselves (the paper).")
@click.option("--width", default=_ENC.training.width, show_default=True, help="Encoder width (ResNet-18: 64).")
@click.option("--backbone", default=_ENC.training.backbone, show_default=True,
              type=click.Choice(ENCODER_BACKBONES), help="resnet18: from scratch (the paper); efficientnet: the ImageNet "
              "EfficientNet-Lite0, fine-tuned (supervision the paper did not use).")
@click.option("--backbone-lr", default=_ENC.training.backbone_lr, show_default=True, type=click.FloatRange(min=0),
              help="With --backbone efficientnet: the pretrained layers' lr as a multiple of --lr (the head: --lr).")
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
    if options["backbone_lr"] != 1.0 and options["backbone"] != "efficientnet":
        raise click.UsageError("--backbone-lr scales a pretrained backbone's lr: it goes with --backbone efficientnet")
    settings = encoding.Options(option_group(encoding.Training, options), option_group(encoding.Loss, options),
                                option_group(encoding.Refinement, options, "refine_"),
                                option_group(encoding.Output, options))
    placement = place(device)  # under torchrun: each process its own GPU, its share of the images
    device, rank, world = placement.device, placement.rank, placement.world
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
@click.option("--unet", default="cpu", show_default=True, type=click.Choice(sorted(UNET_PRESETS)),
              help="U-Net size: cpu (width 32, 3 down-samplings, one logit) or paper (width 64, 4, 2-class "
                   "cross-entropy, as Voynov et al. and Melas-Kyriazi et al.).")
@click.option("--width", default=None, type=click.IntRange(min=1), help="U-Net base width (default: --unet's).")
@click.option("--depth", default=None, type=click.IntRange(min=1), help="U-Net down-samplings (default: --unet's).")
@click.option("--backbone", default="unet", show_default=True, type=click.Choice(BACKBONES),
              help="unet: from scratch (the papers' setting); efficientnet: the ImageNet EfficientNet-Lite0 as "
                   "the encoder, fine-tuned (ImageNet supervision the papers did not use).")
@click.option("--imagenet-size", default=None, type=click.IntRange(min=32),
              help="With --backbone efficientnet: up-sample images to this side before the ImageNet encoder "
                   "(default: the segmenter's resolution).")
@click.option("--self-train", default=0, show_default=True, type=click.IntRange(min=0),
              help="Rounds of self-training (not in the papers): the segmenter labels unlabelled real images and a "
                   "fresh one learns from half generated pairs, half those (no ground-truth mask is used).")
@click.option("--self-train-images", default=None,
              help="The unlabelled real images (folder or LMDB; default: the generator's training data).")
@click.option("--self-train-num", default=4000, show_default=True, type=click.IntRange(min=1),
              help="How many of them (the first, centre-cropped).")
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
            gamma, unet, width, depth, backbone, imagenet_size, self_train, self_train_images, self_train_num, pairs_dir, val_pairs, every, real_images, real_masks, real_check,
            max_coverage, min_coverage, histogram, component_ratio, filter_rules, threshold, truncation, placement,
            device):
    """Train U-Net segmenters on generated pairs (a layered or Labels4Free run, latent directions, or an exported
    folder) and score them."""
    seeds = parse_seeds(seeds)
    if imagenet_size and backbone != "efficientnet":
        raise BadValue("--imagenet-size goes with --backbone efficientnet")
    source, cfg = pair_source(ckpt, directions, lighter, darker, mode, threshold, truncation, device, anchors,
                              anchor_noise, placement)
    if source is None and not pairs_dir:
        raise click.UsageError("no pairs: give --ckpt (a layered or Labels4Free run), --directions or --pairs")
    filters = dict(max_coverage=max_coverage, min_coverage=min_coverage, histogram=histogram,
                   component_ratio=component_ratio, rules=filter_rules)
    val_filters = default_filters(**filters) if source is not None else None
    val = fixed_pairs(source, val_filters, val_pairs, VAL_SEED) if source is not None else None
    real = real_sources(cfg, real_images, real_masks)
    if val is None and real is None:
        raise click.UsageError("nothing to validate on: with --pairs alone give --real-images and --real-masks, or "
                               "--ckpt / --directions (generated validation pairs)")
    resolution = val.image.shape[-1] if val is not None else pairs_resolution(pairs_dir)
    unlabelled = None
    if self_train:
        with about("--self-train-images" if self_train_images else "--self-train (the generator's training data)"):
            if not self_train_images and cfg is None:
                raise BadValue("no training data known for these pairs: give --self-train-images")
            data = ImageDataset(self_train_images, resolution, crop="center") if self_train_images else \
                centre_crops(cfg["data"], resolution)
            unlabelled = load_images(data, self_train_num)
    unet_size = {**UNET_PRESETS[unet], **{k: v for k, v in (("width", width), ("depth", depth)) if v}}
    settings = dict(ckpt=ckpt, directions=directions, lighter=lighter, darker=darker, brightness=mode, anchors=anchors,
                    anchor_noise=anchor_noise if anchors else None, steps=steps, batch=batch, lr=lr,
                    decay_at=list(decay_at), gamma=gamma, **unet_size, backbone=backbone, imagenet_size=imagenet_size,
                    self_train=self_train, self_train_images=self_train_images,
                    self_train_num=self_train_num if self_train else None,
                    pairs=pairs_dir, threshold=threshold, truncation=truncation, placement=placement, **filters)
    distill_seeds(out, seeds, source, filters, val, val_filters, real, resolution, settings, every, real_check, device,
                  click.echo, unlabelled)
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


# ----------------------------------------------------------------------------------------------------------------
# demo (the README's first command)


@command("demo")
@click.option("--out", default="runs/demo", show_default=True,
              help="Run folder: new or empty, or a demo run to show (finished) or continue (unfinished).")
@click.option("--num", default=2000, show_default=True, type=click.IntRange(1),
              help="Composites to score with the Table 1 protocol.")
@device_option
def demo(out, num, device):
    """Build the synthetic data, train the PerturbGAN demo, draw its layers and print its Table-1 mask IoU."""
    start = time.time()
    summary = run_demo(out, num, device)
    click.echo(format_summary(summary, time.time() - start if summary.get("again") else None))


# ----------------------------------------------------------------------------------------------------------------
# build-ops


@command("build-ops")
@click.option("--verbose", is_flag=True, help="Show the compilers' commands and output.")
def build_ops(verbose):
    """Build the fused CUDA ops ahead of time, into the cache their first use reads, and report each: built,
    cached or failed (why), with seconds. TORCH_CUDA_ARCH_LIST and LAYERED_GAN_CACHE apply as at run time.
    Exit code 0: all built or cached; 1: an op failed; 2: nothing can be built here (no CUDA toolkit, or a CPU
    build of torch), and the ops run their exact PyTorch reference."""
    reason = cannot_build()
    if reason:
        raise UserError(f"nothing built: {reason}; the fused ops run their exact PyTorch reference")
    try:
        flags, source = cuda_arch_flags()
    except ValueError as exc:
        raise BadValue(str(exc)) from None
    click.echo(f"building for {describe_archs(flags)} ({source}) with {find_cuda_home()} into {cache_root()}")
    failed = False
    for name, status, seconds in build_all(verbose):
        click.echo(f"{name}: {status} ({seconds:.1f} s)")
        failed |= status.startswith("failed")
    if failed:
        raise SystemExit(1)  # a click Exit would be read as success by command.run_standalone


COMMANDS = {
    "demo": demo, "train": train, "generate": generate, "encode": encode, "evaluate": evaluate,
    "score-generated": score_generated, "baselines": baselines, "benchmarks": benchmarks, "segment": segment,
    "distill": distill, "pairs": pairs, "prepare": prepare, "synthetic": synthetic, "directions": directions,
    "labels4free": labels4free, "fid": fid, "convert": convert, "build-ops": build_ops,
}
for _name, _command in COMMANDS.items():
    main.add_command(_command, _name)
