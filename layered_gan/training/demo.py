"""`layered-gan demo`, the README's first command: the PerturbGAN demo from data to figure.

    layered-gan demo [--out runs/demo] [--num 2000] [--device cpu]

Builds the synthetic dataset (cached), trains the `demo` config (both layers from the shipped
checkpoints/stylegan2_demo.pt), draws OUT/demo.png (rows: backgrounds, foregrounds, masks, composites) and
scores the masks with the Table 1 protocol against the reference U-Net (shipped in
checkpoints/reference/).
The figures go to OUT/demo.json. A second call on a finished run does not train again: it says where the
run is and shows its figures; on an unfinished one (interrupted) it continues from the last checkpoint.
"""

import json
import os
import time

from ..checkpoint import load_checkpoint
from ..config import load_config
from ..data.synthetic import build_synthetic
from ..errors import BadValue, PathExists
from ..evaluation.generated import score_generated, train_reference
from ..files import write_json
from ..generate import named_images
from ..images import save_labelled_grid
from ..paths import REPO_ROOT
from ..runs import load_run
from ..sampling import generate_layers
from .loop import train

CONFIG = "demo"
SEEDS = list(range(8))
PICTURE, SUMMARY = "demo.png", "demo.json"


def demo_config():
    """The demo's config, its starting checkpoint found in the clone whatever the working folder."""
    cfg = load_config(CONFIG)
    init = cfg["model"].get("init")
    if init and not os.path.isabs(init):
        cfg["model"]["init"] = os.path.join(REPO_ROOT, init)
    return cfg


def _same_run(found, cfg):
    """Equal configs but for the run's folder and how the start checkpoint's path was written."""
    def strip(c):
        return {**c, "out": None, "model": {**c["model"], "init": os.path.basename(c["model"].get("init") or "")}}
    return strip(found) == strip(cfg)


def images_seen(out, cfg):
    """Images the demo run at `out` has trained on (0: none saved yet); raises PathExists for anything else."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise PathExists(f"--out {out} is a file; the demo writes a run folder there")
    ckpt, saved_cfg = os.path.join(out, "checkpoint.pt"), os.path.join(out, "config.json")
    if os.path.isfile(ckpt):
        try:
            state = load_checkpoint(ckpt)
        except ValueError as exc:
            raise BadValue(f"--out {out}: {exc}") from None
        found, seen = state.get("config"), state.get("images_seen", 0)
    elif os.path.isfile(saved_cfg):  # stopped before its first checkpoint
        with open(saved_cfg) as fh:
            found, seen = json.load(fh), 0
    elif os.path.isdir(out) and os.listdir(out):
        raise PathExists(f"--out {out} holds files but no demo run (no checkpoint.pt); choose a new or empty folder")
    else:
        return 0
    if not isinstance(found, dict) or not _same_run(found, cfg):
        raise PathExists(f"--out {out} holds a run of another config than {CONFIG!r}; choose a new or empty folder")
    return seen


def draw(G, path, device="cpu"):
    """The picture: one labelled row per layer and the composite, one column per seed in SEEDS."""
    layers = named_images(generate_layers(G, SEEDS, device=device))
    save_labelled_grid({f"{name}s": images.cpu() for name, images in layers.items()}, path)


def run_demo(out="runs/demo", num=2000, device="cpu", progress=True):
    """Train (or continue) the demo into `out`, draw and score it; returns the summary (also OUT/demo.json).

    A finished run is not trained again: its saved summary is returned with `again` set (drawn and scored anew
    when the summary or the picture is missing)."""
    start = time.time()
    cfg = demo_config()
    total, seen = int(cfg["schedule"]["total_kimg"] * 1000), images_seen(out, cfg)
    summary_path, picture = os.path.join(out, SUMMARY), os.path.join(out, PICTURE)
    if seen >= total:
        print(f"{out} holds a finished demo run ({seen / 1000:g} kimg): not training it again "
              "(--out DIR trains a new one)")
        if os.path.isfile(summary_path) and os.path.isfile(picture):
            with open(summary_path) as fh:
                return {**json.load(fh), "again": True}
    else:
        if seen:
            print(f"{out} holds an unfinished demo run: continuing it from {seen / 1000:g} of {total / 1000:g} kimg")
        build_synthetic(**cfg["data"]["synthetic"], progress=progress)
        train(cfg, out, resume=out if seen else None, device=device)
    G = load_run(out, "perturb", device=device).G
    draw(G, picture, device)
    reference, reference_iou = train_reference(cfg["data"]["synthetic"], device=device, progress=progress)
    figures = score_generated(G, reference, num, device=device, progress=progress)
    summary = {"run": out, "kimg": total / 1000, "picture": picture, "reference_test_iou": reference_iou, **figures,
               "seconds": round(time.time() - start, 1)}
    write_json(summary_path, summary)
    return summary


def _duration(seconds):
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


def format_summary(summary, seconds=None):
    """The lines the command prints; `seconds`: how long this call took, when not the run's own time."""
    took = _duration(summary["seconds"])
    if seconds is not None:
        took = f"{_duration(seconds)} (the run and its scoring: {took})"
    return "\n".join([
        f"demo run:  {summary['run']} ({summary['kimg']:g} kimg of the `demo` config: checkpoint.pt, layers.png, "
        "tensorboard/)",
        f"picture:   {summary['picture']} (rows: backgrounds, foregrounds, masks, composites)",
        f"Table-1 mask IoU: {summary['iou']:.3f} (full-mask IoU {summary['full_mask_iou']:.3f}; "
        f"{summary['scored']} of {summary['images']} composites scored against the reference U-Net, "
        f"{summary['reference_test_iou']:.3f} on held-out images)",
        f"time:      {took}",
    ])
