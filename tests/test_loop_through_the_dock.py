"""The loop as a person runs it: the simulated person of benchmarks/dock_loop.py acts only through the real dock
(Predict, Next, brush strokes through the Labels layer, Fine-tune with the defaults) on images from another
microscope, and the held-out images, predicted through the dock, get better."""

import pytest

from benchmarks import dock_loop as loop

pytestmark = [pytest.mark.gui, pytest.mark.slow]


def test_three_rounds_through_the_dock_improve_held_out_images_and_the_guard_is_right(make_napari_viewer):
    rows = loop.run(loop.nuclei_case(), rounds=3, seed=0, region="next", viewer=make_napari_viewer())["rows"]
    ious = [row["iou"] for row in rows]
    assert ious[3] >= ious[0] + 0.01  # measured: 0.879 → 0.898 nucleus IoU on the held-out images
    assert all(later >= earlier - 0.01 for earlier, later in zip(ious, ious[1:]))  # no round drops > 0.01
    assert rows[3]["f1"] >= 0.90  # measured: 0.871 → 0.950
    assert all(row["guard_right"] for row in rows[1:])
