"""Volumes predicted from three views: YX, ZX and ZY planes, probabilities averaged (Python and CLI)."""

import numpy as np
import pytest
import tifffile
from cli_helpers import main
from conftest import FAST, run, tiny_segmenter
from scipy import ndimage

from napari_segnet.segmenter import Segmenter


def blob_volume(shape=(24, 40, 40), seed=0):
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint8)
    zz, yy, xx = np.mgrid[: shape[0], : shape[1], : shape[2]]
    for _ in range(5):
        c, r = rng.uniform(4, np.array(shape) - 4), rng.uniform(3, 6)
        labels[(zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= r * r] = 1
    image = ndimage.gaussian_filter(labels * 100.0, 1) + rng.normal(0, 10, shape)
    return image.astype(np.float32), labels


def test_three_views_average_the_probabilities_of_the_yx_zx_and_zy_planes():
    seg = tiny_segmenter(num_classes=2)
    volume, labels = blob_volume()
    run(seg.finetune([volume[12]], [labels[12]], validation=([volume[12]], [labels[12]]), **FAST))  # sees blobs
    yx = seg.predict_proba(volume)  # (C, Z, Y, X)
    zx = seg.predict_proba(np.ascontiguousarray(volume.transpose(1, 0, 2))).transpose(0, 2, 1, 3)
    zy = seg.predict_proba(np.ascontiguousarray(volume.transpose(2, 0, 1))).transpose(0, 2, 3, 1)
    three = seg.predict_proba(volume, views=3)
    np.testing.assert_allclose(three, (yx + zx + zy) / 3, atol=2e-3)  # per-view normalisation differs a hair
    np.testing.assert_array_equal(seg.predict(volume, views=3), three.argmax(axis=0))
    assert np.abs(three - yx).max() > 0.05  # the side views really count


def test_anisotropic_voxels_are_resampled_for_the_side_views_and_back():
    seg = tiny_segmenter(num_classes=2)
    volume, _ = blob_volume((12, 40, 40))
    labels = seg.predict(volume, views=3, spacing=(2.0, 1.0, 1.0))  # slices 2 px apart: side views see 24 planes
    assert labels.shape == (12, 40, 40) and labels.dtype == np.uint8
    proba = seg.predict_proba(volume, views=3, spacing=(2.0, 1.0, 1.0))
    assert proba.shape == (2, 12, 40, 40) and np.allclose(proba.sum(axis=0), 1, atol=1e-4)


def test_bad_views_inputs_are_refused_with_a_message():
    seg = tiny_segmenter(num_classes=2)
    volume, _ = blob_volume()
    with pytest.raises(ValueError, match="views must be 1"):
        seg.predict(volume, views=2)
    with pytest.raises(ValueError, match="three positive voxel sizes"):
        seg.predict(volume, views=3, spacing=(0, 1, 1))
    with pytest.raises(ValueError, match=r"single-channel \(Z, Y, X\) volume"):
        seg.predict(volume[0], views=3)
    rgb = Segmenter.create("unet", 3, 2, base_filters=4, depth=2)
    with pytest.raises(ValueError, match="one-channel model"):
        rgb.predict(np.zeros((4, 16, 16, 3), np.float32), views=3)


def test_the_command_line_predicts_three_views(tmp_path, capsys):
    seg = tiny_segmenter(num_classes=2)
    model = seg.save(tmp_path / "m.safetensors")
    volume, _ = blob_volume()
    tifffile.imwrite(tmp_path / "vol.tif", volume)
    status, _, err = main(capsys, "predict", tmp_path / "vol.tif", "--model", model, "--out", tmp_path / "o",
                          "--views", "3")
    assert status == 0, err
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "o" / "vol_labels.tif"), seg.predict(volume, views=3))
    status, _, err = main(capsys, "predict", tmp_path / "vol.tif", "--model", model, "--out", tmp_path / "p",
                          "--spacing", "2", "1", "1")
    assert status == 2 and "add --views 3" in err


@pytest.mark.gui
def test_the_dock_predicts_a_stack_from_three_views_with_the_layers_voxel_size(make_napari_viewer, monkeypatch,
                                                                                errors):
    from conftest import open_dock

    viewer, widget, _ = open_dock(make_napari_viewer, monkeypatch)
    volume, _ = blob_volume((12, 40, 40))
    viewer.add_image(volume, name="vol", scale=(2.0, 1.0, 1.0))  # slices twice as far apart as pixels
    widget.reset_choices()
    widget.image_layer.value = viewer.layers["vol"]
    widget.views.value = True
    widget.predict()
    assert not errors, errors
    np.testing.assert_array_equal(viewer.layers["vol prediction"].data,
                                  widget.segmenter.predict(volume, views=3, spacing=(2.0, 1.0, 1.0)))
    widget.slice_only.value = True
    widget.predict()
    assert "untick 'current slice only'" in errors[-1]
