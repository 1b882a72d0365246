import os

import pytest
import torch

from layered_gan.checkpoint import save_checkpoint
from layered_gan.networks import Discriminator, Generator
from layered_gan.networks.port import generator_from_port, load_port, read_port_checkpoint, save_port
from layered_gan.runs import load_stylegan2
from layered_gan.training.objectives import make_objective

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "fixtures")
PORT_CKPT = os.path.join(FIXTURES, "rosinality_stylegan2_64.pt")
PORT_REF = os.path.join(FIXTURES, "rosinality_stylegan2_64_reference.pt")
needs_fixture = pytest.mark.skipif(not (os.path.isfile(PORT_CKPT) and os.path.isfile(PORT_REF)),
                                   reason="StyleGAN2-port fixture not present (../shared/fixtures)")


@pytest.fixture(scope="module")
def port():
    G, D, noise = load_port(PORT_CKPT, discriminator=True)
    return G, D, noise, torch.load(PORT_REF, weights_only=True)


@needs_fixture
@torch.no_grad()
def test_port_checkpoint_reproduces_the_reference_outputs(port):
    G, D, noise, ref = port
    assert (G.synthesis.resolution, G.z_dim, len(G.mapping.layers)) == (ref["size"], ref["style_dim"], ref["n_mlp"])
    assert len(noise) == len(ref["noise"]) and noise[-1].shape == ref["noise"][-1].shape  # the file's fixed noise
    images, w_plus = G(ref["z"], noise=ref["noise"], return_ws=True)
    torch.testing.assert_close(w_plus, ref["w_plus"], atol=1e-4, rtol=0)
    torch.testing.assert_close(images, ref["images"], atol=1e-4, rtol=0)
    truncated = G(ref["z"], noise=ref["noise"], truncation=ref["truncation"], truncation_w=ref["mean_w"][0])
    torch.testing.assert_close(truncated, ref["images_truncated"], atol=1e-4, rtol=0)
    mixed = G(ref["z"], ref["z2"], inject_index=ref["inject_index"], noise=ref["noise"])
    torch.testing.assert_close(mixed, ref["images_mixed"], atol=1e-4, rtol=0)
    torch.testing.assert_close(D(ref["images"]), ref["d_scores"], atol=1e-4, rtol=0)


@needs_fixture
@torch.no_grad()
def test_latent_avg_is_the_truncation_centre(tmp_path, port):
    ref = port[3]
    ckpt = read_port_checkpoint(PORT_CKPT)
    path = str(tmp_path / "converted.pt")
    save_checkpoint({"g_ema": ckpt["g_ema"], "latent_avg": ref["mean_w"][0]}, path)  # a converted-weights file
    G = load_stylegan2(path)
    torch.testing.assert_close(G.w_avg, ref["mean_w"][0])
    torch.testing.assert_close(G(ref["z"], noise=ref["noise"], truncation=ref["truncation"]), ref["images_truncated"],
                               atol=1e-4, rtol=0)


@needs_fixture
def test_mismatches_name_the_tensor(tmp_path):
    state = dict(read_port_checkpoint(PORT_CKPT)["g_ema"])
    wrong = dict(state, **{"convs.3.conv.weight": torch.zeros(1, 32, 16, 3, 3)})
    with pytest.raises(ValueError, match=r"convs\.3\.conv\.weight has shape \[1, 32, 16, 3, 3\], expected "
                                         r"\[1, 32, 32, 3, 3\]"):
        generator_from_port(wrong)
    with pytest.raises(ValueError, match=r"unexpected tensor 'convs\.8\.noise\.weight'"):
        generator_from_port(dict(state, **{"convs.8.noise.weight": torch.zeros(1)}))
    missing = {k: v for k, v in state.items() if k != "to_rgbs.2.bias"}
    path = str(tmp_path / "broken.pt")
    save_checkpoint({"g_ema": missing}, path)
    with pytest.raises(ValueError, match=rf"{path} g_ema: tensor 'to_rgbs\.2\.bias' is missing"):
        load_stylegan2(path)


def _randomized(module):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    return module


@torch.no_grad()
def test_export_then_load_round_trip_at_another_width_and_resolution(tmp_path):
    channels = {4: 12, 8: 10, 16: 8, 32: 6}  # widths no channel multiplier gives
    G = _randomized(Generator(32, z_dim=16, w_dim=16, n_mlp=3, lr_mlp=0.05, channels=channels))
    G.w_avg.normal_()
    D = _randomized(Discriminator(32, channels=channels, progressive=True))
    path = str(tmp_path / "exported.pt")
    save_port(path, G, D)
    G2, D2 = load_stylegan2(path, discriminator=True)
    assert {r: b.conv1.weight.shape[0] for r, b in zip([8, 16, 32], G2.synthesis.blocks)} == {8: 10, 16: 8, 32: 6}
    torch.testing.assert_close(G2.w_avg, G.w_avg)
    z, noise = torch.randn(3, 16), G.make_noise(3)
    torch.testing.assert_close(G2(z, noise=noise, truncation=0.6), G(z, noise=noise, truncation=0.6))
    img = torch.randn(4, 3, 32, 32)
    torch.testing.assert_close(D2(img), D(img))


@torch.no_grad()
def test_runs_of_ours_load_through_the_same_entry_point(tmp_path):
    cfg = {"mode": "stylegan2", "mixing_prob": 0.9, "loss": {"type": "logistic"},
           "model": {"resolution": 16, "z_dim": 8, "w_dim": 8, "n_mlp": 1, "channel_base": 128, "channel_max": 8}}
    G, D = make_objective(cfg).build()
    _randomized(G)
    save_checkpoint({"config": cfg, "G_ema": G.state_dict(), "D": D.state_dict()}, str(tmp_path / "checkpoint.pt"))
    G2, D2 = load_stylegan2(str(tmp_path), discriminator=True)  # a run folder
    z, noise = torch.randn(2, 8), G.make_noise(2)
    torch.testing.assert_close(G2(z, noise=noise), G(z, noise=noise))
    assert not any(p.requires_grad for p in G2.parameters())
    save_checkpoint({"config": dict(cfg, mode="perturb"), "G_ema": {}, "D": {}}, str(tmp_path / "perturb.pt"))
    with pytest.raises(ValueError, match="'perturb' run, not a StyleGAN2 one"):
        load_stylegan2(str(tmp_path / "perturb.pt"))
