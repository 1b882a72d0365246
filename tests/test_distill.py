import json
import os
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from layered_gan.checkpoint import save_checkpoint
from layered_gan.data.dataset import ImageDataset
from layered_gan.evaluation.metrics import iou_per_image
from layered_gan.networks.layered import LayeredGenerator
from layered_gan.segmenter.filters import (Components, FilterChain, HistogramContrast, MaxCoverage, MinCoverage,
                                           code_histogram_keeps, default_filters, interior_peak, keep_large_components,
                                           smoothed_histogram)
from layered_gan.segmenter.model import build_segmenter, load_segmenter, predict, predict_image, save_segmenter
from layered_gan.segmenter.pairs import (LayeredGeneratorPairs, Pairs, PairSource, PairStream, export_pairs,
                                         fixed_pairs)
from layered_gan.sampling import sample_layers
from layered_gan.segmenter.training import fit, repeat


def pairs_from_masks(masks, contrast=None):
    masks = torch.as_tensor(np.asarray(masks, np.float32))[:, None]
    n = len(masks)
    image = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, *masks.shape[-2:]) / n
    return Pairs(image, masks, masks if contrast is None else contrast)


def coverage_masks(*fractions, size=10):
    out = np.zeros((len(fractions), size, size))
    for i, f in enumerate(fractions):
        out[i].flat[: round(f * size * size)] = 1
    return out


def test_coverage_filters():
    pairs = pairs_from_masks(coverage_masks(0.6, 0.5, 0.3, 0.005, 0.0))
    assert MaxCoverage(0.5).keep(pairs).tolist() == [False, True, True, True, True]
    assert MinCoverage(0.01).keep(pairs).tolist() == [True, True, True, False, False]


def test_histogram_smoothing_and_peaks():
    values = np.array([0.0] * 6 + [1.0] * 6)
    assert smoothed_histogram(values).tolist() == pytest.approx([3, 2, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3])
    assert not interior_peak(smoothed_histogram(values))  # dark and light only: contrastive
    assert interior_peak(np.array([5, 1, 0, 3, 0, 0, 0, 0, 0, 0, 1, 5.0]))  # a bump in the middle
    assert interior_peak(np.array([0, 0, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0.0]))  # an interior plateau counts once
    assert not interior_peak(np.array([4, 4, 4, 1, 0, 0, 0, 0, 0, 0, 0, 0.0]))  # a plateau on the first bin
    assert not interior_peak(np.ones(12))  # flat: its maximum touches both ends
    binary = torch.zeros(1, 1, 8, 8)
    binary[..., :3] = 1
    grey = torch.full((1, 1, 8, 8), 0.5)
    pairs = Pairs(torch.zeros(2, 3, 8, 8), torch.cat([binary, binary]), torch.cat([binary, grey]))
    assert HistogramContrast(rule="paper").keep(pairs).tolist() == [True, False]
    assert HistogramContrast(rule="code").keep(pairs).tolist() == [True, True]  # flat empty bins count as maxima


def test_code_histogram_rule_keeps_two_maxima_by_greater_or_equal():
    """maxes_filter / get_histogram_filter_indices: histc(12, -1, 1), a window-3 sum, `>=` maxima, keep if >= 2.
    Bin i holding i + 1 values: sums 3, 6, 9, ..., 33, 23 have one maximum (bin 10): rejected."""
    centres = torch.linspace(-1, 1, 13)[:-1] + 1 / 12
    ramp = torch.cat([centres[i].repeat(i + 1) for i in range(12)])
    assert not code_histogram_keeps(ramp)
    assert code_histogram_keeps(torch.tensor([-0.99, 0.99]))  # two ends, empty middle: many flat maxima
    pairs = Pairs(torch.zeros(1, 3, 1, 78), torch.zeros(1, 1, 1, 78), ((ramp + 1) / 2).view(1, 1, 1, 78))
    assert HistogramContrast().keep(pairs).tolist() == [False]


