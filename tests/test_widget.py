"""The napari dock, driven as a user would: predict, paint a correction, fine-tune, predict again, evaluate."""

import time

import numpy as np
import pytest
from conftest import two_class_image
from scipy import ndimage

from napari_segnet._widgets import runner
from napari_segnet._widgets.dock import SegNetWidget
from napari_segnet.inference.scale import estimate_diameter
from napari_segnet.numerics.instances import label_instances
from napari_segnet.numerics.metrics import segmentation_scores
from napari_segnet.training.settings import TrainSettings
from napari_segnet.training.training_set import training_planes

pytestmark = pytest.mark.gui


def test_one_full_round(dock, errors):
    viewer, widget, truth = dock
    widget.predict()
    layer = viewer.layers["cells prediction"]
    assert layer.data.shape == truth.shape
    first = segmentation_scores(layer.data, truth, 2)["mean_iu"]

    layer.data = truth.copy()  # the user's corrections
    layer.brush_size = 5
    layer.paint((3, 3), 1)  # and one brush stroke, labelled "cell" on purpose: it must survive re-prediction
    stroke = layer.metadata["segnet_painted"].copy()
    assert 10 < stroke.sum() < 40 and (layer.data[stroke] == 1).all()
    widget.review.value = "regions I reviewed"  # the stroke marked its 128² tile: all of this 96² image
    assert viewer.layers["cells reviewed"].data[0].tolist() == [[-0.5, -0.5], [95.5, -0.5], [95.5, 95.5],
                                                                 [-0.5, 95.5]]

    reviewed = layer.data.copy()
    widget.finetune()
    assert not errors, errors
    assert widget.segmenter.active_version == 1 and widget.versions.value == 1
    assert len(widget.loss_plot.values) == 60
    assert [layer.name for layer in viewer.layers].count("cells prediction") == 1  # reused, not a new layer
    new = widget.segmenter.predict(viewer.layers["cells"].data)
    assert (new != reviewed).sum() > 20  # the new version predicts otherwise in places …
    np.testing.assert_array_equal(layer.data, reviewed)  # … but the reviewed tile is the person's: kept as is
    widget.truth_layer.value = viewer.layers["truth"]
    widget.evaluate()  # every pixel is the person's: nothing of the model's to score
    assert "reviewed region" in errors.pop()

    widget.unmark_button.native.click()  # the person removes the reviewed box and predicts again
    widget.predict()
    refreshed = viewer.layers["cells prediction"].data
    assert (refreshed[stroke] == 1).all()  # painted pixels survive re-prediction
    np.testing.assert_array_equal(refreshed[~stroke], new[~stroke])  # the rest is the new version's prediction
    widget.evaluate()
    unpainted = ~viewer.layers["cells prediction"].metadata["segnet_painted"]  # painted pixels are right anyway
    assert widget.scores["mean_iu"] == pytest.approx(segmentation_scores(refreshed[unpainted], truth[unpainted],
                                                                         2)["mean_iu"])
    assert widget.eval_note.value.startswith(f"pixel scores on the {unpainted.sum()} pixels the model predicted")
    assert widget.scores["mean_iu"] > max(first, 0.6)
    assert widget.table.item(2, 0).text() == "mean iu"
    rows = [widget.table.item(r, 0).text() for r in range(widget.table.rowCount())]
    assert rows[6:9] == ["predicted objects", "true objects", "precision @ 0.5"] and len(rows) == 6 + 2 + 2 * 5
    assert widget.object_scores[0]["n_true"] == ndimage.label(truth)[1]  # semantic truth → its components
    assert widget.table.item(7, 1).text() == str(ndimage.label(truth)[1])  # counts shown as integers


