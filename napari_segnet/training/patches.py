"""Training patches: per-image targets and weight maps, patches sampled from reviewed pixels, augmentation."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..numerics.images import reflect_index
from ..numerics.normalization import Normalization
from .settings import TrainSettings
from .training_set import TrainingPlane


@dataclass
class TrainingImage:
    """One plane (or a part of one at ``origin`` (row, col)) ready for patch sampling: normalised (C, Y, X)
    float32, labels (Y, X), weights, reviewed mask."""

    image: np.ndarray
    labels: np.ndarray
    weights: np.ndarray
    reviewed: np.ndarray
    origin: tuple[int, int] = (0, 0)

    @classmethod
    def prepare(cls, plane: TrainingPlane, norm: Normalization, settings: TrainSettings,
                norm_parameters: tuple[np.ndarray, np.ndarray] | None = None) -> TrainingImage:
        """Normalise the plane (with ``norm_parameters`` of its whole image, or computed here) and compute its
        weight map once, from the reviewed pixels only."""
        offset, scale = norm_parameters if norm_parameters is not None else norm.parameters(plane.image)
        raw = plane.raw().astype(np.float32)
        weights = settings.weight_map(plane.labels, plane.reviewed)
        return cls(Normalization.apply(raw, offset, scale), plane.labels.astype(np.int64), weights, plane.reviewed,
                   plane.origin)

    @functools.cached_property
    def reviewed_pixels(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cols) of the reviewed pixels, found once (patch centres are drawn from them every step)."""
        return np.nonzero(self.reviewed)


def sample_patch(item: TrainingImage, size_in: int, size_out: int, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A random patch whose output centre lies on a reviewed pixel.

    Returns image (C, size_in, size_in), labels, weights and mask (size_out, size_out); pixels outside the image
    are mirrored in the input and masked out of the target.
    """
    ys, xs = item.reviewed_pixels
    k = rng.integers(len(ys))
    shrink = (size_in - size_out) // 2
    y0 = ys[k] - size_in // 2  # input rows [y0, y0 + size_in); output rows start at y0 + shrink
    x0 = xs[k] - size_in // 2
    h, w = item.labels.shape
    iy = reflect_index(np.arange(y0, y0 + size_in), h)
    ix = reflect_index(np.arange(x0, x0 + size_in), w)
    oy_raw, ox_raw = np.arange(y0 + shrink, y0 + shrink + size_out), np.arange(x0 + shrink, x0 + shrink + size_out)
    inside = ((oy_raw >= 0) & (oy_raw < h))[:, None] & ((ox_raw >= 0) & (ox_raw < w))[None, :]
    oy, ox = reflect_index(oy_raw, h)[:, None], reflect_index(ox_raw, w)[None, :]
    return (item.image[:, iy[:, None], ix[None, :]], item.labels[oy, ox], item.weights[oy, ox],
            item.reviewed[oy, ox] & inside)


def augment(image: np.ndarray, *targets: np.ndarray, rng: np.random.Generator, intensity: float = 0.1):
    """Random flips, 90° rotations (applied alike to the image (C, H, W) and each (H, W) target) and intensity
    jitter of the image: x·(1 ± intensity) ± intensity."""
    k, flip = rng.integers(4), rng.random() < 0.5
    image = np.rot90(image, k, axes=(1, 2))
    targets = tuple(np.rot90(t, k) for t in targets)
    if flip:
        image, targets = image[:, :, ::-1], tuple(t[:, ::-1] for t in targets)
    gain = 1 + rng.uniform(-intensity, intensity)
    bias = rng.uniform(-intensity, intensity)
    return (np.ascontiguousarray(image * gain + bias, dtype=np.float32),
            *(np.ascontiguousarray(t) for t in targets))


def prepare_planes(planes, normalization: Normalization, settings: TrainSettings) -> list[TrainingImage]:
    """Training planes → normalised images with weight maps (the normalisation measured once per whole image, so
    the planes of a stack are normalised alike, as prediction does)."""
    params: dict[int, tuple] = {}
    for p in planes:
        if id(p.image) not in params:
            params[id(p.image)] = normalization.parameters(p.image)
    return [TrainingImage.prepare(p, normalization, settings, params[id(p.image)]) for p in planes]
