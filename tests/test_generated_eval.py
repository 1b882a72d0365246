import json

import pytest
import torch
from click.testing import CliRunner

from layered_gan.evaluation.cli import score_generated as generated_main
from layered_gan.evaluation.generated import ExternalReference, load_reference, score_generated, train_reference
from layered_gan.networks.layered import Layers
from layered_gan.networks.unet import UNet


class DiscGenerator(torch.nn.Module):
    """Draws a white disc on black; reports the disc as its mask, moved right by `offset` pixels.

    Background and foreground both show the disc, so the composite does not depend on the mask.
    empty_every: every k-th sample draws nothing; level: the mask's value on the disc (soft below 1).
    """

    z_dim = 4

    def __init__(self, offset=0, empty_every=0, level=1.0):
        super().__init__()
        yy, xx = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
        self.disc = ((yy - 8) ** 2 + (xx - 8) ** 2 <= 16).float()[None, None]
        self.offset, self.empty_every, self.level = offset, empty_every, level

    def make_noise(self, n, device, gen):
        return None

    def forward(self, z, truncation=1.0, noise=None):
        disc = self.disc.expand(z.shape[0], 1, -1, -1).clone()
        if self.empty_every:
            disc[:: self.empty_every] = 0
        image = (disc * 2 - 1).expand(-1, 3, -1, -1)
        return Layers(image, image, torch.roll(disc, self.offset, dims=3) * self.level)


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


class Halves(torch.nn.Module):
    """A TorchScript stand-in for an instance segmenter: bright pixels left and right of column `split`, as two
    instance masks [B, 2, H, W] (one is empty when the object lies on one side)."""

    def __init__(self, split: int):
        super().__init__()
        self.split = split

    def forward(self, x):
        bright = (x.mean(1, keepdim=True) > 0).float()
        left = torch.zeros_like(bright)
        left[..., :self.split] = 1
        return torch.cat([bright * left, bright * (1 - left)], 1)


class Bright(torch.nn.Module):
    def forward(self, x):
        return (x.mean(1, keepdim=True) > 0).float()


def test_torchscript_reference_with_the_full_metric_set(tmp_path):
    path = str(tmp_path / "bright.ts")
    torch.jit.script(Bright()).save(path)
    reference = load_reference(path, 32)
    perfect = score_generated(DiscGenerator(empty_every=4), reference, num=40, batch=16, progress=False)
    assert perfect["skipped_no_object"] == 10 and perfect["scored"] == 30
    assert perfect["metrics"] == pytest.approx({k: 1.0 for k in ("fg_iou", "bg_iou", "miou", "f1", "precision",
                                                                  "recall", "accuracy")})
    moved = score_generated(DiscGenerator(offset=3), reference, num=4, batch=4, progress=False)["metrics"]
    # a disc and the same disc 3 px (6 at 32 px) to the right: |A| = |B|, so precision = recall = F1 = overlap / |A|
    assert moved["precision"] == pytest.approx(moved["recall"]) == pytest.approx(moved["f1"])
    assert moved["fg_iou"] == pytest.approx(moved["f1"] / (2 - moved["f1"])) and moved["fg_iou"] < 0.8


def test_multi_instance_composites_are_rejected(tmp_path):
    """Labels4Free Table 2: samples where the reference finds several instances are not scored."""
    split, whole = str(tmp_path / "split.ts"), str(tmp_path / "whole.ts")
    torch.jit.script(Halves(16)).save(split)  # the centred disc falls on both sides: two instances
    torch.jit.script(Halves(0)).save(whole)
    two = score_generated(DiscGenerator(), load_reference(split, 32, "instances"), num=6, batch=6, progress=False)
    assert two["skipped_multi_instance"] == 6 and two["scored"] == 0
    kept = score_generated(DiscGenerator(), load_reference(split, 32, "instances"), num=6, batch=6, progress=False,
                           reject_multi=False)
    assert kept["scored"] == 6 and kept["iou"] == pytest.approx(1.0)  # the union of the instances
    one = score_generated(DiscGenerator(), load_reference(whole, 32, "instances"), num=6, batch=6, progress=False)
    assert one["scored"] == 6 and one["skipped_multi_instance"] == 0 and one["metrics"]["miou"] == pytest.approx(1.0)


