"""Several processes (gloo on CPU, as torchrun would start them) train like one process on the combined batch; the
device and process-group backend each process gets from --device and torchrun's environment."""

import os
import socket
from unittest import mock

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
from layered_gan.networks.projected import ProjectedDiscriminator
from layered_gan.training import loop
from layered_gan.training.loop import average_gradients, check_batches, train


def _make_d():
    torch.manual_seed(0)
    return Discriminator(16, channels=channel_widths(16, 128, 8), mbstd_group=4)


def _gradient_worker(rank, world, init, x, out):
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    D = _make_d()
    D(x[rank::world]).square().mean().backward()  # this rank's half of the batch
    per_parameter = {n: p.grad.clone() for n, p in D.named_parameters()}
    for grad in per_parameter.values():  # one all-reduce per parameter, as before the bucket
        dist.all_reduce(grad)
        grad /= world
    average_gradients(D, world)
    torch.save({n: p.grad for n, p in D.named_parameters()}, f"{out}/grads{rank}.pt")
    torch.save(per_parameter, f"{out}/per_parameter{rank}.pt")
    dist.destroy_process_group()


def test_averaged_gradients_equal_one_process_on_the_combined_batch(tmp_path):
    x = torch.randn(8, 3, 16, 16)
    mp.spawn(_gradient_worker, args=(2, f"file://{tmp_path}/init", x, str(tmp_path)), nprocs=2)
    D = _make_d()
    # The minibatch-stddev group (4) equals the per-process batch: interleaving the ranks' samples
    # gives one process the same groups.
    D(torch.cat([x[0::2], x[1::2]]).reshape(2, 4, 3, 16, 16).transpose(0, 1).reshape(8, 3, 16, 16)).square().mean().backward()
    grads = [torch.load(tmp_path / f"grads{r}.pt", weights_only=True) for r in range(2)]
    per_parameter = torch.load(tmp_path / "per_parameter0.pt", weights_only=True)
    for name, p in D.named_parameters():
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=0, atol=0)  # ranks agree exactly
        # the bucket sums each element as the per-parameter all-reduce does (a + b), bit for bit
        torch.testing.assert_close(grads[0][name], per_parameter[name], rtol=0, atol=0)
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


STYLEGAN2_TINY = ['data.synthetic={"resolution": 32, "count": 64, "test_count": 8, "seed": 0}',
                  'model={"resolution": 16, "z_dim": 16, "w_dim": 16, "n_mlp": 1, "channel_base": 128, '
                  '"channel_max": 8, "mbstd_group": 4}',
                  'schedule={"start_resolution": 16, "phase_kimg": 0, "total_kimg": 0.032, "batch": 8, "lr": 0.002}',
                  'loss={"r1_gamma": 1.0, "r1_interval": 2, "pl_weight": 2.0, "pl_interval": 3}',
                  "workers=0", "log.tick_kimg=0.032", "log.grid_size=4"]
"""stylegan2_demo for 4 steps: lazy R1 on steps 0 and 2, path length on steps 0 and 3."""

STEP_RUNS = {"demo": ("demo", TINY + ["schedule.total_kimg=0.048"]),
             "stylegan2_demo_lazy_r1_pl": ("stylegan2_demo", STYLEGAN2_TINY),
             "projected_d": ("demo", ['model.discriminator="projected"', "model.projected_resolution=64",
                                      'loss.type="hinge"'] + TINY + ["schedule.total_kimg=0.024"])}


def _step_worker(rank, world, init, cfg, out):
    """train() with torch.distributed.all_reduce counted and G's and D's state recorded after every step."""
    os.environ["LAYERED_GAN_CACHE"] = cfg.pop("_cache")
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    calls, steps = [0], []
    all_reduce, train_step = dist.all_reduce, loop.train_step

    def counted(*args, **kwargs):
        calls[0] += 1
        return all_reduce(*args, **kwargs)

    def recorded(run, *args):
        calls[0] = 0
        result = train_step(run, *args)
        state = {f"{name}.{key}": value.clone() for name, net in (("G", run.G), ("D", run.D))
                 for key, value in net.state_dict().items()}
        steps.append({"all_reduces": calls[0], "stats": sorted(result[0]), "state": state})
        return result

    with mock.patch.object(dist, "all_reduce", counted), mock.patch.object(loop, "train_step", recorded):
        train(cfg, out)
    torch.save(steps, f"{out}/steps{rank}.pt")
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """One cache (the synthetic data set, built once) for the step-counting runs."""
    return str(tmp_path_factory.mktemp("cache"))


