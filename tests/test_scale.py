"""Object size: diameter estimate, zoom to the model's size and back, bad diameters."""

import math

import numpy as np
import pytest
from skimage.draw import disk

from napari_segnet.inference.scale import estimate_diameter, zoom_factor, zoom_image
from napari_segnet.segmenter import Segmenter


def discs(shape=(64, 64), centres=((16, 16), (16, 44), (46, 30)), radius=6):
    labels = np.zeros(shape, np.int32)
    for i, c in enumerate(centres, 1):
        labels[disk(c, radius, shape=shape)] = i
    return labels


def test_estimate_diameter_is_the_median_equivalent_diameter_of_whole_objects():
    labels = discs()
    area = (labels == 1).sum()  # 113 px for a radius-6 disc drawn by skimage
    assert estimate_diameter(labels) == pytest.approx(math.sqrt(4 * area / math.pi))
    labels[0:3, 0:40] = 2  # a strip cut by the border: left out while whole objects exist
    labels[60:64, :] = 3
    assert estimate_diameter(labels > 0) == pytest.approx(math.sqrt(4 * area / math.pi))  # semantic works too
    assert estimate_diameter(np.stack([discs(), discs()])) == pytest.approx(math.sqrt(4 * area / math.pi))


def test_estimate_diameter_refuses_empty_and_float_labels():
    with pytest.raises(ValueError, match="no object"):
        estimate_diameter(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="integer"):
        estimate_diameter(np.zeros((8, 8), np.float32))


@pytest.mark.parametrize("bad", [0, -3.0, float("nan"), float("inf"), "20", True])
def test_bad_diameters_are_refused(bad):
    with pytest.raises(ValueError, match="positive number"):
        zoom_factor(bad, 20.0)
    seg = Segmenter.create("unet", 1, 2, base_filters=4, depth=2)
    seg.annotate(object_diameter=20.0)
    with pytest.raises(ValueError, match="positive number"):
        seg.predict(np.zeros((16, 16), np.float32), diameter=bad)


def test_zoom_factor_and_a_model_without_size():
    assert zoom_factor(None, None) == 1.0
    assert zoom_factor(10, 25.0) == 2.5
    with pytest.raises(ValueError, match="records no object size"):
        Segmenter.create("unet", 1, 2, base_filters=4, depth=2).predict(np.zeros((16, 16)), diameter=12)


def test_zoom_image_changes_only_y_and_x():
    assert zoom_image(np.zeros((5, 30, 40)), 0.5).shape == (5, 15, 20)  # a stack
    assert zoom_image(np.zeros((30, 40, 3)), 2.0, in_channels=3).shape == (60, 80, 3)  # RGB
    assert zoom_image(np.ones((31, 17), np.uint16), 0.37).dtype == np.float32


@pytest.mark.parametrize("shape", [(37, 53), (3, 29, 31)])
def test_rescaled_prediction_has_the_input_shape(shape):
    seg = Segmenter.create("unet", 1, 2, base_filters=4, depth=2)
    seg.annotate(object_diameter=20.0)
    image = np.random.default_rng(0).random(shape).astype(np.float32)
    for diameter in (9.0, 20.0, 47.0):  # zoom 2.2×, 1×, 0.43×
        assert seg.predict(image, diameter=diameter).shape == shape
        assert seg.predict_proba(image, diameter=diameter).shape == (2, *shape)
        assert seg.predict_instances(image, diameter=diameter).shape == shape
    proba = seg.predict_proba(image, diameter=9.0)
    np.testing.assert_allclose(proba.sum(0), 1.0, atol=1e-5)


def test_finetune_with_diameter_zooms_to_the_model_size_or_records_it():
    image, labels = discs().astype(np.float32), (discs() > 0).astype(np.uint8)
    seg = Segmenter.create("unet", 1, 2, base_filters=4, depth=2)
    for _ in seg.finetune([image], [labels], steps=2, batch_size=1, patch_size=32, diameter=13.0, seed=0):
        pass
    assert seg.object_diameter == 13.0  # a model without a size records the one it was trained on
    update = list(seg.finetune([image], [labels], steps=2, batch_size=1, patch_size=32, diameter=6.5, seed=0,
                               accept_worse=True))[-1]
    assert update.accepted and seg.versions[-1].reviewed_pixels == 128 * 128  # zoomed 2× before training
    assert seg.object_diameter == 13.0
