"""PerturbGAN training (Bielski & Favaro 2019, sec. 3-4) on StyleGAN2 networks.

One iteration: a critic step (WGAN-GP, eq. 4: E D(x^) - E D(x) + lambda GP +
eps E D(x)^2) and a generator step (eq. 3: -E D(x^) + gamma1 size hinge +
gamma2 binarization), where x^ composites the layered generator's output
after a random shift of foreground and mask that the generator never sees.
Progressive growing 8 -> resolution, EMA generator, atomic checkpoints with
exact resume, TensorBoard scalars and layer grids. Several processes
(torchrun) average gradients with all-reduce; only rank 0 writes.
"""

import copy
import json
import math
import os
import random
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from ..checkpoint import load_checkpoint, save_checkpoint
from ..data.dataset import ResumableSampler, dataset_from_config
from ..images import save_image_grid
from ..losses import (drift_penalty, gradient_penalty, mask_binarization, mask_max_coverage_hinge, mask_size_hinge,
                      wgan_d_loss, wgan_g_loss)
from ..networks import Discriminator, channel_widths
from ..networks.layered import LayeredGenerator
from ..perturbations import contrast_jitter, random_shift
from ..render import composite
from .ema import ema_beta, update_ema
from .schedule import phase_at


def build_models(cfg):
    m = cfg["model"]
    channels = channel_widths(m["resolution"], m["channel_base"], m["channel_max"])
    G = LayeredGenerator(m["resolution"], m["z_dim"], m["w_dim"], m["n_mlp"], channels=channels,
                         variant=m.get("variant", "two"))
    D = Discriminator(m["resolution"], channels=channels, mbstd_group=m.get("mbstd_group", 4), progressive=True)
    return G, D


def perturbed_composite(layers, shift_range, jitter, generator):
    """x^ = (1 - m') jitter(B) + m' F' with (F', m') randomly shifted by up to shift_range x resolution."""
    max_shift = round(shift_range * layers.mask.shape[-1])
    fg, mask, _ = random_shift(layers.foreground, layers.mask, max_shift, generator)
    return composite(contrast_jitter(layers.background, jitter, generator), fg, mask)


def sample_latents(G, batch, mixing_prob, device, generator):
    z = torch.randn(batch, G.z_dim, generator=generator).to(device)
    if torch.rand([], generator=generator) < mixing_prob:
        inject = int(torch.randint(1, G.n_latent, [], generator=generator))
        return G.styles(z, torch.randn(batch, G.z_dim, generator=generator).to(device), inject)
    return G.styles(z)


def fade_real(real, alpha):
    """Real images at a fading-in resolution: blend with their 2x down-and-up-sampled version."""
    if alpha >= 1:
        return real
    low = F.interpolate(F.avg_pool2d(real, 2), scale_factor=2, mode="nearest")
    return low.lerp(real, alpha)


def mask_monitors(mask, x):
    """Failure-mode monitors: mask mean and its spread over samples, mask share on the image border,
    composite diversity (mean per-pixel std over the batch), soft-mask share (0.1 < m < 0.9)."""
    per_sample = mask.flatten(1).mean(1)
    border = torch.ones_like(mask[0, 0], dtype=torch.bool)
    border[2:-2, 2:-2] = False
    return {"mask/mean": per_sample.mean().item(), "mask/std_over_samples": per_sample.std().item(),
            "mask/border_share": (mask[:, 0, border].mean() / mask.mean().clamp_min(1e-8)).item(),
            "mask/soft_share": ((mask > 0.1) & (mask < 0.9)).float().mean().item(),
            "composite/diversity": x.std(0).mean().item()}


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


