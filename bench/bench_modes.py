"""Training-step speed per mode, with the loop's own step (training.loop.train_step) at each config's last phase.

    python bench/bench_modes.py --device cuda                       # img/s per mode on a GPU
    python bench/bench_modes.py --device cpu --configs demo --steps 10
    python bench/bench_modes.py --standin --toy --steps 2            # on the CUDA stand-in (gpu_check.sh --dry-run)
    python bench/bench_modes.py --standin --configs perturb_car128 --batch 4 --steps 1 --warmup 1   # ops per step

Prints one row per config: resolution, batch, seconds per step, images per second, peak device memory, and
(with --standin) the operators one step dispatches and its host reads and copies, counted by the stand-in. Real batches are random
images on the device (the data loader is not timed). --toy shrinks every network (a check that the script and
the modes run, not a speed figure).
"""

import os
import sys
import time

import click
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from layered_gan.config import load_config  # noqa: E402
from layered_gan.training.loop import TrainingState, train_step  # noqa: E402
from layered_gan.training.objectives import make_objective  # noqa: E402
from layered_gan.training.schedule import phase_at  # noqa: E402

TOY = ["model.resolution=16", "model.z_dim=16", "model.w_dim=16", "model.n_mlp=1", "model.channel_base=128",
       "model.channel_max=8", "model.mbstd_group=4", "model.projected_resolution=64"]


def synchronize(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def bench_config(name, device, steps, warmup, toy, standin, batch=None):
    full = load_config(name)
    mode, grows = full["mode"], full["schedule"].get("start_resolution", 0) < full["model"]["resolution"]
    overrides = TOY + ["schedule.batch=8", f"schedule.start_resolution={8 if grows else 16}"] + (
        ["model.init=null"] if mode == "perturb" else []) if toy else []
    if toy and mode == "labels4free":
        overrides = ["schedule.batch=8"]  # the frozen generator is the shipped 32-px one
    cfg = load_config(name, overrides + ([f"schedule.batch={batch}"] if batch else []))
    os.chdir(ROOT)  # configs name checkpoints relative to the repository
    objective = make_objective(cfg)
    run = TrainingState(cfg, objective, 0, None, device)
    phase = phase_at(cfg["schedule"]["total_kimg"], cfg["schedule"], cfg["model"]["resolution"])
    for opt in (run.opt_g, run.opt_d):
        for group in opt.param_groups:
            group["lr"] = phase.lr
    real = torch.randn(phase.batch, 3, phase.resolution, phase.resolution).to(device)
    times, events = [], {}
    for i in range(warmup + steps):
        synchronize(device)
        start = time.perf_counter()
        if standin is not None and i == warmup:
            standin.clear()
        train_step(run, objective, real, phase, 1, cfg)
        synchronize(device)
        if standin is not None and i == warmup:
            events = standin.counts()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    seconds = sorted(times)[len(times) // 2]
    memory = torch.cuda.max_memory_allocated(device) / 2 ** 30 if torch.device(device).type == "cuda" else None
    return dict(config=name, resolution=phase.resolution, batch=phase.batch, seconds=seconds,
                images_per_s=phase.batch / seconds, memory_gib=memory, events=events)


@click.command()
@click.option("--configs", default="demo,stylegan2_demo,l4f_demo,demo_projected,perturb_car128", show_default=True)
@click.option("--device", default="cuda" if torch.cuda.is_available() else "cpu", show_default=True)
@click.option("--steps", default=10, show_default=True, type=click.IntRange(1))
@click.option("--warmup", default=3, show_default=True, type=click.IntRange(0))
@click.option("--batch", type=click.IntRange(1), default=None, help="Batch size (default: the config's at its last "
              "phase).")
@click.option("--toy", is_flag=True, help="Tiny networks: checks the script runs, not a speed figure.")
@click.option("--standin", is_flag=True, help="On the CUDA stand-in (tests/cuda_standin.py), counting host syncs.")
def main(configs, device, steps, warmup, batch, toy, standin):
    module = None
    if standin:
        sys.path.insert(0, os.path.join(ROOT, "tests"))
        import cuda_standin as module
        module.install()
        device = "standin"
    name = torch.cuda.get_device_name(device) if torch.device(device).type == "cuda" else device
    print(f"training step per mode on {name} (torch {torch.__version__}), median of {steps} after {warmup} warm-up")
    print(f"{'config':16s} {'res':>4s} {'batch':>5s} {'s/step':>8s} {'img/s':>8s} {'mem GiB':>8s}  events per step")
    for config in configs.split(","):
        if module is not None:
            with module.active():
                row = bench_config(config, device, steps, warmup, toy, module, batch)
        else:
            row = bench_config(config, device, steps, warmup, toy, None, batch)
        memory = f"{row['memory_gib']:8.2f}" if row["memory_gib"] is not None else f"{'-':>8s}"
        print(f"{config:16s} {row['resolution']:4d} {row['batch']:5d} {row['seconds']:8.3f} {row['images_per_s']:8.1f} "
              f"{memory}  {row['events'] or ''}", flush=True)


if __name__ == "__main__":
    main()
