"""Segment real images by inverting a frozen layered generator (PerturbGAN, Bielski & Favaro 2019, sec. 3.3).

An encoder (networks/encoder.py) maps an image x to the generator's W+ styles so that the composite x_E
reproduces it (eq. 7: |x_E - x|_1 + |D_feat(x_E) - D_feat(x)|^2 with the discriminator's 8x8 features);
the generator's mask for those styles is x's segmentation. As in the paper's "Segmenting real images", a
separate encoder is trained per chunk of images (100; 1 000 Adam steps, lr 1e-4, betas (0.9, 0.999));
`amortized` trains one encoder on the whole set and saves it, `encoder_path` applies a saved one without
training, and a `Refinement` continues each image's codes by projection (projection.py). `run` takes its
settings as `Options`: Training, Loss, Refinement and Output, whose defaults are the paper's.

Chunks are independent: under torchrun each rank takes chunks rank, rank + world, ...; each finished chunk
leaves OUT/chunks/NNNNN.json (written last, atomically), so a rerun resumes at the first unfinished chunk.
Whichever process finishes the last chunk writes the contact sheet, summary.json and, with ground truth,
the evaluation (the paper's Table 2: ours, full mask, centre prior, GrabCut on the same images).
"""

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from . import rng
from .checkpoint import load_checkpoint, save_checkpoint
from .data.dataset import to_tensor
from .data.readers import DecodeError
from .evaluation.baselines import baseline
from .evaluation.evaluate import comparison_table, evaluate, report
from .errors import BadValue, PathExists, UserError
from .files import save_png, write_json
from .evaluation.sources import FileSource, MaskFunction, SourceSubset
from .images import to_uint8
from .losses import mask_size_shortfall
from .networks.efficientnet import pretrained_efficientnet_lite0
from .networks.encoder import Encoder, LayeredSynthesis, build_encoder
from .projection import project, zero_noise
from .render import composite
from .runs import load_run
from .segmenter.segment import overlay

IMAGE_PARTS = ("reconstructions", "backgrounds", "foregrounds")  # at the generator's resolution
MASK_PARTS = ("masks", "soft", "overlays")  # at the image's own size


@dataclass(frozen=True)
class Training:
    """Each encoder's training: `chunk` images, Adam `steps` on minibatches of `batch` (the paper's 100, 1 000,
    lr 1e-4); a ResNet of `width` (or the ImageNet EfficientNet-Lite0: `backbone`) predicting W+ offsets around
    the average w (or the codes themselves)."""
    chunk: int = 100
    steps: int = 1000
    lr: float = 1e-4
    batch: int = 32
    width: int = 64
    offsets: bool = True
    seed: int = 0
    backbone: str = "resnet18"  # or "efficientnet": ImageNet weights, fine-tuned (not the paper's)
    backbone_lr: float = 1.0  # the pretrained backbone's lr as a multiple of lr (efficientnet only)


@dataclass(frozen=True)
class Loss:
    """PerturbGAN eq. 7's weights, the discriminator's feature map (its 8x8 one) and the reduction: "mean" per
    element (this toolkit's; on 64 px images against 512 x 8 x 8 features it weights the feature term about 2.7x
    less than the norms do) or "sum", the paper's norms ||x_E - x||_1 + ||D_feat(x_E) - D_feat(x)||_2^2."""
    l1_weight: float = 1.0
    feature_weight: float = 1.0
    feature_size: int = 8
    perceptual_weight: float = 0.0  # an ImageNet-feature term (not the paper's; ReconstructionLoss)
    reduction: str = "mean"
    size_weight: float = 0.0  # PerturbGAN's mask size hinge on the encoded masks (not in eq. 7)
    eta: float = 0.15


@dataclass(frozen=True)
class Refinement:
    """Projection of each image's codes from the encoder's (projection.py); 0 steps: none."""
    steps: int = 0
    lr: float = 0.01
    feature_weight: float = 0.0


