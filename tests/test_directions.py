"""Latent segmenting directions: Melas-Kyriazi's terms and sign, Voynov's operator fit and ranking, masks, the CLI."""

import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from layered_gan.directions.candidates import load_directions, random_directions, sefa, with_signs
from layered_gan.directions.cli import cli
from layered_gan.directions.latent import brightness
from layered_gan.directions.masks import DirectionPairs
from layered_gan.directions.melas import find_direction, radial_prior, sobel
from layered_gan.directions.voynov import (apply_operators, fit_operators, rank_000, rank_001, restoration_errors,
                                           score_candidates)
from layered_gan.evaluation.generated import score_masks
from layered_gan.evaluation.sources import FileSource
from layered_gan.networks import Generator
from layered_gan.checkpoint import save_checkpoint
from layered_gan.config import load_config
from layered_gan.images import to_uint8
from layered_gan.networks.port import load_port, save_port
from layered_gan.segmenter.filters import default_filters
from layered_gan.segmenter.pairs import Pairs
from layered_gan.training.objectives import make_objective

SIZE = 16


class ToySpace:
    """Codes [n, dim] -> images: a texture driven by codes[:, 1:] plus codes[:, 0] x a planted pattern.

    Moving along e_0 changes only the planted pattern (the segmenting direction); other directions
    change the texture, pixel and channel independently.
    """

    def __init__(self, pattern, dim=8, seed=0):
        generator = torch.Generator().manual_seed(seed)
        self.pattern, self.dim, self.device = pattern, dim, "cpu"
        self.texture = 0.15 * torch.randn(dim - 1, 3 * SIZE * SIZE, generator=generator)

    def sample(self, n, generator):
        return torch.randn(n, self.dim, generator=generator), None

    def render(self, codes, noise):
        texture = 0.5 * torch.tanh(codes[:, 1:] @ self.texture).reshape(-1, 3, SIZE, SIZE)
        return texture + 0.4 * torch.tanh(codes[:, 0, None, None, None] / 2) * self.pattern


class LinearSpace:
    """G(z) = 0 (mid gray) for every sample; shifting along e_k adds patterns[k]."""

    def __init__(self, patterns):
        self.patterns, self.dim, self.device = patterns, len(patterns), "cpu"

    def sample(self, n, generator):
        return torch.zeros(n, self.dim), None

    def render(self, codes, noise):
        return torch.einsum("nk,khw->nhw", codes, self.patterns)[:, None].repeat(1, 3, 1, 1)


def square(lo=4, hi=12):
    region = torch.zeros(SIZE, SIZE)
    region[lo:hi, lo:hi] = 1
    return region


# Melas-Kyriazi et al.

def test_sobel_matches_hand_values():
    x = torch.zeros(1, 3, 3, 3)
    x[0, 0, 0, 0] = 1  # g[0, 0] = g^T[0, 0] = 1: 1^2 + 1^2
    x[0, 1, 1, 2] = 2  # g[1, 2] = -2, g^T[1, 2] = 0: (2 x -2)^2
    assert sobel(x).tolist() == [[[18.0]]]
    step = torch.zeros(1, 3, 4, 4)
    step[0, 0, :, 2:] = 1  # a vertical edge: (1 + 2 + 1)^2 at every valid position, nothing vertical
    assert sobel(step).tolist() == [[[16.0, 16.0], [16.0, 16.0]]]


def test_radial_prior_matches_hand_values():
    r3 = radial_prior(3, 3)  # alpha = sqrt(8) / 4
    edge = 1 - math.sqrt(2)
    torch.testing.assert_close(r3, torch.tensor([[-1.0, edge, -1.0], [edge, 1.0, edge], [-1.0, edge, -1.0]]))
    r4 = radial_prior(4, 4)  # corners at 2 alpha; the inner pixels at sqrt(0.5) / (sqrt(18) / 4) = 2 / 3
    torch.testing.assert_close(r4[[0, 0, 3, 3], [0, 3, 0, 3]], torch.full((4,), -1.0))
    torch.testing.assert_close(r4[1:3, 1:3], torch.full((2, 2), 1 / 3))


