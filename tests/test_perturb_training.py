import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from layered_gan.checkpoint import load_checkpoint
from layered_gan.config import load_config
from layered_gan.training.ema import ema_beta, update_ema
from layered_gan.training.loop import train
from layered_gan.training.schedule import phase_at

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEDULE = {"start_resolution": 8, "phase_kimg": 10, "fade_fraction": 0.5, "total_kimg": 50,
            "batch": {"8": 64, "16": 32, "32": 16}, "lr": {"8": 0.001, "16": 0.001, "32": 0.0015}}


def test_progressive_schedule_arithmetic():
    p = phase_at(0, SCHEDULE, 32)
    assert (p.index, p.resolution, p.alpha, p.batch, p.lr) == (0, 8, 1.0, 64, 0.001)
    assert phase_at(9.99, SCHEDULE, 32).resolution == 8
    p = phase_at(10, SCHEDULE, 32)
    assert (p.resolution, p.alpha, p.batch, p.start_kimg) == (16, 0.0, 32, 10)
    assert phase_at(12.5, SCHEDULE, 32).alpha == pytest.approx(0.5)
    assert phase_at(15, SCHEDULE, 32).alpha == 1.0 and phase_at(19, SCHEDULE, 32).alpha == 1.0
    p = phase_at(21, SCHEDULE, 32)
    assert (p.resolution, p.alpha, p.batch, p.lr) == (32, pytest.approx(0.2), 16, 0.0015)
    assert phase_at(45, SCHEDULE, 32).resolution == 32 and phase_at(45, SCHEDULE, 32).alpha == 1.0  # last phase runs on
    fixed = dict(SCHEDULE, start_resolution=32)
    assert phase_at(0, fixed, 32).resolution == 32 and phase_at(0, fixed, 32).alpha == 1.0
    with pytest.raises(KeyError, match="no entry for resolution 64"):
        phase_at(0, dict(SCHEDULE, start_resolution=64), 64)


def test_ema_ramps_up_then_uses_the_half_life():
    assert ema_beta(32, 32, half_life_kimg=10, rampup=0.05) == pytest.approx(0.5 ** (32 / 1.6))  # early: tiny half-life
    assert ema_beta(32, 10 ** 7, half_life_kimg=10, rampup=0.05) == pytest.approx(0.5 ** (32 / 10000))
    assert ema_beta(32, 0, half_life_kimg=10, rampup=None) == pytest.approx(0.5 ** (32 / 10000))
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    before = a.weight.detach().clone()
    update_ema(a, b, 0.25)
    torch.testing.assert_close(a.weight, 0.25 * before + 0.75 * b.weight)


def tiny_cfg(tmp_path, **schedule):
    cfg = load_config("demo", [
        'data.synthetic={"resolution": 32, "count": 64, "test_count": 8, "seed": 0}',
        'model={"init": null, "resolution": 16, "z_dim": 16, "w_dim": 16, "n_mlp": 1, "channel_base": 128, '
        '"channel_max": 8, "variant": "two", "mbstd_group": 4}',
        'schedule={"start_resolution": 8, "phase_kimg": 0.064, "fade_fraction": 0.5, "total_kimg": 0.192, '
        '"batch": {"8": 8, "16": 8}, "lr": {"8": 0.002, "16": 0.002}}',
        "workers=0", "log.tick_kimg=0.064", "log.checkpoint_kimg=1000", "log.grid_size=4"])
    cfg["schedule"].update(schedule)
    return cfg


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERED_GAN_CACHE", str(tmp_path / "cache"))


def test_resume_continues_exactly(tmp_path, cache):
    straight = train(tiny_cfg(tmp_path), str(tmp_path / "straight"))
    train(tiny_cfg(tmp_path, total_kimg=0.12), str(tmp_path / "part"))  # stops mid-phase at 16 px
    first = load_checkpoint(str(tmp_path / "part" / "checkpoint.pt"))
    assert first["images_seen"] == 120 and first["step"] == 15
    resumed = train(tiny_cfg(tmp_path), str(tmp_path / "part"), resume=str(tmp_path / "part"))
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    final = load_checkpoint(str(tmp_path / "part" / "checkpoint.pt"))
    assert final["images_seen"] == 192 and final["config"]["schedule"]["total_kimg"] == 0.192


def test_non_finite_loss_stops_with_the_term_and_step(tmp_path, cache):
    cfg = tiny_cfg(tmp_path)
    cfg["loss"].update(type="wgan-gp", gp_lambda=float("nan"))
    with pytest.raises(FloatingPointError, match=r"non-finite loss/\w+ = nan at step \d+; last good checkpoint"):
        train(cfg, str(tmp_path / "run"))


