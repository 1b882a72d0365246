import os

import numpy as np
import pytest
import scipy.io
from click.testing import CliRunner
from PIL import Image

from layered_gan.evaluation.benchmarks import BenchmarkSource, benchmark_items, load_item
from layered_gan.evaluation.cli import benchmarks as main
from layered_gan.evaluation.sources import FileSource

W, H = 40, 30  # landscape: the centre crop keeps columns 5..34


def scene():
    """An image and its mask; foreground = columns 0..19, so after the crop the left half (15 of 30 columns)."""
    img = np.zeros((H, W, 3), np.uint8)
    img[:, :20] = (200, 60, 60)
    img[:, 20:] = (30, 90, 30)
    mask = np.zeros((H, W), np.uint8)
    mask[:, :20] = 255
    return img, mask


def save(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path)


def check_item(item):
    image, mask = load_item(item)
    assert image.size == (128, 128) and mask.shape == (128, 128)
    assert mask[:, :62].all() and not mask[:, 66:].any()


def make_cub(root, segmentations_beside=False):
    img, mask = scene()
    files = ["001.Albatross/a_1.jpg", "001.Albatross/a_2.jpg", "002.Wren/w_1.jpg"]
    seg_root = os.path.join(os.path.dirname(root), "segmentations") if segmentations_beside \
        else os.path.join(root, "segmentations")
    for rel in files:
        save(os.path.join(root, "images", rel), img)
        save(os.path.join(seg_root, rel[:-4] + ".png"), mask)
    with open(os.path.join(root, "images.txt"), "w") as fh:
        fh.writelines(f"{i} {rel}\n" for i, rel in enumerate(files, 1))
    with open(os.path.join(root, "train_val_test_split.txt"), "w") as fh:
        fh.write("1 0\n2 2\n3 1\n")
    with open(os.path.join(root, "train_test_split.txt"), "w") as fh:
        fh.write("1 1\n2 0\n3 0\n")


def test_cub_splits_and_preprocessing(tmp_path):
    root = str(tmp_path / "CUB_200_2011")
    make_cub(root)
    test = benchmark_items("cub", root)
    assert [it.name for it in test] == ["001.Albatross/a_2"]
    assert [it.name for it in benchmark_items("cub", root, "val")] == ["002.Wren/w_1"]
    official = benchmark_items("cub", root, "test", os.path.join(root, "train_test_split.txt"))
    assert [it.name for it in official] == ["001.Albatross/a_2", "002.Wren/w_1"]
    with pytest.raises(ValueError, match="val"):
        benchmark_items("cub", root, "val", os.path.join(root, "train_test_split.txt"))
    check_item(test[0])


def test_cub_segmentations_beside_the_root_and_missing_files(tmp_path):
    root = str(tmp_path / "CUB_200_2011")
    make_cub(root, segmentations_beside=True)
    check_item(benchmark_items("cub", root)[0])
    os.remove(os.path.join(root, "train_val_test_split.txt"))
    with pytest.raises(FileNotFoundError, match="train_val_test_split.txt"):
        benchmark_items("cub", root)


def test_flowers_blue_background_masks_and_setid(tmp_path):
    root = str(tmp_path / "flowers")
    img, mask = scene()
    seg = img.copy()
    seg[mask == 0] = (0, 0, 254)
    for i in (1, 2, 3):
        save(os.path.join(root, "jpg", f"image_{i:05d}.jpg"), img)
        save(os.path.join(root, "segmim", f"segmim_{i:05d}.jpg"), seg)  # JPEG: the blue is only nearly exact
    scipy.io.savemat(os.path.join(root, "setid.mat"), {"trnid": np.array([[3]]), "valid": np.array([[2]]),
                                                       "tstid": np.array([[1, 2]])})
    items = benchmark_items("flowers", root, "test")
    assert [it.name for it in items] == ["image_00001", "image_00002"]
    assert [it.name for it in benchmark_items("flowers", root, "train")] == ["image_00003"]
    check_item(items[0])


@pytest.mark.parametrize("dataset, image_dir, mask_dir", [
    ("duts-te", "DUTS-TE-Image", "DUTS-TE-Mask"),
    ("ecssd", "images", "ground_truth_mask"),
    ("dut-omron", "DUT-OMRON-image", "pixelwiseGT-new-PNG"),
])
def test_saliency_sets(tmp_path, dataset, image_dir, mask_dir):
    root = str(tmp_path / dataset)
    img, mask = scene()
    for name in ("0001", "0002"):
        save(os.path.join(root, image_dir, name + ".jpg"), img)
        save(os.path.join(root, mask_dir, name + ".png"), mask)
    items = benchmark_items(dataset, root)
    assert [it.name for it in items] == ["0001", "0002"]
    image, full = load_item(items[1])  # the papers' codes score saliency sets on full images: 40 x 30 -> 171 x 128
    assert image.size == (171, 128) and full.shape == (128, 171)
    assert full[:, :84].all() and not full[:, 87:].any()  # foreground: columns 0..19 of 40, x 171 / 40 = 85.5
    check_item(items[1]._replace(crop=True))
    with pytest.raises(ValueError, match="no splits"):
        benchmark_items(dataset, root, "test")
    save(os.path.join(root, image_dir, "0003.jpg"), img)
    with pytest.raises(ValueError, match="0003"):
        benchmark_items(dataset, root)
    with pytest.raises(FileNotFoundError, match=mask_dir):
        benchmark_items(dataset, str(tmp_path / "empty"))


def test_export_command_writes_folders_that_sources_read(tmp_path):
    root = str(tmp_path / "CUB_200_2011")
    make_cub(root)
    out = tmp_path / "cub_test"
    result = CliRunner().invoke(main, ["--dataset", "cub", "--root", root, "--split", "train", "--out", str(out)])
    assert result.exit_code == 0, result.output
    images, masks = FileSource(str(out / "images")), FileSource(str(out / "masks"))
    assert images.names == masks.names == ["001.Albatross/a_1"]
    expected = BenchmarkSource(benchmark_items("cub", root, "train")).mask("001.Albatross/a_1")
    assert (masks.mask("001.Albatross/a_1") == expected).all() and images.image("001.Albatross/a_1").size == (128, 128)
    bad = CliRunner().invoke(main, ["--dataset", "ecssd", "--root", str(tmp_path / "nothing"), "--out", str(out)])
    assert bad.exit_code != 0 and "ground_truth_mask" in bad.output
