"""`layered-gan train` (also `python train.py`): train a model from a config.

    layered-gan train --cfg NAME [--data PATH] [--out DIR] [--set key=value ...] [--force] [--precision P]
    layered-gan train --resume RUN [--set log.checkpoint_kimg=...] [--set schedule.total_kimg=...]
    torchrun --nproc_per_node=N train.py --cfg NAME ...      # several GPUs (or CPU processes)

Config modes: `perturb` (PerturbGAN: perturb_*, demo), `stylegan2` (plain StyleGAN2: stylegan2_*, the
single-output baseline, and `smoke`, a minute-long run that checks the install end to end) and
`labels4free` (an alpha network on a frozen StyleGAN2: l4f_*). A folder holding a run is never
overwritten: see run_folder.py. `--precision` (fp32, fp16 on a GPU, bf16) sets the config key `precision`
(training/precision.py); a resumed run keeps its own unless given.
"""

import os

import click
import torch

from cuda_ops import describe_ops

from ..command import command, device_option
from ..config import load_config, with_overrides
from ..data.dataset import check_data
from ..devices import place, start
from ..errors import BadValue, MissingPath
from .loop import train as train_run
from .objectives import OBJECTIVES
from .precision import PRECISIONS, check_precision
from .run_folder import check_out, check_resume_config, record_config_history, resume_source
from .schedule import schedule_resolutions


def resolve(cfg_name, overrides, out, resume, force):
    """(config, output folder) of a new or continued run; refuses what would overwrite or change a run."""
    if resume:
        ckpt, run_cfg = resume_source(resume)
        # runs started before the precision option trained in fp32
        cfg = load_config(cfg_name, overrides) if cfg_name else with_overrides({"precision": "fp32", **run_cfg},
                                                                                 overrides)
        out = out or os.path.dirname(os.path.abspath(ckpt))
        changes = check_resume_config(run_cfg, cfg, resume)
        check_data(cfg["data"], schedule_resolutions(cfg))
        if changes and int(os.environ.get("RANK", "0")) == 0:
            record_config_history(out, changes)
        return cfg, out
    if not cfg_name:
        raise click.UsageError("give --cfg NAME for a new run, or --resume RUN to continue one")
    cfg = load_config(cfg_name, overrides)
    check_start(cfg, cfg_name)
    out = out or cfg["out"]
    if int(os.environ.get("RANK", "0")) == 0:
        moved = check_out(out, resume, force)
        if moved:
            click.echo(f"the run that was in {out} is now in {moved}", err=True)
    return cfg, out


def check_start(cfg, cfg_name):
    """What a new run needs besides valid values: a known mode, the model.init it starts from, data of every size
    its schedule trains at."""
    if cfg.get("mode") not in OBJECTIVES:
        raise BadValue(f"--cfg {cfg_name}: mode {cfg.get('mode')!r} is not one of {', '.join(OBJECTIVES)}")
    init = cfg["model"].get("init")
    if init and not os.path.exists(init):
        raise MissingPath(f"--set model.init: {init!r} does not exist: a stylegan2_* run folder or checkpoint to "
                          "start from (the demo's is checkpoints/stylegan2_demo.pt, relative to the repository "
                          "root), or null to start from scratch")
    check_data(cfg["data"], schedule_resolutions(cfg))


@command("train")
@click.option("--cfg", "cfg_name", default=None,
              help="Config name in configs/ or a JSON path (with --resume: the run's own config by default).")
@click.option("--data", default=None, help="Dataset path (sets data.source).")
@click.option("--out", default=None, help="Output folder (default: the config's `out`; with --resume, the run's).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config value (repeatable).")
@click.option("--resume", default=None, help="Run folder or checkpoint to continue from.")
@click.option("--force", is_flag=True, help="Move a run already in --out aside (OUT.old-TIMESTAMP) and start afresh.")
@click.option("--precision", type=click.Choice(PRECISIONS), default=None,
              help="fp32; fp16: the top model.num_fp16_res blocks in float16 (a GPU); bf16: autocast (the CPU or a "
                   "GPU with bfloat16). Default: the config's (fp32), a resumed run's own.")
@device_option
def train(cfg_name, data, out, overrides, resume, force, precision, device):
    """Train a model (PerturbGAN, StyleGAN2 or Labels4Free) from a config, or continue a run."""
    placement = place(device)  # refused before resolve touches a run folder
    if precision:
        check_precision(precision, placement.device)
    overrides = list(overrides) + ([f"data.source={data}"] if data else []) + (
        [f"precision={precision}"] if precision else [])
    cfg, out = resolve(cfg_name, overrides, out, resume, force)
    start(placement)
    if placement.rank == 0:
        click.echo(placement.describe(), err=True)
        click.echo(describe_ops(placement.device), err=True)
    train_run(cfg, out, resume, placement.device)
    if placement.rank == 0:
        print(f"run written to {out}/: layers.png and grids/ (samples), checkpoint.pt, config.json, "
              f"tensorboard/ (tensorboard --logdir {out})")
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
