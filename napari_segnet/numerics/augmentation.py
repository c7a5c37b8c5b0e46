"""Training augmentation for other microscopes and scales: transforms of the raw image (and its instance ids).

Every transform works on the RAW image, before the model's percentile normalisation, and returns it in the
input's dtype (integer dtypes are rounded and clipped to their range), so that what survives normalisation —
quantisation, an offset under shot noise, saturation — is what a real file would show. Geometry changes the
instance ids (Y, X) too; semantic targets are derived afterwards with
:func:`napari_segnet.numerics.weightmap.separate_touching`, so the background gap between touching objects is recomputed
at the new scale (ids are resized with nearest-neighbour interpolation, which keeps touching objects touching
and never invents ids; the gap is then one pixel on each side of a contact at every scale).

:func:`random_augment` composes them in the order light takes through a microscope (see ``ORDER``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.transform import resize

#: The order in which :func:`random_augment` applies the transforms: geometry; the scene under uneven
#: excitation; optics; background light; photon (shot) noise on signal + background; camera read noise; a
#: non-linear response; an analogue-to-digital converter with few levels (8-bit data saved as 16-bit).
ORDER = ("rescale", "illumination", "blur", "background", "poisson", "gaussian", "gamma", "quantise")


def _to_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Float values in ``dtype``: integer dtypes are rounded and clipped to their range."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype, copy=False)


def _span(image: np.ndarray) -> tuple[float, float]:
    """(low, high): the 0.1th and 99.9th percentiles of ``image``; high > low."""
    low, high = np.percentile(image, [0.1, 99.9])
    return float(low), float(max(high, low + 1e-6))


def rescale(image: np.ndarray, instances: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Zoom image (Y, X) and instance ids (Y, X) by ``factor``: the image linearly (anti-aliased when it shrinks),
    the ids by nearest neighbour. Returns both of shape round(factor · (Y, X)), in their own dtypes."""
    if not (factor > 0 and np.isfinite(factor)):
        raise ValueError(f"scale factor must be a positive number, got {factor}")
    if image.shape != instances.shape:
        raise ValueError(f"instances of shape {instances.shape} do not match the image's {image.shape}")
    shape = tuple(max(1, round(n * factor)) for n in image.shape)
    zoomed = resize(image.astype(np.float32), shape, order=1, anti_aliasing=factor < 1, preserve_range=True)
    ids = resize(instances, shape, order=0, anti_aliasing=False, preserve_range=True)
    return _to_dtype(zoomed, image.dtype), ids.astype(instances.dtype)


def smooth_field(shape: tuple[int, int], rng: np.random.Generator, length: float) -> np.ndarray:
    """Smooth random field (Y, X) float32 in [−1, 1] varying over ~``length`` pixels (made at low resolution)."""
    small = tuple(max(2, int(np.ceil(n / length)) + 2) for n in shape)
    field = ndimage.gaussian_filter(rng.standard_normal(small), 1.0, mode="reflect")
    field = resize(field, shape, order=3, mode="reflect")
    return (field / (np.abs(field).max() + 1e-12)).astype(np.float32)


def illumination(image: np.ndarray, rng: np.random.Generator, strength: float, length: float = 128.0
                 ) -> np.ndarray:
    """Uneven excitation: image · (1 + strength · field), a smooth field in [−1, 1] (``strength`` < 1)."""
    low = np.min(image)
    field = 1 + strength * smooth_field(image.shape, rng, length)
    return _to_dtype(low + (image.astype(np.float32) - low) * field, image.dtype)


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of standard deviation ``sigma`` pixels (defocus, a wider point-spread function)."""
    return _to_dtype(ndimage.gaussian_filter(image.astype(np.float32), sigma), image.dtype)


def background(image: np.ndarray, rng: np.random.Generator, offset: float, uneven: float = 0.0,
               length: float = 128.0) -> np.ndarray:
    """Add background light: ``offset`` plus a smooth additive field of amplitude ``uneven``, both as fractions
    of the image's intensity span (0.1th–99.9th percentile)."""
    low, high = _span(image)
    extra = offset + uneven * (smooth_field(image.shape, rng, length) + 1) / 2
    return _to_dtype(image.astype(np.float32) + (high - low) * extra, image.dtype)


def poisson_noise(image: np.ndarray, rng: np.random.Generator, photons: float, zero: float | None = None
                  ) -> np.ndarray:
    """Shot noise: intensities above ``zero`` (the level of no light, e.g. a camera's offset; default the
    image's minimum) become photon counts, ``photons`` at the image's 99.9th percentile, are drawn from a
    Poisson distribution, and are scaled back."""
    if not photons > 0:
        raise ValueError(f"photons must be a positive number, got {photons}")
    zero = float(np.min(image)) if zero is None else zero
    high = max(_span(image)[1], zero + 1e-6)
    gain = photons / (high - zero)
    counts = rng.poisson(np.maximum(image.astype(np.float64) - zero, 0) * gain)
    return _to_dtype(zero + counts / gain, image.dtype)


