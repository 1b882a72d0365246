"""Labels4Free tools (Abdal et al. 2021): samples, real-image masks by projection, layer analyses.

    python -m layered_gan.labels4free sample --ckpt runs/l4f_demo --num 1000 --out samples/l4f [--lmdb]
    python -m layered_gan.labels4free project --ckpt runs/l4f_demo --images PHOTOS --out masks/
    python -m layered_gan.labels4free trgb-ssim --ckpt runs/stylegan2_demo --out analysis/
    python -m layered_gan.labels4free bg-gradients --ckpt runs/stylegan2_demo --out analysis/

`sample` and `project` read a Labels4Free run; the analyses read the pretrained StyleGAN2 (a
StyleGAN2-port checkpoint or a `stylegan2_*` run), before an alpha network exists. A Labels4Free
run is also a pair source as it stands: `python -m layered_gan.distill --ckpt runs/l4f_demo
--threshold 0.9` distills from it online, `--pairs DIR` from what `sample` wrote.
"""

import json
import os

import click
import torch
from tqdm import tqdm

from .data.dataset import ImageDataset
from .files import partial_folder, save_png, write_json
from .images import to_uint8
from .labels4free_analysis import (bar_chart, crop_targets, layer_gradient_norms, rank_layers, suggest_start,
                                   trgb_noise_sensitivity)
from .projection import project as project_images
from .projection import zero_noise
from .render import composite
from .runs import load_run, load_stylegan2
from .sampling import layered_noise, sample_layers
from .segmenter.filters import FilterChain
from .segmenter.pairs import LayeredGeneratorPairs, PairStream, export_pairs

SAMPLE_PARTS = ("images", "foregrounds", "backgrounds", "alphas", "masks")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def new_folder(out):
    """OUT.partial, fresh, for a command that renames it to OUT when done; an existing OUT is a --out error."""
    try:
        return partial_folder(out)
    except FileExistsError as exc:
        raise click.UsageError(f"--out {exc}") from None


def load_l4f_run(ckpt, device):
    """(Labels4FreeGenerator of a run's EMA weights, its config)."""
    run = load_run(ckpt, "labels4free", device=device)
    return run.G, run.config


@torch.no_grad()
def write_samples(G, num, out, threshold=0.9, truncation=1.0, seed=0, batch=64, device="cpu", progress=True):
    """OUT/{images,foregrounds,backgrounds,alphas,masks}/{index:08d}.png for `num` samples of a Labels4Free
    generator: image = composite(background, foreground, alpha) (eq. 1, before the layers are clipped to the
    image range), mask = alpha > threshold.

    Latents and noise are drawn in whole batches as the pair stream draws them, so the same seed and batch
    give the same samples as `--lmdb`; OUT/images and OUT/masks are what `distill --pairs OUT` reads."""
    gen = torch.Generator().manual_seed(seed)
    for start in tqdm(range(0, num, batch), desc="sampling", unit="batch", disable=not progress):
        layers = sample_layers(G, batch, gen, truncation, device)
        layers = type(layers)(*(t[:num - start] for t in layers))
        parts = {"images": composite(layers.background, layers.foreground, layers.mask),
                 "foregrounds": layers.foreground, "backgrounds": layers.background,
                 "alphas": layers.mask * 2 - 1, "masks": (layers.mask > threshold).float() * 2 - 1}
        for part, tensors in parts.items():
            for i, array in enumerate(to_uint8(tensors)):
                save_png(array, os.path.join(out, part, f"{start + i:08d}.png"))


@click.group()
def main():
    """Labels4Free tools: sample, project, trgb-ssim, bg-gradients."""