@pytest.mark.parametrize("run", STEP_RUNS)
def test_one_all_reduce_per_network_step_and_identical_ranks_after_every_step(tmp_path, shared_cache, run):
    """Counted, not assumed: at most 2 all-reduces per training step (D's gradients; G's gradients with the
    truncation centres and D's batch-norm statistics), on steps with and without lazy R1 and path length; after
    every step both ranks hold the same G and D, buffers included (the projected D's batch norms)."""
    name, overrides = STEP_RUNS[run]
    cfg = load_config(name, overrides)
    cfg["_cache"] = shared_cache
    out = tmp_path / "run"
    mp.spawn(_step_worker, args=(2, f"file://{tmp_path}/init", cfg, str(out)), nprocs=2)
    ranks = [torch.load(out / f"steps{r}.pt", weights_only=True) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) >= 3
    for step, (a, b) in enumerate(zip(*ranks)):
        assert a["all_reduces"] == b["all_reduces"] <= 2, (step, a["all_reduces"])
        for key in a["state"]:
            assert torch.equal(a["state"][key], b["state"][key]), (step, key)
    if run.startswith("stylegan2"):  # lazy regularization ran on some steps and not on others
        assert [("loss/r1" in s["stats"], "loss/path_length" in s["stats"]) for s in ranks[0]] == [
            (True, True), (False, False), (True, False), (False, True)]


MBSTD = [(TINY, 2, None), (TINY + ['schedule.batch={"8": 16, "16": 32}'], 4, None), (TINY, 1, None),
         (TINY + ['schedule.batch={"8": 8, "16": 12}'], 2,
          "batch 12 at 16 px: 6 per process (of 2), which model.mbstd_group = 4 does not divide "
          "(minibatch-stddev groups never span processes); use a batch that is a multiple of 8"),
         (TINY, 8, "batch 8 at 8 px: 1 per process (of 8), which model.mbstd_group = 4 does not divide"),
         (TINY + ['schedule.batch={"8": 8, "16": 12}'], 1, None),  # one process: the group shrinks to 3, as before
         (TINY + ['model.discriminator="projected"', "model.projected_resolution=64", 'loss.type="hinge"'], 8, None),
         (TINY, 3, "batch 8 at 8 px does not split over 3 processes")]


@pytest.mark.parametrize("overrides, world, line", MBSTD, ids=[f"{i}-world{w}" for i, (_, w, _) in enumerate(MBSTD)])
def test_a_per_process_batch_the_mbstd_group_cannot_divide_is_refused(overrides, world, line):
    cfg = load_config("demo", overrides)
    m = cfg["model"]
    D = (ProjectedDiscriminator(m["projected_resolution"]) if m["discriminator"] == "projected" else
         Discriminator(m["resolution"], channels=channel_widths(16, 128, 8), mbstd_group=m["mbstd_group"]))
    if line is None:
        check_batches(cfg, world, D)
        return
    with pytest.raises(BadValue) as refusal:
        check_batches(cfg, world, D)
    assert line in str(refusal.value) and "\n" not in str(refusal.value), str(refusal.value)


def _refused_worker(rank, world, init, cfg, out):
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        train(cfg, out)
    except BadValue as refusal:
        torch.save(str(refusal), f"{out}.refusal{rank}.pt")
    dist.destroy_process_group()


def test_train_refuses_the_mbstd_split_before_writing_anything(tmp_path):
    cfg = load_config("demo", TINY + ['schedule.batch={"8": 8, "16": 12}'])  # the 16 px phase: 6 per process
    out = tmp_path / "run"
    mp.spawn(_refused_worker, args=(2, f"file://{tmp_path}/init", cfg, str(out)), nprocs=2)
    for r in range(2):
        assert "model.mbstd_group = 4 does not divide" in torch.load(f"{out}.refusal{r}.pt")
    assert not out.exists()


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
