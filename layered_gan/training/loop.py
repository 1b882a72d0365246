"""The training loop shared by every objective (training/objectives/): PerturbGAN, StyleGAN2, Labels4Free.

Each iteration: a critic step and a generator step of the objective at the
current phase of the progressive schedule (8 -> resolution, PerturbGAN sec. 3.4),
then the EMA update. Atomic checkpoints with exact resume, TensorBoard scalars
and image grids. Several processes (torchrun) average gradients with
all-reduce and keep identical weights; only rank 0 writes.
"""

import copy
import functools
import os
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from cuda_ops import setup_filter, upfirdn2d

from .. import rng
from ..checkpoint import checkpoint_file, load_checkpoint, save_checkpoint
from ..data.dataset import ResumableSampler, dataset_from_config
from ..errors import BadValue
from ..files import write_json
from ..images import save_image_grid
from .ema import step_beta, update_ema
from .metrics import TrainingFID
from .objectives import make_objective
from .precision import Precision, in_one_bucket
from .run_folder import remove_stale_temporaries
from .schedule import per_resolution, phase_at, schedule_resolutions


FADE_FILTER = (1, 3, 3, 1)  # the networks' resample_filter


@functools.lru_cache(maxsize=None)
def fade_filter(device):
    """FADE_FILTER on `device`, made once (not copied to the device at every step)."""
    return setup_filter(FADE_FILTER, device=device)


def fade_real(real, alpha, resampling="fir"):
    """Real images at a fading-in resolution: blend with their 2x down-and-up-sampled version; "fir" resamples
    with the [1, 3, 3, 1] filter of the generator's fade (SynthesisNetwork.upsample_rgb) and D's down-sampling, so
    during a fade reals and fakes share one blur; "box" is average pooling and nearest up-sampling."""
    if alpha >= 1:
        return real
    if resampling == "box":
        low = F.interpolate(F.avg_pool2d(real, 2), scale_factor=2, mode="nearest")
    else:
        f = fade_filter(real.device)
        low = upfirdn2d(upfirdn2d(real, f, down=2, padding=1), f, up=2, padding=(2, 1, 2, 1), gain=4)
    return low.lerp(real, alpha)


def average_gradients(module, world_size, buffers=()):
    """Average `module`'s gradients and `buffers` over the processes with one all-reduce of one flat tensor (a
    bucket), copied back: one call per network step, not one per parameter. Lazy R1 and path length are terms of
    the step's one backward pass, so they are in it. Parameters without a gradient are left out: which ones have
    none depends on the phase and step (the same on every process), not on random draws, so the layouts agree.
    Two processes sum each element as a + b either way, bit for bit the per-parameter all-reduce.

    A manual bucket, not DistributedDataParallel: the G step backpropagates through a frozen D, and the buffers
    each process updates itself (`shared_buffers`) ride in G's bucket, which DDP's gradient hooks do not cover."""
    def mean(bucket):
        dist.all_reduce(bucket)
        bucket /= world_size

    in_one_bucket([p.grad for p in module.parameters() if p.grad is not None] + list(buffers), mean)


def shared_buffers(G, D):
    """The buffers each process updates from its own samples: G's truncation centre (w_avg) and the running means
    and variances of D's batch norms (projected D; D's forward updates them in the D and the G step). In G's
    bucket, after D's last forward, so all processes hold the same buffers after every step; the average is
    linear, so once a step equals after each update. torch's SyncBatchNorm refuses CPU tensors and all-gathers
    in every forward; here each process normalizes by its own batch and the variance is the processes' mean."""
    return [b for net in (G, D) for name, b in net.named_buffers() if name.endswith(("w_avg", "running_mean",
                                                                                    "running_var"))]


