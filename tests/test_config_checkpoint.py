import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from layered_gan.checkpoint import load_checkpoint, save_checkpoint
from layered_gan.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Arbitrary:
    """A class a weights-only load must refuse to unpickle."""


def test_config_base_and_overrides(tmp_path):
    (tmp_path / "base.json").write_text(json.dumps({"a": 1, "opt": {"lr": 0.1, "betas": [0, 0.99]}, "name": "x"}))
    (tmp_path / "child.json").write_text(json.dumps({"base": str(tmp_path / "base.json"), "opt": {"lr": 0.2}}))
    cfg = load_config(str(tmp_path / "child.json"), ["a=3", "opt.betas=[0.5, 0.9]", "name=hello"])
    assert cfg == {"a": 3, "opt": {"lr": 0.2, "betas": [0.5, 0.9]}, "name": "hello"}
    with pytest.raises(KeyError, match="unknown key 'lr2'"):
        load_config(str(tmp_path / "child.json"), ["opt.lr2=1"])
    with pytest.raises(ValueError, match="key=value"):
        load_config(str(tmp_path / "child.json"), ["a"])
    with pytest.raises(FileNotFoundError, match="known configs: .*smoke"):
        load_config("no_such_config")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_config(str(tmp_path / "bad.json"))


def test_checkpoint_round_trip_is_atomic_and_weights_only(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint({"w": torch.arange(3), "cfg": {"lr": 0.1}}, str(path))
    assert os.listdir(tmp_path) == ["ck.pt"]  # no temporary left behind
    loaded = load_checkpoint(str(path))
    assert torch.equal(loaded["w"], torch.arange(3)) and loaded["cfg"] == {"lr": 0.1}

    torch.save({"obj": Arbitrary()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="weights-only"):
        load_checkpoint(str(tmp_path / "evil.pt"))
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(str(tmp_path / "missing.pt"))


def test_smoke_run_builds_its_data_and_writes_samples_and_checkpoint(tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, LAYERED_GAN_CACHE=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "train.py", "--cfg", "smoke", "--set", "schedule.total_kimg=0.048",
                           "--set", "log.grid_size=4",
                           "--set", 'data.synthetic={"resolution": 32, "count": 64, "test_count": 8, "seed": 0}',
                           "--out", str(out), "--device", "cpu"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "synthetic 32px" in proc.stderr  # the dataset was created on first use, with a progress bar
    assert os.listdir(tmp_path / "cache" / "synthetic") == ["v1-32px-64-8-seed0"]
    grid = np.asarray(Image.open(out / "layers.png"))
    assert grid.shape == (32, 4 * 32, 3) and grid.std() > 0
    ck = load_checkpoint(str(out / "checkpoint.pt"))
    assert ck["images_seen"] == 48 and ck["config"]["mode"] == "stylegan2" and "synthesis.const" in ck["G"]
    assert "pl_mean" in ck["objective"]


def test_paper_and_code_configs_set_the_faithful_values_and_demos_keep_theirs():
    """Issue 18: `_code` configs follow the authors' code, the others the paper; the demos keep their values."""
    from layered_gan.config import CONFIG_DIR, load_config
    names = sorted(f[:-5] for f in os.listdir(CONFIG_DIR) if f.endswith(".json"))
    cfgs = {n: load_config(n) for n in names}  # every config validates
    for name, cfg in cfgs.items():
        if name.startswith("l4f_") and not name.startswith("l4f_demo"):  # l4f_demo and its variants: the demo's
            assert cfg["labels4free"]["alpha_network"] == "authors" and cfg["lazy_adam"]
            assert cfg["labels4free"]["same_latent"] == name.endswith("_code"), name
        if name.startswith("perturb_"):
            assert cfg["ema"]["decay"] == 0.999 and cfg["perturb"]["shift_draw"] == "rounded"
            assert cfg["perturb"]["mask_terms"] == ("shifted" if name.endswith("_code") else "unshifted"), name
    assert not any(cfgs[n]["lazy_adam"] for n in ("demo", "stylegan2_demo", "l4f_demo", "smoke", "l4f_demo_horizon",
                                                   "stylegan2_demo_horizon"))
    assert cfgs["l4f_demo"]["labels4free"]["alpha_network"] == "compact" and cfgs["demo"]["ema"]["decay"] is None
    assert (cfgs["demo"]["perturb"]["shift_draw"], cfgs["demo"]["perturb"]["jitter_stats"]) == ("integer", "image")