def test_user_errors_are_notifications_not_tracebacks(dock, errors):
    viewer, widget, _ = dock
    widget.finetune()  # nothing predicted yet
    assert "predict 'cells' first" in errors[-1]
    widget.evaluate()
    assert "predict first" in errors[-1]
    widget.predict()
    viewer.layers["cells prediction"].data[0, 0] = 5  # a class the model does not have
    widget.finetune()
    assert "holds class 5" in errors[-1]
    viewer.layers.remove("cells")  # the image is gone
    widget.reset_choices()
    widget.predict()
    assert "open an image first" in errors[-1]
    widget.load_file.value = __file__  # not a checkpoint
    assert "not a napari-segnet checkpoint" in errors[-1]
    assert widget.segmenter.active_version == 0  # nothing was lost


def test_rollback_and_weight_map(dock):
    viewer, widget, truth = dock
    widget.predict()
    widget.steps.value = 5
    widget.finetune()
    widget.versions.value = 0
    widget.rollback()
    assert widget.segmenter.active_version == 0
    viewer.layers["cells prediction"].data = truth.copy()  # corrected labels: touching discs → border weights
    widget.show_weight_map()
    weights = viewer.layers["cells weight map"].data
    assert weights.shape == truth.shape and weights.max() > 1


@pytest.mark.slow
def test_viewer_stays_responsive_while_fine_tuning(dock, qtbot, monkeypatch):
    """Threaded run: the largest gap between 10-ms Qt timer ticks stays under 200 ms."""
    from qtpy.QtCore import QTimer

    monkeypatch.delenv(runner.SYNC_ENV)
    viewer, widget, _ = dock
    widget.predict()
    qtbot.waitUntil(lambda: widget.job.done, timeout=20_000)
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(10)
    widget.steps.value = 80
    widget.finetune()
    qtbot.waitUntil(lambda: widget.job.done and widget.segmenter.active_version == 1, timeout=60_000)
    qtbot.waitUntil(lambda: widget.job.done, timeout=20_000)  # the refresh prediction
    timer.stop()
    gaps = np.diff(ticks)
    assert len(ticks) > 20 and gaps.max() < 0.2, f"largest gap {gaps.max():.3f} s"


def test_stop_leaves_the_model_unchanged(dock, qtbot, monkeypatch):
    monkeypatch.delenv(runner.SYNC_ENV)
    viewer, widget, _ = dock
    widget.predict()
    qtbot.waitUntil(lambda: widget.job.done, timeout=20_000)
    before = {k: v.clone() for k, v in widget.segmenter.net.state_dict().items()}
    widget.steps.value = 5000
    widget.finetune()
    qtbot.waitUntil(lambda: len(widget.loss_plot.values) >= 3, timeout=20_000)
    widget.stop()
    qtbot.waitUntil(lambda: widget.job.done, timeout=20_000)
    after = widget.segmenter.net.state_dict()
    assert all((before[k] == after[k]).all() for k in before)
    assert widget.segmenter.active_version == 0 and widget.train_button.enabled


def test_launcher_opens_sample_default_model_and_dock(qtbot):
    from napari_segnet.cli import launch, parse_args

    viewer, widget = launch(parse_args([]))
    try:
        assert [layer.name for layer in viewer.layers] == ["nuclei", "nuclei ground truth"]
        assert viewer.layers["nuclei"].visible and not viewer.layers["nuclei ground truth"].visible
        assert widget.image_layer.value is viewer.layers["nuclei"]
        assert widget.segmenter.class_names == ["background", "nucleus"]
        assert widget.segmenter.versions[0]["note"].startswith("default model")
    finally:
        viewer.close()