def check_batches(cfg, world, D):
    """Before training: every phase's batch must split over the processes, and each process's share must be a
    multiple of D's minibatch-stddev group (it groups a process's own samples only, so a group never spans
    processes; a share it does not divide would shrink the group, unlike one process on the whole batch)."""
    group = getattr(D, "mbstd_group", None)  # the projected D has none; None: the whole batch is one group
    for resolution in schedule_resolutions(cfg):
        batch = int(per_resolution(cfg["schedule"]["batch"], resolution, "batch"))
        if batch % world:
            raise BadValue(f"batch {batch} at {resolution} px does not split over {world} processes")
        if world > 1 and group and batch // world % group:
            raise BadValue(f"batch {batch} at {resolution} px: {batch // world} per process (of {world}), which "
                           f"model.mbstd_group = {group} does not divide (minibatch-stddev groups never span "
                           f"processes); use a batch that is a multiple of {world * group}")


class TickStats:
    """A log tick's step statistics, summed on the device and read by the host once per tick (no host sync in a
    step): their means, and for each the first step at which it was not finite."""

    def __init__(self):
        self.sums, self.first_bad, self.steps = {}, {}, 0

    def add(self, stats, step):
        self.steps += 1
        for name, value in stats.items():
            value = value.detach().float()
            if name not in self.sums:
                self.sums[name], self.first_bad[name] = torch.zeros_like(value), torch.full_like(value, -1.0)
            self.sums[name] += value
            bad = ~torch.isfinite(value) & (self.first_bad[name] < 0)
            self.first_bad[name] = torch.where(bad, float(step), self.first_bad[name])

    def read(self):
        """({name: mean over the tick's steps}, {name: first non-finite step}), in one host read; then a new tick
        begins."""
        names, steps = list(self.sums), self.steps
        if not names:
            return {}, {}
        values = torch.stack([self.sums[k] for k in names] + [self.first_bad[k] for k in names]).tolist()
        self.sums, self.first_bad, self.steps = {}, {}, 0
        means = {k: v / steps for k, v in zip(names, values)}
        return means, {k: int(v) for k, v in zip(names, values[len(names):]) if v >= 0}


def check_finite(means, first_bad, ckpt_path):
    """Stop at a non-finite statistic, naming it, its first step and the last good checkpoint (read at each tick and
    before each checkpoint, so a checkpoint never holds weights a non-finite step made)."""
    if first_bad:
        name = min(first_bad, key=first_bad.get)
        last = ckpt_path if os.path.isfile(ckpt_path) else "none written yet"
        raise FloatingPointError(f"non-finite {name} = {means[name]} at step {first_bad[name]}; last good checkpoint: "
                                 f"{last}")


def lazy_ratios(cfg, objective):
    """{"G": c, "D": c}: c = interval / (interval + 1) for a network regularized lazily when config `lazy_adam` is
    on (StyleGAN2 sec. 3.1: lr x c, betas ** c), else 1."""
    intervals = objective.lazy_intervals() if cfg.get("lazy_adam", False) else {}
    ratios = {}
    for net in ("G", "D"):
        k = intervals.get(net)
        ratios[net] = k / (k + 1) if k else 1
    return ratios


def adam(cfg, net, ratio=1):
    """Adam over net's parameters with betas ** ratio (lazy_ratios), as the loop and the benchmarks build it; the lr is
    set per phase."""
    return torch.optim.Adam(net.parameters(), lr=0.001, betas=tuple(b ** ratio for b in cfg["betas"]))


