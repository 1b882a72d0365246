import pytest
import torch

from layered_gan.losses import (drift_penalty, gradient_penalty, mask_binarization, mask_max_coverage_hinge,
                                mask_size_hinge, wgan_d_loss, wgan_g_loss)
from layered_gan.networks import channel_widths
from layered_gan.networks.layered import LayeredGenerator
from layered_gan.perturbations import contrast_jitter, random_placement, random_shift
from layered_gan.render import composite


def test_shift_moves_foreground_and_mask_together_with_zeros_entering():
    fg = torch.randn(6, 3, 16, 16) + 5  # no zeros of its own
    mask = torch.rand(6, 1, 16, 16) + 0.1
    fg_s, mask_s, delta = random_shift(fg, mask, 3, generator=torch.Generator().manual_seed(1))
    assert delta.abs().max() <= 3 and len({tuple(d) for d in delta.tolist()}) > 1
    for b, (dy, dx) in enumerate(delta.tolist()):
        for y in range(16):
            for x in range(16):
                sy, sx = y + dy, x + dx
                inside = 0 <= sy < 16 and 0 <= sx < 16
                want_fg = fg[b, :, sy, sx] if inside else torch.zeros(3)
                want_m = mask[b, :, sy, sx] if inside else torch.zeros(1)
                assert torch.equal(fg_s[b, :, y, x], want_fg) and torch.equal(mask_s[b, :, y, x], want_m)


def test_shift_range_covers_both_signs_and_zero_shift_is_identity():
    mask = torch.rand(512, 1, 8, 8)
    _, _, delta = random_shift(mask.expand(-1, 3, -1, -1), mask, 2, generator=torch.Generator().manual_seed(0))
    assert set(delta.flatten().tolist()) == {-2, -1, 0, 1, 2}
    fg, m = torch.randn(2, 3, 8, 8), mask[:2]
    out = random_shift(fg, m, 0)
    assert out[0] is fg and out[1] is m and not out[2].any()


def test_shift_is_differentiable_and_background_untouched_where_mask_is_zero():
    fg = torch.randn(4, 3, 8, 8, requires_grad=True)
    mask = torch.ones(4, 1, 8, 8) * 0.5
    bg = torch.randn(4, 3, 8, 8)
    fg_s, mask_s, delta = random_shift(fg, mask, 2, generator=torch.Generator().manual_seed(3))
    x = composite(bg, fg_s, mask_s)
    outside = mask_s == 0
    assert outside.any()
    assert torch.equal(x[outside.expand_as(x)], bg[outside.expand_as(bg)])
    x.sum().backward()
    assert fg.grad.abs().sum() > 0


def test_placement_scales_and_moves_foreground_and_mask_together():
    fg, mask = torch.randn(64, 3, 32, 32), torch.ones(64, 1, 32, 32)
    fg_p, mask_p, params = random_placement(fg, mask, 0.25, generator=torch.Generator().manual_seed(0))
    assert params[:, 0].min() >= 0.25 and params[:, 0].max() <= 1 and params[:, 0].std() > 0.1
    for (s, ty, tx), m in zip(params.tolist(), mask_p[:, 0]):
        assert abs(ty) <= 1 - s + 1e-6 and abs(tx) <= 1 - s + 1e-6  # the scaled canvas stays inside
        rows, cols = (m > 0.5).nonzero(as_tuple=True)
        # the full-canvas mask becomes the box of side 32 s centred at 16 (1 + t), pixel centres at i + 0.5
        for idx, t in ((rows, ty), (cols, tx)):
            lo, hi = 16 * (1 + t) - 16 * s, 16 * (1 + t) + 16 * s
            assert abs(idx.min().item() + 0.5 - lo) <= 1 and abs(idx.max().item() + 0.5 - hi) <= 1
        assert m.sum().item() == pytest.approx((32 * s) ** 2, rel=0.15, abs=8)
    torch.testing.assert_close(fg_p[mask_p.expand_as(fg_p) == 0], torch.zeros_like(fg_p[mask_p.expand_as(fg_p) == 0]))
    same_fg, same_mask, params = random_placement(fg, torch.rand_like(mask), 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(params, torch.tensor([[1.0, 0.0, 0.0]]).expand(64, -1))
    torch.testing.assert_close(same_fg, fg)


def test_composite_formula():
    b, f, m = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4), torch.rand(2, 1, 4, 4)
    torch.testing.assert_close(composite(b, f, m), (1 - m) * b + m * f)


