"""The training loop shared by every objective (training/objectives.py): PerturbGAN and StyleGAN2.

Each iteration: a critic step and a generator step of the objective at the
current phase of the progressive schedule (8 -> resolution, PerturbGAN sec. 3.4),
then the EMA update. Atomic checkpoints with exact resume, TensorBoard scalars
and image grids. Several processes (torchrun) average gradients with
all-reduce and keep identical weights; only rank 0 writes.
"""

import copy
import json
import math
import os
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from ..checkpoint import checkpoint_file, load_checkpoint, save_checkpoint
from ..data.dataset import ResumableSampler, dataset_from_config
from ..images import save_image_grid
from .ema import ema_beta, update_ema
from .objectives import make_objective
from .schedule import phase_at


def build_models(cfg):
    """(G, D) of a config, freshly initialized."""
    return make_objective(cfg).build()


def load_models(state):
    """(EMA G, D or None when the checkpoint has none) of a loaded training checkpoint, weights loaded."""
    G, D = build_models(state["config"])
    G.load_state_dict(state["G_ema"])
    if "D" not in state:
        return G, None
    D.load_state_dict(state["D"])
    return G, D


def fade_real(real, alpha):
    """Real images at a fading-in resolution: blend with their 2x down-and-up-sampled version."""
    if alpha >= 1:
        return real
    return F.interpolate(F.avg_pool2d(real, 2), scale_factor=2, mode="nearest").lerp(real, alpha)


def average_gradients(module, world_size):
    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= world_size


def average_w_avg(G, world_size):
    """Keep the truncation centres identical on every rank."""
    for name, buf in G.named_buffers():
        if name.endswith("w_avg"):
            dist.all_reduce(buf)
            buf /= world_size


def check_finite(stats, step, ckpt_path):
    for name, value in stats.items():
        if not math.isfinite(value):
            last = ckpt_path if os.path.isfile(ckpt_path) else "none written yet"
            raise FloatingPointError(f"non-finite {name} = {value} at step {step}; last good checkpoint: {last}")


