"""Every command a GPU user runs, on the CUDA stand-in (tests/cuda_standin.py): a toy-size run of each with
--device standin exits 0 and writes its outputs under CUDA's device and generator rules; where cheap, they equal
those of --device cpu (the stand-in computes with the CPU's kernels: a difference means the device path drew other
random numbers, or computed something else)."""

import json
import os
import traceback

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from layered_gan.checkpoint import save_checkpoint
from layered_gan.cli import distill, encode, generate
from layered_gan.config import load_config
from layered_gan.data.synthetic import build_synthetic, split_paths
from layered_gan.directions.candidates import save_directions
from layered_gan.directions.cli import cli as directions
from layered_gan.directions.latent import LatentSpace
from layered_gan.evaluation import fid as fid_module
from layered_gan.evaluation.cli import baselines, evaluate, fid, score_generated
from layered_gan.evaluation.sources import FileSource
from layered_gan.labels4free.cli import labels4free
from layered_gan.networks import Discriminator
from layered_gan.networks.port import generator_to_port, save_port
from layered_gan.segmenter.cli import pairs, segment
from layered_gan.segmenter.model import build_segmenter, save_segmenter
from layered_gan.training.objectives import Labels4Free, make_objective
import cuda_standin
from test_encoder import image_folder, tiny_run
from test_generated_eval import Bright
from test_labels4free_tools import tiny_generator

DEVICES = ("standin", "cpu")
# the runs' synthetic data: 32 training images, one batch of the reference U-Net's
SYNTHETIC = 'data.synthetic={"resolution": 32, "count": 32, "test_count": 4, "seed": 0}'
NO_FILTERS = ["--max-coverage", 1, "--min-coverage", 0, "--no-histogram"]


class PooledFeatures(torch.nn.Module):
    """Inception's call convention, without weights (the stand-in cannot load a TorchScript file's weights onto its
    device): the channels' means and maxima of the image and of its 2x2 means."""

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        small = torch.nn.functional.avg_pool2d(x / 255, 2)
        return torch.cat([x.mean((2, 3)) / 255, small.amax((2, 3))], 1)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """The toy inputs of the commands: a PerturbGAN run (perturb/), a port file (g.pt, also the plain StyleGAN2 the
    directions and analyses read) and a Labels4Free run on it (l4f/), a StyleGAN2 run on the synthetic data
    (stylegan2/) with two random directions (directions.pt), a segmenter, images, two feature networks."""
    root = tmp_path_factory.mktemp("inputs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAYERED_GAN_CACHE", str(root / "cache"))
        (root / "perturb").mkdir()
        tiny_run(root / "perturb")
        for count, test_count in ((4, 6), (32, 4)):  # tiny_run's and SYNTHETIC (in-process: no worker start-up)
            build_synthetic(resolution=32, count=count, test_count=test_count, seed=0, workers=1, progress=False)
        save_port(str(root / "g.pt"), tiny_generator(), Discriminator(16, channels={16: 4, 8: 4, 4: 4}))
        cfg = load_config("l4f_demo", [f"model.ckpt={root / 'g.pt'}", "model.resolution=16", "model.channel_base=64",
                                       "model.channel_max=4", "labels4free.alpha_width=4", SYNTHETIC])
        torch.manual_seed(0)
        net, _ = Labels4Free(cfg).build()
        with torch.no_grad():
            net.alpha.to_alpha.weight.mul_(30)  # masks spread over (0, 1)
        save_checkpoint({"config": cfg, "G_ema": net.state_dict()}, str(root / "l4f" / "checkpoint.pt"))
        cfg = load_config("stylegan2_demo", [SYNTHETIC, "model.resolution=16", "model.z_dim=8", "model.w_dim=8"])
        G, D = make_objective(cfg).build()
        run = str(root / "stylegan2")
        save_checkpoint({"config": cfg, "G_ema": G.state_dict(), "D": D.state_dict()},
                        os.path.join(run, "checkpoint.pt"))
        shifts = 5 * torch.randn(2, 8, generator=torch.Generator().manual_seed(0))
        save_directions(str(root / "directions.pt"), "voynov", run, LatentSpace(G, "w"), shifts, ["a", "b"], [{}, {}],
                        0, None, "gray")
    torch.manual_seed(0)
    save_segmenter(build_segmenter(16, width=4, depth=2), str(root / "segmenter" / "segmenter.pt"))
    image_folder(root / "images", {"a": (20, 24), "b": (16, 16), "c": (17, 30)})
    torch.jit.script(Bright()).save(str(root / "bright.ts"))
    torch.jit.script(PooledFeatures()).save(str(root / "pooled_inception.pt"))
    return root


