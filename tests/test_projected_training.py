"""The projected discriminator (Sauer et al. 2021) in every training mode: output shapes, the frozen ImageNet
features during a training step, and an end-to-end run that writes grids and a checkpoint and resumes exactly."""

import os

import pytest
import torch

from layered_gan.checkpoint import load_checkpoint
from layered_gan.config import load_config
from layered_gan.errors import BadValue
from layered_gan.networks.projected import ProjectedDiscriminator
from layered_gan.runs import load_run
from layered_gan.training.loop import TrainingState, train, train_step
from layered_gan.training.objectives import make_objective
from layered_gan.training.schedule import phase_at

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECTED = ['model.discriminator="projected"', "model.projected_resolution=64", 'loss.type="hinge"']


@pytest.mark.parametrize("resolution, logits", [(64, 3 * 25 + 1), (128, 4 * 25), (224, 4 * 16)])
def test_output_shapes_at_each_resolution(resolution, logits):
    D = ProjectedDiscriminator(resolution).eval()
    with torch.no_grad():
        for size in (32, 64, 128):  # any input size is resized to `resolution`
            assert D(torch.zeros(2, 3, size, size)).shape == (2, logits)
    with pytest.raises(BadValue, match="no feature maps"):
        D(torch.zeros(2, 3, 32, 32), return_features=True)


def test_bad_projected_resolution_is_refused():
    with pytest.raises(BadValue, match="multiple of 32, at least 64"):
        ProjectedDiscriminator(48)


def tiny_cfg(tmp_path, mode, **schedule):
    data = 'data.synthetic={"resolution": 32, "count": 64, "test_count": 8, "seed": 0}'
    common = [data, "workers=0", "log.tick_kimg=0.032", "log.checkpoint_kimg=1000", "log.grid_size=4"] + PROJECTED
    if mode == "perturb":
        cfg = load_config("demo", common + [
            'model={"init": null, "resolution": 16, "z_dim": 16, "w_dim": 16, "n_mlp": 1, "channel_base": 128, '
            '"channel_max": 8, "variant": "two", "mbstd_group": 4}',
            'schedule={"start_resolution": 8, "phase_kimg": 0.032, "fade_fraction": 0.5, "total_kimg": 0.096, '
            '"batch": {"8": 8, "16": 8}, "lr": {"8": 0.002, "16": 0.002}}'])
    elif mode == "stylegan2":
        cfg = load_config("stylegan2_demo", common + [
            'model={"resolution": 16, "z_dim": 16, "w_dim": 16, "n_mlp": 1, "channel_base": 128, "channel_max": 8}',
            'schedule={"start_resolution": 16, "total_kimg": 0.032, "batch": 8}'])
    else:
        cfg = load_config("l4f_demo", common + [
            f"model.ckpt={os.path.join(ROOT, 'checkpoints', 'stylegan2_demo.pt')}",
            'schedule={"total_kimg": 0.032, "batch": 8}'])
    cfg["schedule"].update(schedule)
    return cfg


def _features_state(D):
    return {k: v.clone() for k, v in D.features.state_dict().items()}


@pytest.mark.parametrize("mode", ["stylegan2", "perturb", "labels4free"])
def test_frozen_features_unchanged_by_a_step_while_g_gets_gradients_through_them(tmp_path, mode):
    cfg = tiny_cfg(tmp_path, mode)
    objective = make_objective(cfg)
    run = TrainingState(cfg, objective, 0, None, "cpu")
    assert isinstance(run.D, ProjectedDiscriminator)
    feature_params = {id(p) for p in run.D.features.parameters()}
    assert not feature_params & {id(p) for group in run.opt_d.param_groups for p in group["params"]}
    before = _features_state(run.D)
    phase = phase_at(0, cfg["schedule"], cfg["model"]["resolution"])
    real = torch.rand(8, 3, phase.resolution, phase.resolution) * 2 - 1
    trainable = [p for p in run.G.parameters() if p.requires_grad]
    weights_before = [p.detach().clone() for p in trainable]
    train_step(run, objective, real, phase, 1, cfg)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable)  # through D's ImageNet features
    assert any(not torch.equal(a, p) for a, p in zip(weights_before, trainable))  # G moved
    assert all(p.grad is None and not p.requires_grad for p in run.D.features.parameters())
    assert not run.D.features.training  # D trains, its feature network stays in eval mode
    after = _features_state(run.D)
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN statistics included


