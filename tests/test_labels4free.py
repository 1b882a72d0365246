import pytest
import torch

from layered_gan.checkpoint import load_checkpoint
from layered_gan.config import load_config
from layered_gan.networks import Generator
import torch.nn.functional as F

from layered_gan.networks.alpha_network import (AlphaNetwork, AuthorsAlphaNetwork, BackgroundGenerator,
                                                Labels4FreeGenerator)
from layered_gan.networks.port import save_port
from layered_gan.training.objectives import Labels4Free
from layered_gan.training.loop import train
from layered_gan.training.schedule import phase_at

CHANNELS = {4: 8, 8: 6, 16: 4}


def tiny_generator():
    G = Generator(16, z_dim=8, w_dim=8, n_mlp=1, channels=CHANNELS)
    with torch.no_grad():
        for p in G.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    return G.eval().requires_grad_(False)


@pytest.mark.parametrize("zero", ["const", "conv"])
@torch.no_grad()
def test_background_does_not_depend_on_the_zeroed_channels(zero):
    G = tiny_generator()
    bg = BackgroundGenerator(G, zero, channels=[0, 2, 3, 5, 6, 7])
    ws, noise = G.styles(torch.randn(2, 8)), G.make_noise(2)
    before, plain = bg(ws, noise), G.synthesis(ws, noise=noise)
    assert not torch.allclose(before, plain)  # zeroing changes the image ...
    torch.testing.assert_close(G.synthesis(ws, noise=noise), plain)  # ... only inside the wrapper's call

    def change(channels):  # what these channels of the zeroed tensor hold
        if zero == "const":
            G.synthesis.const[:, channels] += 5.0
        else:
            G.synthesis.conv.weight[channels] += 5.0
            G.synthesis.conv.bias[channels] += 5.0

    change([0, 2])
    torch.testing.assert_close(bg(ws, noise), before)
    change([1])  # a kept channel does matter
    assert not torch.allclose(bg(ws, noise), before)


def test_background_options_are_checked():
    with pytest.raises(ValueError, match="zero must be one of"):
        BackgroundGenerator(tiny_generator(), "tRGB")
    with pytest.raises(ValueError, match=r"lie in \[0, 8\)"):
        BackgroundGenerator(tiny_generator(), "conv", channels=[8])


def test_alpha_network_range_resolution_and_start_layer():
    G = tiny_generator()
    alpha = AlphaNetwork(CHANNELS, 16, start_resolution=8, width=4)
    with torch.no_grad():
        alpha.to_alpha.weight.mul_(50)  # push the sigmoid towards its ends
    _, features = G.synthesis(G.styles(torch.randn(3, 8)), return_features=True)
    mask = alpha(features)
    assert mask.shape == (3, 1, 16, 16) and mask.min() >= 0 and mask.max() <= 1 and mask.std() > 0
    features[0] = features[0] + 10  # the 4x4 features are below the start resolution
    torch.testing.assert_close(alpha(features), mask)
    features[1] = features[1] + 10
    assert not torch.allclose(alpha(features), mask)
    with pytest.raises(ValueError, match="alpha start resolution"):
        AlphaNetwork(CHANNELS, 16, start_resolution=32)


def test_authors_alpha_network_size_matches_the_reference_layout():
    """bg_extractor_repro on a 256-px config-f G (../shared/REFERENCE.md): 12 maps of 512 x8, 256 x2, 128 x2, each
    1x1 to 3 channels; 4 merge convs 12 -> 6 (16 ... 128 px); a final 6 -> 1."""
    widths = {4: [512], 8: [512] * 2, 16: [512] * 2, 32: [512] * 2, 64: [512] * 2, 128: [256] * 2, 256: [128] * 2}
    net = AuthorsAlphaNetwork(widths, 256, start_resolution=8)
    expected = 8 * (512 * 3 + 3) + 2 * (256 * 3 + 3) + 2 * (128 * 3 + 3) + 4 * (12 * 6 + 6) + (6 + 1)
    assert sum(p.numel() for p in net.parameters()) == expected == 14947
    assert [m.out_channels for m in net.merge] == [6] * 4 and net.to_alpha.in_channels == 6


