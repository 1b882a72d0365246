"""StyleGAN2 G+D training-step throughput, 'fast' against 'plain' formulation, side by side.

One iteration = a D step (logistic loss + R1 on every step) and a G step
(non-saturating loss), with style mixing: the StyleGAN2 objective of
layered_gan.training.objectives with r1_interval = 1.
'plain' is the straightforward formulation (grouped per-sample convolutions,
zero-insertion up-sampling); 'fast' is the default. Also times each fused op,
reference against CUDA where a GPU is present.

    python bench/bench_networks.py                  # small and config-f widths
    python bench/bench_networks.py --configs small --steps 5
    python bench/bench_networks.py --speedups fast,fused,fused+channels_last --iterations 200

--speedups times the candidate speed-ups of bench/speedups.py on the demo configs' own iteration instead,
the variants interleaved in one run.
"""

import os
import resource
import sys
import time

import click
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from cuda_ops import bias_act, setup_filter, upfirdn2d  # noqa: E402
from layered_gan.networks import channel_widths  # noqa: E402
from layered_gan.training.objectives import StyleGAN2  # noqa: E402
from layered_gan.training.schedule import phase_at  # noqa: E402
from speedups import compare  # noqa: E402

CONFIGS = {
    # name: resolution, batch, channel widths, z/w dim, mapping layers
    "small": (32, 32, dict(channel_base=1024, channel_max=32), 32, 2),
    "config-f": (64, 8, dict(channel_base=32768, channel_max=512), 512, 8),
}


def time_steps(name, formulation, steps, warmup, device):
    res, batch, widths, zdim, n_mlp = CONFIGS[name]
    torch.manual_seed(0)
    cfg = {"model": dict(resolution=res, z_dim=zdim, w_dim=zdim, n_mlp=n_mlp, formulation=formulation, **widths),
           "loss": {"type": "logistic", "r1_gamma": 10.0, "r1_interval": 1}, "mixing_prob": 0.9}
    objective = StyleGAN2(cfg)
    G, D = (net.to(device) for net in objective.build())
    phase = phase_at(0, {"phase_kimg": 0, "batch": batch, "lr": 0.002}, res)
    opt_g = torch.optim.Adam(G.parameters(), lr=0.002, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(D.parameters(), lr=0.002, betas=(0.0, 0.99))
    real = torch.randn(batch, 3, res, res, device=device)
    rng = torch.Generator().manual_seed(0)
    times = []
    for i in range(warmup + steps):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        loss, _ = objective.d_loss(G, D, real, phase, rng, step=i)
        opt_d.zero_grad(set_to_none=True)
        loss.backward()
        opt_d.step()
        D.requires_grad_(False)
        loss, _, _ = objective.g_loss(G, D, batch, phase, rng, i, device)
        D.requires_grad_(True)
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return min(times), sum(times) / len(times), batch


def bench_ops(device, repeats=20):
    x = torch.randn(8, 256, 64, 64, device=device, requires_grad=True)
    f = setup_filter([1, 3, 3, 1], device=device)
    b = torch.zeros(256, device=device, requires_grad=True)
    cases = {
        "upfirdn2d up=2 (FIR after upsampling)": lambda impl: upfirdn2d(x, f, up=2, padding=(2, 1, 2, 1), gain=4, impl=impl),
        "upfirdn2d down=2 (blur before conv)": lambda impl: upfirdn2d(x, f, padding=2, impl=impl),
        "bias_act lrelu": lambda impl: bias_act(x, b, act="lrelu", impl=impl),
    }
    impls = ["ref", "cuda"] if device == "cuda" else ["ref"]
    print(f"\nops on {device}, x = [8, 256, 64, 64], forward + backward, ms (median of {repeats}):")
    for label, fn in cases.items():
        row = []
        for impl in impls:
            samples = []
            for _ in range(repeats + 2):
                if device == "cuda":
                    torch.cuda.synchronize()
                t = time.perf_counter()
                fn(impl).square().mean().backward()
                if device == "cuda":
                    torch.cuda.synchronize()
                samples.append(time.perf_counter() - t)
            row.append(sorted(samples[2:])[repeats // 2] * 1e3)
        ratio = f"  ref/cuda {row[0] / row[1]:.2f}x" if len(row) == 2 else ""
        print(f"  {label:40s}" + "".join(f"  {impl} {ms:8.2f}" for impl, ms in zip(impls, row)) + ratio)


def print_speedups(config, variants, iterations, warmup, chunk):
    print(f"\n{config}: one training iteration (D step, lazy R1 included, and G step), {iterations} "
          f"iterations per variant after {warmup} of warm-up, interleaved {chunk} at a time", flush=True)
    results = compare(config, variants, iterations, warmup, chunk, log=lambda line: print(line, flush=True))
    base = results[variants[0]][0]
    for variant, (mean, warm, batch) in results.items():
        print(f"  {variant:21s}: {mean:6.3f} s/iteration, {batch / mean:6.1f} images/s, {base / mean:.2f}x; "
              f"warm-up {warm:.1f} s", flush=True)


@click.command()
@click.option("--configs", default="small,config-f", show_default=True, help="Comma-separated: small, config-f.")
@click.option("--steps", default=3, show_default=True, help="Timed iterations per formulation.")
@click.option("--warmup", default=1, show_default=True)
@click.option("--device", default="cuda" if torch.cuda.is_available() else "cpu", show_default=True)
@click.option("--ops/--no-ops", default=True, show_default=True, help="Also time the fused ops.")
@click.option("--speedups", default=None, help="Comma-separated variants of bench/speedups.py (fast, fused, "
              "fused+channels_last, fast+compile, ...), the first the baseline. Times those instead (CPU).")
@click.option("--speedup-configs", default="stylegan2_demo,demo", show_default=True, help="Configs for --speedups.")
@click.option("--iterations", default=200, show_default=True, help="--speedups: timed iterations per variant.")
@click.option("--chunk", default=10, show_default=True, help="--speedups: iterations per turn of a variant.")
def main(configs, steps, warmup, device, ops, speedups, speedup_configs, iterations, chunk):
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}")
    if speedups:
        for config in speedup_configs.split(","):
            print_speedups(config, speedups.split(","), iterations, warmup, chunk)
        return
    for name in configs.split(","):
        res, batch, widths, _, _ = CONFIGS[name]
        print(f"\n{name}: {res}x{res}, batch {batch}, widths {channel_widths(res, **widths)}")
        results = {}
        for formulation in ("plain", "fast"):
            best, mean, batch = time_steps(name, formulation, steps, warmup, device)
            results[formulation] = best
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"  {formulation:5s}: {best:7.3f} s/iteration (mean {mean:.3f}), {batch / best:7.2f} images/s, "
                  f"peak RSS so far {rss:.0f} MiB")
        print(f"  speed-up fast over plain: {results['plain'] / results['fast']:.2f}x")
    if ops:
        bench_ops(device)


if __name__ == "__main__":
    main()
