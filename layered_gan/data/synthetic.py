"""Built-in synthetic dataset: textured objects on textured backgrounds, with exact masks.

No LSUN needed to see the toolkit work. Each scene pastes one object (blob,
star, polygon, ellipse, rounded box or car-like silhouette; solid, shaded,
striped, spotted or noisy fill) at a random position, angle and scale
(10-40 % coverage) onto an independent background (gradients, multi-scale
noise, stripes, smooth colour fields, blended). Object and background colours
come from the same distribution, so colour alone does not separate them
(PerturbGAN's premise: object and background independent).

Layout (raw LSUN style, so it exercises the real reader):
    ROOT/manifest.json
    ROOT/{train,test}/images   LMDB, key = 40-hex id, value = WebP
    ROOT/{train,test}/masks    LMDB, same keys, value = PNG (0 / 255)
Deterministic given the seed: scene i of a split depends only on (seed, split, i).
"""

import hashlib
import io
import json
import math
import multiprocessing
import os
import shutil

import lmdb
import numpy as np
from PIL import Image
from tqdm import tqdm

from ..errors import BadValue
from ..paths import cache_dir

VERSION = 1
SPLITS = ("train", "test")
SUPERSAMPLE = 2  # shapes are rendered at 2x and averaged: soft image edges, exact binary masks


def random_color(rng):
    """A colour from one distribution shared by objects and backgrounds (HSV, varied value)."""
    h, s, v = rng.random(), rng.uniform(0.2, 1.0), rng.uniform(0.15, 1.0)
    i, f = int(h * 6) % 6, h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i])


def smooth_noise(rng, size, cells):
    """Value noise: a random cells x cells grid, bicubic-upsampled to size x size, in [0, 1]."""
    grid = (rng.random((cells, cells)) * 255).astype(np.uint8)
    img = Image.fromarray(grid).resize((size, size), Image.BICUBIC)
    return np.asarray(img, dtype=np.float32) / 255


def palette_map(t, colors):
    """Map t in [0, 1] [H, W] through a piecewise-linear palette of colours -> [H, W, 3]."""
    t = np.clip(t, 0, 1) * (len(colors) - 1)
    i = np.minimum(t.astype(int), len(colors) - 2)
    f = (t - i)[..., None]
    colors = np.asarray(colors)
    return colors[i] * (1 - f) + colors[i + 1] * f


def texture(rng, size, yy, xx, shared_color=None):
    """One random texture [size, size, 3] in [0, 1]: gradient, noise, stripes, field or checks.

    shared_color: a colour the palette must include (objects borrow one from the background).
    """
    kind = rng.integers(5)
    colors = [random_color(rng) for _ in range(rng.integers(2, 4))]
    if shared_color is not None:
        colors[0] = shared_color
    if kind == 0:  # linear gradient
        a = rng.uniform(0, 2 * math.pi)
        t = (xx * math.cos(a) + yy * math.sin(a))
        return palette_map((t - t.min()) / (np.ptp(t) + 1e-6), colors)
    if kind == 1:  # noise at several scales
        t = sum(w * smooth_noise(rng, size, c) for w, c in zip(rng.dirichlet([1, 1, 1]), (3, 7, 17)))
        return palette_map((t - t.min()) / (np.ptp(t) + 1e-6), colors)
    if kind == 2:  # stripes, soft or hard
        a, freq = rng.uniform(0, math.pi), rng.uniform(2, 9)
        t = 0.5 + 0.5 * np.sin(2 * math.pi * freq * (xx * math.cos(a) + yy * math.sin(a)) + rng.uniform(0, 6.3))
        return palette_map(t if rng.random() < 0.5 else (t > 0.5).astype(np.float32), colors[:2])
    if kind == 3:  # smooth colour field
        grid = np.stack([random_color(rng) for _ in range(9)]).reshape(3, 3, 3)
        img = Image.fromarray((grid * 255).astype(np.uint8)).resize((size, size), Image.BILINEAR)
        return np.asarray(img, dtype=np.float32) / 255
    cells = rng.integers(3, 9)  # checks
    t = ((np.floor(xx * cells) + np.floor(yy * cells)) % 2).astype(np.float32)
    return palette_map(t, colors[:2])


def background(rng, size, yy, xx):
    bg = texture(rng, size, yy, xx)
    if rng.random() < 0.6:
        bg = bg * (1 - (w := rng.uniform(0.25, 0.6))) + texture(rng, size, yy, xx) * w
    return bg


def _rounded_box(u, v, half_w, half_h, radius):
    """Inside test of a rounded rectangle: signed distance <= 0."""
    qx, qy = np.abs(u) - half_w + radius, np.abs(v) - half_h + radius
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0)
    return outside - radius <= 0


