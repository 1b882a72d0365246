"""Image sources: raw LSUN LMDB exports, prepared multi-resolution LMDBs, image folders.

A reader maps an index to a key and a key to a decoded RGB PIL image.
LMDB environments open lazily, read-only and lock-free, once per process, so
DataLoader workers and several training processes can share one file.
`open_reader(path)` picks the reader from what the path holds.
"""

import hashlib
import io
import os
import warnings

import lmdb
import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import BadValue, MissingPath
from ..paths import cache_dir

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
PROBE_ENTRIES = 32  # entries decoded when a source is opened, to catch broken data early
MAX_PIXELS = 8192 * 8192  # larger images are skipped like undecodable ones (decoding one would take gigabytes)


class DecodeError(ValueError):
    pass


def to_rgb(img):
    """Any PIL mode (L, LA, P, RGBA, CMYK, 16- and 32-bit) as 8-bit RGB; alpha is dropped."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255 + 0.5, 0, 255).astype(np.uint8), "L")
    elif img.mode == "P":
        img = img.convert("RGBA")
    return img if img.mode == "RGB" else img.convert("RGB")


def open_image(data, name=""):
    """Encoded bytes (WebP, JPEG, PNG, ...) to a PIL image as stored (a palette or 16-bit mode kept);
    DecodeError if they are not an image or it has more than MAX_PIXELS pixels (checked from the header,
    before anything is decoded)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # MAX_PIXELS decides
            img = Image.open(io.BytesIO(data))
            if img.width * img.height > MAX_PIXELS:
                raise DecodeError(f"cannot decode image {name}: {img.width} x {img.height} pixels is over the "
                                  f"limit of {MAX_PIXELS} (layered_gan.data.readers.MAX_PIXELS)")
            img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        if isinstance(exc, DecodeError):
            raise
        raise DecodeError(f"cannot decode image {name}: {exc}") from None
    return img


def decode_image(data, name="", raw=False):
    """Encoded bytes to an RGB PIL image (with raw, as stored: open_image)."""
    img = open_image(data, name)
    return img if raw else to_rgb(img)


_environments = {}  # absolute path -> (pid, environment): LMDB allows one open per process


class _Lmdb:
    """Lazy, per-process, shared read-only environment."""

    def __init__(self, path):
        self.path = path

    def env(self):
        path = os.path.abspath(self.path)
        pid, env = _environments.get(path, (None, None))
        if pid != os.getpid():
            if env is not None:  # inherited through fork (DataLoader workers): drop this process's copy
                env.close()
            env = lmdb.open(self.path, readonly=True, lock=False, readahead=False, meminit=False, max_readers=1024)
            _environments[path] = (os.getpid(), env)
        return env

    def get(self, key):
        with self.env().begin(write=False) as txn:
            return txn.get(key)


def release_lmdb(path):
    """Close this process's read-only environment for path, if any (before opening it for writing)."""
    pid, env = _environments.pop(os.path.abspath(path), (None, None))
    if env is not None:
        env.close()


def is_lmdb(path):
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "data.mdb"))


def is_prepared_lmdb(path):
    """An LMDB with a `length` entry (a prepared multi-resolution one), not a raw export."""
    return is_lmdb(path) and _Lmdb(path).get(b"length") is not None


class LSUNLmdbReader:
    """Raw LSUN export: key = image id, value = encoded image; no count entry.

    Listing the keys of millions of entries is slow, so the key list is cached
    (next to the data when writable, else under ~/.cache/layered_gan) and
    reused while the database is unchanged. max_images: the first N keys in
    database order.
    """

    kind = "lsun-lmdb"

    def __init__(self, path, max_images=None):
        self.path = path
        self.db = _Lmdb(path)
        self.listed_keys = False  # whether this open had to walk the database
        self.keys = self._load_keys(max_images)
        if not self.keys:
            raise BadValue(f"LMDB {path} holds no entries; expected one encoded image per key")

    def _cache_paths(self):
        stat = os.stat(os.path.join(self.path, "data.mdb"))
        tag = f"{stat.st_size}-{int(stat.st_mtime)}"
        name = f"keys-{tag}.npz"
        beside = os.path.join(self.path, "layered_gan_" + name)
        digest = hashlib.sha1(os.path.abspath(self.path).encode()).hexdigest()[:16]
        elsewhere = cache_dir("lmdb_keys", f"{digest}-{name}")
        return beside, elsewhere

    def _load_keys(self, max_images):
        for path in self._cache_paths():
            if os.path.isfile(path):
                with np.load(path, allow_pickle=False) as data:
                    offsets, blob = data["offsets"], data["blob"].tobytes()
                n = len(offsets) - 1 if max_images is None else min(max_images, len(offsets) - 1)
                return [blob[offsets[i]:offsets[i + 1]] for i in range(n)]
        self.listed_keys = True
        keys = []
        with self.db.env().begin(write=False) as txn:
            for key in txn.cursor().iternext(keys=True, values=False):
                keys.append(bytes(key))
                if max_images is not None and len(keys) >= max_images:
                    return keys  # a partial listing is not cached
        self._save_keys(keys)
        return keys

    def _save_keys(self, keys):
        offsets = np.zeros(len(keys) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(k) for k in keys])
        blob = np.frombuffer(b"".join(keys), dtype=np.uint8)
        for path in self._cache_paths():
            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                tmp = f"{path}.tmp-{os.getpid()}.npz"
                np.savez(tmp, offsets=offsets, blob=blob)
                os.replace(tmp, path)
                return
            except OSError:
                continue  # read-only data folder: try the cache folder

    def __len__(self):
        return len(self.keys)

    def key(self, index):
        return self.keys[index]

    def read_bytes(self, key):
        data = self.db.get(key)
        if data is None:
            raise KeyError(f"no key {key!r} in {self.path}")
        return data

    def read(self, index, size=None, raw=False):
        key = self.keys[index]
        return decode_image(self.read_bytes(key), f"{key.decode(errors='replace')} in {self.path}", raw)