@dataclass(frozen=True)
class Output:
    """The view of each image (squashed to org_to_crop x R, centre crop R), binary masks at `threshold`, the
    baselines scored with ground truth and the images in the contact sheet."""
    org_to_crop: float = 1.0
    threshold: float = 0.5
    methods: tuple = ("full", "centre", "grabcut")
    sheet: int = 16


LATER_SETTINGS = ("perceptual_weight", "size_weight", "backbone", "backbone_lr")  # added after outputs existed


@dataclass(frozen=True)
class Options:
    """All of `run`'s settings, by group."""
    training: Training = field(default_factory=Training)
    loss: Loss = field(default_factory=Loss)
    refinement: Refinement = field(default_factory=Refinement)
    output: Output = field(default_factory=Output)

    def settings(self):
        """What an output folder records (and a rerun must match): every setting but the report's."""
        # settings added later are recorded only when they differ from their defaults, so that older outputs resume
        defaults = {**asdict(Training()), **asdict(Loss())}
        def recorded(k, v):
            return (k != "eta" or self.loss.size_weight) and (k not in LATER_SETTINGS or defaults[k] != v)
        loss = {k: v for k, v in asdict(self.loss).items() if recorded(k, v)}
        training = {k: v for k, v in asdict(self.training).items() if recorded(k, v)}
        return {**training, **loss,
                **{f"refine_{k}": v for k, v in asdict(self.refinement).items()},
                "org_to_crop": self.output.org_to_crop, "threshold": self.output.threshold}


def load_layered_run(ckpt, device="cpu", discriminator=True):
    """(LayeredSynthesis of a PerturbGAN run's EMA generator, its discriminator or None, the config), frozen.
    The discriminator is needed for the feature loss (a feature weight of 0 needs none)."""
    run = load_run(ckpt, "perturb", discriminator, device)
    return LayeredSynthesis(run.G), run.D, run.config


class ReconstructionLoss:
    """PerturbGAN eq. 7 per image: l1_weight x |x_E - x| + feature_weight x (D_feat(x_E) - D_feat(x))^2, each
    reduced by `reduction` ("mean" per element, or "sum": the paper's L1 and squared L2 norms), D_feat the
    discriminator's features at `feature_size` (its 8x8 map); zero noise in the generator.

    perceptual_weight > 0 adds an LPIPS-like term (Zhang et al. 2018, unweighted): the mean squared difference of
    the channel-normalized feature maps of the frozen ImageNet EfficientNet-Lite0's four stages, summed over the
    stages; ImageNet supervision the papers did not use (off by default).
    size_weight > 0 adds PerturbGAN's mask size hinge max(0, eta - mean(m)) of the encoded mask (eq. 4 applied to
    the encoding, not in eq. 7): eq. 7 scores only the composite, which the background layer alone can match."""

    def __init__(self, synthesis, D=None, l1_weight=1.0, feature_weight=1.0, feature_size=8, perceptual_weight=0.0,
                 reduction="mean", size_weight=0.0, eta=0.15):
        if feature_weight and D is None:
            raise ValueError("feature_weight > 0 needs the discriminator")
        if reduction not in ("mean", "sum"):
            raise BadValue(f"the encoder loss's reduction must be 'mean' or 'sum', got {reduction!r}")
        self.synthesis, self.D = synthesis, D
        self.l1_weight, self.feature_weight, self.feature_size = l1_weight, feature_weight, feature_size
        self.reduce = torch.mean if reduction == "mean" else torch.sum
        self.perceptual_weight, self.imagenet = perceptual_weight, None
        self.size_weight, self.eta = size_weight, eta
        if perceptual_weight:
            self.imagenet = pretrained_efficientnet_lite0().to(next(synthesis.parameters()).device)

    def perceptual(self, image, target):
        """Per image: sum over stages of mean (f(x_E) / |f(x_E)| - f(x) / |f(x)|)^2, norms over channels."""
        with torch.no_grad():
            wanted = [F.normalize(f, dim=1, eps=1e-8) for f in self.imagenet(target)]
        got = [F.normalize(f, dim=1, eps=1e-8) for f in self.imagenet(image)]
        return sum((g - w).pow(2).mean((1, 2, 3)) for g, w in zip(got, wanted))

    def features(self, images):
        return self.D(images, return_features=True)[1][self.feature_size]

    def __call__(self, ws, target):
        layers = self.synthesis.layers(ws, zero_noise(self.synthesis, len(ws), ws.device))
        image = composite(layers.background, layers.foreground, layers.mask)
        loss = self.l1_weight * self.reduce((image - target).abs(), (1, 2, 3))
        if self.feature_weight:
            with torch.no_grad():
                wanted = self.features(target)
            loss = loss + self.feature_weight * self.reduce((self.features(image) - wanted).pow(2), (1, 2, 3))
        if self.perceptual_weight:
            loss = loss + self.perceptual_weight * self.perceptual(image, target)
        if self.size_weight:
            loss = loss + self.size_weight * mask_size_shortfall(layers.mask, self.eta)
        return loss


