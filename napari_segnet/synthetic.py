"""Synthetic multi-class images: touching objects told apart by shape and texture; tissue-like regions."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.draw import ellipse

from .weightmap import separate_touching

CLASS_NAMES = ["background", "cell", "rod", "vesicle"]
TISSUE_CLASS_NAMES = ["background", "granular tissue", "fibrous tissue"]


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


def _field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Smooth periodic noise of zero mean, unit standard deviation and the given correlation length."""
    t = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return (t - t.mean()) / t.std()


def tissue_image(shape: tuple[int, int] = (256, 256), noise: float = 0.06, seed: int = 0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(image uint8 (Y, X), labels uint8 (Y, X) in 0…2): a grayscale tissue section (see ``TISSUE_CLASS_NAMES``).

    About a third background (dim, smooth); the tissue is 1 "granular" (fine isotropic grain) or 2 "fibrous"
    (slightly brighter, grain stretched along one random direction): large patches of fibrous tissue plus thin
    curved fibrous strands (2–4 px wide, the zero set of a smooth field) running through the granular tissue.
    Mean brightness 0.15 / 0.38 / 0.62 with grain of std 0.03 / 0.05 / 0.08, blur, Gaussian noise of std
    ``noise`` and weak uneven illumination; the thin strands are blurred to nearly the granular brightness, so
    their shape tells them apart. Deterministic for a seed.
    """
    rng = np.random.default_rng(seed)
    tissue_field, kind, strand = _field(rng, shape, 24), _field(rng, shape, 18), _field(rng, shape, 10)
    tissue = tissue_field > np.quantile(tissue_field, 0.35)
    fibrous = (kind > np.quantile(kind, 0.6)) | (np.abs(strand) < 0.12)
    labels = np.where(tissue, np.where(fibrous, 2, 1), 0).astype(np.uint8)
    fibres = ndimage.rotate(ndimage.gaussian_filter(rng.standard_normal(shape), (0.8, 4.0)),
                            rng.uniform(0, 180), reshape=False, mode="wrap")
    values = (0.15 + 0.03 * _field(rng, shape, 3), 0.38 + 0.05 * _field(rng, shape, 1.0),
              0.62 + 0.08 * fibres / fibres.std())
    image = np.choose(labels, values) + 0.02 * _field(rng, shape, 60)
    image = ndimage.gaussian_filter(image, 0.8) + rng.normal(0, noise, shape)
    return (np.clip(image, 0, 1) * 255).astype(np.uint8), labels
