import numpy as np
import pytest
import torch

from layered_gan.evaluation.metrics import (Scores, confusion, f_beta, format_table, iou_per_image, max_f_beta,
                                            mean_iou, rates, threshold_counts)

A_PRED = np.array([[1, 1, 0], [0, 0, 0]], bool)
A_GT = np.array([[1, 0, 0], [1, 0, 0]], bool)  # tp 1, fp 1, fn 1, tn 3


def test_hand_computed_confusion_and_rates():
    assert confusion(A_PRED, A_GT).tolist() == [[1, 1, 1, 3]]
    r = {k: float(v[0]) for k, v in rates(confusion(A_PRED, A_GT)).items()}
    assert r == pytest.approx({"fg_iou": 1 / 3, "bg_iou": 3 / 5, "miou": 7 / 15, "f1": 0.5, "precision": 0.5,
                               "recall": 0.5, "accuracy": 4 / 6})


@pytest.mark.parametrize("pred, gt, expected", [
    (0, 0, dict(fg_iou=1, bg_iou=1, f1=1, precision=1, recall=1, accuracy=1)),  # empty predicts empty
    (1, 1, dict(fg_iou=1, bg_iou=1, f1=1, precision=1, recall=1, accuracy=1)),  # all foreground, predicted
    (1, 0, dict(fg_iou=0, bg_iou=0, f1=0, precision=0, recall=0, accuracy=0)),  # all wrong, nothing to find
    (0, 1, dict(fg_iou=0, bg_iou=0, f1=0, precision=0, recall=0, accuracy=0)),  # all wrong, nothing predicted
])
def test_empty_and_full_masks(pred, gt, expected):
    r = rates(confusion(np.full((4, 5), bool(pred)), np.full((4, 5), bool(gt))))
    assert {k: float(r[k][0]) for k in expected} == expected


def test_empty_ground_truth_with_a_partial_prediction():
    pred = np.zeros((2, 2), bool)
    pred[0, 0] = True
    r = rates(confusion(pred, np.zeros((2, 2), bool)))
    assert (r["fg_iou"][0], r["precision"][0], r["recall"][0], r["bg_iou"][0]) == (0, 0, 0, 0.75)


def test_soft_predictions_use_the_threshold_and_torch_inputs_work():
    soft = torch.tensor([[0.6, 0.4]])
    gt = torch.tensor([[1.0, 0.0]])
    assert confusion(soft, gt).tolist() == [[1, 0, 0, 1]]
    assert confusion(soft, gt, threshold=0.7).tolist() == [[0, 0, 1, 1]]


def test_two_aggregations_differ_as_computed_by_hand():
    scores = Scores()
    scores.update(A_PRED[None], A_GT[None], ["a"])
    scores.update(np.ones((1, 2, 3)), np.ones((1, 2, 3)), ["b"])  # counts 6, 0, 0, 0
    s = scores.summary()
    assert s["all_pixels"]["fg_iou"] == pytest.approx(7 / 9)  # tp 7, fp 1, fn 1
    assert s["per_image"]["fg_iou"] == pytest.approx((1 / 3 + 1) / 2)
    assert s["all_pixels"]["accuracy"] == pytest.approx(10 / 12)
    assert s["images"] == 2 and scores.names == ["a", "b"]
    table = format_table(s)
    assert "all pixels" in table and "per image" in table and "max_fbeta" in table


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        confusion(np.zeros((2, 3)), np.zeros((3, 2)))


def test_threshold_levels_are_strictly_above():
    pred = np.array([[0.0, 1 / 255, 0.5, 1.0]])
    positives = threshold_counts(pred, np.ones_like(pred))[0, :, 0]  # true positives = pixels above each threshold
    assert positives.shape == (255,)
    assert (positives[0], positives[1], positives[127], positives[128], positives[254]) == (3, 2, 2, 1, 1)


