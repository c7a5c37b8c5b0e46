"""Object size: estimate the typical object diameter, and zoom images to the object size a model was trained on.

As in Cellpose, the object size is the median equivalent diameter √(4·area/π) of the objects, in pixels. A model
records the size it was trained on (``Segmenter.object_diameter``); given the size of the objects in an image,
prediction zooms the image by ``model diameter / image diameter``, predicts, and zooms the result back to the
image's exact shape (labels by nearest neighbour, probabilities linearly); fine-tuning zooms images, labels and
masks the same way before training.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from skimage.measure import label, regionprops
from skimage.transform import resize

from ..numerics.images import ImagePlanes
from .tiling import PredictionResult


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
    """``image`` (any axes :class:`~napari_segnet.numerics.images.ImagePlanes` accepts) zoomed by ``factor`` along Y
    and X only: linear interpolation, anti-aliased when it shrinks, float32, other axes untouched. Reads it whole."""
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


def spatial_shape(image, in_channels: int = 1, channel_axis: int | None = None) -> tuple[int, ...]:
    """(Y, X) or (Z|T, Y, X) of ``image`` (axes as :class:`~napari_segnet.numerics.images.ImagePlanes` reads them)."""
    planes = ImagePlanes(image, in_channels, channel_axis)
    return ((planes.n_planes,) if planes.plane_axis is not None else ()) + planes.shape


def recorded_diameter(details: list[dict]) -> float | None:
    """The latest ``object_diameter`` in the ``details`` of version records, oldest first (or in their ``training``
    card), else None."""
    for record in reversed(details):
        size = record.get("object_diameter", (record.get("training") or {}).get("object_diameter"))
        if size is not None:
            return float(size)
    return None


def zoom_training_set(images, labels, masks, diameter, model_diameter: float | None, in_channels: int = 1,
                      channel_axis: int | None = None):
    """(images, labels, masks, size to record) for a fine-tune with objects of ``diameter`` px: zoomed along Y
    and X to ``model_diameter`` (images by :func:`zoom_image`, labels and masks of their image's spatial shape by
    nearest neighbour; others are left for ``training_planes`` to refuse) and None; unchanged with ``diameter``
    as the size to record when the model records none (or None when ``diameter`` is None)."""
    if diameter is None or model_diameter is None:
        zoom_factor(diameter, 1.0)  # checks the value
        return images, labels, masks, None if diameter is None else float(diameter)
    factor = zoom_factor(diameter, model_diameter)
    before = [spatial_shape(im, in_channels, channel_axis) for im in images]
    images = [zoom_image(im, factor, in_channels, channel_axis) for im in images]
    after = [spatial_shape(im, in_channels, channel_axis) for im in images]

    def zoomed(arrays, dtype):
        return [a if a is None or np.shape(a) != b else zoom_labels(np.asarray(a, dtype), s)
                for a, b, s in zip(arrays, before, after, strict=False)]
    return images, zoomed(labels, None), None if masks is None else zoomed(masks, None), None  # view bits kept


def zoomed_back(steps, shape: tuple[int, ...], labels_out=None) -> Iterator:
    """The updates of a prediction of a zoomed image, its final ``PredictionResult`` zoomed back to ``shape``
    (labels written into ``labels_out`` when given)."""
    for update in steps:
        if not isinstance(update, PredictionResult):
            yield update
            continue
        labels = None if update.labels is None else zoom_labels(update.labels, shape)
        if labels is not None and labels_out is not None:
            labels_out[...] = labels
            labels = labels_out
        yield PredictionResult(labels, None if update.proba is None else zoom_proba(update.proba, shape))