@torch.no_grad()
def test_authors_alpha_network_hand_computation():
    """Weights picking one path: the 8-px first map's channel 0, up-sampled bicubically (align_corners=True) to 16,
    through a merge conv that copies it, leaky ReLU, up-sampled to 32, plus the 32-px block's maps (a bias 0.5)."""
    net = AuthorsAlphaNetwork({4: [2], 8: [2, 2], 16: [2, 2], 32: [2, 2]}, 32, start_resolution=8)
    for p in net.parameters():
        p.zero_()
    net.to_rgb[0][0].weight[0, 0] = 1.0  # 8 px, first conv's map: channel 0 -> output 0
    net.merge[0].weight[0, 0] = 1.0  # 16 px: keep the up-sampled output 0
    net.to_rgb[2][0].bias[0] = 0.5  # 32 px: the finest maps, added
    net.to_alpha.weight[0, 0] = 1.0
    features = [torch.randn(1, 2, r, r) for r in (4, 8, 8, 16, 16, 32, 32)]
    up = F.interpolate(features[1][:, :1], size=(16, 16), mode="bicubic", align_corners=True)
    up = F.interpolate(F.leaky_relu(up, 0.2), size=(32, 32), mode="bicubic", align_corners=True)
    torch.testing.assert_close(net(features), torch.sigmoid(up + 0.5))
    features[2].normal_()  # the second map of 8 px has its own (zero) conv: no effect
    torch.testing.assert_close(net(features), torch.sigmoid(up + 0.5))


@torch.no_grad()
def test_same_latent_feeds_the_background_the_untruncated_foreground_latent():
    """Labels4Free train.py: generator(noise, back=False, truncation=psi) and generator(noise, back=True)."""
    G = tiny_generator()
    z, noise = torch.randn(2, 16), (G.make_noise(2), G.make_noise(2))
    other = torch.cat([z[:, :8], torch.randn(2, 8)], 1)  # same z, another z'
    same = Labels4FreeGenerator(G, alpha_start_resolution=8, alpha_width=4, same_latent=True)
    bg = same(z, truncation=0.5, noise=noise).background
    torch.testing.assert_close(bg, same.background(G.styles(z[:, :8]), noise=noise[1]))
    torch.testing.assert_close(same(other, truncation=0.5, noise=noise).background, bg)
    independent = Labels4FreeGenerator(G, alpha_start_resolution=8, alpha_width=4)
    torch.testing.assert_close(independent(z, noise=noise).background,
                               independent.background(G.styles(z[:, 8:]), noise=noise[1]))


def l4f_cfg(tmp_path, **loss):
    path = str(tmp_path / "g.pt")
    torch.manual_seed(1)
    save_port(path, tiny_generator())
    cfg = load_config("l4f_demo", [
        'data.synthetic={"resolution": 32, "count": 64, "test_count": 8, "seed": 0}',
        f"model.ckpt={path}", "model.resolution=16", "model.channel_base=64", "model.channel_max=4",
        "labels4free.alpha_width=4", "schedule.total_kimg=0.032", "workers=0", "log.tick_kimg=0.016",
        "log.checkpoint_kimg=1000", "log.grid_size=4", "loss.r1_interval=2", "loss.bg_coverage_weight=2.0"])
    cfg["loss"].update(loss)
    return cfg


def test_regularizers_match_a_hand_computation(tmp_path):
    obj = Labels4Free(l4f_cfg(tmp_path, fg_coverage=0.25, bg_coverage=0.75))
    mask = torch.full((2, 1, 4, 4), 0.1)  # image 0: all 0.1
    mask[1, :, :2], mask[1, :, 2:] = 1.0, 0.3  # image 1: half 1, half 0.3 (mean 0.65)
    terms = {k: float(v) for k, (_, v) in obj.regularizers(mask).items()}
    # B: mean of min(M, 1 - M) = (0.1 + (0 + 0.3) / 2) / 2; C: relu(0.25 - mean M) = (0.15 + 0) / 2;
    # E: relu(0.75 - mean(1 - M)) = (relu(0.75 - 0.9) + relu(0.75 - 0.35)) / 2
    assert terms == pytest.approx({"loss/binarization": 0.125, "loss/fg_coverage": 0.075, "loss/bg_coverage": 0.2})


