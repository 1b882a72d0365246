"""PerturbGAN's encoder (Bielski & Favaro 2019, sec. 3.3 and "Segmenting real images").

A ResNet-18 (He et al. 2016) trained from scratch (or, an option the paper did not have, the ImageNet
EfficientNet-Lite0 fine-tuned), at the generator's resolution, without the average
pooling at its end; a fully connected head gives one W+ style per synthesis layer of each generator
(2 log2(R) - 2 per generator: 20 x 512 at 64 px for the paper's two generators). `LayeredSynthesis`
presents a layered generator as one W+ synthesis network (foreground slots first), which is what the
encoder's codes drive and what `projection.project` optimizes.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..render import composite
from .efficientnet import FEATURE_CHANNELS, EfficientNetLite0, pretrained_encoder
from .layered import LayeredGenerator


class LayeredSynthesis(nn.Module):
    """A frozen LayeredGenerator as ws [B, n_latent, w_dim] -> composite (1 - m) B + m F (PerturbGAN eq. 7's x_E).

    The first `n_fg` slots drive the foreground (and mask) synthesis, the rest the background one (none for
    the single-generator variant). Noise is one flat list, foreground inputs first. It offers what
    `projection.project` reads of a generator: `synthesis` (itself), `n_latent` and `w_avg` (per slot).
    """

    def __init__(self, G):
        super().__init__()
        if not isinstance(G, LayeredGenerator):
            raise TypeError(f"expected a LayeredGenerator, got {type(G).__name__}")
        self.G = G
        self.fg_synthesis = G.fg.synthesis
        self.bg_synthesis = G.background_synthesis
        self.resolution = self.fg_synthesis.resolution
        self.n_fg = self.fg_synthesis.n_latent
        self.n_latent = self.n_fg + (self.bg_synthesis.n_latent if self.bg_synthesis is not None else 0)
        self.w_dim = self.fg_synthesis.w_dim

    @property
    def synthesis(self):
        return self

    @property
    def w_avg(self):
        """[n_latent, w_dim]: each slot's generator's average w (the truncation centre)."""
        bg_avg = self.G.bg.w_avg if self.G.variant == "two" else self.G.fg.w_avg
        return torch.cat([self.G.fg.w_avg.expand(self.n_fg, -1),
                          bg_avg.expand(self.n_latent - self.n_fg, -1)])

    def noise_shapes(self):
        shapes = self.fg_synthesis.noise_shapes()
        return shapes + (self.bg_synthesis.noise_shapes() if self.bg_synthesis is not None else [])

    def layers(self, ws, noise=None):
        """Layers (background, foreground, mask) for ws [B, n_latent, w_dim]."""
        if ws.shape[1] != self.n_latent:
            raise ValueError(f"expected {self.n_latent} styles per image, got {ws.shape[1]}")
        ws_fg, ws_bg = ws[:, :self.n_fg], ws[:, self.n_fg:]
        if self.bg_synthesis is None:
            ws_bg = ws_fg
        noise = (None, None) if noise is None else (noise[:self.fg_synthesis.num_noise],
                                                    noise[self.fg_synthesis.num_noise:] or None)
        return self.G.synthesize(ws_fg, ws_bg, noise=noise)

    def forward(self, ws, noise=None):
        layers = self.layers(ws, noise)
        return composite(layers.background, layers.foreground, layers.mask)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs with batch norm, identity or 1x1 projection shortcut."""

    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


ENCODER_BACKBONES = ("resnet18", "efficientnet")
IMAGENET_SIZE = 128  # the efficientnet backbone's input side: a 4 x 4 map at its stride 32


class Encoder(nn.Module):
    """ResNet-18 without average pooling, FC head to W+ codes [B, n_styles, w_dim] (PerturbGAN sec. 4).

    width: channels of the first stage (64 in ResNet-18; the stages have width x 1, 2, 4, 8).
    w_avg [n_styles, w_dim] given: the head predicts offsets around it, starting at zero (the codes start at
    the average w); None: the head predicts the codes themselves, as in the paper.
    backbone: "resnet18" (from scratch, the paper's) or "efficientnet": the ImageNet EfficientNet-Lite0
    (pretrained: from the package's weights; a saved encoder's replace them), fine-tuned, on images up-sampled
    to IMAGENET_SIZE, its last (stride-32) map feeding the head; width is then unused.
    """

    def __init__(self, resolution, n_styles, w_dim, width=64, w_avg=None, backbone="resnet18", pretrained=True):
        super().__init__()
        if backbone not in ENCODER_BACKBONES:
            raise ValueError(f"encoder backbone {backbone!r} is not one of {', '.join(ENCODER_BACKBONES)}")
        self.resolution, self.n_styles, self.w_dim, self.width = resolution, n_styles, w_dim, width
        self.backbone = backbone
        if backbone == "efficientnet":
            self.imagenet = (pretrained_encoder() if pretrained else EfficientNetLite0()).drop_classifier()
            channels, side = FEATURE_CHANNELS[-1], IMAGENET_SIZE // 32
        else:
            self.stem = nn.Sequential(nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                                      nn.MaxPool2d(3, 2, 1))
            widths = [width, 2 * width, 4 * width, 8 * width]
            stages, channels = [], width
            for i, out in enumerate(widths):
                stages += [BasicBlock(channels, out, 1 if i == 0 else 2), BasicBlock(out, out, 1)]
                channels = out
            self.stages = nn.Sequential(*stages)
            side = resolution
            for _ in range(5):  # stem conv, max pool, three strided stages: each halves, rounding up
                side = (side + 1) // 2
        self.fc = nn.Linear(channels * side * side, n_styles * w_dim)
        self.offsets = w_avg is not None
        if self.offsets:
            if tuple(w_avg.shape) != (n_styles, w_dim):
                raise ValueError(f"w_avg must be [{n_styles}, {w_dim}], got {list(w_avg.shape)}")
            nn.init.zeros_(self.fc.weight)
            nn.init.zeros_(self.fc.bias)
        self.register_buffer("w_avg", w_avg.detach().clone() if self.offsets else torch.zeros(n_styles, w_dim))

    def features(self, x):
        if self.backbone == "efficientnet":
            x = F.interpolate(x, size=IMAGENET_SIZE, mode="bilinear", align_corners=False)
            return self.imagenet.pyramid(x)[-1]
        return self.stages(self.stem(x))

    def forward(self, x):
        if x.shape[-2:] != (self.resolution, self.resolution):
            raise ValueError(f"encoder input must be {self.resolution}x{self.resolution}, got {list(x.shape)}")
        return self.fc(self.features(x).flatten(1)).view(-1, self.n_styles, self.w_dim) + self.w_avg

    def pretrained_parameters(self):
        """The ImageNet backbone's parameters (none for the from-scratch ResNet)."""
        return self.imagenet.parameters() if self.backbone == "efficientnet" else iter(())

    def hparams(self):
        """What `Encoder(**hparams)` needs besides the weights (w_avg is a buffer in the state dict)."""
        return {"resolution": self.resolution, "n_styles": self.n_styles, "w_dim": self.w_dim, "width": self.width,
                "offsets": self.offsets, "backbone": self.backbone}


def build_encoder(synthesis, width=64, offsets=True, backbone="resnet18"):
    """An encoder for a LayeredSynthesis: its resolution, style count and w_dim; offsets around its w_avg."""
    return Encoder(synthesis.resolution, synthesis.n_latent, synthesis.w_dim, width,
                   synthesis.w_avg.detach().cpu() if offsets else None, backbone)
