"""Synthetic multi-class images: touching objects of three classes told apart by shape and texture, with noise."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.draw import ellipse

from .weightmap import separate_touching

CLASS_NAMES = ["background", "cell", "rod", "vesicle"]


def _texture(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Smooth noise in [−1, 1] of the given correlation length."""
    t = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return t / (np.abs(t).max() + 1e-12)


def synthetic_image(shape: tuple[int, int] = (256, 256), n_objects: int = 45, noise: float = 0.08, seed: int = 0
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image uint16 (Y, X), labels uint8 (Y, X) in 0…3, instances int32 (Y, X)).

    Classes (see ``CLASS_NAMES``): 1 "cell" — round, granular texture; 2 "rod" — elongated, rotated, striped
    along its axis; 3 "vesicle" — small bright ring with a dim centre. Cells and rods share the same mean
    brightness, so the classes differ by shape and texture, not by intensity alone. Objects may touch; the
    labels keep a 1-px background gap between touching objects (U-Net style). Deterministic for a seed.
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    image = 0.15 + 0.05 * _texture(rng, shape, 40)  # uneven illumination
    instances = np.zeros(shape, np.int32)
    classes: dict[int, int] = {}
    granules, stripes_phase = _texture(rng, shape, 1.2), rng.uniform(0, 2 * np.pi)
    for k in range(1, n_objects + 1):
        cls = int(rng.choice([1, 2, 3], p=[0.45, 0.35, 0.2]))
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        if cls == 1:
            r = rng.uniform(8, 14)
            rr, cc = ellipse(cy, cx, r, r * rng.uniform(0.8, 1.0), shape=shape, rotation=rng.uniform(0, np.pi))
            values = 0.55 + 0.25 * granules[rr, cc]
        elif cls == 2:
            angle = rng.uniform(0, np.pi)
            rr, cc = ellipse(cy, cx, rng.uniform(3.5, 5), rng.uniform(14, 22), shape=shape, rotation=angle)
            along = (rr - cy) * np.sin(angle) + (cc - cx) * np.cos(angle)
            values = 0.55 + 0.2 * np.sin(along * 1.3 + stripes_phase)
        else:
            r = rng.uniform(4, 6)
            rr, cc = ellipse(cy, cx, r, r, shape=shape)
            dist = np.hypot(rr - cy, cc - cx) / r
            values = np.where(dist > 0.55, 0.95, 0.3)
        if len(rr) == 0:
            continue
        instances[rr, cc] = k
        classes[k] = cls
        image[rr, cc] = values
    image = ndimage.gaussian_filter(image, 0.7) + rng.normal(0, noise, shape)
    labels = separate_touching(instances, classes)
    return (np.clip(image, 0, 1) * 60000).astype(np.uint16), labels, instances
