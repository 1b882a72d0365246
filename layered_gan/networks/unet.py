"""A small U-Net (Ronneberger et al. 2015) for binary segmentation: image in [-1, 1] -> mask logit; from scratch
(the papers' setting) or on the ImageNet EfficientNet-Lite0 as its encoder, fine-tuned (`EfficientNetUNet`)."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from .efficientnet import FEATURE_CHANNELS, STEM_CHANNELS, EfficientNetLite0, pretrained_encoder


def _block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class UNet(nn.Module):
    """`depth` 2x down-samplings, widths width x 2^level; bilinear up-sampling and skip concatenation.

    classes: 1 (one foreground logit) or 2 (the papers' two-class head: background and foreground logits l0, l1;
    the output is l1 - l0, so sigmoid and binary cross-entropy on it equal softmax and 2-class cross-entropy)."""

    def __init__(self, in_channels=3, width=16, depth=3, classes=1):
        super().__init__()
        widths = [width * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList([_block(in_channels, widths[0])] +
                                  [_block(widths[i], widths[i + 1]) for i in range(depth)])
        self.up = nn.ModuleList(_block(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], classes, 1)

    def encode(self, x):
        """The encoder's feature maps, finest first (depth + 1 levels)."""
        levels = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            levels.append(x)
        return levels

    def forward(self, x):
        skips = self.encode(x)
        x = skips[-1]
        for block, skip in zip(self.up, reversed(skips[:-1])):
            x = block(torch.cat([F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False), skip], 1))
        logits = self.head(x)
        return logits if logits.shape[1] == 1 else logits[:, 1:] - logits[:, :1]


class EfficientNetUNet(nn.Module):
    """U-Net decoder on EfficientNet-Lite0's five levels (strides 2 to 32): up-sample, concatenate the skip, two
    3x3 convolutions, widths width x 8, 4, 2, 1; the logit map is up-sampled to the input size. The encoder starts
    from the ImageNet weights (pretrained=True; a saved segmenter's own weights replace them) and is fine-tuned.
    Its input normalization is its own: images in [-1, 1] as for UNet. imagenet_size: the side images are
    resized to first (None: as given; ImageNet features are made for objects larger than a 32-px image holds)."""

    def __init__(self, width=16, pretrained=True, imagenet_size=None):
        super().__init__()
        self.imagenet_size = imagenet_size
        self.encoder = (pretrained_encoder() if pretrained else EfficientNetLite0()).drop_classifier()
        skips = (STEM_CHANNELS,) + FEATURE_CHANNELS[:-1]  # 16, 24, 40, 112
        widths = [width * 2 ** i for i in range(len(skips))]  # finest first
        cins = [FEATURE_CHANNELS[-1]] + widths[:0:-1]  # 320, then each coarser decoder level
        self.up = nn.ModuleList(_block(cin + skip, w) for cin, skip, w in zip(cins, reversed(skips), reversed(widths)))
        self.head = nn.Conv2d(widths[0], 1, 1)

    def forward(self, x):
        size = x.shape[-2:]
        if self.imagenet_size and min(size) != self.imagenet_size:
            scale = self.imagenet_size / min(size)
            x = F.interpolate(x, size=(round(size[0] * scale), round(size[1] * scale)), mode="bilinear",
                              align_corners=False, antialias=scale < 1)
        levels = self.encoder.pyramid(x)
        h = levels[-1]
        for block, skip in zip(self.up, reversed(levels[:-1])):
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = block(torch.cat([h, skip], 1))
        return F.interpolate(self.head(h), size=size, mode="bilinear", align_corners=False)
