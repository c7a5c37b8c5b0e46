"""Take the README screenshots from a real session: launcher, prediction, a correction, fine-tune, evaluation.

Taken at a laptop's 1366×768, the size the dock is made to fit. Run under a virtual display:
NAPARI_SEGNET_SYNC=1 xvfb-run -a -s "-screen 0 1366x768x24" python scripts/screenshots.py
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from scipy import ndimage

os.environ.setdefault("NAPARI_SEGNET_SYNC", "1")

from napari_segnet.cli import launch, parse_args, prefer_qt6  # noqa: E402

prefer_qt6()  # the binding a plain install brings (README: Qt)

OUT = Path(__file__).resolve().parents[1] / "docs"


SIZE = (1366, 768)


def shot(viewer, name: str, widget=None, tab: str | None = None) -> None:
    from qtpy.QtWidgets import QApplication

    if tab is not None:
        widget.tabs.setCurrentIndex([widget.tabs.tabText(i) for i in range(widget.tabs.count())].index(tab))
    QApplication.processEvents()
    viewer.window._qt_window.resize(*SIZE)
    QApplication.processEvents()
    viewer.screenshot(str(OUT / name), canvas_only=False, flash=False)
    from PIL import Image

    with Image.open(OUT / name) as img:  # keep the repository light: 128 colours, full size (text stays legible)
        img.convert("RGB").quantize(128).save(OUT / name, optimize=True)
    print("wrote", OUT / name)


def main() -> None:
    from napari.settings import get_settings

    get_settings().application.gui_notification_level = "none"  # no toasts over the screenshots
    viewer, widget = launch(parse_args([]))
    viewer.layers["nuclei ground truth"].visible = False
    shot(viewer, "1_open.png", widget, "Predict")
    widget.uncertainty.value = True
    widget.predict()
    shot(viewer, "2_predict.png")
    layer = viewer.layers["nuclei prediction"]
    truth = viewer.layers["nuclei ground truth"].data
    widget.next_button.native.click()  # the tile where the model is least sure
    *_, rows, cols = widget.live_mode.suggested
    layer.brush_size = 3
    wrong, _ = ndimage.label(layer.data[rows, cols] != truth[rows, cols])
    dabs = 0
    for i, box in enumerate(ndimage.find_objects(wrong), start=1):  # the person paints every wrong patch there
        ys, xs = np.nonzero(wrong[box] == i)
        if len(ys) >= 12:
            for y, x in zip(ys[::2] + box[0].start + rows.start, xs[::2] + box[1].start + cols.start):
                layer.paint((y, x), int(truth[y, x]), refresh=False)
                dabs += 1
    print(f"{dabs} brush dabs in the tile Next showed")
    layer.refresh()
    viewer.layers.selection.active = layer
    layer.mode = "paint"
    shot(viewer, "3_correct.png", widget, "Fine-tune")
    widget.finetune()  # the dock's defaults
    shot(viewer, "4_finetune.png", widget, "Fine-tune")
    widget.truth_layer.value = viewer.layers["nuclei ground truth"]
    widget.evaluate()
    shot(viewer, "5_evaluate.png", widget, "Evaluate")
    widget.export_file.value = Path("nuclei_unet.zip")  # where Export would write (not pressed)
    shot(viewer, "6_model.png", widget, "Model")
    viewer.close()


if __name__ == "__main__":
    main()
