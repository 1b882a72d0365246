"""`layered-gan labels4free sample|project|trgb-ssim|bg-gradients`: Labels4Free's tools.

    layered-gan labels4free sample --ckpt runs/l4f_demo --num 1000 --out samples/l4f [--lmdb]
    layered-gan labels4free project --ckpt runs/l4f_demo --images PHOTOS --out masks/
    layered-gan labels4free trgb-ssim --ckpt runs/stylegan2_demo --out analysis/
    layered-gan labels4free bg-gradients --ckpt runs/stylegan2_demo --out analysis/

`sample` and `project` read a Labels4Free run; the analyses read the pretrained StyleGAN2 (a
StyleGAN2-port checkpoint or a `stylegan2_*` run), before an alpha network exists.
"""



import os

import click
import torch

from .. import rng
from ..command import device_option, group
from ..data.dataset import ImageDataset
from ..errors import BadValue, about
from ..files import partial_folder, write_json
from ..runs import load_stylegan2
from ..segmenter.filters import FilterChain
from ..segmenter.pairs import LayeredGeneratorPairs, PairStream, export_pairs
from .analysis import (crop_targets, layer_gradient_norms, rank_layers, save_bg_gradients, save_trgb_ssim,
                       suggest_start, trgb_noise_sensitivity)
from .samples import SAMPLE_PARTS, load_l4f_run, project_masks, write_samples


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
    gen = rng.generator(seed)
    ws = G.styles(torch.randn(num, G.z_dim, generator=gen).to(device), truncation=truncation)
    noise = G.make_noise(num, device, gen)
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


