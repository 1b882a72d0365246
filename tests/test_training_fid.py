"""FID while training (log.fid_kimg): when it is scored, what it scores, and that it neither changes the training
nor breaks an exact resume."""

import json
import os

import pytest
import torch

from layered_gan.config import load_config
from layered_gan.data.dataset import centre_crops
from layered_gan.evaluation.fid import ENV, FIDScorer, load_inception
from layered_gan.training.loop import train
from layered_gan.training.metrics import FILENAME, read_metrics
from test_evaluation_fid import TinyFeatures


def tiny_cfg(total_kimg=0.192, fid_kimg=0.064):
    return load_config("stylegan2_demo", [
        'data.synthetic={"resolution": 32, "count": 64, "test_count": 8, "seed": 0}',
        'model={"resolution": 16, "z_dim": 16, "w_dim": 16, "n_mlp": 1, "channel_base": 128, "channel_max": 8}',
        f'schedule={{"start_resolution": 16, "total_kimg": {total_kimg}, "batch": 8}}',
        "workers=0", "log.tick_kimg=1", "log.checkpoint_kimg=0.064", "log.grid_size=4",
        f"log.fid_kimg={fid_kimg}", "log.fid_num=16", "log.fid_features=inception"])


@pytest.fixture
def inception(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERED_GAN_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    path = str(tmp_path / "tiny.pt")
    torch.jit.script(TinyFeatures()).save(path)
    monkeypatch.setenv(ENV, path)
    return path


def test_fid_is_scored_at_the_start_every_interval_and_the_end_without_changing_training(tmp_path, inception):
    G = train(tiny_cfg(), str(tmp_path / "with"))
    entries = read_metrics(str(tmp_path / "with"))
    assert [e["images_seen"] for e in entries] == [0, 64, 128, 192]
    assert entries[0]["train_seconds"] == 0 and all(a["train_seconds"] < b["train_seconds"]
                                                     for a, b in zip(entries, entries[1:]))
    assert {e["features"] for e in entries} == {"inception"} and {e["num"] for e in entries} == {16}
    # the last figure is the final EMA generator's FID against the training data, recomputed independently
    cfg = tiny_cfg()
    data = centre_crops(cfg["data"], 16)
    again = FIDScorer(load_inception(inception), data, 16, progress=False)(G)
    assert entries[-1]["fid"] == pytest.approx(again["fid"], rel=1e-9) and entries[-1]["kid"] == pytest.approx(
        again["kid"], rel=1e-9, abs=1e-12)
    assert entries[0]["fid"] != entries[-1]["fid"]
    plain = train(tiny_cfg(fid_kimg=0), str(tmp_path / "without"))  # scoring draws from no training stream
    assert not os.path.exists(tmp_path / "without" / FILENAME)
    for (name, a), b in zip(G.state_dict().items(), plain.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_resumed_run_drops_the_entries_past_its_checkpoint(tmp_path, inception):
    straight = str(tmp_path / "straight")
    train(tiny_cfg(), straight)
    part = str(tmp_path / "part")
    train(tiny_cfg(total_kimg=0.128), part)
    with open(os.path.join(part, FILENAME), "a") as fh:  # scored after the last checkpoint, then killed
        fh.write(json.dumps({"images_seen": 160, "kimg": 0.16, "fid": -1.0}) + "\n")
    train(tiny_cfg(), part, resume=part)
    got, want = read_metrics(part), read_metrics(straight)
    assert [e["images_seen"] for e in got] == [0, 64, 128, 192]
    assert [e["fid"] for e in got] == pytest.approx([e["fid"] for e in want], rel=1e-9)
    assert got[-1]["train_seconds"] > got[-2]["train_seconds"] > 0  # carried over the resume


def test_fid_settings_are_validated():
    with pytest.raises(ValueError, match="log.fid_features"):
        load_config("stylegan2_demo", ["log.fid_features=imagenet"])
    with pytest.raises(ValueError, match="log.fid_num"):
        load_config("stylegan2_demo", ["log.fid_num=1"])