def test_project_folder_is_saved_after_fine_tuning_and_restores_the_session(dock, make_napari_viewer, tmp_path,
                                                                           errors):
    viewer, widget, truth = dock
    widget.project_dir.value = tmp_path / "proj"
    widget.predict()
    viewer.layers["cells prediction"].data = truth.copy()
    widget.steps.value = 5
    widget.finetune()
    assert not errors, errors
    again = make_napari_viewer()
    restored = SegNetWidget(again)
    again.window.add_dock_widget(restored)
    restored.project_dir.value = tmp_path / "proj"
    assert restored.segmenter.active_version == 1 and restored.segmenter.available_versions == [0, 1]
    np.testing.assert_array_equal(again.layers["cells prediction"].data, truth)
    np.testing.assert_array_equal(again.layers["cells"].data, viewer.layers["cells"].data)
    assert list(restored.training_set) == ["cells"]


def test_current_slice_of_a_stack_and_uncertainty(dock):
    viewer, widget, truth = dock
    stack = np.stack([two_class_image(seed=s, size=96)[0] for s in range(3)])
    viewer.add_image(stack, name="stack")
    widget.reset_choices()
    widget.image_layer.value = viewer.layers["stack"]
    viewer.dims.set_current_step(0, 2)
    widget.slice_only.value, widget.uncertainty.value = True, True
    widget.predict()
    layer = viewer.layers["stack prediction"]
    assert layer.data.shape == stack.shape
    expected = widget.segmenter.predict(stack[2])
    np.testing.assert_array_equal(layer.data[2], expected)
    assert not layer.data[:2].any()  # other slices untouched
    uncertainty = viewer.layers["stack uncertainty"].data
    proba = widget.segmenter.predict_proba(stack[2])
    np.testing.assert_allclose(uncertainty, 1 - proba.max(axis=0), atol=1e-6)
    assert 0 <= uncertainty.min() and uncertainty.max() <= 0.5  # two classes: 1 − max p ≤ ½


def test_corrections_of_several_images_accumulate(dock):
    viewer, widget, truth = dock
    widget.steps.value = 3
    widget.predict()
    widget.finetune()
    other, other_truth = two_class_image(seed=5, size=80)
    viewer.add_image(other, name="other")
    widget.reset_choices()
    widget.image_layer.value = viewer.layers["other"]
    widget.predict()
    viewer.layers["other prediction"].data = other_truth
    widget.finetune()
    assert list(widget.training_set) == ["cells", "other"]
    planes = training_planes(*zip(*widget.training_set.values()))  # what the fine-tune learns from
    assert [p.image.shape for p in planes] == [(96, 96), (80, 80)]
    np.testing.assert_array_equal(planes[1].labels, other_truth)
    assert widget.segmenter.versions[-1]["images"] == 2 and widget.segmenter.active_version == 2


def test_architecture_options_from_the_dock(dock, errors):
    viewer, widget, _ = dock
    widget.architecture.value = "fcn8s"
    assert widget.options.value == "width=1.0, dropout=0.5"
    widget.options.value = "width=0.0625, dropout=0.0"
    widget.class_names.value = "background, cell, debris"
    widget.use_model()
    assert not errors and widget.segmenter.metadata.architecture == "fcn8s"
    assert widget.segmenter.metadata.options == {"width": 0.0625, "dropout": 0.0}
    assert widget.segmenter.num_classes == 3 and widget.training_set == {}
    widget.options.value = "widht=2"
    widget.use_model()
    assert "unknown option widht for fcn8s" in errors[-1]
    widget.options.value = "width"
    widget.use_model()
    assert "cannot read the option 'width'" in errors[-1]
    assert widget.segmenter.metadata.options == {"width": 0.0625, "dropout": 0.0}  # unchanged


def test_weight_map_is_the_one_the_selected_loss_trains_with(dock):
    viewer, widget, truth = dock
    widget.predict()
    viewer.layers["cells prediction"].data = truth.copy()
    for loss in ("border_ce", "balanced_ce", "ce"):
        widget.loss.value = loss
        widget.show_weight_map()
        shown = viewer.layers["cells weight map"].data
        np.testing.assert_array_equal(shown, TrainSettings(loss=loss).weight_map(truth, np.ones(truth.shape, bool)))
        assert (shown == 1).all() == (loss == "ce")  # plain CE: every pixel weighs 1


