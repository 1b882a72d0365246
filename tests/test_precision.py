"""Mixed precision (training/precision.py, `num_fp16_res` in networks/stylegan2.py): bf16 autocast on the CPU,
float16 blocks on the CUDA stand-in, non-finite gradients zeroed and counted on the device, fp32 unchanged."""

import contextlib
import math
import os

import pytest
import torch
from click.testing import CliRunner
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from layered_gan.checkpoint import save_checkpoint
from layered_gan.cli import main
from layered_gan.config import load_config, with_overrides
from layered_gan.errors import BadValue
from layered_gan.networks.stylegan2 import Discriminator, Generator, fp16_resolutions, set_fp16
from layered_gan.runs import build_models, load_stylegan2
from layered_gan.training import loop
from layered_gan.training.cli import resolve
from layered_gan.training.loop import train
from layered_gan.training.precision import Precision, check_precision
import cuda_standin
from test_nvidia_pickles import (ADA_PKL, _fp16_variant, load_restricted, nvidia_names, ref,  # noqa: F401 (fixtures)
                                 shared, write_ada)
from test_perturb_training import tiny_cfg
from test_standin_training import toy_config

cuda_standin.install()  # before the process's first backward pass: the autograd engine sizes its device queues then


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERED_GAN_CACHE", str(tmp_path / "cache"))


def _cfg(tmp_path, **settings):
    """tiny_cfg (PerturbGAN, 8 -> 16 px with a fade, lazy R1) with top-level or model settings."""
    cfg = tiny_cfg(tmp_path)
    for key, value in settings.items():
        (cfg["model"] if key in ("num_fp16_res", "conv_clamp") else cfg)[key] = value
    return cfg


def _equal(a, b):
    return all(torch.equal(x, b[k].to(x.device)) for k, x in a.state_dict().items())


def _finite(module):
    return all(bool(p.detach().cpu().isfinite().all()) for p in module.state_dict().values() if p.is_floating_point())


def test_fp32_training_is_unchanged(tmp_path, cache, monkeypatch):
    """fp32 (the default) gives the weights of a run without the precision machinery (no autocast, no gradient
    sanitizing, no float16 block) bit for bit, and of a config from before the option (no precision key)."""
    fp32 = train(_cfg(tmp_path, precision="fp32"), str(tmp_path / "fp32"))
    old = _cfg(tmp_path)
    del old["precision"], old["model"]["num_fp16_res"]
    assert _equal(fp32, train(old, str(tmp_path / "old")).state_dict())
    monkeypatch.setattr(Precision, "sanitize", lambda self, module: None)
    monkeypatch.setattr(Precision, "prepare", lambda self, *modules: None)
    monkeypatch.setattr(Precision, "autocast", lambda self: contextlib.nullcontext())
    assert _equal(fp32, train(_cfg(tmp_path, precision="fp32"), str(tmp_path / "bare")).state_dict())


@pytest.mark.parametrize("name", ["demo", "l4f_demo"])
def test_bf16_autocast_trains_on_the_cpu(name, tmp_path, cache):
    """A toy run in bf16 completes with finite weights that differ from fp32's (the autocast computed)."""
    cfg = tiny_cfg(tmp_path) if name == "demo" else toy_config(name, tmp_path)
    fp32 = train(cfg, str(tmp_path / "fp32"))
    bf16 = train(with_overrides(cfg, ["precision=bf16"]), str(tmp_path / "bf16"))
    assert _finite(bf16) and not _equal(fp32, bf16.state_dict())
    assert load_config(str(tmp_path / "bf16" / "config.json"))["precision"] == "bf16"  # recorded in the run


def test_fp16_blocks_train_on_the_standin(tmp_path, cache, standin):
    """fp16 with num_fp16_res = 1 on the stand-in: the 16-px blocks of G and D compute in float16 (conv outputs
    clamped to the default 256), the 8-px ones, the fade and the images in float32; the run completes with finite
    weights that differ from fp32's."""
    cfg = _cfg(tmp_path, num_fp16_res=1)
    fp16 = train(with_overrides(cfg, ["precision=fp16"]), str(tmp_path / "fp16"), device="standin")
    fp32 = train(cfg, str(tmp_path / "fp32"), device="standin")
    assert _finite(fp16) and not _equal(fp32, fp16.state_dict())
    synthesis = fp16.fg.synthesis
    assert synthesis.fp16 and synthesis.fp16_resolutions == {16} and synthesis.blocks[1].conv1.conv_clamp == 256
    dtypes = {}
    for name, module in [("8", synthesis.blocks[0].conv1), ("16", synthesis.blocks[1].conv1),
                         ("rgb16", synthesis.blocks[1].to_rgb)]:
        module.register_forward_hook(lambda m, args, out, name=name: dtypes.update({name: out.dtype}))
    with torch.no_grad():
        layers = fp16(torch.randn(2, 16, device="standin"), resolution=16, alpha=0.5)
    assert dtypes == {"8": torch.float32, "16": torch.float16, "rgb16": torch.float16}
    assert layers.background.dtype == layers.mask.dtype == torch.float32
    assert not fp32.fg.synthesis.fp16  # fp32 leaves the blocks in float32


