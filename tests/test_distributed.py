"""Several processes (gloo on CPU, as torchrun would start them) train like one process on the combined batch; the
device and process-group backend each process gets from --device and torchrun's environment."""

import os

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from click.testing import CliRunner

from layered_gan.cli import main
from layered_gan.config import load_config
from layered_gan.devices import Placement, place, start
from layered_gan.errors import BadValue
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


TINY = ['data.synthetic={"resolution": 32, "count": 64, "test_count": 8, "seed": 0}',
        'model={"init": null, "resolution": 16, "z_dim": 16, "w_dim": 16, "n_mlp": 1, "channel_base": 128, '
        '"channel_max": 8, "variant": "two", "mbstd_group": 4}',
        'schedule={"start_resolution": 8, "phase_kimg": 0.032, "fade_fraction": 0.5, "total_kimg": 0.08, '
        '"batch": {"8": 8, "16": 8}, "lr": {"8": 0.002, "16": 0.002}}',
        "workers=0", "log.tick_kimg=0.032", "log.grid_size=4"]
"""A demo run of a few seconds (`--set` values)."""


def _train_worker(rank, world, init, cfg, out):
    os.environ["LAYERED_GAN_CACHE"] = cfg.pop("_cache")
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    G_ema = train(cfg, out)
    torch.save(G_ema.state_dict(), f"{out}/g_ema_rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.parametrize("discriminator", [[], ['model.discriminator="projected"', "model.projected_resolution=64",
                                               'loss.type="hinge"']], ids=["stylegan2_d", "projected_d"])
def test_two_process_training_keeps_ranks_identical(tmp_path, discriminator):
    cfg = load_config("demo", discriminator + TINY)
    cfg["_cache"] = str(tmp_path / "cache")
    out = tmp_path / "run"
    mp.spawn(_train_worker, args=(2, f"file://{tmp_path}/init", cfg, str(out)), nprocs=2)
    states = [torch.load(out / f"g_ema_rank{r}.pt", weights_only=True) for r in range(2)]
    for name in states[0]:
        assert torch.equal(states[0][name], states[1][name]), name
    assert (out / "checkpoint.pt").exists() and (out / "layers.png").exists()  # written by rank 0


def torchrun(world, rank, local_world, local_rank):
    """The environment torchrun gives one of its processes."""
    return {"WORLD_SIZE": str(world), "RANK": str(rank), "LOCAL_WORLD_SIZE": str(local_world),
            "LOCAL_RANK": str(local_rank)}


# (--device, environment, visible GPUs, the Placement and its start line, or what the one-line refusal names)
PLACEMENTS = [
    ("cpu", {}, 0, Placement("cpu"), "device: cpu (1 process)"),
    ("cuda", {}, 2, Placement("cuda"), "device: cuda (1 process)"),
    ("cuda:1", {}, 2, Placement("cuda:1"), "device: cuda:1 (1 process)"),
    ("cuda", {}, 0, None, "--device cuda: no CUDA GPU is visible (torch.cuda.is_available() is False; torch"),
    ("cuda:2", {}, 2, None, "--device cuda:2: there is no GPU 2, 2 visible (cuda:0..cuda:1)"),
    ("gpu", {}, 2, None, "--device 'gpu' is not a torch device"),
    ("cuda", torchrun(8, 3, 8, 3), 8, Placement("cuda:3", "nccl", 3, 8, 3, 8),
     "device: cuda:0..cuda:7 (8 processes, nccl)"),
    ("cuda", torchrun(16, 9, 8, 1), 8, Placement("cuda:1", "nccl", 9, 16, 1, 8),
     "device: cuda:0..cuda:7 (16 processes, 8 per machine, nccl)"),
    ("cuda:1", torchrun(2, 1, 1, 0), 2, Placement("cuda:1", "nccl", 1, 2, 0, 1),
     "device: cuda:1 (2 processes, 1 per machine, nccl)"),
    ("cuda:0", torchrun(2, 0, 2, 0), 2, None,
     "--device cuda:0: under torchrun each of the 2 processes on this machine takes its own GPU (cuda:LOCAL_RANK)"),
    ("cuda", torchrun(4, 0, 4, 0), 2, None,
     "--device cuda: 4 processes on this machine (torchrun --nproc_per_node) but 2 GPUs visible; start at most 2"),
    ("cuda", torchrun(2, 0, 2, 0), 0, None, "--device cuda: no CUDA GPU is visible"),
    ("cpu", torchrun(2, 1, 2, 1), 0, Placement("cpu", "gloo", 1, 2, 1, 2), "device: cpu (2 processes, gloo)"),
    ("meta", torchrun(4, 2, 2, 0), 0, Placement("meta", "gloo", 2, 4, 0, 2),
     "device: meta (4 processes, 2 per machine, gloo)"),
    ("cpu", {"WORLD_SIZE": "2", "RANK": "0"}, 0, None,
     "WORLD_SIZE is 2 but LOCAL_RANK, LOCAL_WORLD_SIZE is not set: start the processes with torchrun"),
]


@pytest.mark.parametrize("device, env, gpus, placement, line", PLACEMENTS,
                         ids=[f"{i}-{d}-world{e.get('WORLD_SIZE', 1)}-gpus{g}" for i, (d, e, g, _, _) in
                              enumerate(PLACEMENTS)])
def test_the_device_and_backend_of_each_process(monkeypatch, device, env, gpus, placement, line):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    if placement is None:
        with pytest.raises(BadValue) as refusal:
            place(device, env)
        assert line in str(refusal.value) and "\n" not in str(refusal.value), str(refusal.value)
    else:
        assert place(device, env) == placement
        assert placement.describe() == line


def _start_worker(rank, port, out):
    os.environ.update(torchrun(2, rank, 2, rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    start(place("cpu"))
    torch.save((dist.get_backend(), dist.get_rank(), dist.get_world_size()), f"{out}/group{rank}.pt")
    dist.destroy_process_group()


def test_start_joins_torchruns_process_group(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_start_worker, args=(port, str(tmp_path)), nprocs=2)
    assert [torch.load(tmp_path / f"group{r}.pt") for r in range(2)] == [("gloo", 0, 2), ("gloo", 1, 2)]


def test_train_prints_its_device_once_at_start(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERED_GAN_CACHE", str(tmp_path / "cache"))
    args = ["train", "--cfg", "demo", "--device", "cpu", "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(main, args + [item for value in TINY for item in ("--set", value)])
    assert result.exit_code == 0, (result.output, result.exception)
    assert result.stderr.splitlines().count("device: cpu (1 process)") == 1, result.stderr
    ops = [line for line in result.stderr.splitlines() if line.startswith("fused ops:")]
    assert ops == ["fused ops: PyTorch reference (the CUDA kernels run on CUDA devices only; cpu)"], result.stderr
