"""The U-Net border weight map: the paper's formula, exact against a brute-force reference."""

import math

import numpy as np
import pytest
from scipy import ndimage
from skimage.draw import disk

from napari_segnet.numerics.weightmap import object_map, unet_weight_map


def brute_force(labels, w0=10.0, sigma=5.0, instances=None):
    """One distance transform per object over the whole image; sort; apply the formula on background."""
    objects = object_map(labels, instances)
    dists = np.stack([ndimage.distance_transform_edt(objects != k) for k in range(1, objects.max() + 1)])
    dists.sort(axis=0)
    border = w0 * np.exp(-((dists[0] + dists[1]) ** 2) / (2 * sigma**2))
    return np.where(labels == 0, 1 + border, 1.0)


def blobs(shape=(96, 128), n=25, classes=2, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint8)
    for _ in range(n):
        rr, cc = disk(tuple(rng.integers(0, shape)), rng.integers(3, 8), shape=shape)
        labels[rr, cc] = rng.integers(1, classes + 1)
    return labels


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_brute_force_to_1e_4(seed):
    labels = blobs(seed=seed)
    np.testing.assert_allclose(unet_weight_map(labels), brute_force(labels), atol=1e-4, rtol=0)


def test_one_pixel_gap_gets_the_highest_weight():
    labels = np.zeros((20, 21), np.uint8)
    labels[5:15, 3:10] = 1
    labels[5:15, 11:18] = 1  # a 1-px background gap at column 10: d1 = d2 = 1
    w = unet_weight_map(labels)
    gap = 1 + 10 * math.exp(-((1 + 1) ** 2) / (2 * 5**2))  # 10.231
    assert w[10, 10] == pytest.approx(gap, abs=1e-5)
    assert w.max() == pytest.approx(gap, abs=1e-5) and np.argmax(w.max(axis=0)) == 10
    assert (w[labels > 0] == 1).all()  # objects keep w_c: the border term is on background only
    # a corner pixel far from both objects: d1 = √(3²+3²), d2 = distance to the far square
    d1, d2 = math.hypot(3, 3), math.hypot(3, 11)  # to (5, 3) and to (5, 11)
    assert w[2, 0] == pytest.approx(1 + 10 * math.exp(-((d1 + d2) ** 2) / 50), abs=1e-4)


def test_single_object_has_no_border_term():
    labels = np.zeros((16, 16), np.uint8)
    labels[4:8, 4:8] = 1
    assert (unet_weight_map(labels) == 1).all()


def test_touching_instances_are_separated_only_when_instance_ids_are_given():
    labels = np.zeros((20, 30), np.uint8)
    labels[5:15, 5:25] = 1
    instances = np.zeros_like(labels, dtype=np.int32)
    instances[5:15, 5:15], instances[5:15, 15:25] = 7, 9  # two touching instances of one class
    as_component = unet_weight_map(labels)
    as_instances = unet_weight_map(labels, instances=instances)
    assert (as_component == 1).all()  # one connected component: nothing to separate
    # just above instance 7's last column: d1 = 1 (straight down), d2 = √2 (diagonally to instance 9)
    assert as_instances[4, 14] == pytest.approx(1 + 10 * math.exp(-((1 + math.sqrt(2)) ** 2) / 50), abs=1e-5)
    np.testing.assert_allclose(as_instances, brute_force(labels, instances=instances), atol=1e-4)


def test_balanced_class_weights():
    labels = np.zeros((8, 8), np.uint8)
    labels[:4, :4] = 1  # 16 of 64 pixels: w_bg = 64 / (2·48) = 2/3, w_fg = 64 / (2·16) = 2
    w = unet_weight_map(labels, w0=0, class_weights="balanced")
    assert w[0, 0] == pytest.approx(2) and w[7, 7] == pytest.approx(2 / 3)
    assert w.mean() == pytest.approx(1)
    w = unet_weight_map(labels, w0=0, class_weights=[0.5, 3])
    assert w[0, 0] == 3 and w[7, 7] == 0.5


def test_mask_hides_unreviewed_labels_from_objects_and_class_counts():
    labels = np.zeros((20, 21), np.uint8)
    labels[5:15, 3:10] = 1
    labels[5:15, 11:18] = 1
    mask = np.zeros(labels.shape, bool)
    mask[:, :11] = True  # the right square is not reviewed
    w = unet_weight_map(labels, mask=mask, class_weights="balanced")
    n_fg, n = 70, 20 * 11  # class counts over the 220 reviewed pixels only
    assert w[10, 5] == pytest.approx(n / (2 * n_fg))
    # with only one object left there is no second-nearest object: no border term at the gap
    assert w[10, 10] == pytest.approx(n / (2 * (n - n_fg)))


def test_w0_and_sigma_enter_the_formula():
    labels = np.zeros((10, 13), np.uint8)
    labels[:, :6], labels[:, 7:] = 1, 2  # two classes, 1-px gap
    w = unet_weight_map(labels, w0=4, sigma=2)
    assert w[5, 6] == pytest.approx(1 + 4 * math.exp(-4 / 8), abs=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    ({"labels": np.zeros(5, int)}, "2 or 3 dimensions"),
    ({"labels": np.zeros((4, 4))}, "integer class ids"),
    ({"labels": -np.ones((4, 4), int)}, "non-negative"),
    ({"labels": np.zeros((0, 4), int)}, "empty"),
    ({"labels": np.zeros((4, 4), int), "sigma": 0}, "sigma"),
    ({"labels": np.zeros((4, 4), int), "w0": float("nan")}, "w0"),
    ({"labels": np.ones((4, 4), int), "class_weights": [1.0]}, "one weight per class"),
    ({"labels": np.ones((4, 4), int), "class_weights": "inverse"}, "balanced"),
    ({"labels": np.ones((4, 4), int), "instances": np.ones((4, 5), int)}, "same shape"),
])
def test_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        unet_weight_map(**kwargs)
