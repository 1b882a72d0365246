"""Checkpoints of the widely used PyTorch StyleGAN2 port ("rosinality" layout) <-> our networks.

NVIDIA's own pickles (TensorFlow and stylegan2-ada-pytorch) are read by `nvidia_pickles.read_nvidia_pickle`
into this same layout (plus an `nvidia` entry for what the layout cannot hold: conv_clamp, the
minibatch-stddev group); `runs.read_model_file` tells the formats apart by content.

Such a file is a `torch.save` dict holding `g_ema` (and often `g`, `d`, optimizer states, `args`,
an `argparse.Namespace`, and `ada_aug_p`); converted official weights hold `g_ema` and `latent_avg`.
Everything about the architecture is read from the tensors: resolution, style dimension, mapping
depth, every layer's width, the FIR filter. The mapping is strict: every tensor of the state dict is
consumed, shapes are checked, and the first mismatch is named.

The layouts differ in four places: the port stores modulated conv weights as [1, O, I, k, k]
(ours [O, I, k, k]); its up-sampling convs run a transposed convolution on the stored weight where
ours correlate (the weight is flipped in both spatial axes); noise strengths are [1] (ours a
scalar); tRGB biases are [1, C, 1, 1] (ours [C]). Its fixed noise buffers (`noises.noise_*`, used
with `randomize_noise=False`) come back as a list for `noise=`.

    G, D, noise = load_port("550000.pt", discriminator=True)  # the port's layout -> our networks
    save_port("exported.pt", G, D)                             # our networks -> the port's layout

`runs.load_stylegan2` reads a port file, an NVIDIA pickle or a `stylegan2_*` run of ours.
"""

import argparse
import math
import os
from collections import namedtuple

import torch

from cuda_ops import setup_filter

from .. import rng
from ..checkpoint import load_checkpoint, save_checkpoint
from ..errors import BadValue, MissingPath
from .stylegan2 import Discriminator, Generator

PORT_LR_MLP = 0.01  # the port's mapping learning-rate multiplier (not stored in its checkpoints)

PortModels = namedtuple("PortModels", "G D noise")

# How a tensor changes between the layouts: (port -> ours, ours -> port).
_CONVERT = {
    "same": (lambda t: t, lambda t: t),
    "modconv": (lambda t: t[0], lambda t: t[None]),
    "upconv": (lambda t: t[0].flip([2, 3]), lambda t: t.flip([2, 3])[None]),
    "noise": (lambda t: t.reshape([]), lambda t: t.reshape(1)),
    "rgb_bias": (lambda t: t.reshape(-1), lambda t: t.reshape(1, -1, 1, 1)),
}


def read_port_checkpoint(path):
    """The checkpoint dict, read with weights_only=True and the port's `args` (argparse.Namespace) allow-listed."""
    if not os.path.isfile(path):
        raise MissingPath(f"checkpoint {path} does not exist")
    with torch.serialization.safe_globals([argparse.Namespace]):
        try:
            return load_checkpoint(path)
        except ValueError as exc:
            raise BadValue(f"{exc} (nor is it an NVIDIA StyleGAN2 pickle)") from None


def _modconv_plan(port, ours, kind="modconv", noise=True):
    plan = [(f"{port}.conv.weight", f"{ours}.weight", kind),
            (f"{port}.conv.modulation.weight", f"{ours}.affine.weight", "same"),
            (f"{port}.conv.modulation.bias", f"{ours}.affine.bias", "same")]
    if noise:
        return plan + [(f"{port}.noise.weight", f"{ours}.noise_strength", "noise"),
                       (f"{port}.activate.bias", f"{ours}.bias", "same")]
    return plan + [(f"{port}.bias", f"{ours}.bias", "rgb_bias")]


def _generator_plan(n_mlp, num_blocks):
    """[(port name, our name, conversion)] for every tensor of a generator; then {port kernel name: gain}."""
    plan = [(f"style.{i + 1}.{p}", f"mapping.layers.{i}.{p}", "same") for i in range(n_mlp) for p in ("weight", "bias")]
    plan += [("input.input", "synthesis.const", "same")]
    plan += _modconv_plan("conv1", "synthesis.conv") + _modconv_plan("to_rgb1", "synthesis.to_rgb", noise=False)
    kernels = {}
    for i in range(num_blocks):
        ours = f"synthesis.blocks.{i}"
        plan += _modconv_plan(f"convs.{2 * i}", f"{ours}.conv0", kind="upconv")
        plan += _modconv_plan(f"convs.{2 * i + 1}", f"{ours}.conv1")
        plan += _modconv_plan(f"to_rgbs.{i}", f"{ours}.to_rgb", noise=False)
        kernels.update({f"convs.{2 * i}.conv.blur.kernel": 4, f"to_rgbs.{i}.upsample.kernel": 4})
    return plan, kernels