@pytest.fixture
def cache(inputs, monkeypatch):
    monkeypatch.setenv("LAYERED_GAN_CACHE", str(inputs / "cache"))


def invoke(command, *args):
    """`command ARGS` in-process: exit code 0 (else its output and traceback); with --device standin, something moved
    to the device (the option was not ignored); with --device cpu, nothing did."""
    seen = len(cuda_standin.events())
    result = CliRunner().invoke(command, [str(a) for a in args])
    trace = "".join(traceback.format_exception(*result.exc_info)) if result.exc_info else ""
    assert result.exit_code == 0, result.output + trace
    copies = {kind for kind, _, _ in cuda_standin.events()[seen:]}
    if "--device" in args:
        device = args[list(args).index("--device") + 1]
        assert ("host-to-device copy" in copies) == (device == "standin"), (device, copies)
    return result.output


def on_each_device(command, out, *args):
    """`command ARGS --out OUT/DEVICE --device DEVICE` on the stand-in, then on the CPU; the two outputs."""
    for device in DEVICES:
        torch.manual_seed(0)
        invoke(command, *args, "--out", out / device, "--device", device)
    return [out / device for device in DEVICES]


def pixels(path):
    return np.asarray(Image.open(path))


def pngs(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root) for f in files
                  if f.endswith(".png"))


def same_pngs(a, b):
    """The same PNG pixels under two folders, by relative name."""
    names = pngs(a)
    assert names and names == pngs(b)
    for name in names:
        assert np.array_equal(pixels(a / name), pixels(b / name)), name


def same_pairs(a, b):
    """The same exported (image, mask) pairs, LMDB or PNG."""
    for part in ("images", "masks"):
        x, y = FileSource(str(a / part)), FileSource(str(b / part))
        assert x.names == y.names and x.names
        for name in x.names:
            assert np.array_equal(np.asarray(x.image(name)), np.asarray(y.image(name))), (part, name)


def read_json(path):
    with open(path) as f:
        return json.load(f)


def test_generate(inputs, standin, tmp_path):
    on_device, on_cpu = on_each_device(generate, tmp_path, "--ckpt", inputs / "perturb", "--seeds", "0-2")
    assert np.array_equal(pixels(on_device / "layers.png"), pixels(on_cpu / "layers.png"))
    for run in ("l4f", "g.pt"):
        invoke(generate, "--ckpt", inputs / run, "--seeds", "1", "--singles", "--out", tmp_path / run,
               "--device", "standin")
    assert (tmp_path / "l4f" / "seed0001_mask.png").is_file() and (tmp_path / "g.pt" / "seed0001_image.png").is_file()


def test_pairs(inputs, standin, tmp_path):
    on_device, on_cpu = on_each_device(pairs, tmp_path, "--ckpt", inputs / "perturb", "--num", 5, "--batch", 3,
                                       "--placement", 0.5, "--max-coverage", 1, "--min-coverage", 0)
    same_pairs(on_device, on_cpu)
    invoke(pairs, "--ckpt", inputs / "l4f", "--num", 3, "--batch", 4, "--filter-rules", "paper", "--threshold", -1,
           "--max-coverage", 1, "--min-coverage", 0, "--out", tmp_path / "l4f", "--device", "standin")
    assert len(FileSource(str(tmp_path / "l4f" / "masks")).names) == 3


def test_segment_then_evaluate(inputs, standin, tmp_path):
    on_device, on_cpu = on_each_device(segment, tmp_path, "--model", inputs / "segmenter", "--images",
                                       inputs / "images", "--soft")
    same_pngs(on_device, on_cpu)
    invoke(evaluate, "--pred", on_device / "masks", "--gt", on_cpu / "masks", "--gt-encoding", "255",
           "--images", inputs / "images", "--out", tmp_path / "report")
    assert read_json(tmp_path / "report" / "metrics.json")["summary"]["images"] == 3


def test_baselines(inputs, standin, tmp_path, cache):
    """No --device: on the CPU, the stand-in active (nothing of it may meet a device tensor)."""
    images, masks = split_paths(build_synthetic(resolution=32, count=4, test_count=6, seed=0, progress=False), "test")
    invoke(baselines, "--images", images, "--gt", masks, "--method", "full", "--method", "centre", "--out",
           tmp_path / "baselines")
    assert (tmp_path / "baselines" / "baselines.json").is_file()


