"""No display: GUI tests skip (fail under NAPARI_SEGNET_REQUIRE_GUI=1), the launcher says so; Qt never aborts."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from napari_segnet import cli, display

ROOT = Path(__file__).resolve().parents[1]
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the display check probes X on Linux")

GUI_TESTS = '''
import pytest
from napari_segnet._widgets.dock import SegNetWidget  # imports napari and Qt at collection: must not crash


@pytest.mark.gui
def test_marked_gui(make_napari_viewer):
    make_napari_viewer()


def test_only_asks_for_qtbot(qtbot):  # not marked: the Qt fixture alone makes it a GUI test
    pass


def test_plain():
    assert SegNetWidget is not None
'''


def run_without_display(tmp_path, **extra_env):
    """pytest on a tiny GUI test file with conftest's display hooks, no DISPLAY and no pytest-xvfb."""
    (tmp_path / "test_gui.py").write_text(GUI_TESTS)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers = gui: needs a display\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", display.REQUIRE_GUI_ENV, "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), str(ROOT / "tests"), env.get("PYTHONPATH")]))
    env.update(extra_env)
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-p", "no:xvfb",
           "-p", "display_hooks", "test_gui.py"]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@linux_only
def test_gui_tests_skip_without_a_display(tmp_path):
    done = run_without_display(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.match(r"1 passed, 2 skipped\b", done.stdout.strip().splitlines()[-1]), done.stdout
    reason = "no usable display (DISPLAY and WAYLAND_DISPLAY are unset): to run the GUI tests install Xvfb"
    assert done.stdout.count(reason) == 2, done.stdout  # one SKIPPED line per test, the same reason


@pytest.mark.slow
@linux_only
def test_gui_tests_fail_without_a_display_when_required(tmp_path):
    done = run_without_display(tmp_path, **{display.REQUIRE_GUI_ENV: "1"})
    assert done.returncode == 1, done.stdout + done.stderr  # failed tests, not a crash (which would be < 0 or 134)
    assert re.match(r"1 passed, (\d+ warnings, )?2 errors\b", done.stdout.strip().splitlines()[-1]), done.stdout
    assert "NAPARI_SEGNET_REQUIRE_GUI is set but there is no usable display" in done.stdout


@linux_only
def test_launcher_without_a_display_says_so_in_one_line(monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setitem(sys.modules, "napari", None)  # any `import napari` now raises: the check comes first
    assert cli.main([]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("napari-segnet needs a display (DISPLAY and WAYLAND_DISPLAY are unset)")
    assert "`xvfb-run napari-segnet`" in err
    assert cli.main(["--version"]) == 0  # needs no display


@pytest.mark.parametrize("platform", ["darwin", "win32"])
def test_macos_and_windows_assume_a_display(platform):
    assert display.display_problem({}, platform=platform) is None


@pytest.mark.parametrize("environ", [{}, {"DISPLAY": ""}, {"QT_QPA_PLATFORM": "offscreen"}])
def test_no_display_variables_means_no_display(environ):
    assert display.display_problem(environ, platform="linux") == "DISPLAY and WAYLAND_DISPLAY are unset"


def test_wayland_is_trusted_without_a_probe(monkeypatch):
    monkeypatch.setattr(display.subprocess, "run", None)  # a probe would raise TypeError
    assert display.display_problem({"WAYLAND_DISPLAY": "wayland-0"}, platform="linux") is None


@linux_only
def test_an_x_display_nobody_serves_is_not_usable():
    environ = {"DISPLAY": ":4242", "XAUTHORITY": "/nonexistent"}
    assert display.display_problem(environ, platform="linux") == "cannot connect to the X display DISPLAY=:4242"


@pytest.mark.parametrize(("outcome", "expected"), [
    (subprocess.TimeoutExpired("probe", 5), "the X display DISPLAY=:7 did not answer within 5 s"),
    (subprocess.CompletedProcess("probe", 2), "cannot connect to DISPLAY=:7: libxcb.so.1 (the X client library"),
    (subprocess.CompletedProcess("probe", 0), None),
])
def test_probe_outcomes(monkeypatch, outcome, expected):
    def fake_run(cmd, env, **kwargs):
        assert env["DISPLAY"] == ":7" and kwargs["timeout"] == display.PROBE_TIMEOUT_S
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    monkeypatch.setattr(display.subprocess, "run", fake_run)
    problem = display.display_problem({"DISPLAY": ":7"}, platform="linux")
    assert problem == expected if expected is None else problem.startswith(expected)


@pytest.mark.gui
@linux_only
def test_the_display_the_gui_tests_use_answers_the_probe():
    assert os.environ.get("DISPLAY") and display.probe_x_display(os.environ) is None


@pytest.mark.parametrize(("value", "required"), [(None, False), ("", False), ("0", False), ("1", True),
                                                  ("yes", True)])
def test_gui_required(value, required):
    environ = {} if value is None else {display.REQUIRE_GUI_ENV: value}
    assert display.gui_required(environ) is required