def _discriminator_plan(resolution):
    plan = [("convs.0.0.weight", f"from_rgb.{resolution}.weight", "same"),
            ("convs.0.1.bias", f"from_rgb.{resolution}.bias", "same")]
    kernels = {}
    for k in range(1, int(math.log2(resolution)) - 1):
        ours = f"blocks.{resolution >> (k - 1)}"
        plan += [(f"convs.{k}.conv1.0.weight", f"{ours}.conv0.weight", "same"),
                 (f"convs.{k}.conv1.1.bias", f"{ours}.conv0.bias", "same"),
                 (f"convs.{k}.conv2.1.weight", f"{ours}.conv1.weight", "same"),
                 (f"convs.{k}.conv2.2.bias", f"{ours}.conv1.bias", "same"),
                 (f"convs.{k}.skip.1.weight", f"{ours}.skip.weight", "same")]
        kernels.update({f"convs.{k}.conv2.0.kernel": 1, f"convs.{k}.skip.0.kernel": 1})
    plan += [("final_conv.0.weight", "final_conv.weight", "same"), ("final_conv.1.bias", "final_conv.bias", "same"),
             ("final_linear.0.weight", "final_fc.weight", "same"), ("final_linear.0.bias", "final_fc.bias", "same"),
             ("final_linear.1.weight", "out.weight", "same"), ("final_linear.1.bias", "out.bias", "same")]
    return plan, kernels


def _shape(state, key, what):
    if key not in state:
        raise BadValue(f"{what}: tensor {key!r} is missing; is this a StyleGAN2-port state dict?")
    return tuple(state[key].shape)


def _filter_from_kernel(state, key, gain, what):
    """The 1-D FIR filter behind a stored 2-D kernel (outer(f, f) / sum^2 x gain)."""
    _shape(state, key, what)
    return tuple((state[key].sum(0) / gain).tolist())


def _kernel(resample_filter, gain):
    f = setup_filter(resample_filter)
    return f.outer(f) * gain


def _load_strict(module, state, plan, kernels, resample_filter, what, keep=()):
    """Copy state into module by plan: every tensor consumed, shapes checked, the first mismatch named.

    keep: our tensors the port does not store (they keep their values).
    """
    ours = module.state_dict()
    converted = {k: ours[k] for k in keep}
    for port_key, our_key, kind in plan:
        found = _shape(state, port_key, what)
        expected = tuple(_CONVERT[kind][1](ours[our_key]).shape)
        if found != expected:
            raise BadValue(f"{what}: {port_key} has shape {list(found)}, expected {list(expected)} "
                           f"(for {our_key} of the architecture read from the other tensors)")
        converted[our_key] = _CONVERT[kind][0](state[port_key].float())
    for key, gain in kernels.items():
        expected = _kernel(resample_filter, gain)
        if _shape(state, key, what) != tuple(expected.shape) or not torch.allclose(state[key].float(), expected):
            raise BadValue(f"{what}: {key} is not the FIR kernel the other kernels imply")
    used = {p for p, _, _ in plan} | set(kernels)
    left = [k for k in state if k not in used]
    if left:
        raise BadValue(f"{what}: unexpected tensor {left[0]!r} ({len(left)} left over); the architecture read "
                       "from the other tensors has no place for it")
    module.load_state_dict(converted)  # strict: a tensor of ours the plan does not fill raises here
    return module


def generator_from_port(state, latent_avg=None, formulation="fast", what="g_ema", conv_clamp=None, num_fp16_res=0):
    """(Generator, fixed noise list or None) from a port `g_ema` state dict.

    Without latent_avg the truncation centre is the mean w of 4096 latents (seed 0), as the port's
    scripts compute it. conv_clamp, num_fp16_res: the stylegan2-ada settings the port layout does not store.
    """
    n_mlp = sum(1 for k in state if k.startswith("style.") and k.endswith(".weight"))
    if n_mlp == 0:
        raise BadValue(f"{what}: no mapping layers (style.N.weight); is this a StyleGAN2-port generator?")
    w_dim, z_dim = _shape(state, "style.1.weight", what)
    num_blocks = sum(1 for k in state if k.startswith("to_rgbs.") and k.endswith(".conv.weight"))
    channels = {4: _shape(state, "input.input", what)[1]}
    channels.update({2 ** (i + 3): _shape(state, f"convs.{2 * i}.conv.weight", what)[1] for i in range(num_blocks)})
    img_channels = _shape(state, "to_rgb1.conv.weight", what)[1]
    resample_filter = _filter_from_kernel(state, "to_rgbs.0.upsample.kernel", 4, what)
    G = Generator(2 ** (num_blocks + 2), z_dim, w_dim, n_mlp, PORT_LR_MLP, channels, img_channels, resample_filter,
                  formulation, conv_clamp, num_fp16_res)
    noise_keys = [f"noises.noise_{j}" for j in range(G.synthesis.num_noise)]
    noise = None
    if noise_keys[0] in state:
        for key, size in zip(noise_keys, G.synthesis.noise_shapes()):
            if _shape(state, key, what) != (1, 1, size, size):
                raise BadValue(f"{what}: {key} has shape {list(state[key].shape)}, expected [1, 1, {size}, {size}]")
        noise = [state[k].float() for k in noise_keys]
        state = {k: v for k, v in state.items() if k not in noise_keys}
    _load_strict(G, state, *_generator_plan(n_mlp, num_blocks), resample_filter, what, keep=["w_avg"])
    if latent_avg is None:
        G.w_avg.copy_(G.mean_w(4096, rng.generator(0)))
    elif latent_avg.numel() != w_dim:
        raise BadValue(f"latent_avg has shape {list(latent_avg.shape)}, expected [{w_dim}] (the style dimension)")
    else:
        G.w_avg.copy_(latent_avg.reshape(-1))
    return G, noise


