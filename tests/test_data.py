import io
import os

import lmdb
import numpy as np
import pytest
import torch
from PIL import Image

from layered_gan.data import ImageDataset, open_reader
from layered_gan.data.dataset import crop_box
from layered_gan.data.readers import LSUNLmdbReader, PreparedLmdbReader, decode_image, to_rgb
from layered_gan.data.synthetic import FAMILIES, build_synthetic, render_horizon_scene, render_scene, split_paths


def encode(arr, fmt, **kw):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


def make_lmdb(path, items):
    os.makedirs(path, exist_ok=True)
    env = lmdb.open(str(path), map_size=1 << 28)
    with env.begin(write=True) as txn:
        for k, v in items.items():
            txn.put(k if isinstance(k, bytes) else k.encode(), v)
    env.close()
    return str(path)


def pattern(i, size=24):
    """A distinct image per index: a gradient plus a bright square whose position encodes i."""
    arr = np.zeros((size, size, 3), np.uint8)
    arr[..., 0] = np.linspace(0, 255, size)[None, :]
    arr[..., 1] = (i * 37) % 256
    arr[2:8, 2 + i % 10: 8 + i % 10, 2] = 255
    return arr


def test_raw_lmdb_round_trip_every_codec(tmp_path):
    fmts = [("WEBP", dict(lossless=True)), ("PNG", {}), ("JPEG", dict(quality=98, subsampling=0))]
    items = {f"{i:040x}": encode(pattern(i), *fmts[i % 3][:1], **fmts[i % 3][1]) for i in range(9)}
    reader = open_reader(make_lmdb(tmp_path / "db", items))
    assert isinstance(reader, LSUNLmdbReader) and len(reader) == 9
    for i in range(9):
        assert reader.key(i) == f"{i:040x}".encode()  # database order
        got = np.asarray(reader.read(i), dtype=np.float64)
        tol = 6 if i % 3 == 2 else 0
        assert np.abs(got - pattern(i)).max() <= tol


def test_key_list_is_cached_beside_the_data(tmp_path):
    items = {f"{i:040x}": encode(pattern(i), "PNG") for i in range(5)}
    path = make_lmdb(tmp_path / "db", items)
    first = LSUNLmdbReader(path)
    assert first.listed_keys and any(f.startswith("layered_gan_keys") for f in os.listdir(path))
    second = LSUNLmdbReader(path)
    assert not second.listed_keys and second.keys == first.keys
    assert LSUNLmdbReader(path, max_images=2).keys == first.keys[:2]


def test_key_cache_in_cache_folder_when_data_is_read_only(tmp_path, monkeypatch):
    """Same as above without relying on permissions: make the beside-the-data write fail."""
    items = {f"{i:040x}": encode(pattern(i), "PNG") for i in range(3)}
    path = make_lmdb(tmp_path / "db", items)
    monkeypatch.setenv("LAYERED_GAN_CACHE", str(tmp_path / "cache"))
    real_savez = np.savez

    def refuse_beside_data(file, **arrays):
        if str(file).startswith(path):
            raise PermissionError("read-only")
        return real_savez(file, **arrays)

    monkeypatch.setattr(np, "savez", refuse_beside_data)
    assert LSUNLmdbReader(path).listed_keys
    assert not LSUNLmdbReader(path).listed_keys
    assert len(os.listdir(tmp_path / "cache" / "lmdb_keys")) == 1


def test_prepared_lmdb_sizes_derived_sizes_and_missing_size_error(tmp_path):
    items = {"length": b"3"}
    for size in (16, 32, 144):
        for i in range(3):
            items[f"{size}-{i:05d}"] = encode(np.full((size, size, 3), 10 * i, np.uint8), "JPEG")
    reader = open_reader(make_lmdb(tmp_path / "prep", items))
    assert isinstance(reader, PreparedLmdbReader)
    assert reader.sizes == [16, 32, 144] and len(reader) == 3
    assert reader.read(2, 32).size == (32, 32)
    assert abs(np.asarray(reader.read(2, 16)).mean() - 20) < 2
    assert reader.read(2, 64).size == (64, 64) and abs(np.asarray(reader.read(2, 64)).mean() - 20) < 2  # from 144
    with pytest.raises(ValueError, match="no images at 160x160 or larger.*16, 32, 144"):
        reader.read(0, 160)
    with pytest.raises(ValueError, match="holds sizes 16, 32, 144, but 160 px with crop 'center' needs 160x160"):
        ImageDataset(reader, 160, crop="center")
    ds = ImageDataset(reader, 128, crop="random", org_to_crop=1.125)
    assert ds.read_sizes == [144] and ds[0].shape == (3, 128, 128)
    ds.set_resolution(64)
    assert ds.read_sizes == [72] and ds[0].shape == (3, 64, 64)
    exact = ImageDataset(reader, 32, crop="random", org_to_crop=1.125)  # 36 from 144 rather than 32 enlarged
    assert exact.read_sizes == [36] and ImageDataset(reader, 144, crop="random").read_sizes == [144]


