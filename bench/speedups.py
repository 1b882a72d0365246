"""Speed-ups of a demo training iteration on the CPU, timed side by side (bench_networks --speedups).

An iteration is the training loop's: a D step (with lazy R1 on its steps) and a G step, built from a config
in configs/ as it stands. A variant joins with '+' a formulation (model.formulation: fast, the default, or
fused, which fuses each synthesis layer's elementwise tail) and optionally
- channels_last: networks and real images in channels-last memory format (model.channels_last);
- compile: torch.compile (inductor) on the mapping and synthesis networks and on D's forward. Double
  backward does not go through compiled graphs, so the lazy-R1 D steps use the eager D (same parameters);
- native_conv: oneDNN off (torch.backends.mkldnn) during this variant's iterations: PyTorch's own convolution.
E.g. fast, fused+channels_last, fast+compile, fused+channels_last+native_conv.
"""

import time

import torch

from layered_gan.config import load_config
from layered_gan.networks.stylegan2 import MappingNetwork, SynthesisNetwork
from layered_gan.training.loop import adam
from layered_gan.training.objectives import make_objective
from layered_gan.training.schedule import phase_at

FORMULATIONS, OPTIONS = ("fast", "fused"), ("channels_last", "compile", "native_conv")


class DemoIteration:
    """One variant's networks, optimizers and random streams, stepped one training iteration at a time."""

    def __init__(self, config, variant, seed=0):
        formulation, *options = variant.split("+")
        if formulation not in FORMULATIONS or not set(options) <= set(OPTIONS):
            raise ValueError(f"bad variant {variant!r}: one of {FORMULATIONS}, then '+' any of {OPTIONS}")
        self.cfg = load_config(config, [f"model.formulation={formulation}"])
        res, scfg = self.cfg["model"]["resolution"], self.cfg["schedule"]
        self.objective = make_objective(self.cfg)
        torch.manual_seed(seed)
        self.G, self.D = self.objective.build()
        self.phase = phase_at(0, scfg, res)
        self.real = torch.randn(self.phase.batch, 3, res, res, generator=torch.Generator().manual_seed(seed))
        if "channels_last" in options:
            self.G, self.D = self.G.to(memory_format=torch.channels_last), self.D.to(memory_format=torch.channels_last)
            self.real = self.real.contiguous(memory_format=torch.channels_last)
        self.D_fast = self.D
        if "compile" in options:
            for module in self.G.modules():
                if isinstance(module, (MappingNetwork, SynthesisNetwork)):
                    module.compile()
            self.D_fast = torch.compile(self.D)
        self.opt_g, self.opt_d = adam(self.cfg, self.G), adam(self.cfg, self.D)
        for opt in (self.opt_g, self.opt_d):
            opt.param_groups[0]["lr"] = self.phase.lr
        self.rng = torch.Generator().manual_seed(seed)
        self.mkldnn = "native_conv" not in options
        self.step = 0

    def r1_step(self):
        lcfg = self.cfg["loss"]
        return lcfg.get("r1_gamma", 0) > 0 and self.step % lcfg.get("r1_interval", 1) == 0

    def __call__(self):
        """One iteration in the training loop's order; returns its wall time in seconds."""
        with torch.backends.mkldnn.flags(enabled=self.mkldnn):
            return self._iteration()

    def _iteration(self):
        start = time.perf_counter()
        D = self.D if self.r1_step() else self.D_fast
        d_loss, _ = self.objective.d_loss(self.G, D, self.real, self.phase, self.rng, self.step)
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        self.D.requires_grad_(False)
        g_loss, _, _ = self.objective.g_loss(self.G, self.D_fast, self.phase.batch, self.phase, self.rng, self.step,
                                             "cpu")
        self.D.requires_grad_(True)
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        self.step += 1
        return time.perf_counter() - start


def compare(config, variants, iterations, warmup, chunk, log=print):
    """Each variant's mean seconds per iteration, run interleaved in chunks (A, B, C, A, B, C, ...).

    Returns {variant: (mean s/iteration after warm-up, warm-up seconds, batch)}.
    """
    runs = {v: DemoIteration(config, v) for v in variants}
    warm = {}
    for v, run in runs.items():
        start = time.perf_counter()
        for _ in range(warmup):
            run()
        warm[v] = time.perf_counter() - start
        log(f"  {v}: warm-up ({warmup} iterations, compilation included) {warm[v]:.1f} s")
    times = {v: [] for v in variants}
    while min(len(t) for t in times.values()) < iterations:
        for v, run in runs.items():
            times[v] += [run() for _ in range(chunk)]
    return {v: (sum(t) / len(t), warm[v], runs[v].phase.batch) for v, t in times.items()}
