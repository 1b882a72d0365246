"""Self-training on unlabelled real images (pseudo-labelling; not in the papers): a distilled segmenter labels
real images, and a fresh segmenter learns from half generated pairs, half those images with their labels.

Only images enter, never a mask: the real images are those the generator was trained on (or any the user
gives), so the segmenter meets the real domain, whose texture and layout the generator reproduces imperfectly.
"""

import torch

from .. import rng
from .model import predict


def load_images(dataset, num):
    """The first `num` items of an image dataset (centre crops at the segmenter's resolution) as [N, 3, R, R]."""
    return torch.stack([dataset[i] for i in range(min(num, len(dataset)))])


def pseudo_labels(model, images, threshold=0.5):
    """The model's binary masks [N, 1, R, R] for images [N, 3, R, R]."""
    return (predict(model, images) > threshold).float()


def real_share(batch):
    """How many of a self-training batch's `batch` pairs are labelled real images (half, rounded down)."""
    return batch // 2


def mixed_batches(generated, images, labels, batch, seed):
    """Endless (image, mask) batches of `batch`: each batch of `generated` (batch - real_share(batch) pairs), then
    real_share(batch) labelled real images drawn with replacement, each flipped horizontally at random."""
    gen = rng.generator(seed)
    real_count = real_share(batch)
    for x, y in generated:
        if len(x) != batch - real_count:
            raise ValueError(f"generated batches of {len(x)} pairs; expected {batch - real_count}")
        pick = torch.randint(len(images), (real_count,), generator=gen)
        flip = torch.rand(real_count, generator=gen) < 0.5
        xr, yr = images[pick], labels[pick]
        xr = torch.where(flip[:, None, None, None], xr.flip(-1), xr)
        yr = torch.where(flip[:, None, None, None], yr.flip(-1), yr)
        yield torch.cat([x.cpu(), xr]), torch.cat([y.cpu(), yr])