def test_demo_command_end_to_end_writes_grids_checkpoint_and_logs(tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, LAYERED_GAN_CACHE=str(tmp_path / "cache"))
    cmd = [sys.executable, "train.py", "--cfg", "demo", "--out", str(out), "--device", "cpu",
           "--set", 'data.synthetic={"resolution": 32, "count": 64, "test_count": 8, "seed": 0}',
           "--set", "schedule.total_kimg=0.3", "--set", "schedule.phase_kimg=0.1", "--set", "workers=0",
           "--set", "log.tick_kimg=0.1", "--set", "log.grid_size=4"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "32px" in proc.stderr  # the progress bar reached the last phase
    grid = np.asarray(Image.open(out / "layers.png"))
    assert grid.shape == (6 * 32, 4 * 32, 3)  # background, foreground, mask, fg x mask, composite, shifted
    assert len(os.listdir(out / "grids")) >= 2
    assert any(f.startswith("events.") for f in os.listdir(out / "tensorboard"))
    ck = load_checkpoint(str(out / "checkpoint.pt"))
    assert ck["images_seen"] >= 300 and {"G", "G_ema", "D", "opt_g", "opt_d", "rng"} <= set(ck)
    bad = subprocess.run([sys.executable, "train.py", "--cfg", "demo", "--set", "loss.nope=1"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "unknown key 'nope'" in bad.stderr and "eta" in bad.stderr
    missing = subprocess.run([sys.executable, "train.py", "--cfg", "demo", "--set", "model.init=no/such.pt"], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=120)
    assert missing.returncode != 0 and "model.init" in missing.stderr and "no/such.pt" in missing.stderr


WRITER = """
import sys, torch
from layered_gan.checkpoint import save_checkpoint
i = 0
while True:
    save_checkpoint({"i": i, "x": torch.full([3_000_000], float(i))}, sys.argv[1])
    i += 1
"""


def test_sigkill_during_checkpoint_writes_leaves_a_loadable_checkpoint(tmp_path):
    path = tmp_path / "ck.pt"
    env = dict(os.environ, PYTHONPATH=ROOT)
    for delay in (0.05, 0.3, 0.7):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], env=env)
        deadline = time.time() + 120
        while not path.exists() and time.time() < deadline:  # the first checkpoint is down: kill in a later write
            time.sleep(0.02)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        ck = load_checkpoint(str(path))
        assert float(ck["x"][0]) == ck["i"] == float(ck["x"][-1])
    assert not [f for f in os.listdir(tmp_path) if f != "ck.pt" and not f.startswith("ck.pt.tmp-")]


def test_generate_command_from_a_checkpoint(tmp_path, cache):
    from layered_gan.generate import parse_seeds
    from layered_gan.runs import load_run
    from layered_gan.sampling import generate_layers

    train(tiny_cfg(tmp_path, total_kimg=0.016), str(tmp_path / "run"))
    assert parse_seeds("0-2,5") == [0, 1, 2, 5]
    G = load_run(str(tmp_path / "run")).G
    a = generate_layers(G, [3, 4], truncation=0.5)
    b = generate_layers(G, [4], truncation=0.5)
    torch.testing.assert_close(a.mask[1:], b.mask)  # a seed alone fixes its sample
    assert a.background.shape == (2, 3, 16, 16)
    out = tmp_path / "samples"
    proc = subprocess.run([sys.executable, "-m", "layered_gan", "generate", "--ckpt", str(tmp_path / "run"),
                           "--seeds", "0-2", "--out", str(out), "--singles"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(os.listdir(out))[:2] == ["seed0000_background.png", "seed0000_composite.png"] and len(os.listdir(out)) == 12


def test_ema_decay_per_step_overrides_the_half_life():
    """ema.decay: perturbed-seg's fixed 0.999 per step; null keeps the half-life with ramp-up."""
    from layered_gan.training.ema import step_beta
    assert step_beta({"decay": 0.999, "half_life_kimg": 10, "rampup": 0.05}, 32, 32) == 0.999
    assert step_beta({"decay": None, "half_life_kimg": 10, "rampup": 0.05}, 32, 32) == ema_beta(32, 32, 10, 0.05)


def test_fir_fade_of_reals_resamples_as_the_generator_fades():
    """schedule.real_fade = "fir": down-sampled as D does, up-sampled by the generator's upsample_rgb."""
    from cuda_ops import setup_filter, upfirdn2d
    from layered_gan.networks.stylegan2 import SynthesisNetwork
    from layered_gan.training.loop import fade_real
    real = torch.randn(2, 3, 16, 16)
    low = upfirdn2d(real, setup_filter((1, 3, 3, 1)), down=2, padding=1)
    synthesis = SynthesisNetwork(16, 8, {4: 4, 8: 4, 16: 4})
    torch.testing.assert_close(fade_real(real, 0.0, "fir"), synthesis.upsample_rgb(low))
    torch.testing.assert_close(fade_real(real, 0.25, "fir"), fade_real(real, 0.0, "fir").lerp(real, 0.25))
    box = torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(real, 2), scale_factor=2, mode="nearest")
    torch.testing.assert_close(fade_real(real, 0.0, "box"), box)
    assert not torch.allclose(fade_real(real, 0.0, "fir"), box) and fade_real(real, 1.0, "fir") is real


def _two_rank_worker(rank, init, cfg, out, cache):
    os.environ["LAYERED_GAN_CACHE"] = cache
    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    train(cfg, out)
    torch.distributed.destroy_process_group()


def test_a_resume_with_another_world_size_continues_and_says_so(tmp_path, cache, capsys):
    """Two processes to 64 images, then one process to the end: the data re-split by position (the sampler is a
    function of it), the random streams restarted per rank, said in one line; no IndexError on the streams."""
    run = str(tmp_path / "run")
    torch.multiprocessing.spawn(_two_rank_worker, args=(f"file://{tmp_path}/init", tiny_cfg(tmp_path, total_kimg=0.064),
                                                        run, os.environ["LAYERED_GAN_CACHE"]), nprocs=2)
    assert len(load_checkpoint(os.path.join(run, "checkpoint.pt"))["rng"]) == 2
    train(tiny_cfg(tmp_path), run, resume=run)
    final = load_checkpoint(os.path.join(run, "checkpoint.pt"))
    assert final["images_seen"] == 192 and len(final["rng"]) == 1
    assert "resumed on 1 processes from a checkpoint of 2" in capsys.readouterr().out