def make_shape(rng, kind):
    """A random shape of `kind`: a function (u, v) -> inside, in local coordinates within about [-1, 1]."""
    if kind == "blob":
        waves = [(k, rng.uniform(0, 0.12), rng.uniform(0, 6.3)) for k in range(2, 6)]
        return lambda u, v: np.hypot(u, v) <= 0.75 + sum(a * np.cos(k * np.arctan2(v, u) + p) for k, a, p in waves)
    if kind == "star":
        n, depth, phase = rng.integers(4, 8), rng.uniform(0.25, 0.5), rng.random()

        def star(u, v):
            tri = np.abs(((np.arctan2(v, u) * n / (2 * math.pi) + phase) % 1) - 0.5) * 2  # 1 at tips
            return np.hypot(u, v) <= 0.95 * (1 - depth + depth * tri)
        return star
    if kind == "polygon":  # vertices at jittered angles around the centre: a simple, star-shaped polygon
        n = rng.integers(3, 8)
        angles = (np.arange(n) + rng.uniform(-0.3, 0.3, n)) * 2 * math.pi / n + rng.uniform(0, 2 * math.pi)
        radii = rng.uniform(0.6, 1.0, n)
        pts = np.stack([radii * np.cos(angles), radii * np.sin(angles)], 1)

        def polygon(u, v):  # even-odd crossing test
            inside = np.zeros(u.shape, dtype=bool)
            for (ax, ay), (bx, by) in zip(pts, np.roll(pts, -1, 0)):
                crosses = (ay > v) != (by > v)
                inside ^= crosses & (u < (bx - ax) * (v - ay) / (by - ay + 1e-12) + ax)
            return inside
        return polygon
    if kind == "ellipse":
        minor = rng.uniform(0.35, 0.9)
        return lambda u, v: (u / 0.95) ** 2 + (v / minor) ** 2 <= 1
    if kind == "box":
        hh = rng.uniform(0.35, 0.85)
        radius = rng.uniform(0, hh)
        return lambda u, v: _rounded_box(u, v, 0.9, hh, radius)
    # car-like silhouette: low body, cabin on top, two wheels, facing left or right
    shift, cabin_w, facing = rng.uniform(-0.15, 0.15), rng.uniform(0.35, 0.55), rng.choice([-1, 1])

    def car(u, v):
        u = u * facing
        body = _rounded_box(u, v - 0.1, 0.95, 0.22, 0.1)
        cabin = _rounded_box(u - shift, v + 0.2, cabin_w, 0.2, 0.12)
        wheels = (np.hypot(u + 0.55, v - 0.32) <= 0.2) | (np.hypot(u - 0.55, v - 0.32) <= 0.2)
        return body | cabin | wheels
    return car


SHAPES = ("blob", "star", "polygon", "ellipse", "box", "car")


def render_scene(seed, split, index, size):
    """(image uint8 [size, size, 3], mask uint8 [size, size] in {0, 255}) for one scene."""
    rng = np.random.default_rng([seed, SPLITS.index(split), index])
    big = size * SUPERSAMPLE
    yy, xx = np.mgrid[0:big, 0:big].astype(np.float32) / big
    bg = background(rng, big, yy, xx)
    kind = SHAPES[rng.integers(len(SHAPES))]
    inside_fn = make_shape(rng, kind)
    coverage = rng.uniform(0.1, 0.4)
    angle = rng.uniform(-0.5, 0.5) if kind == "car" else rng.uniform(0, 2 * math.pi)
    # The shape's area at unit half-extent, measured on the grid, sets the scale for the wanted coverage.
    area = max(inside_fn((xx - 0.5) * 2.4, (yy - 0.5) * 2.4).mean() * 2.4 ** 2, 1e-3)
    scale = math.sqrt(coverage / area)  # half extent as a fraction of the image side
    cx, cy = (rng.uniform(min(scale, 0.5), max(1 - scale, 0.5)) for _ in range(2))
    cos, sin = math.cos(angle), math.sin(angle)
    u = ((xx - cx) * cos + (yy - cy) * sin) / scale
    v = (-(xx - cx) * sin + (yy - cy) * cos) / scale
    inside = inside_fn(u, v)
    # Half the objects share a colour with the background, so colour alone cannot separate them.
    borrowed = bg[rng.integers(big), rng.integers(big)] if rng.random() < 0.5 else None
    fg = texture(rng, big, (v + 1) / 2, (u + 1) / 2, borrowed)
    style = rng.integers(3)
    if style == 0:  # shading: darker towards the rim, as a lit round object
        fg = fg * (1 - 0.35 * np.clip(np.hypot(u, v), 0, 1.2)[..., None] ** 2)
    elif style == 1:  # spots
        spots = smooth_noise(rng, big, rng.integers(5, 12)) > 0.7
        fg = np.where(spots[..., None], random_color(rng), fg)
    img = np.where(inside[..., None], fg, bg)
    img = img.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE, 3).mean((1, 3))
    mask = inside.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean((1, 3)) >= 0.5
    img = img + rng.normal(0, 0.015, img.shape)  # sensor-like noise
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), mask.astype(np.uint8) * 255


