import os

import numpy as np
import pytest
from PIL import Image

import layered_gan.prepare as prep
from layered_gan.config import load_config
from layered_gan.data import ImageDataset, open_reader
from layered_gan.data.dataset import check_data
from layered_gan.data.readers import PreparedLmdbReader
from layered_gan.errors import BadValue
from layered_gan.training.loop import train


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


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    """The README's recipe (--size 64 --size 128 --org-to-crop 1.125) on 12 smooth 160 px images: (SRC, OUT)."""
    root = tmp_path_factory.mktemp("recipe")
    src = root / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        coarse = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize((160, 160), Image.BICUBIC).save(src / f"{i:02d}.png")
    out = str(root / "out")
    prep.prepare(str(src), out, [64, 128], org_to_crop=1.125, workers=1, progress=False)
    return str(src), out


def test_readme_recipe_gives_every_size_of_the_progressive_schedule(recipe):
    src, out = recipe
    reader = open_reader(out)
    assert reader.sizes == [72, 144]
    for res in (8, 16, 32, 64, 128):
        ds = ImageDataset(out, res, crop="random", org_to_crop=1.125)
        assert ds.read_sizes == [round(1.125 * res)] and ds[3].shape == (3, res, res)
    originals = [Image.open(os.path.join(src, f"{i:02d}.png")).convert("RGB") for i in range(12)]
    for res in (8, 16, 32):  # centre crops of a prepared square: the whole image, made from the 72 px one
        ds = ImageDataset(out, res, crop="center")
        for i in (0, 5):
            ref = np.asarray(originals[i].resize((res, res), Image.LANCZOS), np.float32)
            got = (ds[i].numpy().transpose(1, 2, 0) + 1) * 127.5
            other = np.asarray(originals[i + 1].resize((res, res), Image.LANCZOS), np.float32)
            assert np.abs(got - ref).mean() < 6 < np.abs(got - other).mean()
    derived = np.asarray(reader.read(2, 36), np.float32)  # the 32 px random crops' source, from the 72 px images
    ref = np.asarray(originals[2].resize((36, 36), Image.LANCZOS), np.float32)
    assert derived.shape == (36, 36, 3) and np.abs(derived - ref).mean() < 6


def test_data_lacking_a_config_size_is_named_with_the_command_that_makes_it(recipe, tmp_path):
    _, out = recipe
    folder = make_folder(tmp_path / "folder", n=2, corrupt=())
    data = {"source": [folder, out], "crop": "random", "org_to_crop": 1.125}
    check_data(data, [8, 16, 32, 64, 128])  # the recipe's sizes serve a 128 px run
    with pytest.raises(BadValue) as info:
        check_data(data, [8, 16, 32, 64, 128, 256])
    message = str(info.value)
    assert "\n" not in message and out in message and "holds sizes 72, 144" in message
    assert "256 px" in message and "needs 288x288" in message
    assert "`layered-gan prepare SRC NEW_OUT --size 256 --org-to-crop 1.125`" in message
    with pytest.raises(BadValue, match=r"--size 256` on the original"):
        check_data({"source": out, "crop": "center"}, [128, 256])
    check_data({"source": folder}, [1024])  # a folder's images are resized to any size


def test_readme_recipe_trains_through_every_phase(recipe, tmp_path, monkeypatch):
    """layered-gan train --cfg perturb_car128 --data OUT, at toy width: 8 -> 16 -> 32 -> 64 -> 128 px."""
    monkeypatch.setenv("LAYERED_GAN_CACHE", str(tmp_path / "cache"))
    cfg = load_config("perturb_car128", [
        f"data.source={recipe[1]}",
        'model={"init": null, "resolution": 128, "z_dim": 16, "w_dim": 16, "n_mlp": 1, "channel_base": 64, '
        '"channel_max": 4, "variant": "two", "mbstd_group": 4}',
        'schedule={"start_resolution": 8, "phase_kimg": 0.004, "fade_fraction": 0.5, "total_kimg": 0.02, '
        '"batch": 4, "lr": 0.002}',
        "workers=0", "log.tick_kimg=0.004", "log.checkpoint_kimg=1000", "log.grid_size=2"])
    seen = []
    real_getitem = ImageDataset.__getitem__
    monkeypatch.setattr(ImageDataset, "__getitem__", lambda ds, index: seen.append(ds.resolution) or
                        real_getitem(ds, index))
    train(cfg, str(tmp_path / "run"))
    assert sorted(set(seen)) == [8, 16, 32, 64, 128]
    assert os.path.isfile(tmp_path / "run" / "checkpoint.pt")


def test_train_refuses_data_lacking_a_size_before_writing_anything(tmp_path):
    """`train --cfg perturb_car128` on a prepared LMDB of 64 px only: one line, exit 2, with the prepare command; the
    output folder is never made."""
    from click.testing import CliRunner

    from layered_gan.cli import main

    src = make_folder(tmp_path / "src", n=3, corrupt=())
    out = str(tmp_path / "p64")
    prep.prepare(src, out, [64], org_to_crop=1.125, workers=1, progress=False)
    result = CliRunner().invoke(main, ["train", "--cfg", "perturb_car128", "--data", out, "--out",
                                       str(tmp_path / "run"), "--device", "cpu"])
    assert result.exit_code == 2 and "--size 128 --org-to-crop 1.125" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "run").exists()
