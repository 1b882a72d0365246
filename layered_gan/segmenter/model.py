"""The segmenter: a U-Net with its training resolution, saved and loaded as a weights-only checkpoint.

Inference follows Voynov et al. (sec. 4): the image's shorter side is rescaled
to the training resolution, the U-Net predicts on the whole (aspect-preserved)
image, and the probability map is resized back to the original size.
"""

import os

import torch
import torch.nn.functional as F

from ..checkpoint import load_checkpoint, save_checkpoint
from ..data.dataset import to_tensor
from ..errors import BadValue
from ..networks.unet import EfficientNetUNet, UNet

FILENAME = "segmenter.pt"
BACKBONES = ("unet", "efficientnet")


# U-Net sizes for `distill --unet`: the CPU-sized demo one, and the papers' (Voynov et al., Melas-Kyriazi et al.:
# base width 64, 4 down-samplings, 2-class cross-entropy)
UNET_PRESETS = {"cpu": {"width": 32, "depth": 3, "classes": 1}, "paper": {"width": 64, "depth": 4, "classes": 2}}


def build_segmenter(resolution, width=16, depth=3, backbone="unet", pretrained=True, classes=1, imagenet_size=None):
    """A fresh segmenter that remembers its resolution and settings (saved with it).

    backbone: "unet", the from-scratch U-Net (the papers' setting), or "efficientnet", the ImageNet
    EfficientNet-Lite0 as the encoder, fine-tuned (supervision the papers did not use; depth is then unused).
    pretrained: start that encoder from the ImageNet weights (loading a saved segmenter does not need them).
    classes: the U-Net's output channels (2: the papers' two-class head, read as one logit l1 - l0).
    imagenet_size: with "efficientnet", the side images are up-sampled to before that encoder (None: as given).
    """
    if backbone not in BACKBONES:
        raise BadValue(f"segmenter backbone {backbone!r} is not one of {', '.join(BACKBONES)}")
    if backbone == "efficientnet" and classes != 1:
        raise BadValue("the efficientnet backbone has a one-logit head; use --unet cpu with it")
    if imagenet_size and backbone != "efficientnet":
        raise BadValue("an ImageNet input size goes with the efficientnet backbone")
    model = UNet(width=width, depth=depth, classes=classes) if backbone == "unet" else \
        EfficientNetUNet(width, pretrained, imagenet_size)
    model.resolution = int(resolution)
    model.settings = {"width": width, "depth": depth, "backbone": backbone, "classes": classes,
                      **({"imagenet_size": imagenet_size} if imagenet_size else {})}
    return model


def save_segmenter(model, path, **meta):
    """Weights, resolution, U-Net settings and any extra figures (numbers, strings, containers)."""
    save_checkpoint({"model": model.state_dict(), "resolution": model.resolution, "unet": model.settings,
                     "meta": meta}, path)


def load_segmenter(path, device="cpu"):
    """(model in eval mode on `device`, meta) from a file or a folder holding segmenter.pt (read on the CPU)."""
    path = os.path.join(path, FILENAME) if os.path.isdir(path) else path
    state = load_checkpoint(path)
    if not {"model", "resolution", "unet"} <= set(state):
        raise BadValue(f"{path} is not a segmenter checkpoint (needs model, resolution and unet entries; "
                       f"found {sorted(state)})")
    model = build_segmenter(state["resolution"], **state["unet"], pretrained=False).to(device)
    model.load_state_dict(state["model"])
    return model.eval(), state.get("meta", {})


@torch.no_grad()
def predict(model, images, batch=64):
    """Foreground probabilities [B, 1, H, W] at the input size for images [B, 3, H, W] in [-1, 1].

    The shorter side goes to model.resolution (antialiased), the U-Net runs on
    the whole image, and its sigmoid output is resized back (bilinear).
    """
    model.eval()
    param = next(model.parameters(), None)
    device = param.device if param is not None else images.device
    h, w = images.shape[-2:]
    scale = model.resolution / min(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    out = []
    for start in range(0, len(images), batch):
        x = images[start:start + batch].to(device, torch.float32)
        if size != (h, w):
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=scale < 1)
        prob = torch.sigmoid(model(x))
        if size != (h, w):
            prob = F.interpolate(prob, size=(h, w), mode="bilinear", align_corners=False)
        out.append(prob.cpu())
    return torch.cat(out)


def predict_image(model, image):
    """Foreground probability [H, W] (numpy float32) for one PIL image of any size."""
    return predict(model, to_tensor(image.convert("RGB"))[None])[0, 0].numpy()
