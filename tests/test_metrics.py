"""FCN metrics against confusion matrices computed by hand; object scores against hand-matched objects."""

import numpy as np
import pytest

from napari_segnet.numerics.metrics import (
    ObjectScores,
    confusion_matrix,
    evaluate,
    iou_pairs,
    looks_semantic,
    match_objects,
    object_score_rows,
    object_scores,
    segmentation_scores,
)

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


def square(shape, *boxes) -> np.ndarray:
    """Instance ids: box k (y0, y1, x0, x1) gets id k + 1."""
    out = np.zeros(shape, np.int32)
    for k, (y0, y1, x0, x1) in enumerate(boxes):
        out[y0:y1, x0:x1] = k + 1
    return out


def at(scores, threshold):
    return next(s for s in scores if s.threshold == threshold)


def check(s, tp, fp, fn, iou):
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    assert (s.tp, s.fp, s.fn) == (tp, fp, fn)
    assert s.precision == pytest.approx(precision) and s.recall == pytest.approx(recall)
    assert s.f1 == pytest.approx(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    assert s.average_precision == pytest.approx(tp / (tp + fp + fn) if tp + fp + fn else 0.0)
    assert s.mean_matched_iou == pytest.approx(iou)


TWO = square((10, 12), (0, 4, 0, 4), (5, 10, 6, 12))  # 16 px and 30 px


def test_object_scores_perfect_match():
    scores = object_scores(TWO, TWO * 3)  # ids need not agree
    assert [s.threshold for s in scores] == [0.5, 0.75, 0.9]
    for s in scores:
        check(s, tp=2, fp=0, fn=0, iou=1.0)
        assert (s.n_pred, s.n_true) == (2, 2)


def test_object_scores_split_into_two_halves():
    pred = square((10, 12), (0, 4, 0, 2), (0, 4, 2, 4), (5, 10, 6, 12))  # IoU 8/16 = 0.5 with each half
    scores = object_scores(pred, TWO, true_is_semantic=False)
    check(at(scores, 0.5), tp=2, fp=1, fn=0, iou=(0.5 + 1) / 2)  # P 2/3, R 1, F1 0.8, AP 2/3
    assert at(scores, 0.5).f1 == pytest.approx(0.8)
    check(at(scores, 0.75), tp=1, fp=2, fn=1, iou=1.0)  # P 1/3, R 1/2, AP 1/4


def test_object_scores_merge_of_two_true_objects():
    truth = square((6, 9), (0, 6, 0, 6), (0, 2, 7, 9))  # 36 px and 4 px
    pred = square((6, 9), (0, 6, 0, 9))  # 54 px: IoU 36/54 = 2/3 and 4/54
    scores = object_scores(pred, truth, true_is_semantic=False)
    check(at(scores, 0.5), tp=1, fp=0, fn=1, iou=2 / 3)  # P 1, R 1/2, F1 2/3, AP 1/2
    check(at(scores, 0.75), tp=0, fp=1, fn=2, iou=0.0)


def test_object_scores_miss_and_false_positive():
    one = square((10, 12), (0, 4, 0, 4))
    check(at(object_scores(one, TWO), 0.9), tp=1, fp=0, fn=1, iou=1.0)  # a miss: P 1, R 1/2, AP 1/2
    check(at(object_scores(TWO, one), 0.9), tp=1, fp=1, fn=0, iou=1.0)  # a false positive: P 1/2, R 1
    empty = np.zeros_like(TWO)
    check(at(object_scores(empty, TWO), 0.5), tp=0, fp=0, fn=2, iou=0.0)  # no predictions: all 0
    check(at(object_scores(empty, empty), 0.5), tp=0, fp=0, fn=0, iou=0.0)


def test_semantic_truth_becomes_its_connected_components():
    semantic = (TWO > 0).astype(np.uint8)  # two separate objects of class 1
    assert looks_semantic(semantic) and not looks_semantic(TWO)
    check(at(object_scores(TWO, semantic), 0.9), tp=2, fp=0, fn=0, iou=1.0)  # auto: semantic
    # read as instances it is one 46-px object, which pred object 2 (30 px) covers with IoU 30/46
    check(at(object_scores(TWO, semantic, true_is_semantic=False), 0.5), tp=1, fp=1, fn=0, iou=30 / 46)
    dumbbell = np.zeros((10, 30), np.uint8)
    dumbbell[:, :10] = dumbbell[:, 20:] = 1
    dumbbell[4:6, 10:20] = 1  # one drawn object with a waist: not split, unlike label_instances' default
    dumbbell[0, 12] = 1  # and a second, separate object of the class
    assert at(object_scores(dumbbell.astype(np.int32), dumbbell, true_is_semantic=True), 0.5).n_true == 2
    specks = TWO.copy()
    specks[9, 0] = 1  # a stray pixel of object 1 (1/16 of it) does not make the truth semantic
    assert not looks_semantic(specks)


def test_stacks_are_scored_slice_by_slice_unless_told():
    truth = np.stack([TWO, TWO])  # ids span both slices, like 3-D nuclei
    pred = np.stack([TWO, TWO + 2 * (TWO > 0)])  # per-slice ids
    assert at(object_scores(pred, truth), 0.9).tp == 4
    s = at(object_scores(pred, truth, per_slice=False), 0.5)  # 3-D: each true object is half-covered
    assert (s.n_pred, s.n_true, s.tp) == (4, 2, 2) and s.mean_matched_iou == pytest.approx(0.5)


def test_matching_is_optimal_not_greedy():
    # true 0 overlaps pred 0 (IoU .6) and pred 1 (.4); true 1 overlaps only pred 0 (.35). Greedy: 1 match.
    matched = match_objects(np.array([0, 0, 1]), np.array([0, 1, 0]), np.array([0.6, 0.4, 0.35]), 0.3)
    np.testing.assert_allclose(np.sort(matched), [0.35, 0.4])


def test_iou_pairs_by_hand():
    truth = np.array([[1, 1, 0, 2]])
    pred = np.array([[5, 0, 5, 5]])
    ti, pi, iou, n_true, n_pred = iou_pairs(pred, truth)
    assert (n_true, n_pred) == (2, 1)
    np.testing.assert_allclose(iou[np.argsort(ti)], [1 / 4, 1 / 3])  # 1 ∩ 5 = 1 px of 4; 2 ∩ 5 = 1 of 3


def test_thousand_objects_shifted_by_one_pixel():
    truth = np.zeros((320, 320), np.int32)
    truth.reshape(32, 10, 32, 10)[:, 1:9, :, 1:9] = np.arange(1, 1025).reshape(32, 1, 32, 1)  # 8 × 8 squares
    pred = np.roll(truth, 1, axis=1)  # IoU 56 / 72
    scores = object_scores(pred, truth)
    check(at(scores, 0.75), tp=1024, fp=0, fn=0, iou=56 / 72)
    check(at(scores, 0.9), tp=0, fp=1024, fn=1024, iou=0.0)


def test_object_score_rows_and_json():
    import json

    scores = object_scores(TWO, TWO, thresholds=(0.5,))
    rows = object_score_rows(scores)
    assert rows[:3] == [("predicted objects", 2), ("true objects", 2), ("precision @ 0.5", 1.0)]
    assert [name for name, _ in rows[3:]] == ["recall @ 0.5", "F1 @ 0.5", "AP @ 0.5", "mean matched IoU @ 0.5"]
    as_json = [s.to_dict() for s in scores]
    assert json.loads(json.dumps(as_json)) == as_json and as_json[0]["f1"] == 1.0


def test_pooled_object_scores_sum_the_counts_of_images():
    one = square((10, 12), (0, 4, 0, 4))  # one of TWO's squares: a miss on the second image
    pooled = ObjectScores.pooled([object_scores(TWO, TWO, (0.5,))[0], object_scores(one, TWO, (0.5,))[0]])
    check(pooled, tp=3, fp=0, fn=1, iou=1.0)  # F1 6/7, AP 3/4
    assert (pooled.n_pred, pooled.n_true) == (3, 4) and pooled.f1 == pytest.approx(6 / 7)
    with pytest.raises(ValueError, match="one IoU threshold"):
        ObjectScores.pooled(object_scores(TWO, TWO, (0.5, 0.75)))


def test_evaluate_scores_pixels_where_asked_and_objects_on_the_whole_image():
    pred = TWO.copy()
    pred[0, :2] = 0  # 2 of the first square's 16 px wrong
    scored = np.ones(TWO.shape, bool)
    scored[0] = False  # the painted row: left out of the pixel scores
    result = evaluate(pred, TWO, 3, (0.5,), scored=scored)
    assert result.pixels["pixel_accuracy"] == 1.0 and result.pixels["confusion"].sum() == TWO.size - 12
    check(result.objects[0], tp=2, fp=0, fn=0, iou=(14 / 16 + 1) / 2)  # two objects, the first 14 of 16 px
    assert evaluate(pred, TWO, 3, ()).objects == [] and evaluate(pred, TWO, 3).pixels["pixel_accuracy"] < 1


@pytest.mark.parametrize("pred, truth, options, match", [
    (np.zeros((4, 4), int), np.zeros((4, 5), int), {}, "same shape"),
    (np.zeros((4, 4)), np.zeros((4, 4), int), {}, "integer class ids"),
    (np.zeros((4, 4), int), -np.ones((4, 4), int), {}, "non-negative"),
    (np.zeros(4, int), np.zeros(4, int), {}, "2 or 3 dimensions"),
    (np.zeros((4, 4), int), np.zeros((4, 4), int), {"thresholds": (0.5, 0)}, r"in \(0, 1\]"),
    (np.zeros((4, 4), int), np.zeros((4, 4), int), {"thresholds": ()}, r"in \(0, 1\]"),
])
def test_object_scores_bad_inputs(pred, truth, options, match):
    with pytest.raises(ValueError, match=match):
        object_scores(pred, truth, **options)


def test_pixel_score_rows_name_classes_and_keep_the_values():
    from napari_segnet.numerics.metrics import pixel_score_rows

    pred = np.array([[0, 1], [1, 1]])
    target = np.array([[0, 0], [1, 1]])
    rows = dict(pixel_score_rows(segmentation_scores(pred, target, 3), ["background", "cell"]))
    assert rows["pixel accuracy"] == 0.75
    assert rows["IU background"] == 0.5 and rows["IU cell"] == pytest.approx(2 / 3)
    assert np.isnan(rows["IU 2"])  # a class without a name is named by its id