def test_loss_weights_and_lazy_r1(tmp_path):
    obj = Labels4Free(l4f_cfg(tmp_path, d_adv_weight=0.1, alpha_adv_weight=0.5))
    torch.manual_seed(0)
    net, D = obj.build()
    phase = phase_at(0, obj.cfg["schedule"], 16)
    real = torch.randn(4, 3, 16, 16)
    loss, stats = obj.d_loss(net, D, real, phase, torch.Generator().manual_seed(0), step=1)
    torch.testing.assert_close(loss, 0.1 * stats["loss/d_logistic"])
    loss, stats = obj.d_loss(net, D, real, phase, torch.Generator().manual_seed(0), step=2)
    torch.testing.assert_close(loss, 0.1 * stats["loss/d_logistic"] + 10.0 / 2 * stats["loss/r1"] * 2)
    loss, stats, extras = obj.g_loss(net, D, 4, phase, torch.Generator().manual_seed(0), 0, "cpu")
    expected = (0.5 * stats["loss/g_nonsaturating"] + 3.0 * stats["loss/binarization"]
                + 3.0 * stats["loss/fg_coverage"] + 2.0 * stats["loss/bg_coverage"])
    torch.testing.assert_close(loss, expected)
    assert extras["mask"].shape == (4, 1, 16, 16)


def test_checkpoint_option_errors(tmp_path):
    cfg = l4f_cfg(tmp_path)
    cfg["model"]["resolution"] = 32
    with pytest.raises(ValueError, match=r"model.resolution is 32 but the generator in model.ckpt .* draws 16 px"):
        Labels4Free(cfg).build()
    cfg["model"]["ckpt"] = str(tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError, match="model.ckpt: .*missing.pt does not exist"):
        Labels4Free(cfg).build()


def test_training_changes_only_the_alpha_network_and_d(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERED_GAN_CACHE", str(tmp_path / "cache"))
    cfg = l4f_cfg(tmp_path)
    torch.manual_seed(cfg["seed"])
    start, _ = Labels4Free(cfg).build()  # the loop builds the same initial weights from the seed
    train(cfg, str(tmp_path / "run"))
    state = load_checkpoint(str(tmp_path / "run" / "checkpoint.pt"))
    assert state["step"] == 4
    frozen = {k: v for k, v in start.state_dict().items() if k.startswith("background.generator.")}
    assert frozen and all(torch.equal(state["G"][k], v) and torch.equal(state["G_ema"][k], v) for k, v in frozen.items())
    alpha = {k: v for k, v in start.state_dict().items() if k.startswith("alpha.")}
    assert all(not torch.equal(state["G"][k], v) for k, v in alpha.items())
    assert (tmp_path / "run" / "layers.png").is_file()
    assert state["opt_d"]["param_groups"][0]["betas"] == (0.0, 0.99)  # l4f_demo: no lazy rescaling


def test_lazy_adam_rescales_lr_and_betas_with_the_authors_network(tmp_path, monkeypatch):
    """StyleGAN2 sec. 3.1: lr x c, beta ** c, c = k / (k + 1): D's R1 every 2 steps here, A's ratio the code's 4/5."""
    monkeypatch.setenv("LAYERED_GAN_CACHE", str(tmp_path / "cache"))
    cfg = l4f_cfg(tmp_path)
    cfg["lazy_adam"] = True
    cfg["labels4free"].update(alpha_network="authors", same_latent=True)
    train(cfg, str(tmp_path / "run"))
    state = load_checkpoint(str(tmp_path / "run" / "checkpoint.pt"))
    d_group, g_group = state["opt_d"]["param_groups"][0], state["opt_g"]["param_groups"][0]
    assert d_group["lr"] == pytest.approx(0.002 * 2 / 3) and d_group["betas"] == pytest.approx((0.0, 0.99 ** (2 / 3)))
    assert g_group["lr"] == pytest.approx(0.002 * 4 / 5) and g_group["betas"] == pytest.approx((0.0, 0.99 ** 0.8))
    assert any(k.startswith("alpha.merge") or k.startswith("alpha.to_rgb") for k in state["G"])
