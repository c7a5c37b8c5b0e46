"""Whether a window can open here (a display for napari and Qt), decided without importing Qt, napari or torch."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping

REQUIRE_GUI_ENV = "NAPARI_SEGNET_REQUIRE_GUI"  # "1": the test suite fails, not skips, GUI tests without a display
PROBE_TIMEOUT_S = 5.0

# Run in a subprocess: connect to $DISPLAY with libxcb, the X client library Qt's xcb platform plugin uses (so it
# honours XAUTHORITY as Qt does), and exit 0 (connected), 1 (refused or absent) or 2 (no libxcb to try with).
_XCB_PROBE = """
import ctypes, sys
try:
    xcb = ctypes.CDLL("libxcb.so.1")
except OSError:
    sys.exit(2)
xcb.xcb_connect.restype = ctypes.c_void_p
xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
connection = xcb.xcb_connect(None, None)
error = xcb.xcb_connection_has_error(connection)
xcb.xcb_disconnect(connection)
sys.exit(1 if error else 0)
"""


def display_problem(environ: Mapping[str, str] | None = None, platform: str | None = None) -> str | None:
    """Why napari cannot open a window here, or None when it can (default: this process's env and platform).

    - macOS and Windows: a display is assumed.
    - WAYLAND_DISPLAY set: usable (trusted, not probed).
    - DISPLAY set: usable if an X client connects to it within PROBE_TIMEOUT_S (`probe_x_display`).
    - neither: not usable. QT_QPA_PLATFORM=offscreen does not count: it gives napari no OpenGL context.
    """
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if platform.startswith(("darwin", "win32", "cygwin")) or environ.get("WAYLAND_DISPLAY"):
        return None
    if not environ.get("DISPLAY"):
        return "DISPLAY and WAYLAND_DISPLAY are unset"
    return probe_x_display(environ)


def probe_x_display(environ: Mapping[str, str]) -> str | None:
    """Connect to the X server named by environ["DISPLAY"] from a subprocess (Qt is never loaded, a hung server
    cannot hang the caller); returns None when it answers, else why not."""
    name = environ["DISPLAY"]
    try:
        done = subprocess.run([sys.executable, "-I", "-S", "-c", _XCB_PROBE], env=dict(environ),
                              capture_output=True, timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"the X display DISPLAY={name} did not answer within {PROBE_TIMEOUT_S:g} s"
    if done.returncode == 0:
        return None
    if done.returncode == 2:
        return f"cannot connect to DISPLAY={name}: libxcb.so.1 (the X client library Qt needs) is not installed"
    return f"cannot connect to the X display DISPLAY={name}"


def gui_required(environ: Mapping[str, str] | None = None) -> bool:
    """True when NAPARI_SEGNET_REQUIRE_GUI is set to anything but "" or "0" (CI: GUI tests must run)."""
    environ = os.environ if environ is None else environ
    return environ.get(REQUIRE_GUI_ENV, "") not in ("", "0")
