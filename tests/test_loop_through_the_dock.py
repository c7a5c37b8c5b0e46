"""The loop as a person runs it: the simulated person of benchmarks/dock_loop.py acts only through the real dock
(Predict, Next, brush strokes through the Labels layer, Fine-tune with the defaults) on images from another
microscope, and the held-out images, predicted through the dock, get better."""

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.gui, pytest.mark.slow]


def dock_loop():
    """benchmarks/dock_loop.py as a module, loaded from its file (benchmarks/ on sys.path would shadow packages:
    its distributed.py is not dask's)."""
    path = Path(__file__).parents[1] / "benchmarks" / "dock_loop.py"
    spec = importlib.util.spec_from_file_location("dock_loop_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_three_rounds_through_the_dock_improve_held_out_images_and_the_guard_is_right(make_napari_viewer):
    loop = dock_loop()
    rows = loop.run(loop.nuclei_case(), rounds=3, seed=0, region="next", viewer=make_napari_viewer())["rows"]
    ious = [row["iou"] for row in rows]
    assert ious[3] >= ious[0] + 0.01  # measured: 0.879 → 0.898 nucleus IoU on the held-out images
    assert all(later >= earlier - 0.01 for earlier, later in zip(ious, ious[1:]))  # no round drops > 0.01
    assert rows[3]["f1"] >= 0.90  # measured: 0.871 → 0.950
    assert all(row["guard_right"] for row in rows[1:])
