"""Training on the CUDA stand-in (tests/cuda_standin.py): every config that trains, at toy size, with every tensor
on a non-CPU device under CUDA's rules; the same numbers as on the CPU; checkpoints that move between devices."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from layered_gan.checkpoint import load_checkpoint
from layered_gan.config import load_config
from layered_gan.networks.port import save_port
from layered_gan.training.loop import train
from test_labels4free import tiny_generator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(name[:-5] for name in os.listdir(os.path.join(ROOT, "configs")) if name.endswith(".json"))
DATA = 'data.synthetic={"resolution": 32, "count": 64, "test_count": 8, "seed": 0}'
COMMON = ["data.source=synthetic", DATA, "workers=0", "log.grid_size=4", "log.fid_kimg=0"]
SMALL = ["model.resolution=16", "model.z_dim=16", "model.w_dim=16", "model.n_mlp=1", "model.channel_base=128",
         "model.channel_max=8", "model.mbstd_group=4", "model.projected_resolution=64"]


def toy_data(name, tmp_path):
    """The synthetic data for the synthetic configs; a folder of 16 images where a config names LSUN or a user's path
    (a list of one where the config's source is a list)."""
    source = load_config(name)["data"]["source"]
    if source == "synthetic":
        return COMMON
    folder = tmp_path / "images"
    if not folder.is_dir():
        folder.mkdir(parents=True)
        for i in range(16):
            Image.fromarray(np.random.default_rng(i).integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(
                folder / f"{i:02d}.png")
    value = json.dumps([str(folder)] if isinstance(source, list) else str(folder))
    return [f"data.source={value}"] + COMMON[2:]


def toy_config(name, tmp_path, total_kimg=0.048, tick_kimg=0.016, checkpoint_kimg=1000):
    """Config `name` at toy size: 16 px through two phases where it grows, tiny widths, small data."""
    mode = load_config(name)["mode"]
    log = toy_data(name, tmp_path) + [f"log.tick_kimg={tick_kimg}", f"log.checkpoint_kimg={checkpoint_kimg}"]
    if mode == "labels4free":
        path = str(tmp_path / "pretrained.pt")
        if not os.path.exists(path):
            torch.manual_seed(1)
            save_port(path, tiny_generator())
        return load_config(name, log + [
            f"model.ckpt={path}", "model.resolution=16", "model.channel_base=64", "model.channel_max=4",
            "model.projected_resolution=64", "labels4free.alpha_width=4", "labels4free.alpha_start_resolution=8",
            f"schedule.total_kimg={total_kimg}", "schedule.batch=8"])
    growing = load_config(name)["schedule"].get("start_resolution", 16) < load_config(name)["model"]["resolution"]
    schedule = (['schedule.start_resolution=8', f"schedule.phase_kimg={total_kimg / 3}",
                 'schedule.batch={"8": 8, "16": 8}', 'schedule.lr={"8": 0.002, "16": 0.002}']
                if growing else ["schedule.start_resolution=16", "schedule.batch=8"])
    init = ["model.init=null"] if mode == "perturb" else []
    return load_config(name, log + SMALL + init + schedule + [f"schedule.total_kimg={total_kimg}"])


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERED_GAN_CACHE", str(tmp_path / "cache"))


def trains_on_the_standin(name, tmp_path):
    cfg = toy_config(name, tmp_path)
    out = tmp_path / "run"
    G = train(cfg, str(out), device="standin")
    assert next(G.parameters()).device.type == "standin"
    state = load_checkpoint(str(out / "checkpoint.pt"))
    assert state["images_seen"] >= cfg["schedule"]["total_kimg"] * 1000
    assert all(t.device.type == "cpu" for t in state["G_ema"].values())  # checkpoints hold CPU tensors
    assert (out / "layers.png").is_file() and len(os.listdir(out / "grids")) >= 3  # a grid at every tick
    return state


@pytest.mark.parametrize("name", ["demo", "stylegan2_demo", "l4f_demo"])
def test_each_mode_trains_on_the_standin_as_on_the_cpu(name, tmp_path, cache, standin):
    """A toy run on the stand-in writes its grids and checkpoint, and gives the CPU's weights bit for bit: the device
    draws the same random numbers (its noise stream is seeded as the CPU's) and nothing falls back."""
    on_device = trains_on_the_standin(name, tmp_path / "device")
    on_cpu = train(toy_config(name, tmp_path / "device"), str(tmp_path / "cpu"), device="cpu")
    for key, value in on_cpu.state_dict().items():
        assert torch.equal(value, on_device["G_ema"][key]), key


@pytest.mark.slow
@pytest.mark.parametrize("name", [c for c in CONFIGS if c not in ("demo", "stylegan2_demo", "l4f_demo")])
def test_every_config_trains_on_the_standin(name, tmp_path, cache, standin):
    trains_on_the_standin(name, tmp_path)


def test_a_cpu_checkpoint_resumes_on_the_standin_and_back_bit_exactly(tmp_path, cache, standin):
    """CPU to 16 images, the stand-in to 32, the CPU to the end: the weights of one uninterrupted CPU run."""
    straight = train(toy_config("demo", tmp_path, total_kimg=0.048), str(tmp_path / "straight"), device="cpu")
    run = str(tmp_path / "run")
    train(toy_config("demo", tmp_path, total_kimg=0.016), run, device="cpu")
    state = load_checkpoint(os.path.join(run, "checkpoint.pt"))
    streams = state["rng"][0]
    assert set(streams) == {"cpu", "device", "ours"} and streams["device"] is None  # a CPU run: one CPU stream
    train(toy_config("demo", tmp_path, total_kimg=0.032), run, resume=run, device="standin")
    state = load_checkpoint(os.path.join(run, "checkpoint.pt"))
    kind, device_state = state["rng"][0]["device"]
    assert kind == "standin" and device_state.dtype == torch.uint8 and device_state.device.type == "cpu"
    resumed = train(toy_config("demo", tmp_path, total_kimg=0.048), run, resume=run, device="cpu")
    for (key, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), key


def test_a_checkpoint_of_the_old_layout_still_resumes(tmp_path, cache):
    """Checkpoints written before the device streams were saved held (ours, cpu) per rank."""
    run = str(tmp_path / "run")
    train(toy_config("demo", tmp_path, total_kimg=0.016), run, device="cpu")
    path = os.path.join(run, "checkpoint.pt")
    state = load_checkpoint(path)
    state["rng"] = [(state["rng"][0]["ours"]["rng"], state["rng"][0]["cpu"])]
    torch.save(state, path)
    straight = train(toy_config("demo", tmp_path, total_kimg=0.032), str(tmp_path / "straight"), device="cpu")
    resumed = train(toy_config("demo", tmp_path, total_kimg=0.032), run, resume=run, device="cpu")
    for (key, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), key


def test_the_old_grid_noise_fails_on_the_standin(standin):
    """What the first GPU run met: noise for a device drawn with a CPU generator. The stand-in refuses it."""
    G = tiny_generator()
    with pytest.raises(RuntimeError, match="device type for generator but found 'cpu'"):
        torch.randn(2, 1, 4, 4, device="standin", generator=torch.Generator().manual_seed(0))
    noise = G.to("standin").make_noise(2, "standin", torch.Generator().manual_seed(0))
    assert all(n.device.type == "standin" for n in noise)
    expected = tiny_generator().make_noise(2, "cpu", torch.Generator().manual_seed(0))
    assert all(torch.equal(a.cpu(), b) for a, b in zip(noise, expected))  # the same noise on every device
