"""FCN metrics against confusion matrices computed by hand."""

import numpy as np
import pytest

from napari_segnet.metrics import confusion_matrix, segmentation_scores

TARGET = np.array([[0, 0, 0], [1, 1, 2]])
PRED = np.array([[0, 0, 1], [1, 2, 2]])
# n = [[2, 1, 0], [0, 1, 1], [0, 0, 1]]; t = (3, 2, 1); predicted = (2, 2, 2); n_ii = (2, 1, 1)


def test_confusion_matrix_by_hand():
    np.testing.assert_array_equal(confusion_matrix(PRED, TARGET, 3), [[2, 1, 0], [0, 1, 1], [0, 0, 1]])


def test_four_fcn_metrics_by_hand():
    s = segmentation_scores(PRED, TARGET, 3)
    iu = [2 / (3 + 2 - 2), 1 / (2 + 2 - 1), 1 / (1 + 2 - 1)]  # 2/3, 1/3, 1/2
    assert s["pixel_accuracy"] == pytest.approx(4 / 6)
    assert s["mean_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 1 / 1) / 3)
    assert s["mean_iu"] == pytest.approx(sum(iu) / 3)  # 0.5
    assert s["frequency_weighted_iu"] == pytest.approx((3 * iu[0] + 2 * iu[1] + 1 * iu[2]) / 6)
    np.testing.assert_allclose(s["iu"], iu)


def test_class_absent_from_both_sides_is_left_out_of_means():
    s = segmentation_scores(PRED, TARGET, 5)
    assert np.isnan(s["iu"][3:]).all()
    assert s["mean_iu"] == pytest.approx(0.5) and s["mean_accuracy"] == pytest.approx(13 / 18)


def test_class_predicted_but_absent_from_truth_counts_zero_iu():
    s = segmentation_scores(np.array([0, 1]), np.array([0, 0]), 2)
    np.testing.assert_allclose(s["iu"], [0.5, 0.0])
    assert s["mean_iu"] == pytest.approx(0.25)
    assert s["mean_accuracy"] == pytest.approx(0.5)  # class 1 has no true pixel: no accuracy
    assert s["frequency_weighted_iu"] == pytest.approx(0.5)


def test_ignore_index():
    target = np.array([0, 255, 1, 1])
    s = segmentation_scores(np.array([0, 1, 1, 0]), target, 2, ignore_index=255)
    assert s["pixel_accuracy"] == pytest.approx(2 / 3)
    np.testing.assert_array_equal(s["confusion"], [[1, 0], [1, 1]])


@pytest.mark.parametrize("pred, target, match", [
    (np.zeros((2, 2), int), np.zeros((2, 3), int), "same shape"),
    (np.zeros(3, int), np.array([0, 1, 3]), r"class ids 0…2, got values 0…3"),
    (np.zeros(3), np.zeros(3, int), "integer class ids"),
    (np.zeros(0, int), np.zeros(0, int), "empty"),
    (np.array([0, -1, 0]), np.zeros(3, int), "class ids"),
])
def test_bad_inputs(pred, target, match):
    with pytest.raises(ValueError, match=match):
        segmentation_scores(pred, target, 3)
