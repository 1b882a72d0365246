import functools
import glob
import io
import json
import os
import re

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from layered_gan.training import demo
from layered_gan.checkpoint import load_checkpoint, save_checkpoint
from layered_gan.cli import main
from layered_gan.data.dataset import to_tensor
from layered_gan.data.synthetic import _encode, build_synthetic, default_root
from layered_gan.evaluation import generated
from layered_gan.evaluation.metrics import iou_per_image
from layered_gan.segmenter.model import load_segmenter, predict

TINY = {"base": "demo", "seed": 0, "workers": 0,
        "data": {"synthetic": {"resolution": 32, "count": 32, "test_count": 8, "seed": 0}},
        "model": {"resolution": 16, "z_dim": 8, "w_dim": 8, "n_mlp": 1, "channel_base": 64, "channel_max": 8,
                  "init": None},
        "schedule": {"start_resolution": 16, "total_kimg": 0.032, "batch": 8},
        "log": {"tick_kimg": 0.016, "checkpoint_kimg": 0.016, "grid_size": 4}}


@pytest.fixture
def tiny_demo(tmp_path, monkeypatch):
    """The demo on a tiny config, data set and reference (seconds); returns the run folder to use."""
    monkeypatch.setenv("LAYERED_GAN_CACHE", str(tmp_path / "cache"))
    (tmp_path / "tiny.json").write_text(json.dumps(TINY))
    monkeypatch.setattr(demo, "CONFIG", str(tmp_path / "tiny.json"))
    monkeypatch.setattr(demo, "train_reference", functools.partial(generated.train_reference, steps=2, batch=4,
                                                                   width=4))
    build_synthetic(**TINY["data"]["synthetic"], workers=1, progress=False)  # in-process: no worker start-up
    return str(tmp_path / "run")


def run(out, *extra):
    return CliRunner().invoke(main, ["demo", "--out", out, "--num", "8", "--device", "cpu", *extra])


def iou_line(output):
    found = re.search(r"Table-1 mask IoU: (\d\.\d{3}) \(full-mask IoU (\d\.\d{3})", output)
    assert found, output
    return found.groups()


def test_demo_trains_draws_the_layers_and_prints_its_iou(tiny_demo):
    result = run(tiny_demo)
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert load_checkpoint(os.path.join(tiny_demo, "checkpoint.pt"))["images_seen"] == 32
    iou, full = iou_line(result.stdout)
    saved = json.load(open(os.path.join(tiny_demo, "demo.json")))
    assert saved["iou"] == pytest.approx(float(iou), abs=5e-4) and saved["images"] == 8
    picture = os.path.join(tiny_demo, "demo.png")
    assert f"picture:   {picture}" in result.stdout
    sheet = np.asarray(Image.open(picture).convert("RGB")).astype(int)
    assert sheet.shape == (4 * 64, 96 + 8 * 64, 3)  # 4 rows of 8 seeds, 16 px enlarged 4x, a label column
    labels, masks = sheet[:, :96], sheet[128:192, 96:]
    for row in range(4):
        assert (labels[row * 64:(row + 1) * 64] < 128).any()  # a label written in each row
    assert (masks[..., 0] == masks[..., 1]).all() and (masks[..., 1] == masks[..., 2]).all()  # masks: grey
    tiles = sheet[:, 96:].reshape(4, 16, 4, 8, 16, 4, 3)  # row, y, enlarged y, seed, x, enlarged x, channel
    assert (tiles == tiles[:, :, :1, :, :, :1]).all()  # each pixel enlarged 4x (nearest)


def test_a_second_call_shows_the_finished_run_without_training(tiny_demo):
    assert run(tiny_demo).exit_code == 0
    ckpt = os.path.join(tiny_demo, "checkpoint.pt")
    before = (os.stat(ckpt).st_mtime_ns, open(ckpt, "rb").read())
    first = json.load(open(os.path.join(tiny_demo, "demo.json")))
    again = run(tiny_demo)
    assert again.exit_code == 0, again.output + repr(again.exception)
    assert (os.stat(ckpt).st_mtime_ns, open(ckpt, "rb").read()) == before
    assert f"{tiny_demo} holds a finished demo run" in again.stdout
    assert f"demo run:  {tiny_demo}" in again.stdout
    assert float(iou_line(again.stdout)[0]) == pytest.approx(first["iou"], abs=5e-4)
    assert "the run and its scoring" in again.stdout


