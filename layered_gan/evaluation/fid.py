"""FID and KID between generated composites and real images (PerturbGAN Table 3, Labels4Free Table 5).

FID (Heusel et al. 2017): the Frechet distance between Gaussians fitted to
Inception pool features, |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)).
KID (Binkowski et al. 2018): the unbiased MMD^2 with the cubic polynomial
kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets.

Features come from the standard Inception network in its TorchScript export
(`inception-2015-12-05.pt`, the file StyleGAN2-ADA's metrics download:
https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt),
called as net(uint8-range images, return_features=True) -> [N, 2048]. It
cannot be downloaded here: pass its path (--inception or $LAYERED_GAN_INCEPTION).
For runs on the built-in synthetic dataset, `--features reference` uses the
encoder of the reference U-Net (`evaluation.generated`, trained on that data)
instead: a domain-specific distance to compare runs with each other (its values
are not comparable with Inception FIDs). A plain StyleGAN2 run is scored on its
images, a layered one on its unshifted composites (the paper's Table 3).

    layered-gan fid --ckpt runs/demo --num 10000 --inception inception-2015-12-05.pt
    layered-gan fid --ckpt runs/demo --num 2000 --features reference
"""

import os

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg
from tqdm import tqdm

from .. import rng
from ..render import composite
from ..sampling import sample_layers
from ..errors import BadValue, MissingPath, about
from .generated import synthetic_settings, train_reference

ENV = "LAYERED_GAN_INCEPTION"
HOW_TO_GET = ("FID/KID need the Inception weights as TorchScript: download inception-2015-12-05.pt from "
              "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt "
              f"on a machine with internet access, copy it here and pass --inception PATH or set ${ENV}")


def feature_statistics(features):
    """(mean [D], covariance [D, D]) of features [N, D], covariance with ddof=1."""
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need features of shape [N >= 2, D], got {features.shape}")
    return features.mean(0), np.cov(features, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """|mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrt(S1 S2)); a singular product is regularized with eps * I."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics differ in shape: {mu1.shape} / {mu2.shape}, {sigma1.shape} / {sigma2.shape}")
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(sigma1)) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    covmean = covmean.real  # tiny imaginary parts come from numerical error
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def kernel_inception_distance(f1, f2, subsets=100, subset_size=1000, seed=0):
    """Mean unbiased MMD^2 over `subsets` random subsets of min(subset_size, N1, N2) features from each set."""
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    m = min(subset_size, len(f1), len(f2))
    if m < 2:
        raise ValueError("KID needs at least 2 features per set")
    d = f1.shape[1]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        x = f1[rng.choice(len(f1), m, replace=False)]
        y = f2[rng.choice(len(f2), m, replace=False)]
        kxx, kyy, kxy = (t * t * t for t in (a @ b.T / d + 1 for a, b in ((x, x), (y, y), (x, y))))
        within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        values.append(within - 2 * kxy.mean())
    return float(np.mean(values))


def load_inception(path=None, device="cpu"):
    """The TorchScript Inception from `path` or $LAYERED_GAN_INCEPTION, as a features function."""
    path = path or os.environ.get(ENV)
    if not path:
        raise MissingPath(HOW_TO_GET)
    if not os.path.isfile(path):
        raise MissingPath(f"Inception weights {path} do not exist. {HOW_TO_GET}")
    try:
        net = torch.jit.load(path, map_location=device).eval()
    except RuntimeError as exc:
        raise BadValue(f"{path} is not a TorchScript module ({str(exc).splitlines()[0]}); a state dict such as "
                       "pytorch-fid's pt_inception-2015-12-05-6726825d.pth does not work here. "
                       f"{HOW_TO_GET}") from None

    def features(images):
        """images [N, 3, H, W] in [-1, 1] -> [N, 2048]; the network resizes to 299 itself."""
        x = ((images.to(device).float() + 1) * 127.5).clamp(0, 255)
        return net(x, return_features=True)

    return features


def reference_features(reference, device="cpu"):
    """A features function from the reference U-Net: images up-sampled to its resolution (as the Table 1
    protocol does), then the spatial mean of each encoder level, concatenated ([N, sum of level widths])."""
    reference = reference.to(device).eval()

    @torch.no_grad()
    def features(images):
        x = images.to(device).float()
        if x.shape[-1] != reference.resolution:
            x = F.interpolate(x, size=reference.resolution, mode="bilinear", align_corners=False)
        return torch.cat([level.mean((2, 3)) for level in reference.encode(x)], 1)

    return features


@torch.no_grad()
def collect_features(features, batches, num, progress=True, desc="features"):
    """Features [num, D] (numpy) from an iterator of image batches in [-1, 1]."""
    out, count = [], 0
    with tqdm(total=num, desc=desc, unit="img", disable=not progress) as bar:
        for images in batches:
            images = images[:num - count]
            out.append(features(images).double().cpu().numpy())
            count += len(images)
            bar.update(len(images))
            if count >= num:
                break
    if count < num:
        raise BadValue(f"only {count} images were available for {desc}; asked for {num}")
    return np.concatenate(out)


def fid_kid(feats1, feats2, kid_subsets=100, kid_subset_size=1000):
    """{'fid', 'kid'} between two feature sets."""
    return {"fid": frechet_distance(*feature_statistics(feats1), *feature_statistics(feats2)),
            "kid": kernel_inception_distance(feats1, feats2, kid_subsets, kid_subset_size)}


def run_features(cfg, name, device="cpu", inception=None, where="the run", progress=True):
    """The features function `name` ("inception" or "reference") for a run of config cfg."""
    if name == "reference":
        with about("--features reference"):
            synthetic = synthetic_settings(cfg, where)
        return reference_features(train_reference(synthetic, device=device, progress=progress)[0], device)
    with about("--inception"):
        return load_inception(inception, device)


class FIDScorer:
    """FID and KID of generators against `num` real images, their features computed once.

    real: an image dataset (items [3, H, W] in [-1, 1]); the images are drawn in a fixed shuffled order and
    the generators sampled with a fixed seed, so two calls on the same weights give the same figures.
    """

    def __init__(self, features, real, num, batch=100, device="cpu", progress=True):
        self.features, self.num, self.batch, self.device, self.progress = features, num, batch, device, progress
        loader = torch.utils.data.DataLoader(real, batch_size=batch, shuffle=True,
                                             generator=rng.generator(0))
        self.real = collect_features(features, iter(loader), num, progress, desc="real images")

    def __call__(self, G):
        fake = collect_features(self.features, generated_batches(G, self.batch, 0, self.device), self.num,
                                self.progress, desc="generated")
        return fid_kid(self.real, fake)


def generated_batches(G, batch, seed, device, truncation=1.0):
    """Endless images in [-1, 1]: a layered generator's unshifted composites, a plain one's images."""
    gen = rng.generator(seed)
    while True:
        out = sample_layers(G, batch, gen, truncation, device)
        images = out if isinstance(out, torch.Tensor) else composite(out.background, out.foreground, out.mask)
        yield images.clamp(-1, 1)