class PreparedLmdbReader:
    """Multi-resolution LMDB (the StyleGAN2 port's layout): keys f"{size}-{index:05d}" and `length`;
    a size not stored is made on reading from the nearest larger stored one."""

    kind = "prepared-lmdb"

    def __init__(self, path, max_images=None):
        self.path = path
        self.db = _Lmdb(path)
        length = self.db.get(b"length")
        if length is None:
            raise BadValue(f"LMDB {path} has no `length` entry; it is not a prepared multi-resolution LMDB")
        self.length = int(length.decode())
        if max_images is not None:
            self.length = min(self.length, max_images)
        self.sizes = self._find_sizes()
        if not self.sizes or self.length == 0:
            raise BadValue(f"prepared LMDB {path} holds no images")

    def _find_sizes(self):
        """Distinct key prefixes, one seek each ('.' sorts right after '-')."""
        sizes = []
        with self.db.env().begin(write=False) as txn:
            cursor = txn.cursor()
            found = cursor.first()
            while found:
                prefix = bytes(cursor.key()).split(b"-", 1)[0]
                if prefix.isdigit() and bytes(cursor.key()).startswith(prefix + b"-"):
                    sizes.append(int(prefix))
                found = cursor.set_range(prefix + b".")
        return sorted(sizes)

    def __len__(self):
        return self.length

    def key(self, index):
        return f"{index:05d}".encode()

    def source_size(self, size):
        """The stored size that `size` is read from: itself, else the nearest larger one (resized on reading)."""
        larger = [s for s in self.sizes if s >= size]
        if not larger:
            raise BadValue(f"prepared LMDB {self.path} has no images at {size}x{size} or larger; "
                           f"it holds sizes {', '.join(map(str, self.sizes))}")
        return larger[0]

    def read_bytes(self, key, size):
        data = self.db.get(f"{size}-".encode() + key)
        if data is None:
            raise KeyError(f"no entry {size}-{key.decode()} in {self.path}")
        return data

    def read(self, index, size=None, raw=False):
        """The image at `size` (default: the largest stored); a size not stored is downsampled (Lanczos) from
        the nearest larger stored one, which shows the same region: every stored size is the whole image."""
        size = size if size is not None else self.sizes[-1]
        stored = self.source_size(size)
        img = decode_image(self.read_bytes(self.key(index), stored), f"{stored}-{index:05d} in {self.path}", raw)
        return img if stored == size else img.resize((size, size), Image.LANCZOS)


class ImageFolderReader:
    """png, jpg, jpeg, webp and bmp files found recursively, in sorted order; key = relative path."""

    kind = "folder"

    def __init__(self, path, max_images=None):
        self.path = path
        files = []
        for root, _, names in os.walk(path):
            files += [os.path.join(root, n) for n in names if n.lower().endswith(IMAGE_EXTENSIONS)]
        files = sorted(os.path.relpath(f, path) for f in files)
        if not files:
            raise BadValue(f"folder {path} holds no images (expected {', '.join(IMAGE_EXTENSIONS)} files)")
        self.files = files[:max_images]

    def __len__(self):
        return len(self.files)

    def key(self, index):
        return self.files[index].encode()

    def read_bytes(self, key):
        with open(os.path.join(self.path, key.decode()), "rb") as fh:
            return fh.read()

    def read(self, index, size=None, raw=False):
        return decode_image(self.read_bytes(self.key(index)), os.path.join(self.path, self.files[index]), raw)


def open_reader(path, max_images=None):
    """The reader for what `path` holds: an LMDB folder (raw or prepared) or a folder of images."""
    if not os.path.exists(path):
        raise MissingPath(f"dataset path {path} does not exist; expected an LMDB folder (with data.mdb) "
                          "or a folder of images")
    if not os.path.isdir(path):
        raise BadValue(f"dataset path {path} is a file; expected an LMDB folder (with data.mdb) or a folder of images")
    if is_lmdb(path):
        reader = (PreparedLmdbReader if is_prepared_lmdb(path) else LSUNLmdbReader)(path, max_images)
    else:
        reader = ImageFolderReader(path, max_images)
    probe_decoding(reader)
    return reader


def probe_decoding(reader):
    """Decode up to PROBE_ENTRIES entries spread over the source: most failing is an error, some a warning."""
    n = len(reader)
    indices = sorted(set(np.linspace(0, n - 1, min(n, PROBE_ENTRIES)).round().astype(int).tolist()))
    failed = []
    for i in indices:
        try:
            reader.read(i)
        except DecodeError as exc:
            failed.append(str(exc))
    if len(failed) * 2 > len(indices):
        raise BadValue(f"{reader.path}: {len(failed)} of {len(indices)} sampled entries could not be decoded "
                       f"(first: {failed[0]}); is this an image dataset?")
    if failed:
        warnings.warn(f"{reader.path}: {len(failed)} of {len(indices)} sampled entries could not be decoded; "
                      "such entries are skipped (the next good one is used instead)", RuntimeWarning)
