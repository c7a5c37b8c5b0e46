"""The guard: a fixed quarter of the reviewed pixels is held out of training, class boundaries do not judge, and a
version better against the truth is activated while a worse one is not — for reviewed regions and whole images."""

import numpy as np
import pytest
from conftest import run
from scipy import ndimage

from napari_segnet.data.domain_shift import shifted_cells3d
from napari_segnet.numerics.metrics import segmentation_scores
from napari_segnet.segmenter import Segmenter
from napari_segnet.training import guard


def test_the_held_out_squares_are_a_quarter_on_a_grid_of_the_image():
    squares = guard.held_out((128, 128))
    assert squares.sum() == 128 * 128 // 4 and squares[32:64, 32:64].all() and not squares[:32].any()
    crop = guard.held_out((64, 64), origin=(32, 16))  # a crop at (32, 16) sees the same squares as the image
    np.testing.assert_array_equal(crop, guard.held_out((96, 80))[32:, 16:])
    train, held = guard.split(np.ones((64, 64), bool))
    assert held.sum() == 32 * 32 and train.sum() == 3 * 32 * 32 and not (train & held).any()


def test_class_boundaries_do_not_judge():
    labels = np.zeros((20, 20), np.uint8)
    labels[5:15, 5:15] = 1
    judged = guard.without_boundaries(labels, np.ones((20, 20), bool))
    assert not judged[5:8, 5:15].any() and not judged[3:5, 8].any()  # inside and outside the contour, 2 px
    assert judged[10, 10] and judged[0, 0] and judged[10, 2]
    # along a straight edge: the contour's pixels (rows 5 and 14, the square's own), then 2 px each way
    assert np.nonzero(~judged[:, 10])[0].tolist() == [3, 4, 5, 6, 7, 12, 13, 14, 15, 16]


def test_the_mean_iu_of_the_guard_counts_only_classes_in_the_labels():
    n = np.array([[90, 10, 0], [0, 0, 0], [0, 0, 0]])  # 100 background pixels, 10 predicted as class 1
    scores = guard.guard_scores(n)
    assert scores["mean_iu"] == pytest.approx(0.9)  # not (0.9 + 0) / 2: class 1 is nowhere in the labels
    assert guard.accepts({"mean_iu": 0.900}, {"mean_iu": 0.896}) and not guard.accepts({"mean_iu": 0.9},
                                                                                        {"mean_iu": 0.894})
    assert guard.accepts({"mean_iu": float("nan")}, {"mean_iu": 0.5}) is True  # a bool: logged as JSON


def corrected_by_a_person(pred, truth, box, min_area=12):
    """Labels a person hands over for a reviewed ``box``: the wrong patches of ≥ min_area px painted with the
    truth, everything else inside the box accepted as predicted; and the box as the reviewed mask."""
    labels, reviewed = pred.copy(), np.zeros(pred.shape, bool)
    reviewed[box] = True
    wrong, _ = ndimage.label((pred != truth) & reviewed)
    sizes = np.bincount(wrong.ravel())
    fix = (sizes >= min_area)[wrong] & (wrong > 0)
    labels[fix] = truth[fix]
    return labels, reviewed


@pytest.fixture(scope="module")
def shifted():
    cases = shifted_cells3d()
    return cases[0], cases[3:]


def held_out_iou(seg, held):
    preds = [seg.predict(c.image) for c in held]
    return segmentation_scores(np.concatenate([p.ravel() for p in preds]),
                               np.concatenate([c.labels.ravel() for c in held]), 2)["iu"][1]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["regions", "whole image"])
def test_a_better_version_is_activated_and_a_worse_one_is_not(shifted, mode):
    work, held = shifted
    seg = Segmenter.default()
    pred = seg.predict(work.image)
    if mode == "regions":  # the tile with the most wrong pixels, corrected as a person would
        labels, reviewed = corrected_by_a_person(pred, work.labels, (slice(0, 128), slice(0, 128)))
    else:  # a person who corrected every pixel
        labels, reviewed = work.labels, None
    before = held_out_iou(seg, held)
    _, done = run(seg.finetune([work.image], [labels], None if reviewed is None else [reviewed], seed=0))
    better = held_out_iou(seg, held)
    assert done.guard == "held-out reviewed pixels" and done.accepted and seg.active_version == 1
    assert better > before + 0.005  # measured: regions 0.878 → 0.901, whole image 0.878 → 0.905
    _, done = run(seg.finetune([work.image], [labels], None if reviewed is None else [reviewed], steps=20, lr=0.5,
                               seed=0))  # a learning rate that ruins it
    assert not done.accepted and seg.active_version == 1
    seg.rollback(2)
    assert held_out_iou(seg, held) < better - 0.05  # it was worse against the truth too
