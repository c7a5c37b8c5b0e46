"""The dock on a laptop screen: tabs, class legend, bioimage.io export button, progress with time left, Qt6."""

import os
import re
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
from conftest import tiny_segmenter, two_class_image
from napari.utils.colormaps import DirectLabelColormap

from napari_segnet._widgets import runner
from napari_segnet._widgets.dock import SegNetWidget
from napari_segnet._widgets.pages import PAGES
from napari_segnet.inference.tiling import TileProgress
from napari_segnet.segmenter import Segmenter

pytestmark = pytest.mark.gui


def test_every_tab_fits_a_1366x768_screen(dock):
    _, widget, _ = dock
    assert [widget.tabs.tabText(i) for i in range(widget.tabs.count())] == [t for t, _ in PAGES]
    assert widget.tabs.currentIndex() == 1  # image & predict
    # 768 px less napari's title bar, menu, status bar and the dock's title: ~640 px for the dock
    chrome = widget.legend.sizeHint().height() + widget.tabs.tabBar().sizeHint().height()
    heights = {widget.tabs.tabText(i): widget.tabs.widget(i).widget().sizeHint().height() + chrome
               for i in range(widget.tabs.count())}
    assert max(heights.values()) <= 640, heights


def test_legend_follows_the_models_classes_and_the_layer_colours(dock):
    viewer, widget, _ = dock
    assert widget.legend.names == ["background", "cell"]
    widget.set_model(tiny_segmenter(num_classes=3, class_names=["bg", "nucleus", "membrane"]))
    assert widget.legend.names == ["bg", "nucleus", "membrane"]
    widget.predict()
    layer = viewer.layers["cells prediction"]
    r, g, b, _ = (int(round(255 * c)) for c in layer.colormap.map(np.array([2]))[0])
    swatch = widget.legend.layout().itemAtPosition(1, 0).widget()  # class 2: row 1, first column
    assert f"rgb({r},{g},{b})" in swatch.styleSheet()
    assert "transparent" in widget.legend.layout().itemAtPosition(0, 0).widget().styleSheet()  # background


def test_a_real_first_class_is_drawn_opaque_and_background_stays_transparent(dock):
    viewer, widget, _ = dock
    widget.set_model(tiny_segmenter(num_classes=3, class_names=["brick", "grass", "gravel"]))
    swatch = widget.legend.layout().itemAtPosition(0, 0).widget()
    assert "transparent" not in swatch.styleSheet()  # before any prediction too
    widget.predict()
    layer = viewer.layers["cells prediction"]
    colours = layer.colormap.map(np.arange(4))
    assert colours[0, 3] == 1 and colours[3, 3] == 0  # brick seen; 3 is no class
    assert len({tuple(c) for c in colours[:3].round(3)}) == 3  # three different colours
    r, g, b, _ = (int(round(255 * c)) for c in colours[0])
    assert f"rgb({r},{g},{b})" in widget.legend.layout().itemAtPosition(0, 0).widget().styleSheet()
    layer.colormap = DirectLabelColormap(color_dict={0: "white", 1: "red", 2: "blue", None: "transparent"})
    widget.predict()
    assert np.allclose(layer.colormap.map(np.array([0]))[0], 1)  # colours the user chose stay (same classes)
    widget.set_model(tiny_segmenter(num_classes=2, class_names=["Background", "cell"]))
    widget.predict()
    assert layer.colormap.map(np.array([0]))[0, 3] == 0  # background transparent again


def test_export_button_writes_a_package_that_loads_back(dock, tmp_path, errors):
    _, widget, _ = dock
    widget.export_file.value = tmp_path / "cells.zip"
    widget.authors.value = "Ada Lovelace, Alan Turing"
    widget.export_model()
    assert errors == []
    with zipfile.ZipFile(tmp_path / "cells.zip") as z:
        assert np.load(z.open("test_input.npy")).shape == (1, 1, 96, 96)  # the open image
        assert b"Alan Turing" in z.read("rdf.yaml")
    image = two_class_image(seed=2, size=48)[0]
    loaded = Segmenter.load(tmp_path / "cells.zip")
    np.testing.assert_array_equal(loaded.predict(image), widget.segmenter.predict(image))
    widget.export_file.value = tmp_path / "missing" / "cells.zip"
    widget.export_model()
    assert len(errors) == 1 and "could not write the bioimage.io package" in errors[0]


def test_progress_reaches_the_activity_panel_with_time_left(dock, monkeypatch):  # the viewer's activity panel
    from napari.utils import progress

    values, etas = [], []

    def recording(**kwargs):
        bar = progress(**kwargs, mininterval=0)
        bar.events.value.connect(lambda e: values.append(e.value))
        bar.events.eta.connect(lambda e: etas.append(e.value))
        return bar

    def steps():
        for done in range(1, 5):
            time.sleep(0.05)
            yield TileProgress(done, 4)

    monkeypatch.setattr(runner, "progress", recording)
    monkeypatch.setenv(runner.SYNC_ENV, "1")
    runner.Job(steps(), "Predicting cells", lambda u: None, lambda o: None).start()
    assert values == [1, 2, 3, 4]
    assert any(re.search(r"\d\d:\d\d<\d\d:\d\d", e) for e in etas), etas  # elapsed<time left


def test_a_launch_with_the_default_binding_shows_no_deprecation_toast(make_napari_viewer, qtbot):
    """What the launcher does, on a shown window (napari warns in the window's first showEvent); in the fixture's
    viewer, as a second napari.Viewer() outside it would register napari's plugins twice in this process."""
    import qtpy
    from napari.utils.notifications import notification_manager

    from napari_segnet.cli import prefer_qt6

    if qtpy.API_NAME != "PyQt6":
        pytest.skip(f"running on {qtpy.API_NAME}: napari 0.9 itself warns that its PyQt5 support is deprecated")
    prefer_qt6()  # Qt is loaded already: changes nothing
    seen = len(notification_manager.records)
    viewer = make_napari_viewer(show=True)
    widget = SegNetWidget(viewer)
    viewer.window.add_dock_widget(widget, name="SegNet", area="right")
    widget.set_model(Segmenter.default())
    qtbot.wait(50)
    messages = [str(n.message) for n in notification_manager.records[seen:]]
    assert messages and not [m for m in messages if "deprecat" in m.lower()], messages


@pytest.mark.skipif(os.environ.get("QT_API") == "pyqt5", reason="the PyQt5 run chose its binding")
def test_the_launcher_prefers_pyqt6_when_no_binding_is_chosen():
    pytest.importorskip("PyQt6")
    code = "from napari_segnet.cli import prefer_qt6; prefer_qt6(); import qtpy; print(qtpy.API_NAME)"
    env = {k: v for k, v in os.environ.items() if k != "QT_API"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "PyQt6", out.stderr
    env["QT_API"] = "pyqt5"
    if subprocess.run([sys.executable, "-c", "import PyQt5"], env=env).returncode == 0:
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
        assert out.stdout.strip() == "PyQt5", out.stderr


def test_the_dock_declares_every_section_widget_it_holds(dock):
    from types import SimpleNamespace

    from napari_segnet._widgets.pages import adopt

    _, widget, _ = dock
    declared = SegNetWidget.__annotations__
    assert len(declared) == 56 and all(hasattr(widget, name) for name in declared)
    assert not hasattr(widget, "box")  # each section keeps its own box

    class Owner:
        steps: int

    assert adopt(Owner(), SimpleNamespace(steps=1, box=2)).steps == 1
    with pytest.raises(TypeError, match="does not declare the section widget 'lr'"):
        adopt(Owner(), SimpleNamespace(steps=1, lr=2))
