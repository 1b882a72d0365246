"""Labels4Free's layer analyses of a pretrained StyleGAN2 (Abdal et al. 2021, sec. 3.1-3.2).

- tRGB noise sensitivity (sec. 3.1): replace the input of one resolution's tRGB layer with N(0, I)
  noise and compare the image with the clean one by SSIM; resolutions whose perturbation leaves a
  high SSIM contribute little, and the alpha network starts where the SSIM first drops markedly.
- Background gradients (sec. 3.2): the gradient of ||G(w, n) - x||^2, x an up-sampled background
  crop, with respect to every synthesis layer's tensor; per channel, the norm over positions; per
  layer, the sum over channels. The top layer is the one to zero for the background generator
  (the paper finds the first: the constant input and the first conv), its top channels the ones to
  zero when not all are.

`ssim` is Wang et al. (2004): Gaussian-weighted (11 x 11, sigma 1.5) local statistics over valid
windows, K1 = 0.01, K2 = 0.03, averaged over positions and channels. `bar_chart` draws the plots
with PIL.
"""

import os

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from .. import rng
from ..errors import BadValue
from ..files import write_json


def gaussian_window(size, sigma):
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-x.square() / (2 * sigma ** 2))
    return g / g.sum()


def ssim(x, y, data_range=2.0, window=11, sigma=1.5, k1=0.01, k2=0.03):
    """Mean SSIM of each image pair: x, y [B, C, H, W] with values spanning data_range (2 for [-1, 1])."""
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"ssim needs two [B, C, H, W] batches of one shape, got {list(x.shape)} and {list(y.shape)}")
    if min(x.shape[-2:]) < window:
        raise ValueError(f"images of {x.shape[-2]}x{x.shape[-1]} are smaller than the {window}x{window} SSIM window")
    channels, dtype = x.shape[1], x.dtype
    x, y = x.double(), y.double()  # the variances are differences of close numbers
    g = gaussian_window(window, sigma).to(x)

    def blur(t):
        t = F.conv2d(t, g.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
        return F.conv2d(t, g.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x, var_y = blur(x * x) - mu_x.square(), blur(y * y) - mu_y.square()
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = (2 * mu_x * mu_y + c1) * (2 * cov + c2) / ((mu_x.square() + mu_y.square() + c1) * (var_x + var_y + c2))
    return s.mean((1, 2, 3)).to(dtype)


def trgb_layers(synthesis):
    """{resolution: its tRGB layer}."""
    return {4: synthesis.to_rgb, **{8 << i: b.to_rgb for i, b in enumerate(synthesis.blocks)}}


@torch.no_grad()
def trgb_noise_sensitivity(G, num=64, batch=16, truncation=1.0, seed=0, device="cpu"):
    """{resolution: SSIM [num]} of G(w, n) with that resolution's tRGB input replaced by N(0, I) noise
    against the clean G(w, n) (sec. 3.1); latents, noise and perturbations drawn from `seed`."""
    gen = rng.generator(seed)
    layers = trgb_layers(G.synthesis)
    window = min(11, G.synthesis.resolution - 1)  # 7 x 7 at 8 px
    scores = {r: [] for r in layers}
    for start in range(0, num, batch):
        n = min(batch, num - start)
        ws = G.styles(torch.randn(n, G.z_dim, generator=gen).to(device), truncation=truncation)
        noise = G.make_noise(n, device, gen)
        clean = G.synthesis(ws, noise=noise).clamp(-1, 1)
        for r, layer in layers.items():
            handle = layer.register_forward_pre_hook(
                lambda module, args: (torch.randn(args[0].shape, generator=gen).to(args[0]),) + args[1:])
            try:
                perturbed = G.synthesis(ws, noise=noise).clamp(-1, 1)
            finally:
                handle.remove()
            scores[r].append(ssim(perturbed, clean, window=window))
    return {r: torch.cat(v).cpu() for r, v in scores.items()}


def suggest_start(mean_ssim, min_drop=0.2):
    """(suggested alpha start resolution, {resolution: relative SSIM drop from the previous resolution}):
    the first resolution whose drop is at least min_drop (the paper's faces: the 3rd layer's SSIM about 25 %
    above the 4th's, a 20 % drop), else the one with the largest drop."""
    drops = {r: (mean_ssim[r // 2] - mean_ssim[r]) / max(abs(mean_ssim[r // 2]), 1e-8)
             for r in mean_ssim if r // 2 in mean_ssim}
    large = [r for r, d in drops.items() if d >= min_drop]
    return (min(large) if large else max(drops, key=drops.get)), drops


def synthesis_layers(synthesis):
    """[(name, module, where)]: the constant (the 4x4 conv's input) and every conv's output, coarse to fine."""
    layers = [("const", synthesis.conv, "input"), ("4/conv", synthesis.conv, "output")]
    for i, block in enumerate(synthesis.blocks):
        layers += [(f"{8 << i}/conv0", block.conv0, "output"), (f"{8 << i}/conv1", block.conv1, "output")]
    return layers


def layer_gradient_norms(G, ws, targets, noise=None):
    """{layer: per-channel gradient norm [C]} of ||G.synthesis(ws, noise) - targets||^2 with respect to each
    layer's tensor (sec. 3.2): per image and channel the L2 norm over positions, averaged over images."""
    probes = {}

    def probe(name, t):  # adding a zero tensor exposes d loss / d t as its gradient
        probes[name] = torch.zeros_like(t, requires_grad=True)
        return t + probes[name]

    handles = []
    for name, module, where in synthesis_layers(G.synthesis):
        if where == "input":
            handles.append(module.register_forward_pre_hook(lambda m, args, name=name: (probe(name, args[0]),)
                                                            + args[1:]))
        else:
            handles.append(module.register_forward_hook(lambda m, args, out, name=name: probe(name, out)))
    try:
        with torch.enable_grad():
            loss = (G.synthesis(ws, noise=noise) - targets).square().sum()
            grads = torch.autograd.grad(loss, list(probes.values()))
    finally:
        for handle in handles:
            handle.remove()
    return {name: g.flatten(2).norm(dim=2).mean(0).detach().cpu() for name, g in zip(probes, grads)}


def crop_targets(images, box):
    """The box (x0, y0, x1, y1, fractions of the side) of each image, up-sampled to the image size."""
    size = images.shape[-1]
    x0, y0, x1, y1 = (round(f * size) for f in box)
    if not 0 <= x0 < x1 <= size or not 0 <= y0 < y1 <= size:
        raise BadValue(f"--box {','.join(map(str, box))} is not a box inside the image (fractions x0,y0,x1,y1)")
    return F.interpolate(images[:, :, y0:y1, x0:x1], size=images.shape[-2:], mode="bilinear", align_corners=False)


def rank_layers(norms, channel_fraction=0.5):
    """(layers by summed channel norms, highest first, as [(name, sum)], the top layer's channels whose norm is
    at least channel_fraction x its largest, highest first)."""
    ranking = sorted(((name, float(v.sum())) for name, v in norms.items()), key=lambda t: -t[1])
    top = norms[ranking[0][0]]
    channels = [int(c) for c in torch.argsort(top, descending=True) if top[c] >= channel_fraction * top.max()]
    return ranking, channels


def bar_chart(path, labels, values, title, highlight=(), label_every=1):
    """A PNG bar chart drawn with PIL: one bar per value (from zero), highlighted indices in orange."""
    font = ImageFont.load_default()
    n, bar, left, top, bottom, height = len(values), 28 if len(values) <= 24 else 6, 60, 30, 40, 220
    img = Image.new("RGB", (max(360, left + 20 + n * bar), top + height + bottom), "white")
    draw = ImageDraw.Draw(img)
    lo, hi = min(0.0, min(values)), max(0.0, max(values))
    span = (hi - lo) or 1.0

    def y(v):
        return top + height * (hi - v) / span

    draw.text((left, 8), title, fill="black", font=font)
    for v in (lo, hi):
        draw.text((4, y(v) - 5), f"{v:.3g}", fill="black", font=font)
    for i, (label, v) in enumerate(zip(labels, values)):
        x = left + i * bar
        draw.rectangle([x + 1, min(y(v), y(0)), x + bar - 2, max(y(v), y(0))],
                       fill=(230, 120, 20) if i in highlight else (60, 100, 170))
        if i % label_every == 0:
            draw.text((x + 1, top + height + 6 + 12 * (i // label_every % 2)), str(label), fill="black", font=font)
    draw.line([left, y(0), left + n * bar, y(0)], fill="black")
    img.save(path)
    return img


def save_trgb_ssim(out, means, drops, start, num):
    """OUT/trgb_ssim.png (mean SSIM per resolution, the suggested start marked) and OUT/trgb_ssim.json."""
    os.makedirs(out, exist_ok=True)
    bar_chart(os.path.join(out, "trgb_ssim.png"), [f"{r}px" for r in means], list(means.values()),
              f"SSIM after noise in the tRGB input ({num} samples)", highlight={list(means).index(start)})
    write_json(os.path.join(out, "trgb_ssim.json"), {"mean_ssim": means, "drop": drops, "suggested_start": start})


def save_bg_gradients(out, norms, ranking, channels, num):
    """OUT/bg_gradients.png (per layer), OUT/bg_gradients_channels.png (the top layer's channels) and .json."""
    os.makedirs(out, exist_ok=True)
    names, top = list(norms), ranking[0][0]
    bar_chart(os.path.join(out, "bg_gradients.png"), names, [float(norms[n].sum()) for n in names],
              f"sum of per-channel gradient norms, {num} background targets", highlight={names.index(top)})
    width = len(norms[top])
    bar_chart(os.path.join(out, "bg_gradients_channels.png"), list(range(width)), norms[top].tolist(),
              f"{top}: gradient norm per channel", highlight=set(channels), label_every=max(1, width // 16))
    write_json(os.path.join(out, "bg_gradients.json"), {"ranking": ranking, "top_layer": top, "top_channels": channels,
                                                         "channel_norms": {n: v.tolist() for n, v in norms.items()}})
