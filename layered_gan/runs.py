"""A run's models, in one place: every command that reads a trained model calls `load_run`.

A run is a training run of ours (a folder holding checkpoint.pt, or the checkpoint file) of any mode:
PerturbGAN's layered generator (`perturb`), a plain StyleGAN2 (`stylegan2`), Labels4Free's alpha network
on a frozen StyleGAN2 (`labels4free`); or a StyleGAN2-port checkpoint or NVIDIA pickle (`port`,
networks/port.py, networks/nvidia_pickles.py).
`build_models` is the one place that turns a config into networks; training (`training/`) and loading
both use it.

    run = load_run("runs/demo", expect="perturb", discriminator=True)   # run.G, run.D, run.config
    G = load_stylegan2("550000.pt")                                     # a plain generator: port file or run
"""

import os
from typing import NamedTuple, Optional

import torch

from .checkpoint import checkpoint_file
from .errors import BadValue, MissingPath
from .networks import Discriminator, Generator, channel_widths
from .networks.alpha_network import Labels4FreeGenerator
from .networks.layered import LayeredGenerator
from .networks.nvidia_pickles import is_nvidia_pickle, read_nvidia_pickle
from .networks.port import port_models, read_port_checkpoint
from .networks.projected import ProjectedDiscriminator

# What `expect` accepts: the run kinds it admits, and how a message names them.
EXPECT = {
    "any": (("perturb", "stylegan2", "labels4free", "port"), "a trained generator"),
    "layered": (("perturb", "labels4free"), "a layered generator (a PerturbGAN or Labels4Free run)"),
    "perturb": (("perturb",), "a PerturbGAN run (config mode 'perturb')"),
    "labels4free": (("labels4free",), "a Labels4Free run (config mode 'labels4free')"),
    "stylegan2": (("stylegan2", "port"), "a StyleGAN2 one (a stylegan2_* run or a StyleGAN2-port checkpoint)"),
}


class Run(NamedTuple):
    G: torch.nn.Module  # the EMA generator, frozen, in eval mode
    D: Optional[torch.nn.Module]  # the discriminator when asked for, frozen
    config: Optional[dict]  # None for a port file
    kind: str  # 'perturb', 'stylegan2', 'labels4free' or 'port'
    path: str  # the checkpoint file


def _widths(m):
    return channel_widths(m["resolution"], m["channel_base"], m["channel_max"])


def _fp16(m):
    """{conv_clamp, num_fp16_res} of a model section: model.num_fp16_res (0 if absent) and model.conv_clamp,
    256 where absent and num_fp16_res > 0 (stylegan2-ada's pairing), else None; an explicit value is kept."""
    num_fp16_res = m.get("num_fp16_res", 0)
    return {"conv_clamp": m.get("conv_clamp", 256 if num_fp16_res else None), "num_fp16_res": num_fp16_res}


def _discriminator(m, progressive=True):
    """model.discriminator: "stylegan2" (the papers' residual D) or "projected" (Projected GAN's, on frozen
    ImageNet features at model.projected_resolution px; networks/projected.py)."""
    if m.get("discriminator", "stylegan2") == "projected":
        return ProjectedDiscriminator(m.get("projected_resolution", 224))
    return Discriminator(m["resolution"], channels=_widths(m), mbstd_group=m.get("mbstd_group", 4),
                         progressive=progressive, formulation=m.get("formulation", "fast"), **_fp16(m))


def _labels4free_generator(cfg):
    """Labels4FreeGenerator around the frozen StyleGAN2 of model.ckpt (Labels4Free sec. 3)."""
    m, acfg = cfg["model"], cfg["labels4free"]
    if not os.path.exists(m["ckpt"]):
        raise MissingPath(f"model.ckpt: {m['ckpt']} does not exist; give a StyleGAN2 checkpoint with "
                          "--set model.ckpt=PATH (l4f_demo: first run train.py --cfg stylegan2_demo)")
    G = load_stylegan2(m["ckpt"], formulation=m.get("formulation", "fast"), option="model.ckpt")
    if G.synthesis.resolution != m["resolution"]:
        raise BadValue(f"model.resolution is {m['resolution']} but the generator in model.ckpt "
                       f"({m['ckpt']}) draws {G.synthesis.resolution} px images")
    # runs saved before these settings existed used the compact network and independent latents
    return Labels4FreeGenerator(G, acfg["zero"], acfg["zero_channels"], acfg["alpha_start_resolution"],
                                acfg["alpha_width"], acfg.get("alpha_network", "compact"),
                                acfg.get("same_latent", False))


