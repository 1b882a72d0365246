"""Several processes (gloo on CPU, as torchrun would start them) train like one process on the combined batch."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from layered_gan.config import load_config
from layered_gan.networks import Discriminator, channel_widths
from layered_gan.training.loop import average_gradients, train


def _make_d():
    torch.manual_seed(0)
    return Discriminator(16, channels=channel_widths(16, 128, 8), mbstd_group=4)


def _gradient_worker(rank, world, init, x, out):
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    D = _make_d()
    D(x[rank::world]).square().mean().backward()  # this rank's half of the batch
    average_gradients(D, world)
    torch.save({n: p.grad for n, p in D.named_parameters()}, f"{out}/grads{rank}.pt")
    dist.destroy_process_group()


def test_averaged_gradients_equal_one_process_on_the_combined_batch(tmp_path):
    x = torch.randn(8, 3, 16, 16)
    mp.spawn(_gradient_worker, args=(2, f"file://{tmp_path}/init", x, str(tmp_path)), nprocs=2)
    D = _make_d()
    # The minibatch-stddev group (4) equals the per-process batch: interleaving the ranks' samples
    # gives one process the same groups.
    D(torch.cat([x[0::2], x[1::2]]).reshape(2, 4, 3, 16, 16).transpose(0, 1).reshape(8, 3, 16, 16)).square().mean().backward()
    grads = [torch.load(tmp_path / f"grads{r}.pt", weights_only=True) for r in range(2)]
    for name, p in D.named_parameters():
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=0, atol=0)  # ranks agree exactly
        torch.testing.assert_close(grads[0][name], p.grad, rtol=1e-5, atol=1e-6)  # and match one process


def _train_worker(rank, world, init, cfg, out):
    os.environ["LAYERED_GAN_CACHE"] = cfg.pop("_cache")
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    G_ema = train(cfg, out)
    torch.save(G_ema.state_dict(), f"{out}/g_ema_rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.parametrize("discriminator", [[], ['model.discriminator="projected"', "model.projected_resolution=64",
                                               'loss.type="hinge"']], ids=["stylegan2_d", "projected_d"])
def test_two_process_training_keeps_ranks_identical(tmp_path, discriminator):
    cfg = load_config("demo", discriminator + [
        'data.synthetic={"resolution": 32, "count": 64, "test_count": 8, "seed": 0}',
        'model={"init": null, "resolution": 16, "z_dim": 16, "w_dim": 16, "n_mlp": 1, "channel_base": 128, '
        '"channel_max": 8, "variant": "two", "mbstd_group": 4}',
        'schedule={"start_resolution": 8, "phase_kimg": 0.032, "fade_fraction": 0.5, "total_kimg": 0.08, '
        '"batch": {"8": 8, "16": 8}, "lr": {"8": 0.002, "16": 0.002}}',
        "workers=0", "log.tick_kimg=0.032", "log.grid_size=4"])
    cfg["_cache"] = str(tmp_path / "cache")
    out = tmp_path / "run"
    mp.spawn(_train_worker, args=(2, f"file://{tmp_path}/init", cfg, str(out)), nprocs=2)
    states = [torch.load(out / f"g_ema_rank{r}.pt", weights_only=True) for r in range(2)]
    for name in states[0]:
        assert torch.equal(states[0][name], states[1][name]), name
    assert (out / "checkpoint.pt").exists() and (out / "layers.png").exists()  # written by rank 0
