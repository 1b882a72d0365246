import json
import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from layered_gan import encoding
from layered_gan.checkpoint import save_checkpoint
from layered_gan.config import load_config
from layered_gan.data.synthetic import build_synthetic
from layered_gan.cli import encode as main
from layered_gan.encoding import (Options, ReconstructionLoss, Training, View, encode, load_layered_run, run,
                                   train_encoder)
from layered_gan.evaluation.sources import FileSource
from layered_gan.networks.encoder import Encoder, LayeredSynthesis, build_encoder
from layered_gan.networks.layered import LayeredGenerator
from layered_gan.projection import zero_noise
from layered_gan.runs import build_models

TINY = ('model={"resolution": 16, "z_dim": 8, "w_dim": 8, "n_mlp": 1, "channel_base": 64, "channel_max": 8, '
        '"mbstd_group": 4}')
FAST = ["--steps", "3", "--batch", "4", "--width", "4", "--device", "cpu"]


def tiny_run(path, mode="demo", extra=()):
    """A run folder as the training loop writes it (G, G_ema, D, config) with a tiny 16-px generator."""
    cfg = load_config(mode, [TINY, 'data.synthetic={"resolution": 32, "count": 4, "test_count": 6, "seed": 0}',
                             *extra])
    torch.manual_seed(0)
    G, D = build_models(cfg)
    if cfg["mode"] == "perturb":
        with torch.no_grad():
            G.fg.w_avg.copy_(G.fg.mean_w())
            G.bg.w_avg.copy_(G.bg.mean_w())
    save_checkpoint({"G": G.state_dict(), "G_ema": G.state_dict(), "D": D.state_dict(), "config": cfg},
                    str(path / "checkpoint.pt"))
    return str(path)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("run"))


def image_folder(path, sizes, seed=0):
    rng = np.random.default_rng(seed)
    for name, (w, h) in sizes.items():
        os.makedirs(os.path.dirname(path / name) or ".", exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path / f"{name}.png")
    return str(path)


