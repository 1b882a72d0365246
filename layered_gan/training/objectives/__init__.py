"""What a training run optimizes, one module per mode (`base.py`: the interface the loop calls).

- `perturb`: PerturbGAN (perturbgan.py)
- `stylegan2`: StyleGAN2, and the single-output baseline (stylegan2.py)
- `labels4free`: Labels4Free's alpha network on a frozen StyleGAN2 (labels4free.py)
"""

from ...errors import BadValue
from .base import Fake, Objective
from .labels4free import Labels4Free
from .perturbgan import PerturbGAN
from .stylegan2 import StyleGAN2

OBJECTIVES = {"perturb": PerturbGAN, "stylegan2": StyleGAN2, "labels4free": Labels4Free}

__all__ = ["OBJECTIVES", "Fake", "Labels4Free", "Objective", "PerturbGAN", "StyleGAN2", "make_objective"]


def make_objective(cfg):
    if cfg.get("mode") not in OBJECTIVES:
        raise BadValue(f"config mode {cfg.get('mode')!r} is not one of {', '.join(OBJECTIVES)}")
    return OBJECTIVES[cfg["mode"]](cfg)