def test_positive_lambda_lights_the_centre_and_negative_darkens_it():
    bump = radial_prior(SIZE, SIZE).clamp(min=-0.5)  # a smooth bright centre: few edges change
    space = ToySpace(bump)
    generator = torch.Generator().manual_seed(5)
    codes, _ = space.sample(16, generator)
    centre, corners = (slice(6, 10), slice(6, 10)), (slice(0, 3), slice(0, 3))
    for lam in (5.0, -5.0):
        v, _ = find_direction(space, lam, eps=2.0, steps=150, batch=8, seed=1, progress=False)
        assert v.norm().item() == pytest.approx(1, abs=1e-5)
        change = (space.render(codes + 2.0 * v, None) - space.render(codes, None)).mean((0, 1))
        assert math.copysign(1, lam) * v[0] > 0.9  # along the planted bump, lighter for lambda > 0
        assert math.copysign(1, lam) * (change[centre].mean() - change[corners].mean()) > 0.2


# Voynov et al.

def test_fit_recovers_two_known_operators():
    A_true = torch.tensor([[[0.5, 0.1, 0.0], [0.0, 0.6, 0.1], [0.1, 0.0, 0.5]],
                           [[0.7, 0.0, -0.1], [0.0, 0.6, 0.0], [-0.1, 0.1, 0.7]]])
    b_true = torch.tensor([[0.45, 0.4, 0.35], [-0.1, -0.05, -0.15]])
    region = square().bool()

    def pairs(n, generator):
        x = torch.rand(n, 3, SIZE, SIZE, generator=generator)
        shifted = apply_operators(A_true, b_true, x)
        return x, torch.where(region, shifted[0], shifted[1])

    A, b = fit_operators(pairs, steps=600, lr=0.01, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(A, A_true, atol=0.02, rtol=0)
    torch.testing.assert_close(b, b_true, atol=0.02, rtol=0)
    x, shifted = pairs(4, torch.Generator().manual_seed(1))
    errors = restoration_errors(A, b, x, shifted)
    assert errors.min(0).values.mean() < 1e-4
    assert torch.equal(errors[0] < errors[1], region.expand(4, -1, -1))  # eq. (5) labels the lightened region


def test_both_rules_pick_the_planted_direction_among_random_ones():
    space = ToySpace(2 * square() - 1)  # e_0 lights the square, darkens the rest
    directions = torch.cat([torch.eye(space.dim)[:1], random_directions(space.dim, 5, seed=1)])
    shifts, names = with_signs(directions, ["planted"] + [f"random{i}" for i in range(5)])
    scores = score_candidates(space, 5 * shifts, steps=100, lr=0.01, eval_batch=8, progress=False)
    for rule in (rank_000, rank_001):
        ranked = rule(scores)
        assert names[ranked[0]] in ("planted+", "planted-"), (rule.__name__, [names[i] for i in ranked])
    planted = scores[names.index("planted+")]
    assert planted["coverage"] == 0.25 and planted["share"] == 0.25  # the mask is the square, exactly


def test_rules_on_given_scores():
    def s(loss, distance, share=0.5):
        return {"loss": loss, "distance": distance, "share": share}

    scores = [s(0.1, 0.2), s(0.2, 0.9), s(0.3, 0.5), s(0.9, 5.0), s(0.15, 3.0, share=0.995)]
    # 000: the best ceil(0.7 x 5) = 4 losses (not 3), by distance; the one-class candidate counts
    assert rank_000(scores) == [4, 1, 2, 0]
    # 001: drop 4 (one class); top ceil(0.2 x 4) = 1 by distance: 3
    assert rank_001(scores) == [3]
    many = [s(1 - i / 100, i) for i in range(60)]  # distance grows, loss falls with i
    assert rank_001(many) == list(range(59, 49, -1))  # top 12 by distance, the 10 lowest losses
    assert rank_001([s(0.1, 1.0, share=0.0)]) == []


def test_sefa_finds_the_dominant_style_direction():
    G = Generator(8, z_dim=6, w_dim=6, n_mlp=1, channels={4: 4, 8: 4})
    dominant = torch.tensor([1.0, 2.0, 0.0, -1.0, 0.5, 0.0])
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("affine.weight"):  # every style row close to +-dominant
                p.copy_(torch.outer(torch.randn(p.shape[0]).sign(), dominant) + 0.01 * torch.randn(p.shape))
    directions = sefa(G, 3)
    torch.testing.assert_close(directions @ directions.T, torch.eye(3), atol=1e-5, rtol=0)
    assert abs(float(directions[0] @ dominant / dominant.norm())) > 0.999


# Masks and the distillation's filters

def test_masks_and_filters_on_constructed_cases():
    light = -torch.ones(4, SIZE, SIZE)
    light[0, :12] = 1  # 75 % lighter: too large
    light[1, 2:8, 2:8] = 1  # a 6 x 6 object and a stray pixel
    light[1, 13, 13] = 1
    light[2] = 0.1 * (2 * square(2, 8) - 1)  # a 6 x 6 object, barely lighter: mid-gray histogram
    light[3] = 0.3  # brighter everywhere: the darker shift's image
    space = LinearSpace(light)
    eye = torch.eye(4)
    masks = {k: DirectionPairs(space, eye[k]).sample(1, None) for k in range(3)}
    assert masks[0].mask.mean() == 0.75 and masks[2].mask.sum() == 36 and masks[1].mask.sum() == 37
    torch.testing.assert_close(masks[1].contrast, (light[1] + 1).clamp(0, 2).expand(1, 3, -1, -1) / 2)
    chain = default_filters(rules="paper")
    kept = chain(Pairs(*(torch.cat(t) for t in zip(*masks.values()))))
    assert chain.report()["rejected"] == {"max_coverage": 1, "near_empty": 0, "histogram": 1}
    assert chain.report()["edited"]["components"] == 1
    assert len(kept.mask) == 1 and kept.mask.sum() == 36 and kept.mask[0, 0, 13, 13] == 0
    code = default_filters()  # the codes' histogram rule keeps the mid-gray one; components run first
    assert len(code(Pairs(*(torch.cat(t) for t in zip(*masks.values())))).mask) == 2
    assert code.report()["rejected"] == {"max_coverage": 1, "near_empty": 0, "histogram": 0}
    assert list(code.counts) == ["components", "max_coverage", "near_empty", "histogram"]
    two = DirectionPairs(space, lighter=eye[1], darker=eye[3]).sample(1, None)  # lighter than the darker shift's
    assert two.mask.sum() == 37
    assert torch.equal(DirectionPairs(space, darker=eye[3]).sample(1, None).mask, torch.zeros(1, 1, SIZE, SIZE))


class FixedSegmenter(torch.nn.Module):
    """A stand-in reference segmenter: the same logits for every image."""

    resolution = SIZE

    def __init__(self, mask):
        super().__init__()
        self.logits = torch.nn.Parameter(20 * mask - 10)

    def forward(self, x):
        return self.logits.expand(len(x), 1, -1, -1)


def test_scores_against_the_reference_segmenter():
    light = -torch.ones(1, SIZE, SIZE)
    light[0, 2:8, 2:8] = 1  # the direction's mask: a 6 x 6 square at 2
    source = DirectionPairs(LinearSpace(light), torch.ones(1))
    figures = score_masks(source, FixedSegmenter(square()), num=5, batch=2, progress=False)  # reference: 8 x 8 at 4
    assert figures["scored"] == 5 and figures["skipped_no_object"] == 0
    assert figures["iou"] == pytest.approx(16 / (36 + 64 - 16)) and figures["mask_coverage"] == 36 / SIZE ** 2
    figures = score_masks(source, FixedSegmenter(torch.zeros(SIZE, SIZE)), num=3, progress=False)
    assert figures["scored"] == 0 and figures["skipped_no_object"] == 3


def test_brightness_modes():
    before, after = torch.full((1, 3, 1, 1), 0.5), torch.tensor([1.0, 0.0, 0.0]).reshape(1, 3, 1, 1)
    assert brightness(after, "gray") < brightness(before, "gray")  # 0.299 < 0.5
    assert brightness(after, "rgb") > brightness(before, "rgb")  # 1 > 0.866


# The command line

@pytest.fixture(scope="module")
def tiny_generator(tmp_path_factory):
    torch.manual_seed(0)
    G = Generator(SIZE, z_dim=16, w_dim=16, n_mlp=2, channels={4: 16, 8: 16, 16: 8})
    G.w_avg.copy_(G.mean_w(256))
    path = str(tmp_path_factory.mktemp("generator") / "port.pt")
    save_port(path, G)
    return path


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result


def test_generate_draws_a_plain_generator(tiny_generator, tmp_path):
    from layered_gan.cli import generate as generate_main

    result = CliRunner().invoke(generate_main, ["--ckpt", tiny_generator, "--seeds", "0-2", "--out", str(tmp_path),
                                                "--device", "cpu"])
    assert result.exit_code == 0, result.output
    grid = np.asarray(Image.open(tmp_path / "layers.png"))
    assert grid.shape == (SIZE, 3 * SIZE, 3)  # one row of images: no layers to show
    G = load_port(tiny_generator).G
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        first = G(torch.randn(1, G.z_dim, generator=g), noise=G.make_noise(1, "cpu", g))
    seed1 = grid[:, SIZE:2 * SIZE].astype(float)
    assert np.abs(seed1 - to_uint8(first)[0].astype(float)).max() <= 1  # the cell of seed 1


def test_generate_reads_a_port_file_with_its_argparse_args(tiny_generator, tmp_path):
    import argparse

    from layered_gan.runs import load_run, run_config
    from layered_gan.networks.port import read_port_checkpoint

    state = read_port_checkpoint(tiny_generator)
    state["args"] = argparse.Namespace(size=SIZE, channel_multiplier=2)  # as the port's train.py saves it
    path = str(tmp_path / "with_args.pt")
    torch.save(state, path)
    run = load_run(path)
    G, cfg = run.G, run.config
    assert cfg is None and run_config(path) is None
    torch.testing.assert_close(G.w_avg, load_port(tiny_generator).G.w_avg)


def test_pair_commands_refuse_a_plain_generator(tiny_generator, tmp_path):
    from layered_gan.cli import distill as distill_main
    from layered_gan.segmenter.cli import pairs as pairs_main

    for command, args in ((distill_main, ["--out", str(tmp_path / "d")]),
                          (pairs_main, ["--num", "2", "--out", str(tmp_path / "p")])):
        result = CliRunner().invoke(command, ["--ckpt", tiny_generator, "--device", "cpu"] + args)
        assert result.exit_code == 2 and "not a layered generator" in result.output


def test_find_and_masks_end_to_end(tiny_generator, tmp_path):
    out = tmp_path / "voynov"
    result = run("find", "--ckpt", tiny_generator, "--method", "voynov", "--out", out, "--num", 2, "--steps", 3,
                 "--eval-batch", 2, "--strip-samples", 2, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "segmenting direction" in result.output and "sefa0+" in result.output and "sefa1-" in result.output
    state = load_directions(str(out / "directions.pt"))
    assert state["names"] == ["sefa0+", "sefa0-", "sefa1+", "sefa1-"] and state["space"] == "w"
    torch.testing.assert_close(state["shifts"].norm(dim=1), torch.full((4,), 5.0))
    torch.testing.assert_close(state["shifts"][0], -state["shifts"][1])
    assert state["table"][state["lighter"]]["rank"] == 1 and state["darker"] is None
    strip = Image.open(out / "strips" / "000_sefa0+.png")
    assert strip.size == (3 * SIZE, 2 * SIZE)  # [G(z - h), G(z), G(z + h)] x 2 samples

    pairs = tmp_path / "pairs"
    result = run("masks", "--direction", out / "directions.pt", "--out", pairs, "--num", 5, "--format", "png",
                 "--max-coverage", 1, "--min-coverage", 0, "--no-histogram", "--batch", 3, "--device", "cpu")
    assert result.exit_code == 0, result.output
    images, masks = FileSource(str(pairs / "images")), FileSource(str(pairs / "masks"))
    assert images.names == masks.names == [f"{i:08d}" for i in range(5)]
    assert set(np.unique(masks.mask(masks.names[0]))) <= {0.0, 1.0}
    assert np.asarray(images.image(images.names[0])).shape == (SIZE, SIZE, 3)

    result = run("masks", "--direction", out / "directions.pt", "--out", tmp_path / "lmdb", "--num", 3,
                 "--max-coverage", 1, "--min-coverage", 0, "--no-histogram", "--lighter", 2, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert len(FileSource(str(tmp_path / "lmdb" / "masks")).names) == 3

    melas = tmp_path / "melas"
    result = run("find", "--ckpt", tiny_generator, "--method", "melas", "--out", melas, "--steps", 2, "--batch", 2,
                 "--eval-batch", 2, "--strip-samples", 1, "--device", "cpu")
    assert result.exit_code == 0, result.output
    state = load_directions(str(melas / "directions.pt"))
    assert state["names"] == ["v_l", "v_d"] and (state["lighter"], state["darker"]) == (0, 1)
    torch.testing.assert_close(state["shifts"].norm(dim=1), torch.full((2,), 0.2))


def test_score_on_a_synthetic_run(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERED_GAN_CACHE", str(tmp_path / "cache"))
    cfg = load_config("stylegan2_demo", ['data.synthetic={"resolution": 32, "count": 64, "test_count": 8, "seed": 0}',
                                         "model.resolution=16", "model.z_dim=8", "model.w_dim=8"])
    G, D = make_objective(cfg).build()
    save_checkpoint({"config": cfg, "G_ema": G.state_dict(), "D": D.state_dict()}, str(tmp_path / "run" / "checkpoint.pt"))
    result = run("find", "--ckpt", tmp_path / "run", "--method", "voynov", "--candidates", "random", "--num", 2,
                 "--no-signs", "--steps", 2, "--eval-batch", 2, "--strip-samples", 1, "--out", tmp_path / "dirs",
                 "--device", "cpu")
    assert result.exit_code == 0, result.output
    result = run("score", "--direction", tmp_path / "dirs" / "directions.pt", "--rows", "each", "--num", 4,
                 "--reference-steps", 2, "--device", "cpu")
    assert result.exit_code == 0, result.output
    figures = json.load(open(tmp_path / "dirs" / "score_each.json"))
    assert [r["name"] for r in figures["rows"]] == ["random0", "random1"] and figures["rows"][0]["images"] == 4
    assert 0 <= figures["rows"][0]["full_mask_iou"] <= 1  # the generated-masks protocol's figures, from one loop
    assert figures["best"]["iou"] == max(r["iou"] for r in figures["rows"])


def test_bad_inputs_are_clear_errors(tiny_generator, tmp_path):
    result = run("find", "--ckpt", tmp_path / "missing.pt", "--method", "melas", "--out", tmp_path / "o")
    assert result.exit_code != 0 and "missing.pt does not exist" in result.output
    result = run("find", "--ckpt", tiny_generator, "--method", "voynov", "--space", "z", "--out", tmp_path / "o",
                 "--device", "cpu")
    assert result.exit_code != 0 and "sefa directions live in W" in result.output
    result = run("find", "--ckpt", tiny_generator, "--method", "voynov", "--candidates", "sefaa", "--out",
                 tmp_path / "o", "--device", "cpu")
    assert result.exit_code != 0 and "neither one of sefa, pca, random nor an existing file" in result.output
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.ones((3, 7), np.float32))
    result = run("find", "--ckpt", tiny_generator, "--method", "voynov", "--candidates", wrong, "--out",
                 tmp_path / "o", "--device", "cpu")
    assert result.exit_code != 0 and "must be [K, 16]" in result.output
    plain = tmp_path / "plain.pt"
    torch.save(torch.ones(3, 16), plain)  # a candidates array, not find's output
    result = run("masks", "--direction", plain, "--out", tmp_path / "p", "--num", 1)
    assert result.exit_code != 0 and "not a directions file" in result.output
    result = run("find", "--ckpt", tiny_generator, "--method", "melas", "--out", tmp_path / "m", "--steps", 1,
                 "--batch", 1, "--eval-batch", 1, "--strip-samples", 1, "--device", "cpu")
    result = run("masks", "--direction", tmp_path / "m" / "directions.pt", "--out", tmp_path / "p", "--num", 1,
                 "--lighter", 5)
    assert result.exit_code != 0 and "--lighter 5: the directions file has rows 0-1 (v_l, v_d)" in result.output
    result = run("score", "--direction", tmp_path / "m" / "directions.pt", "--device", "cpu")
    assert result.exit_code != 0 and "is not a run on the synthetic dataset" in result.output


def test_sampling_around_anchors(tiny_generator):
    from layered_gan.directions.latent import LatentSpace

    G = load_port(tiny_generator).G
    anchors = torch.randn(3, G.synthesis.w_dim)
    exact = LatentSpace(G, "w", anchors=anchors, anchor_noise=0.0).sample(20, torch.Generator().manual_seed(0))[0]
    assert torch.cdist(exact, anchors).min(1).values.max() < 1e-6  # every code is one of the anchors
    assert len({tuple(c.tolist()) for c in exact}) == 3  # all three drawn

    g = torch.Generator().manual_seed(1)
    near = LatentSpace(G, "w", anchors=anchors, anchor_noise=0.2).sample(20, g)[0]
    w = LatentSpace(G, "w").sample(20, torch.Generator().manual_seed(1))[0]  # the same fresh draws
    offsets = torch.cdist(near, anchors).min(1).values
    torch.testing.assert_close(offsets, 0.2 * (w - G.w_avg).norm(dim=1))  # anchor + 0.2 (w - w_avg)
    for space, bad in (("z", anchors), ("w", torch.randn(3, G.synthesis.w_dim + 1))):
        with pytest.raises(ValueError, match="anchors must be"):
            LatentSpace(G, space, anchors=bad)


def test_anchors_invert_real_images_and_feed_the_masks(tiny_generator, tmp_path):
    G = load_port(tiny_generator).G
    g = torch.Generator().manual_seed(3)
    targets_w = G.styles(torch.randn(4, G.z_dim, generator=g))[:, 0]
    with torch.no_grad():
        images = G.synthesis(targets_w[:, None].expand(-1, G.n_latent, -1),
                             noise=[torch.zeros(4, 1, s, s) for s in G.synthesis.noise_shapes()])
    folder = tmp_path / "real"
    folder.mkdir()
    for i, image in enumerate(to_uint8(images)):
        Image.fromarray(image).save(folder / f"{i}.png")
    images = torch.from_numpy(to_uint8(images)).permute(0, 3, 1, 2).float() / 127.5 - 1  # what the files hold
    result = run("anchors", "--ckpt", tiny_generator, "--images", folder, "--out", tmp_path / "anchors.pt",
                 "--steps", 100, "--batch", 3, "--device", "cpu")
    assert result.exit_code == 0, result.output
    state = torch.load(tmp_path / "anchors.pt", weights_only=True)
    assert state["ws"].shape == (4, G.synthesis.w_dim) and "wrote 4 anchors" in result.output
    def l1(w):
        with torch.no_grad():
            noise = [torch.zeros(4, 1, s, s) for s in G.synthesis.noise_shapes()]
            return (G.synthesis(w[:, None].expand(-1, G.n_latent, -1), noise=noise) - images).abs().mean((1, 2, 3))

    start, end = l1(G.w_avg.expand(4, -1)), l1(state["ws"])
    assert (end < 0.9 * start).all() and end.mean() < 0.6 * start.mean()  # anchors draw their images better
    torch.testing.assert_close(state["losses"], end, atol=0.02, rtol=0)  # the recorded final L1 (PNG rounding)

    melas = tmp_path / "melas"
    assert run("find", "--ckpt", tiny_generator, "--method", "melas", "--out", melas, "--steps", 2, "--batch", 2,
               "--eval-batch", 2, "--strip-samples", 1, "--device", "cpu").exit_code == 0
    common = ["--direction", melas / "directions.pt", "--num", 3, "--format", "png", "--max-coverage", 1,
              "--min-coverage", 0, "--no-histogram", "--device", "cpu"]
    result = run("masks", *common, "--out", tmp_path / "pairs", "--anchors", tmp_path / "anchors.pt")
    assert result.exit_code == 0, result.output
    assert len(FileSource(str(tmp_path / "pairs" / "masks")).names) == 3
    result = run("masks", *common, "--out", tmp_path / "bad", "--anchors", melas / "directions.pt")
    assert result.exit_code != 0 and "is not an anchors file" in result.output


def test_melas_samples_at_psi_one_half_by_default():
    """Melas-Kyriazi et al.'s code samples w at psi 0.5; Voynov et al. untruncated; an explicit psi wins."""
    from layered_gan.directions.search import Search
    assert Search("melas").psi() == 0.5 and Search("voynov").psi() == 1.0
    assert Search("melas", truncation=0.7).psi() == 0.7