def train_encoder(encoder, loss, sample, steps=1000, lr=1e-4, betas=(0.9, 0.999), bar=None, backbone_lr=1.0):
    """Adam on the encoder (the paper's schedule), one minibatch `sample()` per step; returns the loss curve.
    backbone_lr: the lr multiple of a pretrained backbone's parameters (the head and a from-scratch one: 1)."""
    pretrained = list(encoder.pretrained_parameters())
    pretrained_ids = {id(p) for p in pretrained}
    others = [p for p in encoder.parameters() if id(p) not in pretrained_ids]
    groups = [{"params": others}] + ([{"params": pretrained, "lr": lr * backbone_lr}] if pretrained else [])
    opt = torch.optim.Adam(groups, lr=lr, betas=betas)
    encoder.train()
    curve = []
    for step in range(steps):
        target = sample()
        value = loss(encoder(target), target).mean()
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        curve.append(value.item())
        if bar is not None and (step % 50 == 0 or step == steps - 1):
            bar.set_postfix(step=f"{step + 1}/{steps}", loss=f"{curve[-1]:.4f}")
    return curve


@torch.no_grad()
def encode(encoder, images, batch=64):
    """W+ codes of images [N, 3, R, R] (batch norm in inference mode)."""
    encoder.eval()
    return torch.cat([encoder(images[i:i + batch]) for i in range(0, len(images), batch)])


class View:
    """What the generator sees of an image: squashed to a square of org_to_crop x R (the aspect ratio is not kept,
    as PerturbGAN feeds real images), centre crop R; masks go back into the crop's place (background outside it)
    and to the image's size."""

    def __init__(self, resolution, org_to_crop=1.0):
        self.resolution = resolution
        self.side = max(resolution, round(org_to_crop * resolution))
        self.offset = (self.side - resolution) // 2

    def image(self, img):
        """PIL image -> tensor [3, R, R] in [-1, 1]."""
        o, r = self.offset, self.resolution
        return to_tensor(img.convert("RGB").resize((self.side, self.side), Image.BICUBIC).crop((o, o, o + r, o + r)))

    def mask(self, mask, size):
        """Mask [R, R] -> float numpy [H, W] for size (W, H), bilinear."""
        canvas = mask.new_zeros(1, 1, self.side, self.side)
        canvas[..., self.offset:self.offset + self.resolution, self.offset:self.offset + self.resolution] = mask
        return F.interpolate(canvas, size=size[::-1], mode="bilinear", align_corners=False)[0, 0].clamp(0, 1).numpy()


def read_images(source, names):
    """({name: PIL image} of the readable ones, {name: why not} of the others)."""
    images, failed = {}, {}
    for name in names:
        try:
            images[name] = source.image(name)
        except (DecodeError, OSError, KeyError) as exc:
            failed[name] = str(exc)
    return images, failed