def test_components_keep_the_large_ones_with_four_connectivity():
    mask = np.zeros((12, 12), bool)
    mask[:5, :4] = True  # 20 pixels: the largest
    mask[8:10, 8:11] = True  # 6 >= 0.2 x 20: kept
    mask[11, 0:3] = True  # 3 < 4: removed
    mask[5, 4] = True  # touches the largest only by a corner: its own 1-pixel component, removed
    cleaned = keep_large_components(mask, 0.2)
    expected = mask.copy()
    expected[11, 0:3] = expected[5, 4] = False
    assert (cleaned == expected).all()
    eight = mask.copy()  # skimage.measure.label (the codes): 8-connected, the corner pixel joins the largest
    eight[11, 0:3] = False
    assert (keep_large_components(mask, 0.2, connectivity=8) == eight).all()
    soft = torch.from_numpy(mask.astype(np.float32) * 0.9 + 0.05)  # soft mask: low values stay, removed parts go to 0
    out, edited = Components(0.2).apply(Pairs(torch.zeros(1, 3, 12, 12), soft[None, None], soft[None, None]))
    assert edited == 1 and out.mask[0, 0, 11, 0] == 0 and out.mask[0, 0, 0, 0] == pytest.approx(0.95)
    assert out.mask[0, 0, 6, 6] == pytest.approx(0.05)


def test_filter_chain_counts_each_filter():
    masks = coverage_masks(0.7, 0.3, 0.0, 0.3)
    masks[3, 9, 9] = 1  # a stray pixel apart from the main component
    chain = default_filters(histogram=False)
    kept = chain(pairs_from_masks(masks))
    assert len(kept.image) == 2 and kept.image[:, 0, 0, 0].tolist() == [0.25, 0.75]
    assert chain.report() == {"generated": 4, "kept": 2, "rejected": {"max_coverage": 1, "near_empty": 1},
                              "edited": {"components": 1}}
    assert kept.mask[1, 0, 9, 9] == 0
    assert len(chain(pairs_from_masks(coverage_masks(0.9, 0.8))).image) == 0  # nothing left: later filters skip
    assert chain.report()["rejected"]["max_coverage"] == 3


class CountingSource(PairSource):
    """Pair i has image value i; every third mask covers everything (rejected by the size filter)."""

    def __init__(self):
        self.next = 0

    def sample(self, n, generator):
        ids = torch.arange(self.next, self.next + n, dtype=torch.float32)
        self.next += n
        masks = torch.zeros(n, 1, 4, 4)
        masks[:, :, :2] = 1
        masks[ids % 3 == 0] = 1
        return Pairs(ids.view(n, 1, 1, 1).expand(n, 3, 4, 4), masks, masks)


def test_stream_buffers_kept_pairs_in_order_and_never_repeats():
    chain = FilterChain([MaxCoverage(0.5)])
    stream = PairStream(CountingSource(), chain, batch=4, draw=3)
    seen = [i for _ in range(5) for i in stream.next_pairs().image[:, 0, 0, 0].int().tolist()]
    assert seen == [i for i in range(31) if i % 3][:20]
    assert chain.report()["rejected"]["max_coverage"] == chain.report()["generated"] - chain.report()["kept"]
    with pytest.raises(RuntimeError, match="rejected all of the last 150 generated pairs.*max_coverage"):
        PairStream(CountingSource(), FilterChain([MaxCoverage(0.0)]), batch=4, draw=3).next_pairs()


