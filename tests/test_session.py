"""The session outlives the dock: closing and reopening it (even during a fine-tune) keeps the model, its versions,
the corrections and earlier models; without a project folder the session saves itself."""

import numpy as np
import pytest
from conftest import two_class_image

from napari_segnet._widgets import runner
from napari_segnet.project import Project

pytestmark = pytest.mark.gui

PLUGIN, WIDGET = "napari-segnet", "SegNet (predict, correct, fine-tune)"


def open_from_plugins_menu(viewer):
    """The dock as napari opens a plugin widget (the Plugins menu)."""
    return viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)


def new_three_class_session(make_napari_viewer):
    viewer = make_napari_viewer()
    image, truth = two_class_image(size=96)
    viewer.add_image(image, name="cells")
    frame, dock = open_from_plugins_menu(viewer)
    dock.reset_choices()
    dock.image_layer.value = viewer.layers["cells"]
    dock.architecture.value = "unet"
    dock.options.value = "base_filters=4, depth=2"
    dock.class_names.value = "background, cell, edge"
    dock.new_button.native.click()
    dock.predict_button.native.click()
    return viewer, frame, dock, image, truth


def paint_truth(viewer, truth):
    layer = viewer.layers["cells prediction"]
    layer.brush_size = 3
    for y, x in zip(*np.nonzero(truth[::4, ::4])):
        layer.paint((4 * y, 4 * x), 1, refresh=False)
    return layer


def fine_tuned(make_napari_viewer, monkeypatch, steps):
    """A new 3-class session, predicted, painted and fine-tuned inline for ``steps`` steps."""
    monkeypatch.setenv(runner.SYNC_ENV, "1")
    viewer, frame, dock, image, truth = new_three_class_session(make_napari_viewer)
    paint_truth(viewer, truth)
    dock.steps.value = steps
    dock.train_button.native.click()
    return viewer, frame, dock, image, truth


def test_closing_and_reopening_the_dock_keeps_model_versions_and_corrections(make_napari_viewer, monkeypatch,
                                                                             autosave_home):
    viewer, frame, dock, image, truth = fine_tuned(make_napari_viewer, monkeypatch, 20)
    seg = dock.segmenter
    assert seg.num_classes == 3 and len(seg.versions) == 2
    before = np.asarray(viewer.layers["cells prediction"].data).copy()
    viewer.window.remove_dock_widget(frame)  # what the dock's × does
    _, reopened = open_from_plugins_menu(viewer)
    assert reopened is not dock and reopened.segmenter is seg and reopened.versions.choices == (0, 1)
    assert set(reopened.training_set) == {"cells"} and reopened.legend.names == ["background", "cell", "edge"]
    reopened.reset_choices()
    reopened.image_layer.value = viewer.layers["cells"]
    saved = list(autosave_home.iterdir())  # no project folder was chosen: the session saved itself
    assert len(saved) == 1 and Project(saved[0]).load_model().metadata.version_ids == [0, 1]
    assert Project(saved[0]).correction("cells")[1].all()  # the 96² image is one reviewed 128² tile
    viewer.layers["cells prediction"].data = np.zeros_like(before)  # Predict must bring the same labels back …
    viewer.layers["cells prediction"].metadata["segnet_painted"][:] = False  # … everywhere: nothing painted …
    viewer.layers["cells reviewed"].data = []  # … nor reviewed (re-prediction keeps both)
    reopened.predict_button.native.click()
    np.testing.assert_array_equal(viewer.layers["cells prediction"].data, seg.predict(image))


@pytest.mark.slow
def test_a_fine_tune_running_when_the_dock_closes_lands_in_the_session(make_napari_viewer, monkeypatch, qtbot):
    monkeypatch.delenv(runner.SYNC_ENV, raising=False)
    viewer, frame, dock, image, truth = new_three_class_session(make_napari_viewer)
    qtbot.waitUntil(lambda: dock.job.done, timeout=20_000)
    paint_truth(viewer, truth)
    dock.steps.value = 150
    dock.train_button.native.click()
    qtbot.waitUntil(lambda: len(dock.loss_plot.values) >= 2, timeout=20_000)
    viewer.window.remove_dock_widget(frame)
    _, reopened = open_from_plugins_menu(viewer)
    assert not reopened.train_button.enabled and reopened.stop_button.enabled  # it sees the run going on
    qtbot.waitUntil(lambda: len(reopened.segmenter.versions) == 2, timeout=60_000)
    qtbot.waitUntil(lambda: reopened.job.done and reopened.train_button.enabled, timeout=60_000)
    assert reopened.versions.choices == (0, 1) and reopened.loss_plot.values  # the new dock shows the run


def test_a_new_model_keeps_the_previous_one_in_the_model_list(make_napari_viewer, monkeypatch):
    viewer, frame, dock, image, truth = fine_tuned(make_napari_viewer, monkeypatch, 10)
    tuned = dock.segmenter
    active = tuned.active_version  # 1, unless the guard kept version 1 inactive
    dock.class_names.value = "background, cell"
    dock.new_button.native.click()  # another model: the fine-tuned one must stay reachable
    assert dock.segmenter is not tuned and len(dock.models.choices) == 2
    dock.models.value = tuned
    assert dock.segmenter is tuned and dock.segmenter.active_version == active and tuned.available_versions == [0, 1]


def test_open_file_selects_the_opened_image(make_napari_viewer, monkeypatch, tmp_path):
    import tifffile

    monkeypatch.setenv(runner.SYNC_ENV, "1")
    viewer, frame, dock, image, truth = new_three_class_session(make_napari_viewer)
    tifffile.imwrite(tmp_path / "second.tif", (image[:64, :80] * 2).astype(np.float32))
    dock.open_file.value = tmp_path / "second.tif"
    assert dock.image_layer.value is viewer.layers["second"]
    dock.predict_button.native.click()
    assert viewer.layers["second prediction"].data.shape == (64, 80)


def test_two_sessions_saving_in_the_same_second_get_folders_of_their_own(autosave_home):
    from napari_segnet.session import Session

    first, second = Session(), Session()
    assert first.save_folder().folder != second.save_folder().folder
    assert sorted(p.parent for p in (first.project.folder, second.project.folder)) == [autosave_home] * 2
