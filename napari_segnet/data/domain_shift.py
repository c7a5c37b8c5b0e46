"""Domain-shift benchmark data: held-out nuclei as another microscope would record them, and unseen synthetic nuclei.

Nothing here is used for training: the cells3d cases come only from the held-out slices
(``napari_segnet.sample_data.HELD_OUT``), the synthetic ones from seeds ≥ ``SYNTHETIC_SEED_MIN`` (training uses
seeds below it) and include a texture training never sees ("rim"). Every case has instance ground truth and is
deterministic; the whole set is 9 small images (~0.4 megapixels) and builds in about a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..numerics import augmentation as aug
from ..numerics.weightmap import separate_touching
from ..sample_data import HELD_OUT, nuclei, nuclei_instances
from .synthetic import synthetic_nuclei

#: Training data of the shipped model uses synthetic seeds below this; the benchmark uses seeds above it.
SYNTHETIC_SEED_MIN = 90_000

#: Zoom factor of each held-out slice: nuclei of ~39 px become ~20–27 px, as in a 20× widefield image.
CELLS3D_FACTORS = dict(zip(HELD_OUT, (0.5, 0.54, 0.58, 0.62, 0.66, 0.7)))

#: Unseen synthetic nuclei: (name, seed, number, diameter range, textures).
SYNTHETIC_CASES = (
    ("small dense granular", 90_001, 110, (12.0, 20.0), ("granular",)),
    ("large rim", 90_002, 16, (45.0, 64.0), ("rim",)),
    ("mixed rim + nucleoli", 90_003, 40, (18.0, 40.0), ("rim", "nucleoli")),
)


@dataclass(frozen=True)
class ShiftedImage:
    """One benchmark case: image (Y, X) uint16 with values in an 8-bit range, instance ids (Y, X) int32."""

    name: str
    subset: str
    image: np.ndarray
    instances: np.ndarray
    source: str

    @property
    def labels(self) -> np.ndarray:
        """Semantic targets (Y, X) uint8: 1 = nucleus, with a background gap between touching nuclei."""
        return separate_touching(self.instances)


def widefield(image: np.ndarray, instances: np.ndarray, factor: float, rng: np.random.Generator,
              sigma: float = 1.2, photons: float = 80.0, read_noise: float = 0.02, offset: float = 0.15
              ) -> tuple[np.ndarray, np.ndarray]:
    """Image (Y, X) and instances as a lower-magnification widefield camera would record them: zoomed by
    ``factor``, blurred, on a background ``offset``, with shot and read noise, quantised to 256 levels (0.2 %
    saturated) and stored as uint16. Returns (image uint16, instances int32) of the zoomed shape."""
    image, instances = aug.rescale(image.astype(np.float32), instances.astype(np.int32), factor)
    image = aug.blur(image, sigma)
    zero = float(image.min())
    image = aug.background(image, rng, offset, uneven=0.1)
    image = aug.poisson_noise(image, rng, photons, zero)
    image = aug.gaussian_noise(image, rng, read_noise)
    return aug.quantise(image, 256, saturation=0.2).astype(np.uint16), instances


def shifted_cells3d() -> list[ShiftedImage]:
    """The six held-out cells3d slices, zoomed 0.5–0.7× and recorded as by :func:`widefield`."""
    stack, ids = nuclei()[0], nuclei_instances()
    cases = []
    for z, factor in CELLS3D_FACTORS.items():
        rng = np.random.default_rng(1000 + z)
        image, instances = widefield(stack[z], ids[z], factor, rng, photons=float(rng.uniform(40, 150)))
        cases.append(ShiftedImage(f"cells3d z{z} ×{factor}", "cells3d shifted", image, instances,
                                  f"held-out slice {z}"))
    return cases


def unseen_synthetic() -> list[ShiftedImage]:
    """Three 256² synthetic images with sizes, textures and seeds training does not use, lightly shifted."""
    cases = []
    for name, seed, n, diameter, textures in SYNTHETIC_CASES:
        image, _, instances = synthetic_nuclei((256, 256), n, diameter, textures, seed=seed)
        image, instances = widefield(image, instances, 1.0, np.random.default_rng(seed), sigma=0.8, photons=120.0)
        cases.append(ShiftedImage(name, "synthetic unseen", image, instances, f"synthetic seed {seed}"))
    return cases


def domain_shift_set() -> list[ShiftedImage]:
    """All benchmark cases: :func:`shifted_cells3d` then :func:`unseen_synthetic`."""
    return shifted_cells3d() + unseen_synthetic()
