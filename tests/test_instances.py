"""Instance labels from class ids: gaps separate, specks go, merged discs split, grow-back stays in gaps."""

import numpy as np
import pytest
from skimage.draw import disk, ellipse

from napari_segnet.numerics.instances import (
    grow_back,
    instance_classes,
    label_instances,
    split_objects,
    typical_area,
    unique_per_slice,
)

RAW = {"min_size": 0, "split": False, "grow": 0}  # plain face-connected components


def two_discs_with_gap() -> np.ndarray:
    """Two discs of radius 10 whose outlines would touch, cut by a 1-px background column at x = 25."""
    labels = np.zeros((40, 60), np.uint8)
    labels[disk((20, 15), 11)] = 1
    labels[disk((20, 36), 11)] = 1
    labels[:, 25] = 0
    return labels


def test_one_pixel_gap_separates_two_discs():
    labels = two_discs_with_gap()
    ids = label_instances(labels, **RAW)
    assert ids.dtype == np.int32 and ids.max() == 2
    assert ids[20, 15] != ids[20, 36] and (ids > 0).sum() == (labels > 0).sum()
    assert label_instances(labels).max() == 2  # the defaults agree


def test_diagonal_contact_and_staircase_gap_separate():
    corner = np.zeros((6, 6), np.uint8)
    corner[:3, :3] = corner[3:, 3:] = 1  # touch only at one corner
    assert label_instances(corner, **RAW).max() == 2
    stair = np.triu(np.ones((8, 8), np.uint8), 1) + np.tril(np.ones((8, 8), np.uint8), -1)  # 1-px diagonal gap
    ids = label_instances(stair, **RAW)
    assert ids.max() == 2 and ids[0, 7] != ids[7, 0]


def test_classes_touching_are_different_objects():
    labels = np.zeros((4, 8), np.uint8)
    labels[:, :4], labels[:, 4:] = 1, 2
    ids = label_instances(labels, **RAW)
    assert ids.max() == 2 and instance_classes(ids, labels) == {1: 1, 2: 2}


def test_min_size_removes_small_objects_and_auto_follows_the_typical_area():
    labels = np.zeros((40, 40), np.uint8)
    labels[:20, :20] = 1  # 400 px
    labels[30:32, 30:33] = 1  # 6 px
    labels[25:35, 5:12] = 1  # 70 px
    assert label_instances(labels, **{**RAW, "min_size": 6}).max() == 3
    assert label_instances(labels, **{**RAW, "min_size": 7}).max() == 2
    assert typical_area(labels == 1) == 400  # the object the median pixel lies in
    ids = label_instances(labels, min_size="auto", split=False, grow=0)  # 0.15 × 400 = 60 px
    assert ids.max() == 2 and ids[31, 31] == 0 and ids[30, 8] > 0


def test_watershed_splits_two_discs_merged_by_a_bridge_but_not_a_rod():
    labels = np.zeros((60, 100), np.uint8)
    labels[disk((20, 20), 10)] = 1
    labels[disk((20, 44), 10)] = 1
    labels[18:23, 20:44] = 1  # a 5-px bridge where the network missed the gap: one blob with a waist
    for x in (15, 45, 75):
        labels[disk((48, x), 10)] = 1  # single discs: the typical area is a disc's (radius 10)
    assert label_instances(labels, **RAW).max() == 4
    ids = label_instances(labels, min_size=0, split=True, min_distance=10, grow=0)
    assert ids.max() == 5 and ids[20, 15] != ids[20, 49] and (ids > 0).sum() == labels.sum()
    assert label_instances(labels, min_size=0, grow=0).max() == 5  # auto: 1.5 × 10 px < 24 px between centres
    assert label_instances(labels, min_size=0, min_distance=30, grow=0).max() == 4
    rod = np.zeros((40, 80), np.int32)
    rod[ellipse(20, 40, 4, 30, rotation=0.3)] = 1  # convex (solidity ≥ 0.9): never split
    assert split_objects(rod, 3).max() == 1


