"""Live mode in the dock: strokes during bursts are kept, off mid-burst, rollback, responsiveness, Next."""

import time

import numpy as np
import pytest
from conftest import open_dock, two_class_image

from napari_segnet.segmenter import Segmenter

pytestmark = pytest.mark.gui


@pytest.fixture
def always_better(monkeypatch):
    """The reviewed-pixel guard sees every burst improve (the guard itself is tested in test_live.py)."""
    calls = iter(range(1, 10_000))
    monkeypatch.setattr(Segmenter, "_reviewed_scores",
                        lambda self, items, device=None, held_out=False: {"mean_iu": next(calls)})


def make_dock(make_napari_viewer, monkeypatch, size=96):
    viewer, widget, truth = open_dock(make_napari_viewer, monkeypatch, size)  # Predict inline; live in its worker
    widget.burst_steps.value, widget.live_lr.value, widget.refresh_s.value = 4, 1e-2, 0.0
    return viewer, widget, truth


@pytest.fixture
def dock(make_napari_viewer, monkeypatch):
    return make_dock(make_napari_viewer, monkeypatch)


def paint(layer, yx, label=None, size=5):
    """A brush stroke at ``yx``; by default of the class the prediction does not show there (a correction:
    napari reports only pixels a stroke changes). Returns the label painted."""
    label = 1 - int(layer.data[yx]) if label is None else label
    layer.brush_size = size
    layer.paint(yx, label)
    return label


def in_burst(widget):
    return "step" in widget.live_status.value


def test_strokes_during_a_burst_are_kept_and_off_mid_burst_loses_none(dock, qtbot, errors):
    viewer, widget, truth = dock
    widget.predict()
    layer = viewer.layers["cells prediction"]
    widget.live_toggle.value = True
    session = widget.live_mode.session
    first = paint(layer, (10, 10))
    qtbot.waitUntil(lambda: in_burst(widget), timeout=30_000)
    second = paint(layer, (60, 60))  # during burst 1
    qtbot.waitUntil(lambda: len(session.bursts) >= 2, timeout=60_000)
    assert [b.strokes for b in session.bursts[:2]] == [1, 2]  # the second stroke joined burst 2
    qtbot.waitUntil(lambda: in_burst(widget), timeout=30_000)
    third = paint(layer, (30, 80))  # a third stroke, mid-burst, then off
    widget.live_toggle.value = False
    assert widget.live_mode.session is None and widget.live_mode.done and not errors
    painted = layer.metadata["segnet_painted"]
    assert 3 < painted.sum() <= 3 * 21
    image, labels, reviewed = widget.training_set["cells"]
    assert reviewed.all()  # every stroke marked its 128² tile as reviewed: all of this 96² image
    np.testing.assert_array_equal(labels[painted], layer.data[painted])
    assert (labels[10, 10], labels[60, 60], labels[30, 80]) == (first, second, third)
    assert len(widget.segmenter.versions) <= 2 and widget.segmenter.predict(image).shape == (96, 96)
    paint(layer, (80, 20))  # live is off: strokes no longer train anything
    assert session.strokes == 3


def test_rollback_after_a_live_session_saved_to_the_project(dock, qtbot, tmp_path, always_better, errors):
    viewer, widget, truth = dock
    widget.project_dir.value = tmp_path / "proj"
    widget.predict()
    before = {k: v.clone() for k, v in widget.segmenter.net.state_dict().items()}
    widget.live_toggle.value = True
    paint(viewer.layers["cells prediction"], (20, 20))
    qtbot.waitUntil(lambda: len(widget.live_mode.session.bursts) >= 3, timeout=60_000)  # 1 + 2 idle bursts
    widget.predict()  # Predict waits for live mode
    assert "wait for the running prediction" in errors[-1]
    widget.live_toggle.value = False
    seg = widget.segmenter
    assert [v.version for v in seg.versions] == [0, 1] and seg.active_version == 1
    assert seg.versions[1].details["live"] == {"bursts": 3, "kept": 3, "strokes": 1} and seg.versions[1].parent == 0
    assert widget.versions.choices == (0, 1)
    assert (tmp_path / "proj" / "models" / "v0001.safetensors").exists()
    assert (tmp_path / "proj" / "labels" / "cells.tif").exists()
    widget.versions.value = 0
    widget.rollback()
    after = seg.net.state_dict()
    assert seg.active_version == 0 and all((before[k] == after[k]).all() for k in before)


