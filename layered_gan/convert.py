"""Write any generator `load_stylegan2` reads (port checkpoint, NVIDIA pickle, run of ours) in another layout.

- layout "port": the StyleGAN2 port's `torch.save` dict (`g_ema`, `latent_avg`, and `g`, `d` when the
  source has them; from an NVIDIA pickle also `nvidia`: conv_clamp, mbstd group, source format), read by
  `load_stylegan2` and, ignoring `nvidia`, by the port's own scripts.
- layout "ours": a checkpoint of our `stylegan2` mode (`config`, `G_ema`, `D`), what `model.init`,
  `model.ckpt` and `runs.load_run` read. Our configs describe widths by channel_base /
  channel_max, so the source's widths must follow that rule (NVIDIA's and the port's do). Our
  discriminator is progressive: its lower-resolution fromRGB layers, which the source lacks, keep a
  seeded fresh initialization (only progressive growing uses them).

    convert("stylegan2-ffhq-config-f.pkl", "ffhq.pt")                      # port layout
    convert("stylegan2-ffhq-config-f.pkl", "runs/ffhq/checkpoint.pt", "ours")
"""

import os

import torch

from .checkpoint import checkpoint_file, save_checkpoint
from .config import load_config
from .errors import BadValue, MissingPath, PathExists
from .networks.port import port_models, save_port
from .networks.stylegan2 import channel_widths
from .runs import build_models, load_stylegan2, read_model_file

LAYOUTS = ("port", "ours")
_PORT_KEYS = ("g_ema", "latent_avg", "g", "d", "nvidia")


def convert(src, out, layout="port", overwrite=False):
    """Write src's generator (and discriminator, where it has one) to out in `layout`; returns out."""
    if layout not in LAYOUTS:
        raise BadValue(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if not os.path.exists(src):
        raise MissingPath(f"{src} does not exist")
    if os.path.exists(out) and not overwrite:
        raise PathExists(f"{out} exists; choose another output or allow overwriting")
    path = checkpoint_file(src)
    ckpt = read_model_file(path)
    if layout == "port" and "g_ema" in ckpt:
        port_models(ckpt, path, discriminator="d" in ckpt)  # checks every tensor before anything is written
        save_checkpoint({k: ckpt[k] for k in _PORT_KEYS if k in ckpt}, out)
        return out
    has_d = "d" in ckpt or "D" in ckpt
    loaded = load_stylegan2(path, discriminator=has_d)
    G, D = loaded if has_d else (loaded, None)
    if layout == "port":
        save_port(out, G, D)
    else:
        save_checkpoint(our_checkpoint(G, D, f"converted from {src}"), out)
    return out


def _widths(G):
    widths = {4: G.synthesis.const.shape[1]}
    widths.update({2 ** (i + 3): block.conv1.weight.shape[0] for i, block in enumerate(G.synthesis.blocks)})
    return widths


def config_widths(widths):
    """(channel_base, channel_max) whose `channel_widths` are exactly `widths` ({resolution: channels})."""
    resolution, channel_max = max(widths), max(widths.values())
    for base in sorted({w * r for r, w in widths.items()}):
        if channel_widths(resolution, base, channel_max) == widths:
            return base, channel_max
    raise BadValue(f"widths {widths} do not follow min(channel_base / resolution, channel_max), the rule our "
                   "configs describe widths by; use the port layout instead")


def our_checkpoint(G, D=None, description="converted"):
    """{config, G_ema, D} of our stylegan2 mode holding G (and D), checked to rebuild from the config alone."""
    conv_clamp = G.synthesis.conv_clamp
    if D is not None and D.conv_clamp != conv_clamp:
        raise BadValue(f"G's conv_clamp {conv_clamp} and D's {D.conv_clamp} differ; our configs have one "
                       "model.conv_clamp (use the port layout instead)")
    channel_base, channel_max = config_widths(_widths(G))
    cfg = load_config("stylegan2_base")
    cfg["description"] = description
    cfg["model"] = {"resolution": G.synthesis.resolution, "z_dim": G.z_dim, "w_dim": G.synthesis.w_dim,
                    "n_mlp": len(G.mapping.layers), "channel_base": channel_base, "channel_max": channel_max,
                    "mbstd_group": 4 if D is None else D.mbstd_group, "conv_clamp": conv_clamp,
                    "num_fp16_res": G.synthesis.num_fp16_res}
    torch.manual_seed(0)  # the fromRGB layers the source lacks: a reproducible fresh initialization
    G_ours, D_ours = build_models(cfg)
    _copy(G, G_ours, "the generator")
    if D is not None:
        _copy(D, D_ours, "the discriminator")
    return {"config": cfg, "G_ema": G_ours.state_dict(), **({"D": D_ours.state_dict()} if D is not None else {})}


def _copy(source, target, what):
    """source's tensors into target (which may have more); any architecture difference is an error."""
    if not torch.equal(getattr(source, "synthesis", source).resample_filter,
                       getattr(target, "synthesis", target).resample_filter):
        raise BadValue(f"{what} uses another FIR filter than our configs' [1, 3, 3, 1]; use the port layout instead")
    state = target.state_dict()
    for key, value in source.state_dict().items():
        if key not in state or state[key].shape != value.shape:
            raise BadValue(f"{what}: {key} {list(value.shape)} has no place in the architecture our config "
                           "describes; use the port layout instead")
        state[key] = value
    target.load_state_dict(state)
