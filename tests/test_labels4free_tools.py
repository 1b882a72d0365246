import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from layered_gan.runs import load_run
from layered_gan.sampling import generate_layers
from layered_gan.checkpoint import save_checkpoint
from layered_gan.cli import generate as generate_command
from layered_gan.cli import labels4free as l4f
from layered_gan.config import load_config
from layered_gan.data.dataset import ImageDataset
from layered_gan.evaluation.sources import FileSource
from layered_gan.labels4free.analysis import (bar_chart, layer_gradient_norms, rank_layers, ssim, suggest_start,
                                              trgb_noise_sensitivity)
from layered_gan.networks import Discriminator, Generator
from layered_gan.networks.port import save_port
from layered_gan.projection import project, zero_noise
from layered_gan.training.objectives import Labels4Free

CHANNELS = {4: 8, 8: 6, 16: 4}


def tiny_generator(seed=1):
    torch.manual_seed(seed)
    G = Generator(16, z_dim=8, w_dim=8, n_mlp=1, channels=CHANNELS)
    with torch.no_grad():
        for p in G.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    return G.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A Labels4Free run folder (config + EMA weights, as the training loop writes) on a tiny port checkpoint."""
    root = tmp_path_factory.mktemp("l4f")
    G = tiny_generator()
    save_port(str(root / "g.pt"), G, Discriminator(16, channels={16: 4, 8: 4, 4: 4}))
    cfg = load_config("l4f_demo", [f"model.ckpt={root / 'g.pt'}", "model.resolution=16", "model.channel_base=64",
                                   "model.channel_max=4", "labels4free.alpha_width=4"])
    torch.manual_seed(0)
    net, _ = Labels4Free(cfg).build()
    with torch.no_grad():
        net.alpha.to_alpha.weight.mul_(30)  # masks spread over (0, 1)
    save_checkpoint({"config": cfg, "G_ema": net.state_dict()}, str(root / "run" / "checkpoint.pt"))
    return root


def invoke(command, args):
    result = CliRunner().invoke(command, [str(a) for a in args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def read(path):
    return np.asarray(Image.open(path), dtype=np.float64)


def test_sample_writes_aligned_tuples_and_the_same_pairs_as_lmdb(run, tmp_path):
    out = tmp_path / "png"
    invoke(l4f, ["sample", "--ckpt", run / "run", "--num", 5, "--batch", 2, "--threshold", 0.6, "--out", out])
    names = {part: sorted(p.name for p in (out / part).iterdir())
             for part in ("images", "foregrounds", "backgrounds", "alphas", "masks")}
    assert all(n == [f"{i:08d}.png" for i in range(5)] for n in names.values())
    alphas, masks = [], []
    for name in names["images"]:
        image, fg, bg = (read(out / part / name) for part in ("images", "foregrounds", "backgrounds"))
        alpha, mask = read(out / "alphas" / name) / 255, read(out / "masks" / name)
        # image = alpha x foreground + (1 - alpha) x background, up to 8-bit rounding of the four files,
        # where neither layer was clipped to the image range
        inside = (fg > 0) & (fg < 255) & (bg > 0) & (bg < 255)
        assert inside.sum() > 200
        np.testing.assert_allclose(image[inside], (bg + alpha[..., None] * (fg - bg))[inside], atol=2.0)
        alphas.append(alpha)
        masks.append(mask)
    alphas, masks = np.stack(alphas), np.stack(masks)
    assert set(np.unique(masks)) == {0, 255}
    clear = np.abs(alphas - 0.6) > 1 / 255  # away from the threshold, where rounding cannot decide
    assert ((masks == 255) == (alphas > 0.6))[clear].all()
    assert (alphas[clear] > 0.6).any() and (alphas[clear] < 0.6).any()
    assert json.loads((out / "manifest.json").read_text())["threshold"] == 0.6

    lmdb_out = tmp_path / "lmdb"
    invoke(l4f, ["sample", "--ckpt", run / "run", "--num", 5, "--batch", 2, "--threshold", 0.6, "--out", lmdb_out,
                 "--lmdb"])
    for part in ("images", "masks"):
        source = FileSource(str(lmdb_out / part))
        assert source.names == [f"{i:08d}" for i in range(5)]
        for name in source.names:
            np.testing.assert_array_equal(np.asarray(source.image(name)), np.asarray(
                Image.open(out / part / f"{name}.png").convert("RGB")))
    image, mask = ImageDataset(str(out / "images"), 16, crop="center", masks=str(out / "masks"))[0]  # distill --pairs
    assert image.shape == (3, 16, 16) and set(mask.unique().tolist()) <= {0.0, 1.0}
    for existing, flags in ((out, []), (lmdb_out, ["--lmdb"])):
        result = CliRunner().invoke(l4f, ["sample", "--ckpt", str(run / "run"), "--num", "1", "--out", str(existing)]
                                    + flags)
        assert result.exit_code == 2 and "--out" in result.output and "exists" in result.output


def test_generate_works_on_a_labels4free_run(run, tmp_path):
    invoke(generate_command, ["--ckpt", run / "run", "--seeds", "0-2", "--out", tmp_path, "--truncation", 0.7])
    assert Image.open(tmp_path / "layers.png").size == (3 * 16, 4 * 16)  # background, foreground, mask, composite
    G = load_run(str(run / "run")).G
    layers = generate_layers(G, [0, 1], truncation=0.7)
    torch.testing.assert_close(generate_layers(G, [1], truncation=0.7).mask, layers.mask[1:])
    assert layers.mask.shape == (2, 1, 16, 16) and not torch.equal(layers.background[0], layers.background[1])


def test_alpha_network_reads_both_convs_of_each_block(run):
    G = load_run(str(run / "run")).G
    feats = G.generator.synthesis(G.generator.styles(torch.randn(2, 8)), return_features="all")[1]
    assert [f.shape[-1] for f in feats] == [4, 8, 8, 16, 16]
    ws = G.generator.styles(torch.randn(2, 8))
    noise = zero_noise(G.generator, 2, "cpu")
    _, mask = G.foreground(ws, noise)
    for conv in (G.generator.synthesis.blocks[1].conv0, G.generator.synthesis.blocks[1].conv1):
        handle = conv.register_forward_hook(lambda m, args, out: out + 1)
        try:
            assert not torch.allclose(G.foreground(ws, noise)[1], mask)
        finally:
            handle.remove()


def test_projection_recovers_a_known_w_and_lowers_the_loss():
    torch.manual_seed(0)
    G = Generator(16, z_dim=8, w_dim=8, n_mlp=2, channels={4: 8, 8: 8, 16: 8}).eval()
    G.w_avg.copy_(G.mean_w(1000))
    w = G.mapping(torch.randn(3, 8))
    ws_true = w[:, None].repeat(1, G.n_latent, 1)
    target = G.synthesis(ws_true, noise=zero_noise(G, 3, "cpu"))
    result = project(G, target, steps=100, lr=0.1, plus=False)
    start = (G.w_avg - w).norm(dim=-1)
    assert ((result.ws - ws_true).norm(dim=-1) < 0.05 * start[:, None]).all()
    plus = project(G, target, steps=30, lr=0.05)
    assert plus.losses.shape == (31, 3) and (plus.losses[-1] < 0.5 * plus.losses[0]).all()
    assert not torch.allclose(plus.ws[:, 0], plus.ws[:, -1])  # W+: slots move apart
    alone = project(G, target[1:2], steps=30, lr=0.05)  # each image's latents see only its own loss
    torch.testing.assert_close(alone.ws[0], plus.ws[1], atol=1e-5, rtol=1e-5)
    D = Discriminator(16, channels={16: 4, 8: 4, 4: 4}, mbstd_group=1)
    with_d = project(G, target, steps=5, lr=0.05, D=D, feature_weight=1.0)
    assert (with_d.losses[0] > plus.losses[0]).all()  # the feature term adds to the L1 term
    assert all(p.requires_grad for m in (G, D) for p in m.parameters())  # the flags are restored
    with pytest.raises(ValueError, match="needs a discriminator"):
        project(G, target, feature_weight=1.0)
    with pytest.raises(ValueError, match=r"\[B, C, 16, 16\]"):
        project(G, target[:, :, :8, :8])


def test_project_command_writes_masks_of_real_images(run, tmp_path):
    images = tmp_path / "photos"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b", "c"):
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(images / f"{name}.png")
    out = tmp_path / "out"
    invoke(l4f, ["project", "--ckpt", run / "run", "--images", images, "--out", out, "--steps", 20, "--batch", 2,
                 "--feature-weight", 0.1])
    for part in ("masks", "alphas", "reconstructions"):
        assert sorted(p.name for p in (out / part).iterdir()) == ["a.png", "b.png", "c.png"]
    assert Image.open(out / "masks" / "a.png").size == (16, 16)
    losses = json.loads((out / "losses.json").read_text())
    assert all(v["last"] < v["first"] for v in losses.values())
    latents = torch.load(out / "latents.pt")
    assert latents["names"] == ["a", "b", "c"] and latents["ws"].shape == (3, 6, 8)


def test_ssim_hand_values():
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    torch.testing.assert_close(ssim(x, x), torch.ones(2))
    c1, c2 = (0.01 * 2) ** 2, (0.03 * 2) ** 2
    a, b = torch.full((1, 1, 12, 12), 0.5), torch.full((1, 1, 12, 12), -0.2)
    # constants: no variance, so SSIM = (2 a b + C1) / (a^2 + b^2 + C1)
    assert float(ssim(a, b)) == pytest.approx((2 * 0.5 * -0.2 + c1) / (0.25 + 0.04 + c1), abs=1e-6)
    i, j = torch.meshgrid(torch.arange(12), torch.arange(12), indexing="ij")
    checker = (((i + j) % 2) * 2 - 1).float()[None, None] * 0.4  # local mean ~0, local variance 0.16
    # constant a against the checkerboard: luminance C1 / (a^2 + C1), contrast-structure C2 / (0.16 + C2)
    assert float(ssim(a, checker)) == pytest.approx(c1 / (0.25 + c1) * c2 / (0.16 + c2), abs=1e-6)
    # the checkerboard shifted by 0.3: same structure, luminance C1 / (0.09 + C1)
    assert float(ssim(checker, checker + 0.3)) == pytest.approx(c1 / (0.09 + c1), abs=1e-6)
    assert float(ssim(checker, -checker)) == pytest.approx((c2 - 0.32) / (0.32 + c2), abs=1e-5)
    with pytest.raises(ValueError, match="smaller than the 11x11 SSIM window"):
        ssim(a[..., :8, :8], b[..., :8, :8])


def test_trgb_sensitivity_finds_a_planted_resolution():
    G = tiny_generator()
    with torch.no_grad():  # only the 8 px tRGB draws anything: noise elsewhere cannot change the image
        for layer in (G.synthesis.to_rgb, G.synthesis.blocks[1].to_rgb):
            layer.weight.zero_()
    scores = trgb_noise_sensitivity(G, num=6, batch=4)
    assert list(scores) == [4, 8, 16] and all(len(s) == 6 for s in scores.values())
    torch.testing.assert_close(scores[4], torch.ones(6))
    torch.testing.assert_close(scores[16], torch.ones(6))
    assert scores[8].max() < 0.9
    start, drops = suggest_start({r: float(s.mean()) for r, s in scores.items()})
    assert start == 8 and drops[16] < 0
    # the first marked drop (20 % by default), not the largest; without one, the largest
    assert suggest_start({4: 0.9, 8: 0.85, 16: 0.6, 32: 0.2})[0] == 16
    assert suggest_start({4: 0.9, 8: 0.85, 16: 0.6, 32: 0.2}, min_drop=0.5)[0] == 32
    assert suggest_start({4: 0.9, 8: 0.85, 16: 0.8})[0] == 16


def test_gradient_ranking_finds_a_planted_layer():
    G = tiny_generator()
    with torch.no_grad():
        for layer in (G.synthesis.to_rgb, G.synthesis.blocks[1].to_rgb):
            layer.weight.zero_()  # the image comes only from the 8 px tRGB ...
        G.synthesis.blocks[0].to_rgb.weight[:, [0, 1, 2, 4, 5]] = 0  # ... reading channel 3 of 8/conv1 ...
        conv1 = G.synthesis.blocks[0].conv1
        conv1.affine.weight.zero_()
        conv1.affine.bias.zero_()  # ... which ignores its input (zero styles): nothing before it matters
    ws = G.styles(torch.randn(3, 8))
    targets = torch.rand(3, 3, 16, 16) * 2 - 1
    norms = layer_gradient_norms(G, ws, targets, zero_noise(G, 3, "cpu"))
    assert list(norms) == ["const", "4/conv", "8/conv0", "8/conv1", "16/conv0", "16/conv1"]
    assert [len(v) for v in norms.values()] == [8, 8, 6, 6, 4, 4]
    ranking, channels = rank_layers(norms)
    assert ranking[0][0] == "8/conv1" and all(total == 0 for _, total in ranking[1:])
    assert channels == [3]


def test_gradient_norms_match_autograd_on_a_plain_generator():
    G = tiny_generator()
    ws, target, noise = G.styles(torch.randn(1, 8)), torch.zeros(1, 3, 16, 16), zero_noise(G, 1, "cpu")
    norms = layer_gradient_norms(G, ws, target, noise)
    G.synthesis.const.requires_grad_(True)
    G.synthesis(ws, noise=noise).square().sum().backward()
    torch.testing.assert_close(norms["const"], G.synthesis.const.grad[0].flatten(1).norm(dim=1))
    assert all(float(v.sum()) > 0 for v in norms.values())


def test_analysis_commands_print_tables_and_save_plots(run, tmp_path):
    out = invoke(l4f, ["trgb-ssim", "--ckpt", run / "g.pt", "--out", tmp_path, "--num", 4])
    assert "suggested alpha start:" in out and "labels4free.alpha_start_resolution=" in out
    assert Image.open(tmp_path / "trgb_ssim.png").mode == "RGB"
    out = invoke(l4f, ["bg-gradients", "--ckpt", run / "g.pt", "--out", tmp_path, "--num", 3])
    assert "top layer:" in out
    saved = json.loads((tmp_path / "bg_gradients.json").read_text())
    assert saved["ranking"][0][0] == saved["top_layer"] and len(saved["ranking"]) == 6
    assert (tmp_path / "bg_gradients_channels.png").is_file()
    result = CliRunner().invoke(l4f, ["bg-gradients", "--ckpt", str(run / "g.pt"), "--out", str(tmp_path),
                                      "--box", "0.5,0,0.5,1"])
    assert result.exit_code != 0 and "--box" in result.output
    result = CliRunner().invoke(l4f, ["sample", "--ckpt", str(run / "g.pt"), "--num", "1", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "--ckpt" in result.output and "not a Labels4Free run" in result.output


def test_bar_chart_draws_bars_to_scale(tmp_path):
    img = bar_chart(str(tmp_path / "c.png"), ["a", "b"], [1.0, 0.5], "t", highlight={1})
    arr = np.asarray(img)
    column = lambda i: arr[:, 60 + i * 28 + 14]  # noqa: E731  (the middle of bar i)
    blue, orange = (column(0) == (60, 100, 170)).all(1).sum(), (column(1) == (230, 120, 20)).all(1).sum()
    assert orange > 0 and math.isclose(blue / 2, orange, abs_tol=1)
