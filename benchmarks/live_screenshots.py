"""Screenshots of live mode for the README (run under Xvfb): strokes learned in bursts, then Next.

A from-scratch U-Net (depth 3, 8 filters) on one nuclei slice, so the change is visible: predict, turn Live on,
paint the true labels along the boundaries of 12 wrongly predicted nuclei (as napari's brush would), let bursts
run, then press Next. Writes docs/live_1.png (live, after the strokes) and docs/live_2.png (Next's region).

Run: xvfb-run -a python -m benchmarks.live_screenshots [--seconds 40]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from napari_segnet.segmenter import Segmenter

from .simulated_user import boundary_strokes

DOCS = Path(__file__).resolve().parent.parent / "docs"


def wait(seconds: float) -> None:
    from qtpy.QtWidgets import QApplication

    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40)
    args = parser.parse_args()
    import napari
    from napari_segnet.sample_data import nuclei

    from napari_segnet._widgets.dock import SegNetWidget

    torch.set_num_threads(1)
    torch.manual_seed(0)
    stack, truth = nuclei()
    image, labels = stack[16], truth[16].astype(np.uint8)
    viewer = napari.Viewer()
    viewer.window._qt_window.resize(1600, 1000)
    viewer.add_image(image, name="nuclei")
    dock = SegNetWidget(viewer)
    viewer.window.add_dock_widget(dock, name="SegNet")
    dock.reset_choices()
    dock.image_layer.value = viewer.layers["nuclei"]
    dock.set_model(Segmenter.create("unet", 1, 2, class_names=["background", "nucleus"], base_filters=8, depth=3))
    dock.predict()
    wait(5)
    layer = viewer.layers["nuclei prediction"]
    dock.live_lr.value = 1e-3  # a model from scratch: a larger step than the default (3e-4, for trained models)
    dock.live_toggle.value = True
    for band in boundary_strokes(np.asarray(layer.data), labels)[:12]:
        layer.data_setitem(np.nonzero(band), labels[band])  # what a brush stroke does (a paint event)
        wait(2)
    wait(args.seconds)
    viewer.layers.selection.active = layer
    viewer.screenshot(str(DOCS / "live_1.png"), canvas_only=False)
    dock.next_button.clicked.emit()
    wait(1)
    viewer.screenshot(str(DOCS / "live_2.png"), canvas_only=False)
    dock.live_toggle.value = False
    print(dock.live_status.value, [v.note for v in dock.segmenter.versions])
    viewer.close()


if __name__ == "__main__":
    main()
