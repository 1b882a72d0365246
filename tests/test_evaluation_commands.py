import importlib.util
import json
import os
import sys

import lmdb
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from layered_gan.evaluation import cli
from layered_gan.evaluation.baselines import centre_disc, full_mask, grabcut_mask
from layered_gan.evaluation.cli import evaluate as evaluate_main


def write_mask(path, mask):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.asarray(mask, np.uint8) * 255).save(path)


def half(h=8, w=8):
    m = np.zeros((h, w), bool)
    m[:, : w // 2] = True
    return m


@pytest.fixture
def folders(tmp_path):
    """GT a, b, sub/c; predictions: a perfect, b half right at another size, sub/c empty, z without GT."""
    gt, pred, img = tmp_path / "gt", tmp_path / "pred", tmp_path / "img"
    for name in ("a", "b", "sub/c"):
        write_mask(str(gt / f"{name}.png"), half())
        os.makedirs(os.path.dirname(img / f"{name}.png"), exist_ok=True)
        Image.new("RGB", (8, 8), (10, 200, 30)).save(img / f"{name}.png")
    write_mask(str(pred / "a.png"), half())
    quarter = np.zeros((16, 16), bool)
    quarter[:, :4] = True  # after nearest resizing to 8x8: columns 0-1, half of the ground truth
    write_mask(str(pred / "b.png"), quarter)
    write_mask(str(pred / "sub" / "c.png"), np.zeros((8, 8)))
    write_mask(str(pred / "z.png"), half())
    return tmp_path


def run_evaluate(*args):
    return CliRunner().invoke(evaluate_main, [str(a) for a in args])


def test_evaluate_matches_by_name_resizes_and_reports(folders):
    out = folders / "report"
    result = run_evaluate("--pred", folders / "pred", "--gt", folders / "gt", "--images", folders / "img",
                          "--out", out)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "metrics.json").read_text())
    assert report["summary"]["images"] == 3
    assert report["unmatched_predictions"] == ["z"] and "z" in result.output
    assert report["resized"] == 1 and report["resized_examples"] == ["b"]
    per = report["per_image"]
    assert per["a"]["fg_iou"] == 1.0 and per["b"]["fg_iou"] == pytest.approx(0.5) and per["sub/c"]["fg_iou"] == 0
    assert report["summary"]["per_image"]["fg_iou"] == pytest.approx(0.5)
    assert report["summary"]["all_pixels"]["fg_iou"] == pytest.approx((32 + 16) / (3 * 32))
    assert "all pixels" in result.output and "per image" in result.output
    sheet = Image.open(out / "cases.png")
    assert sheet.size == (4 * 128, 3 * 128)  # 3 distinct images: best and worst rows merge
    errors = np.asarray(sheet)[128:256, 384:512]  # row of "b" (second best): errors column
    assert (errors == [0, 0, 255]).all(-1).any() and (errors == 255).all(-1).any()  # misses blue, hits white


def test_evaluate_missing_predictions_error_or_count_as_empty(folders):
    os.remove(folders / "pred" / "a.png")
    result = run_evaluate("--pred", folders / "pred", "--gt", folders / "gt", "--out", folders / "r")
    assert result.exit_code != 0 and "1 ground-truth masks have no prediction: a" in result.output
    result = run_evaluate("--pred", folders / "pred", "--gt", folders / "gt", "--out", folders / "r",
                          "--missing", "empty")
    assert result.exit_code == 0, result.output
    report = json.loads((folders / "r" / "metrics.json").read_text())
    assert report["scored_as_empty"] == ["a"] and report["per_image"]["a"]["fg_iou"] == 0.0


def test_evaluate_errors_name_the_problem(folders, tmp_path):
    result = run_evaluate("--pred", tmp_path / "nowhere", "--gt", folders / "gt", "--out", tmp_path / "r")
    assert result.exit_code != 0 and "--pred" in result.output and "nowhere" in result.output
    other = tmp_path / "other"
    write_mask(str(other / "q.png"), half())
    result = run_evaluate("--pred", other, "--gt", folders / "gt", "--out", tmp_path / "r")
    assert result.exit_code != 0 and "no prediction matches" in result.output and "q" in result.output
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folders / "pred" / "a.jpg")
    result = run_evaluate("--pred", folders / "pred", "--gt", folders / "gt", "--out", tmp_path / "r")
    assert result.exit_code != 0 and "a.jpg" in result.output and "a.png" in result.output


