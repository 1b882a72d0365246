"""Train a model from a config.

    python train.py --cfg NAME [--data PATH] [--out DIR] [--set key=value ...] [--resume DIR_OR_CKPT]
    torchrun --nproc_per_node=N train.py --cfg NAME ...      # several GPUs (or CPU processes)

Config modes: `perturb` (PerturbGAN: perturb_*, demo) and `smoke` (a short
StyleGAN2 generator/discriminator run that checks the install end to end).
"""

import json
import math
import os
import random
import time

import click
import torch
from tqdm import tqdm

from layered_gan.checkpoint import save_checkpoint
from layered_gan.config import load_config
from layered_gan.data.dataset import dataset_from_config
from layered_gan.images import save_image_grid
from layered_gan.networks import Discriminator, Generator, channel_widths
from layered_gan.training.perturb import train_perturbgan
from layered_gan.training.stylegan2 import d_step, g_step


def batches(dataset, batch, workers, seed):
    """Endless shuffled batches."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True, num_workers=workers,
                                         generator=torch.Generator().manual_seed(seed),
                                         persistent_workers=workers > 0)
    while True:
        yield from loader


def build_networks(cfg):
    channels = channel_widths(cfg["resolution"], cfg["channel_base"], cfg["channel_max"])
    G = Generator(cfg["resolution"], cfg["z_dim"], cfg["w_dim"], cfg["n_mlp"], channels=channels)
    D = Discriminator(cfg["resolution"], channels=channels)
    return G, D


@click.command()
@click.option("--cfg", "cfg_name", default="demo", show_default=True, help="Config name in configs/ or a JSON path.")
@click.option("--data", default=None, help="Dataset path (sets data.source).")
@click.option("--out", default=None, help="Output folder (default: the config's `out`).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config value (repeatable).")
@click.option("--resume", default=None, help="Run folder or checkpoint to continue from.")
@click.option("--device", default="cuda" if torch.cuda.is_available() else "cpu", show_default=True)
def main(cfg_name, data, out, overrides, resume, device):
    cfg = load_config(cfg_name, list(overrides) + ([f"data.source={data}"] if data else []))
    out = out or cfg["out"]
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # started by torchrun
        backend = "nccl" if device == "cuda" else "gloo"
        torch.distributed.init_process_group(backend)
        if device == "cuda":
            device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
            torch.cuda.set_device(device)
    if cfg.get("mode") == "perturb":
        train_perturbgan(cfg, out, resume, device)
    elif cfg.get("mode") == "smoke":
        run_smoke(cfg, out, device)
    else:
        raise click.BadParameter(f"config {cfg_name!r} has mode {cfg.get('mode')!r}; expected 'perturb' or 'smoke'")
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def run_smoke(cfg, out, device):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as fh:
        json.dump(cfg, fh, indent=2)
    random.seed(cfg["seed"])
    torch.manual_seed(cfg["seed"])
    G, D = (net.to(device) for net in build_networks(cfg))
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg["lr"], betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg["lr"], betas=(0.0, 0.99))
    data = batches(dataset_from_config(cfg["data"], cfg["resolution"]), cfg["batch"], cfg["workers"], cfg["seed"])
    start = time.time()
    bar = tqdm(range(cfg["iterations"]), desc="smoke", unit="it")
    for _ in bar:
        real = next(data).to(device)
        stats = d_step(G, D, opt_d, real, cfg["r1_gamma"], cfg["mixing_prob"])
        stats.update(g_step(G, D, opt_g, cfg["batch"], cfg["mixing_prob"], device))
        if not all(math.isfinite(v) for v in stats.values()):
            raise RuntimeError(f"training diverged: {stats}")
        bar.set_postfix({k: f"{v:.3f}" for k, v in stats.items()})
    seconds = time.time() - start
    with torch.no_grad():
        samples = G(torch.randn(16, cfg["z_dim"], generator=torch.Generator().manual_seed(0)).to(device))
    save_image_grid(samples, os.path.join(out, "samples.png"), nrow=4)
    save_checkpoint({"G": G.state_dict(), "D": D.state_dict(), "config": cfg}, os.path.join(out, "checkpoint.pt"))
    print(f"{cfg['iterations']} iterations in {seconds:.1f} s "
          f"({cfg['iterations'] * cfg['batch'] / seconds:.1f} images/s); samples and checkpoint in {out}/")


if __name__ == "__main__":
    main()