@main.command()
@click.option("--ckpt", required=True, help="Labels4Free run folder or checkpoint.")
@click.option("--num", required=True, type=click.IntRange(min=1), help="Samples to write.")
@click.option("--out", required=True, help="New folder.")
@click.option("--threshold", default=0.9, show_default=True, help="Masks are alpha > threshold (the paper's 0.9).")
@click.option("--truncation", default=1.0, show_default=True, help="Truncation psi of the foreground generator.")
@click.option("--seed", default=0, show_default=True)
@click.option("--batch", default=64, show_default=True)
@click.option("--lmdb", is_flag=True, help="Write OUT/images and OUT/masks LMDBs of (image, mask) pairs instead.")
@click.option("--device", default=DEVICE, show_default=True)
def sample(ckpt, num, out, threshold, truncation, seed, batch, lmdb, device):
    """Write aligned (image, foreground, background, alpha, mask) samples as PNGs, or (image, mask) LMDBs."""
    G, _ = load_l4f_run(ckpt, device)
    partial = new_folder(out)  # export_pairs writes to the same OUT.partial
    if lmdb:  # unfiltered; `python -m layered_gan.segmenter.pairs` exports filtered pairs of the same source
        export_pairs(PairStream(LayeredGeneratorPairs(G, truncation, threshold, device), FilterChain([]), batch,
                                seed), num, out)
    else:
        write_samples(G, num, partial, threshold, truncation, seed, batch, device)
        write_json(os.path.join(partial, "manifest.json"),
                   {"ckpt": ckpt, "samples": num, "threshold": threshold, "truncation": truncation, "seed": seed,
                    "batch": batch, "parts": SAMPLE_PARTS})
        os.replace(partial, out)
    click.echo(f"{num} samples in {out}")


@main.command()
@click.option("--ckpt", required=True, help="Labels4Free run folder or checkpoint.")
@click.option("--images", required=True, help="Folder (or LMDB) of real images; centre-cropped to the resolution.")
@click.option("--out", required=True, help="New folder: masks/, alphas/, reconstructions/, latents.pt, losses.json.")
@click.option("--steps", default=500, show_default=True, help="Adam steps per image.")
@click.option("--lr", default=0.05, show_default=True)
@click.option("--feature-weight", default=0.0, show_default=True,
              help="Weight of the L1 distance of discriminator features (the run's model.ckpt must hold a D).")
@click.option("--w-plus/--w", "plus", default=True, show_default=True, help="Optimize in W+ or in W.")
@click.option("--threshold", default=0.9, show_default=True, help="Masks are alpha > threshold.")
@click.option("--batch", default=8, show_default=True, help="Images projected together (independently).")
@click.option("--device", default=DEVICE, show_default=True)
def project(ckpt, images, out, steps, lr, feature_weight, plus, threshold, batch, device):
    """Masks of real images: project each into W+ (L1 + optional D features, Adam from w_avg), apply the alpha
    network (Labels4Free sec. 4)."""
    G, cfg = load_l4f_run(ckpt, device)
    D = None
    if feature_weight:
        try:
            _, D = load_stylegan2(cfg["model"]["ckpt"], discriminator=True)
        except ValueError as exc:
            raise click.UsageError(f"--feature-weight needs the discriminator of the run's model.ckpt: {exc}")
        D = D.to(device)
    ds = ImageDataset(images, G.generator.synthesis.resolution, crop="center", org_to_crop=1.0)
    partial = new_folder(out)
    names, latents, losses = [], [], {}
    for start in tqdm(range(0, len(ds), batch), desc="projecting", unit="batch"):
        index = range(start, min(start + batch, len(ds)))
        target = torch.stack([ds[i] for i in index]).to(device)
        result = project_images(G.generator, target, steps, lr, D=D, feature_weight=feature_weight, plus=plus)
        with torch.no_grad():
            image, alpha = G.foreground(result.ws, zero_noise(G.generator, len(index), device))
        parts = {"reconstructions": image, "alphas": alpha * 2 - 1, "masks": (alpha > threshold).float() * 2 - 1}
        for j, i in enumerate(index):
            name = os.path.splitext(ds.key(i).decode())[0]
            names.append(name)
            losses[name] = {"first": float(result.losses[0, j]), "last": float(result.losses[-1, j])}
            for part, tensors in parts.items():
                save_png(to_uint8(tensors[j:j + 1])[0], os.path.join(partial, part, name + ".png"))
        latents.append(result.ws.cpu())
    torch.save({"names": names, "ws": torch.cat(latents)}, os.path.join(partial, "latents.pt"))
    write_json(os.path.join(partial, "losses.json"), losses)
    os.replace(partial, out)
    mean = sum(v["last"] for v in losses.values()) / len(losses)
    click.echo(f"{len(names)} masks in {os.path.join(out, 'masks')}; mean final loss {mean:.4f}")


