"""The CPU speed-ups of the demo step (bench/RESULTS.md, issue 21) compute what the plain step computes."""

import copy

import pytest
import torch

from layered_gan.config import load_config
from layered_gan.training.objectives import make_objective
from layered_gan.training.schedule import phase_at


def one_step(cfg, G, D):
    """Losses and gradients of one training step at step 0 (a lazy-R1 step), as training/loop.py takes it."""
    res = cfg["model"]["resolution"]
    objective = make_objective(cfg)
    phase = phase_at(0, cfg["schedule"], res)
    real = torch.randn(phase.batch, 3, res, res, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(2)  # noise inputs
    rng = torch.Generator().manual_seed(3)
    d_loss, _ = objective.d_loss(G, D, real, phase, rng, 0)
    d_grads = torch.autograd.grad(d_loss, list(D.parameters()), allow_unused=True, materialize_grads=True)
    D.requires_grad_(False)
    g_loss, _, _ = objective.g_loss(G, D, phase.batch, phase, rng, 0, "cpu")
    g_grads = torch.autograd.grad(g_loss, list(G.parameters()), allow_unused=True, materialize_grads=True)
    D.requires_grad_(True)
    return [d_loss, g_loss, *d_grads, *g_grads]


def one_step_float64(cfg, G, D):
    torch.set_default_dtype(torch.float64)  # latents, real images and noise in float64 too
    try:
        return one_step(cfg, G.double(), D.double())
    finally:
        torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize("config", ["demo", "stylegan2_demo"])
def test_channels_last_step_matches_the_contiguous_step(config):
    """--set model.channels_last=true: the same losses and gradients.

    In float64 they agree to rounding (1e-9). In float32 the losses agree within 1e-5, but gradients do not
    always: another summation order flips a few leaky-ReLU kinks (up to 4e-4 seen on stylegan2_demo).
    """
    cfg = load_config(config, ["schedule.batch=8", "model.channels_last=true", "model.formulation=fused"])
    torch.manual_seed(0)
    G, D = make_objective(cfg).build()
    G_cl, D_cl = (copy.deepcopy(net).to(memory_format=torch.channels_last) for net in (G, D))
    convs = [p for net in (G_cl, D_cl) for p in net.parameters() if p.dim() == 4 and p.shape[-1] > 1]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous() for p in convs)
    for a, b in zip(one_step(cfg, G, D)[:2], one_step(cfg, G_cl, D_cl)[:2]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    for a, b in zip(one_step_float64(cfg, G, D), one_step_float64(cfg, G_cl, D_cl)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_fused_formulation_step_matches_the_plain_formulation_step():
    """formulation='fused' (each layer's tail fused, on the CPU) against 'plain' (separate passes), G and D."""
    cfg = load_config("demo", ["schedule.batch=4", "model.formulation=fused"])
    torch.manual_seed(0)
    G, D = make_objective(cfg).build()
    with torch.no_grad():
        for name, p in [*G.named_parameters(), *D.named_parameters()]:
            if name.endswith(("noise_strength", "bias")):
                p.normal_()  # zero at initialization: make noise and bias count
    cfg_plain = copy.deepcopy(cfg)
    cfg_plain["model"]["formulation"] = "plain"
    G_plain, D_plain = make_objective(cfg_plain).build()
    G_plain.load_state_dict(G.state_dict())
    D_plain.load_state_dict(D.state_dict())
    for a, b in zip(one_step_float64(cfg, G, D), one_step_float64(cfg, G_plain, D_plain)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    G, D, G_plain, D_plain = G.float(), D.float(), G_plain.float(), D_plain.float()
    for a, b in zip(one_step(cfg, G, D)[:2], one_step(cfg_plain, G_plain, D_plain)[:2]):  # the losses, float32
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