def test_reference_as_a_python_callable(tmp_path):
    (tmp_path / "myref.py").write_text("def segment(x):\n    return (x.mean(1, keepdim=True) > 0).float()\n")
    reference = load_reference(f"{tmp_path / 'myref.py'}:segment", 32)
    assert score_generated(DiscGenerator(), reference, num=2, batch=2, progress=False)["iou"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no callable 'missing'"):
        load_reference(f"{tmp_path / 'myref.py'}:missing", 32)
    with pytest.raises(FileNotFoundError, match="neither a TorchScript file"):
        load_reference(str(tmp_path / "absent.ts"), 32)
    with pytest.raises(ValueError, match=r"expected \[B, 1, H, W\] probabilities"):  # 3 channels back
        ExternalReference(lambda x: x, 32)(torch.zeros(1, 3, 32, 32), 0.01)


def test_protocol_penalizes_misplaced_masks():
    figures = score_generated(DiscGenerator(offset=3), Oracle(), num=8, batch=8, progress=False)
    assert 0.2 < figures["iou"] < 0.8 and figures["scored"] == 8
    # the objects are centred discs, so a centred disc of the mask's size beats the misplaced mask
    assert figures["centre_iou"] > max(0.7, figures["iou"] + 0.2)


def test_centre_prior_takes_each_masks_size():
    figures = score_generated(DiscGenerator(), Oracle(), num=4, batch=4, progress=False)
    assert figures["iou"] == pytest.approx(1.0) and figures["centre_iou"] > 0.7
    empty = score_generated(DiscGenerator(level=0.4), Oracle(), num=4, batch=4, progress=False)  # masks below 0.5
    assert empty["mask_coverage"] == 0.0 and empty["centre_iou"] == 0.0


def test_masks_are_binarized_at_the_threshold():
    G = DiscGenerator(level=0.8)  # a soft mask of 0.8 on the disc
    at_half = score_generated(G, Oracle(), num=4, batch=4, progress=False)
    at_l4f = score_generated(G, Oracle(), num=4, batch=4, progress=False, threshold=0.9)
    assert at_half["threshold"] == 0.5 and at_half["iou"] == pytest.approx(1.0)
    assert at_half["mask_coverage"] == pytest.approx(float(G.disc.mean()), abs=0.02)
    assert at_l4f["threshold"] == 0.9 and at_l4f["iou"] == 0.0 and at_l4f["mask_coverage"] == 0.0
    assert at_l4f["scored"] == 4 and at_l4f["mask_mean"] == pytest.approx(at_half["mask_mean"])


def test_command_scores_a_labels4free_run_at_its_threshold(tmp_path, monkeypatch):
    from layered_gan.checkpoint import save_checkpoint
    from layered_gan.config import load_config
    from layered_gan.data.synthetic import build_synthetic
    from layered_gan.networks import Discriminator, Generator
    from layered_gan.networks.port import save_port
    from layered_gan.training.objectives import Labels4Free

    monkeypatch.setenv("LAYERED_GAN_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(1)
    G = Generator(16, z_dim=8, w_dim=8, n_mlp=1, channels={4: 8, 8: 6, 16: 4})
    save_port(str(tmp_path / "g.pt"), G, Discriminator(16, channels={16: 4, 8: 4, 4: 4}))
    cfg = load_config("l4f_demo", [f"model.ckpt={tmp_path / 'g.pt'}", "model.resolution=16", "model.channel_base=64",
                                   "model.channel_max=4", "labels4free.alpha_width=4",
                                   'data.synthetic={"resolution": 32, "count": 32, "test_count": 4, "seed": 0}'])
    build_synthetic(**cfg["data"]["synthetic"], workers=1, progress=False)  # in-process: no worker start-up
    net, _ = Labels4Free(cfg).build()
    with torch.no_grad():
        net.alpha.to_alpha.weight.mul_(30)  # alphas spread over (0, 1)
    save_checkpoint({"config": cfg, "G_ema": net.state_dict()}, str(tmp_path / "run" / "checkpoint.pt"))
    figures = {}
    for threshold in ("0.5", "0.9"):
        out = tmp_path / f"eval{threshold}.json"
        result = CliRunner().invoke(generated_main, ["--ckpt", str(tmp_path / "run"), "--num", "6", "--steps", "2",
                                                     "--threshold", threshold, "--out", str(out), "--device", "cpu"])
        assert result.exit_code == 0, result.output + repr(result.exception)
        figures[threshold] = json.load(open(out))
    assert figures["0.9"]["threshold"] == 0.9 and figures["0.9"]["images"] == 6
    assert figures["0.9"]["mask_mean"] == pytest.approx(figures["0.5"]["mask_mean"])  # the same composites
    assert figures["0.9"]["mask_coverage"] < figures["0.5"]["mask_coverage"]
    ts = str(tmp_path / "bright.ts")
    torch.jit.script(Bright()).save(ts)
    out = tmp_path / "external.json"
    result = CliRunner().invoke(generated_main, ["--ckpt", str(tmp_path / "run"), "--num", "4", "--reference", ts,
                                                 "--reference-size", "32", "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    external = json.load(open(out))
    assert external["reference"] == ts and set(external["metrics"]) >= {"miou", "f1", "precision", "recall"}


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
