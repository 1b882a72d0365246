import pytest
import torch

from cuda_ops import setup_filter, upfirdn2d
from layered_gan.losses import r1_penalty
from layered_gan.networks import Discriminator, Generator, channel_widths
from layered_gan.networks.layers import conv2d_resample, fir_upsample2d, modulated_conv2d

SMALL = dict(channel_base=256, channel_max=16)


def small_g(res=32, **kw):
    return Generator(res, z_dim=16, w_dim=16, n_mlp=2, channels=channel_widths(res, **SMALL), **kw)


def small_d(res=32, **kw):
    return Discriminator(res, channels=channel_widths(res, **SMALL), **kw)


def with_noise_strength(G, value=0.5):
    """Fresh networks have zero noise strength; give it a value so noise matters in the test."""
    for name, p in G.named_parameters():
        if name.endswith("noise_strength"):
            p.data.fill_(value)
    return G


def test_channel_widths_config_f():
    assert channel_widths(1024) == {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128, 512: 64, 1024: 32}
    assert channel_widths(64, multiplier=0.5)[64] == 256
    with pytest.raises(ValueError, match="power of two"):
        channel_widths(48)


@pytest.mark.parametrize("res", [8, 16, 32, 64, 128, 256, 512, 1024])
def test_shapes_at_every_resolution(res):
    G = Generator(res, z_dim=8, w_dim=8, n_mlp=1, channels=channel_widths(res, channel_base=64, channel_max=4))
    D = Discriminator(res, channels=channel_widths(res, channel_base=64, channel_max=4))
    log2 = res.bit_length() - 1
    assert G.n_latent == 2 * log2 - 2
    assert [n.shape[-1] for n in G.synthesis.make_noise()] == [4] + [2 ** (i // 2 + 3) for i in range(2 * log2 - 4)]
    with torch.no_grad():
        img, ws = G(torch.randn(2, 8), return_ws=True)
        assert img.shape == (2, 3, res, res) and ws.shape == (2, G.n_latent, 8)
        assert D(img).shape == (2, 1)


@pytest.mark.parametrize("formulation", ["fast", "plain"])
def test_demodulation_gives_unit_variance_outputs(formulation):
    """Demodulated weights have unit L2 norm per output channel, so unit-variance iid input keeps unit variance."""
    weight = torch.randn(64, 32, 3, 3)
    styles = torch.rand(4, 32) * 3 + 0.1
    x = torch.randn(4, 32, 64, 64)
    y = modulated_conv2d(x, weight, styles, demodulate=True, formulation=formulation)
    std = y[:, :, 1:-1, 1:-1].std(dim=[2, 3])
    assert torch.allclose(std, torch.ones_like(std), atol=0.08), std.min()
    y = modulated_conv2d(x, weight, styles, demodulate=False, formulation=formulation)
    assert y.std() > 5  # without demodulation the scale of the weights and styles shows


@pytest.mark.parametrize("formulation", ["fast", "fused"])
@pytest.mark.parametrize("conv_clamp", [None, 0.5])
def test_formulations_agree_with_plain(formulation, conv_clamp):
    """'fast' and 'fused' compute what 'plain' computes: images, scores and R1's gradients (a double backward
    through fused's in-place activations and the bias inside its convolutions), in float64."""
    G = with_noise_strength(small_g(32, formulation=formulation, conv_clamp=conv_clamp))
    Gp = small_g(32, formulation="plain", conv_clamp=conv_clamp)
    D = small_d(32, formulation=formulation, conv_clamp=conv_clamp)
    Dp = small_d(32, formulation="plain", conv_clamp=conv_clamp)
    with torch.no_grad():
        for name, p in [*G.named_parameters(), *D.named_parameters()]:
            if name.endswith("bias"):
                p.normal_()  # zero at initialization: make the biases count
    Gp.load_state_dict(G.state_dict())
    Dp.load_state_dict(D.state_dict())
    G, Gp, D, Dp = G.double(), Gp.double(), D.double(), Dp.double()
    z = torch.randn(3, 16, dtype=torch.float64)
    noise = [n.double() for n in G.synthesis.make_noise(3)]
    img = G(z, noise=noise)
    torch.testing.assert_close(img, Gp(z, noise=noise), rtol=1e-9, atol=1e-9)
    grads = []
    for net in (D, Dp):
        x = img.detach().requires_grad_(True)
        score = net(x)
        penalty = r1_penalty(x, score)
        grads.append([score, *torch.autograd.grad(penalty, list(net.parameters()), allow_unused=True,
                                                   materialize_grads=True)])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_mixing_and_truncation_semantics():
    G = small_g(32)
    z1, z2 = torch.randn(2, 16), torch.randn(2, 16)
    w1, w2 = G.mapping(z1), G.mapping(z2)
    ws = G.styles(z1, z2, inject_index=3)
    assert torch.equal(ws[:, :3], w1[:, None].expand(-1, 3, -1))
    assert torch.equal(ws[:, 3:], w2[:, None].expand(-1, G.n_latent - 3, -1))
    center = torch.randn(16)
    torch.testing.assert_close(G.styles(z1, truncation=0.0, truncation_w=center), center.expand(2, G.n_latent, 16))
    torch.testing.assert_close(G.styles(z1, truncation=0.5, truncation_w=center)[:, 0], (w1 + center) / 2)
    G.w_avg.copy_(center)  # default centre: the tracked average
    torch.testing.assert_close(G.styles(z1, truncation=0.25)[:, 0], center + 0.25 * (w1 - center))
    with pytest.raises(ValueError, match="inject_index"):
        G.styles(z1, z2, inject_index=G.n_latent)
    # In the image: the coarse layers follow z1 whatever z2 is, so mixing changes the output only through z2.
    noise = G.synthesis.make_noise(2)
    a = G(z1, z2, inject_index=3, noise=noise)
    b = G(z1, torch.randn(2, 16), inject_index=3, noise=noise)
    assert not torch.allclose(a, b)
    torch.testing.assert_close(G(z1, z1, inject_index=3, noise=noise), G(z1, noise=noise))


def test_track_w_avg_moves_towards_batch_mean():
    G = small_g(16)
    w = torch.ones(4, 16)
    G.track_w_avg(w, beta=0.9)
    torch.testing.assert_close(G.w_avg, torch.full([16], 0.1))


def test_fixed_seed_and_explicit_noise_are_reproducible():
    torch.manual_seed(1)
    G1 = with_noise_strength(small_g(32))
    torch.manual_seed(1)
    G2 = with_noise_strength(small_g(32))
    z = torch.randn(2, 16)
    noise = G1.synthesis.make_noise(2, generator=torch.Generator().manual_seed(5))
    assert torch.equal(G1(z, noise=noise), G2(z, noise=noise))
    assert not torch.equal(G1(z), G1(z))  # fresh noise each call otherwise


def test_features_are_exposed():
    G = small_g(32)
    img, feats = G.synthesis(G.styles(torch.randn(2, 16)), return_features=True)
    assert [f.shape[-1] for f in feats] == [4, 8, 16, 32]
    assert [f.shape[1] for f in feats] == [16, 16, 16, 8]
    _, dfeats = small_d(32)(img, return_features=True)
    assert {k: v.shape[-1] for k, v in dfeats.items()} == {32: 32, 16: 16, 8: 8, 4: 4}


@pytest.mark.parametrize("formulation", ["fast", "plain"])
def test_gradient_penalty_backpropagates_through_g_and_d(formulation):
    G, D = small_g(16, formulation=formulation), small_d(16)
    img = G(torch.randn(4, 16))
    penalty = r1_penalty(img, D(img))
    penalty.backward()
    for net in (G, D):
        grads = [p.grad for n, p in net.named_parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
    assert G.synthesis.blocks[-1].conv0.weight.grad.abs().sum() > 0
    assert D.from_rgb["16"].weight.grad.abs().sum() > 0


def test_fade_in_at_alpha_zero_is_the_upsampled_lower_resolution():
    G = with_noise_strength(small_g(32))
    ws = G.styles(torch.randn(2, 16))
    noise = G.synthesis.make_noise(2)
    low = G.synthesis(ws, noise=noise, resolution=16)
    faded = G.synthesis(ws, noise=noise, resolution=32, alpha=0.0)
    assert low.shape[-1] == 16 and faded.shape[-1] == 32
    torch.testing.assert_close(faded, G.synthesis.upsample_rgb(low))
    full = G.synthesis(ws, noise=noise)
    half = G.synthesis(ws, noise=noise, resolution=32, alpha=0.5)
    torch.testing.assert_close(half, (faded + full) / 2)


def test_discriminator_fade_in():
    D = small_d(32, progressive=True)
    img = torch.randn(4, 3, 32, 32)
    down = upfirdn2d(img, D.resample_filter, down=2, padding=1)
    torch.testing.assert_close(D(img, alpha=0.0), D(down))
    assert not torch.allclose(D(img, alpha=1.0), D(down))
    assert D(torch.randn(4, 3, 8, 8)).shape == (4, 1)
    with pytest.raises(ValueError, match="progressive=True"):
        small_d(32)(torch.randn(2, 3, 16, 16))


def test_conv2d_resample_adds_a_bias_only_where_its_convolution_ends_it():
    """The bias goes into the last convolution (fused ConvLayer); after up-sampling the FIR follows it: refused."""
    x, w, b = torch.randn(2, 3, 8, 8), torch.randn(4, 3, 3, 3), torch.randn(4)
    f = setup_filter([1, 3, 3, 1])
    for down in (1, 2):
        expected = conv2d_resample(x, w, f, down=down) + b[:, None, None]
        torch.testing.assert_close(conv2d_resample(x, w, f, down=down, bias=b), expected)
    with pytest.raises(ValueError, match="bias"):
        conv2d_resample(x, w.transpose(0, 1), f, up=2, bias=torch.randn(3))
    with pytest.raises(ValueError, match="bias"):
        conv2d_resample(x, w, f, down=2, bias=b, formulation="plain")


@pytest.mark.parametrize("separable", [True, False])
def test_fir_upsample2d_is_the_zero_inserted_fir(separable):
    """formulation='fused' up-samples tRGB images by a transposed depthwise convolution: the same as upfirdn2d's
    zero insertion and FIR, for an asymmetric filter too (orientation), values and gradients."""
    f = torch.tensor([1.0, 2.0, 4.0, -1.0], dtype=torch.float64)
    f = f if separable else f.outer(torch.tensor([0.5, -1.0, 3.0, 2.0], dtype=torch.float64))
    x = torch.randn(2, 3, 5, 7, dtype=torch.float64, requires_grad=True)
    expected = upfirdn2d(x, f, up=2, padding=(2, 1, 2, 1), gain=4)
    got = fir_upsample2d(x, f)
    torch.testing.assert_close(got, expected)
    g = torch.randn_like(expected)
    torch.testing.assert_close(torch.autograd.grad(got, x, g), torch.autograd.grad(expected, x, g))
    with pytest.raises(ValueError, match="4-tap"):
        fir_upsample2d(x, torch.ones(3, dtype=torch.float64))