HORIZON_SHAPES = ("ring", "crescent", "cross", "heart", "arrow", "dumbbell")


def make_horizon_shape(rng, kind):
    """A random shape of the second family's `kind`: (u, v) -> inside, local coordinates within about [-1, 1]."""
    if kind == "ring":  # a hole: the background shows through the object
        inner = rng.uniform(0.3, 0.6)
        return lambda u, v: (np.hypot(u, v) <= 0.95) & (np.hypot(u, v) >= inner)
    if kind == "crescent":
        off, r2 = rng.uniform(0.3, 0.6), rng.uniform(0.7, 0.9)
        return lambda u, v: (np.hypot(u, v) <= 0.95) & (np.hypot(u - off, v) > r2)
    if kind == "cross":
        arm = rng.uniform(0.2, 0.4)
        return lambda u, v: ((np.abs(u) <= arm) & (np.abs(v) <= 0.95)) | ((np.abs(v) <= arm) & (np.abs(u) <= 0.95))
    if kind == "heart":
        return lambda u, v: (u ** 2 + (-v * 1.1 + 0.25) ** 2 - 0.6) ** 3 - u ** 2 * (-v * 1.1 + 0.25) ** 3 <= 0
    if kind == "arrow":
        shaft, head = rng.uniform(0.15, 0.3), rng.uniform(0.45, 0.8)
        return lambda u, v: (((u >= -0.95) & (u <= 0.2) & (np.abs(v) <= shaft))
                             | ((u > 0.2) & (u <= 0.95) & (np.abs(v) <= head * (0.95 - u) / 0.75)))
    bar = rng.uniform(0.1, 0.25)  # dumbbell: two discs joined by a bar
    return lambda u, v: ((np.hypot(u + 0.6, v) <= 0.38) | (np.hypot(u - 0.6, v) <= 0.38)
                         | ((np.abs(u) <= 0.6) & (np.abs(v) <= bar)))


def horizon_background(rng, size, yy, xx):
    """Sky (a vertical gradient with soft clouds) over ground (a texture seen in perspective), split by a
    wavy horizon at a random height."""
    level = rng.uniform(0.25, 0.75) + sum(rng.uniform(0, 0.04) * np.sin(2 * math.pi * k * xx + rng.uniform(0, 6.3))
                                          for k in (1, 2, 3))
    sky = palette_map(yy / max(float(level.max()), 1e-3), [random_color(rng), random_color(rng)])
    clouds = smooth_noise(rng, size, rng.integers(3, 7))[..., None]
    sky = sky * (1 - 0.5 * clouds) + 0.5 * clouds * random_color(rng)
    depth = np.clip(yy - level, 1e-3, None)
    ground = texture(rng, size, np.clip(0.05 / depth, 0, 4) % 1, ((xx - 0.5) / (depth + 0.1) + 0.5) % 1)
    haze = np.exp(-depth / 0.15)[..., None]  # fades into the horizon's colour
    ground = ground * (1 - 0.6 * haze) + 0.6 * haze * sky[np.clip((level * size).astype(int), 0, size - 1),
                                                          np.arange(size)[None, :].repeat(size, 0)]
    return np.where((yy < level)[..., None], sky, ground)


def render_horizon_scene(seed, split, index, size):
    """The second family (a generalization check): other backgrounds (sky over ground), other shapes (holes,
    crescents, crosses), 5-45 % coverage, centres anywhere (objects cut by the border), an outline on some
    objects and a cast shadow, which is background, on others. Same return values as render_scene."""
    rng = np.random.default_rng([seed, SPLITS.index(split), index, 2])
    big = size * SUPERSAMPLE
    yy, xx = np.mgrid[0:big, 0:big].astype(np.float32) / big
    bg = horizon_background(rng, big, yy, xx)
    kind = HORIZON_SHAPES[rng.integers(len(HORIZON_SHAPES))]
    inside_fn = make_horizon_shape(rng, kind)
    area = max(inside_fn((xx - 0.5) * 2.4, (yy - 0.5) * 2.4).mean() * 2.4 ** 2, 1e-3)
    scale = math.sqrt(rng.uniform(0.05, 0.45) / area)
    cx, cy = rng.uniform(0.05, 0.95, 2)
    angle = rng.uniform(0, 2 * math.pi)
    cos, sin = math.cos(angle), math.sin(angle)

    def local(dx=0.0, dy=0.0):
        x, y = xx - cx - dx, yy - cy - dy
        return (x * cos + y * sin) / scale, (-x * sin + y * cos) / scale

    u, v = local()
    inside = inside_fn(u, v)
    if rng.random() < 0.5:  # a shadow on the background, offset down and sideways
        shadow = inside_fn(*local(rng.uniform(-0.08, 0.08), rng.uniform(0.03, 0.1))) & ~inside
        bg = np.where(shadow[..., None], bg * rng.uniform(0.35, 0.65), bg)
    borrowed = bg[rng.integers(big), rng.integers(big)] if rng.random() < 0.5 else None
    fg = texture(rng, big, (v + 1) / 2, (u + 1) / 2, borrowed)
    if rng.random() < 0.4:  # a dark outline
        rim = inside & ~inside_fn(u * 1.12, v * 1.12)
        fg = np.where(rim[..., None], fg * 0.25, fg)
    img = np.where(inside[..., None], fg, bg)
    img = img.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE, 3).mean((1, 3))
    mask = inside.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean((1, 3)) >= 0.5
    img = img + rng.normal(0, 0.015, img.shape)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), mask.astype(np.uint8) * 255


