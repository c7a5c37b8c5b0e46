"""pytest hooks (imported by conftest.py): GUI tests skip without a display, or fail where one is required."""

# Without a usable display Qt aborts the whole run when the first test creates a QApplication. So at collection
# (after pytest-xvfb has started Xvfb and set DISPLAY, when it could) every test that is marked `gui` or asks for a
# Qt fixture gets skipped with one reason, or, under NAPARI_SEGNET_REQUIRE_GUI=1 (CI), fails before any fixture
# runs. Loading the Qt bindings needs no display (pytest-qt imports PyQt5 when it configures itself anyway).

import pytest

from napari_segnet.display import display_problem, gui_required

QT_FIXTURES = {"make_napari_viewer", "make_napari_viewer_proxy", "qtbot", "qapp"}
NO_DISPLAY = pytest.StashKey[str]()


def pytest_collection_modifyitems(config, items):
    """Skip (or mark for failure) every GUI test when this machine has no usable display."""
    gui = [item for item in items
           if item.get_closest_marker("gui") or QT_FIXTURES & set(getattr(item, "fixturenames", ()))]
    for item in gui:  # so that `-m gui` (CI's second Qt binding) selects Qt-fixture tests too
        if not item.get_closest_marker("gui"):
            item.add_marker(pytest.mark.gui)
    problem = display_problem() if gui else None
    if problem is None:
        return
    reason = (f"no usable display ({problem}): to run the GUI tests install Xvfb (apt-get install xvfb; "
              "pytest-xvfb then starts a virtual display) or set DISPLAY")
    required = gui_required()
    for item in gui:
        if required:
            item.stash[NO_DISPLAY] = f"NAPARI_SEGNET_REQUIRE_GUI is set but there is {reason}"
        else:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Fail a GUI test that has no display where NAPARI_SEGNET_REQUIRE_GUI says one is required."""
    if NO_DISPLAY in item.stash:
        pytest.fail(item.stash[NO_DISPLAY], pytrace=False)
