"""A StyleGAN2 generator seen as a map from latent codes (z or W) to images, and the brightness of images."""

import torch

from ..errors import BadValue

SPACES = ("z", "w")
BRIGHTNESS = ("gray", "rgb")
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 grayscale


class LatentSpace:
    """Codes in z (the input of the mapping network) or W (one w for every style slot) -> images.

    A code and its shifted copies are rendered with the same noise inputs, so a latent shift is the
    only difference between G(z) and G(z + h). Truncation psi applies to w before any shift in W,
    and to w(z + h) in z.

    anchors [K, dim] (W only): codes of inverted real images to sample around, Voynov et al.'s
    z-noising (000 sec. 4, alpha = 0.2) carried to W: code = anchor + alpha (w - w_avg), the anchor
    drawn at random and w a fresh sample (in z the same formula reads z_anchor + alpha z).
    """

    def __init__(self, G, space="w", truncation=1.0, device="cpu", anchors=None, anchor_noise=0.2):
        if space not in SPACES:
            raise BadValue(f"space must be one of {SPACES}, got {space!r}")
        self.G, self.space, self.truncation, self.device = G.to(device), space, truncation, device
        self.dim = G.z_dim if space == "z" else G.synthesis.w_dim
        if anchors is not None and (space != "w" or anchors.ndim != 2 or anchors.shape[1] != self.dim):
            raise BadValue(f"anchors must be [K, {G.synthesis.w_dim}] codes in W (space 'w'), got "
                           f"{list(anchors.shape)} for space {space!r}")
        self.anchors = None if anchors is None else anchors.to(device)
        self.anchor_noise = anchor_noise

    @torch.no_grad()
    def sample(self, n, generator):
        """(codes [n, dim], noise inputs), all drawn from `generator` (a CPU torch.Generator)."""
        z = torch.randn(n, self.G.z_dim, generator=generator).to(self.device)
        noise = self.G.make_noise(n, self.device, generator)
        if self.space == "z":
            return z, noise
        w = self.G.styles(z, truncation=self.truncation)[:, 0]
        if self.anchors is None:
            return w, noise
        index = torch.randint(len(self.anchors), (n,), generator=generator).to(self.device)
        return self.anchors[index] + self.anchor_noise * (w - self.G.w_avg), noise

    def render(self, codes, noise):
        """Images [n, 3, H, W], about [-1, 1]; differentiable with respect to codes."""
        if self.space == "z":
            return self.G(codes, truncation=self.truncation, noise=noise)
        return self.G.synthesis(codes[:, None].expand(-1, self.G.n_latent, -1), noise=noise)


def to_unit(images):
    """[-1, 1] -> [0, 1] (clamped): the pixel range both papers' colour operators and masks assume."""
    return (images.clamp(-1, 1) + 1) / 2


def brightness(images, mode="gray"):
    """[N, 3, H, W] in [0, 1] -> [N, H, W]: BT.601 grayscale ('gray', Voynov 001) or the RGB norm ('rgb', 000)."""
    if mode == "gray":
        return torch.einsum("nchw,c->nhw", images, images.new_tensor(LUMA))
    if mode == "rgb":
        return images.norm(dim=1)
    raise BadValue(f"brightness must be one of {BRIGHTNESS}, got {mode!r}")
