"""Synthetic images with exact labels: multi-class objects told apart by shape and texture; nuclei; tissue regions;
mosaics of real texture photographs."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.draw import ellipse, polygon
from skimage.segmentation import find_boundaries

from ..numerics.weightmap import separate_touching

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


#: Nucleus textures of :func:`synthetic_nuclei`: "smooth" (brighter centre), "granular" (chromatin speckle),
#: "nucleoli" (1–3 dark spots), "rim" (bright envelope, dim inside; left out of training for the benchmark).
NUCLEUS_TEXTURES = ("smooth", "granular", "nucleoli", "rim")


def nucleus_outline(diameter: float, rng: np.random.Generator, elongation: float = 0.35, wobble: float = 0.06,
                    n_points: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(dy, dx) polygon offsets of a nucleus of equivalent diameter ``diameter``: a rotated ellipse of axis ratio
    1 … 1 + ``elongation`` whose radius wobbles by low harmonics (relative amplitude ≤ ``wobble`` each)."""
    theta = np.linspace(0, 2 * np.pi, n_points, endpoint=False)
    ratio = 1 + rng.uniform(0, elongation)
    radius = 1 + sum(rng.uniform(0, wobble) * np.cos(k * theta + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 4))
    dy, dx = radius * np.sin(theta) / np.sqrt(ratio), radius * np.cos(theta) * np.sqrt(ratio)
    area = 0.5 * abs(np.dot(dx, np.roll(dy, 1)) - np.dot(dy, np.roll(dx, 1)))
    size = diameter / 2 / np.sqrt(area / np.pi)  # scale so the polygon's area is that of the diameter's disc
    angle = rng.uniform(0, np.pi)
    c, s = np.cos(angle), np.sin(angle)
    return size * (c * dy + s * dx), size * (c * dx - s * dy)