def train(cfg, out, resume=None, device="cpu"):
    """Train (or, with resume = a run folder or checkpoint, continue) to cfg.schedule.total_kimg.

    Returns the EMA generator. Under torch.distributed each process trains on its share of the batch.
    """
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    scfg, resolution = cfg["schedule"], cfg["model"]["resolution"]
    objective = make_objective(cfg)
    torch.manual_seed(cfg["seed"])  # identical initial weights on every rank
    G, D = objective.build()
    if not resume:
        objective.initialize(G, D)  # a fresh run's starting weights (PerturbGAN's model.init)
    G, D = G.to(device), D.to(device)
    if cfg["model"].get("channels_last"):  # faster on the CPU demos (bench/RESULTS.md, issue 21)
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    torch.manual_seed(cfg["seed"] * 7919 + rank)  # then per-rank streams (noise inputs)
    opt_g = torch.optim.Adam(G.parameters(), lr=0.001, betas=tuple(cfg["betas"]))
    opt_d = torch.optim.Adam(D.parameters(), lr=0.001, betas=tuple(cfg["betas"]))
    rng = torch.Generator().manual_seed(cfg["seed"] * 7919 + rank)  # latents, mixing, shifts, interpolation
    ckpt_path = os.path.join(out, "checkpoint.pt")
    images_seen, step = 0, 0
    if resume:
        state = load_checkpoint(checkpoint_file(resume), device)
        for obj, key in ((G, "G"), (G_ema, "G_ema"), (D, "D"), (opt_g, "opt_g"), (opt_d, "opt_d")):
            obj.load_state_dict(state[key])
        images_seen, step = state["images_seen"], state["step"]
        objective.load_state_dict(state["objective"])
        rng.set_state(state["rng"][rank][0])
        torch.set_rng_state(state["rng"][rank][1])
    if rank != 0:
        dist.barrier()  # rank 0 first builds what the ranks share (the synthetic dataset, key caches)
    dataset = dataset_from_config(cfg["data"], phase_at(images_seen / 1000, scfg, resolution).resolution)
    if world > 1 and rank == 0:
        dist.barrier()
    writer = None
    if rank == 0:
        from torch.utils.tensorboard import SummaryWriter
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "config.json"), "w") as fh:
            json.dump(cfg, fh, indent=2)
        writer = SummaryWriter(os.path.join(out, "tensorboard"))
    fixed_z = torch.randn(cfg["log"]["grid_size"], G.z_dim, generator=torch.Generator().manual_seed(cfg["seed"]))
    total = int(scfg["total_kimg"] * 1000)
    phase, batches, next_ckpt, next_log = None, None, images_seen, images_seen
    bar = tqdm(total=total, initial=images_seen, unit="img", disable=rank != 0, dynamic_ncols=True)
    start_time, start_images = time.time(), images_seen

    def checkpoint():  # called by every rank at the same step: the RNG states are gathered collectively
        mine = (rng.get_state(), torch.get_rng_state())  # ours, and the global one (noise inputs)
        rng_states = [mine]
        if world > 1:
            rng_states = [None] * world
            dist.all_gather_object(rng_states, mine)
        if rank != 0:
            return
        save_checkpoint({"G": G.state_dict(), "G_ema": G_ema.state_dict(), "D": D.state_dict(),
                         "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "images_seen": images_seen,
                         "step": step, "rng": rng_states, "objective": objective.state_dict(), "config": cfg},
                        ckpt_path)

    while images_seen < total:
        p = phase_at(images_seen / 1000, scfg, resolution)
        if phase is None or p.index != phase.index:  # new resolution: data, batch size, learning rate
            if phase is not None:
                checkpoint()
            if p.batch % world:
                raise ValueError(f"batch {p.batch} at {p.resolution} px does not split over {world} processes")
            dataset.set_resolution(p.resolution)
            sampler = ResumableSampler(len(dataset), cfg["seed"], images_seen, rank, world)
            loader = torch.utils.data.DataLoader(  # own generator: creating it must not draw from the global RNG
                dataset, batch_size=p.batch // world, sampler=sampler, num_workers=cfg["workers"],
                persistent_workers=cfg["workers"] > 0, generator=torch.Generator().manual_seed(cfg["seed"]))
            batches = iter(loader)
        phase = p
        for opt in (opt_g, opt_d):
            for group in opt.param_groups:
                group["lr"] = p.lr
        batch = p.batch // world

        real = fade_real(next(batches).to(device), p.alpha)
        d_loss, stats = objective.d_loss(G, D, real, p, rng, step)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        if world > 1:
            average_gradients(D, world)
        opt_d.step()

        D.requires_grad_(False)  # the generator step needs gradients through D, not for it
        g_loss, g_stats, extras = objective.g_loss(G, D, batch, p, rng, step, device)
        D.requires_grad_(True)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        if world > 1:
            average_gradients(G, world)
            average_w_avg(G, world)
        opt_g.step()
        stats.update(g_stats)

        images_seen += p.batch
        step += 1
        update_ema(G_ema, G, ema_beta(p.batch, images_seen, cfg["ema"]["half_life_kimg"], cfg["ema"]["rampup"]))
        stats = {k: v.item() for k, v in stats.items()}
        check_finite(stats, step, ckpt_path)
        bar.update(p.batch)
        bar.set_postfix_str(f"{p.resolution}px a={p.alpha:.2f} kimg={images_seen / 1000:.1f} D={d_loss.item():.2f} "
                            f"G={g_loss.item():.2f}" + (f" m={extras['mask'].mean().item():.2f}" if "mask" in extras else ""))
        if rank == 0 and (images_seen >= next_log or images_seen >= total):
            next_log = images_seen + cfg["log"]["tick_kimg"] * 1000
            stats.update({k: v.item() for k, v in objective.monitors(extras).items()})
            stats["speed/images_per_s"] = (images_seen - start_images) / (time.time() - start_time)
            stats.update({"schedule/resolution": p.resolution, "schedule/alpha": p.alpha})
            for k, v in stats.items():
                writer.add_scalar(k, v, images_seen)
            write_grids(objective, G_ema, fixed_z, p, out, writer, images_seen)
        if images_seen >= next_ckpt + cfg["log"]["checkpoint_kimg"] * 1000 or images_seen >= total:
            next_ckpt = images_seen
            checkpoint()
    bar.close()
    if writer is not None:
        writer.close()
    return G_ema


@torch.no_grad()
def write_grids(objective, G_ema, z, phase, out, writer, images_seen):
    """The objective's image rows for fixed latents and noise (the RNG streams are left alone)."""
    device = next(G_ema.parameters()).device
    noise = G_ema.make_noise(z.shape[0], device, torch.Generator().manual_seed(0))
    grids = objective.grids(G_ema, z.to(device), noise, phase)
    rows = torch.cat([g.clamp(-1, 1).cpu() for g in grids.values()])
    save_image_grid(rows, os.path.join(out, "layers.png"), nrow=z.shape[0])
    save_image_grid(rows, os.path.join(out, "grids", f"layers-{images_seen / 1000:08.1f}k.png"), nrow=z.shape[0])
    for name, images in grids.items():
        writer.add_images(f"grids/{name}", (images.clamp(-1, 1).cpu() + 1) / 2, images_seen)
