"""A small U-Net (Ronneberger et al. 2015) for binary segmentation: image in [-1, 1] -> mask logit."""

import torch
import torch.nn as nn
import torch.nn.functional as F


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
