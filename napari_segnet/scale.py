"""Object size: estimate the typical object diameter, and zoom images to the object size a model was trained on.

As in Cellpose, the object size is the median equivalent diameter √(4·area/π) of the objects, in pixels. A model
records the size it was trained on (``Segmenter.object_diameter``); given the size of the objects in an image,
prediction zooms the image by ``model diameter / image diameter``, predicts, and zooms the result back to the
image's exact shape (labels by nearest neighbour, probabilities linearly); fine-tuning zooms images, labels and
masks the same way before training.
"""

from __future__ import annotations

import math

import numpy as np
from skimage.measure import label, regionprops
from skimage.transform import resize

from .images import ImagePlanes


def estimate_diameter(labels) -> float:
    """Median equivalent diameter (px) of the objects in ``labels`` (Y, X) or (Z, Y, X), slice by slice.

    labels: instance ids or class ids (any integer or bool dtype, 0 = background); each value's face-connected
    components are objects, so semantic labels work too. Objects cut by the image border are left out when
    any whole object exists (they would look smaller). Raises ``ValueError`` when there is no object.
    """
    labels = np.asarray(labels)
    if labels.ndim not in (2, 3) or not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == np.bool_):
        raise ValueError(f"labels must be an integer array (Y, X) or (Z, Y, X), got {labels.dtype} of shape "
                         f"{labels.shape}")
    whole, cut = [], []
    for plane in labels.reshape((-1, *labels.shape[-2:])):
        ids = label(plane.astype(np.int64), background=0, connectivity=1)
        h, w = plane.shape
        for r in regionprops(ids):
            inside = r.bbox[0] > 0 and r.bbox[1] > 0 and r.bbox[2] < h and r.bbox[3] < w
            (whole if inside else cut).append(math.sqrt(4 * r.area / math.pi))
    if not whole and not cut:
        raise ValueError("cannot estimate an object size: the labels contain no object (only background)")
    return float(np.median(whole or cut))


def zoom_factor(diameter, model_diameter: float | None) -> float:
    """The zoom that gives objects of ``diameter`` px the model's ``model_diameter``; 1.0 when ``diameter`` is None.

    Raises ``ValueError`` for a diameter that is not a positive finite number, or when the model records no size.
    """
    if diameter is None:
        return 1.0
    if isinstance(diameter, bool) or not isinstance(diameter, (int, float, np.integer, np.floating)) or not (
            math.isfinite(diameter) and diameter > 0):
        raise ValueError(f"diameter (the object size in pixels) must be a positive number, got {diameter!r}")
    if model_diameter is None:
        raise ValueError("this model records no object size, so it cannot rescale to it; fine-tune it with "
                         "diameter=... first (that records the size), or leave diameter out")
    return float(model_diameter) / float(diameter)


def zoomed_shape(shape: tuple[int, int], factor: float) -> tuple[int, int]:
    """(Y, X) of a plane of ``shape`` zoomed by ``factor`` (at least 1 px each)."""
    return tuple(max(1, round(n * factor)) for n in shape)


def zoom_image(image, factor: float, in_channels: int = 1, channel_axis: int | None = None) -> np.ndarray:
    """``image`` (any axes :class:`~napari_segnet.images.ImagePlanes` accepts) zoomed by ``factor`` along Y and X
    only: linear interpolation, anti-aliased when it shrinks, float32, other axes untouched. Reads it whole."""
    planes = ImagePlanes(image, in_channels, channel_axis)
    array = np.asarray(image, dtype=np.float32)
    shape = list(array.shape)
    shape[planes.y_axis], shape[planes.x_axis] = zoomed_shape(planes.shape, factor)
    return resize(array, shape, order=1, anti_aliasing=factor < 1, preserve_range=True).astype(np.float32)


def zoom_labels(labels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Integer or bool ``labels`` (…, Y, X) resized by nearest neighbour to ``shape`` (same ndim), same dtype."""
    labels = np.asarray(labels)
    return resize(labels, shape, order=0, anti_aliasing=False, preserve_range=True).astype(labels.dtype)


def zoom_proba(proba: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Probabilities (C, …, Y, X) resized linearly to (C, *shape), float32 (still summing to 1 per pixel)."""
    return resize(proba, (proba.shape[0], *shape), order=1, anti_aliasing=False,
                  preserve_range=True).astype(np.float32)
