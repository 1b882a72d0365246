"""Train a model from a config: `python train.py --cfg NAME [--set key=value ...]`.

Available now: `smoke`, a short StyleGAN2 generator/discriminator run on the
built-in synthetic dataset (created on first use) that checks the install end
to end and writes a sample grid and a checkpoint.
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
@click.option("--cfg", "cfg_name", default="smoke", show_default=True, help="Config name in configs/ or a JSON path.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config value (repeatable).")
@click.option("--out", default=None, help="Output folder (default: the config's `out`).")
@click.option("--device", default="cuda" if torch.cuda.is_available() else "cpu", show_default=True)
def main(cfg_name, overrides, out, device):
    cfg = load_config(cfg_name, overrides)
    out = out or cfg["out"]
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
