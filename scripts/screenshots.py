"""Take the README screenshots from a real session: launcher, prediction, a correction, fine-tune, evaluation.

Run under a virtual display: NAPARI_SEGNET_SYNC=1 xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshots.py
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

os.environ.setdefault("NAPARI_SEGNET_SYNC", "1")

from napari_segnet.cli import launch, parse_args  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs"


def shot(viewer, name: str) -> None:
    from qtpy.QtWidgets import QApplication

    QApplication.processEvents()
    viewer.window._qt_window.resize(1500, 950)
    QApplication.processEvents()
    viewer.screenshot(str(OUT / name), canvas_only=False, flash=False)
    print("wrote", OUT / name)


def main() -> None:
    viewer, widget = launch(parse_args([]))
    viewer.layers["nuclei ground truth"].visible = False
    shot(viewer, "1_open.png")
    widget.uncertainty.value = True
    widget.predict()
    shot(viewer, "2_predict.png")
    layer = viewer.layers["nuclei prediction"]
    truth = viewer.layers["nuclei ground truth"].data
    layer.data = np.where(truth > 0, layer.data, 0)  # the user erases false positives…
    layer.brush_size = 9
    for y, x in zip(*np.nonzero((truth > 0) & (layer.data == 0))):
        layer.paint((y, x), 1, refresh=False)  # …and paints missed nucleus pixels
    layer.refresh()
    viewer.layers.selection.active = layer
    layer.mode = "paint"
    shot(viewer, "3_correct.png")
    widget.steps.value = 100
    widget.finetune()
    shot(viewer, "4_finetune.png")
    widget.truth_layer.value = viewer.layers["nuclei ground truth"]
    widget.evaluate()
    shot(viewer, "5_evaluate.png")
    viewer.close()


if __name__ == "__main__":
    main()
