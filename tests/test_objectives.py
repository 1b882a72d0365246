import pytest
import torch

from layered_gan.training.objectives import StyleGAN2, make_objective
from layered_gan.training.schedule import Phase, phase_at

MODEL = {"resolution": 16, "z_dim": 8, "w_dim": 8, "n_mlp": 1, "channel_base": 128, "channel_max": 8}


def objective(**loss):
    cfg = {"mode": "stylegan2", "model": MODEL, "mixing_prob": 0.9,
           "loss": {"type": "logistic", "r1_gamma": 10.0, "r1_interval": 4, "pl_weight": 0.0, "pl_interval": 2,
                    "gp_lambda": 10.0, "drift": 0.001, **loss}}
    obj = make_objective(cfg)
    torch.manual_seed(0)
    G, D = obj.build()
    return obj, G, D, phase_at(0, {"phase_kimg": 0, "batch": 4, "lr": 0.002}, 16)


def test_lazy_r1_runs_every_interval_with_the_interval_as_weight():
    obj, G, D, phase = objective()
    real = torch.randn(4, 3, 16, 16)
    seen = []
    for step in range(8):
        loss, stats = obj.d_loss(G, D, real, phase, torch.Generator().manual_seed(step), step)
        if "loss/r1" in stats:
            seen.append(step)
            expected = stats["loss/d_logistic"] + 10.0 / 2 * stats["loss/r1"] * 4
            torch.testing.assert_close(loss, expected)
        else:
            torch.testing.assert_close(loss, stats["loss/d_logistic"])
    assert seen == [0, 4]


def test_path_length_regularization_tracks_its_mean():
    obj, G, D, phase = objective(pl_weight=2.0)
    assert float(obj.pl_mean) == 0
    loss, stats, _ = obj.g_loss(G, D, 4, phase, torch.Generator().manual_seed(0), 0, "cpu")
    assert "loss/path_length" in stats and stats["loss/path_length"] > 0
    assert float(obj.pl_mean) > 0
    torch.testing.assert_close(loss, stats["loss/g_nonsaturating"] + 2.0 * 2 * stats["loss/path_length"])
    _, stats, _ = obj.g_loss(G, D, 4, phase, torch.Generator().manual_seed(1), 1, "cpu")
    assert "loss/path_length" not in stats  # lazy: every pl_interval steps
    state = obj.state_dict()
    fresh = StyleGAN2(obj.cfg)
    fresh.load_state_dict(state)
    assert float(fresh.pl_mean) == float(obj.pl_mean)


def test_wgan_gp_single_output_baseline():
    obj, G, D, phase = objective(type="wgan-gp")
    _, stats = obj.d_loss(G, D, torch.randn(4, 3, 16, 16), phase, torch.Generator().manual_seed(0), 0)
    assert {"loss/d_wgan", "loss/gradient_penalty", "loss/drift"} <= set(stats)
    _, stats, _ = obj.g_loss(G, D, 4, phase, torch.Generator().manual_seed(0), 0, "cpu")
    assert set(stats) == {"loss/g_wgan"}


def test_unknown_mode_is_named():
    with pytest.raises(ValueError, match="'gan3' is not one of perturb, stylegan2, labels4free"):
        make_objective({"mode": "gan3"})


def test_perturbgan_monitors_reveal_layout_collapse():
    from layered_gan.training.objectives import PerturbGAN

    same = torch.zeros(4, 1, 8, 8)
    same[:, :, 2:5, 2:5] = 1
    m = PerturbGAN.monitors({"mask": same, "fake": torch.randn(4, 3, 8, 8)})
    assert m["mask/pairwise_iou"] == pytest.approx(1.0) and m["mask/std_over_samples"] == 0
    apart = torch.zeros(4, 1, 8, 8)
    for i in range(4):
        apart[i, :, 2 * i: 2 * i + 2, :2] = 1  # disjoint, all touching the border
    m = PerturbGAN.monitors({"mask": apart, "fake": torch.randn(4, 3, 8, 8)})
    assert m["mask/pairwise_iou"] == 0 and m["mask/border_share"] > 1
    assert m["mask/soft_share"] == 0 and m["mask/mean"] == pytest.approx(4 / 64)


def perturb_objective(model=None, **loss):
    cfg = {"mode": "perturb", "model": {**MODEL, **(model or {})}, "mixing_prob": 0.0, "perturb": {"shift_range": 0.125, "bg_jitter": 0.0},
           "loss": {"type": "wgan-gp", "gp_lambda": 10.0, "drift": 0.001, "r1_gamma": 10.0, "r1_interval": 4,
                    "eta": 0.25, "size_weight": 2.0, "binarization_weight": 3.0, "max_coverage": 0.6,
                    "max_coverage_weight": 0.0, "binarize_from": 0, **loss}}
    obj = make_objective(cfg)
    torch.manual_seed(0)
    G, D = obj.build()
    return obj, G, D