def train_perturbgan(cfg, out, resume=None, device="cpu"):
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    lcfg, pcfg, scfg = cfg["loss"], cfg["perturb"], cfg["schedule"]
    resolution = cfg["model"]["resolution"]
    random.seed(cfg["seed"])
    torch.manual_seed(cfg["seed"])  # identical initial weights on every rank
    G, D = build_models(cfg)
    G, D = G.to(device), D.to(device)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    torch.manual_seed(cfg["seed"] * 7919 + rank)  # then per-rank streams (noise inputs)
    opt_g = torch.optim.Adam(G.parameters(), lr=0.001, betas=tuple(cfg["betas"]))
    opt_d = torch.optim.Adam(D.parameters(), lr=0.001, betas=tuple(cfg["betas"]))
    rng = torch.Generator().manual_seed(cfg["seed"] * 7919 + rank)  # latents, mixing, shifts, interpolation
    ckpt_path = os.path.join(out, "checkpoint.pt")
    images_seen, step = 0, 0
    if resume:
        state = load_checkpoint(os.path.join(resume, "checkpoint.pt") if os.path.isdir(resume) else resume, device)
        for obj, key in ((G, "G"), (G_ema, "G_ema"), (D, "D"), (opt_g, "opt_g"), (opt_d, "opt_d")):
            obj.load_state_dict(state[key])
        images_seen, step = state["images_seen"], state["step"]
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
                         "step": step, "rng": rng_states, "config": cfg}, ckpt_path)

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
        kw = dict(resolution=p.resolution, alpha=p.alpha)

        # Critic step.
        real = fade_real(next(batches).to(device), p.alpha)
        with torch.no_grad():
            fake = perturbed_composite(G.synthesize(*sample_latents(G, batch, cfg["mixing_prob"], device, rng), **kw),
                                       pcfg["shift_range"], pcfg["bg_jitter"], rng)
        real_scores, fake_scores = D(real, alpha=p.alpha), D(fake, alpha=p.alpha)
        gp = gradient_penalty(D, real, fake, rng, alpha=p.alpha)
        drift = drift_penalty(real_scores)
        d_adv = wgan_d_loss(real_scores, fake_scores)
        opt_d.zero_grad(set_to_none=True)
        (d_adv + lcfg["gp_lambda"] * gp + lcfg["drift"] * drift).backward()
        if world > 1:
            average_gradients(D, world)
        opt_d.step()

        # Generator step.
        ws = sample_latents(G, batch, cfg["mixing_prob"], device, rng)
        layers = G.synthesize(*ws, **kw)
        fake = perturbed_composite(layers, pcfg["shift_range"], pcfg["bg_jitter"], rng)
        D.requires_grad_(False)
        g_adv = wgan_g_loss(D(fake, alpha=p.alpha))
        D.requires_grad_(True)
        size = mask_size_hinge(layers.mask, lcfg["eta"])
        binar = mask_binarization(layers.mask)
        g_loss = g_adv + lcfg["size_weight"] * size + lcfg["binarization_weight"] * binar
        if lcfg.get("max_coverage_weight", 0):
            g_loss = g_loss + lcfg["max_coverage_weight"] * mask_max_coverage_hinge(layers.mask, lcfg["max_coverage"])
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        if world > 1:
            average_gradients(G, world)
        opt_g.step()
        G.track_w_avg(*ws)
        if world > 1:
            average_w_avg(G, world)

        images_seen += p.batch
        step += 1
        update_ema(G_ema, G, ema_beta(p.batch, images_seen, cfg["ema"]["half_life_kimg"], cfg["ema"]["rampup"]))
        stats = {"loss/d_wgan": d_adv.item(), "loss/gradient_penalty": gp.item(), "loss/drift": drift.item(),
                 "loss/g_wgan": g_adv.item(), "loss/mask_size": size.item(), "loss/binarization": binar.item(),
                 "scores/real": real_scores.mean().item(), "scores/fake": fake_scores.mean().item()}
        check_finite(stats, step, ckpt_path)
        bar.update(p.batch)
        bar.set_postfix_str(f"{p.resolution}px a={p.alpha:.2f} kimg={images_seen / 1000:.1f} "
                            f"D={d_adv.item():.2f} G={g_adv.item():.2f} m={layers.mask.mean().item():.2f}")
        if rank == 0 and (images_seen >= next_log or images_seen >= total):
            next_log = images_seen + cfg["log"]["tick_kimg"] * 1000
            stats.update(mask_monitors(layers.mask.detach(), fake.detach()))
            stats["speed/images_per_s"] = (images_seen - start_images) / (time.time() - start_time)
            stats.update({"schedule/resolution": p.resolution, "schedule/alpha": p.alpha})
            for k, v in stats.items():
                writer.add_scalar(k, v, images_seen)
            write_grids(G_ema, fixed_z, p, pcfg, out, writer, images_seen)
        if images_seen >= next_ckpt + cfg["log"]["checkpoint_kimg"] * 1000 or images_seen >= total:
            next_ckpt = images_seen
            checkpoint()
    bar.close()
    if writer is not None:
        writer.close()
    return G_ema


@torch.no_grad()
def write_grids(G_ema, z, phase, pcfg, out, writer, images_seen):
    """Layer grids from fixed latents: background, foreground, mask, foreground x mask, composite, shifted."""
    device = next(G_ema.parameters()).device
    noise = G_ema.make_noise(z.shape[0], device, torch.Generator().manual_seed(0))  # fixed: leaves the RNG alone
    layers = G_ema(z.to(device), noise=noise, resolution=phase.resolution, alpha=phase.alpha)
    mask = layers.mask * 2 - 1
    shifted = perturbed_composite(layers, pcfg["shift_range"], 0.0, torch.Generator().manual_seed(0))
    grids = {"background": layers.background, "foreground": layers.foreground, "mask": mask.expand(-1, 3, -1, -1),
             "foreground_x_mask": layers.foreground * layers.mask,
             "composite": composite(layers.background, layers.foreground, layers.mask), "shifted_composite": shifted}
    rows = torch.cat([g.clamp(-1, 1).cpu() for g in grids.values()])
    n = z.shape[0]
    save_image_grid(rows, os.path.join(out, "layers.png"), nrow=n)
    save_image_grid(rows, os.path.join(out, "grids", f"layers-{images_seen / 1000:08.1f}k.png"), nrow=n)
    for name, images in grids.items():
        writer.add_images(f"layers/{name}", (images.clamp(-1, 1).cpu() + 1) / 2, images_seen)
