"""Nothing lost, nothing silently wrong (issue 17): runs are not overwritten, configs are validated before a run
starts, a continued run keeps its config, and no checkpoint temporary outlives its writer."""

import json
import os

import pytest
import torch
from click.testing import CliRunner

from layered_gan.checkpoint import load_checkpoint, save_checkpoint
from layered_gan.config import load_config
from layered_gan.errors import BadValue
from layered_gan.files import atomic_write
from layered_gan.training.cli import train
from layered_gan.training.run_folder import config_changes

TINY = ["--set", 'data.synthetic={"resolution": 32, "count": 32, "test_count": 8, "seed": 0}',
        "--set", 'model={"resolution": 16, "z_dim": 8, "w_dim": 8, "n_mlp": 1, "channel_base": 64, "channel_max": 8}',
        "--set", "schedule.start_resolution=16", "--set", "schedule.batch=8", "--set", "schedule.total_kimg=0.032", "--set", "log.tick_kimg=0.016",
        "--set", "log.checkpoint_kimg=0.016", "--set", "log.grid_size=2", "--set", "workers=0", "--device", "cpu"]


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERED_GAN_CACHE", str(tmp_path / "cache"))


def run_train(*args):
    result = CliRunner().invoke(train, [str(a) for a in args])
    return result


def one_error_line(result):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.mark.parametrize("override, words", [
    ("data.hflip=False", ["data.hflip", "boolean", '"False"']),
    ("schedule.lr=-0.5", ["schedule.lr", "-0.5", "positive"]),
    ("mixing_prob=7", ["mixing_prob", "[0, 1]"]),
    ("ema.half_life_kimg=-1", ["ema.half_life_kimg", "positive"]),
    ("schedule.batch=15.7", ["schedule.batch", "15.7", "integer"]),
    ("schedule.total_kimg=-5", ["schedule.total_kimg", "-5", "positive"]),
    ("schedule.batch=abc", ["schedule.batch", '"abc"']),
    ("model.resolution=48", ["model.resolution", "48", "power of two"]),
    ("model=5", ["model", "section"]),
    ("loss.type=least-squares", ["loss.type", '"least-squares"', '"wgan-gp"', '"hinge"']),
    ('model.discriminator="projected"', ["model.discriminator", "projected", "hinge"]),
])
def test_bad_values_are_refused_before_the_run_starts(tmp_path, override, words):
    line = one_error_line(run_train("--cfg", "stylegan2_demo", "--set", override, "--out", tmp_path / "run"))
    assert all(w in line for w in words), line
    assert not (tmp_path / "run").exists()


def test_a_section_object_sets_its_keys_and_keeps_the_others():
    cfg = load_config("demo", ['data={}', 'model={"resolution": 64}', "data.hflip=false"])
    assert cfg["data"]["source"] == "synthetic" and cfg["model"]["resolution"] == 64
    assert cfg["model"]["init"] == load_config("demo")["model"]["init"] and cfg["data"]["hflip"] is False
    with pytest.raises(BadValue, match="invalid config: mixing_prob = 2: expected a number in \\[0, 1\\]; "
                                       "perturb.bg_jitter = -1"):
        load_config("demo", ["mixing_prob=2", "perturb.bg_jitter=-1"])


def test_every_shipped_config_is_valid():
    names = [f[:-5] for f in os.listdir(os.path.join(os.path.dirname(__file__), "..", "configs"))]
    assert len(names) > 20
    for name in names:
        load_config(name)


def test_a_run_is_never_overwritten_and_resume_writes_into_it(tmp_path):
    run = tmp_path / "run"
    assert run_train("--cfg", "stylegan2_demo", *TINY, "--out", run).exit_code == 0
    first = (run / "checkpoint.pt").read_bytes()
    assert load_checkpoint(str(run / "checkpoint.pt"))["images_seen"] == 32

    line = one_error_line(run_train("--cfg", "stylegan2_demo", *TINY, "--out", run))
    assert f"--out {run} holds a run" in line and "--resume" in line and "--force" in line
    assert (run / "checkpoint.pt").read_bytes() == first

    # --resume without --out continues in the run's own folder, with its own config, to a longer total
    result = run_train("--resume", run, "--set", "schedule.total_kimg=0.048", "--set", "log.tick_kimg=0.032")
    assert result.exit_code == 0, result.output
    assert load_checkpoint(str(run / "checkpoint.pt"))["images_seen"] == 48
    history = json.load(open(run / "config_history.json"))
    assert history[-1]["changes"]["schedule.total_kimg"] == {"old": 0.032, "new": 0.048}
    assert json.load(open(run / "config.json"))["schedule"]["total_kimg"] == 0.048

    # --force moves the old run aside, never deletes it
    result = run_train("--cfg", "stylegan2_demo", *TINY, "--out", run, "--force")
    assert result.exit_code == 0, result.output
    aside = [p for p in os.listdir(tmp_path) if p.startswith("run.old-")]
    assert len(aside) == 1 and load_checkpoint(str(tmp_path / aside[0] / "checkpoint.pt"))["images_seen"] == 48
    assert load_checkpoint(str(run / "checkpoint.pt"))["images_seen"] == 32


def test_resume_refuses_a_changed_config_naming_the_keys(tmp_path):
    run = tmp_path / "run"
    assert run_train("--cfg", "stylegan2_demo", *TINY, "--out", run).exit_code == 0
    before = (run / "config.json").read_bytes()
    for change, key in (("schedule.lr=0.5", "schedule.lr"), ("seed=3", "seed"), ("schedule.batch=4", "schedule.batch"),
                        ("data.source=elsewhere", "data.source")):
        line = one_error_line(run_train("--resume", run, "--set", change))
        assert key in line and "differs" in line, line
    assert (run / "config.json").read_bytes() == before
    assert config_changes({"a": {"b": 1}, "c": 2}, {"a": {"b": 3}, "c": 2}) == {"a.b": (1, 3)}


def test_stale_temporaries_are_removed_and_atomic_writes_leave_none(tmp_path):
    run = tmp_path / "run"
    assert run_train("--cfg", "stylegan2_demo", *TINY, "--out", run).exit_code == 0
    stale = run / "checkpoint.pt.tmp-99999"
    stale.write_bytes(b"x" * 1000)  # what a writer killed mid-write leaves
    assert run_train("--resume", run, "--set", "schedule.total_kimg=0.048").exit_code == 0
    assert not stale.exists()

    def failing(fh):
        fh.write(b"partial")
        raise RuntimeError("killed")

    save_checkpoint({"w": torch.ones(2)}, str(tmp_path / "ck.pt"))
    with pytest.raises(RuntimeError):
        atomic_write(str(tmp_path / "ck.pt"), failing)
    assert sorted(os.listdir(tmp_path)) == ["cache", "ck.pt", "run"]
    assert torch.equal(load_checkpoint(str(tmp_path / "ck.pt"))["w"], torch.ones(2))
