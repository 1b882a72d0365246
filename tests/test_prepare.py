import os

import numpy as np
import pytest
from PIL import Image

import layered_gan.prepare as prep
from layered_gan.data import ImageDataset, open_reader
from layered_gan.data.readers import PreparedLmdbReader


def make_folder(path, n=10, corrupt=(4,)):
    path.mkdir()
    for i in range(n):
        if i in corrupt:
            (path / f"{i:03d}.png").write_bytes(b"broken")
        else:
            arr = np.zeros((30, 50, 3), np.uint8)
            arr[..., 0] = 20 * i
            Image.fromarray(arr).save(path / f"{i:03d}.png")
    return str(path)


def test_prepare_writes_the_port_layout(tmp_path):
    src = make_folder(tmp_path / "src")
    out = str(tmp_path / "out")
    with pytest.warns(RuntimeWarning, match="could not be decoded"):
        written, skipped = prep.prepare(src, out, [16, 32], org_to_crop=1.125, workers=2, progress=False)
    assert (written, skipped) == (9, 1)
    reader = open_reader(out)
    assert isinstance(reader, PreparedLmdbReader) and reader.sizes == [18, 36] and len(reader) == 9
    means = [np.asarray(reader.read(i, 18))[..., 0].mean() for i in range(9)]
    assert np.allclose(means, [20 * i for i in range(10) if i != 4], atol=2)  # order kept, broken one dropped
    assert ImageDataset(out, 32, crop="random", org_to_crop=1.125)[0].shape == (3, 32, 32)
    with pytest.raises(FileExistsError, match="already exists"):
        prep.prepare(src, out, [16], progress=False)


def test_interrupted_prepare_resumes_and_is_never_mistaken_for_finished(tmp_path, monkeypatch):
    src = make_folder(tmp_path / "src", n=12, corrupt=())
    out = str(tmp_path / "out")

    class InterruptingBar:
        def __init__(self, *a, **kw):
            self.n = 0

        def update(self):
            self.n += 1
            if self.n == 7:
                raise KeyboardInterrupt

        def close(self):
            pass

    monkeypatch.setattr(prep, "tqdm", InterruptingBar)
    with pytest.raises(KeyboardInterrupt):
        prep.prepare(src, out, [16], workers=1, batch=3, progress=False)
    assert not os.path.exists(out) and os.path.isdir(out + ".partial")
    with pytest.raises(ValueError, match="no `length` entry"):
        PreparedLmdbReader(out + ".partial")
    with pytest.raises(ValueError, match="other settings"):
        prep.prepare(src, out, [32], workers=1, progress=False)
    monkeypatch.undo()
    written, _ = prep.prepare(src, out, [16], workers=1, progress=False)
    assert written == 12 and not os.path.exists(out + ".partial")
    fresh = str(tmp_path / "fresh")
    prep.prepare(src, fresh, [16], workers=1, progress=False)
    a, b = open_reader(out), open_reader(fresh)
    assert len(a) == len(b) == 12
    assert all(a.read_bytes(a.key(i), 16) == b.read_bytes(b.key(i), 16) for i in range(12))