def test_an_unfinished_run_is_continued(tiny_demo, monkeypatch):
    from layered_gan.training.loop import train

    cfg = demo.demo_config()
    train({**cfg, "schedule": {**cfg["schedule"], "total_kimg": 0.016}}, tiny_demo)
    ckpt = os.path.join(tiny_demo, "checkpoint.pt")
    state = load_checkpoint(ckpt)
    save_checkpoint({**state, "config": cfg}, ckpt)  # what a run of cfg stopped after its first checkpoint holds
    resumed = []
    monkeypatch.setattr(demo, "train", lambda cfg, out, resume, device: resumed.append(resume) or
                        train(cfg, out, resume, device))
    result = run(tiny_demo)
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert resumed == [tiny_demo] and "continuing it from 0.016 of 0.032 kimg" in result.stdout
    assert load_checkpoint(ckpt)["images_seen"] == 32 and iou_line(result.stdout)


@pytest.mark.parametrize("what", ["file", "other files", "other run"])
def test_a_bad_out_is_one_line_and_exit_2(tiny_demo, tmp_path, what):
    out = tmp_path / "out"
    if what == "file":
        out.write_text("notes")
    else:
        out.mkdir()
        if what == "other files":
            (out / "notes.txt").write_text("notes")
        else:
            (out / "config.json").write_text(json.dumps({**demo.demo_config(), "seed": 3}))
    result = run(str(out))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("main demo: error: --out")
    assert {"file": "is a file", "other files": "no demo run", "other run": "another config"}[what] in result.stderr
    assert not os.path.exists(out / "checkpoint.pt")


def test_the_shipped_reference_is_the_demos_and_segments_held_out_scenes(tmp_path, monkeypatch):
    """The demo's reference U-Net comes from checkpoints/reference/ (no training) and reaches 0.9 IoU."""
    monkeypatch.setenv("LAYERED_GAN_CACHE", str(tmp_path))  # an empty cache: only the shipped file can answer
    synthetic = demo.demo_config()["data"]["synthetic"]
    monkeypatch.setattr(generated, "build_synthetic", lambda progress, **syn: default_root(**syn))
    monkeypatch.setattr(generated, "fit", None)  # training would fail
    model, test_iou = generated.train_reference(synthetic)
    [shipped] = glob.glob(os.path.join(generated.SHIPPED_REFERENCES, "*.pt"))
    _, meta = load_segmenter(shipped)
    assert meta["settings"] == {"synthetic": synthetic, "steps": 1200, "batch": 32, "width": 16, "lr": 1e-3, "seed": 0}
    assert test_iou == meta["test_iou"] >= 0.9
    # the first 300 held-out scenes, as the dataset stores them (WebP images, PNG masks)
    scenes = [_encode((synthetic["seed"], "test", i, synthetic["resolution"], "shapes")) for i in range(300)]
    images = torch.stack([to_tensor(Image.open(io.BytesIO(img)).convert("RGB")) for _, img, _ in scenes])
    masks = np.stack([np.asarray(Image.open(io.BytesIO(mask))) > 127 for _, _, mask in scenes])
    iou = iou_per_image(predict(model, images)[:, 0].numpy() > 0.5, masks)[0].mean()
    assert iou >= 0.9 and iou == pytest.approx(test_iou, abs=0.03)


def test_a_shipped_reference_is_used_only_for_its_own_settings(tmp_path, monkeypatch):
    syn = dict(resolution=32, count=32, test_count=8, seed=0)
    monkeypatch.setenv("LAYERED_GAN_CACHE", str(tmp_path / "trained"))
    root = build_synthetic(**syn, workers=1, progress=False)
    trained, iou = generated.train_reference(syn, steps=2, batch=4, width=4, progress=False)
    monkeypatch.setattr(generated, "SHIPPED_REFERENCES", str(tmp_path / "trained" / "reference"))
    monkeypatch.setenv("LAYERED_GAN_CACHE", str(tmp_path / "fresh"))  # nothing cached: only the shipped file
    monkeypatch.setattr(generated, "build_synthetic", lambda progress, **s: root)
    monkeypatch.setattr(generated, "fit", None)  # training would fail
    shipped, shipped_iou = generated.train_reference(syn, steps=2, batch=4, width=4, progress=False)
    assert shipped_iou == iou
    assert all(torch.equal(a, b) for a, b in zip(trained.state_dict().values(), shipped.state_dict().values()))
    with pytest.raises(TypeError):  # same file name, another learning rate: trained anew, not taken
        generated.train_reference(syn, steps=2, batch=4, width=4, lr=0.01, progress=False)
