"""Build a prepared multi-resolution LMDB (the StyleGAN2 port's layout) from any image source.

    layered-gan prepare SRC OUT --size 64 --size 128 [--org-to-crop 1.125]

Keys f"{size}-{index:05d}" hold JPEGs, `length` the count. Sizes are stored at
round(org_to_crop x size), so training can random-crop `size` from them
(PerturbGAN) without resizing. Only the sizes given are written: training reads
a size not stored (the small ones of a progressive schedule) by downsampling
the nearest larger stored one, so the largest size is enough. Work goes to
OUT.partial, committed in batches with its progress; a rerun resumes there,
and only a finished database is renamed to OUT, so a half-written one is
never mistaken for a finished one.
"""

import io
import json
import multiprocessing
import os

import lmdb
from PIL import Image
from tqdm import tqdm

from .data.dataset import resize_crop
from .data.readers import DecodeError, open_reader, release_lmdb
from .errors import BadValue
from .errors import PathExists

_worker = {}


def _init_worker(src, max_images):
    _worker["reader"] = open_reader(src, max_images)


def resize_for_storage(img, size, crop):
    """'squash': resize to size x size ignoring the aspect ratio; 'center': shorter side, then centre crop."""
    if crop == "squash":
        return img.resize((size, size), Image.LANCZOS)
    scale = size / min(img.size)
    w, h = max(size, round(img.width * scale)), max(size, round(img.height * scale))
    left, top = (w - size) // 2, (h - size) // 2
    return resize_crop(img, w, h, (left, top, left + size, top + size), Image.LANCZOS)


def _encode(job):
    index, sizes, crop, quality = job
    try:
        img = _worker["reader"].read(index)
    except DecodeError:
        return index, None
    out = {}
    for size in sizes:
        buf = io.BytesIO()
        resize_for_storage(img, size, crop).save(buf, format="JPEG", quality=quality)
        out[size] = buf.getvalue()
    return index, out


def check_options(sizes, org_to_crop, crop, quality, workers, max_images, batch):
    """Refuse invalid options before anything is created (one BadValue naming each bad option)."""
    def count(v, low=1):
        return isinstance(v, int) and not isinstance(v, bool) and v >= low

    checks = [("--size", bool(sizes) and all(count(s, 4) for s in sizes), "one or more integers >= 4", sizes),
              ("--org-to-crop", isinstance(org_to_crop, (int, float)) and org_to_crop >= 1, "a number >= 1",
               org_to_crop),
              ("--crop", crop in ("squash", "center"), "squash or center", crop),
              ("--quality", count(quality) and quality <= 100, "an integer in 1..100", quality),
              ("--workers", count(workers), "a positive integer", workers),
              ("--max-images", max_images is None or count(max_images), "a positive integer", max_images),
              ("batch", count(batch), "a positive integer", batch)]
    errors = [f"{name} {value!r}: expected {what}" for name, ok, what, value in checks if not ok]
    if errors:
        raise BadValue("; ".join(errors))


def prepare(src, out, sizes, org_to_crop=1.0, crop="squash", quality=95, workers=1, max_images=None,
            batch=256, progress=True):
    """Write the prepared LMDB; returns (images written, entries skipped as undecodable)."""
    if os.path.exists(out):
        raise PathExists(f"{out} already exists; remove it or choose another output folder")
    check_options(sizes, org_to_crop, crop, quality, workers, max_images, batch)
    stored = sorted({round(org_to_crop * s) for s in sizes})
    reader = open_reader(src, max_images)
    args = dict(src=os.path.abspath(src), sizes=stored, crop=crop, quality=quality, total=len(reader))
    partial = out.rstrip("/") + ".partial"
    release_lmdb(partial)
    env = lmdb.open(partial, map_size=1 << 40)
    try:
        written, skipped = _write(env, partial, args, src, max_images, workers, batch, progress)
    finally:
        env.close()
    os.replace(partial, out)
    return written, skipped


def _write(env, partial, args, src, max_images, workers, batch, progress):
    """Encode args["total"] images in worker processes into env, committing progress every `batch`."""
    with env.begin() as txn:
        saved = txn.get(b"prepare_args")
        state = json.loads(txn.get(b"progress", b'{"next": 0, "written": 0, "skipped": 0}'))
    if saved is not None and json.loads(saved) != args:
        raise BadValue(f"{partial} is an unfinished run with other settings ({saved.decode()}); delete it to restart")
    total = args["total"]
    bar = tqdm(total=total, initial=state["next"], desc=f"prepare {args['sizes']}", unit="img", disable=not progress)
    jobs = ((i, args["sizes"], args["crop"], args["quality"]) for i in range(state["next"], total))
    with multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(src, max_images)) as pool:
        txn = env.begin(write=True)
        try:
            txn.put(b"prepare_args", json.dumps(args).encode())
            for n, (index, encoded) in enumerate(pool.imap(_encode, jobs, chunksize=16), 1):
                if encoded is None:
                    state["skipped"] += 1
                else:
                    for size, data in encoded.items():
                        txn.put(f"{size}-{state['written']:05d}".encode(), data)
                    state["written"] += 1
                state["next"] = index + 1
                bar.update()
                if n % batch == 0:  # one commit records the images and the progress together
                    txn.put(b"progress", json.dumps(state).encode())
                    txn.commit()
                    txn = env.begin(write=True)
            txn.put(b"length", str(state["written"]).encode())
            txn.delete(b"prepare_args")
            txn.delete(b"progress")
            txn.commit()
        except BaseException:
            txn.abort()  # the last committed batch and its progress stay
            raise
    bar.close()
    return state["written"], state["skipped"]