class TrainingState:
    """What a training run holds between steps: models, optimizers, its RNG stream and its position."""

    def __init__(self, cfg, objective, rank, resume, device):
        torch.manual_seed(cfg["seed"])  # identical initial weights on every rank
        self.G, self.D = objective.build()
        if not resume:
            objective.initialize(self.G, self.D)  # a fresh run's starting weights (PerturbGAN's model.init)
        self.G, self.D = self.G.to(device), self.D.to(device)
        if cfg["model"].get("channels_last"):  # faster on the CPU demos (bench/RESULTS.md, issue 21)
            self.G = self.G.to(memory_format=torch.channels_last)
            self.D = self.D.to(memory_format=torch.channels_last)
        self.precision = Precision(cfg.get("precision", "fp32"), device)  # absent in runs before issue 28
        self.precision.prepare(self.G, self.D)  # fp16: before G_ema is copied, which keeps G's float16 blocks
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        torch.manual_seed(cfg["seed"] * 7919 + rank)  # then per-rank streams (noise inputs)
        self.lr_ratio = lazy_ratios(cfg, objective)
        self.opt_g, self.opt_d = (adam(cfg, net, self.lr_ratio[name]) for name, net in (("G", self.G), ("D", self.D)))
        self.rng = rng.generator(cfg["seed"] * 7919 + rank)  # latents, mixing, shifts, ... (on the CPU: rng.py)
        self.images_seen, self.step, self.seed = 0, 0, cfg["seed"]
        self.train_seconds = 0.0  # wall time spent training, metrics excluded (metrics.py)

    def _modules(self):
        return {"G": self.G, "G_ema": self.G_ema, "D": self.D, "opt_g": self.opt_g, "opt_d": self.opt_d}

    def resume(self, path, objective, rank, world, device):
        """Continue from a checkpoint: weights, optimizers, position and this rank's random streams. Read on the CPU
        (load_state_dict copies onto the device), so a checkpoint from any device resumes on any other. Returns
        notes for the log: a world size other than the checkpoint's re-splits the streams (data order is a function
        of the position and needs nothing)."""
        state = load_checkpoint(checkpoint_file(path))
        for key, obj in self._modules().items():
            obj.load_state_dict(state[key])
        self.images_seen, self.step = state["images_seen"], state["step"]
        self.train_seconds = state.get("train_seconds", 0.0)  # absent in checkpoints before log.fid_kimg
        objective.load_state_dict(state["objective"])
        saved_world = len(state["rng"])
        if saved_world != world:
            seed = self.seed * 7919 + rank + 104729 * self.step  # fresh per-rank streams at this position
            torch.manual_seed(seed)
            self.rng.manual_seed(seed)
            return [f"resumed on {world} processes from a checkpoint of {saved_world}: data re-split by position, "
                    f"random streams restarted per rank from the step ({self.step})"]
        note = rng.restore(state["rng"][rank], device, {"rng": self.rng})
        return [note] if note else []

    def save(self, path, objective, cfg, rank, world, device):
        """Called by every rank at the same step: the random streams are gathered collectively; rank 0 writes."""
        mine = rng.capture(device, {"rng": self.rng})
        rng_states = [mine]
        if world > 1:
            rng_states = [None] * world
            dist.all_gather_object(rng_states, mine)
        if rank == 0:
            state = {key: obj.state_dict() for key, obj in self._modules().items()}
            save_checkpoint({**state, "images_seen": self.images_seen, "step": self.step, "rng": rng_states,
                             "train_seconds": self.train_seconds,
                             "objective": objective.state_dict(), "config": cfg}, path)


def open_dataset(cfg, images_seen, rank, world):
    """The run's dataset at the resolution of its current phase; rank 0 builds what the ranks share first."""
    if rank != 0:
        dist.barrier()  # rank 0 first builds what the ranks share (the synthetic dataset, key caches)
    dataset = dataset_from_config(cfg["data"], phase_at(images_seen / 1000, cfg["schedule"],
                                                        cfg["model"]["resolution"]).resolution)
    if world > 1 and rank == 0:
        dist.barrier()
    return dataset


def start_phase(run, phase, dataset, cfg, world, device):
    """A new resolution: the dataset's size, a loader resuming the data order at images_seen (into pinned memory
    for a CUDA device, so the batch's copy does not wait), the lr."""
    dataset.set_resolution(phase.resolution)
    sampler = ResumableSampler(len(dataset), cfg["seed"], run.images_seen, dist_rank(), world)
    loader = torch.utils.data.DataLoader(  # own generator: creating it must not draw from the global RNG
        dataset, batch_size=phase.batch // world, sampler=sampler, num_workers=cfg["workers"],
        persistent_workers=cfg["workers"] > 0, generator=rng.generator(cfg["seed"]),
        pin_memory=torch.device(device).type == "cuda")
    for opt, name in ((run.opt_g, "G"), (run.opt_d, "D")):
        for group in opt.param_groups:
            group["lr"] = phase.lr * run.lr_ratio[name]
    return iter(loader)