def test_image_folder_recursive_sorted(tmp_path):
    (tmp_path / "b").mkdir()
    Image.fromarray(pattern(1)).save(tmp_path / "b" / "x.png")
    Image.fromarray(pattern(2)).save(tmp_path / "a.JPG", quality=95)
    Image.fromarray(pattern(3)).save(tmp_path / "c.bmp")
    (tmp_path / "notes.txt").write_text("not an image")
    reader = open_reader(str(tmp_path))
    assert reader.files == ["a.JPG", os.path.join("b", "x.png"), "c.bmp"]
    assert np.array_equal(np.asarray(reader.read(1)), pattern(1))


def test_missing_and_empty_paths_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*LMDB folder"):
        open_reader(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        open_reader(str(tmp_path / "empty"))
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        open_reader(str(tmp_path / "file.txt"))
    with pytest.raises(ValueError, match="no entries"):
        open_reader(make_lmdb(tmp_path / "emptydb", {}))


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "I"])
def test_odd_modes_become_rgb(mode):
    gray = np.full((4, 4), 128, np.uint8)
    if mode == "I;16":
        img = Image.fromarray(np.full((4, 4), 65535, np.uint16))
        expected = 255
    elif mode == "I":
        img = Image.fromarray(np.full((4, 4), 40000, np.int32))
        expected = round(40000 / 65535 * 255)
    else:
        img = Image.fromarray(gray).convert(mode)
        expected = 128
    buf = io.BytesIO()
    img.save(buf, format="TIFF" if mode in ("CMYK", "I;16", "I") else "PNG")
    out = decode_image(buf.getvalue(), mode)
    assert out.mode == "RGB" and out.size == (4, 4)
    assert np.abs(np.asarray(out, dtype=int) - expected).max() <= 2, (mode, np.asarray(out)[0, 0])
    assert to_rgb(img).mode == "RGB"


def test_corrupted_entries_are_skipped_and_counted(tmp_path):
    items = {f"{i:040x}": encode(pattern(i), "PNG") for i in range(10)}
    items[f"{3:040x}"] = b"definitely not an image"
    path = make_lmdb(tmp_path / "db", items)
    with pytest.warns(RuntimeWarning, match="1 of 10 sampled entries could not be decoded"):
        ds = ImageDataset(path, 24, crop="center")
    with pytest.warns(RuntimeWarning, match="cannot decode image"):
        img = ds[3]
    assert ds.skipped == 1
    expected = torch.from_numpy(pattern(4).transpose(2, 0, 1).astype(np.float32)) / 127.5 - 1
    torch.testing.assert_close(img, expected)  # the next good entry stands in


def test_mostly_corrupted_source_stops_with_its_name(tmp_path):
    items = {f"{i:040x}": b"garbage" for i in range(8)}
    items[f"{0:040x}"] = encode(pattern(0), "PNG")
    path = make_lmdb(tmp_path / "bad", items)
    with pytest.raises(ValueError, match=f"{path}: 7 of 8 sampled entries could not be decoded"):
        open_reader(path)


def test_random_crop_geometry():
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        rw, rh, left, top = crop_box(300, 200, 64, "random", 1.125, gen)
        assert (rw, rh) == (72, 72) and 0 <= left <= 8 and 0 <= top <= 8
    assert crop_box(300, 200, 64, "center", 1.125) == (96, 64, 16, 0)