def test_score_generated(inputs, standin, tmp_path, cache):
    """With a TorchScript reference, and with the reference U-Net (trained on the device, then read from the cache)."""
    for device in DEVICES:
        invoke(score_generated, "--ckpt", inputs / "perturb", "--num", 6, "--reference", inputs / "bright.ts",
               "--reference-size", 32, "--out", tmp_path / f"{device}.json", "--device", device)
        invoke(score_generated, "--ckpt", inputs / "l4f", "--num", 4, "--steps", 2, "--threshold", 0.9, "--out",
               tmp_path / f"unet_{device}.json", "--device", device)
    assert read_json(tmp_path / "standin.json") == read_json(tmp_path / "cpu.json")
    assert read_json(tmp_path / "unet_standin.json") == read_json(tmp_path / "unet_cpu.json")


def test_fid(inputs, standin, tmp_path, cache, monkeypatch):
    torch.manual_seed(0)
    reference = build_segmenter(32, width=4, depth=2)
    monkeypatch.setattr(fid_module, "train_reference", lambda synthetic, device="cpu", progress=True: (reference, 1.0))
    for device in DEVICES:
        invoke(fid, "--ckpt", inputs / "perturb", "--features", "reference", "--num", 3, "--batch", 2,
               "--out", tmp_path / f"{device}.json", "--device", device)
    on_device, on_cpu = read_json(tmp_path / "standin.json"), read_json(tmp_path / "cpu.json")
    assert on_device["fid"] == pytest.approx(on_cpu["fid"]) and on_device["kid"] == pytest.approx(on_cpu["kid"])
    invoke(fid, "--ckpt", inputs / "g.pt", "--real", inputs / "images", "--inception", inputs / "pooled_inception.pt",
           "--num", 3, "--out", tmp_path / "inception.json", "--device", "standin")
    assert read_json(tmp_path / "inception.json")["fid"] > 0


TINY_DISTILL = ["--steps", 2, "--batch", 4, "--val-pairs", 4, "--every", 2, "--real-check", 2, "--width", 4,
                "--depth", 2, *NO_FILTERS]


def test_distill(inputs, standin, tmp_path, cache):
    on_device, on_cpu = on_each_device(distill, tmp_path, "--ckpt", inputs / "perturb", *TINY_DISTILL)
    summary = read_json(on_device / "summary.json")
    assert summary["runs"]["0"]["real"]["images"] == 6 and summary == read_json(on_cpu / "summary.json")


def test_distill_from_directions_with_self_training(inputs, standin, tmp_path, cache):
    invoke(distill, "--directions", inputs / "directions.pt", "--self-train", 1, "--self-train-num", 3,
           "--out", tmp_path, *TINY_DISTILL, "--device", "standin")
    assert read_json(tmp_path / "summary.json")["runs"]["0"]["earlier_rounds"][0]["round"] == 0


def test_encode(inputs, standin, tmp_path, cache):
    on_device, on_cpu = on_each_device(encode, tmp_path, "--ckpt", inputs / "perturb", "--synthetic-test", 2,
                                       "--chunk", 2, "--steps", 2, "--batch", 2, "--width", 4, "--refine-steps", 2,
                                       "--sheet", 2, "--baseline", "full")
    same_pngs(on_device / "masks", on_cpu / "masks")


def test_encode_amortized(inputs, standin, tmp_path, cache):
    out = tmp_path / "amortized"
    for _ in range(2):  # trains, saves and applies the encoder; then loads and applies it
        invoke(encode, "--ckpt", inputs / "perturb", "--images", inputs / "images", "--amortized", "--steps", 2,
               "--batch", 2, "--width", 4, "--refine-steps", 1, "--out", out, "--device", "standin")
    assert (out / "encoder.pt").is_file() and len(os.listdir(out / "masks")) == 3


def test_directions_find_anchors_masks(inputs, standin, tmp_path, cache):
    voynov = on_each_device(directions, tmp_path / "voynov", "find", "--ckpt", inputs / "g.pt", "--method", "voynov",
                            "--num", 2, "--steps", 2, "--eval-batch", 2, "--strip-samples", 1)
    found = [torch.load(path / "directions.pt", weights_only=False) for path in voynov]
    assert torch.equal(found[0]["shifts"], found[1]["shifts"])
    assert read_json(voynov[0] / "candidates.json") == read_json(voynov[1] / "candidates.json")
    same_pngs(voynov[0] / "strips", voynov[1] / "strips")
    melas = on_each_device(directions, tmp_path / "melas", "find", "--ckpt", inputs / "g.pt", "--method", "melas",
                           "--steps", 2, "--batch", 2, "--eval-batch", 2, "--strip-samples", 1)
    found = [torch.load(path / "directions.pt", weights_only=False) for path in melas]
    assert torch.equal(found[0]["shifts"], found[1]["shifts"])
    invoke(directions, "find", "--ckpt", inputs / "g.pt", "--method", "voynov", "--candidates", "pca",
           "--pca-samples", 4, "--num", 1, "--no-signs", "--steps", 1, "--eval-batch", 2, "--strip-samples", 1,
           "--out", tmp_path / "pca", "--device", "standin")
    invoke(directions, "find", "--ckpt", inputs / "g.pt", "--method", "melas", "--space", "z", "--steps", 1,
           "--batch", 2, "--eval-batch", 2, "--strip-samples", 1, "--out", tmp_path / "z", "--device", "standin")
    anchors = on_each_device(directions, tmp_path / "anchors", "anchors", "--ckpt", inputs / "g.pt", "--images",
                             inputs / "images", "--steps", 2, "--batch", 2)
    ws = [torch.load(path, weights_only=True)["ws"] for path in anchors]
    assert ws[0].shape == (3, 8) and torch.equal(*ws)
    masks = on_each_device(directions, tmp_path / "masks", "masks", "--direction", voynov[0] / "directions.pt",
                           "--num", 3, "--batch", 4, "--anchors", anchors[0], "--max-coverage", 1, "--min-coverage", 0)
    same_pairs(*masks)