def chunk_marker(out, index):
    return os.path.join(out, "chunks", f"{index:05d}.json")


def write_outputs(out, name, img, view, layers, threshold):
    """The per-image files: masks/ (0/255), soft/ (grey levels), overlays/ at the image's size; reconstructions/,
    backgrounds/, foregrounds/ at the generator's."""
    prob = view.mask(layers.mask[None].cpu(), img.size)
    save_png((prob > threshold).astype(np.uint8) * 255, os.path.join(out, "masks", name + ".png"))
    save_png((prob * 255).round().astype(np.uint8), os.path.join(out, "soft", name + ".png"))
    save_png(overlay(np.asarray(img.convert("RGB")), prob > threshold), os.path.join(out, "overlays", name + ".png"))
    recon = composite(layers.background, layers.foreground, layers.mask)
    for part, tensor in zip(IMAGE_PARTS, (recon, layers.background, layers.foreground)):
        save_png(to_uint8(tensor[None])[0], os.path.join(out, part, name + ".png"))


def names_digest(names):
    """SHA-1 of the image names in order: a rerun resumes only on the same input set."""
    return hashlib.sha1("\n".join(names).encode()).hexdigest()


class Settings(dict):
    """What an output folder was made with; a rerun must match it to resume."""

    def check(self, out):
        """Write OUT/settings.json in a new (or empty) folder; in a folder holding one, refuse other settings;
        refuse a non-empty folder without one (it is not ours to write into)."""
        path = os.path.join(out, "settings.json")
        others = [f for f in os.listdir(out) if ".tmp-" not in f] if os.path.isdir(out) else []  # ranks' writes
        if not os.path.isfile(path) and others:
            raise PathExists(f"--out {out} is a non-empty folder that holds no encoding run; choose a new or empty "
                             "folder")
        if os.path.isfile(path):
            with open(path) as fh:
                found = json.load(fh)
            differ = sorted(k for k in set(found) | set(self) if found.get(k) != self.get(k))
            if differ:
                raise BadValue(f"--out {out} holds a run with other settings ({', '.join(differ)}); "
                               "choose a new --out or the same options to resume")
        else:
            write_json(path, dict(self))


def process_chunk(index, names, source, view, loss, out, options, encoder=None, bar=None):
    """Encode one chunk (training its own encoder unless one is given), write its files and its marker."""
    start = time.time()
    images, failed = read_images(source, names)
    for name, why in failed.items():
        tqdm.write(f"unreadable, skipped: {name}: {why}")
    record = {"names": sorted(images), "unreadable": failed, "curve": [], "losses": {}}
    if images:
        device = next(loss.synthesis.parameters()).device
        targets = torch.stack([view.image(images[n]) for n in record["names"]]).to(device)
        if encoder is None:
            t = options.training
            torch.manual_seed(t.seed * 1_000_003 + index)
            encoder = build_encoder(loss.synthesis, t.width, t.offsets, t.backbone).to(device)
            gen = rng.generator(t.seed * 1_000_003 + index)
            record["curve"] = train_encoder(
                encoder, loss, lambda: targets[torch.randint(len(targets), (t.batch,), generator=gen)],
                t.steps, t.lr, bar=bar, backbone_lr=t.backbone_lr)[::10]
        ws = encode(encoder, targets, options.training.batch)
        refine = options.refinement
        if refine.steps:
            result = project(loss.synthesis, targets, refine.steps, refine.lr, ws=ws, D=loss.D,
                             feature_weight=refine.feature_weight)
            ws = result.ws
            record["refine_l1"] = {"first": result.losses[0].mean().item(), "last": result.losses[-1].mean().item()}
        with torch.no_grad():
            per_image = loss(ws, targets)
            layers = loss.synthesis.layers(ws, zero_noise(loss.synthesis, len(ws), device))
        for i, name in enumerate(record["names"]):
            write_outputs(out, name, images[name], view, type(layers)(*(t[i] for t in layers)),
                          options.output.threshold)
            record["losses"][name] = per_image[i].item()
        save_checkpoint({"names": record["names"], "ws": ws.cpu()}, os.path.join(out, "chunks", f"{index:05d}.pt"))
    record["seconds"] = time.time() - start
    write_json(chunk_marker(out, index), record)
    return record