def test_crop_takes_the_right_window_and_masks_follow(tmp_path):
    """Images equal to their masks (40x40: the crop source size, no resize): crop and flip must match."""
    rng = np.random.default_rng(0)
    masks = {f"{i:040x}": (rng.random((40, 40)) > 0.5).astype(np.uint8) * 255 for i in range(6)}
    images = make_lmdb(tmp_path / "img", {k: encode(np.repeat(m[..., None], 3, 2), "PNG") for k, m in masks.items()})
    mask_db = make_lmdb(tmp_path / "mask", {k: encode(m, "PNG") for k, m in masks.items()})
    ds = ImageDataset(images, 32, crop="random", org_to_crop=1.25, hflip=True, masks=mask_db)
    windows = set()
    for i in range(len(ds)):
        for _ in range(6):
            img, mask = ds[i]
            assert img.shape == (3, 32, 32) and mask.shape == (1, 32, 32)
            torch.testing.assert_close((img[:1] + 1) / 2, mask)
            assert set(mask.unique().tolist()) <= {0.0, 1.0}
            windows.add(mask.numpy().tobytes())
    assert len(windows) > 20  # crops and flips really vary


def test_random_crop_is_a_window_of_the_squashed_resize(tmp_path):
    arr = np.random.default_rng(1).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    path = make_lmdb(tmp_path / "db", {f"{0:040x}": encode(arr, "PNG")})
    ds = ImageDataset(path, 32, crop="random", org_to_crop=1.25)
    torch.manual_seed(3)
    _, _, left, top = crop_box(56, 40, 32, "random", 1.25)
    torch.manual_seed(3)
    got = (ds[0] + 1) * 127.5
    ref = Image.fromarray(arr).resize((40, 40), Image.BICUBIC).crop((left, top, left + 32, top + 32))
    torch.testing.assert_close(got, torch.from_numpy(np.asarray(ref, np.float32).transpose(2, 0, 1).copy()),
                               atol=1e-3, rtol=0)


def test_resolution_changes_and_concatenation(tmp_path):
    a = make_lmdb(tmp_path / "a", {f"{i:040x}": encode(pattern(i, 48), "PNG") for i in range(4)})
    b_dir = tmp_path / "b"
    b_dir.mkdir()
    for i in range(3):
        Image.fromarray(pattern(i + 10, 48)).save(b_dir / f"{i}.png")
    ds = ImageDataset([a, str(b_dir)], 16, crop="center")
    assert len(ds) == 7 and ds.locate(5) == (1, 1)
    assert ds[6].shape == (3, 16, 16)
    ds.set_resolution(32)
    assert ds[6].shape == (3, 32, 32)
    assert ds[0].min() >= -1 and ds[0].max() <= 1


def test_multi_worker_loading_matches_single_process(tmp_path):
    path = make_lmdb(tmp_path / "db", {f"{i:040x}": encode(pattern(i), "WEBP", lossless=True) for i in range(12)})
    ds = ImageDataset(path, 16, crop="center")
    single = torch.stack([ds[i] for i in range(len(ds))])
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, shuffle=False)
    multi = torch.cat(list(loader))
    torch.testing.assert_close(multi, single)


def test_distributed_sampler_shards_disjointly(tmp_path):
    path = make_lmdb(tmp_path / "db", {f"{i:040x}": encode(pattern(i), "PNG") for i in range(10)})
    ds = ImageDataset(path, 16, crop="center")
    shards = [list(torch.utils.data.DistributedSampler(ds, num_replicas=2, rank=r, shuffle=True, seed=1))
              for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 5
    assert sorted(shards[0] + shards[1]) == list(range(10))


def test_synthetic_scenes_are_deterministic_and_varied():
    a_img, a_mask = render_scene(0, "train", 5, 64)
    b_img, b_mask = render_scene(0, "train", 5, 64)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_mask, b_mask)
    c_img, _ = render_scene(0, "test", 5, 64)
    d_img, _ = render_scene(1, "train", 5, 64)
    assert not np.array_equal(a_img, c_img) and not np.array_equal(a_img, d_img)
    coverage = np.array([render_scene(0, "train", i, 64)[1].mean() / 255 for i in range(150)])
    assert 0.15 < coverage.mean() < 0.35 and coverage.min() > 0.03 and coverage.max() < 0.55