FAMILIES = {"shapes": render_scene, "horizon": render_horizon_scene}


def scene_key(seed, split, index):
    return hashlib.sha1(f"layered-gan-synthetic-{seed}-{split}-{index}".encode()).hexdigest().encode()


def _encode(job):
    seed, split, index, size, family = job
    img, mask = FAMILIES[family](seed, split, index, size)
    ib, mb = io.BytesIO(), io.BytesIO()
    Image.fromarray(img).save(ib, format="WEBP", quality=92, method=2)
    Image.fromarray(mask).save(mb, format="PNG", optimize=False)
    return scene_key(seed, split, index), ib.getvalue(), mb.getvalue()


def default_root(resolution, count, test_count, seed, family="shapes"):
    prefix = "" if family == "shapes" else f"{family}-"
    return cache_dir("synthetic", f"{prefix}v{VERSION}-{resolution}px-{count}-{test_count}-seed{seed}")


def build_synthetic(root=None, resolution=64, count=20000, test_count=2000, seed=0, workers=None, progress=True,
                    family="shapes"):
    """Create the dataset at root (default: a cache folder named by the parameters) unless it exists.

    family: "shapes" (the demos' scenes) or "horizon" (render_horizon_scene: a scene family none of the demos'
    settings were chosen on, to check that they carry over).

    Written to ROOT.partial and renamed when complete, so an interrupted build
    is never mistaken for a finished one. Returns the root.
    """
    if not 32 <= resolution <= 128:
        raise BadValue(f"synthetic resolution must be between 32 and 128, got {resolution}")
    if family not in FAMILIES:
        raise BadValue(f"synthetic family must be one of {', '.join(FAMILIES)}, got {family!r}")
    root = root or default_root(resolution, count, test_count, seed, family)
    manifest = dict(version=VERSION, resolution=resolution, seed=seed, counts={"train": count, "test": test_count},
                    **({} if family == "shapes" else {"family": family}))
    existing = os.path.join(root, "manifest.json")
    if os.path.isfile(existing):
        with open(existing) as fh:
            found = json.load(fh)
        if found != manifest:
            raise BadValue(f"{root} holds a different synthetic dataset ({found}); choose another folder")
        return root
    partial = root.rstrip("/") + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    workers = workers or os.cpu_count() or 1
    jobs = [(seed, split, i, resolution, family) for split in SPLITS for i in range(manifest["counts"][split])]
    bar = tqdm(total=len(jobs), desc=f"synthetic {resolution}px", unit="img", disable=not progress)
    envs = {}
    for split in SPLITS:
        for part in ("images", "masks"):
            os.makedirs(os.path.join(partial, split, part))
            envs[split, part] = lmdb.open(os.path.join(partial, split, part), map_size=1 << 36)
    with multiprocessing.get_context("spawn" if workers > 1 else "fork").Pool(workers) as pool:
        for split in SPLITS:
            split_jobs = [j for j in jobs if j[1] == split]
            with envs[split, "images"].begin(write=True) as ti, envs[split, "masks"].begin(write=True) as tm:
                for key, img, mask in pool.imap(_encode, split_jobs, chunksize=64):
                    ti.put(key, img)
                    tm.put(key, mask)
                    bar.update()
    bar.close()
    for env in envs.values():
        env.close()
    with open(os.path.join(partial, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=2)
    os.makedirs(os.path.dirname(os.path.abspath(root)), exist_ok=True)
    os.replace(partial, root)
    return root


def split_paths(root, split):
    """(images LMDB, masks LMDB) of a split."""
    if split not in SPLITS:
        raise BadValue(f"split must be one of {SPLITS}, got {split!r}")
    return os.path.join(root, split, "images"), os.path.join(root, split, "masks")