def contact_sheet(out, source, view, names, tile=96):
    """Rows: the first images; columns: input view, reconstruction, background, foreground, soft mask, overlay."""
    columns = ["input", *IMAGE_PARTS, "soft", "overlays"]
    sheet = Image.new("RGB", (len(columns) * tile, len(names) * tile))
    for r, name in enumerate(names):
        tiles = [Image.fromarray(to_uint8(view.image(source.image(name))[None])[0])]
        tiles += [Image.open(os.path.join(out, part, name + ".png")).convert("RGB") for part in columns[1:]]
        for c, t in enumerate(tiles):
            sheet.paste(t.resize((tile, tile), Image.BICUBIC), (c * tile, r * tile))
    save_png(sheet, os.path.join(out, "contact_sheet.png"))


def score(out, names, images, gt, methods, echo):
    """The encoder's soft masks and baselines on the same images against ground truth: OUT/eval/METHOD/ and
    OUT/eval/table.json (PerturbGAN Table 2)."""
    gt = SourceSubset(gt, set(gt.names) & set(names))
    images = SourceSubset(images, names)
    summaries = {}
    for method in ("encoder",) + tuple(methods):
        try:
            pred = FileSource(os.path.join(out, "soft"), soft=True) if method == "encoder" else MaskFunction(images,
                                                                                                   baseline(method))
        except ImportError as exc:
            echo(f"{method} skipped: {exc}")
            continue
        echo(f"\n== {method}")
        result = evaluate(SourceSubset(pred, names) if method == "encoder" else pred, gt, progress=False)
        result.update(method=method)
        report(result, os.path.join(out, "eval", method), pred, gt, images, echo=echo)
        summaries[method] = result["summary"]
    write_json(os.path.join(out, "eval", "table.json"), summaries)
    comparison_table(summaries, echo)
    return summaries


def finish(out, source, view, chunks, gt, methods, sheet, echo):
    """After the last chunk: summary.json, the contact sheet and, with ground truth, the evaluation."""
    records = []
    for index in range(len(chunks)):
        with open(chunk_marker(out, index)) as fh:
            records.append(json.load(fh))
    names = [n for r in records for n in r["names"]]
    unreadable = {k: v for r in records for k, v in r["unreadable"].items()}
    losses = [v for r in records for v in r["losses"].values()]
    seconds = sum(r["seconds"] for r in records)
    summary = {"images": len(names), "unreadable": unreadable, "chunks": len(chunks),
               "mean_loss": float(np.mean(losses)) if losses else None, "seconds": seconds,
               "seconds_per_image": seconds / max(1, len(names))}
    if names:
        contact_sheet(out, source, view, names[:sheet])
    if unreadable:
        echo(f"{len(unreadable)} unreadable images skipped (listed in summary.json): {', '.join(list(unreadable)[:5])}")
    if gt is not None and names:
        summary["eval"] = score(out, names, source, gt, methods, echo)
    write_json(os.path.join(out, "summary.json"), summary)
    echo(f"{len(names)} images encoded in {seconds:.0f} s ({summary['seconds_per_image']:.2f} s/image); "
         f"masks in {os.path.join(out, 'masks')}, contact sheet {os.path.join(out, 'contact_sheet.png')}")
    return summary