def test_directions_score(inputs, standin, tmp_path, cache):
    for device in DEVICES:
        invoke(directions, "score", "--direction", inputs / "directions.pt", "--rows", "each", "--num", 4,
               "--reference-steps", 2, "--out", tmp_path / f"{device}.json", "--device", device)
    assert read_json(tmp_path / "standin.json") == read_json(tmp_path / "cpu.json")


def test_labels4free_sample(inputs, standin, tmp_path):
    on_device, on_cpu = on_each_device(labels4free, tmp_path, "sample", "--ckpt", inputs / "l4f", "--num", 3,
                                       "--batch", 2)
    same_pngs(on_device, on_cpu)
    invoke(labels4free, "sample", "--ckpt", inputs / "l4f", "--num", 3, "--batch", 2, "--lmdb", "--out",
           tmp_path / "lmdb", "--device", "standin")
    assert len(FileSource(str(tmp_path / "lmdb" / "masks")).names) == 3


def test_labels4free_project(inputs, standin, tmp_path):
    on_device, on_cpu = on_each_device(labels4free, tmp_path, "project", "--ckpt", inputs / "l4f", "--images",
                                       inputs / "images", "--steps", 2, "--batch", 2, "--feature-weight", 0.1)
    assert torch.equal(torch.load(on_device / "latents.pt")["ws"], torch.load(on_cpu / "latents.pt")["ws"])
    same_pngs(on_device, on_cpu)
    invoke(labels4free, "project", "--ckpt", inputs / "l4f", "--images", inputs / "images", "--steps", 1, "--w",
           "--out", tmp_path / "w", "--device", "standin")
    assert len(os.listdir(tmp_path / "w" / "masks")) == 3


def test_labels4free_analyses(inputs, standin, tmp_path):
    for command, extra in (("trgb-ssim", []), ("bg-gradients", []), ("bg-gradients", ["--crops", inputs / "images"])):
        on_device, on_cpu = on_each_device(labels4free, tmp_path / command / str(len(extra)), command, "--ckpt",
                                           inputs / "g.pt", "--num", 3, *extra)
        name = command.replace("-", "_") + ".json"
        assert read_json(on_device / name) == read_json(on_cpu / name), (command, extra)


def test_imagenet_backbones(inputs, standin, tmp_path, cache):
    """The ImageNet EfficientNet-Lite0: distill's and the reference's U-Net encoder, encode's backbone and its
    perceptual loss (encode also scores against ground truth here)."""
    invoke(distill, "--ckpt", inputs / "perturb", "--backbone", "efficientnet", "--imagenet-size", 32, "--out",
           tmp_path / "d", *TINY_DISTILL, "--device", "standin")
    invoke(encode, "--ckpt", inputs / "perturb", "--images", inputs / "images", "--gt", inputs / "images",
           "--gt-encoding", "255", "--backbone", "efficientnet", "--backbone-lr", 0.1, "--perceptual-weight", 0.1,
           "--steps", 2, "--batch", 2, "--width", 4, "--refine-steps", 1, "--out", tmp_path / "e",
           "--device", "standin")
    invoke(score_generated, "--ckpt", inputs / "l4f", "--num", 4, "--steps", 2, "--reference-backbone", "efficientnet",
           "--out", tmp_path / "s.json", "--device", "standin")


def test_a_generator_on_the_device_exports_to_the_port_layout_as_on_the_cpu(standin):
    """The fixed noise of a port file is drawn from a CPU generator whatever the generator's device."""
    on_cpu = generator_to_port(tiny_generator())
    on_device = generator_to_port(tiny_generator().to("standin"))
    assert on_device.keys() == on_cpu.keys() and all(torch.equal(on_device[k].cpu(), v) for k, v in on_cpu.items())
