"""A big (dask-backed) image in the dock: predicted into a zarr-backed layer visible region first, painted into,
fine-tuned on its reviewed regions, kept in the project folder."""

import numpy as np
import pytest
from conftest import open_dock, two_class_image

pytestmark = pytest.mark.gui
da = pytest.importorskip("dask.array")


def big_dock(make_napari_viewer, monkeypatch, tmp_path, size=768):
    viewer, widget, _ = open_dock(make_napari_viewer, monkeypatch)
    image, truth = two_class_image(size=size)
    viewer.add_image(da.from_array(image, chunks=256), name="big")
    widget.reset_choices()
    widget.image_layer.value = viewer.layers["big"]
    widget.project_dir.value = tmp_path / "proj"
    return viewer, widget, image, truth


def test_a_dask_image_is_predicted_into_zarr_painted_and_fine_tuned(make_napari_viewer, monkeypatch, tmp_path,
                                                                    errors):
    viewer, widget, image, truth = big_dock(make_napari_viewer, monkeypatch, tmp_path)
    viewer.scene.camera.center, viewer.scene.camera.zoom = (600, 600), 4.0  # looking at the bottom right corner
    first = widget.predict_tab.visible(viewer.layers["big"], viewer.layers["big"])
    widget.predict()
    assert not errors, errors
    layer = viewer.layers["big prediction"]
    assert not isinstance(layer.data, np.ndarray) and (tmp_path / "proj" / "predictions" / "big.zarr").is_dir()
    np.testing.assert_array_equal(layer.data[:], widget.segmenter.predict(image, tile_shape=None))
    assert first[1][0] <= 600 < first[1][1] and first[2][0] <= 600 < first[2][1]  # its blocks are predicted first
    layer.brush_size = 9
    label = 1 - int(layer.data[600, 600])
    layer.paint((600, 600), label)  # painting writes into the zarr store
    assert layer.data[600, 600] == label and layer.metadata["segnet_painted"][600, 600]
    widget.steps.value = 3
    widget.finetune()
    assert not errors, errors
    assert list(widget.training_set) == ["big y448-704 x448-704"]  # its 128² tile with 64 px of context
    crop, labels, reviewed = widget.training_set["big y448-704 x448-704"]
    assert crop.shape == (256, 256) and labels[152, 152] == label and reviewed.sum() == 128 * 128
    assert widget.segmenter.available_versions == [0, 1]
    widget.predict()  # again: the painted pixels stay
    assert layer.data[600, 600] == label


def test_options_a_big_image_cannot_take_are_named(make_napari_viewer, monkeypatch, tmp_path, errors):
    viewer, widget, image, truth = big_dock(make_napari_viewer, monkeypatch, tmp_path, size=256)
    widget.uncertainty.value = True
    widget.predict()
    assert "untick 'show uncertainty'" in errors[-1]
    widget.uncertainty.value = False
    widget.predict()
    widget.live_toggle.value = True
    assert "live mode learns on images held in memory" in errors[-1]


def test_next_on_a_big_image_shows_the_most_uncertain_unreviewed_tile_in_view(make_napari_viewer, monkeypatch,
                                                                               tmp_path, errors):
    from napari_segnet import big_image
    from napari_segnet.inference.suggest import uncertainty

    viewer, widget, image, truth = big_dock(make_napari_viewer, monkeypatch, tmp_path)
    widget.next_button.native.click()
    assert "predict 'big' first" in errors[-1]
    viewer.scene.camera.center, viewer.scene.camera.zoom = (500, 450), 2.0
    widget.predict()
    plane, (r0, r1), (c0, c1) = widget.predict_tab.visible(viewer.layers["big"], viewer.layers["big prediction"])
    u = uncertainty(widget.segmenter.predict_proba(image, tile_shape=512)).astype(np.float64)  # as the blocks do
    starts = [(y, x) for y in range(r0 // 128 * 128, r1, 128) for x in range(c0 // 128 * 128, c1, 128)]
    ranked = sorted(starts, key=lambda s: -u[s[0] : s[0] + 128, s[1] : s[1] + 128].mean())
    assert 4 <= len(starts) < 36  # the part in view, not the whole 6 × 6 tiles
    widget.next_button.native.click()
    *_, rows, cols = widget.live_mode.suggested
    assert (rows.start, cols.start) == ranked[0] and rows.stop - rows.start == 128
    layer = viewer.layers["big prediction"]
    viewer.scene.camera.center, viewer.scene.camera.zoom = (500, 450), 2.0  # Next centred the view on its tile
    at = (ranked[1][0] + 64, ranked[1][1] + 64)
    layer.paint(at, 1 - int(layer.data[at]))  # a stroke reviews the second one's tile
    widget.next_button.native.click()
    *_, rows, cols = widget.live_mode.suggested
    assert (rows.start, cols.start) == ranked[2]  # the first was visited, the second reviewed
    monkeypatch.setattr(big_image, "MAX_RANKED", 128 * 128)
    widget.next_button.native.click()
    assert "zoom in" in errors[-1] and not [e for e in errors[:-2] if "zoom" in e]
