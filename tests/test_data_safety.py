"""One image never stops a dataset (issue 17): huge images are skipped by name like undecodable ones, extreme
aspect ratios are cropped in bounded memory, and prepare checks its options before creating anything."""

import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from layered_gan.cli import main as cli
from layered_gan.data.dataset import ImageDataset
from layered_gan.data.readers import DecodeError, decode_image
from layered_gan.prepare import prepare

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_huge_png(path, width, height):
    """A grey width x height PNG written from a zlib stream, row by row: the image is never held in memory."""
    compressor = zlib.compressobj(9)
    row = b"\x00" + b"\x80" * width  # filter byte, then the row
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)))
        fh.write(png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b""))
    return os.path.getsize(path)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    for name in ("a", "c"):
        Image.fromarray(np.full((40, 48, 3), 200 if name == "a" else 50, np.uint8)).save(root / f"{name}.png")
    assert write_huge_png(root / "b.png", 20000, 20000) < 2_000_000  # 400 M pixels in under 2 MB
    return root


def test_a_huge_image_is_refused_by_name_before_decoding(folder):
    with pytest.raises(DecodeError, match="b.png.*20000 x 20000 pixels is over the limit|b.png.*exceeds limit"):
        decode_image((folder / "b.png").read_bytes(), str(folder / "b.png"))


def test_training_data_skips_a_huge_image_and_counts_it(folder):
    with pytest.warns(RuntimeWarning, match="could not be decoded"):
        ds = ImageDataset(str(folder), 32, crop="center")
    with pytest.warns(RuntimeWarning, match="b.png"):
        x = ds[1]  # b.png is entry 1: the next good entry (c.png) stands in
    assert ds.skipped == 1 and x.shape == (3, 32, 32)
    assert abs(float(x.mean()) - (50 / 127.5 - 1)) < 1e-6


def test_prepare_skips_a_huge_image_and_finishes(folder, tmp_path):
    out = tmp_path / "prepared"
    with pytest.warns(RuntimeWarning):
        written, skipped = prepare(str(folder), str(out), [16], workers=1, progress=False)
    assert (written, skipped) == (2, 1)
    assert out.is_dir() and not os.path.exists(str(out) + ".partial")


def test_an_extreme_aspect_ratio_is_cropped_in_bounded_memory(tmp_path):
    Image.fromarray(np.full((60000, 1, 3), 90, np.uint8)).save(tmp_path / "tall.png")
    code = f"""
import resource, numpy as np
from layered_gan.data.dataset import ImageDataset
from layered_gan.prepare import resize_for_storage
from layered_gan.data.readers import open_reader
ds = ImageDataset({str(tmp_path)!r}, 64, crop="center")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
x = ds[0]
img = resize_for_storage(open_reader({str(tmp_path)!r}).read(0), 64, "center")
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(grown // 1024, tuple(x.shape), img.size, float(x.mean()))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    fields = out.stdout.strip().split(" ")
    assert int(fields[0]) < 300, out.stdout  # a full resize to 64 x 3 840 000 would take about 740 MB
    assert "(3, 64, 64)" in out.stdout and "(64, 64)" in out.stdout
    assert abs(float(fields[-1]) - (90 / 127.5 - 1)) < 1e-4


@pytest.mark.parametrize("option, value, words", [
    ("--workers", "0", ["--workers", "0"]),
    ("--quality", "500", ["--quality", "500"]),
    ("--size", "2", ["--size (16, 2)", ">= 4"]),
    ("--org-to-crop", "0.5", ["--org-to-crop 0.5", ">= 1"]),
])
def test_prepare_checks_its_options_before_creating_anything(folder, tmp_path, option, value, words):
    out = tmp_path / "prepared"
    args = ["prepare", str(folder), str(out), "--size", "16", option, value]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert "\n" not in line and all(w in line for w in words), line
    assert not out.exists() and not os.path.exists(str(out) + ".partial")
