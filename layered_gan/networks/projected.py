"""The projected discriminator (Sauer, Chitta, Mueller & Geiger, "Projected GANs Converge Faster", NeurIPS 2021).

Images (DiffAugment-ed when a generator `rng` is given, then resized to `resolution`) go through the frozen
ImageNet EfficientNet-Lite0 (networks/efficientnet.py); its four feature stages are projected by fixed random
1x1 convolutions: cross-channel mixing (CCM, one per stage) and cross-scale mixing (CSM, a feature pyramid
fused from the coarsest stage down, each level up-sampled x2); a small discriminator per level (spectrally
normalized 4x4 stride-2 convolutions, batch norm, leaky ReLU 0.2, then a 4x4 convolution to a map of logits)
scores it; the logits of all levels are concatenated, [B, N]. Trained with the hinge loss, without R1. Under
several processes each batch norm normalizes by its process's batch and the training loop averages the running
statistics after every step (training/loop.py `shared_buffers`; torch's SyncBatchNorm refuses CPU tensors).

The projections are never trained: they are buffers (saved in checkpoints, so a run's D does not depend on how
a seed is turned into weights) and `requires_grad_` cannot touch them. The feature network is kept outside the
registered sub-modules: its weights come from the package, never from a checkpoint or an optimizer, and
`requires_grad_` / `train()` leave it frozen; `to()` / `cuda()` move it along.

Departure from the public code: the number of down blocks follows the actual `resolution` (each level is
brought down to 8 px or less), where the code assumes 256 px, which would shrink a 64-px input's maps below
the last 4x4 convolution.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

from ..augment import diff_augment
from ..errors import BadValue
from .efficientnet import FEATURE_CHANNELS, pretrained_efficientnet_lite0

# The public code's per-scale discriminator widths, by map size.
WIDTHS = {4: 512, 8: 512, 16: 256, 32: 128, 64: 64, 128: 64, 256: 32}
MIN_RESOLUTION = 64


class RandomProjection(nn.Module):
    """CCM and CSM: fixed random 1x1 convolutions (PyTorch's default conv initialization) held as buffers."""

    def __init__(self, cout=64):
        super().__init__()
        self.ccm_channels = tuple(cout * 2 ** i for i in range(4))  # 64, 128, 256, 512 ("expand")
        # CSM halves the channels, but level 0 keeps its width (as in the public code): 64, 64, 128, 256
        self.out_channels = (cout, cout, cout * 2, cout * 4)
        specs = [(f"ccm{i}", cin, c) for i, (cin, c) in enumerate(zip(FEATURE_CHANNELS, self.ccm_channels))]
        specs += [(f"csm{i}", c, o) for i, (c, o) in enumerate(zip(self.ccm_channels, self.out_channels))]
        for name, cin, cout_ in specs:
            conv = nn.Conv2d(cin, cout_, 1)
            self.register_buffer(f"{name}_weight", conv.weight.detach())
            self.register_buffer(f"{name}_bias", conv.bias.detach())

    def _conv(self, name, x):
        return F.conv2d(x, getattr(self, f"{name}_weight"), getattr(self, f"{name}_bias"))

    def forward(self, features):
        """Four maps (fine to coarse) -> four projected maps, each at twice its stage's resolution."""
        mixed = [self._conv(f"ccm{i}", f) for i, f in enumerate(features)]
        out, fused = [None] * 4, None
        for i in reversed(range(4)):
            x = mixed[i] if fused is None else mixed[i] + fused
            fused = self._conv(f"csm{i}", F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True))
            out[i] = fused
        return out


class DownBlock(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(spectral_norm(nn.Conv2d(cin, cout, 4, 2, 1, bias=False)), nn.BatchNorm2d(cout),
                         nn.LeakyReLU(0.2))


def _width(size):
    return WIDTHS[min(max(2 ** math.ceil(math.log2(size)), 4), 256)]


class ScaleDiscriminator(nn.Sequential):
    """One level's discriminator: down blocks from `size` to 8 px or less, then a 4x4 convolution to logits."""

    def __init__(self, channels, size):
        layers, cin = [], channels
        while size > 8:
            layers.append(DownBlock(cin, _width(size // 2)))
            cin, size = _width(size // 2), size // 2
        layers.append(spectral_norm(nn.Conv2d(cin, 1, 4, 1, 0, bias=False)))
        super().__init__(*layers)


class ProjectedDiscriminator(nn.Module):
    """D(images [B, 3, H, W] in [-1, 1], rng=None) -> logits [B, N]; `alpha` (progressive growing) is ignored."""

    def __init__(self, resolution=224, cout=64):
        super().__init__()
        if resolution < MIN_RESOLUTION or resolution % 32:
            raise BadValue(f"model.projected_resolution = {resolution}: expected a multiple of 32, at least "
                           f"{MIN_RESOLUTION} (the feature network's coarsest stage has stride 32)")
        self.resolution = resolution
        object.__setattr__(self, "features", pretrained_efficientnet_lite0())  # not a sub-module: see above
        self.projection = RandomProjection(cout)
        sizes = [resolution // 2 ** (i + 1) for i in range(4)]  # the stages' strides 4..32, doubled by CSM
        self.discriminators = nn.ModuleList(ScaleDiscriminator(c, s)
                                            for c, s in zip(self.projection.out_channels, sizes))

    def _apply(self, fn, *args, **kwargs):  # .to(), .cuda(), .double(): the feature network moves along
        super()._apply(fn, *args, **kwargs)
        self.features._apply(fn, *args, **kwargs)
        return self

    def forward(self, images, alpha=None, rng=None, return_features=False):
        if return_features:
            raise BadValue("the projected discriminator has no feature maps for projection or the encoder stage; "
                           "use a run trained with model.discriminator = \"stylegan2\"")
        if rng is not None:
            images = diff_augment(images, rng)
        if images.shape[-1] != self.resolution or images.shape[-2] != self.resolution:
            images = F.interpolate(images, size=(self.resolution, self.resolution), mode="bilinear",
                                   align_corners=False)
        levels = self.projection(self.features(images))
        return torch.cat([d(x).flatten(1) for d, x in zip(self.discriminators, levels)], 1)
