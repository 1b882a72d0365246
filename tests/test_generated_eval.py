import pytest
import torch

from layered_gan.evaluation.generated import score_generated, train_reference
from layered_gan.networks.layered import Layers
from layered_gan.networks.unet import UNet


class DiscGenerator(torch.nn.Module):
    """Draws a white disc on black; reports the disc as its mask, moved right by `offset` pixels.

    Background and foreground both show the disc, so the composite does not depend on the mask.
    empty_every: every k-th sample draws nothing.
    """

    z_dim = 4

    def __init__(self, offset=0, empty_every=0):
        super().__init__()
        yy, xx = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
        self.disc = ((yy - 8) ** 2 + (xx - 8) ** 2 <= 16).float()[None, None]
        self.offset, self.empty_every = offset, empty_every

    def make_noise(self, n, device, gen):
        return None

    def forward(self, z, truncation=1.0, noise=None):
        disc = self.disc.expand(z.shape[0], 1, -1, -1).clone()
        if self.empty_every:
            disc[:: self.empty_every] = 0
        image = (disc * 2 - 1).expand(-1, 3, -1, -1)
        return Layers(image, image, torch.roll(disc, self.offset, dims=3))


class Oracle(torch.nn.Module):
    """Segments bright pixels, at 32 px (so 16-px composites get up-sampled)."""

    resolution = 32

    def forward(self, x):
        return x.mean(1, keepdim=True) * 10


def test_protocol_scores_perfect_masks_and_counts_skipped():
    G = DiscGenerator(empty_every=4)
    figures = score_generated(G, Oracle(), num=40, batch=16, progress=False)
    assert figures["scored"] + figures["skipped_no_object"] == 40 and figures["skipped_no_object"] == 10
    assert figures["iou"] == pytest.approx(1.0)
    assert figures["full_mask_iou"] == pytest.approx(float(G.disc.mean()), abs=0.02)
    assert figures["soft_mask_share"] == 0.0


def test_protocol_penalizes_misplaced_masks():
    figures = score_generated(DiscGenerator(offset=3), Oracle(), num=8, batch=8, progress=False)
    assert 0.2 < figures["iou"] < 0.8 and figures["scored"] == 8


def test_reference_unet_trains_and_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERED_GAN_CACHE", str(tmp_path))
    syn = dict(resolution=32, count=64, test_count=16, seed=0)
    model, iou = train_reference(syn, steps=20, batch=8, width=4, progress=False)
    assert isinstance(model, UNet) and model.resolution == 32 and 0.0 <= iou <= 1.0
    again, iou2 = train_reference(syn, steps=20, batch=8, width=4, progress=False)
    assert iou2 == iou
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 1, 32, 32)
