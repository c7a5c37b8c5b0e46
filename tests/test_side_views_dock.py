"""Corrections on any view in the dock: strokes on a volume shown as (Z, X) planes (dims transposed) mark (Z, X)
regions, train on (Z, X) planes, survive the project folder and join live mode in that orientation (which
refreshes from three views when the Predict tab asks for them)."""

import numpy as np
import pytest
from conftest import open_dock, two_class_image

from napari_segnet._widgets.dock import SegNetWidget
from napari_segnet._widgets.review import layer_regions, sliced_axis
from napari_segnet.training.regions import Region, view_bit

pytestmark = pytest.mark.gui


def volume_dock(make_napari_viewer, monkeypatch, tmp_path, scale=(1.0, 1.0, 1.0)):
    """The dock on a (Z, Y, X) volume "vol" (voxel size ``scale``) whose (Z, X) planes are two-class images,
    predicted, with the dims transposed to show the (Z, X) plane of row y = 2."""
    viewer, widget, _ = open_dock(make_napari_viewer, monkeypatch)
    pairs = [two_class_image(seed=y, size=64) for y in range(4)]
    volume, truth = (np.stack([p[i] for p in pairs], axis=1) for i in (0, 1))
    viewer.add_image(volume, name="vol", scale=scale)
    widget.reset_choices()
    widget.image_layer.value = viewer.layers["vol"]
    widget.project_dir.value = tmp_path / "proj"
    widget.predict()
    viewer.dims.order = (1, 0, 2)
    viewer.dims.set_current_step(1, 2)
    layer = viewer.layers["vol prediction"]
    assert sliced_axis(viewer, layer) == 1
    return viewer, widget, layer, volume, truth


def test_a_stroke_on_a_zx_plane_trains_on_zx_planes_and_the_project_keeps_it(make_napari_viewer, monkeypatch,
                                                                            tmp_path, errors):
    # slices 2 µm apart, pixels 1 µm: the (Z, X) plane trains resampled to 128 × 64, as 3 views predict it
    viewer, widget, layer, volume, truth = volume_dock(make_napari_viewer, monkeypatch, tmp_path, (2.0, 1.0, 1.0))
    layer.brush_size = 5
    label = 1 - int(layer.data[30, 2, 20])
    layer.paint((30, 2, 20), label)
    assert layer_regions(viewer.layers["vol reviewed"]) == [Region(2, 0, 0, 64, 64, axis=1)]  # its (Z, X) tile
    widget.steps.value = 3
    widget.finetune()
    assert not errors, errors
    _, labels, mask = widget.training_set["vol"]
    expected = np.zeros(volume.shape, np.uint8)
    expected[:, 2, :] = view_bit(1)
    np.testing.assert_array_equal(mask, expected)
    assert labels[30, 2, 20] == label and widget.segmenter.versions[-1].reviewed_pixels == 128 * 64
    again = make_napari_viewer()
    restored = SegNetWidget(again)
    again.window.add_dock_widget(restored)
    restored.project_dir.value = tmp_path / "proj"
    assert layer_regions(again.layers["vol reviewed"]) == [Region(2, 0, 0, 64, 64, axis=1)]
    np.testing.assert_array_equal(restored.training_set["vol"][2], expected)


def test_live_mode_mark_what_i_see_and_next_work_on_the_plane_in_view(make_napari_viewer, monkeypatch,
                                                                              tmp_path, errors):
    viewer, widget, layer, volume, truth = volume_dock(make_napari_viewer, monkeypatch, tmp_path)
    widget.views.value = True  # live mode refreshes from the three views, as Predict would
    widget.live_toggle.value = True
    session = widget.live_mode.session
    layer.brush_size = 5
    layer.paint((30, 2, 20), 1 - int(layer.data[30, 2, 20]))
    assert list(session.planes) == [("vol", 1, 2)] and session.planes[("vol", 1, 2)].labels.shape == (64, 64)
    assert session.planes[("vol", 1, 2)].reviewed.all()
    assert session.views == 3 and session.planes[("vol", 1, 2)].volume.shape == volume.shape
    widget.live_toggle.value = False
    assert not errors, errors
    mask = widget.training_set["vol"][2]
    assert (mask[:, 2, :] == view_bit(1)).all() and mask.sum() == 64 * 64 * view_bit(1)
    viewer.dims.set_current_step(1, 3)
    widget.finetune_tab.mark_view()
    assert Region(3, 0, 0, 64, 64, axis=1) in layer_regions(viewer.layers["vol reviewed"])
    viewer.dims.set_current_step(1, 1)
    widget.live_mode.next_region()  # Next points into the (Z, X) plane in view
    assert not errors, errors
    assert widget.live_mode.suggested[:3] == ("vol", 1, 1)
    outline = np.asarray(viewer.layers["next region"].data[0])
    assert outline.shape == (4, 3) and (outline[:, 1] == 1).all()
    widget.live_mode.accept_shown_tile(viewer.layers["vol"])
    assert Region(1, 0, 0, 64, 64, axis=1) in layer_regions(viewer.layers["vol reviewed"])