@pytest.mark.parametrize("formulation", ["fast", "plain", "fused"])
@torch.no_grad()
def test_float16_blocks_compute_in_float16_close_to_float32(formulation):
    """Layer level, on the CPU: num_fp16_res only marks blocks (float32 results unchanged) until set_fp16; then
    the top blocks compute in float16 within float16 rounding of float32, and the outputs are float32."""
    kw = {"channels": {4: 16, 8: 16, 16: 8, 32: 8}, "formulation": formulation, "conv_clamp": 256}
    torch.manual_seed(0)
    G, D = Generator(32, 16, 16, 2, **kw), Discriminator(32, mbstd_group=2, progressive=True, **kw)
    torch.manual_seed(0)
    G16, D16 = Generator(32, 16, 16, 2, num_fp16_res=2, **kw), Discriminator(32, mbstd_group=2, progressive=True,
                                                                              num_fp16_res=2, **kw)
    assert G16.synthesis.fp16_resolutions == D16.fp16_resolutions == {16, 32}
    z = torch.randn(4, 16)
    noise = G.make_noise(4)
    img = G(z, noise=noise)
    assert torch.equal(G16(z, noise=noise), img) and torch.equal(D16(img, alpha=0.5), D(img, alpha=0.5))
    set_fp16(G16)
    set_fp16(D16)
    dtypes = []
    for block in G16.synthesis.blocks:
        block.conv1.register_forward_hook(lambda m, args, out: dtypes.append(out.dtype))
    for r in ("32", "16", "8"):
        D16.blocks[r].register_forward_hook(lambda m, args, out: dtypes.append(out.dtype))
    img16 = G16(z, noise=noise)
    scores16 = D16(img, alpha=0.5)
    assert dtypes == [torch.float32, torch.float16, torch.float16, torch.float16, torch.float16, torch.float32]
    assert img16.dtype == scores16.dtype == torch.float32
    torch.testing.assert_close(img16, img, atol=2e-2, rtol=2e-2)
    torch.testing.assert_close(scores16, D(img, alpha=0.5), atol=2e-2, rtol=2e-2)
    set_fp16(G16, False)
    assert torch.equal(G16(z, noise=noise), img)


def test_num_fp16_res_sets_the_blocks_and_a_default_conv_clamp(tmp_path):
    assert fp16_resolutions(256, 4) == {32, 64, 128, 256} and fp16_resolutions(16, 4) == {8, 16}
    assert fp16_resolutions(256, 0) == frozenset()
    cfg = load_config("stylegan2_demo", ["model.num_fp16_res=2"])
    G, D = build_models(cfg)
    assert G.synthesis.conv_clamp == D.conv_clamp == 256 and D.num_fp16_res == 2
    cfg["model"]["conv_clamp"] = 64  # an explicit value is kept (convert writes one)
    G, D = build_models(cfg)
    assert G.synthesis.conv_clamp == D.conv_clamp == 64
    G, D = build_models(load_config("stylegan2_demo"))
    assert G.synthesis.conv_clamp is None and D.conv_clamp is None and not G.synthesis.fp16_resolutions
    G, _ = build_models(load_config("demo", ["model.num_fp16_res=1", "model.init=null"]))
    assert G.bg.synthesis.fp16_resolutions == {32} and G.fg.synthesis.conv_clamp == 256


@torch.no_grad()
def test_an_ada_pickles_num_fp16_res_is_honoured(tmp_path, nvidia_names, ref):  # noqa: F811
    """ADA's published setting (num_fp16_res 4, conv_clamp 256): float32 until set_fp16, then the four top blocks of
    G and D compute in float16, within float16 rounding of the stored reference."""
    shared(ADA_PKL)
    path = write_ada(nvidia_names, tmp_path / "fp16.pkl", _fp16_variant(load_restricted(ADA_PKL), 256))
    G, D = load_stylegan2(path, discriminator=True)
    assert G.synthesis.fp16_resolutions == D.fp16_resolutions == {8, 16, 32, 64}
    dtypes = []
    G.synthesis.blocks[0].conv1.register_forward_hook(lambda m, args, out: dtypes.append(out.dtype))
    D.blocks["8"].register_forward_hook(lambda m, args, out: dtypes.append(out.dtype))
    assert G(ref["z"][:1]).dtype == torch.float32 and dtypes == [torch.float32]
    set_fp16(G)
    set_fp16(D)
    images = G(ref["z"], noise=ref["noise"])
    scores = D(ref["images"])
    assert dtypes[1:] == [torch.float16, torch.float16] and images.dtype == scores.dtype == torch.float32
    torch.testing.assert_close(images, ref["images"], atol=5e-2, rtol=1e-2)
    torch.testing.assert_close(scores, ref["d_scores"], atol=5e-2, rtol=1e-2)


