"""The flat module names of the first releases (``napari_segnet.losses``, …) kept as names of their themed homes.

The package's internals are grouped by theme (``models``, ``numerics``, ``io``, ``engine``, ``data``), but the
Python API the README and DESIGN document — ``from napari_segnet.losses import weighted_cross_entropy`` — and
scripts written against it keep working: importing a flat name imports the themed module and binds the flat name
to that very module object (``napari_segnet.losses is napari_segnet.numerics.losses``), so monkeypatching,
``isinstance`` and pickling see one module. Nothing is imported until a flat name is asked for, so
``import napari_segnet`` stays light.
"""

import importlib
import importlib.abc
import importlib.machinery
import sys

#: Theme → the modules that moved into it from the package's top level.
HOMES = {
    "models": ("pretrained",),
    "numerics": ("images", "normalization", "losses", "weightmap", "metrics", "instances", "augmentation"),
    "io": ("fileio", "metadata", "checkpoint", "imagefiles"),
    "engine": ("devices", "progress", "tiling", "tile_plan", "tile_pipeline", "tta", "scale", "patches",
               "training_set", "training", "ddp", "pixel_forest", "distillation", "finetune_outcome", "suggest",
               "blockinstances"),
    "data": ("synthetic", "domain_shift"),
}
#: Flat name → the module it names, e.g. ``napari_segnet.losses`` → ``napari_segnet.numerics.losses``.
ALIASES = {f"napari_segnet.{name}": f"napari_segnet.{home}.{name}" for home, names in HOMES.items() for name in names}


class AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the flat names of :data:`ALIASES` (after every other finder) and loads each as its themed module."""

    def __init__(self):
        self._own_specs = {}

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in ALIASES:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec):
        module = importlib.import_module(ALIASES[spec.name])
        self._own_specs[module.__name__] = module.__spec__
        return module

    def exec_module(self, module):
        # the import system stamped the alias's spec on the module it created: give the module its own back
        module.__spec__ = self._own_specs.pop(module.__name__)


def install() -> None:
    """Put the finder on ``sys.meta_path`` once (last: a real module of the same name would win)."""
    if not any(isinstance(finder, AliasFinder) for finder in sys.meta_path):
        sys.meta_path.append(AliasFinder())