def build_models(cfg):
    """(G, D) of a config, freshly initialized (Labels4Free: around its frozen pretrained generator)."""
    m, mode = cfg["model"], cfg.get("mode")
    formulation = m.get("formulation", "fast")
    if mode == "perturb":
        G = LayeredGenerator(m["resolution"], m["z_dim"], m["w_dim"], m["n_mlp"], channels=_widths(m),
                             variant=m.get("variant", "two"), formulation=formulation, **_fp16(m))
        return G, _discriminator(m)
    if mode == "stylegan2":
        G = Generator(m["resolution"], m["z_dim"], m["w_dim"], m["n_mlp"], channels=_widths(m), formulation=formulation,
                      **_fp16(m))
        return G, _discriminator(m)
    if mode == "labels4free":
        return _labels4free_generator(cfg), _discriminator(m, progressive=False)
    raise BadValue(f"config mode {mode!r} is not one of perturb, stylegan2, labels4free")


def read_model_file(path):
    """A model file's dict, its format told by content: a run of ours or a StyleGAN2-port checkpoint (torch
    files, weights only), or an NVIDIA pickle (TensorFlow or stylegan2-ada-pytorch) in the port layout."""
    if os.path.isfile(path) and is_nvidia_pickle(path):
        return read_nvidia_pickle(path)
    return read_port_checkpoint(path)


def _describe(kind):
    return "a StyleGAN2-port checkpoint" if kind == "port" else f"a {kind!r} run"


def _read_run(path, expect, option):
    """(checkpoint file, its contents, run kind, config or None) of `path`, checked to be of the `expect` kind."""
    kinds, wanted = EXPECT[expect]
    ckpt = checkpoint_file(path)
    if not os.path.exists(ckpt):
        raise MissingPath(f"{option} {path} does not exist; give {wanted} (a run folder or checkpoint file)")
    state = read_model_file(ckpt)
    if isinstance(state, dict) and "g_ema" in state:
        kind, config = "port", None
    elif isinstance(state, dict) and isinstance(state.get("config"), dict) and "G_ema" in state:
        config = state["config"]
        kind = config.get("mode")
    else:
        keys = ", ".join(sorted(map(str, state))) if isinstance(state, dict) else type(state).__name__
        raise BadValue(f"{option} {path} is neither a run of this toolkit (config, G_ema) nor a StyleGAN2-port "
                       f"checkpoint (g_ema); it holds: {keys}")
    if kind not in kinds:
        raise BadValue(f"{option} {path} is {_describe(kind)}, not {wanted}")
    return ckpt, state, kind, config


def load_run(path, expect="any", discriminator=False, device="cpu", formulation="fast", option="--ckpt"):
    """The Run at `path` (a run folder or checkpoint file), checked to be of the `expect` kind (see EXPECT).

    discriminator: also load D (an error when the file has none). formulation: for port files (runs of ours
    use their config's). option: how messages name where the path came from.
    """
    ckpt, state, kind, config = _read_run(path, expect, option)
    if kind == "port":
        G, D, _ = port_models(state, ckpt, discriminator, formulation)
    else:
        if discriminator and "D" not in state:
            raise BadValue(f"{option} {path} holds no discriminator 'D'")
        G, D = build_models(config)
        G.load_state_dict(state["G_ema"])
        if discriminator:
            D.load_state_dict(state["D"])
    G = G.to(device).eval().requires_grad_(False)
    D = D.to(device).eval().requires_grad_(False) if discriminator else None
    return Run(G, D, config, kind, ckpt)


def load_stylegan2(path, discriminator=False, formulation="fast", option="--ckpt"):
    """A plain StyleGAN2 Generator (and Discriminator) from a port checkpoint or a stylegan2_* run of ours;
    frozen, in eval mode. Returns G, or (G, D)."""
    run = load_run(path, "stylegan2", discriminator, formulation=formulation, option=option)
    return (run.G, run.D) if discriminator else run.G


def run_config(path, option="--ckpt"):
    """The config of a run of ours; None for a StyleGAN2-port checkpoint. Reads the file, builds no network."""
    return _read_run(path, "any", option)[3]
