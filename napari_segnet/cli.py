"""``napari-segnet``: the launcher (napari with the SegNet dock, the default model and an image) and the headless
commands (``napari-segnet predict|train|evaluate …``, the same as ``python -m napari_segnet …``).

The first argument decides: a command name runs that command, anything else (image paths, options, nothing)
opens the launcher. An image file named exactly like a command opens with a path prefix: ``./predict``."""

from __future__ import annotations

import argparse
import sys


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from .commands import COMMANDS

    epilog = "headless commands (see napari-segnet COMMAND --help):\n" + "\n".join(
        f"  {name:<10}{text}" for name, text in COMMANDS.items())
    parser = argparse.ArgumentParser(prog="napari-segnet", description="Open napari with the SegNet dock, the "
                                     "default model and the images (or the nuclei sample).", epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="*", help="image files to open (TIFF, PNG, …); default: the nuclei sample")
    parser.add_argument("--model", help="a .safetensors checkpoint to use instead of the shipped default model")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    return parser.parse_args(argv)


def launch(args: argparse.Namespace):
    """Open napari with the images (or the nuclei sample), the model and the SegNet dock; returns
    (viewer, dock)."""
    import napari

    from ._sample_data import nuclei_sample
    from ._widgets.dock import SegNetWidget
    from .segmenter import Segmenter

    viewer = napari.Viewer(title="napari-segnet")
    if args.images:
        for path in args.images:
            viewer.open(path)
    else:
        for data, kwargs, *kind in nuclei_sample():
            getattr(viewer, f"add_{kind[0] if kind else 'image'}")(data, **kwargs)
    widget = SegNetWidget(viewer)
    viewer.window.add_dock_widget(widget, name="SegNet", area="right")
    widget.reset_choices()
    image = next(layer for layer in viewer.layers if isinstance(layer, napari.layers.Image))
    widget.image_layer.value = image
    viewer.layers.selection.active = image  # not the hidden ground truth the sample adds last
    widget.set_model(Segmenter.load(args.model) if args.model else Segmenter.default())
    viewer.window._qt_window.showMaximized()  # the whole screen: the dock and the image side by side
    return viewer, widget


def main(argv: list[str] | None = None) -> int:
    """The ``napari-segnet`` entry point: a headless command when the first argument names one, else the
    launcher. Returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    from .commands import COMMANDS

    if argv and argv[0] in COMMANDS:
        from .commands import run_command

        return run_command(argv)
    if argv and _looks_like_a_command(argv[0]):
        import difflib

        close = difflib.get_close_matches(argv[0], COMMANDS, n=1)
        print(f"napari-segnet: unknown command {argv[0]!r}{f' (did you mean {close[0]!r}?)' if close else ''}; "
              f"the commands are {', '.join(COMMANDS)} (napari-segnet --help). To open an image file of that "
              f"name, give its path: ./{argv[0]}", file=sys.stderr)
        return 2
    return launcher(argv)


def _looks_like_a_command(word: str) -> bool:
    """A bare word that names no file: a misspelt command (``prdict``), not an image the launcher could open."""
    import os

    return word.isidentifier() and not os.path.exists(word)


def launcher(argv: list[str]) -> int:
    """Open napari with the dock (``napari-segnet [images…] [--model M]``); returns when the window closes."""
    args = parse_args(argv)
    if args.version:
        from . import __version__

        print(__version__)
        return 0
    from .display import display_problem

    if problem := display_problem():  # checked before Qt loads: without a display Qt aborts the process
        print(f"napari-segnet needs a display ({problem}): run `xvfb-run napari-segnet` for a virtual one "
              "(apt-get install xvfb) or set DISPLAY", file=sys.stderr)
        return 1
    prefer_qt6()
    import napari

    launch(args)
    napari.run()
    return 0


def prefer_qt6() -> None:
    """Use PyQt6 when it is installed and no binding was chosen (``QT_API`` unset, Qt not loaded yet): napari
    0.9 deprecates PyQt5 (a warning at every launch) and its own ``napari[pyqt]`` installs PyQt6, but qtpy
    would pick PyQt5 first when both are installed. ``QT_API=pyqt5`` keeps PyQt5."""
    import importlib.util
    import os

    if "QT_API" in os.environ or any(m in sys.modules for m in ("qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6")):
        return
    if importlib.util.find_spec("PyQt6") is not None:
        os.environ["QT_API"] = "pyqt6"


if __name__ == "__main__":
    sys.exit(main())