def test_end_to_end_run_writes_grids_checkpoint_without_features_and_resumes_exactly(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERED_GAN_CACHE", str(tmp_path / "cache"))
    straight = train(tiny_cfg(tmp_path, "perturb"), str(tmp_path / "straight"))
    train(tiny_cfg(tmp_path, "perturb", total_kimg=0.072), str(tmp_path / "part"))  # stops mid-phase at 16 px
    first = load_checkpoint(str(tmp_path / "part" / "checkpoint.pt"))
    assert first["images_seen"] == 72
    assert not any(k.startswith("features") for k in first["D"])  # the ImageNet weights come from the package
    assert any(k.startswith("projection.ccm0") for k in first["D"])  # the fixed projections are saved
    assert os.path.isfile(tmp_path / "part" / "layers.png") and os.listdir(tmp_path / "part" / "grids")
    resumed = train(tiny_cfg(tmp_path, "perturb"), str(tmp_path / "part"), resume=str(tmp_path / "part"))
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    ends = [load_checkpoint(str(tmp_path / run / "checkpoint.pt"))["D"] for run in ("straight", "part")]
    for name in ends[0]:
        assert torch.equal(ends[0][name], ends[1][name]), name
    run = load_run(str(tmp_path / "part"), expect="perturb", discriminator=True)
    assert isinstance(run.D, ProjectedDiscriminator) and not run.D.training


def test_perturbgan_init_from_a_projected_stylegan2_run_carries_its_projected_d(tmp_path):
    """model.init from a stylegan2 run trained with the projected D: the layers and the trained parts of D start
    from it (as they do from a StyleGAN2-D run); a D of another kind or size is refused or starts fresh."""
    from layered_gan.checkpoint import save_checkpoint
    source = make_objective(tiny_cfg(tmp_path, "stylegan2"))
    torch.manual_seed(1)
    G0, D0 = source.build()
    with torch.no_grad():
        for p in D0.parameters():
            p.add_(0.1)  # away from any fresh initialization
    save_checkpoint({"config": source.cfg, "G_ema": G0.state_dict(), "D": D0.state_dict()}, str(tmp_path / "sg2.pt"))
    cfg = tiny_cfg(tmp_path, "perturb")
    cfg["model"].update(init=str(tmp_path / "sg2.pt"), resolution=16, channel_max=8, z_dim=16, w_dim=16)
    obj = make_objective(cfg)
    G, D = obj.build()
    trained = {k for k, _ in D0.named_parameters() if not k.startswith("features.")}
    assert trained and all(not torch.equal(D.state_dict()[k], D0.state_dict()[k]) for k in trained)
    obj.initialize(G, D)
    assert all(torch.equal(D.state_dict()[k], D0.state_dict()[k]) for k in trained)
    assert torch.equal(G.bg.synthesis.to_rgb.weight, G0.synthesis.to_rgb.weight)
    wider = make_objective({**cfg, "model": {**cfg["model"], "projected_resolution": 128}})
    with pytest.raises(BadValue, match="model.projected_resolution"):
        wider.initialize(*wider.build())
    plain = make_objective({**cfg, "model": {**cfg["model"], "discriminator": "stylegan2"}, "loss": {
        **cfg["loss"], "type": "logistic"}})
    G, D = plain.build()
    fresh = {k: v.clone() for k, v in D.state_dict().items()}
    plain.initialize(G, D)  # a StyleGAN2 D against a projected run's: fresh
    assert all(torch.equal(fresh[k], v) for k, v in D.state_dict().items())
