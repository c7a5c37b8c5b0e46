"""Test-time augmentation: the mean of the predictions of the 8 flips and rotations, mapped back; every network."""

import numpy as np
import pytest
import torch
from conftest import TINY, smooth_image, tiny_segmenter

from napari_segnet.inference.tta import SYMMETRIES, transform, untransform
from napari_segnet.segmenter import Segmenter


def test_the_8_symmetries_are_distinct_and_each_is_undone():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    turned = [transform(x, k, flip) for k, flip in SYMMETRIES]
    assert len({tuple(t.flatten().tolist()) + tuple(t.shape) for t in turned}) == 8
    assert all(torch.equal(untransform(t, k, f), x) for t, (k, f) in zip(turned, SYMMETRIES))


def test_tta_is_the_mean_of_the_8_turned_predictions_turned_back():
    seg, image = tiny_segmenter(), smooth_image((40, 56)).astype(np.float32)
    manual = np.zeros((3, 40, 56), np.float32)
    for k, flip in SYMMETRIES:  # rotate k quarter turns, then mirror: undone in the reverse order
        turned = np.rot90(image, k)[:, ::-1] if flip else np.rot90(image, k)
        p = seg.predict_proba(np.ascontiguousarray(turned), tile_shape=64)
        manual += np.rot90(p[:, :, ::-1] if flip else p, -k, axes=(1, 2)) / 8
    averaged = seg.predict_proba(image, tile_shape=64, tta=True)
    np.testing.assert_allclose(averaged, manual, atol=1e-6)
    assert np.abs(averaged - seg.predict_proba(image, tile_shape=64)).max() > 1e-3  # not the plain one
    np.testing.assert_array_equal(seg.predict(image, tile_shape=64, tta=True), averaged.argmax(0))


def test_a_tta_prediction_turns_and_mirrors_with_the_image():
    seg, image = tiny_segmenter(), smooth_image((48, 48)).astype(np.float32)
    turned = np.ascontiguousarray(np.rot90(image)[:, ::-1])
    tta = seg.predict_proba(image, tile_shape=64, tta=True)
    np.testing.assert_allclose(seg.predict_proba(turned, tile_shape=64, tta=True),
                               np.rot90(tta, axes=(1, 2))[:, :, ::-1], atol=1e-6)
    plain = seg.predict_proba(image, tile_shape=64)
    assert np.abs(seg.predict_proba(turned, tile_shape=64) - np.rot90(plain, axes=(1, 2))[:, :, ::-1]).max() > 1e-3


@pytest.mark.parametrize("name, options", [("unet", {}), ("unet", {"padding": "valid"}), ("fcn8s", {}),
                                           ("fc_densenet56", {})])
def test_every_family_predicts_tiled_non_square_images_with_tta(name, options):
    torch.manual_seed(0)
    seg = Segmenter.create(name, 1, 3, **{**TINY[name], **options})
    image = smooth_image((70, 45))
    proba = seg.predict_proba(image, tile_shape=32, tta=True)
    assert proba.shape == (3, 70, 45)
    np.testing.assert_allclose(proba.sum(0), 1, atol=1e-5)
    np.testing.assert_array_equal(seg.predict(image, tile_shape=32, tta=True), proba.argmax(0))