def test_grow_back_fills_the_gap_only_and_never_crosses_objects():
    labels = np.zeros((10, 20), np.uint8)
    labels[2:8, 2:8] = labels[2:8, 10:16] = 1  # 2-px gap at x = 8, 9, as separate_touching leaves it
    ids = label_instances(labels, **{**RAW, "grow": 1})
    np.testing.assert_array_equal(ids[5, 7:11], [1, 1, 2, 2])
    assert (ids > 0).sum() == 72 + 12  # the two gap columns between the rows 2…7, nothing else
    wide = label_instances(labels, **{**RAW, "grow": 3})
    np.testing.assert_array_equal(wide[5, 7:11], [1, 1, 2, 2])  # nearest object wins; no crossing
    outline = label_instances(labels, **{**RAW, "grow": 1, "grow_into": "background"})
    assert (outline == 1).sum() == 36 + 4 * 6  # the whole outline grows by 1 px


def test_grow_back_never_takes_pixels_of_a_foreground_class():
    labels = np.zeros((6, 10), np.uint8)
    labels[:, :4] = 1
    labels[:, 5:] = 2
    ids = label_instances(labels, **RAW)
    ids[:, 5:] = 0  # as if class 2 had been dropped (speckle)
    grown = grow_back(ids, labels, 3, "background")
    assert (grown[:, 4] == 1).all() and (grown[:, 5:] == 0).all()


def test_stack_ids_are_unique_across_slices_and_dtypes_are_free():
    plane = two_discs_with_gap()
    for dtype in (np.uint8, np.uint16, np.int64, bool):
        ids = label_instances(np.stack([plane, plane, plane]).astype(dtype), **RAW)
        assert ids.shape == (3, 40, 60) and ids.max() == 6
        assert [sorted(np.unique(s[s > 0])) for s in ids] == [[1, 2], [3, 4], [5, 6]]


def test_instance_classes_by_majority_and_unique_per_slice():
    ids = np.array([[1, 1, 1, 2], [0, 3, 0, 2]])
    labels = np.array([[2, 2, 0, 1], [1, 0, 0, 1]])
    assert instance_classes(ids, labels) == {1: 2, 2: 1, 3: 0}  # 3 covers only background: class 0
    stack = np.zeros((2, 2, 3), np.uint16)
    stack[:, 0, :2] = 7  # one 3-D object in two slices
    stack[1, 1, 2] = 9
    out = unique_per_slice(stack)
    assert out.dtype == np.int32 and sorted(np.unique(out)) == [0, 1, 2, 3] and out[0, 0, 0] != out[1, 0, 0]


@pytest.mark.parametrize("labels, options, match", [
    (np.zeros((4, 4)), {}, "integer class ids"),
    (np.array([[0, -1], [1, 0]]), {}, "non-negative"),
    (np.zeros(5, int), {}, "2 or 3 dimensions"),
    (np.zeros((1, 1, 2, 2), int), {}, "2 or 3 dimensions"),
    (np.zeros((0, 4), int), {}, "empty"),
    (np.zeros((4, 4), int), {"min_size": -1}, "min_size must be an integer"),
    (np.zeros((4, 4), int), {"min_distance": 2.5}, "min_distance must be an integer"),
    (np.zeros((4, 4), int), {"grow": "auto"}, "grow must be an integer"),
    (np.zeros((4, 4), int), {"grow_into": "everywhere"}, "grow_into must be one of"),
])
def test_bad_inputs(labels, options, match):
    with pytest.raises(ValueError, match=match):
        label_instances(labels, **options)


def test_empty_labels_give_no_objects():
    assert label_instances(np.zeros((2, 5, 5), np.uint8)).max() == 0
    assert instance_classes(np.zeros((3, 3), int), np.zeros((3, 3), int)) == {}