def test_non_finite_gradients_are_zeroed_and_counted_on_the_device(standin):
    """sanitize: NaN and +-inf gradient values become 0 (the others keep their bits), the counters count the values
    and the updates that had any, with no host read; the optimizer step leaves the weights finite."""
    net = torch.nn.Linear(3, 2).to("standin")
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    precision = Precision("fp32", "standin")
    net(torch.ones(4, 3, device="standin")).sum().backward()
    good = net.bias.grad.clone()
    net.weight.grad[0, 0], net.weight.grad[1, 2], net.weight.grad[1, 0] = math.nan, math.inf, -math.inf
    expected = net.weight.grad.cpu().nan_to_num(0.0, 0.0, 0.0)
    standin.clear()
    precision.sanitize(net)
    assert [e for e in standin.events() if e[0] == "host read"] == []
    assert torch.equal(net.weight.grad.cpu(), expected) and torch.equal(net.bias.grad, good)
    opt.step()
    assert _finite(net)
    net(torch.ones(4, 3, device="standin")).sum().backward()  # a finite step: counted as nothing
    precision.sanitize(net)
    assert {k: int(v.cpu()) for k, v in precision.counts().items()} == {"precision/nonfinite_grads": 3,
                                                                        "precision/nonfinite_updates": 1}
    assert precision.counts()["precision/nonfinite_grads"].device.type == "standin"


def test_a_training_run_survives_non_finite_gradients_and_logs_them(tmp_path, cache, monkeypatch):
    """A NaN and an inf in one mapping weight's gradient at every generator step: the run completes with finite
    weights (the two entries never move), and TensorBoard shows 2 values per step, every step counted."""
    make_objective = loop.make_objective
    initial = {}

    def poison(grad):
        grad = grad.clone()
        grad[0, 0], grad[0, 1] = math.nan, math.inf
        return grad

    def poisoning(cfg):
        objective = make_objective(cfg)
        build = objective.build

        def build_poisoned():
            G, D = build()
            weight = G.fg.mapping.layers[0].weight
            initial["w"] = weight.detach()[0, :2].clone()
            weight.register_hook(poison)
            return G, D

        objective.build = build_poisoned
        return objective

    monkeypatch.setattr(loop, "make_objective", poisoning)
    G = train(tiny_cfg(tmp_path), str(tmp_path / "run"))
    assert _finite(G) and torch.equal(G.fg.mapping.layers[0].weight[0, :2], initial["w"])
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard")).Reload()
    steps = 192 // 8
    assert events.Scalars("precision/nonfinite_updates")[-1].value == steps
    assert events.Scalars("precision/nonfinite_grads")[-1].value == 2 * steps


def test_refusals(monkeypatch):
    with pytest.raises(BadValue, match="fp16: float16 blocks compute on a GPU; on the CPU use bf16"):
        check_precision("fp16", "cpu")
    with pytest.raises(BadValue, match="bf16: bfloat16 autocast runs on the CPU or CUDA, not on standin"):
        check_precision("bf16", "standin")
    with pytest.raises(BadValue, match="expected one of fp32, fp16, bf16"):
        check_precision("fp8", "cpu")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla V100")
    with pytest.raises(BadValue, match="bf16: Tesla V100 has no bfloat16 arithmetic; use fp16 or fp32"):
        check_precision("bf16", "cuda")
    assert check_precision("fp16", "cuda") == "fp16" and check_precision("bf16", "cpu") == "bf16"
    with pytest.raises(BadValue, match=r"model.num_fp16_res = -1: expected an integer >= 0; precision = \"fp8\""):
        load_config("smoke", ["precision=fp8", "model.num_fp16_res=-1"])


def test_train_refuses_fp16_on_the_cpu_before_writing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["train", "--cfg", "smoke", "--device", "cpu", "--precision", "fp16",
                                       "--out", str(tmp_path / "run")])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and "--precision fp16: float16 blocks compute on a GPU" in lines[0]
    assert os.listdir(tmp_path) == []


def test_a_resumed_run_keeps_its_precision(tmp_path, cache):
    """--resume without --precision keeps the run's; --precision changes it (recorded in config_history.json); a
    run from before the option (no precision key) was fp32 and takes --precision."""
    run = tmp_path / "run"
    os.makedirs(run)
    cfg = tiny_cfg(tmp_path)
    save_checkpoint({"config": with_overrides(cfg, ["precision=bf16"])}, str(run / "checkpoint.pt"))
    assert resolve(None, [], None, str(run), False)[0]["precision"] == "bf16"
    assert resolve(None, ["precision=fp32"], None, str(run), False)[0]["precision"] == "fp32"
    assert "precision" in (run / "config_history.json").read_text()
    del cfg["precision"]
    save_checkpoint({"config": cfg}, str(run / "checkpoint.pt"))
    assert resolve(None, ["precision=bf16"], None, str(run), False)[0]["precision"] == "bf16"
