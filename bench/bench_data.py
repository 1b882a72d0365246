"""Data benchmarks: synthetic dataset build time and baselines; loader throughput.

    python bench/bench_data.py                       # everything, in a temporary folder
    python bench/bench_data.py --skip-synthetic      # loader throughput only

Loader: images/s through ImageDataset + DataLoader (batch 32, random crop,
flip) from a prepared LMDB at 64 and 128 px and from a raw LMDB of 256-px WebP
images, with 0, 1 and 2 workers.
"""

import io
import os
import sys
import tempfile
import time

import click
import lmdb
import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from layered_gan.data import ImageDataset, open_reader  # noqa: E402
from layered_gan.data.synthetic import build_synthetic, render_scene, split_paths  # noqa: E402
from layered_gan.evaluation.baselines import centre_disc, full_mask, kmeans_mask  # noqa: E402
from layered_gan.evaluation.metrics import mean_iou  # noqa: E402
from layered_gan.prepare import prepare  # noqa: E402


def synthetic_section(tmp, count, test_count):
    start = time.time()
    root = build_synthetic(os.path.join(tmp, "synthetic"), 64, count, test_count, seed=0)
    seconds = time.time() - start
    print(f"\nsynthetic: {count} + {test_count} scenes at 64 px built in {seconds:.1f} s "
          f"({(count + test_count) / seconds:.0f} scenes/s, {os.cpu_count()} processes)")
    images, masks = split_paths(root, "test")
    img_reader, mask_reader = open_reader(images), open_reader(masks)
    imgs, gts = [], []
    for i in range(len(img_reader)):
        imgs.append(np.asarray(img_reader.read(i)))
        gts.append(np.asarray(mask_reader.read(i))[..., 0] > 127)
    gts = np.stack(gts)
    preds = {
        "full mask": np.broadcast_to(full_mask(64), gts.shape),
        "centre disc (25 %)": np.broadcast_to(centre_disc(64), gts.shape),
        "colour k-means (2 clusters)": np.stack([kmeans_mask(im) for im in tqdm(imgs, desc="k-means")]),
    }
    print(f"baselines on the held-out split ({len(gts)} images, mean coverage {gts.mean():.3f}), per-image mean:")
    for name, pred in preds.items():
        miou, fg = mean_iou(pred, gts)
        print(f"  {name:28s} mIoU {miou:.3f}   foreground IoU {fg:.3f}")


def make_raw_lmdb(path, n, size=256):
    env = lmdb.open(path, map_size=1 << 34)
    with env.begin(write=True) as txn:
        for i in tqdm(range(n), desc="raw 256-px WebP LMDB"):
            img, _ = render_scene(1, "train", i, 128)
            buf = io.BytesIO()
            Image.fromarray(img).resize((size, size), Image.BICUBIC).save(buf, format="WEBP", quality=90)
            txn.put(f"{i:040x}".encode(), buf.getvalue())
    env.close()
    return path


def loader_rate(path, resolution, workers, seconds=6.0):
    ds = ImageDataset(path, resolution, crop="random", org_to_crop=1.125, hflip=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=32, shuffle=True, num_workers=workers, drop_last=True,
                                         persistent_workers=workers > 0)
    n, start, warm = 0, None, 2
    while start is None or time.time() - start < seconds:
        for batch in loader:
            if warm:
                warm -= 1
                if not warm:
                    start = time.time()
                continue
            n += batch.shape[0]
            if time.time() - start >= seconds:
                break
    return n / (time.time() - start)


def loader_section(tmp, n):
    raw = make_raw_lmdb(os.path.join(tmp, "raw256"), n)
    prepared = os.path.join(tmp, "prepared")
    prepare(raw, prepared, [64, 128], org_to_crop=1.125, workers=os.cpu_count() or 1)
    print(f"\nloader throughput, images/s (batch 32, random crop + flip; {n} source images):")
    print(f"  {'source':34s} {'px':>4s} {'0 workers':>10s} {'1 worker':>10s} {'2 workers':>10s}")
    for label, path in (("prepared LMDB (JPEG 72/144 px)", prepared), ("raw LMDB (WebP 256 px)", raw)):
        for res in (64, 128):
            rates = [loader_rate(path, res, w) for w in (0, 1, 2)]
            print(f"  {label:34s} {res:4d} " + " ".join(f"{r:10.0f}" for r in rates))


@click.command()
@click.option("--count", default=20000, show_default=True, help="Synthetic training scenes.")
@click.option("--test-count", default=2000, show_default=True)
@click.option("--loader-images", default=3000, show_default=True, help="Images in the loader benchmark's LMDBs.")
@click.option("--skip-synthetic", is_flag=True)
@click.option("--skip-loader", is_flag=True)
def main(count, test_count, loader_images, skip_synthetic, skip_loader):
    print(f"torch {torch.__version__}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        if not skip_synthetic:
            synthetic_section(tmp, count, test_count)
        if not skip_loader:
            loader_section(tmp, loader_images)


if __name__ == "__main__":
    main()
