import json

import numpy as np
import pytest
import torch

from layered_gan.evaluation.fid import (ENV, collect_features, feature_statistics, fid_kid, frechet_distance,
                                        kernel_inception_distance, load_inception)


def test_frechet_distance_closed_forms():
    s = np.array([[2.0, 0.3], [0.3, 1.0]])
    assert frechet_distance(np.ones(2), s, np.ones(2), s) == pytest.approx(0, abs=1e-8)
    # diagonal covariances: |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2 = 5 + (1 - 2)^2 + (2 - 3)^2
    assert frechet_distance([0, 0], np.diag([1, 4]), [1, 2], np.diag([4, 9])) == pytest.approx(7.0)
    # non-commuting covariances against tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2), computed by eigendecomposition
    s1, s2 = np.array([[2.0, 1.0], [1.0, 2.0]]), np.array([[1.0, 0.0], [0.0, 3.0]])

    def psd_sqrt(m):
        w, v = np.linalg.eigh(m)
        return v @ np.diag(np.sqrt(w)) @ v.T

    r1 = psd_sqrt(s1)
    expected = np.trace(s1 + s2 - 2 * psd_sqrt(r1 @ s2 @ r1))
    assert frechet_distance([0, 0], s1, [0, 0], s2) == pytest.approx(expected)
    assert frechet_distance([0, 0], s1, [0, 0], s2) == pytest.approx(frechet_distance([0, 0], s2, [0, 0], s1))
    with pytest.raises(ValueError, match="shape"):
        frechet_distance([0], [[1.0]], [0, 0], np.eye(2))


def test_statistics_of_samples_recover_the_gaussian_distance():
    rng = np.random.default_rng(0)
    a = rng.normal([0, 0], [1, 2], (40000, 2))
    b = rng.normal([1, 2], [2, 3], (40000, 2))
    mu, sigma = feature_statistics(a)
    assert mu == pytest.approx([0, 0], abs=0.03) and sigma == pytest.approx(np.diag([1, 4]), abs=0.08)
    assert frechet_distance(*feature_statistics(a), *feature_statistics(b)) == pytest.approx(7.0, rel=0.03)
    assert frechet_distance(*feature_statistics(a), *feature_statistics(a.copy())) == pytest.approx(0, abs=1e-6)


def test_kid_is_unbiased_mmd_and_matches_the_1d_closed_form():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))

    def k(a, b):
        return (a @ b / 3 + 1) ** 3

    brute = (sum(k(x[i], x[j]) + k(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / 20
             - 2 * sum(k(x[i], y[j]) for i in range(5) for j in range(5)) / 25)
    assert kernel_inception_distance(x, y, subsets=1, subset_size=5) == pytest.approx(brute)
    # 1-D, k = (xy + 1)^3: MMD^2 = (E x^3 - E y^3)^2 + 3 (E x^2 - E y^2)^2 + 3 (E x - E y)^2;
    # x ~ U(-1, 1), y = x' + b: E y = b, E y^2 = 1/3 + b^2, E y^3 = b + b^3
    b = 0.5
    expected = (b + b ** 3) ** 2 + 3 * b ** 4 + 3 * b * b
    f1, f2 = rng.uniform(-1, 1, (10000, 1)), rng.uniform(-1, 1, (10000, 1)) + b
    value = kernel_inception_distance(f1, f2, subsets=10, subset_size=1000)
    assert value == pytest.approx(expected, rel=0.1)
    moments = [(f1 ** k).mean() - (f2 ** k).mean() for k in (3, 2, 1)]  # the same with the samples' moments
    assert value == pytest.approx(moments[0] ** 2 + 3 * moments[1] ** 2 + 3 * moments[2] ** 2, rel=0.03)
    same = kernel_inception_distance(f1, rng.uniform(-1, 1, (10000, 1)), subsets=10, subset_size=1000)
    assert abs(same) < 0.01 * expected


class TinyFeatures(torch.nn.Module):
    """Stands in for Inception: the TorchScript call convention, uint8-range input, a small conv feature map.

    Features: 6 mean-pooled conv channels (with a positive bias, so none is constant) and the image maximum.
    """

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 3)
        torch.nn.init.constant_(self.conv.bias, 1.0)

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        assert return_features
        feats = torch.relu(self.conv(x / 255)).mean((2, 3))
        return torch.cat([feats, x.amax((1, 2, 3))[:, None]], 1)


def test_load_inception_by_path_or_env_with_a_small_network(tmp_path, monkeypatch):
    torch.manual_seed(0)
    path = str(tmp_path / "tiny.pt")
    torch.jit.script(TinyFeatures()).save(path)
    monkeypatch.setenv(ENV, path)
    features = load_inception()
    images = torch.rand(32, 3, 8, 8) * 2 - 1
    feats = collect_features(features, iter(images.split(10)), 32, progress=False)
    assert feats.shape == (32, 7)
    assert float(feats[:, -1].max()) == pytest.approx(255 * (float(images.amax()) + 1) / 2, rel=1e-5)
    again = collect_features(load_inception(path), iter(images.split(7)), 32, progress=False)
    figures = fid_kid(feats, again, kid_subsets=3, kid_subset_size=16)
    assert figures["fid"] == pytest.approx(0, abs=1e-6)
    shifted = collect_features(features, iter([images * 0.5 + 0.5]), 32, progress=False)
    assert fid_kid(feats, shifted, kid_subsets=3, kid_subset_size=16)["fid"] > 0.1
    with pytest.raises(ValueError, match="only 32 images"):
        collect_features(features, iter([images]), 40, progress=False)


def test_missing_or_wrong_weights_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(FileNotFoundError, match="inception-2015-12-05.pt"):
        load_inception()
    with pytest.raises(FileNotFoundError, match="nowhere.pt do not exist"):
        load_inception(str(tmp_path / "nowhere.pt"))
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "state.pth")
    with pytest.raises(ValueError, match="state dict"):
        load_inception(str(tmp_path / "state.pth"))



