"""Cost of the projected discriminator (Sauer et al. 2021) against StyleGAN2's, in the training loop's G+D step.

Each variant runs in its own process (so its peak RSS is its own): the stylegan2_demo config (widths 32,
32 px, batch 32) with the StyleGAN2 D (logistic loss; lazy R1 every 16 steps, so the timed steps 1..N carry
none), or with the projected D at each model.projected_resolution (hinge loss, DiffAugment). The variants
run interleaved, round after round, since the machine is shared.

    OMP_NUM_THREADS=1 python bench/bench_projected.py --steps 3 --rounds 2
"""

import json
import os
import resource
import subprocess
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

VARIANTS = {"stylegan2": [], **{f"projected{r}": ['model.discriminator="projected"', f"model.projected_resolution={r}",
                                                  'loss.type="hinge"'] for r in (64, 128, 224)}}


def measure(variant, steps, device):
    """{seconds per step, images/s, peak memory} of `steps` G+D steps after one warm-up step."""
    cfg = load_config("stylegan2_demo", VARIANTS[variant])
    objective = make_objective(cfg)
    run = TrainingState(cfg, objective, 0, None, device)
    phase = phase_at(0, cfg["schedule"], cfg["model"]["resolution"])
    real = torch.rand(phase.batch, 3, phase.resolution, phase.resolution, device=device) * 2 - 1
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        train_step(run, objective, real, phase, 1, cfg)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    best = min(times[1:])
    peak = (torch.cuda.max_memory_allocated() if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"variant": variant, "s_per_step": best, "images_per_s": phase.batch / best, "peak_mib": peak / 2 ** 20,
            "d_params": sum(p.numel() for p in run.D.parameters())}


@click.command()
@click.option("--steps", default=3, show_default=True, help="Timed steps per variant (best of them is kept).")
@click.option("--rounds", default=2, show_default=True, help="Interleaved rounds over the variants.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--one", default=None, hidden=True, help="Measure this variant in this process (internal).")
def main(steps, rounds, device, one):
    if one:
        print(json.dumps(measure(one, steps, device)))
        return
    results = {v: [] for v in VARIANTS}
    for _ in range(rounds):
        for variant in VARIANTS:
            command = [sys.executable, __file__, "--one", variant, "--steps", str(steps), "--device", device]
            out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            results[variant].append(json.loads(out.strip().splitlines()[-1]))
    print("| D | s/step (best, per round) | images/s (best) | peak memory MiB | D parameters |")
    print("| --- | --- | --- | --- | --- |")
    for variant, rows in results.items():
        per_round = ", ".join(f"{r['s_per_step']:.3f}" for r in rows)
        best = min(rows, key=lambda r: r["s_per_step"])
        peak = max(r["peak_mib"] for r in rows)
        print(f"| {variant} | {per_round} | {best['images_per_s']:.1f} | {peak:.0f} | {best['d_params'] / 1e6:.2f} M |")


if __name__ == "__main__":
    main()
