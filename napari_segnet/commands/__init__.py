"""The headless commands of ``napari-segnet`` (predict, train, evaluate, export): one module each, no napari, no Qt."""

from __future__ import annotations

import importlib

from .common import INTERRUPTED, USAGE, UsageError, say

#: name → one line of help; each is the module of the same name with ``parser()`` and ``run(args)``.
COMMANDS = {
    "predict": "predict images (files, folders, globs; TIFF, PNG, zarr, OME-Zarr) into an output folder",
    "train": "fine-tune a model on image/label pairs (or a project folder); torchrun for several processes",
    "evaluate": "score predicted labels against ground truth (FCN and object metrics)",
    "export": "write a model as a bioimage.io model package (.zip) for deepImageJ, ilastik, QuPath, Fiji, Python",
}


def run_command(argv: list[str]) -> int:
    """Run ``argv`` = [command, arguments…]; returns the exit status (0 ok, 1 something failed, 2 usage error,
    3 trained but not activated by the guard, 130 interrupted)."""
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(f".{name}", __name__)
    args = module.parser().parse_args(rest)
    try:
        return module.run(args)
    except UsageError as e:
        say(f"napari-segnet {name}: error: {e}")
        return USAGE
    except KeyboardInterrupt:
        say(f"napari-segnet {name}: interrupted")
        return INTERRUPTED