def discriminator_from_port(state, mbstd_group=4, formulation="fast", what="d", conv_clamp=None, num_fp16_res=0):
    """Discriminator from a port `d` state dict (the group size of minibatch stddev is not stored: default 4)."""
    from_rgb = _shape(state, "convs.0.0.weight", what)
    num_blocks = sum(1 for k in state if k.startswith("convs.") and k.endswith(".conv1.0.weight"))
    resolution = 2 ** (num_blocks + 2)
    channels = {resolution: from_rgb[0], 4: _shape(state, "final_conv.0.weight", what)[0]}
    channels.update({resolution >> k: _shape(state, f"convs.{k}.conv2.1.weight", what)[0]
                     for k in range(1, num_blocks)})
    mbstd_features = _shape(state, "final_conv.0.weight", what)[1] - channels[4]
    resample_filter = _filter_from_kernel(state, "convs.1.skip.0.kernel", 1, what)
    D = Discriminator(resolution, channels, from_rgb[1], mbstd_group, mbstd_features, resample_filter,
                      formulation=formulation, conv_clamp=conv_clamp, num_fp16_res=num_fp16_res)
    return _load_strict(D, state, *_discriminator_plan(resolution), resample_filter, what)


def _export(module, plan, kernels, resample_filter):
    ours = module.state_dict()
    state = {port_key: _CONVERT[kind][1](ours[our_key]).detach().clone() for port_key, our_key, kind in plan}
    return {**state, **{k: _kernel(resample_filter, gain) for k, gain in kernels.items()}}


def generator_to_port(G, noise=None):
    """The port's `g_ema` state dict of our Generator; noise: the fixed noise buffers (default: seed-0 Gaussian)."""
    if G.z_dim != G.synthesis.w_dim:
        raise BadValue(f"the port's generator needs z_dim == w_dim; this one has {G.z_dim} and {G.synthesis.w_dim}")
    num_blocks = len(G.synthesis.blocks)
    state = _export(G, *_generator_plan(len(G.mapping.layers), num_blocks), G.synthesis.resample_filter)
    for i, layer in enumerate(G.mapping.layers):  # same effective weights under the port's lr multiplier
        for p in ("weight", "bias"):
            state[f"style.{i + 1}.{p}"] *= layer.lr_mul / PORT_LR_MLP
    noise = noise or G.make_noise(1, G.w_avg.device, rng.generator(0))
    return {**state, **{f"noises.noise_{j}": n[:1].detach().clone() for j, n in enumerate(noise)}}


def discriminator_to_port(D):
    """The port's `d` state dict of our Discriminator (a progressive one keeps only its full-resolution fromRGB)."""
    return _export(D, *_discriminator_plan(D.resolution), D.resample_filter)


def save_port(path, G, D=None, noise=None):
    """Write G (and D) as a port checkpoint: `g_ema`, `latent_avg` (our w_avg) and `d`."""
    state = {"g_ema": generator_to_port(G, noise), "latent_avg": G.w_avg.detach().clone()}
    if D is not None:
        state["d"] = discriminator_to_port(D)
    save_checkpoint(state, path)


def load_port(path, discriminator=False, formulation="fast"):
    """PortModels(G, D or None, the fixed noise or None) from a port checkpoint file."""
    return port_models(read_port_checkpoint(path), path, discriminator, formulation)


def port_models(ckpt, path, discriminator=False, formulation="fast"):
    """PortModels of a port checkpoint dict already read from `path` (named in errors).

    Its optional `nvidia` entry (written for NVIDIA's pickles) gives conv_clamp, d_conv_clamp, mbstd_group,
    num_fp16_res and d_num_fp16_res.
    """
    for key in ("g_ema",) + (("d",) if discriminator else ()):
        if key not in ckpt:
            raise BadValue(f"{path} has no {key!r} (keys: {', '.join(sorted(ckpt))})")
    extra = ckpt.get("nvidia") or {}
    G, noise = generator_from_port(ckpt["g_ema"], ckpt.get("latent_avg"), formulation, f"{path} g_ema",
                                   extra.get("conv_clamp"), extra.get("num_fp16_res", 0))
    D = discriminator_from_port(ckpt["d"], extra.get("mbstd_group", 4), formulation, f"{path} d",
                                extra.get("d_conv_clamp"), extra.get("d_num_fp16_res", 0)) if discriminator else None
    return PortModels(G, D, noise)