def test_perturbgan_critic_choice_and_binarization_start():
    """loss.type picks WGAN-GP (the paper's) or logistic + lazy R1; binarize_from delays the binarization term."""
    for kind, d_terms, g_term in (("wgan-gp", {"loss/d_wgan", "loss/gradient_penalty"}, "loss/g_wgan"),
                                  ("logistic", {"loss/d_logistic", "loss/r1"}, "loss/g_nonsaturating")):
        obj, G, D = perturb_objective(type=kind, binarize_from=16)
        for res, weight in ((8, 0.0), (16, 3.0)):
            phase = Phase(0, res, 1.0, 4, 0.002, 0.0)
            _, stats = obj.d_loss(G, D, torch.randn(4, 3, res, res), phase, torch.Generator().manual_seed(0), 0)
            assert d_terms <= set(stats)
            loss, stats, _ = obj.g_loss(G, D, 4, phase, torch.Generator().manual_seed(0), 0, "cpu")
            expected = stats[g_term] + 2.0 * stats["loss/mask_size"] + weight * stats["loss/binarization"]
            torch.testing.assert_close(loss, expected)
    with pytest.raises(ValueError, match="loss.type must be"):
        obj, G, D = perturb_objective(type="least-squares")
        obj.d_loss(G, D, torch.randn(4, 3, 16, 16), phase, torch.Generator().manual_seed(0), 0)


def test_perturbgan_model_init_starts_both_layers_and_the_critic_from_a_stylegan2_run(tmp_path):
    from layered_gan.checkpoint import save_checkpoint
    obj, G0, D0, _ = objective()
    with torch.no_grad():
        for p in list(G0.parameters()) + list(D0.parameters()):
            p.add_(torch.randn_like(p) * 0.1)  # away from any fresh initialization
    save_checkpoint({"config": obj.cfg, "G_ema": G0.state_dict(), "D": D0.state_dict()}, str(tmp_path / "checkpoint.pt"))
    obj, G, D = perturb_objective(model={"init": str(tmp_path)})
    assert any(not torch.equal(D.state_dict()[k], v) for k, v in D0.state_dict().items())  # build(): fresh weights
    obj.initialize(G, D)  # a fresh run's start (the training loop calls it unless resuming)
    for name, value in D0.state_dict().items():
        assert torch.equal(D.state_dict()[name], value), name
    for layer in (G.fg, G.bg):
        for (name, value), source in zip(layer.mapping.state_dict().items(), G0.mapping.state_dict().values()):
            assert torch.equal(value, source), name
    assert torch.equal(G.bg.synthesis.to_rgb.weight, G0.synthesis.to_rgb.weight)
    save_checkpoint({"config": {**obj.cfg, "mode": "perturb"}, "G_ema": {}, "D": {}}, str(tmp_path / "p.pt"))
    obj, G, D = perturb_objective(model={"init": str(tmp_path / "p.pt")})
    with pytest.raises(ValueError, match="not a StyleGAN2 one"):
        obj.initialize(G, D)
    perturb_objective(model={"init": str(tmp_path / "missing.pt")})  # building (to load a run) reads no init


def test_lazy_adam_ratios_per_mode():
    """StyleGAN2 sec. 3.1: c = k / (k + 1) per lazily regularized network; 1 when lazy_adam is off or not lazy."""
    from layered_gan.training.loop import lazy_ratios
    obj = objective(pl_weight=2.0)[0]
    assert lazy_ratios({"lazy_adam": True}, obj) == {"G": 2 / 3, "D": 4 / 5}
    assert lazy_ratios({"lazy_adam": False}, obj) == {"G": 1, "D": 1}
    assert lazy_ratios({"lazy_adam": True}, objective()[0]) == {"G": 1, "D": 4 / 5}  # no path-length term
    assert lazy_ratios({"lazy_adam": True}, objective(type="wgan-gp")[0]) == {"G": 1, "D": 1}  # WGAN-GP: not lazy


def test_mixing_crossover_is_drawn_among_the_active_layers():
    """At 8 px a 16-px G uses 2 log2(8) - 2 = 4 of its 6 style slots: the crossover lies in 1..3, so it mixes."""
    from layered_gan.training.objectives.base import mixing_latents
    _, G, _, _ = objective()
    rng = torch.Generator().manual_seed(0)
    drawn = {mixing_latents(G, 1, 1.0, "cpu", rng, 8)[2] for _ in range(200)}
    assert drawn == {1, 2, 3}
    assert {mixing_latents(G, 1, 1.0, "cpu", rng, 16)[2] for _ in range(200)} == {1, 2, 3, 4, 5}


@pytest.mark.parametrize("where", ["unshifted", "shifted"])
def test_perturbgan_mask_terms_read_the_mask_the_setting_names(where, monkeypatch):
    """perturb.mask_terms: eq. 3 on m (the paper) or on the shifted m' (perturbed-seg's code)."""
    from layered_gan.training.objectives import perturbgan
    obj, G, D = perturb_objective()
    obj.pcfg["mask_terms"] = where
    shifted = torch.full((4, 1, 16, 16), 0.125)
    monkeypatch.setattr(perturbgan, "perturbed_composite", lambda layers, pcfg, rng: (layers.foreground, shifted))
    phase = Phase(0, 16, 1.0, 4, 0.002, 0.0)
    _, stats, extras = obj.g_loss(G, D, 4, phase, torch.Generator().manual_seed(0), 0, "cpu")
    assert torch.equal(extras["mask"], shifted) == (where == "shifted")
    assert (stats["loss/mask_size"].item() == pytest.approx(0.125)) == (where == "shifted")  # relu(0.25 - 0.125)