def test_the_viewer_stays_responsive_while_live_training_runs(dock, qtbot):
    from qtpy.QtCore import QTimer

    viewer, widget, truth = dock
    widget.predict()
    widget.burst_steps.value = 10
    widget.live_toggle.value = True
    session = widget.live_mode.session
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(10)
    paint(viewer.layers["cells prediction"], (30, 30))
    qtbot.waitUntil(lambda: len(session.bursts) >= 2, timeout=60_000)
    timer.stop()
    widget.live_toggle.value = False
    gaps = np.diff(ticks)
    assert len(ticks) > 50 and gaps.max() <= 0.1, f"largest gap {gaps.max():.3f} s over {len(ticks)} ticks"


def test_closing_the_layer_or_the_viewer_mid_burst_loses_no_stroke(make_napari_viewer, monkeypatch, qtbot):
    for close in ("layer", "viewer"):
        viewer, widget, truth = make_dock(make_napari_viewer, monkeypatch)
        widget.predict()
        layer = viewer.layers["cells prediction"]
        widget.live_toggle.value = True
        label = paint(layer, (40, 40))
        qtbot.waitUntil(lambda w=widget: in_burst(w), timeout=30_000)
        painted = layer.metadata["segnet_painted"].copy()
        if close == "layer":
            viewer.layers.remove(layer)
        else:
            viewer.close()
        assert widget.live_mode.session is None
        assert widget.training_set["cells"][2].all() and painted.any()  # the stroke's tile: all of this image
        assert widget.training_set["cells"][1][40, 40] == label
        proba = widget.segmenter.predict_proba(truth.astype(np.float32))
        assert np.isfinite(proba).all()  # a usable model


def test_next_visits_unreviewed_regions_in_order_of_uncertainty(make_napari_viewer, monkeypatch, errors):
    viewer, widget, truth = make_dock(make_napari_viewer, monkeypatch, size=256)
    widget.predict()
    u = np.zeros((256, 256), np.float32)
    u[:128, :128], u[:128, 128:], u[128:, :128], u[128:, 128:] = 0.1, 0.4, 0.3, 0.2
    viewer.add_image(u, name="cells uncertainty")
    layer = viewer.layers["cells prediction"]
    layer.data[:] = 0
    paint(layer, (60, 190), 1, size=41)  # ~1300 pixels: the most uncertain tile counts as reviewed
    corners = []
    for _ in range(3):
        widget.next_button.clicked.emit()
        rect = viewer.layers["next region"].data[0]
        corners.append(tuple(rect.min(axis=0).astype(int)))
        center = np.asarray(viewer.scene.camera.center[-2:])
        np.testing.assert_allclose(center, rect.min(axis=0) + 64)
    assert corners == [(128, 0), (128, 128), (0, 0)]
    assert viewer.layers.selection.active is layer  # ready to paint there
    widget.next_button.clicked.emit()
    assert "every region of this image was visited or reviewed" in errors[-1]


def test_live_before_predicting_is_one_notification(dock, errors):
    viewer, widget, truth = dock
    widget.live_toggle.value = True
    assert "predict 'cells' first, then turn live mode on" in errors[-1]
    assert not widget.live_toggle.value and widget.live_mode.session is None
    with pytest.raises(ValueError, match="outside of the allowed range"):
        widget.burst_steps.value = 0


def test_live_mode_learns_with_the_other_images_corrections_and_keeps_each_its_own(make_napari_viewer, monkeypatch,
                                                                                   qtbot, always_better, errors):
    viewer, widget, truth = make_dock(make_napari_viewer, monkeypatch)
    widget.review.value = "whole image"
    widget.predict()
    viewer.layers["cells prediction"].data = truth.copy()
    widget.steps.value = 5
    widget.finetune()  # 'cells' is in the training set
    other, _ = two_class_image(seed=3, size=80)
    viewer.add_image(other, name="other")
    widget.reset_choices()
    widget.image_layer.value = viewer.layers["other"]
    widget.predict()
    widget.live_toggle.value = True
    assert set(widget.live_mode.session.planes) == {("cells", 0, 0), ("other", 0, 0)}  # the earlier correction joins
    paint(viewer.layers["other prediction"], (20, 20))
    qtbot.waitUntil(lambda: len(widget.live_mode.session.bursts) >= 1, timeout=60_000)
    widget.live_toggle.value = False
    assert not errors and widget.training_set["other"][1].shape == (80, 80)  # each image keeps its own labels
    np.testing.assert_array_equal(widget.training_set["cells"][1], truth)