def test_evaluate_reads_lmdb_by_key(folders, tmp_path):
    env = lmdb.open(str(tmp_path / "gt_lmdb"), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for name in ("a", "b"):
            txn.put(name.encode(), (folders / "gt" / f"{name}.png").read_bytes())
    env.close()
    result = run_evaluate("--pred", folders / "pred", "--gt", tmp_path / "gt_lmdb", "--out", tmp_path / "r")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert sorted(report["per_image"]) == ["a", "b"] and report["unmatched_predictions"] == ["sub/c", "z"]


def test_full_and_centre_baselines():
    assert full_mask(4).shape == (4, 4) and full_mask((3, 5)).all()
    disc = centre_disc(200)
    assert disc.mean() == pytest.approx(0.25, abs=0.01) and disc[100, 100] and not disc[0, 0]
    wide = centre_disc((100, 300), coverage=0.4)
    assert wide.shape == (100, 300) and wide.mean() == pytest.approx(0.4, abs=0.01)


def object_scene(h=48, w=56):
    rng = np.random.default_rng(0)
    img = (rng.random((h, w, 3)) * 60 + 20).astype(np.uint8)  # dark noisy background
    gt = np.zeros((h, w), bool)
    gt[14:34, 18:40] = True
    img[gt] = (230, 200, 40)
    return img, gt


def test_grabcut_finds_a_clear_object():
    pytest.importorskip("cv2")
    img, gt = object_scene()
    mask = grabcut_mask(img, margin=4)
    assert mask.shape == gt.shape and (mask & gt).sum() / (mask | gt).sum() > 0.9


def test_grabcut_without_opencv_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(ImportError, match="opencv-python-headless"):
        grabcut_mask(np.zeros((8, 8, 3), np.uint8))


def test_baselines_command_on_the_synthetic_held_out_split(tmp_path, monkeypatch):
    from layered_gan.data.synthetic import build_synthetic

    root = build_synthetic(str(tmp_path / "syn"), resolution=32, count=2, test_count=6, workers=1, progress=False)
    monkeypatch.setattr(cli, "build_synthetic", lambda: root)
    methods = ["full", "centre"] + (["grabcut"] if importlib.util.find_spec("cv2") else [])
    args = ["--synthetic", "--out", str(tmp_path / "b")] + sum((["--method", m] for m in methods), [])
    result = CliRunner().invoke(cli.baselines, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "b" / "baselines.json").read_text())["summaries"]
    assert list(summary) == methods and all(s["images"] == 6 for s in summary.values())
    assert summary["full"]["per_image"]["recall"] == 1.0
    assert (tmp_path / "b" / "centre" / "cases.png").exists()
    bad = CliRunner().invoke(cli.baselines, ["--synthetic", "--images", "x", "--gt", "y", "--out", "o"])
    assert bad.exit_code != 0 and "either --synthetic or both --images and --gt" in bad.output



@pytest.mark.parametrize("encoding, write", [
    ("0/255", lambda m: Image.fromarray(m.astype(np.uint8) * 255)),
    ("0/1", lambda m: Image.fromarray(m.astype(np.uint8))),
    ("palette (VOC)", lambda m: _palette(np.where(m, 15, 0))),
])
def test_ground_truth_is_read_by_its_encoding(tmp_path, encoding, write):
    """Perfect predictions score 1 and empty ones 0, whatever the ground truth's encoding (issue 17)."""
    gt = np.zeros((8, 8), bool)
    gt[2:6, 1:5] = True
    write(gt).save(tmp_path / "gt.png")
    os.makedirs(tmp_path / "g")
    os.replace(tmp_path / "gt.png", tmp_path / "g" / "a.png")
    for name, pred in (("perfect", gt), ("empty", np.zeros_like(gt))):
        os.makedirs(tmp_path / name)
        Image.fromarray(pred.astype(np.uint8) * 255).save(tmp_path / name / "a.png")
        result = run_evaluate("--pred", tmp_path / name, "--gt", tmp_path / "g", "--out", tmp_path / f"r_{name}")
        assert result.exit_code == 0, result.output
        iou = json.load(open(tmp_path / f"r_{name}" / "metrics.json"))["summary"]["per_image"]["fg_iou"]
        assert iou == (1.0 if name == "perfect" else 0.0), (encoding, name, iou)


def _palette(labels):
    img = Image.fromarray(labels.astype(np.uint8), "P")
    img.putpalette([0, 0, 0, 128, 0, 0] + [64] * (254 * 3))
    return img


def test_label_images_need_their_foreground_values_and_odd_masks_are_refused(tmp_path):
    labels = np.zeros((8, 8), np.uint8)
    labels[1:4, 1:4], labels[5:7, 5:7] = 100, 7
    os.makedirs(tmp_path / "g")
    Image.fromarray(labels).save(tmp_path / "g" / "a.png")
    os.makedirs(tmp_path / "p")
    Image.fromarray((labels == 100).astype(np.uint8) * 255).save(tmp_path / "p" / "a.png")
    result = run_evaluate("--pred", tmp_path / "p", "--gt", tmp_path / "g", "--out", tmp_path / "r")
    assert result.exit_code == 2 and "a in" in result.stderr and "{0, 7, 100}" in result.stderr, result.output
    assert [line for line in result.stderr.splitlines() if "error" in line][0].startswith("evaluate: error: mask a")
    result = run_evaluate("--pred", tmp_path / "p", "--gt", tmp_path / "g", "--fg-values", "100", "--out",
                          tmp_path / "r")
    assert result.exit_code == 0, result.output
    assert json.load(open(tmp_path / "r" / "metrics.json"))["summary"]["per_image"]["fg_iou"] == 1.0


def test_an_unreadable_prediction_is_skipped_and_listed(tmp_path):
    os.makedirs(tmp_path / "g")
    os.makedirs(tmp_path / "p")
    for name in "abc":
        Image.fromarray(np.full((8, 8), 255, np.uint8)).save(tmp_path / "g" / f"{name}.png")
        Image.fromarray(np.full((8, 8), 255, np.uint8)).save(tmp_path / "p" / f"{name}.png")
    (tmp_path / "p" / "b.png").write_bytes(b"not a png")
    with pytest.warns(RuntimeWarning):
        result = run_evaluate("--pred", tmp_path / "p", "--gt", tmp_path / "g", "--out", tmp_path / "r")
    assert result.exit_code == 0, result.output
    metrics = json.load(open(tmp_path / "r" / "metrics.json"))
    assert metrics["unreadable_predictions"] == ["b"] and sorted(metrics["per_image"]) == ["a", "c"]
