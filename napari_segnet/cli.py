"""The ``napari-segnet`` launcher: opens napari with the plugin's dock and, optionally, images."""

from __future__ import annotations

import argparse
import sys


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="napari-segnet", description=__doc__)
    parser.add_argument("images", nargs="*", help="image files to open (TIFF, PNG, …)")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Open a napari viewer with the given images; returns when the window closes."""
    args = parse_args(argv)
    if args.version:
        from . import __version__

        print(__version__)
        return 0
    import napari

    viewer = napari.Viewer(title="napari-segnet")
    for path in args.images:
        viewer.open(path)
    napari.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
