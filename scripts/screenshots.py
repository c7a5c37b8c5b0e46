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
    from PIL import Image

    with Image.open(OUT / name) as img:  # keep the repository light: 1000 px wide, 128 colours
        img = img.convert("RGB").resize((1000, round(img.height * 1000 / img.width)), Image.LANCZOS)
        img.quantize(128).save(OUT / name, optimize=True)
    print("wrote", OUT / name)


def main() -> None:
    from napari.settings import get_settings

    get_settings().application.gui_notification_level = "none"  # no toasts over the screenshots
    viewer, widget = launch(parse_args([]))
    viewer.layers["nuclei ground truth"].visible = False
    shot(viewer, "1_open.png")
    widget.uncertainty.value = True
    widget.predict()
    shot(viewer, "2_predict.png")
    layer = viewer.layers["nuclei prediction"]
    truth = viewer.layers["nuclei ground truth"].data
    layer.brush_size = 1
    wrong = np.argwhere(layer.data != truth)
    for y, x in wrong:  # the user paints every wrong pixel with the right class (brush and eraser)
        layer.paint((y, x), int(truth[y, x]), refresh=False)
    print(f"corrected {len(wrong)} pixels")
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