def test_max_f_beta_edge_cases():
    gt = np.zeros((1, 4, 4), bool)
    gt[0, :2] = True  # coverage 0.5
    # a binary prediction gives the same F_beta at every threshold
    binary = np.zeros((1, 4, 4))
    binary[0, 0] = 1
    binary[0, 3, 0] = 1
    p, r = 4 / 5, 4 / 8
    assert max_f_beta(binary, gt)[0] == pytest.approx(1.3 * p * r / (0.3 * p + r))
    # a separable soft map that never reaches 0.5: F_beta 0 at 0.5, max 1 below it
    soft = np.where(gt, 0.3, 0.1)
    assert rates(confusion(soft, gt))["f1"][0] == 0 and max_f_beta(soft, gt)[0] == pytest.approx(1.0)
    # a constant map: all foreground below it, nothing above
    assert max_f_beta(np.full((1, 4, 4), 0.5), gt)[0] == pytest.approx(1.3 * 0.5 / (0.3 * 0.5 + 1))
    # empty ground truth: a zero map is perfect, a full map scores 0
    assert max_f_beta(np.zeros((1, 3, 3)), np.zeros((1, 3, 3), bool))[0] == 1.0
    assert max_f_beta(np.ones((1, 3, 3)), np.zeros((1, 3, 3), bool))[0] == 0.0


def test_max_f_beta_bounds_every_single_threshold():
    rng = np.random.default_rng(0)
    gt = rng.random((6, 8, 8)) < 0.3
    pred = np.clip(gt * 0.4 + rng.random((6, 8, 8)) * 0.6, 0, 1)
    best = max_f_beta(pred, gt)
    at_half = f_beta(confusion(pred, gt))
    assert (best >= at_half - 1e-12).all() and (best <= 1).all()
    # raising true foreground scores to 1 and dropping background to 0 can only help
    perfect = max_f_beta(np.where(gt, 1.0, 0.0), gt)
    assert (perfect == 1).all()


def test_all_pixels_max_f_beta_pools_counts_before_the_max():
    gt = np.zeros((2, 1, 2), bool)
    gt[0, 0, 0] = gt[1, 0, 0] = True
    pred = np.array([[[0.9, 0.6]], [[0.4, 0.1]]])  # each separable alone, at different thresholds
    scores = Scores()
    scores.update(pred, gt)
    s = scores.summary()
    assert s["per_image"]["max_fbeta"] == pytest.approx(1.0)
    assert s["all_pixels"]["max_fbeta"] < 1.0  # no single threshold separates both images


def test_compatibility_helpers():
    fg, bg = iou_per_image(np.stack([A_PRED, A_GT]), np.stack([A_GT, A_GT]))
    assert fg.tolist() == pytest.approx([1 / 3, 1.0]) and bg.tolist() == pytest.approx([3 / 5, 1.0])
    miou, fg_mean = mean_iou(np.stack([A_PRED, A_GT]), np.stack([A_GT, A_GT]))
    assert miou == pytest.approx((7 / 15 + 1) / 2) and fg_mean == pytest.approx(2 / 3)


def test_f_max_is_the_authors_mean_over_images_then_max_over_thresholds():
    """Voynov's / Melas-Kyriazi's F_max: F_beta per image at each threshold, averaged, then the maximum.
    Image 0 (fg 0.9, bg 0.6) is separated at thresholds 0.6 <= t < 0.9, image 1 (fg 0.4, bg 0.1) at 0.1 <= t < 0.4;
    at t = k / 255 in the second range image 0 predicts both pixels: P = 1/2, R = 1, F = 1.3 * 0.5 / 1.15 = 0.5652;
    image 1 at the first range predicts nothing: F = 0. Best mean: (1 + 0.5652) / 2."""
    gt = np.zeros((2, 1, 2), bool)
    gt[0, 0, 0] = gt[1, 0, 0] = True
    scores = Scores()
    scores.update(np.array([[[0.9, 0.6]], [[0.4, 0.1]]]), gt)
    s = scores.summary()
    assert s["per_image"]["f_max"] == pytest.approx((1 + 1.3 * 0.5 / 1.15) / 2)
    assert s["per_image"]["max_fbeta"] == pytest.approx(1.0) and "f_max" in format_table(s)