@pytest.mark.slow
def test_a_version_the_guard_keeps_inactive_is_shown_with_both_scores_and_can_be_used_anyway(dock):
    viewer, widget, truth = dock
    widget.predict()
    viewer.layers["cells prediction"].data = truth.copy()
    widget.steps.value, widget.lr.value = 100, 1e-2
    widget.finetune()
    assert widget.segmenter.active_version == 1 and widget.use_anyway_button.native.isHidden()
    widget.steps.value, widget.lr.value = 20, 1.0  # a learning rate that ruins the model
    widget.finetune()
    assert widget.segmenter.active_version == 1 and sorted(widget.versions.choices) == [0, 1, 2]
    v2 = widget.segmenter.versions[2]
    label = dict((value, text) for text, value in widget.versions._widget._mgui_get_choices())[2]
    assert f"score {v2['scores']['mean_iu']:.3f} (v1: {v2['parent_scores']['mean_iu']:.3f})" in label
    status = widget.guard_status.value.replace("\n", " ")
    assert "version 2 was kept inactive" in status and "rollback" not in status and "(" not in status.split(":")[0]
    assert not widget.use_anyway_button.native.isHidden()
    widget.use_anyway_button.native.click()
    assert widget.segmenter.active_version == 2 and widget.versions.value == 2
    assert widget.use_anyway_button.native.isHidden()
    np.testing.assert_array_equal(viewer.layers["cells prediction"].data,
                                  widget.segmenter.predict(viewer.layers["cells"].data))  # predicted with it


def test_a_bug_is_not_dressed_up_as_a_user_error(dock, errors):
    def broken():
        yield runner.Progress(1, 2)
        raise RuntimeError("a bug in torch")

    job = runner.Job(broken(), "Broken", lambda u: None, lambda o: None)
    with pytest.raises(RuntimeError, match="a bug in torch"):
        job.start()
    assert not errors and job.done


def test_instances_layer_splits_objects_at_the_gaps(dock):
    viewer, widget, truth = dock
    widget.instances.value = True
    widget.predict()
    instances = viewer.layers["cells instances"].data
    np.testing.assert_array_equal(instances, label_instances(viewer.layers["cells prediction"].data))
    assert instances.dtype == np.int32 and instances.shape == truth.shape


def test_object_size_is_estimated_from_a_labels_layer_and_zooms_prediction(dock, errors):
    viewer, widget, truth = dock
    widget.size_layer.value = viewer.layers["truth"]
    widget.estimate_size()
    assert errors == [] and widget.object_size.value == pytest.approx(round(estimate_diameter(truth), 1))
    widget.model().annotate(object_diameter=widget.object_size.value / 2)  # the model saw objects half as big
    widget.predict()
    pred = viewer.layers["cells prediction"].data
    assert pred.shape == truth.shape
    expected = widget.model().predict(viewer.layers["cells"].data, diameter=widget.object_size.value)
    np.testing.assert_array_equal(pred, expected)
    viewer.add_labels(np.zeros_like(truth), name="empty")
    widget.reset_choices()
    widget.size_layer.value = viewer.layers["empty"]
    widget.estimate_size()
    assert "no object" in str(errors[-1])


def test_predict_can_average_the_8_flips_and_rotations(dock, errors):
    viewer, widget, _ = dock
    image = viewer.layers["cells"].data
    widget.tta.value, widget.uncertainty.value = True, True
    widget.predict()
    assert not errors, errors
    proba = widget.segmenter.predict_proba(image, tta=True)
    np.testing.assert_array_equal(viewer.layers["cells prediction"].data, proba.argmax(0))
    np.testing.assert_allclose(viewer.layers["cells uncertainty"].data, 1 - proba.max(0), atol=1e-6)
    assert np.abs(proba - widget.segmenter.predict_proba(image)).max() > 1e-3  # not the plain prediction