def test_fid_command_with_a_small_network(tmp_path, monkeypatch):
    from click.testing import CliRunner
    from PIL import Image

    from layered_gan.checkpoint import save_checkpoint
    from layered_gan.config import load_config
    from layered_gan.evaluation.cli import fid as main
    from layered_gan.runs import build_models

    cfg = load_config("demo", ['model={"init": null, "resolution": 16, "z_dim": 8, "w_dim": 8, "n_mlp": 1, "channel_base": 64, '
                               '"channel_max": 8, "variant": "two", "mbstd_group": 4}'])
    G, _ = build_models(cfg)
    save_checkpoint({"config": cfg, "G_ema": G.state_dict()}, str(tmp_path / "run" / "checkpoint.pt"))
    rng = np.random.default_rng(0)
    for i in range(12):
        (tmp_path / "real").mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(tmp_path / "real" / f"{i}.png")
    torch.jit.script(TinyFeatures()).save(str(tmp_path / "tiny.pt"))
    monkeypatch.setenv(ENV, str(tmp_path / "tiny.pt"))
    result = CliRunner().invoke(main, ["--ckpt", str(tmp_path / "run"), "--real", str(tmp_path / "real"), "--num",
                                       "12", "--batch", "5", "--out", str(tmp_path / "fid.json"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    figures = json.load(open(tmp_path / "fid.json"))
    assert figures["num"] == 12 and figures["fid"] > 0 and "FID" in result.output
    monkeypatch.delenv(ENV)
    result = CliRunner().invoke(main, ["--ckpt", str(tmp_path / "run"), "--num", "12"])
    assert result.exit_code != 0 and "inception-2015-12-05.pt" in result.output


def test_reference_features_pool_each_encoder_level_at_the_reference_resolution():
    from layered_gan.evaluation.fid import reference_features
    from layered_gan.segmenter.model import build_segmenter

    torch.manual_seed(0)
    reference = build_segmenter(16, width=4, depth=2).eval()
    features = reference_features(reference)
    images = torch.rand(6, 3, 8, 8) * 2 - 1
    feats = features(images)
    assert feats.shape == (6, 4 + 8 + 16)
    up = torch.nn.functional.interpolate(images, size=16, mode="bilinear", align_corners=False)
    with torch.no_grad():
        first = reference.down[0](up)
    torch.testing.assert_close(feats[:, :4], first.mean((2, 3)))  # images are scored at the reference's 16 px
    with torch.no_grad():
        levels = reference.encode(up)
    assert [t.shape[-1] for t in levels] == [16, 8, 4]
    torch.testing.assert_close(feats[:, 12:], levels[-1].mean((2, 3)))


def test_fid_command_with_reference_features_and_on_a_plain_generator(tmp_path, monkeypatch):
    from click.testing import CliRunner
    from PIL import Image

    from layered_gan.checkpoint import save_checkpoint
    from layered_gan.config import load_config
    from layered_gan.evaluation import cli, fid
    from layered_gan.networks import Generator
    from layered_gan.networks.port import save_port
    from layered_gan.segmenter.model import build_segmenter
    from layered_gan.runs import build_models

    rng = np.random.default_rng(0)
    (tmp_path / "real").mkdir()
    for i in range(12):
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(tmp_path / "real" / f"{i}.png")
    torch.manual_seed(0)
    trained = []

    def fake_reference(synthetic, device="cpu", progress=True):  # stands in for the (slow) reference training
        trained.append(synthetic)
        return build_segmenter(32, width=4, depth=2), 0.95

    monkeypatch.setattr(fid, "train_reference", fake_reference)
    cfg = load_config("stylegan2_demo", ['model={"resolution": 16, "z_dim": 8, "w_dim": 8, "n_mlp": 1, '
                                         '"channel_base": 64, "channel_max": 8}'])
    G, _ = build_models(cfg)
    save_checkpoint({"config": cfg, "G_ema": G.state_dict()}, str(tmp_path / "run" / "checkpoint.pt"))
    args = ["--real", str(tmp_path / "real"), "--num", "12", "--batch", "5", "--device", "cpu"]
    result = CliRunner().invoke(cli.fid, ["--ckpt", str(tmp_path / "run"), "--features", "reference",
                                           "--out", str(tmp_path / "fid.json")] + args)
    assert result.exit_code == 0, result.output
    figures = json.load(open(tmp_path / "fid.json"))
    assert figures["features"] == "reference" and figures["fid"] > 0 and trained == [cfg["data"]["synthetic"]]

    port = str(tmp_path / "port.pt")
    save_port(port, Generator(16, z_dim=8, w_dim=8, n_mlp=1, channels={4: 8, 8: 8, 16: 8}))
    result = CliRunner().invoke(cli.fid, ["--ckpt", port, "--features", "reference"] + args)
    assert result.exit_code != 0 and "not a run on the synthetic dataset" in result.output
    torch.jit.script(TinyFeatures()).save(str(tmp_path / "tiny.pt"))
    result = CliRunner().invoke(cli.fid, ["--ckpt", port, "--inception", str(tmp_path / "tiny.pt"),
                                           "--out", str(tmp_path / "port.json")] + args)
    assert result.exit_code == 0, result.output
    assert json.load(open(tmp_path / "port.json"))["fid"] > 0
    result = CliRunner().invoke(cli.fid, ["--ckpt", port, "--inception", str(tmp_path / "tiny.pt"), "--num", "4"])
    assert result.exit_code != 0 and "--real" in result.output
