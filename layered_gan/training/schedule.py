"""Progressive growing schedule (PerturbGAN sec. 3.4, after ProGAN): resolution, fade-in, batch and lr by images seen.

Phase k trains at start_resolution x 2^k for `phase_kimg` thousand real
images; from the second phase on, the first `fade_fraction` of the phase
fades the new resolution in (alpha 0 -> 1). The last phase runs until the end.
A fixed-resolution run is start_resolution = resolution.
"""

import math
from dataclasses import dataclass

from ..errors import BadValue

from ..errors import UnknownKey


@dataclass(frozen=True)
class Phase:
    index: int
    resolution: int
    alpha: float
    batch: int
    lr: float
    start_kimg: float  # images seen (thousands) when this phase began


def per_resolution(table, resolution, name):
    """table: a number, or {str(resolution): number}; the value for this resolution."""
    if not isinstance(table, dict):
        return table
    if str(resolution) not in table:
        raise UnknownKey(f"schedule.{name} has no entry for resolution {resolution} (has {sorted(table, key=int)})")
    return table[str(resolution)]


def phase_at(kimg, schedule, resolution):
    """The Phase at `kimg` thousand images seen, for a network of final `resolution`."""
    start = schedule.get("start_resolution", resolution)
    if start > resolution:
        raise BadValue(f"schedule.start_resolution = {start}: expected at most model.resolution ({resolution})")
    length = schedule["phase_kimg"]
    fade = schedule.get("fade_fraction", 0.5)
    last = int(math.log2(resolution / start))
    index = min(int(kimg // length), last) if length > 0 else last
    res = start * 2 ** index
    into = kimg - index * length
    alpha = 1.0 if index == 0 or fade <= 0 else min(1.0, into / (fade * length))
    return Phase(index, res, alpha, int(per_resolution(schedule["batch"], res, "batch")),
                 float(per_resolution(schedule["lr"], res, "lr")), index * length)


def schedule_resolutions(cfg):
    """Every resolution a config trains at: start_resolution doubling to model.resolution."""
    resolution = cfg["model"]["resolution"]
    size = cfg["schedule"].get("start_resolution", resolution)
    sizes = []
    while size <= resolution:
        sizes.append(size)
        size *= 2
    return sizes