def invoke(args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


@pytest.mark.parametrize("resolution, variant, expected", [(8, "two", 8), (16, "two", 12), (32, "shared_mapping", 16),
                                                           (64, "two", 20), (64, "single", 10)])
def test_style_count_is_derived_from_the_generator(resolution, variant, expected):
    G = LayeredGenerator(resolution, 8, 8, 1, channels={r: 4 for r in (4, 8, 16, 32, 64)}, variant=variant)
    synthesis = LayeredSynthesis(G)
    assert synthesis.n_latent == expected  # 2 log2(R) - 2 per synthesis network: 20 at 64 px (the paper's 20 x 512)
    assert synthesis(synthesis.w_avg[None], zero_noise(synthesis, 1, "cpu")).shape == (1, 3, resolution, resolution)
    encoder = build_encoder(synthesis, width=4)
    assert encoder(torch.randn(2, 3, resolution, resolution)).shape == (2, expected, 8)


def test_encoder_output_drives_the_generator_end_to_end(run_dir):
    synthesis, D, _ = load_layered_run(run_dir)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    torch.manual_seed(1)
    encoder = build_encoder(synthesis, width=4)  # offsets: starts exactly at each generator's average w
    ws = encoder(x)
    assert torch.equal(ws, synthesis.w_avg.expand(4, -1, -1))
    assert not torch.equal(synthesis.w_avg[0], synthesis.w_avg[-1])  # foreground slots first, then background
    layers = synthesis.layers(ws)
    manual = synthesis.G.synthesize(ws[:, :6], ws[:, 6:])
    assert all(torch.equal(a, b) for a, b in zip(layers, manual))
    loss = ReconstructionLoss(synthesis, D)(ws, x)
    assert loss.shape == (4,)
    loss.sum().backward()
    assert encoder.fc.weight.grad.abs().sum() > 0 and encoder.stem[0].weight.grad.abs().sum() == 0  # zero head
    assert all(p.grad is None for p in synthesis.parameters()) and all(p.grad is None for p in D.parameters())
    absolute = Encoder(16, synthesis.n_latent, 8, width=4)  # the paper's: the codes themselves
    a, b = absolute(x)[:2]
    assert not torch.allclose(a, b) and not torch.allclose(a, synthesis.w_avg)


def test_reconstruction_loss_falls_on_a_tiny_chunk(run_dir):
    synthesis, D, _ = load_layered_run(run_dir)
    with torch.no_grad():  # images the generator can draw
        targets = synthesis(synthesis.w_avg + 0.5 * torch.randn(8, synthesis.n_latent, 8),
                            zero_noise(synthesis, 8, "cpu"))
    loss = ReconstructionLoss(synthesis, D, feature_weight=0.5)
    torch.manual_seed(0)
    encoder = build_encoder(synthesis, width=16)
    before = loss(encode(encoder, targets), targets).mean().item()
    gen = torch.Generator().manual_seed(0)
    curve = train_encoder(encoder, loss, lambda: targets[torch.randint(8, (8,), generator=gen)], steps=80, lr=3e-3)
    after = loss(encode(encoder, targets), targets).mean().item()
    assert after < 0.85 * before and np.mean(curve[-5:]) < 0.85 * curve[0]  # codes of the trained encoder


@torch.no_grad()
def test_reconstruction_loss_sum_is_the_papers_norms(run_dir):
    """Eq. 7: ||x_E - x||_1 + ||D_feat(x_E) - D_feat(x)||_2^2 ("sum"); "mean" divides each by its element count."""
    synthesis, D, _ = load_layered_run(run_dir)
    ws, x = synthesis.w_avg.expand(2, -1, -1), torch.rand(2, 3, 16, 16) * 2 - 1
    image = synthesis(ws, zero_noise(synthesis, 2, "cpu"))
    feat = lambda im: D(im, return_features=True)[1][8]  # noqa: E731
    l1, l2 = (image - x).abs().sum((1, 2, 3)), (feat(image) - feat(x)).square().sum((1, 2, 3))
    torch.testing.assert_close(ReconstructionLoss(synthesis, D, reduction="sum")(ws, x), l1 + l2)
    n_feat = feat(x)[0].numel()
    torch.testing.assert_close(ReconstructionLoss(synthesis, D)(ws, x), l1 / (3 * 16 * 16) + l2 / n_feat)
    with pytest.raises(ValueError, match="reduction must be"):
        ReconstructionLoss(synthesis, D, reduction="max")


def test_view_maps_masks_back_into_place():
    view = View(16, org_to_crop=1.5)  # squash to 24 x 24, centre crop 16: 4 px of border lie outside the view
    img = Image.fromarray(np.tile(np.arange(48, dtype=np.uint8)[None, :, None], (30, 1, 3)))  # 48 x 30 ramp
    x = view.image(img)
    assert x.shape == (3, 16, 16) and (x[0, :, 1:] >= x[0, :, :-1]).all()
    back = view.mask(torch.ones(1, 16, 16), (48, 30))
    assert back.shape == (30, 48)
    assert back[:, :4].max() < 0.01 and back[10:20, 12:36].min() > 0.99  # border: background; inside: the mask
    left = torch.zeros(1, 16, 16)
    left[..., :8] = 1
    back = View(16).mask(left, (40, 24))
    assert back[:, :19].min() > 0.99 and back[:, 21:].max() < 0.01


def test_non_square_images_get_masks_of_their_own_size(run_dir, tmp_path):
    sizes = {"wide": (40, 24), "tall": (17, 31), "sub/square": (16, 16)}
    out = tmp_path / "out"
    output = invoke(["--ckpt", run_dir, "--images", image_folder(tmp_path / "img", sizes), "--out", out,
                     "--chunk", 2, "--refine-steps", 4, *FAST])
    assert "3 images encoded" in output
    for name, size in sizes.items():
        for part in ("masks", "soft", "overlays"):
            assert Image.open(out / part / f"{name}.png").size == size
        for part in ("reconstructions", "backgrounds", "foregrounds"):
            assert Image.open(out / part / f"{name}.png").size == (16, 16)
        assert set(np.unique(np.asarray(Image.open(out / "masks" / f"{name}.png")))) <= {0, 255}
    # the soft mask is the generator's mask for the saved codes, mapped back
    synthesis, _, _ = load_layered_run(run_dir, discriminator=False)
    saved = torch.load(out / "chunks" / "00000.pt")
    assert saved["names"] == ["sub/square", "tall"]
    mask = synthesis.layers(saved["ws"][1:], zero_noise(synthesis, 1, "cpu")).mask[0]
    soft = np.asarray(Image.open(out / "soft" / "tall.png"), np.float64) / 255
    assert np.abs(View(16).mask(mask, (17, 31)) - soft).max() <= 1 / 255
    record = json.load(open(out / "chunks" / "00000.json"))
    assert record["refine_l1"]["last"] < record["refine_l1"]["first"]
    assert Image.open(out / "contact_sheet.png").size == (6 * 96, 3 * 96)


class Interrupted(Exception):
    pass


def test_resume_skips_finished_chunks_and_ranks_split_them(run_dir, tmp_path, monkeypatch):
    source = FileSource(image_folder(tmp_path / "img", {f"im{i}": (20, 16) for i in range(5)}))
    synthesis, D, _ = load_layered_run(run_dir)
    kw = dict(options=Options(Training(chunk=2, steps=3, batch=4, width=4)), progress=False, echo=lambda *a: None)
    straight = run(synthesis, D, source, str(tmp_path / "straight"), **kw)
    assert straight["chunks"] == 3 and straight["images"] == 5

    done, crashed, original = [], [], encoding.process_chunk

    def interrupted(index, *args, **kwargs):
        if index == 1 and not crashed:
            crashed.append(index)
            raise Interrupted
        done.append(index)
        return original(index, *args, **kwargs)

    monkeypatch.setattr(encoding, "process_chunk", interrupted)
    out = tmp_path / "resumed"
    with pytest.raises(Interrupted):
        run(synthesis, D, source, str(out), **kw)
    assert done == [0] and crashed == [1] and not (out / "summary.json").exists()
    summary = run(synthesis, D, source, str(out), **kw)
    assert done == [0, 1, 2] and summary["images"] == 5  # resumed at chunk 1
    for i in range(3):  # each chunk's encoder depends on its index alone: the same codes as without the crash
        a, b = (torch.load(d / "chunks" / f"{i:05d}.pt") for d in (tmp_path / "straight", out))
        assert a["names"] == b["names"] and torch.equal(a["ws"], b["ws"])

    done.clear()
    split = tmp_path / "split"
    assert run(synthesis, D, source, str(split), rank=0, world=2, **kw) is None  # chunks 0 and 2; 1 is rank 1's
    assert done == [0, 2] and not (split / "summary.json").exists()
    assert run(synthesis, D, source, str(split), rank=1, world=2, **kw)["images"] == 5
    assert done == [0, 2, 1] and (split / "contact_sheet.png").exists()
    with pytest.raises(Exception, match="other settings"):
        run(synthesis, D, source, str(split), **dict(kw, options=Options(Training(chunk=2, steps=4, batch=4,
                                                                                   width=4))))


def test_amortized_encoder_is_saved_and_applied_without_training(run_dir, tmp_path, monkeypatch):
    train_out = tmp_path / "train"
    invoke(["--ckpt", run_dir, "--images", image_folder(tmp_path / "a", {f"a{i}": (16, 16) for i in range(4)}),
            "--out", train_out, "--amortized", "--chunk", 3, *FAST])
    assert (train_out / "encoder.pt").is_file() and (train_out / "masks" / "a3.png").is_file()
    synthesis, _, _ = load_layered_run(run_dir, discriminator=False)
    saved = encoding.load_encoder(str(train_out / "encoder.pt"), synthesis)
    view = View(16)
    x = torch.stack([view.image(Image.open(tmp_path / "a" / f"a{i}.png")) for i in (0, 3)])
    codes = torch.cat([torch.load(train_out / "chunks" / f"{i:05d}.pt")["ws"][k:k + 1] for i, k in ((0, 0), (1, 0))])
    assert saved.hparams()["offsets"] and torch.allclose(encode(saved, x), codes, atol=1e-5)  # the same encoder

    def no_training(*args, **kwargs):
        raise AssertionError("an applied encoder must not be trained")

    monkeypatch.setattr(encoding, "train_encoder", no_training)
    out = tmp_path / "new"
    invoke(["--ckpt", run_dir, "--images", image_folder(tmp_path / "b", {"b0": (30, 20), "b1": (16, 16)}, seed=1),
            "--out", out, "--encoder", train_out / "encoder.pt", *FAST])
    assert Image.open(out / "masks" / "b0.png").size == (30, 20)
    other = tiny_run(tmp_path / "other", extra=['model.resolution=8'])
    result = CliRunner().invoke(main, ["--ckpt", other, "--images", str(tmp_path / "b"), "--out", str(tmp_path / "x"),
                                       "--encoder", str(train_out / "encoder.pt"), *FAST])
    assert result.exit_code != 0 and "--encoder" in result.output and "made for" in result.output


def test_ground_truth_gives_the_table_with_baselines_and_unreadable_files_are_reported(run_dir, tmp_path):
    images = image_folder(tmp_path / "img", {"a": (20, 16), "b": (16, 16), "c": (24, 16)})
    (tmp_path / "img" / "broken.png").write_bytes(b"not an image")
    gt = tmp_path / "gt"
    gt.mkdir()
    for name, (w, h), cols in (("a", (20, 16), 5), ("b", (16, 16), 8), ("c", (24, 16), 12), ("broken", (8, 8), 4)):
        m = np.zeros((h, w), np.uint8)
        m[:, :cols] = 255
        Image.fromarray(m).save(gt / f"{name}.png")
    out = tmp_path / "out"
    with pytest.warns(RuntimeWarning, match="could not be decoded"):  # when the folder is opened
        output = invoke(["--ckpt", run_dir, "--images", images, "--gt", gt, "--out", out, "--baseline", "full",
                         "--baseline", "centre", *FAST])
    assert "unreadable" in output and "broken" in output
    summary = json.load(open(out / "summary.json"))
    assert summary["images"] == 3 and list(summary["unreadable"]) == ["broken"]
    table = json.load(open(out / "eval" / "table.json"))
    assert list(table) == ["encoder", "full", "centre"] and table["encoder"]["images"] == 3
    assert table["full"]["per_image"]["fg_iou"] == pytest.approx(np.mean([5 / 20, 8 / 16, 12 / 24]))  # same 3 images
    assert (out / "eval" / "encoder" / "cases.png").is_file() and "fg IoU/img" in output


def test_synthetic_test_scores_the_held_out_split(run_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERED_GAN_CACHE", str(tmp_path / "cache"))
    cfg = torch.load(os.path.join(run_dir, "checkpoint.pt"))["config"]
    build_synthetic(**cfg["data"]["synthetic"], workers=1, progress=False)  # in-process: no worker start-up
    out = tmp_path / "out"
    invoke(["--ckpt", run_dir, "--synthetic-test", 4, "--out", out, "--baseline", "full", *FAST])
    table = json.load(open(out / "eval" / "table.json"))
    assert table["encoder"]["images"] == 4 and table["full"]["images"] == 4
    assert Image.open(next((out / "masks").iterdir())).size == (32, 32)


def test_clear_errors(tmp_path):
    images = image_folder(tmp_path / "img", {"a": (16, 16)})
    stylegan2 = tiny_run(tmp_path / "sg2", mode="stylegan2_demo")
    save_checkpoint({"config": {"mode": "labels4free"}, "G_ema": {}}, str(tmp_path / "l4f" / "checkpoint.pt"))
    for ckpt, what in ((stylegan2, "is a 'stylegan2' run, not a PerturbGAN run"),
                       (str(tmp_path / "l4f"), "is a 'labels4free' run, not a PerturbGAN run"),
                       (str(tmp_path / "none"), "does not exist")):
        result = CliRunner().invoke(main, ["--ckpt", ckpt, "--images", images, "--out", str(tmp_path / "o")])
        assert result.exit_code != 0 and "--ckpt" in result.output and what in result.output, result.output
    nod = tmp_path / "nod"
    cfg = torch.load(os.path.join(tiny_run(nod), "checkpoint.pt"))
    del cfg["D"]
    save_checkpoint(cfg, str(nod / "checkpoint.pt"))
    result = CliRunner().invoke(main, ["--ckpt", str(nod), "--images", images, "--out", str(tmp_path / "o")])
    assert result.exit_code != 0 and "no discriminator" in result.output
    result = CliRunner().invoke(main, ["--ckpt", str(nod), "--images", str(tmp_path / "missing"), "--out",
                                       str(tmp_path / "o"), "--feature-weight", "0"])
    assert result.exit_code != 0 and "--images" in result.output and "does not exist" in result.output


def test_encode_never_writes_into_an_unrelated_folder_or_resumes_another_input_set(run_dir, tmp_path):
    """Issue 17: an --out holding someone's files is refused untouched; a rerun on another input set with the
    same count and first name is refused (the names' digest differs)."""
    images = image_folder(tmp_path / "img", {"a": (16, 16), "b": (16, 16)})
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "summary.json").write_text("my own file")
    args = ["--ckpt", run_dir, "--images", images, "--steps", "2", "--batch", "2", "--width", "4", "--device", "cpu"]
    result = CliRunner().invoke(main, args[:4] + ["--out", str(theirs)] + args[4:])
    assert result.exit_code == 2 and "non-empty folder that holds no encoding run" in result.stderr, result.output
    assert os.listdir(theirs) == ["summary.json"] and (theirs / "summary.json").read_text() == "my own file"

    out = tmp_path / "enc"
    invoke(args[:4] + ["--out", out] + args[4:])
    other = image_folder(tmp_path / "img2", {"a": (16, 16), "c": (16, 16)})  # same count, same first name
    result = CliRunner().invoke(main, [args[0], args[1], "--images", other, "--out", str(out)] + args[4:])
    assert result.exit_code == 2 and "names_sha1" in result.stderr, result.output


def test_imagenet_backbone_starts_from_the_packages_weights_and_is_fine_tuned(run_dir, tmp_path):
    from layered_gan.networks.efficientnet import pretrained_encoder

    synthesis, D, _ = load_layered_run(run_dir)
    torch.manual_seed(0)
    encoder = build_encoder(synthesis, offsets=True, backbone="efficientnet")
    imagenet = pretrained_encoder().drop_classifier().state_dict()
    assert all(torch.equal(v, imagenet[k]) for k, v in encoder.imagenet.state_dict().items())
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    assert torch.equal(encoder(x), synthesis.w_avg.expand(4, -1, -1))  # a zero head on the ImageNet features
    loss = ReconstructionLoss(synthesis, D, feature_weight=0.5)
    train_encoder(encoder, loss, lambda: x, steps=2, lr=1e-3)
    moved = [k for k, v in encoder.imagenet.state_dict().items() if v.is_floating_point() and not torch.equal(v, imagenet[k])]
    assert len(moved) > 100  # fine-tuned, not frozen
    # saved and applied: the same codes, without the package's weights being loaded again
    out = tmp_path / "enc"
    invoke(["--ckpt", run_dir, "--images", image_folder(tmp_path / "a", {f"a{i}": (16, 16) for i in range(4)}),
            "--out", out, "--amortized", "--backbone", "efficientnet", *FAST])
    saved = encoding.load_encoder(str(out / "encoder.pt"), synthesis)
    assert saved.hparams()["backbone"] == "efficientnet" and not hasattr(saved, "stem")
    assert json.load(open(out / "settings.json"))["backbone"] == "efficientnet"


def test_backbone_lr_scales_only_the_pretrained_layers_steps(run_dir):
    """--backbone-lr: Adam moves each weight by about its lr per step, so the ImageNet layers move 10x less at a
    multiple of 0.1 (two steps: the zero head passes no gradient to them in the first); 0 freezes them."""
    synthesis, D, _ = load_layered_run(run_dir)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    loss = ReconstructionLoss(synthesis, D, feature_weight=0.5)
    steps = {}
    for multiple in (1.0, 0.1, 0.0):
        torch.manual_seed(0)
        encoder = build_encoder(synthesis, backbone="efficientnet")
        before = encoder.imagenet._conv_stem.weight.detach().clone()
        train_encoder(encoder, loss, lambda: x, steps=2, lr=1e-3, backbone_lr=multiple)
        steps[multiple] = (encoder.imagenet._conv_stem.weight - before).abs().max().item()
    assert steps[0.0] == 0 and 0.05 < steps[0.1] / steps[1.0] < 0.2
    assert list(build_encoder(synthesis, width=4).pretrained_parameters()) == []
    out = CliRunner().invoke(main, ["--ckpt", run_dir, "--synthetic-test", "2", "--out", "o", "--backbone-lr", "0.1"])
    assert out.exit_code == 2 and "--backbone efficientnet" in out.output


@torch.no_grad()
def test_size_weight_adds_the_mask_size_hinge_of_the_encoded_masks(run_dir):
    synthesis, D, _ = load_layered_run(run_dir)
    ws, x = synthesis.w_avg + torch.randn(3, synthesis.n_latent, 8), torch.rand(3, 3, 16, 16) * 2 - 1
    mask = synthesis.layers(ws, zero_noise(synthesis, 3, "cpu")).mask.flatten(1).mean(1)
    eta = mask.max().item() + 0.1  # every mask below it: the hinge is active on each image
    plain = ReconstructionLoss(synthesis, D)(ws, x)
    hinged = ReconstructionLoss(synthesis, D, size_weight=2.0, eta=eta)(ws, x)
    torch.testing.assert_close(hinged, plain + 2.0 * (eta - mask))
    torch.testing.assert_close(ReconstructionLoss(synthesis, D, size_weight=2.0, eta=0.0)(ws, x), plain)
    assert "eta" not in encoding.Options().settings() and "size_weight" not in encoding.Options().settings()
    recorded = encoding.Options(loss=encoding.Loss(size_weight=1.0)).settings()
    assert recorded["size_weight"] == 1.0 and recorded["eta"] == 0.15
