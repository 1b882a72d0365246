"""Filters for generated (image, mask) pairs, after Voynov et al. ("Big GANs Are Watching You", sec. 4).

- mask size: drop masks covering more than a fraction of the image (0.5);
- near-empty: drop masks covering less than a fraction (0.01), which teach nothing;
- histogram: the image the mask was read from "should have mostly dark and light
  pixels": a 12-bin intensity histogram, smoothed with a moving average of
  window 3, must have no local maximum outside its first and last bins;
- connected components: remove the 4-connected foreground components smaller
  than 0.2 x the largest (this one edits masks and rejects nothing).

Each filter counts what it rejected (or, for components, how many masks it edited).
Masks are binarized at 0.5 for coverage and components.
"""

import numpy as np
import torch
from scipy import ndimage


class MaxCoverage:
    name = "max_coverage"

    def __init__(self, fraction=0.5):
        self.fraction = fraction

    def keep(self, pairs):
        return (pairs.mask > 0.5).float().mean((1, 2, 3)).cpu().numpy() <= self.fraction


class MinCoverage:
    name = "near_empty"

    def __init__(self, fraction=0.01):
        self.fraction = fraction

    def keep(self, pairs):
        return (pairs.mask > 0.5).float().mean((1, 2, 3)).cpu().numpy() >= self.fraction


def smoothed_histogram(values, bins=12, window=3):
    """Histogram of values in [0, 1] with `bins` bins, then a centred moving average (truncated at the ends)."""
    hist = np.histogram(np.clip(values, 0, 1), bins=bins, range=(0, 1))[0].astype(np.float64)
    half = window // 2
    return np.array([hist[max(0, i - half):i + half + 1].mean() for i in range(bins)])


def interior_peak(hist):
    """Whether a local maximum (a plateau counts once) lies away from the first and the last bin."""
    runs = []  # [value, first bin, last bin] of runs of equal values
    for i, v in enumerate(hist):
        if runs and runs[-1][0] == v:
            runs[-1][2] = i
        else:
            runs.append([v, i, i])
    for j, (v, first, last) in enumerate(runs):
        higher_than_left = j == 0 or runs[j - 1][0] < v
        higher_than_right = j == len(runs) - 1 or runs[j + 1][0] < v
        if higher_than_left and higher_than_right and first > 0 and last < len(hist) - 1:
            return True
    return False


class HistogramContrast:
    """Reject low-contrast pairs, judged on `pairs.contrast` (the image the mask was read from)."""

    name = "histogram"

    def __init__(self, bins=12, window=3):
        self.bins, self.window = bins, window

    def keep(self, pairs):
        values = pairs.contrast.float().mean(1).flatten(1).cpu().numpy()  # grayscale
        return np.array([not interior_peak(smoothed_histogram(v, self.bins, self.window)) for v in values], bool)


def keep_large_components(mask, ratio=0.2):
    """Bool [H, W] without the 4-connected components smaller than ratio x the largest."""
    labels, count = ndimage.label(mask)  # default structure: 4-connectivity
    if count <= 1:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    large = np.flatnonzero(sizes >= ratio * sizes.max()) + 1
    return np.isin(labels, large)


class Components:
    name = "components"
    edits = True

    def __init__(self, ratio=0.2):
        self.ratio = ratio

    def apply(self, pairs):
        """(pairs with small components zeroed in the mask, number of masks edited)."""
        binary = (pairs.mask[:, 0] > 0.5).cpu().numpy()
        cleaned = np.stack([keep_large_components(b, self.ratio) for b in binary])
        edited = (cleaned != binary).any((1, 2))
        mask = pairs.mask * torch.from_numpy(cleaned | ~binary)[:, None].to(pairs.mask)
        return pairs._replace(mask=mask), int(edited.sum())


class FilterChain:
    """Applies filters in order, counting per filter what it rejected (or edited)."""

    def __init__(self, filters):
        self.filters = list(filters)
        self.counts = {f.name: 0 for f in self.filters}
        self.seen = self.kept = 0

    def __call__(self, pairs):
        self.seen += len(pairs.image)
        for f in self.filters:
            if len(pairs.image) == 0:
                break
            if getattr(f, "edits", False):
                pairs, edited = f.apply(pairs)
                self.counts[f.name] += edited
                continue
            keep = f.keep(pairs)
            self.counts[f.name] += int((~keep).sum())
            index = torch.from_numpy(np.flatnonzero(keep)).to(pairs.image.device)
            pairs = type(pairs)(*(t.index_select(0, index.to(t.device)) for t in pairs))
        self.kept += len(pairs.image)
        return pairs

    def report(self):
        """{'generated', 'kept', 'rejected': {filter: count}, 'edited': {filter: count}}."""
        edits = {f.name for f in self.filters if getattr(f, "edits", False)}
        return {"generated": self.seen, "kept": self.kept,
                "rejected": {k: v for k, v in self.counts.items() if k not in edits},
                "edited": {k: v for k, v in self.counts.items() if k in edits}}


def default_filters(max_coverage=0.5, min_coverage=0.01, histogram=True, component_ratio=0.2):
    """The papers' chain, in their order (size, histogram, components) with the near-empty test after size."""
    filters = [MaxCoverage(max_coverage), MinCoverage(min_coverage)]
    if histogram:
        filters.append(HistogramContrast())
    return FilterChain(filters + [Components(component_ratio)])
