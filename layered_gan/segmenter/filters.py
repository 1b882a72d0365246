"""Filters for generated (image, mask) pairs, after Voynov et al. ("Big GANs Are Watching You", sec. 4).

- mask size: drop masks covering more than a fraction of the image (0.5);
- near-empty: drop masks covering less than a fraction (0.01), which teach nothing;
- histogram: the image the mask was read from "should have mostly dark and light
  pixels". Two rules (`rules` of default_filters):
  "code", both authors' codes (Voynov's `maxes_filter`, Melas-Kyriazi's `get_histogram_filter_indices`):
  a 12-bin histogram of the image's RGB values in [-1, 1], summed over a window of 3 (zero padded), is kept
  when it has at least two local maxima by `>=` (flat runs, empty bins included, count every bin), so it
  rarely rejects; "paper", the paper's text read literally: a grayscale histogram smoothed by a moving
  average must have no local maximum outside its first and last bins (rejects most pairs);
- connected components: remove the foreground components smaller than 0.2 x the largest, 8-connected in
  the codes (`skimage.measure.label`), 4-connected by the "paper" rules (this one edits masks and rejects
  nothing).

Order: the codes' (components, size, histogram) by the "code" rules; size, histogram, components by "paper".
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


def code_histogram_keeps(image, bins=12, window=3):
    """The codes' test on one image's values in [-1, 1]: at least two local maxima (`>=`) of the windowed sum."""
    hist = torch.histc(image.float().flatten(), bins, -1, 1)
    hist = torch.nn.functional.conv1d(hist.view(1, 1, -1), torch.ones(1, 1, window), padding=window // 2).flatten()
    left = torch.cat([torch.tensor([True]), hist[1:] >= hist[:-1]])
    right = torch.cat([hist[:-1] >= hist[1:], torch.tensor([True])])
    return int((left & right).sum()) >= 2


class HistogramContrast:
    """Reject low-contrast pairs, judged on `pairs.contrast` (the image the mask was read from, in [0, 1]) by the
    "code" or the "paper" rule (module docstring)."""

    name = "histogram"

    def __init__(self, bins=12, window=3, rule="code"):
        self.bins, self.window, self.rule = bins, window, rule

    def keep(self, pairs):
        if self.rule == "code":
            images = pairs.contrast.float().cpu() * 2 - 1
            return np.array([code_histogram_keeps(im, self.bins, self.window) for im in images], bool)
        values = pairs.contrast.float().mean(1).flatten(1).cpu().numpy()  # grayscale
        return np.array([not interior_peak(smoothed_histogram(v, self.bins, self.window)) for v in values], bool)


def keep_large_components(mask, ratio=0.2, connectivity=4):
    """Bool [H, W] without the 4- or 8-connected components smaller than ratio x the largest."""
    labels, count = ndimage.label(mask, structure=ndimage.generate_binary_structure(2, connectivity // 4))
    if count <= 1:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    large = np.flatnonzero(sizes >= ratio * sizes.max()) + 1
    return np.isin(labels, large)


class Components:
    name = "components"
    edits = True

    def __init__(self, ratio=0.2, connectivity=4):
        self.ratio, self.connectivity = ratio, connectivity

    def apply(self, pairs):
        """(pairs with small components zeroed in the mask, number of masks edited)."""
        binary = (pairs.mask[:, 0] > 0.5).cpu().numpy()
        cleaned = np.stack([keep_large_components(b, self.ratio, self.connectivity) for b in binary])
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


FILTER_RULES = ("code", "paper")
FILTER_RULES_HELP = ("code: the authors' codes (histogram rule of maxes_filter, 8-connected components, order "
                     "components, size, histogram); paper: the paper's text (literal histogram rule, 4-connected, "
                     "order size, histogram, components).")


def default_filters(max_coverage=0.5, min_coverage=0.01, histogram=True, component_ratio=0.2, rules="code"):
    """The chain with the near-empty test after size: by the authors' codes (rules="code": 8-connected components
    first, then size, then the codes' histogram rule) or the paper's text ("paper": size, the literal histogram
    rule, 4-connected components)."""
    size = [MaxCoverage(max_coverage), MinCoverage(min_coverage)]
    contrast = [HistogramContrast(rule=rules)] if histogram else []
    if rules == "code":
        return FilterChain([Components(component_ratio, connectivity=8)] + size + contrast)
    return FilterChain(size + contrast + [Components(component_ratio, connectivity=4)])