def gaussian_noise(image: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Read noise: add N(0, (sigma · span)²), ``sigma`` a fraction of the image's intensity span."""
    low, high = _span(image)
    noise = rng.normal(0, sigma * (high - low), image.shape)
    return _to_dtype(image.astype(np.float32) + noise, image.dtype)


def gamma(image: np.ndarray, value: float) -> np.ndarray:
    """Non-linear contrast: the span [min, max] is mapped onto itself by t ↦ t ** value."""
    low, high = float(np.min(image)), float(np.max(image))
    t = (image.astype(np.float32) - low) / max(high - low, 1e-6)
    return _to_dtype(low + (high - low) * t**value, image.dtype)


def quantise(image: np.ndarray, levels: int = 256, saturation: float = 0.0) -> np.ndarray:
    """Few grey levels, as 8-bit data in a 16-bit file: [min, the (100 − saturation)th percentile] becomes the
    integers 0 … levels − 1 (brighter pixels saturate at levels − 1), stored in the input's dtype."""
    if not (isinstance(levels, (int, np.integer)) and 2 <= levels <= 65536):
        raise ValueError(f"levels must be an integer in [2, 65536], got {levels!r}")
    low = float(np.min(image))
    high = max(float(np.percentile(image, 100 - saturation)), low + 1e-6)
    steps = np.clip(np.rint((image.astype(np.float64) - low) / (high - low) * (levels - 1)), 0, levels - 1)
    return steps.astype(image.dtype)


def random_crop(image: np.ndarray, instances: np.ndarray, size: int, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray]:
    """A random window of at most size × size of image and instances (Y, X); smaller sides are kept whole."""
    h, w = image.shape
    y0, x0 = rng.integers(0, max(h - size, 0) + 1), rng.integers(0, max(w - size, 0) + 1)
    window = (slice(y0, y0 + size), slice(x0, x0 + size))
    return image[window], instances[window]


@dataclass(frozen=True)
class AugmentRanges:
    """Probability and range of each transform in :func:`random_augment` (scale is drawn log-uniformly)."""

    scale: tuple[float, float] = (0.5, 2.0)
    p_illumination: float = 0.5
    illumination: tuple[float, float] = (0.1, 0.5)
    p_blur: float = 0.5
    blur: tuple[float, float] = (0.5, 2.5)
    p_background: float = 0.5
    offset: tuple[float, float] = (0.0, 1.0)
    uneven: tuple[float, float] = (0.0, 0.3)
    p_poisson: float = 0.5
    photons: tuple[float, float] = (20.0, 300.0)  # log-uniform
    p_gaussian: float = 0.5
    gaussian: tuple[float, float] = (0.01, 0.12)
    p_gamma: float = 0.5
    gamma: tuple[float, float] = (0.5, 2.0)  # log-uniform
    p_quantise: float = 0.4
    levels: tuple[int, int] = (16, 256)
    saturation: tuple[float, float] = (0.0, 2.0)


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]))))


def random_augment(image: np.ndarray, instances: np.ndarray, rng: np.random.Generator,
                   ranges: AugmentRanges = AugmentRanges()) -> tuple[np.ndarray, np.ndarray]:
    """Image (Y, X) and instance ids (Y, X) after a random draw of every transform, in ``ORDER``; each but the
    rescale is applied with its probability. Shapes become round(scale · (Y, X)); dtypes are kept."""
    r = ranges
    image, instances = rescale(image, instances, _log_uniform(rng, r.scale))
    if rng.random() < r.p_illumination:
        image = illumination(image, rng, rng.uniform(*r.illumination))
    if rng.random() < r.p_blur:
        image = blur(image, rng.uniform(*r.blur))
    zero = float(np.min(image))  # no light here: added background below gets shot noise, the camera offset not
    if rng.random() < r.p_background:
        image = background(image, rng, rng.uniform(*r.offset), rng.uniform(*r.uneven))
    if rng.random() < r.p_poisson:
        image = poisson_noise(image, rng, _log_uniform(rng, r.photons), zero)
    if rng.random() < r.p_gaussian:
        image = gaussian_noise(image, rng, rng.uniform(*r.gaussian))
    if rng.random() < r.p_gamma:
        image = gamma(image, _log_uniform(rng, r.gamma))
    if rng.random() < r.p_quantise:
        image = quantise(image, int(rng.integers(r.levels[0], r.levels[1] + 1)), rng.uniform(*r.saturation))
    return image, instances