def test_contrast_jitter_bounds():
    bg = torch.rand(64, 3, 8, 8) * 0.4 + 0.3
    out = contrast_jitter(bg, 0.3, generator=torch.Generator().manual_seed(0))
    flat_in, flat_out = bg.flatten(1), out.flatten(1)
    assert (flat_out.min(1).values >= flat_in.min(1).values - 1e-6).all()
    assert (flat_out.max(1).values <= flat_in.max(1).values + 1e-6).all()
    mean = flat_in.mean(1, keepdim=True)
    # where not clamped, the deviation from the mean is scaled by one factor in [0.7, 1.3] per image
    ratio = (flat_out - mean) / (flat_in - mean)
    factors = ratio.median(1).values
    assert (factors >= 0.7 - 1e-5).all() and (factors <= 1.3 + 1e-5).all() and factors.std() > 0.05
    assert torch.equal(contrast_jitter(bg, 0.0), bg)


def test_loss_terms_against_hand_computation():
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([-2.0, 0.0])
    assert wgan_d_loss(real, fake).item() == pytest.approx(-1.0 - 2.0)
    assert wgan_g_loss(fake).item() == pytest.approx(1.0)
    assert drift_penalty(real).item() == pytest.approx((1 + 9) / 2)
    mask = torch.zeros(2, 1, 2, 2)
    mask[0] = torch.tensor([[0.1, 0.9], [0.5, 0.3]])  # mean 0.45
    mask[1] = torch.tensor([[0.0, 0.2], [0.0, 0.2]])  # mean 0.1
    assert mask_size_hinge(mask, 0.25).item() == pytest.approx((0 + 0.15) / 2)
    assert mask_binarization(mask).item() == pytest.approx((0.1 + 0.1 + 0.5 + 0.3 + 0 + 0.2 + 0 + 0.2) / 8)
    assert mask_max_coverage_hinge(mask, 0.4).item() == pytest.approx(0.05 / 2)


def test_gradient_penalty_on_a_linear_critic():
    w = torch.randn(3, 4, 4)

    def D(x):
        return (x * w).flatten(1).sum(1, keepdim=True)

    real, fake = torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4)
    assert gradient_penalty(D, real, fake).item() == pytest.approx((w.norm().item() - 1) ** 2, rel=1e-5)
    w = w / w.norm()
    assert gradient_penalty(D, real, fake).item() == pytest.approx(0, abs=1e-10)


@pytest.mark.parametrize("variant", ["two", "shared_mapping", "single"])
def test_layered_generator_outputs_layers(variant):
    G = LayeredGenerator(16, z_dim=8, w_dim=8, n_mlp=1, channels=channel_widths(16, 128, 8), variant=variant)
    layers = G(torch.randn(3, 8))
    assert layers.background.shape == layers.foreground.shape == (3, 3, 16, 16)
    assert layers.mask.shape == (3, 1, 16, 16) and 0 <= layers.mask.min() and layers.mask.max() <= 1
    low = G(torch.randn(3, 8), resolution=8)
    assert low.mask.shape[-1] == 8
    names = {n.split(".")[0] for n, _ in G.named_parameters()}
    assert names == {"two": {"fg", "bg"}, "shared_mapping": {"fg", "bg_synthesis"}, "single": {"fg"}}[variant]