def _nucleus_values(texture: str, rr: np.ndarray, cc: np.ndarray, centre: tuple[float, float], radius: float,
                    speckle: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Relative brightness (≈ 0.5 … 1) of the pixels (rr, cc) of one nucleus with the given texture."""
    d = np.hypot(rr - centre[0], cc - centre[1]) / radius
    if texture == "smooth":
        return 1 - 0.3 * np.clip(d, 0, 1) ** 2
    if texture == "granular":
        return 0.8 + 0.2 * speckle[rr, cc]
    if texture == "rim":
        return np.where(d > 0.7, 1.0, 0.55) + 0.05 * speckle[rr, cc]
    if texture == "nucleoli":
        values = 0.9 + 0.08 * speckle[rr, cc]
        for _ in range(rng.integers(1, 4)):
            spot = rng.uniform(-0.45, 0.45, 2) * radius
            near = np.hypot(rr - centre[0] - spot[0], cc - centre[1] - spot[1]) < radius * rng.uniform(0.12, 0.22)
            values[near] = 0.45
        return values
    raise ValueError(f"texture must be one of {NUCLEUS_TEXTURES}, got {texture!r}")


def _place(instances: np.ndarray, dy: np.ndarray, dx: np.ndarray, centre: tuple[float, float]):
    """Pixels (rr, cc) of the outline at ``centre`` that are still free, or None if others cover > 15 % of it
    (touching and slight overlap are allowed; the object placed first keeps the contested pixels)."""
    rr, cc = polygon(centre[0] + dy, centre[1] + dx, shape=instances.shape)
    if len(rr) == 0:
        return None
    free = instances[rr, cc] == 0
    full = np.pi * (np.ptp(dy) / 2) * (np.ptp(dx) / 2)  # ~ the object's area even where the image clips it
    return (rr[free], cc[free]) if free.mean() >= 0.85 and free.sum() >= 0.3 * full else None


def _centre(rng: np.random.Generator, shape, centres: list, radii: list, radius: float, p_touch: float):
    """A uniform random centre, or with probability ``p_touch`` one at contact distance from a placed nucleus."""
    if centres and rng.random() < p_touch:
        k = rng.integers(len(centres))
        angle = rng.uniform(0, 2 * np.pi)
        dist = (radii[k] + radius) * rng.uniform(0.9, 1.05)
        return centres[k][0] + dist * np.sin(angle), centres[k][1] + dist * np.cos(angle)
    return rng.uniform(0, shape[0]), rng.uniform(0, shape[1])


def nuclei_instances(shape: tuple[int, int], n_nuclei: int, diameter: tuple[float, float], textures: tuple[str, ...],
                     rng: np.random.Generator, p_touch: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(instances int32 (Y, X), relative brightness float32 (Y, X)) of up to ``n_nuclei`` nuclei of equivalent
    diameters uniform in ``diameter``, each with a texture from ``textures`` and its own brightness 0.4 … 1."""
    instances = np.zeros(shape, np.int32)
    bright = np.zeros(shape, np.float32)
    speckle = _texture(rng, shape, rng.uniform(0.8, 2.0))
    centres, radii = [], []
    for _ in range(50 * n_nuclei):
        if len(centres) == n_nuclei:
            break
        d = rng.uniform(*diameter)
        dy, dx = nucleus_outline(d, rng)
        centre = _centre(rng, shape, centres, radii, d / 2, p_touch)
        pixels = _place(instances, dy, dx, centre)
        if pixels is None:
            continue
        rr, cc = pixels
        instances[rr, cc] = len(centres) + 1
        texture = textures[rng.integers(len(textures))]
        bright[rr, cc] = rng.uniform(0.4, 1.0) * _nucleus_values(texture, rr, cc, centre, d / 2, speckle, rng)
        centres.append(centre)
        radii.append(d / 2)
    # a dimmer rim inside every outline, so that touching nuclei of equal brightness show a seam
    inside = ndimage.distance_transform_edt(~find_boundaries(instances, mode="inner"))
    bright *= 1 - rng.uniform(0.1, 0.5) * np.exp(-inside / rng.uniform(1.0, 3.0))
    return instances, bright


def synthetic_nuclei(shape: tuple[int, int] = (256, 256), n_nuclei: int = 25, diameter: tuple[float, float] = (10, 60),
                     textures: tuple[str, ...] = ("smooth", "granular", "nucleoli"), seed: int = 0
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fluorescent nuclei: (image uint16 (Y, X), labels uint8 (Y, X) in {0, 1}, instances int32 (Y, X)).

    Nuclei (see :func:`nuclei_instances`) may touch; labels keep a background gap between touching nuclei
    (``separate_touching``). Each image draws its own background level, uneven illumination, blur (σ 0.5–2 px),
    Gaussian noise and brightness, so no two look alike. Deterministic for a seed.
    """
    rng = np.random.default_rng(seed)
    instances, bright = nuclei_instances(shape, n_nuclei, diameter, textures, rng)
    field = 1 + rng.uniform(0, 0.4) * _texture(rng, shape, rng.uniform(40, 120))
    image = rng.uniform(0.02, 0.2) + bright * field
    image = ndimage.gaussian_filter(image, rng.uniform(0.5, 2.0))
    image = image + rng.normal(0, rng.uniform(0.01, 0.06), shape)
    scale = rng.uniform(2000, 50000)
    return (np.clip(image, 0, None) * scale + 100).astype(np.uint16), separate_touching(instances), instances


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


TEXTURE_CLASS_NAMES = ["brick", "grass", "gravel"]


def texture_mosaic(shape: tuple[int, int] = (256, 256), seed: int = 0, half: str = "top"
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(image uint8 (Y, X), labels uint8 (Y, X) in 0…2): regions of real photographed textures.

    Each class is one of scikit-image's bundled 512² texture photographs (``TEXTURE_CLASS_NAMES``: brick, grass,
    gravel, of nearly equal mean brightness, told apart by texture); the regions are the argmax of three smooth
    random fields (curved boundaries, regions tens of pixels across). Pixel (y, x) of class c is pixel (y, x0 + x) of
    texture c's ``half`` ("top": rows 0–255, "bottom": rows 256–511; x0 random), unaltered, so images made from
    different halves share no pixel: working images from one half, held-out ones from the other. ``shape`` at most
    (256, 512). Deterministic for a seed.
    """
    from skimage import data

    if half not in ("top", "bottom") or shape[0] > 256 or shape[1] > 512:
        raise ValueError(f"texture_mosaic: half 'top' or 'bottom' and shape ≤ (256, 512), got {half!r}, {shape}")
    rng = np.random.default_rng(seed)
    labels = np.argmax([_field(rng, shape, 16) for _ in TEXTURE_CLASS_NAMES], axis=0).astype(np.uint8)
    y0, x0 = (0 if half == "top" else 256), int(rng.integers(0, 512 - shape[1] + 1))
    crops = [getattr(data, name)()[y0:y0 + shape[0], x0:x0 + shape[1]] for name in TEXTURE_CLASS_NAMES]
    return np.choose(labels, crops).astype(np.uint8), labels