def test_horizon_family_differs_from_the_shapes_and_cuts_objects_at_the_border():
    a_img, a_mask = render_horizon_scene(0, "train", 5, 64)
    assert np.array_equal(a_img, render_horizon_scene(0, "train", 5, 64)[0])
    assert not np.array_equal(a_img, render_scene(0, "train", 5, 64)[0])
    masks = np.stack([render_horizon_scene(0, "train", i, 64)[1] > 0 for i in range(150)])
    coverage = masks.mean((1, 2))
    assert 0.1 < coverage.mean() < 0.35 and coverage.max() < 0.6
    touching = masks[:, [0, -1], :].any((1, 2)) | masks[:, :, [0, -1]].any((1, 2))
    shapes = np.stack([render_scene(0, "train", i, 64)[1] > 0 for i in range(150)])
    shapes_touching = shapes[:, [0, -1], :].any((1, 2)) | shapes[:, :, [0, -1]].any((1, 2))
    assert touching.mean() > 0.3 > shapes_touching.mean()
    # rings: background inside the object's outline (a mask with a hole)
    from scipy import ndimage
    holes = [(ndimage.binary_fill_holes(m) & ~m).sum() > 4 for m in masks]
    assert sum(holes) >= 5


def test_horizon_family_is_its_own_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERED_GAN_CACHE", str(tmp_path))
    horizon = build_synthetic(resolution=32, count=4, test_count=2, workers=1, progress=False, family="horizon")
    shapes = build_synthetic(resolution=32, count=4, test_count=2, workers=1, progress=False)
    assert horizon != shapes and "horizon" in os.path.basename(horizon) and "horizon" not in os.path.basename(shapes)
    images, masks = split_paths(horizon, "train")
    ds = ImageDataset(images, 32, crop="center", masks=masks)
    rendered = [render_horizon_scene(0, "train", i, 32)[1] > 0 for i in range(4)]
    for k in range(4):  # the LMDB's order is its keys'
        assert sum(np.array_equal(ds[k][1][0].numpy() > 0.5, m) for m in rendered) == 1
    with pytest.raises(ValueError, match="family"):
        build_synthetic(resolution=32, count=4, test_count=2, family="forest")


@pytest.mark.parametrize("family", ["shapes", "horizon"])
def test_synthetic_masks_align_with_image_edges(family):
    """Image gradients concentrate on the mask boundary: a shifted mask would miss them."""
    ratios = []
    for i in range(40):
        img, mask = FAMILIES[family](0, "train", i, 64)
        gray = img.astype(np.float64).mean(2)
        grad = np.hypot(*np.gradient(gray))
        m = mask > 0
        edge = (m != np.roll(m, 1, 0)) | (m != np.roll(m, 1, 1)) | (m != np.roll(m, -1, 0)) | (m != np.roll(m, -1, 1))
        edge[[0, -1], :] = edge[:, [0, -1]] = False
        shifted = np.roll(edge, (5, 5), (0, 1))
        ratios.append(grad[edge].mean() / (grad[shifted & ~edge].mean() + 1e-6))
    assert np.median(ratios) > 1.5


def test_synthetic_build_is_reproducible_and_readable(tmp_path):
    roots = [build_synthetic(str(tmp_path / f"s{k}"), resolution=32, count=24, test_count=8, seed=3, workers=1,
                             progress=False) for k in range(2)]
    contents = []
    for root in roots:
        assert not os.path.exists(root + ".partial")
        images, masks = split_paths(root, "train")
        ds = ImageDataset(images, 32, crop="center", masks=masks)
        assert len(ds) == 24 and len(open_reader(split_paths(root, "test")[0])) == 8
        contents.append([ds.key(i) for i in range(len(ds))] + [ds[i][1].sum().item() for i in range(len(ds))])
    assert contents[0] == contents[1]
    # A second build of the same parameters reuses the folder; different ones are refused.
    assert build_synthetic(roots[0], resolution=32, count=24, test_count=8, seed=3, progress=False) == roots[0]
    with pytest.raises(ValueError, match="different synthetic dataset"):
        build_synthetic(roots[0], resolution=32, count=25, test_count=8, seed=3, progress=False)