def analysis_generator(ckpt, device):
    return load_stylegan2(ckpt).to(device)


@main.command("trgb-ssim")
@click.option("--ckpt", required=True, help="StyleGAN2-port checkpoint or stylegan2_* run.")
@click.option("--out", required=True, help="Folder for trgb_ssim.png and trgb_ssim.json.")
@click.option("--num", default=64, show_default=True, help="Sampled images.")
@click.option("--batch", default=16, show_default=True)
@click.option("--truncation", default=1.0, show_default=True)
@click.option("--min-drop", default=0.2, show_default=True,
              help="Suggest the first resolution whose mean SSIM is this much (relative) below the previous one's.")
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default=DEVICE, show_default=True)
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
    os.makedirs(out, exist_ok=True)
    bar_chart(os.path.join(out, "trgb_ssim.png"), [f"{r}px" for r in scores], list(means.values()),
              f"SSIM after noise in the tRGB input ({num} samples)", highlight={list(scores).index(start)})
    with open(os.path.join(out, "trgb_ssim.json"), "w") as fh:
        json.dump({"mean_ssim": means, "drop": drops, "suggested_start": start}, fh, indent=2)


@main.command("bg-gradients")
@click.option("--ckpt", required=True, help="StyleGAN2-port checkpoint or stylegan2_* run.")
@click.option("--out", required=True, help="Folder for bg_gradients.png, bg_gradients_channels.png, .json.")
@click.option("--num", default=16, show_default=True, help="Sampled images (and targets).")
@click.option("--box", default="0,0,0.25,0.25", show_default=True,
              help="Background crop of each sample, x0,y0,x1,y1 as fractions of the side (without --crops).")
@click.option("--crops", default=None, help="Folder of background crops to use instead (paired with samples).")
@click.option("--truncation", default=1.0, show_default=True)
@click.option("--channel-fraction", default=0.5, show_default=True,
              help="Suggest zeroing the top layer's channels with at least this x its largest norm.")
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default=DEVICE, show_default=True)
def bg_gradients(ckpt, out, num, box, crops, truncation, channel_fraction, seed, device):
    """Rank synthesis layers by the gradients of reconstructing background crops (sec. 3.2)."""
    G = analysis_generator(ckpt, device)
    gen = torch.Generator().manual_seed(seed)
    ws = G.styles(torch.randn(num, G.z_dim, generator=gen).to(device), truncation=truncation)
    noise = layered_noise(G, num, device, gen)
    if crops:
        ds = ImageDataset(crops, G.synthesis.resolution, crop="center", org_to_crop=1.0)
        targets = torch.stack([ds[i % len(ds)] for i in range(num)]).to(device)
    else:
        try:
            box = [float(v) for v in box.split(",")]
        except ValueError:
            raise click.BadParameter(f"expected four fractions x0,y0,x1,y1, got {box!r}", param_hint="--box")
        if len(box) != 4:
            raise click.BadParameter(f"expected four fractions x0,y0,x1,y1, got {len(box)}", param_hint="--box")
        with torch.no_grad():
            try:
                targets = crop_targets(G.synthesis(ws, noise=noise), box)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--box")
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
    os.makedirs(out, exist_ok=True)
    names = list(norms)
    bar_chart(os.path.join(out, "bg_gradients.png"), names, [float(norms[n].sum()) for n in names],
              f"sum of per-channel gradient norms, {num} background targets", highlight={names.index(top)})
    width = len(norms[top])
    bar_chart(os.path.join(out, "bg_gradients_channels.png"), list(range(width)), norms[top].tolist(),
              f"{top}: gradient norm per channel", highlight=set(channels), label_every=max(1, width // 16))
    with open(os.path.join(out, "bg_gradients.json"), "w") as fh:
        json.dump({"ranking": ranking, "top_layer": top, "top_channels": channels,
                   "channel_norms": {n: v.tolist() for n, v in norms.items()}}, fh, indent=2)


if __name__ == "__main__":
    main()