@pytest.mark.parametrize("variant", ["two", "shared_mapping"])
def test_init_from_a_stylegan2_generator_copies_both_layers_and_keeps_the_mask_row(variant):
    from layered_gan.networks import Generator
    kw = dict(z_dim=8, w_dim=8, n_mlp=1, channels=channel_widths(16, 128, 8))
    source = Generator(16, **kw)
    with torch.no_grad():
        for p in source.parameters():
            p.add_(torch.randn_like(p) * 0.3)  # away from the shared initialization
    torch.manual_seed(5)
    G = LayeredGenerator(16, variant=variant, **kw)
    mask_row = G.fg.synthesis.to_rgb.weight[3].clone()
    G.init_from(source)
    z = torch.randn(4, 8)
    ws = source.styles(z)
    noise = source.synthesis.make_noise(4, "cpu", torch.Generator().manual_seed(0))
    want = source.synthesis(ws, noise=noise)
    layers = G.synthesize(*G.styles(z), noise=(noise, noise))
    assert torch.allclose(layers.background, want, atol=1e-5)
    assert torch.allclose(layers.foreground, want, atol=1e-5)
    assert torch.equal(G.fg.synthesis.to_rgb.weight[3], mask_row)  # the mask's tRGB row: as initialized
    with pytest.raises(ValueError, match="does not fit"):
        LayeredGenerator(16, **{**kw, "channels": channel_widths(16, 256, 16)}).init_from(source)


def test_empty_background_init_draws_what_labels4free_background_generator_draws():
    from layered_gan.networks import Generator
    from layered_gan.networks.alpha_network import BackgroundGenerator
    kw = dict(z_dim=8, w_dim=8, n_mlp=1, channels=channel_widths(16, 128, 8))
    source = Generator(16, **kw)
    with torch.no_grad():
        for p in source.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    G = LayeredGenerator(16, **kw)
    G.init_from(source, empty_background=True)
    z = torch.randn(4, 8)
    ws = source.styles(z)
    noise = source.synthesis.make_noise(4, "cpu", torch.Generator().manual_seed(0))
    layers = G.synthesize(*G.styles(z), noise=(noise, noise))
    want = BackgroundGenerator(source, zero="conv")(ws, noise=noise)
    assert torch.allclose(layers.background, want, atol=1e-5)
    assert not torch.allclose(layers.background, source.synthesis(ws, noise=noise), atol=1e-3)
    assert torch.allclose(layers.foreground, source.synthesis(ws, noise=noise), atol=1e-5)


def test_rounded_shift_draw_halves_the_end_values():
    """perturbed-seg draws round(U(-δ, δ)): P(±δ) = 1 / (4δ), the inner values 1 / (2δ); here δ = 2."""
    from layered_gan.perturbations import draw_shift
    delta = draw_shift(20000, 2, "rounded", torch.Generator().manual_seed(0)).flatten()
    freq = {v: (delta == v).float().mean().item() for v in range(-2, 3)}
    assert set(delta.tolist()) == set(range(-2, 3))
    assert freq == pytest.approx({-2: 0.125, -1: 0.25, 0: 0.25, 1: 0.25, 2: 0.125}, abs=0.01)
    uniform = draw_shift(20000, 2, "integer", torch.Generator().manual_seed(0)).flatten()
    assert (uniform == 2).float().mean().item() == pytest.approx(0.2, abs=0.01)


def test_channel_contrast_jitter_against_a_hand_computation():
    """perturbed-seg: mean, min and max per channel; channel 0 in [0, 2] (mean 1), channel 1 all 5."""
    bg = torch.zeros(1, 2, 1, 3)
    bg[0, 0, 0] = torch.tensor([0.0, 1.0, 2.0])
    bg[0, 1] = 5.0
    c = 1 + (torch.rand(1, generator=torch.Generator().manual_seed(0)).item() * 2 - 1) * 0.3
    out = contrast_jitter(bg, 0.3, torch.Generator().manual_seed(0), stats="channel")
    want0 = [max(0.0, min(2.0, 1 + c * (v - 1))) for v in (0.0, 1.0, 2.0)]
    torch.testing.assert_close(out[0, 0, 0], torch.tensor(want0))
    torch.testing.assert_close(out[0, 1], bg[0, 1])  # its own mean: unchanged
    image = contrast_jitter(bg, 0.3, torch.Generator().manual_seed(0), stats="image")
    assert not torch.allclose(image[0, 1], bg[0, 1])  # one mean over both channels moves channel 1