def amortized_encoder(path, loss, source, names, view, training, device, bar=None):
    """The encoder saved at `path`, else one trained on minibatches drawn from all `names`, then saved there."""
    if os.path.isfile(path):
        return load_encoder(path, loss.synthesis, device)
    torch.manual_seed(training.seed)
    encoder = build_encoder(loss.synthesis, training.width, training.offsets, training.backbone).to(device)
    gen = rng.generator(training.seed)

    def sample():
        picked = [names[i] for i in torch.randint(len(names), (training.batch,), generator=gen)]
        drawn, _ = read_images(source, set(picked))
        return torch.stack([view.image(drawn[n]) for n in picked if n in drawn]).to(device)

    curve = train_encoder(encoder, loss, sample, training.steps, training.lr, bar=bar,
                          backbone_lr=training.backbone_lr)
    save_checkpoint({"encoder": encoder.state_dict(), "hparams": encoder.hparams(), "curve": curve[::10]}, path)
    return encoder


def load_encoder(path, synthesis, device="cpu"):
    """A saved encoder on `device` (read on the CPU), checked against the generator it is to drive."""
    state = load_checkpoint(path)
    if not isinstance(state, dict) or not {"encoder", "hparams"} <= set(state):
        raise BadValue(f"{path} is not an encoder of `layered-gan encode --amortized` (no encoder and hparams)")
    h = state["hparams"]
    wanted = {"resolution": synthesis.resolution, "n_styles": synthesis.n_latent, "w_dim": synthesis.w_dim}
    if any(h[k] != v for k, v in wanted.items()):
        raise BadValue(f"encoder {path} was made for {h} but the generator needs {wanted}")
    encoder = Encoder(h["resolution"], h["n_styles"], h["w_dim"], h["width"],
                      torch.zeros(h["n_styles"], h["w_dim"]) if h["offsets"] else None,
                      h.get("backbone", "resnet18"), pretrained=False)
    encoder.load_state_dict(state["encoder"])  # w_avg included
    return encoder.to(device).eval()


def run(synthesis, D, source, out, gt=None, options=Options(), amortized=False, encoder_path=None, ckpt=None,
        rank=0, world=1, progress=True, echo=print):
    """Encode every image of `source` (an evaluation source: names, image(name)) into OUT with the layered
    generator `synthesis` (and D, for the feature loss) of load_layered_run, as `options` say; see the module
    doc. Returns the summary when this process finished the last chunk, else None."""
    device = next(synthesis.parameters()).device
    loss = ReconstructionLoss(synthesis, D, **asdict(options.loss))
    view = View(synthesis.resolution, options.output.org_to_crop)
    names = list(source.names)
    chunk = options.training.chunk
    Settings(ckpt=ckpt and os.path.abspath(ckpt), images=len(names), names_sha1=names_digest(names),
             amortized=amortized, encoder=encoder_path and os.path.abspath(encoder_path),
             **options.settings()).check(out)
    chunks = [names[i:i + chunk] for i in range(0, len(names), chunk)]
    mine = [i for i in range(rank, len(chunks), world) if not os.path.isfile(chunk_marker(out, i))]
    encoder = None
    with tqdm(total=sum(len(chunks[i]) for i in mine), desc="encoding", unit="img", disable=not progress) as bar:
        if encoder_path:
            try:
                encoder = load_encoder(encoder_path, synthesis, device)
            except UserError as exc:
                raise type(exc)(f"--encoder: {exc}") from None
        elif amortized:
            path = os.path.join(out, "encoder.pt")
            if world > 1 and not os.path.isfile(path):
                raise BadValue(f"--amortized: train the amortized encoder in one process first; then run on several "
                               f"with --encoder {path}")
            encoder = amortized_encoder(path, loss, source, names, view, options.training, device, bar)
        for i in mine:
            bar.set_description(f"chunk {i + 1}/{len(chunks)}")
            process_chunk(i, chunks[i], source, view, loss, out, options, encoder, bar)
            bar.update(len(chunks[i]))
    if all(os.path.isfile(chunk_marker(out, i)) for i in range(len(chunks))):
        return finish(out, source, view, chunks, gt, options.output.methods, options.output.sheet, echo)
    return None
