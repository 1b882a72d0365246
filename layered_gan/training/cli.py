"""`layered-gan train` (also `python train.py`): train a model from a config.

    layered-gan train --cfg NAME [--data PATH] [--out DIR] [--set key=value ...] [--resume DIR_OR_CKPT]
    torchrun --nproc_per_node=N train.py --cfg NAME ...      # several GPUs (or CPU processes)

Config modes: `perturb` (PerturbGAN: perturb_*, demo), `stylegan2` (plain StyleGAN2: stylegan2_*, the
single-output baseline, and `smoke`, a minute-long run that checks the install end to end) and
`labels4free` (an alpha network on a frozen StyleGAN2: l4f_*).
"""

import os

import click
import torch

from ..command import command, device_option
from ..config import load_config
from ..errors import BadValue, MissingPath
from .loop import train as train_run
from .objectives import OBJECTIVES

POSITIVE = ("schedule.batch", "model.z_dim", "model.w_dim", "model.channel_base", "model.channel_max")


def check_positive(cfg):
    """The sizes a config must give as positive numbers (a per-resolution table: each entry)."""
    for key in POSITIVE:
        section, name = key.split(".")
        value = cfg.get(section, {}).get(name)
        if any(v is not None and v <= 0 for v in (value.values() if isinstance(value, dict) else [value])):
            raise BadValue(f"{key} must be positive, got {value} (--set {key}=N)")


@command("train")
@click.option("--cfg", "cfg_name", default="demo", show_default=True, help="Config name in configs/ or a JSON path.")
@click.option("--data", default=None, help="Dataset path (sets data.source).")
@click.option("--out", default=None, help="Output folder (default: the config's `out`).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config value (repeatable).")
@click.option("--resume", default=None, help="Run folder or checkpoint to continue from.")
@device_option
def train(cfg_name, data, out, overrides, resume, device):
    """Train a model (PerturbGAN, StyleGAN2 or Labels4Free) from a config."""
    cfg = load_config(cfg_name, list(overrides) + ([f"data.source={data}"] if data else []))
    out = out or cfg["out"]
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # started by torchrun
        backend = "nccl" if device == "cuda" else "gloo"
        torch.distributed.init_process_group(backend)
        if device == "cuda":
            device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
            torch.cuda.set_device(device)
    if cfg.get("mode") not in OBJECTIVES:
        raise BadValue(f"--cfg {cfg_name}: mode {cfg.get('mode')!r} is not one of {', '.join(OBJECTIVES)}")
    check_positive(cfg)
    init = cfg["model"].get("init")
    if init and not resume and not os.path.exists(init):
        raise MissingPath(f"--set model.init: {init!r} does not exist: a stylegan2_* run folder or checkpoint to "
                          "start from (the demo's is checkpoints/stylegan2_demo.pt, relative to the repository "
                          "root), or null to start from scratch")
    train_run(cfg, out, resume, device)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"run written to {out}/: layers.png and grids/ (samples), checkpoint.pt, config.json, "
              f"tensorboard/ (tensorboard --logdir {out})")
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