def train_step(run, objective, real, phase, world, cfg):
    """One critic step, one generator step, the EMA update; returns (stats, extras): device tensors, never read
    here (TickStats reads them once per tick)."""
    G, D = run.G, run.D
    device = real.device
    real = fade_real(real, phase.alpha, cfg["schedule"].get("real_fade", "box"))  # absent in runs before issue 18
    with run.precision.autocast():
        d_loss, stats = objective.d_loss(G, D, real, phase, run.rng, run.step)
    run.opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    if world > 1:
        average_gradients(D, world)
    run.precision.sanitize(D)
    run.opt_d.step()

    D.requires_grad_(False)  # the generator step needs gradients through D, not for it
    with run.precision.autocast():
        g_loss, g_stats, extras = objective.g_loss(G, D, phase.batch // world, phase, run.rng, run.step, device)
    D.requires_grad_(True)
    run.opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    if world > 1:
        average_gradients(G, world, shared_buffers(G, D))
    run.precision.sanitize(G)
    run.opt_g.step()
    stats.update(g_stats)

    run.images_seen += phase.batch
    run.step += 1
    update_ema(run.G_ema, G, step_beta(cfg["ema"], phase.batch, run.images_seen))
    return {"loss/D": d_loss, "loss/G": g_loss, **stats}, extras


class RunLog:
    """Rank 0's outputs besides checkpoints: config.json, TensorBoard scalars, image grids, the progress bar."""

    def __init__(self, cfg, out, G, images_seen, total, rank):
        self.cfg, self.out, self.rank, self.writer = cfg, out, rank, None
        if rank == 0:
            from torch.utils.tensorboard import SummaryWriter
            os.makedirs(out, exist_ok=True)
            remove_stale_temporaries(out)
            write_json(os.path.join(out, "config.json"), cfg)
            self.writer = SummaryWriter(os.path.join(out, "tensorboard"))
        self.fixed_z = torch.randn(cfg["log"]["grid_size"], G.z_dim, generator=rng.generator(cfg["seed"]))
        self.bar = tqdm(total=total, initial=images_seen, unit="img", disable=rank != 0, dynamic_ncols=True)
        self.next_log, self.total = images_seen, total
        self.start_time, self.start_images = time.time(), images_seen
        self.stats = TickStats()

    def step(self, run, phase, stats):
        """Sum the step's statistics; True when a tick is due (every rank keeps the same ticks)."""
        self.bar.update(phase.batch)
        self.stats.add(stats, run.step)
        return run.images_seen >= self.next_log or run.images_seen >= self.total

    def flush(self, ckpt_path):
        """Read the tick's statistics (one host read) and stop at a non-finite one; returns their means."""
        means, first_bad = self.stats.read()
        check_finite(means, first_bad, ckpt_path)
        return means

    def tick(self, run, objective, phase, extras, ckpt_path):
        """The tick's means to TensorBoard and the progress bar, the image grids (rank 0)."""
        means = self.flush(ckpt_path)
        self.next_log = run.images_seen + self.cfg["log"]["tick_kimg"] * 1000
        if self.rank != 0:
            return
        means.update({k: v.item() for k, v in objective.monitors(extras).items()})
        means.update({k: v.item() for k, v in run.precision.counts().items()})  # since the process started
        mask = f" m={extras['mask'].mean().item():.2f}" if "mask" in extras else ""
        self.bar.set_postfix_str(f"{phase.resolution}px a={phase.alpha:.2f} kimg={run.images_seen / 1000:.1f} "
                                 f"D={means['loss/D']:.2f} G={means['loss/G']:.2f}{mask}")
        means["speed/images_per_s"] = (run.images_seen - self.start_images) / (time.time() - self.start_time)
        means.update({"schedule/resolution": phase.resolution, "schedule/alpha": phase.alpha})
        for k, v in means.items():
            self.writer.add_scalar(k, v, run.images_seen)
        write_grids(objective, run.G_ema, self.fixed_z, phase, self.out, self.writer, run.images_seen)

    def close(self):
        self.bar.close()
        if self.writer is not None:
            self.writer.close()


def dist_rank():
    return dist.get_rank() if dist.is_initialized() else 0


def train(cfg, out, resume=None, device="cpu"):
    """Train (or, with resume = a run folder or checkpoint, continue) to cfg.schedule.total_kimg.

    Returns the EMA generator. Under torch.distributed each process trains on its share of the batch.
    """
    rank, world = dist_rank(), (dist.get_world_size() if dist.is_initialized() else 1)
    objective = make_objective(cfg)
    run = TrainingState(cfg, objective, rank, resume, device)
    check_batches(cfg, world, run.D)
    notes = run.resume(resume, objective, rank, world, device) if resume else []
    dataset = open_dataset(cfg, run.images_seen, rank, world)
    total = int(cfg["schedule"]["total_kimg"] * 1000)
    log = RunLog(cfg, out, run.G, run.images_seen, total, rank)
    for note in notes if rank == 0 else []:
        log.bar.write(note)
    ckpt_path = os.path.join(out, "checkpoint.pt")
    fid = TrainingFID(cfg, out, run.images_seen, rank, device)
    phase, batches, next_ckpt = None, None, run.images_seen
    clock = time.time()

    def score_if_due():
        nonlocal clock
        if fid.due(run.images_seen, total):
            run.train_seconds += time.time() - clock
            entry = fid(run.G_ema, run.images_seen, run.train_seconds, log.writer)
            log.bar.write(f"kimg {entry['kimg']:.1f}: FID {entry['fid']:.4f} ({entry['features']} features, "
                          f"{entry['num']} images), {entry['train_seconds']:.0f} s of training")
            clock = time.time()

    def save():
        nonlocal clock
        log.flush(ckpt_path)  # never a checkpoint of weights a non-finite step made
        run.train_seconds += time.time() - clock
        clock = time.time()
        run.save(ckpt_path, objective, cfg, rank, world, device)

    while run.images_seen < total:
        score_if_due()
        p = phase_at(run.images_seen / 1000, cfg["schedule"], cfg["model"]["resolution"])
        if phase is None or p.index != phase.index:  # new resolution: data, batch size, learning rate
            if phase is not None:
                save()
            batches = start_phase(run, p, dataset, cfg, world, device)
        phase = p
        real = next(batches).to(device, non_blocking=True)
        stats, extras = train_step(run, objective, real, phase, world, cfg)
        if log.step(run, phase, stats):
            log.tick(run, objective, phase, extras, ckpt_path)
        if run.images_seen >= next_ckpt + cfg["log"]["checkpoint_kimg"] * 1000 or run.images_seen >= total:
            next_ckpt = run.images_seen
            save()
    score_if_due()
    log.close()
    return run.G_ema


@torch.no_grad()
def write_grids(objective, G_ema, z, phase, out, writer, images_seen):
    """The objective's image rows for fixed latents and noise (the RNG streams are left alone)."""
    device = next(G_ema.parameters()).device
    noise = G_ema.make_noise(z.shape[0], device, rng.generator(0))
    grids = objective.grids(G_ema, z.to(device), noise, phase)
    rows = torch.cat([g.clamp(-1, 1).cpu() for g in grids.values()])
    save_image_grid(rows, os.path.join(out, "layers.png"), nrow=z.shape[0])
    save_image_grid(rows, os.path.join(out, "grids", f"layers-{images_seen / 1000:010.3f}k.png"), nrow=z.shape[0])
    for name, images in grids.items():
        writer.add_images(f"grids/{name}", (images.clamp(-1, 1).cpu() + 1) / 2, images_seen)