def test_stream_warns_once_when_the_filters_keep_few_pairs():
    class MostlyFull(CountingSource):  # every 40th mask is small, the rest cover everything
        def sample(self, n, generator):
            pairs = super().sample(n, generator)
            pairs.mask[(pairs.image[:, 0, 0, 0] % 40) != 0] = 1
            return pairs

    stream = PairStream(MostlyFull(), FilterChain([MaxCoverage(0.5)]), batch=30, draw=100)
    with pytest.warns(UserWarning, match=r"keep only \d+ of \d+ generated pairs.*max_coverage.*--no-histogram"):
        stream.next_pairs()
    assert stream.warned
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stream.next_pairs()  # once only
    kept = PairStream(CountingSource(), FilterChain([MaxCoverage(0.5)]), batch=30, draw=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        [kept.next_pairs() for _ in range(40)]  # two thirds kept: no warning


def tiny_generator():
    torch.manual_seed(0)
    return LayeredGenerator(16, z_dim=8, w_dim=8, n_mlp=1, channels={4: 8, 8: 8, 16: 8}).eval()


def test_online_generator_pairs_are_fresh_and_reproducible():
    source = LayeredGeneratorPairs(tiny_generator(), threshold=None)
    batches = [b for _, b in zip(range(3), PairStream(source, FilterChain([]), batch=6, seed=1))]
    images = torch.cat([x for x, _ in batches]).flatten(1)
    assert images.shape == (18, 3 * 16 * 16)
    assert torch.cdist(images, images).add(torch.eye(18)).min() > 1e-3  # no two pairs alike
    masks = torch.cat([m for _, m in batches])
    assert ((masks > 0) & (masks < 1)).any()  # soft when no threshold
    again = next(iter(PairStream(source, FilterChain([]), batch=6, seed=1)))[0]
    other = next(iter(PairStream(source, FilterChain([]), batch=6, seed=2)))[0]
    torch.testing.assert_close(again, batches[0][0])
    assert not torch.allclose(other, batches[0][0])
    binary = LayeredGeneratorPairs(tiny_generator(), threshold=0.5).sample(4, torch.Generator().manual_seed(0))
    assert set(binary.mask.unique().tolist()) <= {0.0, 1.0} and ((binary.contrast > 0) & (binary.contrast < 1)).any()
    held_out = fixed_pairs(source, FilterChain([]), 10, seed=99, batch=4)
    assert held_out.image.shape == (10, 3, 16, 16)


def test_placed_pairs_hold_smaller_objects_over_the_generators_background():
    gen = torch.Generator().manual_seed(0)
    drawn = LayeredGeneratorPairs(tiny_generator(), threshold=None).sample(32, gen)
    placed_source = LayeredGeneratorPairs(tiny_generator(), threshold=0.5, placement=0.3)
    placed = placed_source.sample(32, torch.Generator().manual_seed(0))
    # same latents and noise (drawn first), then the placement: the layers are those of `drawn`, moved
    layers = sample_layers(placed_source.G, 32, torch.Generator().manual_seed(0))
    outside = placed.contrast == 0
    assert outside.float().mean() > 0.1
    torch.testing.assert_close(placed.image[outside.expand_as(placed.image)],
                               layers.background.clamp(-1, 1)[outside.expand_as(placed.image)])
    assert placed.contrast.mean() < 0.8 * drawn.contrast.mean()
    assert set(placed.mask.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(placed.mask, (placed.contrast > 0.5).float())


def test_generate_layers_draws_on_the_cpu_then_moves_the_draws(standin):
    """A CPU torch.Generator cannot sample on CUDA (the stand-in enforces it): each seed's latent and noise are drawn
    on the CPU and moved, so the device's layers equal the CPU's."""
    from layered_gan.sampling import generate_layers

    on_device = generate_layers(tiny_generator().to("standin"), [3, 4], truncation=0.7, device="standin")
    assert on_device.mask.shape == (2, 1, 16, 16) and on_device.mask.device.type == "standin"
    G = tiny_generator()
    gen = torch.Generator().manual_seed(4)  # seed 4 alone: its latent, then its noise
    z = torch.randn(1, G.z_dim, generator=gen)
    expected = G(z, truncation=0.7, noise=G.make_noise(1, "cpu", gen))
    torch.testing.assert_close(on_device.mask[1:].cpu(), expected.mask)
    torch.testing.assert_close(sample_layers(G, 1, torch.Generator().manual_seed(4), 0.7).foreground,
                               expected.foreground)


@pytest.mark.parametrize("fmt", ["lmdb", "png"])
def test_export_pairs_round_trips_through_the_dataset(tmp_path, fmt):
    source = LayeredGeneratorPairs(tiny_generator(), threshold=0.5)
    root = str(tmp_path / "pairs")
    export_pairs(PairStream(source, FilterChain([]), batch=4, seed=3), 6, root, progress=False, fmt=fmt)
    reference = [b for _, b in zip(range(2), PairStream(source, FilterChain([]), batch=4, seed=3))]
    ds = ImageDataset(os.path.join(root, "images"), 16, crop="center", masks=os.path.join(root, "masks"))
    assert len(ds) == 6
    x, m = ds[5]
    torch.testing.assert_close(m, reference[1][1][1])
    assert (x - reference[1][0][1]).abs().max() <= 1 / 127.5 + 1e-6  # 8-bit quantized
    assert json.load(open(os.path.join(root, "manifest.json")))["pairs"] == 6
    assert not os.path.exists(root + ".partial")
    with pytest.raises(FileExistsError, match="pairs"):
        export_pairs(PairStream(source, FilterChain([]), batch=4, seed=3), 2, root, progress=False, fmt=fmt)


def disc_set(n=4, size=16):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    images, masks = [], []
    for _ in range(n):
        cy, cx, r = rng.uniform(5, 11), rng.uniform(5, 11), rng.uniform(3, 5)
        m = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        fg, bg = rng.uniform(-1, 1, 3), rng.uniform(-1, 1, 3)
        img = np.where(m[None], fg[:, None, None], bg[:, None, None]) + rng.normal(0, 0.05, (3, size, size))
        images.append(img)
        masks.append(m[None])
    return torch.tensor(np.stack(images), dtype=torch.float32), torch.tensor(np.stack(masks), dtype=torch.float32)


def test_repeat_refuses_a_loader_with_no_batch():
    assert [b for _, b in zip(range(5), repeat([1, 2]))] == [1, 2, 1, 2, 1]
    loader = torch.utils.data.DataLoader(list(range(3)), batch_size=4, drop_last=True)  # 3 examples: no full batch
    with pytest.raises(ValueError, match="fewer examples than one batch"):
        next(repeat(loader))


def test_unet_overfits_a_tiny_set():
    torch.manual_seed(0)
    x, y = disc_set()
    model = build_segmenter(16, width=8, depth=2)
    history = fit(model, repeat([(x, y)]), 100, lr=3e-3, validate=lambda m: {"done": 1.0}, progress=False)
    assert history[-1]["step"] == 100 and history[-1]["loss"] < 0.2
    iou = iou_per_image(predict(model, x)[:, 0].numpy(), y[:, 0].numpy() > 0.5)[0]
    assert iou.min() > 0.95


class BrightOracle(torch.nn.Module):
    """Logit: positive where the image is bright; remembers the sizes it was run at."""

    resolution = 16

    def __init__(self):
        super().__init__()
        self.sizes = []

    def forward(self, x):
        self.sizes.append(tuple(x.shape[-2:]))
        return x.mean(1, keepdim=True) * 20


def test_predict_image_rescales_the_shorter_side_and_maps_back():
    h, w = 23, 37
    yy, xx = np.mgrid[:h, :w]
    disc = (yy - 11) ** 2 + (xx - 20) ** 2 <= 49
    image = Image.fromarray(np.where(disc[..., None], 230, 20).astype(np.uint8).repeat(3, 2))
    oracle = BrightOracle()
    prob = predict_image(oracle, image)
    assert prob.shape == (h, w) and oracle.sizes == [(16, round(37 * 16 / 23))]
    assert iou_per_image(prob[None] > 0.5, disc[None])[0][0] > 0.85


def test_segment_command_on_odd_sizes_then_evaluate(tmp_path):
    from layered_gan.evaluation.cli import evaluate as evaluate_main
    from layered_gan.segmenter.cli import segment as segment_main

    torch.manual_seed(0)
    save_segmenter(build_segmenter(16, width=4, depth=2), str(tmp_path / "seg" / "segmenter.pt"), note="random")
    model, meta = load_segmenter(str(tmp_path / "seg"))
    assert model.resolution == 16 and meta == {"note": "random"}
    sizes = {"a": (37, 23), "nested/b": (15, 41), "c": (16, 16)}
    for name, size in sizes.items():
        path = tmp_path / "img" / f"{name}.jpg"
        os.makedirs(path.parent, exist_ok=True)
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    out = tmp_path / "out"
    result = CliRunner().invoke(segment_main, ["--model", str(tmp_path / "seg"), "--images", str(tmp_path / "img"),
                                               "--out", str(out), "--soft"])
    assert result.exit_code == 0, result.output
    for name, size in sizes.items():
        assert Image.open(out / "masks" / f"{name}.png").size == size
        assert Image.open(out / "masks" / f"{name}.png").mode == "L"
        assert Image.open(out / "overlays" / f"{name}.png").size == size
    result = CliRunner().invoke(evaluate_main, ["--pred", str(out / "masks"), "--gt", str(out / "masks"),
                                                "--gt-encoding", "255", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert json.load(open(tmp_path / "r" / "metrics.json"))["summary"]["per_image"]["fg_iou"] == 1.0
    save_checkpoint({"weights": torch.zeros(1)}, str(tmp_path / "bad.pt"))
    result = CliRunner().invoke(segment_main, ["--model", str(tmp_path / "bad.pt"), "--images", str(tmp_path / "img"),
                                               "--out", str(out)])
    assert result.exit_code != 0 and "bad.pt is not a segmenter checkpoint" in result.output


def test_distill_command_end_to_end(tmp_path, monkeypatch):
    from layered_gan.config import load_config
    from layered_gan.data.synthetic import build_synthetic
    from layered_gan.cli import distill as distill_main
    from layered_gan.runs import build_models

    monkeypatch.setenv("LAYERED_GAN_CACHE", str(tmp_path / "cache"))
    cfg = load_config("demo", ['data.synthetic={"resolution": 32, "count": 4, "test_count": 6, "seed": 0}',
                               'model={"init": null, "resolution": 16, "z_dim": 8, "w_dim": 8, "n_mlp": 1, '
                               '"channel_base": 64, "channel_max": 8, "variant": "two", "mbstd_group": 4}'])
    build_synthetic(**cfg["data"]["synthetic"], workers=1, progress=False)  # in-process: no worker start-up
    G, _ = build_models(cfg)
    save_checkpoint({"config": cfg, "G_ema": G.state_dict()}, str(tmp_path / "run" / "checkpoint.pt"))
    out = tmp_path / "distill"
    result = CliRunner().invoke(distill_main, [
        "--ckpt", str(tmp_path / "run"), "--out", str(out), "--seeds", "0-1", "--steps", "4", "--batch", "4",
        "--val-pairs", "8", "--every", "2", "--real-check", "3", "--unet", "paper", "--width", "4", "--depth", "2",
        "--no-histogram", "--max-coverage", "1", "--min-coverage", "0", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    summary = json.load(open(out / "summary.json"))
    assert summary["seeds"] == [0, 1] and set(summary["runs"]) == {"0", "1"}
    mean, std = summary["real"]["per_image"]["fg_iou"]
    values = [summary["runs"][s]["real"]["per_image"]["fg_iou"] for s in ("0", "1")]
    assert mean == pytest.approx(np.mean(values)) and std == pytest.approx(np.std(values, ddof=1))
    assert summary["runs"]["0"]["real"]["images"] == 6 and summary["runs"]["0"]["filters"]["generated"] >= 16
    assert "mean +- std" in result.output
    figures = json.load(open(out / "seed0" / "figures.json"))
    assert [h["step"] for h in figures["history"]] == [2, 4] and "real_fg_iou_first3" in figures["history"][0]
    model, meta = load_segmenter(str(out / "seed1"))
    assert model.resolution == 16 and meta["seed"] == 1 and meta["real"]["images"] == 6
    assert model.settings == {"width": 4, "depth": 2, "backbone": "unet", "classes": 2}  # --unet paper's head, the sizes given
    assert (out / "seed0" / "real" / "cases.png").exists()
    # from exported pairs instead of online ones
    pairs = str(tmp_path / "pairs")
    export_pairs(PairStream(LayeredGeneratorPairs(G.eval()), FilterChain([]), 4, seed=5), 8, pairs, progress=False)
    result = CliRunner().invoke(distill_main, [
        "--ckpt", str(tmp_path / "run"), "--out", str(tmp_path / "from_lmdb"), "--pairs", pairs, "--steps", "2",
        "--batch", "4", "--val-pairs", "4", "--width", "4", "--depth", "2", "--device", "cpu",
        "--no-histogram", "--max-coverage", "1", "--min-coverage", "0"])
    assert result.exit_code == 0, result.output
    assert json.load(open(tmp_path / "from_lmdb" / "summary.json"))["runs"]["0"]["filters"] == "pairs read from " + pairs


def test_distill_from_latent_directions_and_from_pairs_without_a_generator(tmp_path, monkeypatch):
    from layered_gan.config import load_config
    from layered_gan.data.synthetic import build_synthetic, split_paths
    from layered_gan.directions.candidates import save_directions
    from layered_gan.directions.latent import LatentSpace
    from layered_gan.directions.masks import direction_source
    from layered_gan.cli import distill as distill_main
    from layered_gan.training.objectives import make_objective

    monkeypatch.setenv("LAYERED_GAN_CACHE", str(tmp_path / "cache"))
    cfg = load_config("stylegan2_demo", ['data.synthetic={"resolution": 32, "count": 4, "test_count": 6, "seed": 0}',
                                         "model.resolution=16", "model.z_dim=8", "model.w_dim=8"])
    root = build_synthetic(**cfg["data"]["synthetic"], workers=1, progress=False)
    G, D = make_objective(cfg).build()
    run = str(tmp_path / "run")
    save_checkpoint({"config": cfg, "G_ema": G.state_dict(), "D": D.state_dict()}, os.path.join(run, "checkpoint.pt"))
    directions = str(tmp_path / "dirs" / "directions.pt")
    shifts = 5 * torch.randn(2, 8, generator=torch.Generator().manual_seed(0))
    save_directions(directions, "voynov", run, LatentSpace(G, "w"), shifts, ["a", "b"], [{}, {}], 0, None, "gray")
    tiny = ["--steps", "2", "--batch", "4", "--val-pairs", "4", "--every", "2", "--real-check", "3", "--width", "4",
            "--depth", "2", "--no-histogram", "--max-coverage", "1", "--min-coverage", "0", "--device", "cpu"]

    def distill(*args):
        result = CliRunner().invoke(distill_main, [str(a) for a in args] + tiny)
        return result, (json.load(open(args[args.index("--out") + 1] / "summary.json")) if result.exit_code == 0
                        else None)

    # online direction masks, validated on the held-out split of the synthetic run the directions were found in
    result, summary = distill("--directions", directions, "--lighter", 1, "--darker", "none", "--out",
                              tmp_path / "online")
    assert result.exit_code == 0, result.output
    assert summary["runs"]["0"]["real"]["images"] == 6 and "generated_val" in summary
    assert summary["settings"]["directions"] == directions and summary["settings"]["lighter"] == "1"
    assert summary["validation_pairs"]["generated"] >= 4

    # exported pairs alone, validated on real images given explicitly: no generator is loaded
    pairs = tmp_path / "pairs"
    export_pairs(PairStream(direction_source(directions), FilterChain([]), 4, seed=1), 8, str(pairs), progress=False,
                 fmt="png")
    images, masks = split_paths(root, "test")
    result, summary = distill("--pairs", pairs, "--real-images", images, "--real-masks", masks, "--out",
                              tmp_path / "pairs_only")
    assert result.exit_code == 0, result.output
    assert "generated_val" not in summary and summary["validation_pairs"] is None
    assert summary["runs"]["0"]["real"]["images"] == 6 and summary["runs"]["0"]["generated_val"] is None
    history = json.load(open(tmp_path / "pairs_only" / "seed0" / "figures.json"))["history"]
    assert "real_fg_iou_first3" in history[0] and "val_pairs_fg_iou" not in history[0]
    model, meta = load_segmenter(str(tmp_path / "pairs_only" / "seed0"))
    assert model.resolution == 16 and meta["real"]["images"] == 6

    # exported pairs, the real held-out split taken from the directions file's generator run
    result, summary = distill("--pairs", pairs, "--directions", directions, "--out", tmp_path / "pairs_dirs")
    assert result.exit_code == 0, result.output
    assert summary["runs"]["0"]["real"]["images"] == 6 and summary["runs"]["0"]["filters"].startswith("pairs read")

    result, _ = distill("--pairs", pairs, "--out", tmp_path / "nothing")
    assert result.exit_code != 0 and "nothing to validate on" in result.output
    result, _ = distill("--ckpt", run, "--lighter", 1, "--anchors", tmp_path / "a.pt", "--out", tmp_path / "wrong")
    assert result.exit_code != 0 and "--lighter, --anchors go with --directions" in result.output
    result, _ = distill("--out", tmp_path / "none")
    assert result.exit_code != 0 and "give --ckpt" in result.output
    result, _ = distill("--directions", tmp_path / "missing.pt", "--out", tmp_path / "missing")
    assert result.exit_code != 0 and "missing.pt" in result.output


def test_two_class_unet_head_is_the_papers_cross_entropy():
    """Voynov et al. / Melas-Kyriazi et al.: 2-class cross-entropy; the head's l1 - l0 under BCE gives the same loss."""
    from layered_gan.networks.unet import UNet
    from layered_gan.segmenter.model import UNET_PRESETS
    assert UNET_PRESETS["paper"] == {"width": 64, "depth": 4, "classes": 2}
    torch.manual_seed(0)
    net = UNet(width=4, depth=2, classes=2)
    heads = []
    net.head.register_forward_hook(lambda module, args, out: heads.append(out))
    x, y = torch.randn(2, 3, 8, 8), (torch.rand(2, 1, 8, 8) > 0.5).float()
    logit = net(x)
    assert heads[0].shape == (2, 2, 8, 8) and logit.shape == (2, 1, 8, 8)
    ce = torch.nn.functional.cross_entropy(heads[0], y[:, 0].long())
    torch.testing.assert_close(torch.nn.functional.binary_cross_entropy_with_logits(logit, y), ce)


def test_mixed_batches_pair_each_real_image_with_its_own_label_flipped_alike():
    from layered_gan.segmenter.self_training import mixed_batches, pseudo_labels

    images = torch.rand(10, 3, 8, 8) * 2 - 1
    labels = (images[:, :1] > 0).float()  # a label that follows the image's content, so a mismatched flip shows
    generated = iter([(torch.full((3, 3, 8, 8), 7.0), torch.full((3, 1, 8, 8), 0.25))] * 20)
    flipped = 0
    for x, y in mixed_batches(generated, images, labels, batch=6, seed=0):
        assert x.shape == (6, 3, 8, 8) and y.shape == (6, 1, 8, 8)
        assert (x[:3] == 7).all() and (y[:3] == 0.25).all()  # the first half: generated pairs
        assert torch.equal(y[3:], (x[3:, :1] > 0).float())
        for xi in x[3:]:
            match = [k for k in range(10) if torch.equal(images[k], xi)]
            flipped += not match and any(torch.equal(images[k].flip(-1), xi) for k in range(10))
    assert 5 < flipped < 55  # about half of the 60 real draws flipped
    with pytest.raises(ValueError, match="expected 3"):  # a full-size generated batch would be half thrown away
        next(mixed_batches(iter([(torch.zeros(6, 3, 8, 8), torch.zeros(6, 1, 8, 8))]), images, labels, 6, 0))
    model = build_segmenter(8, width=4, depth=1)
    out = pseudo_labels(model, images)
    assert torch.equal(out, (predict(model, images) > 0.5).float())


def test_distill_self_training_labels_the_training_images_and_keeps_round_zero(tmp_path, monkeypatch):
    from layered_gan import distill as distill_module
    from layered_gan.config import load_config
    from layered_gan.data.synthetic import build_synthetic
    from layered_gan.cli import distill as distill_main
    from layered_gan.runs import build_models

    monkeypatch.setenv("LAYERED_GAN_CACHE", str(tmp_path / "cache"))
    cfg = load_config("demo", ['data.synthetic={"resolution": 32, "count": 5, "test_count": 6, "seed": 0}',
                               'model={"init": null, "resolution": 16, "z_dim": 8, "w_dim": 8, "n_mlp": 1, '
                               '"channel_base": 64, "channel_max": 8, "variant": "two", "mbstd_group": 4}'])
    build_synthetic(**cfg["data"]["synthetic"], workers=1, progress=False)
    G, _ = build_models(cfg)
    save_checkpoint({"config": cfg, "G_ema": G.state_dict()}, str(tmp_path / "run" / "checkpoint.pt"))
    labelled = []
    real_labels = distill_module.pseudo_labels
    monkeypatch.setattr(distill_module, "pseudo_labels", lambda m, x: labelled.append(x) or real_labels(m, x))
    drawn, real_seed_batches = [], distill_module.seed_batches
    monkeypatch.setattr(distill_module, "seed_batches", lambda seed, src, f, batch, *a: drawn.append(batch) or
                        real_seed_batches(seed, src, f, batch, *a))
    out = tmp_path / "distill"
    result = CliRunner().invoke(distill_main, [
        "--ckpt", str(tmp_path / "run"), "--out", str(out), "--steps", "4", "--batch", "4", "--val-pairs", "8",
        "--every", "4", "--real-check", "3", "--width", "4", "--depth", "2", "--no-histogram", "--max-coverage", "1",
        "--min-coverage", "0", "--self-train", "2", "--self-train-num", "4", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert len(labelled) == 2 and labelled[0].shape == (4, 3, 16, 16)  # the first 4 training images, each round
    assert torch.equal(labelled[0], labelled[1])
    assert drawn == [4, 2, 2]  # self-training rounds draw only the generated half of each batch
    summary = json.load(open(out / "summary.json"))
    rounds = summary["runs"]["0"]["earlier_rounds"]
    assert [r["round"] for r in rounds] == [0, 1] and rounds[0]["real"]["images"] == 6
    assert summary["real_before_self_training"]["per_image"]["fg_iou"][0] == rounds[0]["real"]["per_image"]["fg_iou"]
    assert summary["settings"]["self_train"] == 2 and "before self-training" in result.output
    figures = json.load(open(out / "seed0" / "figures.json"))
    assert 0 <= figures["pseudo_label_coverage"] <= 1 and len(figures["earlier_rounds"]) == 2
